"""Two-fold check of ranker settings on the even articles only (eval/README, learned ranker).

Run the shipped `qa train-ranker ... --articles even --together` command first (it caches the features), then
`.venv/bin/python eval/ranker_cv.py '{"rounds": 300}'` (add `--apart` after the JSON for the features of the
same command without `--together`). Each set's questions are split into a first and a
second half (articles are in order, so the halves share at most one article); a model trained on one half of
every set is scored on the other half, and the reverse. Prints hit@1 of the fusion and of the ranker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np

from index.config import Settings
from index.evaluation.runner import searcher_for
from index.models.encoders import load_encoder
from index.rerank.features import FEATURES
from index.rerank.ranker import ROUNDS, TRAINING
from service.train_ranker import features_cache_path, load_set, together_sets

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
SETS = [
    (EVAL / "piaf-dev.json", None),
    (EVAL / "xquad-es.json", None),
    (EVAL / "xquad-es.json", EVAL / "xquad-en.json"),
]


def cached_features(together: bool) -> list[dict[str, np.ndarray]]:
    settings = Settings()
    settings = settings.model_copy(update={"search": settings.search.model_copy(update={"ranker": "off"})})
    encoder = load_encoder(settings.model)
    out = []
    sets = [load_set(articles, questions, "even") for articles, questions in SETS]
    for eval_set in together_sets(sets) if together else sets:
        path = features_cache_path(eval_set, settings, searcher_for(eval_set, settings, encoder, show_progress=False))
        with np.load(path, allow_pickle=False) as data:
            out.append({key: data[key] for key in ("features", "relevance", "groups")})
    return out


def half(part: dict[str, np.ndarray], which: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    groups = part["groups"]
    starts = np.concatenate(([0], np.cumsum(groups)[:-1]))
    chosen = (np.arange(len(groups)) >= len(groups) // 2) == bool(which)
    rows = np.concatenate([np.arange(starts[i], starts[i] + groups[i]) for i in np.flatnonzero(chosen)])
    return part["features"][rows], part["relevance"][rows], groups[chosen]


def hit_at_1(scores: np.ndarray, relevance: np.ndarray, groups: np.ndarray) -> float:
    hits, at = [], 0
    for size in groups:
        order = np.lexsort((np.arange(size), -scores[at : at + size]))
        hits.append(relevance[at : at + size][order[0]] == 1)
        at += size
    return float(np.mean(hits))


def main() -> None:
    params = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    rounds = params.pop("rounds", ROUNDS)
    parts = cached_features(together="--apart" not in sys.argv[2:])
    figures: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(parts))}
    for test in (0, 1):
        train = [half(part, 1 - test) for part in parts]
        features, relevance, groups = (np.concatenate([t[i] for t in train]) for i in range(3))
        starts = np.concatenate(([0], np.cumsum(groups)[:-1]))
        keep = np.array([relevance[s : s + n].any() for s, n in zip(starts, groups, strict=True)])
        rows = np.repeat(keep, groups)
        dataset = lgb.Dataset(features[rows], relevance[rows], group=groups[keep].tolist())
        model = lgb.train({**TRAINING, **params}, dataset, rounds)
        for i, part in enumerate(parts):
            x, y, g = half(part, test)
            fused = hit_at_1(-x[:, FEATURES.index("fused_rank")], y, g)
            figures[i].append((fused, hit_at_1(model.predict(x, num_threads=1), y, g)))
    for i, pairs in figures.items():
        fused, ranked = np.mean([p[0] for p in pairs]), np.mean([p[1] for p in pairs])
        print(f"{SETS[i][1] or SETS[i][0]}: fusion {fused:.3f}, ranker {ranked:.3f} ({ranked - fused:+.3f})")


if __name__ == "__main__":
    main()
