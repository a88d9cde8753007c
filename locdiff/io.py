"""Small file helpers shared by the caches, checkpoints and pretrained folders: atomic writes of
files and folders, checksums, a lock on a run folder, and a clear error for a full disk.

Nothing here deletes what it did not write: temporary names are unique (``mkstemp`` /
``mkdtemp``, hidden, beside the target), and replacing a folder moves every entry that is not one
of the writer's own files into the new folder instead of deleting it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable


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
    except Exception as e:
        if _is_disk_full(e, path.parent):
            raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing {path}; "
                                f"{'the previous file is kept unchanged' if path.exists() else 'nothing was written'}. "
                                "Free some space and try again") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def savez(path, compressed: bool = True, **arrays) -> None:
    """``np.savez(_compressed)`` into ``path`` exactly (no ``.npz`` appended), the file closed
    (flushed) before the caller renames or hashes it; the writer for ``atomic_write``."""
    import numpy as np

    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def cache_problem(manifest, files: dict, missing: str) -> tuple[str | None, dict]:
    """Why cached ``files`` cannot be used, checked against the SHA-256 sums in a JSON ``manifest``.

    ``files`` maps each key of ``manifest["sha256"]`` to its path (a key the manifest lacks, as in a
    manifest written before that file was covered, makes the cache stale). Returns (reason or None when
    every file is present and intact, the manifest's contents); ``missing`` is the reason given
    when there is no manifest at all. A manifest that cannot be read (not valid JSON, not a JSON
    object, no ``sha256`` object, a folder or an unreadable file) is reported as unreadable with an
    empty dict, so callers treat the cache as stale and rebuild it.
    """
    manifest = Path(manifest)
    if not manifest.exists():
        return missing, {}
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError):                  # ValueError: bad JSON or not UTF-8
        meta = None
    sums = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(sums, dict):
        return f"manifest {manifest.name} is unreadable", {}
    for key, path in files.items():
        if key not in sums:
            return f"manifest {manifest.name} holds no checksum for {key} (written by an older version)", meta
        if not Path(path).is_file():
            return f"{Path(path).name} is missing", meta
        try:
            digest = sha256(path)
        except OSError as err:
            return f"{Path(path).name} cannot be read ({err.strerror or err})", meta
        if digest != sums.get(key):
            return f"{Path(path).name} does not match its checksum (truncated or altered)", meta
    return None, meta


# ----------------------------------------------------------------------------- folders
def temp_folder(path) -> Path:
    """A new empty hidden folder beside ``path`` with a unique name (``.<name>.tmp-XXXX``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))


def _old_folders(path: Path) -> list[Path]:
    """Folders set aside by an interrupted ``replace_folder`` (``.<name>.old-*``, or the legacy
    ``<name>.old``), newest first."""
    found = [p for p in path.parent.glob(f".{path.name}.old-*") if p.is_dir()]
    legacy = path.with_name(path.name + ".old")
    if legacy.is_dir():
        found.append(legacy)
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _retire(old: Path, new: Path, ours: Iterable[str]) -> None:
    """Empty the set-aside folder ``old``: entries that are not ``ours`` move into ``new`` (kept, never
    deleted; a name already taken in ``new`` stays in ``old``), ``ours`` are removed; ``old`` is removed
    when empty."""
    ours = set(ours)
    for entry in list(old.iterdir()):
        if entry.name in ours:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        elif not (new / entry.name).exists():
            entry.rename(new / entry.name)
    try:
        old.rmdir()
    except OSError:                       # something of the user's could not move: keep it where it is
        pass


def replace_folder(new, path, ours: Iterable[str]) -> Path:
    """Put the complete folder ``new`` at ``path``, atomically for readers of ``path``.

    If ``path`` exists it is first renamed aside (``.<name>.old-XXXX``); ``new`` is renamed into
    place; then every entry of the old folder that is not in ``ours`` (the writer's own file names)
    is moved into the new folder, and the old folder's own files are removed. A kill at any moment
    leaves either the old or the new folder at ``path``, or the old one aside, which
    ``recover_folder`` puts back; nothing of the user's is deleted.
    """
    new, path = Path(new), Path(path)
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
        old.rmdir()
        path.rename(old)
    new.rename(path)
    if old is not None:
        _retire(old, path, ours)
    for stale in _old_folders(path):      # left by an earlier interrupted replace
        _retire(stale, path, ours)
    return path


def recover_folder(path, is_complete: Callable[[Path], bool]) -> bool:
    """Undo an interrupted ``replace_folder``: when ``path`` is missing but a folder set aside from it
    is complete (``is_complete``), rename that one back. True when something was recovered."""
    path = Path(path)
    if path.exists():
        return False
    for old in _old_folders(path):
        if is_complete(old):
            old.rename(path)
            return True
    return False


# ----------------------------------------------------------------------------- full disks
class DiskFullError(OSError):
    """A write failed because the file system ran out of space (or quota)."""


def _is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc`` (or an exception it chains to) says the disk is full. torch reports a full
    disk as a RuntimeError from its zip writer ("enforce fail at inline_container.cc ... file write
    failed"), safetensors as an I/O error; the free space decides when the text is not conclusive."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(seen)
        if "No space left" in text or "ENOSPC" in text or "Disk quota" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(folder).free < (1 << 20)
    except OSError:
        return False


def write_folder(path, write: Callable[[Path], None], ours: Iterable[str], what: str = "folder") -> Path:
    """Write a folder atomically: ``write(tmp)`` fills a new unique temporary folder beside ``path``,
    which then replaces ``path`` (``replace_folder``). On any failure the temporary folder is removed
    and ``path`` is left as it was; a full disk raises ``DiskFullError`` saying so."""
    path = Path(path)
    tmp = temp_folder(path)
    try:
        write(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, Exception) and _is_disk_full(e, path.parent):
            kept = "the previous one is kept unchanged" if path.exists() else "nothing was written"
            raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing the {what} {path}; "
                                f"{kept}. Free some space and try again") from None
        raise
    return replace_folder(tmp, path, ours)


# ----------------------------------------------------------------------------- locks
class FolderBusyError(ValueError):
    """Another process holds the lock of a run folder."""


class FolderLock:
    """An exclusive lock on a folder (``fcntl.flock`` on ``<folder>/.lock``), held by one process at a
    time and released when it exits, even when killed. The lock file records the holder (pid, host,
    start time), which the refusal names. Use as a context manager. Re-entrant within a process:
    a folder this process already holds is granted again (and released with the outermost)."""

    NAME = ".lock"
    _held: dict = {}                     # resolved folder -> [fd, depth] held by this process

    def __init__(self, folder, what: str = "run folder"):
        self.folder, self.what = Path(folder), what
        self._key: str | None = None

    def holder(self) -> str:
        try:
            info = json.loads((self.folder / self.NAME).read_text())
            return f"process {info['pid']} on {info['host']} (since {info['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self) -> "FolderLock":
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        if key in FolderLock._held:
            FolderLock._held[key][1] += 1
            self._key = key
            return self
        fd = os.open(self.folder / self.NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FolderBusyError(f"the {self.what} {self.folder} is in use by {self.holder()}; wait for it to "
                                  f"finish or use another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        FolderLock._held[key] = [fd, 1]
        self._key = key
        return self

    def release(self) -> None:
        if self._key is None:
            return
        entry = FolderLock._held[self._key]
        entry[1] -= 1
        if entry[1] == 0:
            import fcntl

            del FolderLock._held[self._key]
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])
        self._key = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
