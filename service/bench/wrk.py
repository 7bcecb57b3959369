"""Load with ``wrk`` (Debian's package), when it is installed: a C load generator.

The Python generator in ``http_load`` spends a core of its own parsing
responses on this 2-core machine, which the server then lacks; wrk costs far
less. A Lua script rotates through the questions and prints one JSON line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_SCRIPT = """
local bodies = { %(bodies)s }
local counter = %(offset)d
request = function()
  counter = counter + 1
  return wrk.format("POST", "/ask", {["Content-Type"] = "application/json"}, bodies[(counter %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %%d, "duration_us": %%d, "socket_errors": %%d, "non_2xx": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def drive_wrk(url: str, questions: list[str], clients: int, seconds: float, probe=None) -> dict:
    """``clients`` connections on 2 threads for ``seconds``; the same figures as the Python generator.

    ``probe``, when given, is called once mid-run; what it returns is kept under ``probe``.
    """
    bodies = ", ".join(_lua_string(json.dumps({"question": q, "k": 5}, ensure_ascii=False)) for q in questions)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False, encoding="utf-8") as script:
        script.write(_SCRIPT % {"bodies": bodies, "offset": 0})
    try:
        duration = f"{max(1, round(seconds))}s"
        args = ["wrk", "-t2", f"-c{clients}", f"-d{duration}", "--timeout", "10s", "-s", script.name, url]
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as wrk:
            seen = None
            if probe is not None:
                time.sleep(seconds / 2)
                seen = probe()
            out, err = wrk.communicate(timeout=seconds + 60)
        if wrk.returncode:
            raise RuntimeError(f"wrk failed with status {wrk.returncode}: {err.strip()[-500:]}")
    finally:
        Path(script.name).unlink(missing_ok=True)
    figures = json.loads(out.strip().splitlines()[-1])
    wall = figures["duration_us"] / 1e6
    errors = figures["socket_errors"] + figures["non_2xx"]
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": figures["requests"],
        "errors": errors,
        "requests_per_s": round((figures["requests"] - errors) / wall, 1),
        "p50_ms": round(figures["p50_us"] / 1000, 1),
        "p99_ms": round(figures["p99_us"] / 1000, 1),
        "load_generator": "wrk",
        **({"probe": seen} if seen is not None else {}),
    }
