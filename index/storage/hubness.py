"""Question hubness: how near a passage or sentence lies to questions in general.

In a high-dimensional vector space some points are *hubs*: near many queries
whatever those ask (with USE-m3, short or generic sentences such as
"Charlatan ?" sit close to most short questions). Cross-domain similarity
local scaling (CSLS, Conneau et al. 2018, for word translation) corrects this
by subtracting from each similarity how close the point lies to its nearest
queries in general. Here those general queries are a *question reference*: the
centroids of many encoded questions in several languages, trained once per
encoder by ``qa reference`` from SQuAD-format files. A build stores each
passage's and sentence's hubness, the mean similarity to its ``neighbours``
nearest centroids; a search subtracts ``hub_penalty`` times it from the
vector similarities (see ``Searcher``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from index.errors import IndexMismatchError, ModelUnavailableError
from index.storage.files import replace_atomically, replace_text

REFERENCES_DIR = Path(__file__).parent / "references"  # the references shipped with the package, per model
NEIGHBOURS = 5  # nearest centroids averaged into a vector's hubness
CENTROIDS = 512
_BATCH = 8192  # rows per matrix product: 16 MB of similarities at 512 centroids


@dataclass(frozen=True)
class ReferenceInfo:
    """What a question reference was trained from, kept beside its centroids as JSON."""

    model: str
    neighbours: int
    questions: int
    sources: list[str]


@dataclass(frozen=True)
class QuestionReference:
    """Centroids of encoded questions (unit rows) and how many of them a hubness averages."""

    centroids: np.ndarray
    info: ReferenceInfo

    @property
    def digest(self) -> str:
        """Identifies the reference in an index's build settings: a new reference means new hubness."""
        content = np.ascontiguousarray(self.centroids, dtype=np.float32).tobytes()
        return hashlib.sha256(content + str(self.info.neighbours).encode()).hexdigest()[:16]

    def hubness(self, vectors: np.ndarray) -> np.ndarray:
        """Hubness of each row of ``vectors``."""
        return hubness(vectors, self.centroids, self.info.neighbours)

    def save(self, path: Path) -> None:
        """Write ``path`` (.npy) and its .json beside it, each replaced atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda handle: np.save(handle, self.centroids.astype(np.float32), allow_pickle=False))
        text = json.dumps(asdict(self.info), ensure_ascii=False, indent=1) + "\n"
        replace_text(path.with_suffix(".json"), text)

    @classmethod
    def load(cls, path: Path) -> QuestionReference:
        try:
            centroids = np.load(path, allow_pickle=False)
            info = ReferenceInfo(**json.loads(path.with_suffix(".json").read_text(encoding="utf-8")))
            if centroids.ndim != 2 or not 1 <= info.neighbours <= len(centroids):
                raise ValueError("centroids must be a matrix with at least `neighbours` rows")
        except (OSError, ValueError, TypeError) as exc:
            raise ModelUnavailableError(
                f"question reference {path} is unreadable ({exc}): make it again with `qa reference`"
            ) from exc
        return cls(centroids.astype(np.float32), info)


def hubness(vectors: np.ndarray, centroids: np.ndarray, neighbours: int) -> np.ndarray:
    """Mean inner product of each vector with its ``neighbours`` nearest centroids."""
    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), _BATCH):
        similarities = vectors[start : start + _BATCH] @ centroids.T
        nearest = np.partition(similarities, -neighbours, axis=1)[:, -neighbours:]
        out[start : start + _BATCH] = nearest.mean(axis=1)
    return out


def train_centroids(question_vectors: np.ndarray, centroids: int = CENTROIDS, seed: int = 1) -> np.ndarray:
    """Spherical k-means centroids (unit rows) of encoded questions; the same input gives the same output."""
    vectors = np.ascontiguousarray(question_vectors, dtype=np.float32)
    if len(vectors) < centroids:
        raise ValueError(f"{len(vectors)} questions cannot make {centroids} centroids: give more questions")
    kmeans = faiss.Kmeans(vectors.shape[1], centroids, niter=25, seed=seed, spherical=True, verbose=False)
    kmeans.cp.max_points_per_centroid = max(256, len(vectors) // centroids + 1)  # train on every question
    kmeans.cp.min_points_per_centroid = 1  # a few questions per centroid is the point here: no warning
    kmeans.train(vectors)
    return kmeans.centroids / np.linalg.norm(kmeans.centroids, axis=1, keepdims=True)


def shipped_reference(model: str) -> Path:
    """Where the package keeps (or ``qa reference`` writes) the reference of a canonical model name."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    return REFERENCES_DIR / f"{safe}.npy"


def load_reference(configured: Path | None, model: str, dim: int) -> QuestionReference | None:
    """The configured reference, else the shipped one for ``model``; None when the model has none."""
    path = configured or shipped_reference(model)
    if configured is None and not path.is_file():
        return None
    if not path.is_file():
        raise ModelUnavailableError(f"question reference {path} does not exist: make it with `qa reference`")
    reference = QuestionReference.load(path)
    if reference.centroids.shape[1] != dim or reference.info.model != model:
        raise IndexMismatchError(
            f"question reference {path} was made for {reference.info.model!r} ({reference.centroids.shape[1]} "
            f"dimensions), not {model!r} ({dim}): make one for this model with `qa reference`"
        )
    return reference


def carried_hubness(
    previous_ids: np.ndarray | None, previous: np.ndarray | None, ids: np.ndarray, new_rows: list[int], new: np.ndarray
) -> np.ndarray:
    """Hubness of every row of a new table: computed for ``new_rows``, carried over by id for the rest."""
    out = np.zeros(len(ids), dtype=np.float32)
    out[new_rows] = new
    kept = np.setdiff1d(np.arange(len(ids)), new_rows)
    if len(kept) and previous_ids is not None and previous is not None:
        order = np.argsort(previous_ids)
        out[kept] = previous[order[np.searchsorted(previous_ids, ids[kept], sorter=order)]]
    return out
