"""Complex values and the new spec keys, read directly: 1+2j, {re, im}, complex files, dtype rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jaxdiff_cli.errors import SpecError, UsageError
from jaxdiff_cli.inputs.binding import fit_dtypes
from jaxdiff_cli.inputs.cases import load_cases
from jaxdiff_cli.inputs.spec import MAX_ORDER, Overrides, build_spec
from jaxdiff_cli.inputs.values import Context, build_like, build_value


def ctx(tmp_path: Path, dtype: str = "complex128") -> Context:
    return Context(dtype, tmp_path, "s.yaml")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1+2j", 1 + 2j),
        ("-0.5j", -0.5j),
        ("(1-2j)", 1 - 2j),
        ("1 + 2j", 1 + 2j),
        ("1e-3-2.5E2j", 1e-3 - 250j),
        ("nan+1j", complex(float("nan"), 1)),
        (3, 3 + 0j),
        (0.25, 0.25 + 0j),
    ],
)
def test_complex_numbers_as_python_writes_them(tmp_path: Path, raw: object, want: complex) -> None:
    got = build_value(raw, ctx(tmp_path), "primals.z")
    assert got.dtype == np.complex128 and got.shape == ()
    np.testing.assert_allclose(complex(got), want, rtol=0, atol=0, equal_nan=True)


def test_a_list_with_one_complex_number_is_complex_in_the_run_precision(tmp_path: Path) -> None:
    got = build_value(["1+2j", 3, "-0.5j"], ctx(tmp_path, "float32"), "primals.z")
    assert got.dtype == np.complex64  # float32 parts: binding refuses it for a differentiated argument
    np.testing.assert_array_equal(got, [1 + 2j, 3, -0.5j])
    assert build_value([[1, 2], [3, 4]], ctx(tmp_path), "primals.z").dtype == np.complex128


def test_re_im_constructor(tmp_path: Path) -> None:
    got = build_value({"re": [1, 2], "im": [3, -4]}, ctx(tmp_path), "primals.z")
    np.testing.assert_array_equal(got, [1 + 3j, 2 - 4j])
    assert build_value({"im": 2}, ctx(tmp_path, "float32"), "z").dtype == np.complex64
    assert complex(build_value({"im": 2}, ctx(tmp_path), "z")) == 2j
    assert build_value({"re": 1, "dtype": "complex64"}, ctx(tmp_path), "z").dtype == np.complex64
    inner = build_value({"re": {"linspace": [0, 1, 3]}, "im": {"zeros": 3}}, ctx(tmp_path), "z")
    np.testing.assert_array_equal(inner, [0, 0.5, 1])


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        ({"re": 1, "im": [1, 2]}, "s.yaml: z", "re has shape () but im has (2,)"),
        ({"re": 1, "dtype": "float32"}, "s.yaml: z.dtype", "{re, im} makes a complex value, not float32"),
        ({"re": ["1+2j"]}, "s.yaml: z.re", "a real number or a nested list of real numbers"),
        ({"re": 1, "im": 2, "scale": 3}, "s.yaml: z.scale", "unknown option 'scale' for the 're' constructor"),
        ("j", "s.yaml: z", "'j' is not a number"),
        ("1+2i", "s.yaml: z", "'1+2i' is not a number (numbers, nan, inf or -inf, or complex numbers such as 1+2j)"),
        ("1e400j", "s.yaml: z", "1e400j overflows complex128"),
        ({"value": "1+2j", "dtype": "float64"}, "s.yaml: z.value", "complex values where float64 numbers are expected"),
        ({"random": "uniform", "shape": [2], "dtype": "complex64"}, "s.yaml: z", "uniform draws real numbers"),
        ({"linspace": ["1j", 1, 3]}, "s.yaml: z.linspace[0]", "expected a real number"),
    ],
)
def test_bad_complex_values_name_the_key(tmp_path: Path, raw: object, where: str, message: str) -> None:
    with pytest.raises(SpecError) as err:
        build_value(raw, ctx(tmp_path), "z")
    assert err.value.where == where and message in err.value.render()


def test_complex_files(tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.array([1 + 2j, 3j], np.complex128))
    np.savez(tmp_path / "p.npz", z=np.array([1j], np.complex64), w=np.ones(2))
    got = build_value({"file": "z.npy"}, ctx(tmp_path, "float32"), "z")
    assert got.dtype == np.complex64  # the run's precision, as real data takes the run's float dtype
    np.testing.assert_array_equal(got, [1 + 2j, 3j])
    tree = build_value({"file": "p.npz"}, ctx(tmp_path), "p")
    assert tree["z"].dtype == np.complex128 and tree["w"].dtype == np.complex128
    with pytest.raises(SpecError, match="holds complex data: float64 would drop its imaginary part"):
        build_value({"file": "z.npy", "dtype": "float64"}, ctx(tmp_path), "z")


def test_tangents_take_the_primal_dtype(tmp_path: Path) -> None:
    like = np.zeros(2, np.complex64)
    got = build_like([1, "2j"], like, ctx(tmp_path, "complex64"), "tangents.z", "primal z").value
    assert got.dtype == np.complex64
    np.testing.assert_array_equal(got, [1, 2j])
    with pytest.raises(SpecError, match="complex values where the output holds float32 numbers"):
        build_like(["1j", 1], np.zeros(2, np.float32), ctx(tmp_path, "float32"), "cotangents", "output")


def spec(data: dict, **ov: object):  # type: ignore[no-untyped-def]
    return build_spec(data, "s.yaml", Path("."), Overrides(**ov))  # type: ignore[arg-type]


def test_dtypes_never_lie_for_complex_values() -> None:
    s = spec({"function": "z", "primals": {"z": 1.0}, "dtype": "complex64"})
    fit_dtypes(np.zeros(2, np.complex64), s, "z", differentiated=True)
    with pytest.raises(SpecError, match="a complex128 value in a complex64 run") as err:
        fit_dtypes(np.zeros(2, np.complex128), s, "z", differentiated=False)
    assert "dtype: complex128" in err.value.render()
    with pytest.raises(SpecError, match="a float32 value in a complex64 run"):
        fit_dtypes(np.zeros(2, np.float32), s, "z", differentiated=True)
    f32 = spec({"function": "z", "primals": {"z": 1.0}})
    with pytest.raises(SpecError, match="a complex64 value in a float32 run") as err:
        fit_dtypes(np.zeros(2, np.complex64), f32, "z", differentiated=True)
    assert "dtype: complex64" in err.value.render()
    assert fit_dtypes(np.zeros(2, np.complex64), f32, "z", differentiated=False).dtype == np.complex64
    with pytest.raises(SpecError, match="a complex128 value in a float32 run"):
        fit_dtypes(np.zeros(2, np.complex128), f32, "z", differentiated=False)


def test_spec_keys_holomorphic_and_order() -> None:
    s = spec({"function": "z", "primals": {"z": "1j"}, "dtype": "complex128", "holomorphic": True, "order": 3})
    assert s.holomorphic and s.order == 3 and s.dtype == "complex128"
    assert spec({"function": "z", "primals": {"z": 1}}, holomorphic=True).holomorphic
    with pytest.raises(SpecError, match="true or false"):
        spec({"function": "z", "primals": {"z": 1}, "holomorphic": "yes"})
    for bad in (0, MAX_ORDER + 1, 2.5, True, "3"):
        with pytest.raises(SpecError, match=f"is not an order from 1 to {MAX_ORDER}"):
            spec({"function": "z", "primals": {"z": 1}, "order": bad})
    with pytest.raises(SpecError, match=r"unknown dtype 'complex32'.*complex128"):
        spec({"function": "z", "primals": {"z": 1}, "dtype": "complex32"})


def test_run_steps_take_an_order(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("function: sin(x)\nprimals: {x: 0.5}\nrun: [{derivative: {order: 3}}, {taylor: {order: 4, mode: jvp}}]\n")
    (case,) = load_cases(str(path), Overrides())
    assert [s.label for s in case.steps] == ["derivative[order=3]", "taylor[mode=jvp,order=4]"]
    path.write_text("function: sin(x)\nprimals: {x: 0.5}\nrun: [{derivative: {order: 0}}]\n")
    with pytest.raises(SpecError, match=r"run\[0\]\.derivative\.order"):
        load_cases(str(path), Overrides())


def test_a_bad_order_option_is_a_usage_error() -> None:
    from jaxdiff_cli.inputs.spec import parse_order

    with pytest.raises(UsageError):
        parse_order(0, "--order")
    assert parse_order(None, "--order") is None and parse_order(32, "--order") == 32
