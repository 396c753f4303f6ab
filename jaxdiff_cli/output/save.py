"""Results -> .npz / .npy / .json, written atomically.

Each file is written to a temporary file in the same folder and renamed over the target, so
a run killed mid-write leaves the old file or none, never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxdiff_cli.atomic import atomic_open, write_new
from jaxdiff_cli.encoding import dumps
from jaxdiff_cli.errors import OutputError

FORMATS = (".npz", ".npy", ".json")


def check_output_path(path: Path, formats: tuple[str, ...] = FORMATS) -> None:
    """Fail before any work if the output cannot be written (checked again when writing)."""
    if path.suffix.lower() not in formats:
        raise OutputError(f"unknown output format {path.suffix or '(none)'!r}", where=f"-o {path}", hint=", ".join(formats))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", where=f"-o {path}")
    if path.is_dir():
        raise OutputError("is a folder", where=f"-o {path}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"folder {folder} is not writable", where=f"-o {path}")


_NEVER_OVER = "exists: jaxdiff init never overwrites a file"


def check_new_file(path: Path) -> None:
    """Fail before any work if ``path`` exists or its folder does not (``init -o``)."""
    if path.exists():
        raise OutputError(_NEVER_OVER, where=f"-o {path}", hint="remove it or pick another name")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", where=f"-o {path}")


def write_new_file(path: Path, text: str) -> None:
    """``text`` as a new file, never over one that appeared meanwhile."""
    try:
        write_new(path, text.encode("utf-8"))
    except FileExistsError:
        raise OutputError(_NEVER_OVER, where=f"-o {path}") from None
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"-o {path}") from None


def save(path: Path, arrays: Mapping[str, Any], doc: Mapping[str, Any]) -> None:
    """Save named arrays (.npz all, .npy one) or the JSON document (.json)."""
    check_output_path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            with atomic_open(path, "wb") as f:
                f.write(dumps(doc, indent=True) + b"\n")
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
