"""One search per name at a time: an exclusive fcntl lock on <storage>/.<name>.lock, taken before anything of
the search is written and held until its process ends (the kernel releases it even after SIGKILL).

The lock file lies beside the search's folder, not in it, so that a refused search leaves no folder behind;
it holds the pid of the process that has the lock, for the refusal's message.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from core.errors import ConfigError

_held: dict[str, int] = {}  # lock path -> descriptor, kept open for the life of the process


def lock_path(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def hold_search_lock(folder: str | Path) -> Path:
    """Take the search's lock for the rest of this process, or refuse in one line naming the holder's pid."""
    path = lock_path(folder)
    if str(path) in _held:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by Ray's processes (PEP 446)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise ConfigError(f"search {Path(folder).name} is running now (pid {holder}, lock {path}); wait until "
                          "it ends, or choose another --name") from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    _held[str(path)] = descriptor
    return path


def release_search_lock(folder: str | Path) -> None:
    """Let go of the lock early (tests running two searches in one process)."""
    descriptor = _held.pop(str(lock_path(folder)), None)
    if descriptor is not None:
        os.close(descriptor)
