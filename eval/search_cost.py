"""What a search setting costs per question, at the bench's scale (eval/README, row 40).

`.venv/bin/python eval/search_cost.py INDEX_DIR SIZE NAME=VALUE [NAME=VALUE ...]` tiles a built index (e.g. one
that `qa eval ../shared/eval/piaf-dev.json` cached under var/cache/eval/) to SIZE passages as `qa bench` does,
then asks the bench's 600 latency questions (400 PIAF, 100 XQuAD en, 100 es; after its 10 warm-up ones) of two
searchers over that one index: the model's defaults, and the defaults with the given `SearchParams` fields changed
(`full_match_power=0`). The two are timed in turn, question by question, so that both see the same machine;
the script prints each one's p50 and p99 and the p50 of the per-question difference, in milliseconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from index.config import Settings, search_params_for
from index.encoders import load_encoder
from index.evaluation.datasets import squad_documents
from index.searcher import Searcher
from index.store import read_index, resolve_live
from service.bench import scale
from service.bench.run import EVAL, SIGMA, _latency_questions


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``NAME=VALUE`` pairs as SearchParams fields, each value read as JSON when it parses, else as text."""
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"error: {pair!r} is not NAME=VALUE")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def timed(searcher: Searcher, question: str) -> float:
    began = time.perf_counter()
    searcher.search(question, 5)
    return (time.perf_counter() - began) * 1000


def main(folder: Path, size: int, overrides: dict[str, object]) -> None:
    base = read_index(resolve_live(folder))
    model = base.manifest.settings.model
    encoder = load_encoder(model)
    copies = max(1, round(size / len(base.chunks)))
    data, _ = scale.scaled_index(base, copies, Settings().ann_threshold, SIGMA, None)
    defaults = search_params_for(model)
    changed = defaults.model_copy(update=overrides)
    searchers = {"defaults": Searcher(data, encoder, defaults), "changed": Searcher(data, encoder, changed)}
    _, piaf = squad_documents(EVAL / "piaf-dev.json")
    questions, warmup = _latency_questions(piaf, (400, 100, 100))
    for question in warmup:
        for searcher in searchers.values():
            searcher.search(question, 5)
    times: dict[str, list[float]] = {name: [] for name in searchers}
    for at, question in enumerate(questions):
        order = list(searchers) if at % 2 == 0 else list(reversed(searchers))  # neither always goes first
        for name in order:
            times[name].append(timed(searchers[name], question))
    print(f"{len(data.chunks):,} passages, {len(questions)} questions, changed: {overrides}")
    for name, values in times.items():
        print(f"  {name:8s} p50 {np.median(values):.2f} ms, p99 {np.percentile(values, 99):.2f} ms")
    difference = np.array(times["changed"]) - np.array(times["defaults"])
    print(f"  changed - defaults, per question: p50 {np.median(difference):+.3f} ms")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), int(sys.argv[2]), parse_overrides(sys.argv[3:]))
