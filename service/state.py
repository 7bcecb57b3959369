"""The live searcher of a running server, swapped atomically on rebuild."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from pathlib import Path

from index.build.builder import BuildReport, build_index, build_settings
from index.config import Settings
from index.errors import BuildInProgressError, IndexMissingError, QAError
from index.models.encoders import Encoder, load_encoder
from index.searcher import Searcher
from index.storage.manifest import check_compatible
from index.storage.store import IndexData, read_shards, resolve_live

log = logging.getLogger(__name__)

RELOAD_CHECK_SECONDS = 1.0  # how often a request looks whether the live symlink moved


class ServiceState:
    """Holds the encoder (loaded once) and the current searcher.

    A request reads ``current()`` once and uses that object to the end, so it
    is answered wholly by the old index or wholly by the new one. A build made
    elsewhere (``qa build``, or another worker's rebuild) is noticed when the
    live symlink moves, loaded in the background and swapped in.
    """

    def __init__(self, settings: Settings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self._encoder = encoder
        self.searcher: Searcher | None = None
        self._rebuild_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._next_check = 0.0
        self._unloadable: str | None = None  # a live build that failed to load; not retried

    def current(self) -> Searcher | None:
        """The searcher to answer with; starts a reload when a newer build went live."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + RELOAD_CHECK_SECONDS
            if self._live_folder_moved() and self._reload_lock.acquire(blocking=False):
                threading.Thread(target=self._reload, name="index-reload", daemon=True).start()
        return self.searcher

    def _live_folder_moved(self) -> bool:
        live = os.path.realpath(self.settings.index_dir)
        if not os.path.isdir(live):
            return False
        loaded = self.searcher.folder if self.searcher else None
        moved = loaded is None or os.path.realpath(loaded) != live
        return moved and live != self._unloadable

    def _reload(self) -> None:
        try:
            self.searcher = self._load_searcher(resolve_live(self.settings.index_dir))
            log.info("loaded the new index build %s", self.searcher.folder)
        except QAError as exc:  # keep answering with the index we have
            self._unloadable = os.path.realpath(self.settings.index_dir)
            log.error("new index build not loaded: %s", exc)
        finally:
            self._reload_lock.release()

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = load_encoder(self.settings.model, self.settings.e5_engine)
        return self._encoder

    def load(self, missing_ok: bool = True) -> None:
        """Load the live index; a missing one leaves the service answering 503."""
        try:
            folder = resolve_live(self.settings.index_dir)
        except IndexMissingError:
            if not missing_ok:
                raise
            log.warning("no index at %s yet: run `qa build`", self.settings.index_dir)
            return
        self.searcher = self._load_searcher(folder)

    def _load_searcher(self, folder: Path) -> Searcher:
        """A searcher over the build at ``folder`` (``service.cluster`` deploys its shards instead)."""
        return self._searcher(read_shards(folder))

    def _searcher(self, parts: list[IndexData]) -> Searcher:
        """A searcher over a loaded build: its shards searched in this process."""
        head = parts[0]
        check_compatible(head.manifest.settings, build_settings(self.settings, self.encoder), head.folder)
        searcher = Searcher.of_shards(parts, self.encoder, self.settings.search)
        # One throwaway query fills lazy caches (stemmers, stopword votes, BLAS
        # threads) so the first user request is not the slow one.
        searcher.search("warm-up question", 1)
        _freeze_heap()
        return searcher

    def rebuild(self) -> BuildReport:
        """Build from the corpus and swap the new index in; queries keep being served meanwhile."""
        if not self._rebuild_lock.acquire(blocking=False):
            raise BuildInProgressError("a rebuild is already running: wait for it to finish")
        try:
            report = build_index(self.settings, self.encoder, show_progress=False)
            self.searcher = self._load_searcher(report.folder)
            return report
        finally:
            self._rebuild_lock.release()


def _freeze_heap() -> None:
    """Move everything allocated so far (the loaded index) out of the garbage collector's sight.

    A full collection over a loaded index takes tens of milliseconds and lands on
    whichever request triggers it; frozen objects are not scanned again. They are
    still freed by reference counting when an old index is dropped.
    """
    gc.collect()
    gc.freeze()
