"""Property-based fuzzing of the spec loader, the value constructors and the expression checker.

Any YAML text and any spec-shaped mapping gives a valid spec or a clean SpecError (exit 3), never
another exception. Random expressions over the allowed and the forbidden grammar load and trace,
or fail cleanly; a forbidden piece is always refused; nothing leaves a canary or runs long. CI runs
the `ci` profile (a few thousand examples in seconds); `make fuzz` runs the `fuzz` profile
(HYPOTHESIS_PROFILE=fuzz) with many more.
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

from jaxdiff_cli.errors import ExitCode, SpecError
from jaxdiff_cli.inputs import expressions
from jaxdiff_cli.inputs.spec import SPEC_KEYS, Overrides, build_spec
from jaxdiff_cli.inputs.values import CONSTRUCTORS, Context, build_like, build_value
from jaxdiff_cli.inputs.yamlfile import parse_yaml

settings.register_profile("ci", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.register_profile("fuzz", max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CTX = Context("float32", Path("."), "fuzz.yaml")

small_ints = st.integers(min_value=-3, max_value=6)
numbers = st.one_of(
    small_ints,
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "abc", "", "1+2j", "-0.5j", "1e400j", "j", "nanj"]),
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
        "re": draw(st.one_of(scalars, st.lists(numbers, max_size=3))),
        "im": draw(st.one_of(scalars, st.lists(numbers, max_size=3))),
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


# --------------------------------------------------------------------------- data files and paths


def _seed_files() -> dict[str, bytes]:
    """Valid files of each kind a spec may name, to be mutated."""
    import io
    import zipfile

    out = {}
    for version in ((1, 0), (2, 0)):
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.arange(6.0).reshape(2, 3), version=version)
        out[f"v{version[0]}.npy"] = buffer.getvalue()
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", method) as archive:
            archive.writestr("x.npy", out["v1.npy"])
            archive.writestr("y.npy", out["v2.npy"])
        out[f"m{method}.npz"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.savez(
        buffer, format=np.bytes_(b"coo"), shape=np.array([2, 2]), data=np.ones(2), row=np.array([0, 1]), col=np.array([1, 0])
    )
    out["sparse.npz"] = buffer.getvalue()
    out["a.csv"] = b"1.0,2.0\n# note\n3,inf\n"
    return out


SEEDS = _seed_files()


@st.composite
def mutated_files(draw: Any) -> tuple[str, bytes]:
    """A valid file with random bytes overwritten, cut off or appended."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return name, bytes(data) + draw(st.binary(max_size=8))


def _read_in_tmp(name: str, data: bytes, raw: Any) -> None:
    import tempfile

    from jaxdiff_cli.inputs.values import sparse_file

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(data)
        ctx = Context("float64", Path(tmp), "fuzz.yaml")
        for read in (lambda: build_value(raw, ctx, "primals.x"), lambda: sparse_file(raw, ctx, "expect.jacobian")):
            try:
                value = read()
            except SpecError as exc:
                assert exc.exit_code == ExitCode.BAD_INPUT and str(exc).startswith("fuzz.yaml: "), str(exc)
                continue
            if value is None:  # not scipy's sparse form: read as a dense value above
                continue
            for leaf in _leaves(value) if not hasattr(value, "row") else [value.data]:
                assert isinstance(leaf, np.ndarray) and leaf.dtype.kind in "biufc", leaf


@given(mutated_files())
def test_mutated_data_files_read_or_fail_cleanly(mutated: tuple[str, bytes]) -> None:
    """Any bytes in an .npy, .npz (dense or scipy's sparse form) or CSV: numbers or exit 3, nothing else."""
    name, data = mutated
    _read_in_tmp(name, data, {"file": name})
    if name.endswith(".npz"):
        _read_in_tmp(name, data, {"file": name, "key": "x"})


_DESCRS = ["<f8", ">f4", "|b1", "<i2", "<c16", "<U9", "|S3", "|V8", "<M8[s]", "|O", "<f2", "bogus", 7, [("a", "<f8")]]


