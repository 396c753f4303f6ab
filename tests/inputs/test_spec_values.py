"""The spec loader and the value constructors, called directly."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from jaxdiff_cli.errors import SpecError
from jaxdiff_cli.inputs.spec import Overrides, build_spec
from jaxdiff_cli.inputs.values import Context, build_like, build_value
from jaxdiff_cli.inputs.yamlfile import parse_yaml


def ctx(tmp_path: Path, dtype: str = "float32") -> Context:
    return Context(dtype, tmp_path, "s.yaml")


def spec(data: dict, **ov: object):  # type: ignore[no-untyped-def]
    return build_spec(data, "s.yaml", Path("."), Overrides(**ov))  # type: ignore[arg-type]


def test_yaml12_floats_and_overflow() -> None:
    assert parse_yaml("a: 1e-5", "s") == {"a": 1e-5}
    assert parse_yaml("a: .inf", "s") == {"a": math.inf}
    with pytest.raises(SpecError, match="1e400 overflows float64"):
        parse_yaml("a: 1e400", "s")
    with pytest.raises(SpecError, match="duplicate key 'a'"):
        parse_yaml("a: 1\na: 2", "s")
    with pytest.raises(SpecError, match="line 1, column 5: a list cannot be a key"):  # found by fuzzing
        parse_yaml("a: {[1]: 2}", "s")
    with pytest.raises(SpecError, match="not allowed in a spec"):
        parse_yaml("a: !!python/object/apply:os.system ['true']", "s")


def test_spec_defaults_wrt_and_argnums() -> None:
    # wrt and argnums are resolved against the function's parameters when it is loaded
    s = spec({"function": "x", "primals": {"x": 1.0, "w": 2.0}})
    assert s.wrt == () and s.argnums is None and s.dtype == "float32" and s.device == "auto"
    s = spec({"function": "x", "primals": {"x": 1.0, "w": 2.0}, "argnums": [1, 0]})
    assert s.wrt == () and s.argnums == (1, 0)
    assert spec({"function": "x", "primals": {"x": 1.0, "w": 2.0}}, wrt=("w",)).wrt == ("w",)
    s = spec({}, function="x*w", primals=("x=[1, 2]", "w=3"), tangents=("x=[1,0]",), dtype="float64")
    assert s.primals == {"x": [1, 2], "w": 3} and s.tangents == {"x": [1, 0]} and s.dtype == "float64"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"function": "x", "primals": {"x": 1}, "tangent": 1}, "unknown key 'tangent' (did you mean 'tangents'?)"),
        ({"primals": {"x": 1}}, "no function"),
        ({"function": "x"}, "primals: no primals"),
        ({"function": "x", "primals": [1, 2]}, "primals: must be a mapping"),
        ({"function": "x", "primals": {"x": 1}, "wrt": ["y"]}, "wrt: 'y' is not a primal"),
        ({"function": "x", "primals": {"x": 1}, "argnums": [0, 0]}, "argnums: names an argument twice"),
        ({"function": "x", "primals": {"x": 1}, "dtype": "float16"}, "dtype: unknown dtype 'float16'"),
        ({"function": "x", "primals": {"x": 1}, "device": "npu"}, "device: unknown device"),
        ({"function": "x", "primals": {"x": 1}, "wrt": ["x"], "argnums": [0]}, "give 'wrt' or 'argnums', not both"),
        ({"function": 3, "primals": {"x": 1}}, "function: must be a string"),
        ({"function": "x", "primals": {"x": 1}, "chunk_size": 0}, "chunk_size: 0 is not a positive whole number or auto"),
    ],
)
def test_spec_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        spec(data)
    assert str(info.value).startswith("s.yaml")
    assert message in str(info.value)


def test_lists_scalars_and_nonfinite_strings(tmp_path: Path) -> None:
    c = ctx(tmp_path)
    a = build_value([[1, 2], [3, 4.5]], c, "primals.x")
    assert a.dtype == np.float32 and a.shape == (2, 2)
    assert build_value(3, c, "p").shape == ()
    nf = build_value(["nan", "inf", "-inf", 1e-5], c, "p")
    assert np.isnan(nf[0]) and nf[1] == np.inf and nf[2] == -np.inf
    assert build_value([True, False], c, "p").dtype == bool
    tree = build_value({"W": [[1.0]], "layers": [{"b": [1.0]}, {"b": [2.0]}]}, c, "p")
    assert tree["layers"][1]["b"][0] == 2.0
    assert build_value([1.0], ctx(tmp_path, "float64"), "p").dtype == np.float64


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([[1, 2], [3]], "primals.x[1]: ragged nested list"),
        ([1, "abc"], "primals.x[1]: 'abc' is not a number"),
        ([1e39], "primals.x[0]: 1e+39 overflows float32 (set dtype: float64)"),
        ([1, None], "primals.x[1]: missing value"),
        ([True, 2.0], "mixes true/false with numbers"),
        ({"random": "normal"}, "needs a shape"),
        ({"random": "gauss", "shape": [2]}, "primals.x.random: unknown distribution"),
        (
            {"random": "normal", "shape": [2], "sed": 1},
            "primals.x.sed: unknown option 'sed' for the 'random' constructor (did you mean 'seed'?)",
        ),
        ({"zeros": [2], "ones": [2]}, "one constructor"),
        ({"zeros": [-1]}, "a shape is a list of whole numbers"),
        ({"eye": [1, 2, 3]}, "eye takes n or [n, m]"),
        ({"linspace": [0, 1]}, "expected [start, stop, num]"),
        ({"arange": [0, 1, 0]}, "step must not be 0"),
        ({"file": "missing.npy"}, "primals.x.file: no such file"),
        ({"file": "data.txt"}, "unknown file type"),
        ({"random": "normal", "shape": [2], "split": [[2, 5]]}, "expected [num, index]"),
        ({"zeros": [10**6, 10**6]}, "more than"),
    ],
)
def test_value_errors(tmp_path: Path, raw: object, message: str) -> None:
    (tmp_path / "data.txt").write_text("1")
    with pytest.raises(SpecError) as info:
        build_value(raw, ctx(tmp_path), "primals.x")
    assert str(info.value).startswith("s.yaml: primals.x")
    assert message in str(info.value)


def test_constructors(tmp_path: Path) -> None:
    c = ctx(tmp_path)
    np.testing.assert_array_equal(build_value({"eye": 3}, c, "p"), np.eye(3))
    np.testing.assert_array_equal(build_value({"eye": [2, 3]}, c, "p"), np.eye(2, 3))
    np.testing.assert_array_equal(build_value({"zeros": [2, 3]}, c, "p"), np.zeros((2, 3)))
    np.testing.assert_array_equal(build_value({"ones": 4}, c, "p"), np.ones(4))
    np.testing.assert_allclose(build_value({"linspace": [0, 1, 5]}, c, "p"), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(build_value({"arange": 3}, c, "p"), [0, 1, 2])
    np.testing.assert_array_equal(build_value({"arange": [1, 7, 2]}, c, "p"), [1, 3, 5])
    assert build_value({"arange": 3, "dtype": "int32"}, c, "p").dtype == np.int32
    r1 = build_value({"random": "normal", "shape": [3], "seed": 1}, c, "p")
    r2 = build_value({"random": "normal", "shape": [3], "seed": 1}, c, "p")
    np.testing.assert_array_equal(r1, r2)
    u = build_value({"random": "uniform", "shape": [1000], "seed": 2, "low": -2, "high": -1}, c, "p")
    assert u.min() >= -2 and u.max() < -1


def test_random_reproduces_old_jax_streams(tmp_path: Path) -> None:
    """Seed 001's u: normal(split(PRNGKey(0), 3)[1], (4,)) printed by JAX before 0.5."""
    u = build_value({"random": "normal", "shape": [4], "seed": 0, "split": [[3, 1]], "partitionable": False}, ctx(tmp_path), "p")
    np.testing.assert_allclose(u, [-0.36838785, 0.35917208, 0.01144757, -0.12499736], rtol=1e-6)


