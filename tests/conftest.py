"""Shared fixtures: the real encoder, small real corpora and indexes, a live HTTP server."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from index.build.builder import build_index
from index.config import DEFAULT_MODEL, Settings
from index.models.encoders import Encoder, load_encoder
from service.app import create_app
from service.bench.http_load import free_port
from service.state import ServiceState

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "corpus" / "oman-iran-us-talks-2026-02-06.fr.txt"
SHARED_EVAL = ROOT.parent / "shared" / "eval"
# The test files that start Ray: the cluster tests (marked ``cluster``) and the bench's, which starts Ray instances
# of its own. Under pytest-xdist they run on one worker, one after another (pytest_xdist_make_scheduler below).
RAY_FILES = ("tests/test_cluster.py", "tests/test_cluster_local_serve.py", "tests/test_cluster_serving.py",
             "tests/test_cluster_shard_down.py", "tests/test_bench.py")  # fmt: skip

EXTRA_DOCS = {
    "weather.en.txt": "The weather in Lyon was sunny all week.\n\nRain is expected on Sunday in the Alps.",
    "notes/cuisine.fr.md": (
        "# Cuisine lyonnaise\n\nLa quenelle est une spécialité de Lyon. Elle se sert avec une sauce Nantua."
    ),
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> object:
    """`make test` runs the suite on two pytest-xdist workers: each test file goes to one worker whole (its module
    fixtures are built once), and every file of RAY_FILES to the same worker, so that the session's Ray cluster
    starts once and no two Ray instances share the machine. Files go out in collection order, not by test count,
    so that Ray's, the longest unit, starts early (test_bench.py is the fourth file)."""
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    class ByFileRayTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "ray" if path in RAY_FILES else path

        def add_node_collection(self, node, collection) -> None:
            # Schemathesis' items share one node id under pytest 9 (the five operations of
            # test_reliability_api.py), and this scheduler keys tests by node id: numbered, each runs.
            seen: dict[str, int] = {}
            unique = []
            for nodeid in collection:
                seen[nodeid] = seen.get(nodeid, 0) + 1
                unique.append(nodeid if seen[nodeid] == 1 else f"{nodeid} ({seen[nodeid]})")
            super().add_node_collection(node, unique)

    return ByFileRayTogether(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``cluster`` outside RAY_FILES would start a second Ray cluster on the other worker."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        if item.get_closest_marker("cluster") and path not in RAY_FILES:
            raise pytest.UsageError(f"{item.nodeid} is marked cluster: add its file to RAY_FILES in tests/conftest.py")


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return load_encoder(DEFAULT_MODEL)


def make_corpus(folder: Path) -> Path:
    """The seed article plus two short documents, one in a subfolder."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED, folder / SEED.name)
    for rel, text in EXTRA_DOCS.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def make_settings(tmp: Path, **overrides) -> Settings:
    return Settings(corpus_dir=tmp / "corpus", index_dir=tmp / "var" / "index", **overrides)


@pytest.fixture(scope="session")
def built(tmp_path_factory, encoder) -> Settings:
    """A real index over the small corpus, built once for the session; treat as read-only."""
    tmp = tmp_path_factory.mktemp("built")
    make_corpus(tmp / "corpus")
    settings = make_settings(tmp, api_token="s3cret-token")
    build_index(settings, encoder, show_progress=False)
    return settings


class LiveServer:
    """uvicorn serving an app on a loopback port, in a thread."""

    def __init__(self, settings: Settings, encoder: Encoder) -> None:
        self.port = free_port()
        self.state = ServiceState(settings, encoder)
        app = create_app(settings, self.state)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def server(built, encoder) -> Iterator[LiveServer]:
    with LiveServer(built, encoder) as live:
        yield live


@pytest.fixture()
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A two-node Ray cluster on 127.0.0.1 (tests/ray_cluster.py), shared by every cluster test of the session.

    Skips outside a private network namespace: `make test` runs the suite inside one.
    """
    pytest.importorskip("ray", reason="the cluster tests need Ray: make install")
    from tests.ray_cluster import RayCluster, private_namespace_problem

    problem = private_namespace_problem()
    if problem:
        pytest.skip(problem)
    cluster = RayCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()
