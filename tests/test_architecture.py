"""The import contracts of pyproject.toml hold, as `make lint` checks them: the stages of index/ each import only
those below it (build and search never each other), text imports nothing of ours but the typed errors, the core
never imports the service, and only the two cluster modules import Ray."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"]


def test_the_import_contracts_hold():
    pytest.importorskip("importlinter", reason="import-linter is in the dev extra: make install")
    done = subprocess.run([*LINT_IMPORTS, "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_the_contracts_name_every_stage_of_index():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    [layers] = [contract["layers"] for contract in config["contracts"] if contract["type"] == "layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    stages = {f"index.{path.name}" for path in (ROOT / "index").iterdir() if (path / "__init__.py").is_file()}
    stages.add("index.searcher")
    assert named == stages, "a subpackage of index/ is missing from the layers contract, or one named is gone"
