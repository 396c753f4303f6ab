"""The printed JSON (orjson writing NumPy arrays itself) reads back to exactly what array_json's lists hold.

array_json is the reference: every number a JSON number that reads back to the same bits in its dtype
(float32 as its shortest form). The fast path must give the same values, bit for bit, -0.0 included,
over random bit patterns (subnormals, extremes), and fall back to array_json where it cannot.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.encoding import array_doc, array_json, dumps

RNG = np.random.default_rng(20261204)


def _random_bits(dtype: Any, n: int) -> np.ndarray:
    width = np.dtype(dtype).itemsize * 8
    raw = RNG.integers(0, 2**width - 1, size=n, dtype=np.uint64, endpoint=True).astype(f"uint{width}")
    out = raw.view(dtype)
    return out[np.isfinite(out)]


def _same(a: Any, b: Any) -> bool:
    """Equal values, signs of zeros included, in the same nesting."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) or math.isnan(b)):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


def _printed(arr: Any) -> Any:
    return json.loads(dumps({"x": array_doc(arr)}))["x"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_bit_patterns_read_back_as_array_json_gives_them(dtype: str) -> None:
    extremes = [
        0.0,
        -0.0,
        0.1,
        1 / 3,
        np.finfo(dtype).tiny,
        np.finfo(dtype).max,
        -np.finfo(dtype).max,
        np.finfo(dtype).smallest_subnormal,
    ]
    a = np.concatenate([_random_bits(dtype, 20000), RNG.standard_normal(5000).astype(dtype), np.array(extremes, dtype)])
    assert isinstance(array_doc(a)["data"], np.ndarray)  # the fast path, not the lists
    assert _same(_printed(a), json.loads(json.dumps(array_json(a))))


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "uint64", "bool"])
def test_integers_and_booleans(dtype: str) -> None:
    a = np.array([0, 1, 2, 127], dtype=dtype) if dtype != "bool" else np.array([True, False])
    if dtype in ("int64", "uint64"):
        a = np.array([np.iinfo(dtype).min, np.iinfo(dtype).max, 0], dtype=dtype)
    assert _same(_printed(a.reshape(-1, 1)), json.loads(json.dumps(array_json(a.reshape(-1, 1)))))


@pytest.mark.parametrize(
    "arr",
    [
        np.array([1.0, np.nan, -np.inf, np.inf], np.float32),  # non-finite: strings, by array_json
        np.array(2.5, np.float32),  # 0-d: a number, not a list
        np.array([0.1, 1e-5], np.float16),  # orjson would widen float16
        np.arange(12.0).reshape(3, 4)[:, ::2],  # not contiguous
        np.array([[1 + 2j, -0.0 - 1e-30j]], np.complex64),
        np.zeros((0, 3), np.float32),
    ],
    ids=["nonfinite", "0d", "float16", "strided", "complex64", "empty"],
)
def test_every_other_array_reads_back_as_array_json_gives_it(arr: np.ndarray) -> None:
    assert _same(_printed(arr), json.loads(json.dumps(array_json(arr))))


def test_indented_document_is_the_same_document() -> None:
    doc = {"a": array_doc(np.arange(3.0)), "b": "λ", "c": {"n": 1, "f": 0.5}, 3: "key"}
    assert (
        json.loads(dumps(doc, indent=True))
        == json.loads(dumps(doc))
        == {
            "a": {"shape": [3], "dtype": "float64", "data": [0.0, 1.0, 2.0]},
            "b": "λ",
            "c": {"n": 1, "f": 0.5},
            "3": "key",
        }
    )
    assert dumps(doc, indent=True).startswith(b'{\n  "a": {\n    "shape": [\n')
