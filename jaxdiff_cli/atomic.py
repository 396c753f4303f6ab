"""Files written atomically: to a temporary file in the same folder, then renamed over the target.

A run killed mid-write leaves the old file or none, never half of one; the new file keeps the old
file's permissions (or the umask's). Every writer of the project goes through here: results, the
streamed Jacobian, golden values, pictures.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path in the same folder, renamed over ``path`` if the block completes, removed if not.

    For writers that need a file name (a memory-mapped .npy); ``atomic_open`` is the usual form.
    """
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the mode the old file had, else the umask's.
    try:
        perms = path.stat().st_mode & 0o7777
    except OSError:
        perms = 0o666 & ~umask()
    os.chmod(tmp, perms)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file handle whose contents replace ``path`` atomically (fsynced first)."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
