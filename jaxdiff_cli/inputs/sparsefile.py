"""A sparse matrix in scipy's ``.npz`` form (``scipy.sparse.save_npz``), read with NumPy alone.

jaxdiff writes one for ``-o J.npz`` of a sparse result and for ``check --update`` of a sparse
spec; ``expect:`` reads it back as the expected Jacobian or Hessian. The file holds ``format``
(``b'coo'``, ``b'csr'`` or ``b'csc'`` here), ``shape`` and ``data``, and the indices of its format:
``row`` and ``col`` (or ``coords``) for COO, ``indices`` and ``indptr`` for CSR and CSC. Entries
come back as COO, row-major sorted, duplicates summed (as scipy sums them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from jaxdiff_cli.encoding import shape_text
from jaxdiff_cli.errors import SpecError

FORMATS = ("coo", "csr", "csc")


@dataclass(frozen=True)
class SparseValue:
    """An expected sparse matrix: ``data[k]`` at ``(row[k], col[k])``, row-major sorted, unique."""

    shape: tuple[int, int]
    row: np.ndarray
    col: np.ndarray
    data: np.ndarray  # float64, or complex128 for complex data

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, self.data.dtype)
        out[self.row, self.col] = self.data
        return out


def is_sparse(arrays: Mapping[str, np.ndarray]) -> bool:
    """Whether an .npz's members are scipy's sparse form (its ``format`` member is text, not numbers)."""
    fmt = arrays.get("format")
    return fmt is not None and "shape" in arrays and "data" in arrays and np.asarray(fmt).dtype.kind in "SU"


def from_arrays(arrays: Mapping[str, np.ndarray], name: str, where: str) -> SparseValue:
    """The matrix of a scipy-form .npz's members; a malformed one is a spec error at ``where``."""

    def bad(message: str, hint: str | None = None) -> SpecError:
        return SpecError(f"{name}: {message}", where=where, hint=hint)

    fmt_arr = np.asarray(arrays["format"])
    if fmt_arr.size != 1:  # scipy writes one word (b'coo'); .item() of anything else would raise
        raise bad(f"its format member has shape {shape_text(fmt_arr.shape)}, not one word such as b'coo'")
    raw = fmt_arr.item()
    fmt = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    if fmt not in FORMATS:
        raise bad(
            f"a scipy sparse matrix in {fmt!a} format; jaxdiff reads {', '.join(FORMATS)}",
            hint="scipy.sparse.save_npz(f, scipy.sparse.load_npz(f).tocoo())",
        )
    shape_arr = np.asarray(arrays["shape"])
    if shape_arr.shape != (2,) or shape_arr.dtype.kind not in "iu" or (shape_arr < 0).any():
        raise bad(f"its shape {shape_arr.tolist()} is not the shape of a matrix")
    m, n = (int(k) for k in shape_arr)
    if m * n >= 2**62:  # entries are keyed row * n + col in int64
        raise bad(f"its shape {m}x{n} is larger than any Jacobian jaxdiff computes")
    data = np.asarray(arrays["data"])
    if data.ndim != 1 or data.dtype.kind not in "biufc":
        raise bad(f"its data are {data.dtype} {shape_text(data.shape)}, not a vector of numbers")
    row, col = _coordinates(fmt, arrays, m, n, data.size, bad)
    if row.size and (row.min() < 0 or row.max() >= m or col.min() < 0 or col.max() >= n):
        raise bad(f"an entry lies outside its {m}x{n} shape")
    data = data.astype(np.complex128 if data.dtype.kind == "c" else np.float64)
    key = row * max(n, 1) + col
    unique, first = np.unique(key, return_inverse=True)
    summed = np.zeros(unique.size, data.dtype)
    np.add.at(summed, first, data)
    return SparseValue((m, n), unique // max(n, 1), unique % max(n, 1), summed)


def _coordinates(
    fmt: str, arrays: Mapping[str, np.ndarray], m: int, n: int, nnz: int, bad: Callable[..., SpecError]
) -> tuple[np.ndarray, np.ndarray]:
    """Each entry's row and column, from the index arrays of ``fmt``."""

    def ints(key: str) -> np.ndarray:
        if key not in arrays:
            raise bad(f"a {fmt} matrix without its {key!r} array")
        a = np.asarray(arrays[key])
        if a.dtype.kind not in "iu":
            raise bad(f"its {key!r} array holds {a.dtype} values, not indices")
        return a.astype(np.int64)

    if fmt == "coo":
        if "coords" in arrays and "row" not in arrays:
            coords = ints("coords")
            if coords.ndim != 2 or coords.shape[0] != 2:
                raise bad(f"its coords have shape {shape_text(coords.shape)}, not (2, nnz)")
            row, col = coords[0], coords[1]
        else:
            row, col = ints("row"), ints("col")
        if row.shape != (nnz,) or col.shape != (nnz,):
            raise bad(f"{nnz} values but {row.size} rows and {col.size} columns")
        return row, col
    major = m if fmt == "csr" else n
    indptr, indices = ints("indptr"), ints("indices")
    if (
        indptr.shape != (major + 1,)
        or indices.shape != (nnz,)
        or indptr[0] != 0
        or indptr[-1] != nnz
        or (np.diff(indptr) < 0).any()
    ):
        raise bad(f"its indptr and indices do not describe {nnz} entries of a {m}x{n} {fmt} matrix")
    outer = np.repeat(np.arange(major, dtype=np.int64), np.diff(indptr))
    return (outer, indices) if fmt == "csr" else (indices, outer)
