"""Files written atomically: to a temporary file in the same folder, then renamed over the target.

A run killed mid-write leaves the old file or none, never half of one; the new file keeps the old
file's permissions (or the umask's). Every writer of the project goes through here: results, the
streamed Jacobian, golden values, pictures.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from jaxdiff_cli import signals


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path in the same folder, renamed over ``path`` if the block completes, removed if not.

    For writers that need a file name (a memory-mapped .npy); ``atomic_open`` is the usual form.
    """
    folder = path.parent if str(path.parent) else Path(".")
    tmp: str | None = None
    try:
        # A signal between creating the file and noting its name would leave it behind.
        with signals.deferred():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            signals.track(tmp)
        # mkstemp makes the file private (0600); give it the mode the old file had, else the umask's.
        try:
            perms = path.stat().st_mode & 0o7777
        except OSError:
            perms = 0o666 & ~umask()
        os.chmod(tmp, perms)
        _hold_for_tests()
        yield Path(tmp)
        os.replace(tmp, path)
        signals.untrack(tmp)
    except BaseException:  # an error, Ctrl-C (signals.Interrupted) or SIGTERM (signals.Terminated)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            signals.untrack(tmp)
        raise


def _hold_for_tests() -> None:
    """Tests only: JAXDIFF_TEST_HOLD_WRITE=SECONDS waits here, the temporary file in place, so a
    signal the test sends once it sees that file lands mid-write every time (not as it finishes)."""
    seconds = os.environ.get("JAXDIFF_TEST_HOLD_WRITE")
    if seconds:
        time.sleep(float(seconds))


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file handle whose contents replace ``path`` atomically (fsynced first)."""
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data``, atomically, never replacing a file that is there (FileExistsError).

    The data goes to a temporary file first, which is then hard-linked to ``path``: the link fails if
    ``path`` exists, even one created a moment ago by someone else, where a check and a rename would
    replace it. (A file system without hard links falls back to that check and rename.)
    """
    folder = path.parent if str(path.parent) else Path(".")
    tmp: str | None = None
    try:
        with signals.deferred():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links here
            if path.exists():
                raise FileExistsError(str(path)) from None
            os.replace(tmp, path)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
