"""Writing one file so that a reader sees the old content or the new, never a part of either."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def replace_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` the new content into a hidden file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        write(handle)
    os.replace(tmp, path)


def replace_text(path: Path, text: str) -> None:
    """``replace_atomically`` with ``text`` in UTF-8."""
    replace_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
