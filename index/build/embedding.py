"""Where a build embeds its texts: in this process, or spread over a Ray cluster (``index.build.cluster``).

The builder only needs ``embed``: every text's vector, in input order. Everything
else of a build (spans, BM25, vocabulary, hubness, manifest, the atomic swap) is
the same whichever embedder runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from index.models.encoders import Encoder, Progress


class Embedder(Protocol):
    """Embeds a build's texts: passages (titled as configured), sentences and vocabulary words."""

    workers: int  # encoders that ran in the last ``embed`` call (the summary line reports it for cluster builds)

    def embed(self, texts: Sequence[str], dim: int, progress: Progress | None = None) -> np.ndarray:
        """L2-normalised float32 vectors, shape (len(texts), dim), row i for texts[i]; calls progress(n)."""
        ...


class LocalEmbedder:
    """The encoder of this process, batch by batch."""

    workers = 1

    def __init__(self, encoder: Encoder, batch_size: int) -> None:
        self.encoder = encoder
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str], dim: int, progress: Progress | None = None) -> np.ndarray:
        if not texts:
            return np.empty((0, dim), dtype=np.float32)
        return self.encoder.encode_passages(texts, batch_size=self.batch_size, progress=progress)
