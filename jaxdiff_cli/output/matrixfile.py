"""A Jacobian or Hessian as a matrix file: scipy's sparse ``.npz``, Matrix Market ``.mtx``, written atomically.

- ``.npz`` of a sparse result is what ``scipy.sparse.load_npz`` reads: a COO matrix whose entries
  are the pattern's (structural zeros included, row-major sorted), in the result's dtype.
- ``.mtx`` is Matrix Market coordinate format (``real general``; ``pattern general`` for a pattern
  without values), each float written in the fewest digits that read back to the same bits. A dense
  result (computed without ``--sparse``) is written as its nonzero entries.

The other formats (``.json``, ``.npy``, the ``.npz`` of a dense result) are ``save.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxdiff_cli.atomic import atomic_open
from jaxdiff_cli.engine.sparse import SparseMatrix
from jaxdiff_cli.errors import OutputError

FORMATS = (".npz", ".mtx")


def _coo(row: np.ndarray, col: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> Any:
    from scipy.sparse import coo_matrix

    return coo_matrix((data, (row, col)), shape=shape)


def save_matrix(path: Path, sm: SparseMatrix, *, title: str = "") -> None:
    """A sparse result (or pattern) as ``.npz`` (scipy) or ``.mtx`` (Matrix Market)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise OutputError(f"unknown sparse format {suffix or '(none)'!r}", where=f"-o {path}", hint=", ".join(FORMATS))
    matrix = _coo(sm.row, sm.col, sm.values(), sm.shape)
    _write(path, matrix, _comment(title, sm.rows, sm.cols), pattern=sm.data is None)


def save_dense_matrix(
    path: Path, dense: np.ndarray, rows: list[tuple[str, int]], cols: list[tuple[str, int]], *, title: str = ""
) -> None:
    """A dense Jacobian or Hessian (its flat form) as ``.mtx``: its nonzero entries, its blocks named as a
    sparse result's are."""
    shape = (sum(size for _, size in rows), sum(size for _, size in cols))
    flat = np.asarray(dense).reshape(shape)
    row, col = np.nonzero(flat)
    _write(path, _coo(row, col, flat[row, col], shape), _comment(title, rows, cols), pattern=False)


def _comment(title: str, rows: list[tuple[str, int]], cols: list[tuple[str, int]]) -> str:
    return f"{title}; rows: {_blocks(rows)}; columns: {_blocks(cols)}"


def _blocks(blocks: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} [{size}]" for name, size in blocks)


def _write(path: Path, matrix: Any, comment: str, *, pattern: bool) -> None:
    from scipy.io import mmwrite
    from scipy.sparse import save_npz

    try:
        with atomic_open(path) as f:
            if path.suffix.lower() == ".npz":
                # Uncompressed: a million nonzeros are written in milliseconds instead of seconds.
                save_npz(f, matrix, compressed=False)
            else:
                # "general": never scanned for symmetry, so every entry is written as computed.
                mmwrite(f, matrix, comment=" ".join(comment.split()), field="pattern" if pattern else None, symmetry="general")
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"-o {path}") from None
