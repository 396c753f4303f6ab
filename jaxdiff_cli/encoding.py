"""Arrays as JSON-ready data that reads back to the same bits, and shapes as text.

Non-finite floats are the strings "NaN", "Infinity" and "-Infinity" (RFC 8259 has no tokens for
them); every other number is a JSON number that reads back to the same bits in its dtype. Complex
data is an object of two such arrays, ``{"real": ..., "imag": ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxdiff_cli.safetext import printable

__all__ = ["array_json", "json_number", "printable", "shape_text"]  # printable: safetext's, kept here for older imports


def shape_text(shape: Sequence[int]) -> str:
    """A shape as Python writes a tuple: ``(3,)``, ``(2, 3)``, ``()``."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def json_number(value: float, dtype: np.dtype[Any]) -> float | int | str | bool:
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def array_json(arr: Any) -> dict[str, Any]:
    """``{"shape", "dtype", "data"}``; complex data is ``{"real": ..., "imag": ...}``, each part nested
    in the array's shape and written as its real dtype would be (complex64's parts as float32)."""
    a = np.asarray(arr)
    if a.dtype.kind == "c":
        parts = {name: array_json(part)["data"] for name, part in (("real", a.real), ("imag", a.imag))}
        return {"shape": list(a.shape), "dtype": str(a.dtype), "data": parts}
    if a.dtype == np.float32 or a.dtype == np.float16:
        # str() of a float32 is its shortest round-trip form; as a float64 it still reads back exactly.
        flat = [float(str(v)) for v in a.ravel()]
    else:
        flat = a.ravel().tolist()
    # An object array's tolist() nests plain Python values in the array's shape (0-d included).
    data = np.array([json_number(v, a.dtype) for v in flat], dtype=object).reshape(a.shape).tolist()
    return {"shape": list(a.shape), "dtype": str(a.dtype), "data": data}
