"""Running the real ``qa`` command in subprocesses: builds, and ``qa serve`` on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.bench.http_load import free_port
from tests.conftest import ROOT

QA = [sys.executable, "-m", "service.cli"]


def qa_env(**extra: str) -> dict[str, str]:
    """The test process's environment without QA_* settings, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("QA_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run_qa(*args: str, timeout: float = 600, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """``qa *args`` as a user runs it, in ``cwd``, with the test process's environment less its QA_* settings,
    plus ``env``."""
    return subprocess.run([*QA, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=qa_env(**env))


class QAServe:
    """``qa serve`` as a user starts it; stdout and stderr go to a log file (read with ``log()``)."""

    def __init__(self, index: Path, log_file: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.log_file = log_file
        self._log = log_file.open("wb")
        self.proc = subprocess.Popen(
            [*QA, "serve", "--index", str(index), "--host", "127.0.0.1", "--port", str(self.port), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=qa_env(**env),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> dict:
        """Poll /health until it answers; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qa serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return httpx.get(f"{self.url}/health", timeout=5).json()
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"qa serve did not answer /health within {timeout} s:\n{self.log()}")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status (SIGKILL if it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log(self) -> str:
        self._log.flush()
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def __enter__(self) -> QAServe:
        try:
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_until(condition, timeout: float) -> None:
    """Poll ``condition`` every 50 ms; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def squad_part(source: Path, folder: Path, every: int) -> tuple[Path, int]:
    """Every ``every``-th article of a SQuAD file, written under the file's own name in ``folder``; and its
    question count. Tests that run ``qa eval`` on ../shared/eval take a part: embedding a whole set takes minutes."""
    data = json.loads(source.read_text(encoding="utf-8"))
    data["data"] = data["data"][::every]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / source.name).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return folder / source.name, sum(len(p["qas"]) for article in data["data"] for p in article["paragraphs"])