def test_files(tmp_path: Path) -> None:
    c = ctx(tmp_path)
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(2, 3))
    np.savez(tmp_path / "p.npz", W=np.ones((2, 2)), n=np.arange(3))
    (tmp_path / "m.csv").write_text("# comment\n1,2\n3,4\n")
    assert build_value({"file": "a.npy"}, c, "p").dtype == np.float32
    with pytest.raises(SpecError, match=r"has shape \(2, 3\), expected \(3, 2\)"):
        build_value({"file": "a.npy", "shape": [3, 2]}, c, "p")
    tree = build_value({"file": "p.npz"}, c, "p")
    assert set(tree) == {"W", "n"} and tree["n"].dtype.kind == "i"
    np.testing.assert_array_equal(build_value({"file": "p.npz", "key": "W"}, c, "p"), np.ones((2, 2)))
    with pytest.raises(SpecError, match=r"has no array 'w'.*did you mean 'W'"):
        build_value({"file": "p.npz", "key": "w"}, c, "p")
    np.testing.assert_array_equal(build_value({"file": "m.csv"}, c, "p"), [[1, 2], [3, 4]])


def test_guided_values_and_batches(tmp_path: Path) -> None:
    c = ctx(tmp_path)
    like = {"W": np.zeros((2, 3), np.float32), "b": np.zeros(2, np.float32)}
    g = build_like({"W": {"ones": [2, 3]}, "b": [1, 2]}, like, c, "tangents", "primal p")
    assert g.batch is None and g.value["W"].shape == (2, 3)
    g = build_like({"W": {"zeros": [5, 2, 3]}, "b": {"zeros": [5, 2]}}, like, c, "tangents", "primal p")
    assert g.batch == 5
    with pytest.raises(SpecError, match=r"tangents.b: shape \(3,\) does not match primal p \(2,\)"):
        build_like({"W": {"ones": [2, 3]}, "b": [1, 2, 3]}, like, c, "tangents", "primal p")
    with pytest.raises(SpecError, match="every leaf needs the same leading batch axis"):
        build_like({"W": {"zeros": [5, 2, 3]}, "b": {"zeros": [4, 2]}}, like, c, "tangents", "primal p")
    with pytest.raises(SpecError, match="missing b"):
        build_like({"W": {"ones": [2, 3]}}, like, c, "tangents", "primal p")
