"""Keep freed memory in the process heap while a loop runs (glibc), so tensors are not page-faulted in
again at every step.

glibc hands every allocation over 32 MB (and, by default, large ones from 128 kB up) to its own
``mmap`` and unmaps it on free; the next step's tensor of the same size is mapped afresh and each of
its 4 kB pages faults in on first touch. A report's accentuation batch (60 views of 128 px) spent as
much system time in those page faults as user time in the convolutions (docs/benchmarks.md#report).
`heap_kept` turns ``mmap`` allocation off and raises the trim threshold for its duration, so freed
blocks are reused; on exit the defaults come back and the free heap is handed back (`malloc_trim`).
Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters
DEFAULT_TRIM, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEPT_TRIM = 2**31 - 1  # mallopt takes an int: keep up to 2 GB of free heap top

_lock = threading.Lock()
_depth = 0


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        return None
    return libc


def release_memory_to_system() -> None:
    """Hand free heap pages back to the system (glibc's `malloc_trim`; nothing elsewhere)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@contextmanager
def heap_kept() -> Iterator[None]:
    """Allocate from the heap, not ``mmap``, and keep freed memory for reuse while the body runs
    (process-wide; nested uses are fine, the outermost restores glibc's defaults)."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, KEPT_TRIM)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM)
                libc.malloc_trim(0)
