"""What a search setting costs per question, at the bench's scale (eval/README, row 40).

`.venv/bin/python eval/search_cost.py INDEX_DIR SIZE NAME=VALUE [NAME=VALUE ...]` tiles a built index (e.g. one
that `qa eval ../shared/eval/piaf-dev.json` cached under var/cache/eval/) to SIZE passages as `qa bench` does,
then asks the bench's 600 latency questions (400 PIAF, 100 XQuAD en, 100 es; the first 10 once more before,
to warm up) of two searchers over that one index: the model's defaults, and the defaults with the given
`SearchParams` fields changed (`full_match_power=0`). The two are timed in turn, question by question, as
`qa bench` times ours against its peer (`service.bench.peer.interleaved_latency`), so that both see the same
machine; the script prints each one's wall-clock p50 and p99 and CPU p50, and the difference of the p50s, in
milliseconds.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

from index.config import Settings, search_params_for
from index.evaluation.datasets import squad_documents
from index.models.encoders import load_encoder
from index.searcher import Searcher
from index.storage.store import read_index, resolve_live
from service.bench import scale
from service.bench.peer import interleaved_latency
from service.bench.run import EVAL, SIGMA, latency_questions


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
    questions, _ = latency_questions(piaf, (400, 100, 100))
    latency = interleaved_latency({name: partial(s.search, k=5) for name, s in searchers.items()}, questions)
    print(f"{len(data.chunks):,} passages, {len(questions)} questions, changed: {overrides}")
    for name, times in latency.items():
        wall, cpu = times["search"], times["search_cpu"]
        print(f"  {name:8s} p50 {wall['p50_ms']:.2f} ms, p99 {wall['p99_ms']:.2f} ms, CPU p50 {cpu['p50_ms']:.2f} ms")
    wall, cpu = ({name: latency[name][key]["p50_ms"] for name in searchers} for key in ("search", "search_cpu"))
    print(f"  changed - defaults, p50: {wall['changed'] - wall['defaults']:+.2f} ms, "
          f"CPU {cpu['changed'] - cpu['defaults']:+.2f} ms")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), int(sys.argv[2]), parse_overrides(sys.argv[3:]))
