"""Crash-safe file writes: a reader (or the next run after a crash) sees the old file or the new one.

Writing in place leaves a truncated file when the process dies half-way, and for the image store
that is worse than a lost write: files are named by their content hash, so a later ingest finds
the name, trusts it and never repairs the half-written photo. Every write that replaces state
(the registry index, model cards, manifests, stored images) therefore goes to a temporary file in
the same folder, is flushed to disk, and is renamed over the target, which POSIX makes atomic.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: some filesystems refuse to open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` all at once; on any error the old content (or absence) stays.

    ``mode`` is set explicitly because ``mkstemp`` creates 0600 files, which a non-root API
    container could not read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path
