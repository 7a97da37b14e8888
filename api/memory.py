"""Give freed image memory back to the OS, so peak memory stays a peak and not a plateau.

A decoded 40 MP photo is ~160 MB, which Pillow allocates in 16 MB blocks. glibc serves blocks that
large with ``mmap`` and unmaps them on free, until the first such free: then its dynamic mmap
threshold rises to the block size, and later blocks come from the heap of whichever thread
arena the request ran in and stay there after the request. With inference in a thread pool,
every arena ends up holding a photo's worth of memory (measured: 700 MB instead of 550 MB for 4
concurrent 40 MP requests, and it grows with the number of arenas). Fixing the threshold at 1 MB
keeps large blocks on ``mmap``, so each request's memory is returned when it ends.

A no-op where the C library is not glibc (musl, macOS): the ceiling is then a little higher.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_large_blocks_to_os() -> bool:
    """Set glibc's mmap threshold; returns False when that is not possible here."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not done:
        log.warning("mallopt(M_MMAP_THRESHOLD) failed: freed image memory may stay with the process")
    return done
