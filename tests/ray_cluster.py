"""A real two-node Ray cluster on 127.0.0.1 for the tests, inside a private network namespace.

The session starts it once (see the ``ray_cluster`` fixture in conftest.py) and every cluster test
shares it: a head and a second node, each its own ``ray start --block`` process group with its own
temp dir, one CPU and a small object store each, no dashboard, no usage stats, token authentication
on with a token file of the session's. Teardown stops the two process groups by id.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from service.bench.cluster import network_interfaces
from service.bench.http_load import free_port

OBJECT_STORE_BYTES = 150 * 2**20


def private_namespace_problem() -> str | None:
    """Why a Ray cluster must not start here, or None when this is a namespace with loopback only."""
    interfaces = network_interfaces()
    if interfaces != {"lo"}:
        return (
            f"Ray cluster tests need a private network namespace with loopback only (found {sorted(interfaces)}): "
            "run `make test`, or `tests/netns-run .venv/bin/python -m pytest ...` as root"
        )
    return None


class RayCluster:
    """Head plus one node on 127.0.0.1; ``address`` is the head's GCS host:port."""

    def __init__(self, cpus_per_node: int = 1) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp"))  # short: Ray's socket paths are bounded
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus_per_node = cpus_per_node
        token = self.root / "auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0"}
        self._saved_env = {key: os.environ.get(key) for key in self.env}
        self.nodes: list[subprocess.Popen] = []

    def start(self, timeout: float = 120) -> RayCluster:
        os.environ.update(self.env)  # drivers (tests, `qa build` subprocesses) need the token too
        _reload_ray_auth()
        self.nodes.append(self._node(["--head", f"--port={self.port}", "--include-dashboard=false"], "head"))
        self._wait_for(1, timeout)
        self.nodes.append(self._node([f"--address={self.address}"], "node2"))
        self._wait_for(2, timeout)
        return self

    def _node(self, args: list[str], name: str) -> subprocess.Popen:
        ray = str(Path(sys.executable).with_name("ray"))
        command = [ray, "start", *args, "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus_per_node}",
                   f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
                   f"--temp-dir={self.root / name}", f"--dashboard-agent-listen-port={free_port()}"]  # fmt: skip
        log = (self.root / f"{name}.log").open("wb")
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ)

    def _wait_for(self, nodes: int, timeout: float) -> None:
        """Until ``ray status`` counts ``nodes`` active nodes."""
        ray = str(Path(sys.executable).with_name("ray"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.nodes:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Ray node exited with {proc.returncode}:\n{self.logs()}")
            done = subprocess.run([ray, "status", f"--address={self.address}"], capture_output=True, text=True)
            if done.returncode == 0 and _active_nodes(done.stdout) >= nodes:
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not reach {nodes} nodes in {timeout} s:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        """Stop each node's process group (the node and every Ray process it started), by id."""
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            for proc in self.nodes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + wait
            for proc in self.nodes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(max(0.1, deadline - time.monotonic()))
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reload_ray_auth()
        shutil.rmtree(self.root, ignore_errors=True)


def _reload_ray_auth() -> None:
    """Make Ray, if this process imported it already, read the authentication settings from the environment again.

    Ray reads them once, when imported; a user sets them before starting `qa build --cluster`, but this
    session sets them after pytest has imported the test modules.
    """
    if "ray" not in sys.modules:
        return
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _active_nodes(status: str) -> int:
    """Active nodes in ``ray status`` output: the lines under "Active:" up to "Pending:"."""
    lines = status.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Active:") + 1
    except StopIteration:
        return 0
    count = 0
    for line in lines[start:]:
        if not line.strip() or line.strip().endswith(":"):
            break
        count += 1
    return count
