"""Small file helpers shared by the caches and checkpoints: atomic writes and checksums."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable


def sha256(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``.

    A reader sees the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cache_problem(manifest, files: dict, missing: str) -> tuple[str | None, dict]:
    """Why cached ``files`` cannot be used, checked against the SHA-256 sums in a JSON ``manifest``.

    ``files`` maps each key of ``manifest["sha256"]`` to its path. Returns (reason or None when
    every file is present and intact, the manifest's contents); ``missing`` is the reason given
    when there is no manifest at all.
    """
    manifest = Path(manifest)
    if not manifest.exists():
        return missing, {}
    try:
        meta = json.loads(manifest.read_text())
        sums = meta["sha256"]
    except (ValueError, KeyError):
        return f"manifest {manifest.name} is unreadable", {}
    for key, path in files.items():
        if not Path(path).exists():
            return f"{Path(path).name} is missing", meta
        if sha256(path) != sums.get(key):
            return f"{Path(path).name} does not match its checksum (truncated or altered)", meta
    return None, meta
