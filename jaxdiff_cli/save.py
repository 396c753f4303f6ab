"""Results -> .npz / .npy / .json, written atomically.

Each file is written to a temporary file in the same folder and renamed over the target, so
a run killed mid-write leaves the old file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from jaxdiff_cli import signals
from jaxdiff_cli.errors import OutputError

FORMATS = (".npz", ".npy", ".json")


def check_output_path(path: Path) -> None:
    """Fail before any work if the output cannot be written (checked again when writing)."""
    if path.suffix.lower() not in FORMATS:
        raise OutputError(f"unknown output format {path.suffix or '(none)'!r}", where=f"-o {path}", hint=", ".join(FORMATS))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", where=f"-o {path}")
    if path.is_dir():
        raise OutputError("is a folder", where=f"-o {path}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"folder {folder} is not writable", where=f"-o {path}")


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
        # mkstemp makes the file private (0600); give it the mode the old file had, else the umask's.
        try:
            perms = path.stat().st_mode & 0o7777
        except OSError:
            perms = 0o666 & ~umask()
        os.chmod(tmp, perms)
        _hold_for_tests()
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:  # an error, Ctrl-C (signals.Interrupted) or SIGTERM (signals.Terminated)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
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


def umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def save(path: Path, arrays: Mapping[str, Any], doc: Mapping[str, Any]) -> None:
    """Save named arrays (.npz all, .npy one) or the JSON document (.json)."""
    check_output_path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            with atomic_open(path, "w") as f:
                json.dump(doc, f, indent=2, allow_nan=False)
                f.write("\n")
        elif suffix == ".npy":
            if len(arrays) != 1:
                names = ", ".join(arrays)
                raise OutputError(
                    f".npy holds one array but there are {len(arrays)} ({names})",
                    where=f"-o {path}",
                    hint="use .npz for several",
                )
            with atomic_open(path) as f:
                np.save(f, np.asarray(next(iter(arrays.values()))), allow_pickle=False)
        else:
            with atomic_open(path) as f:
                savez: Any = np.savez  # numpy's stub types **kwds as its own options
                savez(f, **{name: np.asarray(a) for name, a in arrays.items()})
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"-o {path}") from None
