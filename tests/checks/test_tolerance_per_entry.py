"""Expected values are compared entry by entry: no entry's allowance grows with another entry.

Issue 19.5: the rounding allowance and the atol cap scaled with the largest expected magnitude of
the whole array, so ``expect: value: [1.0e20, 0.0]`` passed for an actual ``[1e20, 9]``. Each entry's
tolerance is now its own: atol (at most 1% of the entry's |value|, at least 1e-6) + rtol·|value| +
32·eps·|value|.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxdiff_cli.checks.expectations import DEFAULT_TOL, Expectation, check_outputs
from jaxdiff_cli.checks.findings import ATOL_FLOOR, ATOL_SHARE, ROUNDING_MULTIPLE
from jaxdiff_cli.errors import ExitCode


def own_tolerance(value: float, rtol: float, atol: float) -> float:
    """The tolerance of one expected entry, written out independently of findings.py's arrays."""
    size = abs(value)
    return (
        min(atol, max(ATOL_FLOOR, ATOL_SHARE * size)) + rtol * size + ROUNDING_MULTIPLE * float(np.finfo(np.float64).eps) * size
    )


def magnitudes(dtype: Any) -> st.SearchStrategy[float]:
    """Values over the dtype's whole range, zeros and tiny ones included (finite only)."""
    big, width = (2.0**100, 32) if dtype == np.float32 else (1e300, 64)
    exponents = st.integers(-30, 30) if dtype == np.float32 else st.integers(-200, 200)
    scaled = st.tuples(st.floats(-10, 10, allow_nan=False), exponents).map(lambda p: p[0] * 10.0 ** p[1])
    return st.one_of(st.just(0.0), scaled, st.floats(-big, big, allow_nan=False, allow_infinity=False, width=width))


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, ...], float, float, str]:
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(st.sampled_from([(1,), (2,), (5,), (3, 4), (2, 3, 2)]))
    # Drawn as Python floats, then stored in the dtype (as a spec's values are read), then widened.
    values = draw(st.lists(magnitudes(dtype), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    expected = np.asarray(values, dtype=dtype).reshape(shape).astype(np.float64)
    index = tuple(draw(st.integers(0, n - 1)) for n in shape)
    rtol, atol = DEFAULT_TOL["float32" if dtype == np.float32 else "float64"]
    if draw(st.booleans()):  # a written atol, as large as the whole array allows
        atol = max(ATOL_FLOOR, ATOL_SHARE * float(np.max(np.abs(expected))))
    return expected, index, rtol, atol, "float32" if dtype == np.float32 else "float64"


def passes(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> bool:
    (finding,) = check_outputs({"value": actual}, [Expectation("value", expected, rtol, atol)])
    return finding.passed


@settings(max_examples=150, deadline=None)
@given(cases(), st.floats(1.5, 1e6), st.sampled_from([-1.0, 1.0]))
def test_one_entry_beyond_its_own_tolerance_fails(case: Any, factor: float, sign: float) -> None:
    expected, index, rtol, atol, _ = case
    actual = expected.copy()
    actual[index] += sign * factor * own_tolerance(float(expected[index]), rtol, atol)
    assert actual[index] != expected[index]
    assert not passes(expected, actual, rtol, atol)


@settings(max_examples=150, deadline=None)
@given(cases(), st.floats(0.0, 0.5), st.sampled_from([-1.0, 1.0]))
def test_one_entry_within_its_own_tolerance_passes(case: Any, share: float, sign: float) -> None:
    expected, index, rtol, atol, _ = case
    actual = expected.copy()
    actual[index] += sign * share * own_tolerance(float(expected[index]), rtol, atol)
    assert passes(expected, actual, rtol, atol)


@settings(max_examples=100, deadline=None)
@given(cases())
def test_rounding_to_the_specs_dtype_passes_a_float64_golden(case: Any) -> None:
    # A golden recorded in float64 and computed again in the spec's dtype differs by the last bit
    # only where the dtype is float64: those neighbours must pass.
    expected, index, rtol, atol, dtype = case
    if dtype != "float64":
        return
    actual = expected.copy()
    actual[index] = np.nextafter(expected[index], np.inf)
    assert passes(expected, actual, rtol, atol)


def test_the_large_entry_does_not_hide_the_small_one_complex() -> None:
    expected = np.array([1e20 + 0j, 1.0 + 0j])
    actual = np.array([1e20 + 9j, 1.0 + 0j])  # the imaginary part of the large entry is wrong
    (finding,) = check_outputs({"value": actual}, [Expectation("value", expected, 1e-12, 1e-14)])
    assert not finding.passed and finding.worst is not None and finding.worst.output == "value (imag part)"


# --------------------------------------------------------------------------- through the CLI


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_names_the_small_entry_a_large_one_hid(cli: Any, tmp_path: Path, dtype: str) -> None:
    text = (
        "function: 'lambda x: x * jnp.array([1.0, 0.0]) + jnp.array([0.0, 9.0])'\n"
        f"primals: {{x: 1.0e20}}\ndtype: {dtype}\nexpect:\n  value: [1.0e20, 0.0]\n"
    )
    ran = cli("check", write(tmp_path, text), "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED, ran.stdout + ran.stderr
    (failed,) = [c for c in ran.json()["specs"][0]["checks"] if not c["passed"]]
    assert failed["name"] == "expect value" and "1 of 2 entries" in failed["detail"]
    assert failed["worst"]["index"] == [1] and failed["worst"]["ad"] == 9.0


def test_a_written_atol_counts_on_each_entry_up_to_its_own_magnitude(cli: Any, tmp_path: Path) -> None:
    # atol 1e17 is 1% of the largest expected value, so it is accepted; on the zero entry it counts
    # only ATOL_FLOOR, so 9 there still fails.
    text = (
        "function: 'lambda x: x * jnp.array([1.0, 0.0]) + jnp.array([0.0, 9.0])'\n"
        "primals: {x: 1.0e20}\ndtype: float64\nexpect:\n  value: {value: [1.0e20, 0.0], atol: 1.0e17}\n"
    )
    ran = cli("check", write(tmp_path, text), "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED, ran.stdout + ran.stderr
    (failed,) = [c for c in ran.json()["specs"][0]["checks"] if not c["passed"]]
    assert failed["worst"]["index"] == [1]


def test_a_jacobian_row_does_not_hide_its_small_entry(cli: Any, tmp_path: Path) -> None:
    text = (
        "function: 'lambda x: jnp.array([1.0e20 * x[0] + 9.0 * x[1], x[1]])'\n"
        "primals: {x: [1.0, 1.0]}\ndtype: float64\nexpect:\n  jacobian.x: [[1.0e20, 0.0], [0.0, 1.0]]\n"
    )
    ran = cli("check", write(tmp_path, text), "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED, ran.stdout + ran.stderr
    failed = [c for c in ran.json()["specs"][0]["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["expect jacobian.x"] and failed[0]["worst"]["index"] == [0, 1]


def test_a_right_value_with_a_large_entry_still_passes(cli: Any, tmp_path: Path) -> None:
    text = (
        "function: 'lambda x: x * jnp.array([1.0, 0.0]) + jnp.array([0.0, 9.0])'\n"
        "primals: {x: 1.0e20}\ndtype: float64\nexpect:\n  value: [1.0e20, 9.0]\n"
    )
    ran = cli("check", write(tmp_path, text), "--json")
    assert ran.exit_code == ExitCode.OK, ran.stdout + ran.stderr


@pytest.mark.parametrize(
    ("expected", "tolerance"),
    [("[.inf, -.inf]", ""), ("{value: [-.inf, 6.0], rtol: 1.0e-9}", ""), ("[.inf, 6.0]", "\n  rtol: 1.0e-2")],
)
def test_an_infinite_expected_entry_fails_any_finite_value(cli: Any, tmp_path: Path, expected: str, tolerance: str) -> None:
    # rtol * |inf| is infinite and |3 - inf| <= inf held: any finite result passed (red team, issue 19).
    text = f"function: 'lambda x: x * 3.0'\nprimals: {{x: [1.0, 2.0]}}\nexpect:\n  value: {expected}{tolerance}\n"
    ran = cli("check", write(tmp_path, text), "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED, ran.stdout + ran.stderr
    (failed,) = [c for c in ran.json()["specs"][0]["checks"] if not c["passed"]]
    assert failed["name"] == "expect value" and failed["worst"]["index"] == [0]


def test_an_infinite_expected_entry_passes_the_same_infinity_only(cli: Any, tmp_path: Path) -> None:
    text = "function: 'lambda x: x * jnp.inf'\nprimals: {x: [1.0, -2.0]}\nexpect:\n  value: VALUE\n"
    same = cli("check", write(tmp_path, text.replace("VALUE", "[.inf, -.inf]")), "--json")
    flipped = cli("check", write(tmp_path, text.replace("VALUE", "[.inf, .inf]")), "--json")
    checks = {c["name"]: c["passed"] for c in same.json()["specs"][0]["checks"]}
    assert checks["expect value"] is True  # (the finiteness check fails it anyway: f is infinite there)
    flipped_checks = {c["name"]: c for c in flipped.json()["specs"][0]["checks"]}
    assert flipped_checks["expect value"]["passed"] is False and flipped_checks["expect value"]["worst"]["index"] == [1]
