"""Property-based fuzzing of the spec loader and the value constructors.

Any YAML text and any spec-shaped mapping gives a valid spec or a clean SpecError (exit 3), never
another exception. CI runs the `ci` profile (a few thousand examples in seconds); `make fuzz` runs
the `fuzz` profile (HYPOTHESIS_PROFILE=fuzz) with many more.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxdiff_cli.arrays import CONSTRUCTORS, Context, build_like, build_value
from jaxdiff_cli.errors import ExitCode, SpecError
from jaxdiff_cli.spec import SPEC_KEYS, Overrides, build_spec, parse_yaml

settings.register_profile("ci", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.register_profile("fuzz", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CTX = Context("float32", Path("."), "fuzz.yaml")

small_ints = st.integers(min_value=-3, max_value=6)
numbers = st.one_of(
    small_ints,
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "abc", ""]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
shapes = st.one_of(small_ints, st.lists(small_ints, max_size=3), st.text(max_size=3))


@st.composite
def constructors(draw: Any) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(CONSTRUCTORS)))
    value: Any = {
        "value": draw(st.one_of(scalars, st.lists(numbers, max_size=3), st.lists(st.lists(small_ints, max_size=2), max_size=2))),
        "random": draw(st.sampled_from(["normal", "uniform", "gauss", 3])),
        "zeros": draw(shapes),
        "ones": draw(shapes),
        "eye": draw(shapes),
        "linspace": draw(st.lists(numbers, max_size=4)),
        "arange": draw(st.one_of(numbers, st.lists(numbers, max_size=4))),
        "file": draw(st.sampled_from(["missing.npy", "x.csv", "", "a.npz", 3])),
    }[name]
    out = {name: value}
    options = [*sorted(CONSTRUCTORS[name]), "bogus"]
    for opt in draw(st.lists(st.sampled_from(options), max_size=3, unique=True)):
        out[opt] = draw(
            st.one_of(
                shapes,
                scalars,
                st.sampled_from(["float32", "int32", "bool", "float16"]),
                st.lists(st.lists(small_ints, max_size=2), max_size=2),
            )
        )
    return out


values = st.recursive(
    st.one_of(scalars, constructors()),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(string.ascii_letters, min_size=1, max_size=4), children, max_size=3),
    ),
    max_leaves=12,
)
spec_mappings = st.dictionaries(
    st.one_of(st.sampled_from(sorted(SPEC_KEYS)), st.text(max_size=6)),
    st.one_of(
        values,
        st.sampled_from(["lambda x: x", "x * 2", "float64", "cpu", "fwd"]),
        st.lists(st.sampled_from(["x", "y", "w"]), max_size=3),
    ),
    max_size=8,
)


@given(st.text(max_size=200))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        data = parse_yaml(text, "fuzz.yaml")
    except SpecError as exc:
        assert exc.exit_code == ExitCode.BAD_INPUT and str(exc).startswith("fuzz.yaml")
        return
    if isinstance(data, dict):
        try:
            build_spec(data, "fuzz.yaml", Path("."), Overrides())
        except SpecError:
            pass


@given(st.from_regex(r"\A[a-z]{1,6}: \[?[-0-9.eE,x {}:!\[\]]{0,20}\]?\n?\Z"))
def test_yaml_like_text(text: str) -> None:
    try:
        parse_yaml(text, "fuzz.yaml")
    except SpecError:
        pass


@given(spec_mappings)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_spec_shaped_mappings_give_a_spec_or_a_spec_error(data: dict[Any, Any]) -> None:
    try:
        spec = build_spec(data, "fuzz.yaml", Path("."), Overrides())
    except SpecError as exc:
        assert str(exc).startswith("fuzz.yaml")
        return
    for name, raw in spec.primals.items():
        try:
            build_value(raw, CTX, f"primals.{name}")
        except SpecError as exc:
            assert str(exc).startswith("fuzz.yaml: primals.")


@given(values)
def test_values_build_or_fail_cleanly(raw: Any) -> None:
    try:
        value = build_value(raw, CTX, "primals.x")
    except SpecError as exc:
        assert str(exc).startswith("fuzz.yaml: primals.x")
        return
    for leaf in _leaves(value):
        assert isinstance(leaf, np.ndarray)


@given(values, st.lists(st.integers(min_value=0, max_value=3), max_size=2))
def test_guided_values_match_or_fail_cleanly(raw: Any, shape: list[int]) -> None:
    like = np.zeros(shape, np.float32)
    try:
        g = build_like(raw, like, CTX, "tangents", "primal x")
    except SpecError as exc:
        assert str(exc).startswith("fuzz.yaml: tangents")
        return
    assert g.value.shape[-len(shape) :] == tuple(shape) or not shape


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@given(spec_mappings)
@settings(max_examples=25, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_yaml_documents_through_the_cli(data: dict[Any, Any]) -> None:
    """End to end: random spec-shaped documents through `jaxdiff eval` exit 0, 3 or 4, cleanly."""
    import tempfile

    from typer.testing import CliRunner

    from jaxdiff_cli.cli import app

    try:
        text = yaml.safe_dump(data)
    except (yaml.YAMLError, UnicodeEncodeError):
        return
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "s.yaml"
        spec.write_text(text)
        ran = CliRunner().invoke(app, ["eval", str(spec)])
    assert ran.exit_code in (0, 3, 4), (data, ran.stderr)
    assert "Traceback" not in ran.stderr