@given(
    st.sampled_from(_DESCRS),
    st.lists(st.integers(min_value=-2, max_value=2**40), max_size=4).map(tuple),
    st.booleans(),
    st.integers(0, 64),
)
def test_any_npy_header_is_refused_or_read_within_the_limits(
    descr: Any, shape: tuple[int, ...], fortran: bool, data: int
) -> None:
    """Whatever an .npy header declares, the value is numbers within MAX_BYTES, or exit 3 before its data."""
    from jaxdiff_cli.inputs import datafiles

    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin-1") + b"\n"
    blob = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x01" * data
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "h.npy").write_bytes(blob)
        try:
            value = build_value({"file": "h.npy"}, Context("float64", Path(tmp), "fuzz.yaml"), "primals.x")
        except SpecError as exc:
            assert str(exc).startswith("fuzz.yaml: primals.x.file: "), str(exc)
            return
    assert value.dtype.kind in "biufc" and value.nbytes <= datafiles.MAX_BYTES and value.shape == shape


_PATH_PIECES = ["a", ".npy", ".npz", ".csv", ".png", ".py", "/", "..", ".", "~", "\x00", "\x1b", "\n", "\u2028", "x" * 120]


@given(st.lists(st.one_of(st.sampled_from(_PATH_PIECES), st.text(max_size=3)), min_size=1, max_size=6).map("".join))
def test_any_path_in_any_path_key_gives_a_spec_or_a_spec_error(text: str) -> None:
    """Random names (NUL, control characters, .., ~, over-long) in every path-like key: a spec, or a
    SpecError naming that key; a value reads or is exit 3 (an absent file.py is exit 4 when loaded)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for data, key in (
            ({"function": "x * 2", "primals": {"x": {"file": text}}}, "primals.x"),
            ({"function": "x * 2", "primals": {"x": 1.0}, "plot": {"file": text}}, "plot.file"),
            ({"function": f"{text}.py:f", "primals": {"x": 1.0}}, "function"),
        ):
            try:
                spec = build_spec(data, "fuzz.yaml", base, Overrides())
            except SpecError as exc:
                assert str(exc).startswith(f"fuzz.yaml: {key}"), (text, str(exc))
                continue
            if key == "primals.x":
                try:
                    build_value(spec.primals["x"], Context("float32", base, "fuzz.yaml"), key)
                except SpecError as exc:
                    assert str(exc).startswith("fuzz.yaml: primals.x"), (text, str(exc))


# --------------------------------------------------------------------------- expressions

# Pieces of the allowed grammar, and pieces of the forbidden one (a module is wrapped, so that an
# attribute after it cannot make an allowed path such as jnp.shape). An expression with any forbidden
# piece must be refused before it runs; any other either loads or is refused, and then traces or
# fails with an ordinary exception: never a traceback through the CLI, a canary file, or a hang.
_ALLOWED_LEAVES = ["x", "y", "1", "2.5", "-3", "pi", "e", "'ij'", "True", "None", "(1, 2)", "[x, y]", "{'a': x}"]
_FORBIDDEN_LEAVES = [
    "[jax][0]", "(jnp,)[0]", "{'m': lax}['m']", "[jax.nn][0]", "os", "open", "__import__", "getattr", "np", "_x",
    "'__class__'", "b'x'",
    "(9**999**9)", "([0]*10**9)", "('a'*10**9)", "jnp.dtype('float32')", "jnp.finfo('float32')", "x.dtype", "x.item()",
]  # fmt: skip
_ALLOWED_FUNCTIONS = [
    "sin", "exp", "abs", "sum", "len", "list", "tuple", "jnp.sum", "jnp.tanh", "jnp.stack", "jnp.linalg.norm", "jax.nn.relu",
    "lax.stop_gradient", "jax.scipy.special.logsumexp", "jnp.zeros_like", "jnp.float32", "range",
]  # fmt: skip
_FORBIDDEN_FUNCTIONS = [
    "jnp.save", "jax.config.update", "jax.debug.print", "jax.tree_util.register_pytree_node", "jax.make_jaxpr", "eval",
    "exec", "vars", "jax.pure_callback", "jnp.load", "jax.custom_jvp", "type",
]  # fmt: skip
_FORBIDDEN_ATTRS = ["__class__", "dump", "dtype", "lower", "tofile", "item", "defjvp", "__globals__", "gi_frame", "format"]
_OPS = ["+", "-", "*", "/", "**", "@", "%", "//", "<", "=="]


@st.composite
def _expressions(draw: Any, depth: int = 0) -> tuple[str, bool]:
    """(text, forbidden): a random expression, and whether it holds a forbidden piece."""
    forbid = draw(st.integers(0, 30)) == 0  # a forbidden piece now and then
    if depth >= 4 or draw(st.integers(0, 3)) == 0:
        if forbid:
            return draw(st.sampled_from(_FORBIDDEN_LEAVES)), True
        return draw(st.sampled_from(_ALLOWED_LEAVES)), False
    kind = draw(st.sampled_from(["op", "call", "attr", "method", "index", "lambda", "comp", "if", "unary", "default"]))
    a, bad_a = draw(_expressions(depth + 1))
    b, bad_b = draw(_expressions(depth + 1))
    both = bad_a or bad_b  # (only pieces that appear in the text count)
    if kind == "op":
        return f"({a} {draw(st.sampled_from(_OPS))} {b})", both
    if kind == "call":
        if forbid:
            return f"{draw(st.sampled_from(_FORBIDDEN_FUNCTIONS))}({a})", True
        return f"{draw(st.sampled_from(_ALLOWED_FUNCTIONS))}({a})", bad_a
    if kind in ("attr", "method"):
        attr = draw(st.sampled_from(_FORBIDDEN_ATTRS if forbid else expressions.VALUE_ATTRS))
        return f"({a}).{attr}" + ("()" if kind == "method" else ""), bad_a or forbid
    if kind == "index":
        return f"({a})[{draw(st.sampled_from(['0', '1:', '::2', 'None', '...', '-1']))}]", bad_a
    if kind == "lambda":
        return f"(lambda v: {a})({b})", both
    if kind == "comp":
        source = draw(st.sampled_from(["x", "range(3)", "[x, y]", "range(10**6)", "zip(x, y)"]))
        return f"[{a} for v in {source}]", bad_a
    if kind == "if":
        return f"({a} if {b} else {a})", both
    if kind == "unary":
        return f"{draw(st.sampled_from(['-', 'not ', '~']))}({a})", bad_a
    return f"(lambda v={a}: v)()", True  # defaults are refused


@given(_expressions())
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_random_expressions_load_and_trace_or_fail_cleanly(generated: tuple[str, bool]) -> None:
    import time

    import jax
    import jax.numpy as jnp

    from jaxdiff_cli.errors import FunctionError
    from jaxdiff_cli.inputs.functions import load_function

    text, forbidden = generated
    cwd = Path.cwd()
    t0 = time.monotonic()
    try:
        fn = load_function(text, ("x", "y"), cwd, "fuzz.yaml: function").fn
    except FunctionError as exc:
        assert exc.exit_code == ExitCode.FUNCTION and str(exc).startswith("fuzz.yaml: function: ")
    else:
        assert not forbidden, f"{text!r} holds a forbidden piece but was accepted"
        try:
            jax.eval_shape(fn, jnp.ones(3), jnp.ones(3))  # traces, computes nothing
        except Exception:  # an ordinary failure of the user's function: the engine reports it
            pass
    assert time.monotonic() - t0 < 5, text
    assert not list(cwd.glob("CANARY*"))


@given(_expressions())
@settings(max_examples=20, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_expressions_through_the_cli(generated: tuple[str, bool]) -> None:
    """End to end: exit 0 or 4, one line, no traceback, within the bound."""
    import time

    from typer.testing import CliRunner

    from jaxdiff_cli.cli import app

    text, forbidden = generated
    t0 = time.monotonic()
    ran = CliRunner().invoke(app, ["eval", "-f", text, "-p", "x=[1.0, 2.0, 3.0]", "-p", "y=[0.5, 1.0, 2.0]", "--json"])
    assert time.monotonic() - t0 < 10, text
    assert ran.exit_code in ((4,) if forbidden else (0, 3, 4, 5)), (text, ran.stderr)
    assert "Traceback" not in ran.stderr
    if ran.exit_code:
        assert ran.stderr.startswith("error: ") and ran.stderr.count("\n") == 1, ran.stderr
