"""Diagnostics of results: non-finite values and where float32 is likely to lose the answer.

Each names the leaf and index it found, so the caller can report it as a warning (or fail on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxdiff_cli.engine.layout import named_leaves
from jaxdiff_cli.engine.sparse import SparseMatrix

F32 = np.finfo(np.float32)
NEAR_OVERFLOW = 1e30  # float32 overflows at 3.4e38; squaring or summing anything this large will
WIDE_RANGE = 1e12  # float32 keeps ~7 digits: an array this wide cannot be summed or compared in it


def first_nonfinite(outputs: Mapping[str, Any]) -> tuple[str, tuple[int, ...], float] | None:
    """The first NaN/Inf in the outputs: (leaf name, index, value), or None."""
    for name, arr in named_leaves(dict(outputs)):
        if isinstance(arr, SparseMatrix):  # its nonzeros, named by (row, column)
            if arr.data is not None and not np.all(np.isfinite(arr.data)):
                k = int(np.argmin(np.isfinite(arr.data)))
                return name, (int(arr.row[k]), int(arr.col[k])), float(arr.data[k])
            continue
        a = np.asarray(arr)
        if a.dtype.kind in "fc":
            # argwhere of a 0-d array has no columns, so a scalar is looked at directly.
            bad = np.argwhere(~np.isfinite(a)) if a.ndim else np.zeros((0 if np.isfinite(a) else 1, 0), int)
            if bad.shape[0]:
                idx = tuple(int(i) for i in bad[0])
                value = complex(a[idx])
                # Of a complex entry, the part that is not finite (the real part when both are not).
                return name, idx, value.real if not np.isfinite(value.real) or a.dtype.kind != "c" else value.imag
    return None


def nonfinite_note(outputs: Mapping[str, Any], value: Any) -> str | None:
    """The first NaN/Inf of the outputs, else of f's value at the primal point, as one sentence.

    A derivative can be finite where f is not (grad of sum(log(x)) at x = -1): it is reported too,
    because a derivative at a point outside f's domain means nothing.
    """
    bad = first_nonfinite(outputs)
    if bad is not None:
        return f"{bad[0]}{list(bad[1]) if bad[1] else ''} is {bad[2]} (the first non-finite entry)"
    if value is None or "value" in outputs:
        return None
    bad = first_nonfinite({"value": value})
    if bad is None:
        return None
    return (
        f"{bad[0]}{list(bad[1]) if bad[1] else ''} is {bad[2]}: the function is not finite at this point,"
        " so its derivatives there are not meaningful"
    )


def precision_warnings(trees: Mapping[str, Any]) -> list[str]:
    """Where float32 is likely to lose the answer: values near overflow, subnormals, huge ranges."""
    notes = []
    for name, arr in named_leaves(dict(trees)):
        a = np.asarray(arr.values() if isinstance(arr, SparseMatrix) else arr)
        if a.dtype != np.float32:
            continue
        mags = np.abs(a[np.isfinite(a) & (a != 0)]).astype(np.float64)
        if not mags.size:
            continue
        hi, lo = float(mags.max()), float(mags.min())
        if hi > NEAR_OVERFLOW:
            notes.append(f"{name} reaches {hi:.3g}, near float32's largest value {float(F32.max):.3g}")
        elif lo < float(F32.tiny):
            notes.append(f"{name} holds subnormal values ({lo:.3g}), where float32 keeps few digits")
        elif hi / lo > WIDE_RANGE:
            notes.append(f"{name} spans {lo:.3g} to {hi:.3g}, wider than float32's ~7 digits can relate")
    return notes


INT32_SQUARE = 46_340  # the largest int32 whose square still fits int32


def integer_warnings(inputs: Mapping[str, Any]) -> list[str]:
    """int32 inputs large enough that a product overflows: whole numbers outside wrt are integers,
    and JAX's int32 arithmetic wraps around without a word (100000 * 100000 = 1410065408)."""
    notes = []
    for name, arr in named_leaves(dict(inputs)):
        a = np.asarray(arr)
        if a.dtype == np.int32 and a.size and int(np.max(np.abs(a.astype(np.int64)))) > INT32_SQUARE:
            big = int(np.max(np.abs(a.astype(np.int64))))
            notes.append(
                f"{name} holds {big} as int32, where products overflow past 2.1e9 without an error"
                f" (write {big}.0 if it is a number rather than an index, or use dtype: float64)"
            )
    return notes
