"""Pure retrieval metrics over the rank of the first relevant passage (None: not found)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

Rank = int | None  # 1-based rank of the first hit


def hit_at(ranks: Sequence[Rank], k: int) -> float:
    """Share of questions whose first hit is within the top ``k``."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mrr_at(ranks: Sequence[Rank], k: int) -> float:
    """Mean reciprocal rank, counting only hits within the top ``k``."""
    if not ranks:
        return 0.0
    return sum(1.0 / r for r in ranks if r is not None and r <= k) / len(ranks)


def hit_curve(ranks: Sequence[Rank], max_k: int = 20) -> list[float]:
    """hit@1 .. hit@max_k."""
    return [hit_at(ranks, k) for k in range(1, max_k + 1)]


def breakdown(keyed: Iterable[tuple[str, Rank]]) -> dict[str, dict[str, float]]:
    """hit@1, hit@5 and n of each group of (key, rank) pairs, keys sorted."""
    groups: dict[str, list[Rank]] = defaultdict(list)
    for key, rank in keyed:
        groups[key].append(rank)
    return {
        key: {"hit@1": round(hit_at(ranks, 1), 4), "hit@5": round(hit_at(ranks, 5), 4), "n": len(ranks)}
        for key, ranks in sorted(groups.items())
    }


def gap(original: Sequence[Rank], rewritten: Sequence[Rank]) -> dict[str, float]:
    """hit@1 of the original questions, and how far the rewritten ones (the same questions, in the same order)
    stand from it: rewritten hit@1 minus original hit@1, negative when the rewriting costs hits."""
    if len(original) != len(rewritten):
        raise ValueError(f"{len(original)} original questions against {len(rewritten)} rewritten ones")
    before, after = hit_at(original, 1), hit_at(rewritten, 1)
    return {"original_hit@1": round(before, 4), "gap": round(after - before, 4)}


def first_hit(flags: Sequence[bool]) -> Rank:
    """1-based position of the first True, or None."""
    for position, flag in enumerate(flags, start=1):
        if flag:
            return position
    return None


def contains_span(passage: tuple[int, int], gold: tuple[int, int]) -> bool:
    """Whether a passage's [start, end) range holds the whole gold span."""
    return passage[0] <= gold[0] and gold[1] <= passage[1]


def fold(text: str) -> str:
    """Case- and whitespace-folded text, for answer-string matching."""
    return " ".join(text.casefold().split())


def contains_answer(passage_text: str, answers: Sequence[str]) -> bool:
    """Whether the passage holds any answer string, case and whitespace folded."""
    folded = fold(passage_text)
    return any(fold(answer) in folded for answer in answers if answer.strip())
