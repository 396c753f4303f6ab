"""What ``-o FILE`` means: its format, from the suffix, decided once and checked before any work.

Stdlib only (layer 0): cli.py makes the Target of a command's ``-o`` before any work, operations.py
reads it (a chunked Jacobian streams into ``.npy``; ``.npy`` and ``.mtx`` hold one array), and
output/ writes it by its kind. Adding a format is a kind here and its writer in output/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jaxdiff_cli.errors import OutputError

Kind = Literal["npz", "npy", "json", "mtx"]
_KINDS: dict[str, Kind] = {".npz": "npz", ".npy": "npy", ".json": "json", ".mtx": "mtx"}

# What each command may write, in the order its error's hint lists them.
ARRAYS: tuple[Kind, ...] = ("npz", "npy", "json")  # every result by name, the main one, the --json document
MATRIX: tuple[Kind, ...] = (*ARRAYS, "mtx")  # a Jacobian or Hessian: also Matrix Market (its nonzeros)
RUN: tuple[Kind, ...] = ("npz", "json")  # jaxdiff run: every case's results, or the document
PATTERN: tuple[Kind, ...] = ("npz", "mtx", "json")  # jaxdiff sparsity: the pattern (scipy, Matrix Market), or the document


@dataclass(frozen=True)
class Target:
    """Where ``-o`` writes, and in which format."""

    path: Path
    kind: Kind

    @classmethod
    def of(cls, path: Path | None, kinds: tuple[Kind, ...] = ARRAYS) -> Target | None:
        """The target of ``-o path`` for a command that writes ``kinds``; refused before any work if it cannot be."""
        if path is None:
            return None
        kind = _KINDS.get(path.suffix.lower())
        if kind is None or kind not in kinds:
            hint = ", ".join(f".{k}" for k in kinds)
            raise OutputError(f"unknown output format {path.suffix or '(none)'!r}", where=f"-o {path}", hint=hint)
        target = cls(path, kind)
        target.check()
        return target

    def check(self) -> None:
        """The folder exists and is writable, and the path is not a folder (before any work, and when writing)."""
        path = self.path
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"folder {folder} does not exist", where=self.where)
        if path.is_dir():
            raise OutputError("is a folder", where=self.where)
        if not os.access(folder, os.W_OK):
            raise OutputError(f"folder {folder} is not writable", where=self.where)

    @property
    def where(self) -> str:
        return f"-o {self.path}"

    @property
    def one_array(self) -> bool:
        """``.npy`` holds the main result as one array; ``.mtx`` one matrix (a dense one's nonzeros)."""
        return self.kind in ("npy", "mtx")
