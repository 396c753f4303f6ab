"""Arrays as JSON-ready data that reads back to the same bits, shapes as text, and documents as JSON bytes.

Non-finite floats are the strings "NaN", "Infinity" and "-Infinity" (RFC 8259 has no tokens for
them); every other number is a JSON number that reads back to the same bits in its dtype. Complex
data is an object of two such arrays, ``{"real": ..., "imag": ...}``.

Output documents are written by orjson (``dumps``), which writes a finite float32, float64, integer or
boolean NumPy array itself, in C: the digits are those ``array_json`` gives (float32 as its shortest
form, float64 as ``repr``; checked value for value in tests/output/test_json_encoding.py), at
~40x the speed of making Python numbers and joining them with the json module.
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


# dtypes whose finite values orjson writes as array_json would (float16 it would widen: not listed).
_NATIVE = frozenset({"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"})


def array_doc(arr: Any) -> dict[str, Any]:
    """``array_json`` for a document that ``dumps`` writes: ``data`` stays a NumPy array where orjson
    writes it exactly as array_json's lists would read, and is array_json's lists everywhere else
    (non-finite values, a 0-d array, float16 and the other dtypes)."""
    a = np.asarray(arr)
    if a.dtype.kind == "c":
        parts = {name: array_doc(part)["data"] for name, part in (("real", a.real), ("imag", a.imag))}
        return {"shape": list(a.shape), "dtype": str(a.dtype), "data": parts}
    if a.ndim and str(a.dtype) in _NATIVE and (a.dtype.kind != "f" or bool(np.isfinite(a).all())):
        return {"shape": list(a.shape), "dtype": str(a.dtype), "data": np.ascontiguousarray(a)}
    return array_json(a)


def dumps(doc: Any, *, indent: bool = False) -> bytes:
    """A document as UTF-8 JSON (one line, or indented by 2), NumPy arrays in it written natively."""
    import orjson

    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(doc, option=option)


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
