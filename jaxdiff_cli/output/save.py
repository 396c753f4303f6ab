"""Results -> .npz / .npy / .json (the -o Target's kind), written atomically; and init's new file.

Each file is written to a temporary file in the same folder and renamed over the target, so
a run killed mid-write leaves the old file or none, never half of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxdiff_cli.atomic import atomic_open, write_new
from jaxdiff_cli.encoding import dumps
from jaxdiff_cli.errors import OutputError
from jaxdiff_cli.target import Target

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


def save(target: Target, arrays: Mapping[str, Any], doc: Mapping[str, Any]) -> None:
    """Save named arrays (.npz all, .npy one) or the JSON document (.json)."""
    target.check()
    path = target.path
    try:
        match target.kind:
            case "json":
                with atomic_open(path, "wb") as f:
                    f.write(dumps(doc, indent=True) + b"\n")
            case "npy":
                if len(arrays) != 1:
                    names = ", ".join(arrays)
                    raise OutputError(
                        f".npy holds one array but there are {len(arrays)} ({names})",
                        where=target.where,
                        hint="use .npz for several",
                    )
                with atomic_open(path) as f:
                    np.save(f, np.asarray(next(iter(arrays.values()))), allow_pickle=False)
            case "npz":
                with atomic_open(path) as f:
                    savez: Any = np.savez  # numpy's stub types **kwds as its own options
                    savez(f, **{name: np.asarray(a) for name, a in arrays.items()})
            case _:  # Matrix Market is matrixfile's
                raise OutputError(f"not an array format: .{target.kind}", where=target.where)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", where=target.where) from None
