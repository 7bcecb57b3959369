"""Score search settings side by side on one half of the dev sets, each index loaded once.

Usage: .venv/bin/python eval/search_settings.py [--misses] even|odd NAME=VALUE[,NAME=VALUE...] ...
Each argument after the half is one configuration of ``SearchParams`` fields over the model's defaults
(``-`` for the defaults themselves). Prints hit@1 of PIAF, the four paraphrase sets (eval/paraphrase) and XQuAD
en→es on that half, then the four paraphrase sets again over a mixed index ("mix-"): PIAF's French articles
beside XQuAD's Spanish and English ones, where a question in Spanish or English also meets passages in its own
language that share a word with it, as in a user's multilingual corpus. Tune on ``even``; report with
``qa eval`` on ``odd`` (eval/README.md, issue 25). ``--misses`` adds, after each hit@1, the questions missed at
rank 1 and how many of those had a passage of the answer's own article first ("0.797 34/29").
"""

from __future__ import annotations

import sys
from pathlib import Path

from index.config import Settings, search_defaults_for
from index.evaluation.datasets import every_other_article, load_squad_set, replace_questions
from index.evaluation.runner import evaluate, searcher_for
from index.models.encoders import load_encoder
from index.searcher import Searcher

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
FORMS = ("fr", "en", "es", "de")


def configurations(args: list[str], base) -> list[tuple[str, object]]:
    out = []
    for arg in args:
        changes = {} if arg == "-" else dict(pair.split("=", 1) for pair in arg.split(","))
        out.append((arg, base.model_copy(update={k: type(getattr(base, k))(v) for k, v in changes.items()})))
    return out


def missed_in_article(score) -> str:
    """'missed/in the answer's article': questions whose top passage missed, and of those, the ones whose top
    passage is from the answer's own article."""
    missed = [o for o in score.outcomes if o.rank != 1]
    near = sum(1 for o in missed if o.passages and o.passages[0].doc_id == o.question.gold_doc)
    return f"{len(missed)}/{near}"


def main() -> None:
    misses = "--misses" in sys.argv
    argv = [arg for arg in sys.argv[1:] if arg != "--misses"]
    half, args = argv[0], argv[1:] or ["-"]
    settings = Settings()
    encoder = load_encoder(settings.model, settings.e5_engine)
    params = search_defaults_for(encoder.name, settings.search)
    piaf = load_squad_set(EVAL / "piaf-dev.json")
    xquad = replace_questions(load_squad_set(EVAL / "xquad-es.json"), EVAL / "xquad-en.json")
    sets = {"piaf": every_other_article(piaf, half)}
    for form in FORMS:
        rewritten = replace_questions(piaf, ROOT / "eval" / "paraphrase" / f"piaf-{form}.jsonl")
        sets[f"para-{form}"] = every_other_article(rewritten, half)
    sets["xquad"] = every_other_article(xquad, half)
    for form in FORMS:
        sets[f"mix-{form}"] = sets[f"para-{form}"]
    base = {name: searcher_for(sets[name], settings, encoder, show_progress=False) for name in ("piaf", "xquad")}
    distractors = [*xquad.documents, *load_squad_set(EVAL / "xquad-en.json").documents]  # Spanish and English
    base["mix"] = searcher_for(sets["piaf"], settings, encoder, extra_documents=distractors, show_progress=False)
    print("| configuration | " + " | ".join(sets) + " |")
    print("|---" * (len(sets) + 1) + "|")
    for label, config in configurations(args, params):
        cells = []
        for name, eval_set in sets.items():
            data = base["xquad" if name == "xquad" else "mix" if name.startswith("mix") else "piaf"].data
            score = evaluate(eval_set, Searcher(data, encoder, config), show_progress=False)
            cells.append(f"{score.hit_at_1:.3f}" + (" " + missed_in_article(score) if misses else ""))
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
