"""An advisory lock on a mining run folder, so two runs never write the same ``--out`` at once.

The lock is ``flock`` on ``OUT/.lock`` (which holds the owner's pid for the message): the kernel
drops it when its process ends, however it ends, so a lock left by a killed run is simply taken
over. Forked children (image-decoding workers) share the lock and may outlive a killed run by a few
seconds: while the recorded owner is dead, the lock is waited for instead of refused. Where
``fcntl`` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import PhospheneError

LOCK = ".lock"
ORPHAN_WAIT_SECONDS = 60.0  # how long a lock held only by a dead run's children is waited for


def _alive(pid: str) -> bool:
    """Whether process ``pid`` (as recorded in the lock file) still exists."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _acquire(fd: int, folder: str | os.PathLike) -> None:
    """Take the lock on ``fd``; wait while only a dead owner's children hold it, else refuse."""
    import fcntl

    deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            if _alive(owner) or time.monotonic() > deadline:
                raise RunLockedError(f"{folder} is in use by another mining run (pid {owner}); wait "
                                     "for it to finish, or choose another --out") from None
            time.sleep(0.1)


class RunLockedError(PhospheneError):
    """Another process is mining into the same run folder."""


@contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of ``folder`` for the block; `RunLockedError` if another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(folder) / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, folder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
