"""``qa reference``: train the question reference that hubness is measured against (see index.storage.hubness)."""

from __future__ import annotations

import argparse
from pathlib import Path

from index.config import Settings
from index.errors import EvalDataError
from index.evaluation.datasets import every_other_article, load_eval_file
from index.models.encoders import canonical_model_name, load_encoder
from index.storage.hubness import NEIGHBOURS, QuestionReference, ReferenceInfo, shipped_reference, train_centroids


def run_reference(files: list[Path], settings: Settings, args: argparse.Namespace) -> int:
    """Encode the questions of ``files``, cluster them and write the reference; print where it went."""
    questions, sources = [], []
    for path in files:
        eval_set = load_eval_file(path)
        if args.articles != "all":
            eval_set = every_other_article(eval_set, args.articles)
        questions += [q.question for q in eval_set.questions]
        sources.append(f"{Path(path).name}: {len(eval_set.questions)} questions ({args.articles} articles)")
    if args.centroids < 1:
        raise EvalDataError(f"--centroids must be at least 1, not {args.centroids}")
    if len(questions) < args.centroids:
        raise EvalDataError(f"{len(questions)} questions cannot make {args.centroids} centroids: give more files")
    encoder = load_encoder(settings.model, settings.e5_engine)
    model = canonical_model_name(settings.model)
    print(f"encoding {len(questions)} questions with {model}")
    centroids = train_centroids(encoder.encode_queries(questions), args.centroids)
    neighbours = min(NEIGHBOURS, len(centroids))
    info = ReferenceInfo(model=model, neighbours=neighbours, questions=len(questions), sources=sources)
    out = args.out or shipped_reference(model)
    QuestionReference(centroids, info).save(out)
    print(f"wrote {out} ({len(centroids)} centroids); rebuild the index (`qa build`) to use it")
    return 0
