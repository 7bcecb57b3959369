"""The retrievers of a search, as ``index.config.RETRIEVERS`` names them.

Adding a retriever is one module here, whose class follows ``base.Retriever``, and one entry in
``RETRIEVERS`` naming it, its class and the ``SearchParams`` field of its fusion weight.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from index.config import RETRIEVERS, SearchParams
from index.search.retrievers.base import Retriever


class Retrievers(Mapping[str, Retriever]):
    """The configured retrievers by name, in the config's order: the order the fusion adds their lists in."""

    def __init__(self, params: SearchParams, has_hubness: bool) -> None:
        self._by_name: dict[str, Retriever] = {}
        for name, entry in RETRIEVERS.items():
            module, _, cls = entry.retriever.rpartition(".")
            kind = getattr(importlib.import_module(f"{__name__}.{module}"), cls)
            self._by_name[name] = kind(params, has_hubness)
        # Lists that score the passages others found come after those: in shards and in the merge alike.
        self.in_turn = sorted(self._by_name.items(), key=lambda item: item[1].scores_candidates)

    def __getitem__(self, name: str) -> Retriever:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)
