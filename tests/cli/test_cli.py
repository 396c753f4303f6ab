"""Commands in-process through Typer's CliRunner: exit codes, stdout, stderr, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli import __version__
from jaxdiff_cli.errors import ExitCode

from ..conftest import ASSETS, CONFIGS, Cli, SpecFile, app_commands

POLY = CONFIGS / "seed000_poly.yaml"
COMMANDS = app_commands()


def test_version_and_help(cli: Cli) -> None:
    ran = cli("--version")
    assert ran.exit_code == ExitCode.OK and ran.stdout.strip() == f"jaxdiff {__version__}"
    ran = cli("--help")
    assert ran.exit_code == ExitCode.OK
    for command in COMMANDS:
        assert command in ran.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli: Cli, command: str) -> None:
    ran = cli(command, "--help")
    assert ran.exit_code == ExitCode.OK
    assert "Example: jaxdiff" in ran.stdout


@pytest.mark.parametrize("args", [["--help"], ["jvp", "--help"], ["--version"], [], ["sparsity", "--help"]])
def test_help_does_not_import_jax(args: list[str]) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['jaxdiff', *{args!r}]\n"
        "from jaxdiff_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'jax', 'numpy', 'asdex', 'numba'} & set(sys.modules)\n"
        "print('JAX IMPORTED' if heavy else 'NO JAX')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("NO JAX"), out.stdout + out.stderr


def test_rich_output_names_shapes_dtypes_and_footer(cli: Cli) -> None:
    ran = cli("jvp", POLY)
    assert ran.exit_code == ExitCode.OK, ran.stderr
    for text in ("value", "jvp", "(3,)", "float32", "65.353714", "device cpu", "compile", "run"):
        assert text in ran.stdout


def test_large_arrays_are_summarised(cli: Cli) -> None:
    ran = cli("eval", "-f", "x * 2", "-p", "x={ones: [1000]}")
    assert ran.exit_code == ExitCode.OK
    assert "..." in ran.stdout and len(ran.stdout) < 3000


def test_json_schema(cli: Cli) -> None:
    doc = cli("vjp", POLY, "--json").json()
    assert set(doc) == {
        "schema",
        "jaxdiff_version",
        "command",
        "function",
        "spec",
        "device",
        "dtype",
        "info",
        "inputs",
        "outputs",
        "timing",
        "versions",
        "warnings",
    }
    assert doc["warnings"] == []
    assert doc["command"] == "vjp" and doc["dtype"] == "float32" and doc["jaxdiff_version"] == __version__
    assert set(doc["inputs"]) == {"primals.x", "cotangents"}
    assert doc["outputs"]["vjp.x"] == {"shape": [4], "dtype": "float32", "data": [83.697365, 194.49492, 88.94971, 39.546825]}
    assert set(doc["timing"]) == {"compile_s", "run_s"} and set(doc["versions"]) == {"jax", "jaxlib"}


def test_json_float32_values_read_back_bit_exact(cli: Cli) -> None:
    doc = cli("jvp", POLY, "--json").json()
    out = doc["outputs"]["jvp"]["data"]
    assert np.array_equal(np.asarray(out, dtype=np.float32), np.asarray([65.353714, 35.943752, 80.87344], dtype=np.float32))


def test_stdin_spec(cli: Cli) -> None:
    ran = cli("jvp", "-", "--json", input=POLY.read_text())
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.json()["spec"] == "<stdin>"  # as errors and check name it (null is for no spec: the command line)
    assert ran.json()["outputs"]["jvp"]["data"] == [65.353714, 35.943752, 80.87344]


def test_command_line_only(cli: Cli) -> None:
    ran = cli("grad", "-f", "lambda x: jnp.sum(jnp.tanh(x)**2)", "-p", "x=[1,2,3]", "--json", "--dtype", "float64")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    x = np.array([1.0, 2.0, 3.0])
    expected = 2 * np.tanh(x) * (1 - np.tanh(x) ** 2)
    np.testing.assert_allclose(ran.outputs()["grad.x"], expected, rtol=1e-14)
    assert "value" not in ran.outputs()
    ran = cli("jvp", "-f", "x * w", "-p", "x=[1,2]", "-p", "w=[3,4]", "--wrt", "x,w", "-t", "x=[1,0]", "-t", "w=[0,1]", "--json")
    assert ran.outputs()["jvp"].tolist() == [3.0, 2.0]


def test_overrides_win_over_the_spec(cli: Cli) -> None:
    ran = cli("jvp", POLY, "-t", "x=[1,0,0,0]", "--json")
    np.testing.assert_allclose(ran.outputs()["jvp"], [57.66504, 15.1875, 42.714844], rtol=1e-6)


def test_auto_mode_reports_its_choice(cli: Cli) -> None:
    text = " ".join(cli("jacobian", POLY).stdout.split())
    assert "auto chose rev (4 inputs > 3 outputs: reverse mode pulls one cotangent per output)" in text
    doc = cli("jacobian", CONFIGS / "seed002_exp_reducer.yaml", "--mode", "auto", "--json").json()
    assert doc["info"]["mode"] == "rev" and doc["info"]["auto"] is True


def test_grad_value_flag(cli: Cli) -> None:
    out = cli("grad", CONFIGS / "seed001_simplefun_scalar.yaml", "--value", "--json").outputs()
    assert float(out["value"]) == 36.0 and float(out["grad.x"]) == 33.0 and float(out["grad.w"]) == 9.0


def test_outputs_to_files(cli: Cli, tmp_path: Path) -> None:
    ran = cli("vjp", POLY, "-o", tmp_path / "r.npz", "-q")
    assert ran.exit_code == ExitCode.OK and ran.stdout == ""
    with np.load(tmp_path / "r.npz") as f:
        assert set(f.files) == {"value", "vjp.x"}
        np.testing.assert_allclose(f["vjp.x"], [83.697365, 194.49492, 88.94971, 39.546825], rtol=1e-7)
    assert cli("jvp", POLY, "-o", tmp_path / "j.npy", "-q").exit_code == ExitCode.OK
    np.testing.assert_allclose(np.load(tmp_path / "j.npy"), [65.353714, 35.943752, 80.87344], rtol=1e-7)
    assert cli("jvp", POLY, "-o", tmp_path / "j.json", "-q").exit_code == ExitCode.OK
    assert json.loads((tmp_path / "j.json").read_text())["command"] == "jvp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.json", "j.npy", "r.npz"]  # no temp files left


def test_npy_of_several_results_is_their_flat_join(cli: Cli, tmp_path: Path) -> None:
    spec = CONFIGS / "seed001_dot_vjp.yaml"
    ran = cli("vjp", spec, "-o", tmp_path / "two.npy", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.json()["info"]["npy_layout"] == "leaves raveled and joined: vjp.x1, vjp.x2"
    assert cli("vjp", spec, "-o", tmp_path / "two.npz", "-q").exit_code == ExitCode.OK
    with np.load(tmp_path / "two.npz") as f:
        joined = np.concatenate([f["vjp.x1"].ravel(), f["vjp.x2"].ravel()])
    np.testing.assert_array_equal(np.load(tmp_path / "two.npy"), joined)


def test_nonfinite_results(cli: Cli) -> None:
    args = ("eval", "-f", "jnp.log(x)", "-p", "x=[1.0, -1.0, 0.0]")
    ran = cli(*args, "--json")
    assert ran.exit_code == ExitCode.OK
    assert ran.json()["outputs"]["value"]["data"] == [0.0, "NaN", "-Infinity"]
    ran = cli(*args, "--check-finite")
    assert ran.exit_code == ExitCode.NON_FINITE
    assert "value[1] is nan" in ran.stderr
    assert "warning: value[1] is nan" in cli(*args).stderr


ERRORS = [
    # (args, exit code, text in the one-line message)
    (["jvp", "--frobnicate"], 2, "No such option"),
    (["jvp"], 2, "give a SPEC file, or --fn and --primal"),
    (["jvp", "missing.yaml"], 3, "missing.yaml: no such file"),
    (["jvp", "{tmp}/bad.yaml"], 3, "bad.yaml: line 2, column 1: expected ',' or ']'"),
    (["jvp", "{tmp}/list.yaml"], 3, "the spec must be a mapping"),
    (["jvp", "{tmp}/shape.yaml"], 3, "shape.yaml: tangents: shape (4,) does not match primal x (3,)"),
    (["jvp", "{tmp}/notan.yaml"], 3, "notan.yaml: tangents: jvp needs tangents"),
    (["vjp", "{tmp}/notan.yaml"], 3, "notan.yaml: cotangents: vjp needs cotangents shaped like the output ((3,))"),
    (["grad", "{tmp}/notan.yaml"], 3, "grad needs a function with a scalar output"),
    (["jvp", "{tmp}/int.yaml"], 3, "int.yaml: primals.x: int32 values cannot be differentiated"),
    (["eval", "-f", "lambda x: x.__class__", "-p", "x=1"], 4, "<command line>: function: expression rejected"),
    (["eval", "-f", "nosuch.mod:f", "-p", "x=1"], 4, "no module named 'nosuch'"),
    (["eval", "-f", "{assets}/funcs.py:raises", "-p", "x=1"], 4, "RuntimeError: user code failed here (funcs.py, line 9)"),
    (["eval", "-f", "{assets}/funcs.py:returns_text", "-p", "x=1"], 4, "returned a str, not an array"),
    (["eval", "-f", "x @ y", "-p", "x=[1,2]", "-p", "y=[1,2,3]"], 4, "failed to trace"),
    (["eval", "-f", "x", "-p", "x=[1,2]", "--device", "tpu"], 3, "device 'tpu' requested but JAX sees only: cpu"),
    (["eval", "-f", "x", "-p", "x=[1,2]", "-o", "{tmp}/nope/out.npz"], 3, "does not exist"),
    (["eval", "-f", "x", "-p", "x=[1,2]", "-o", "{tmp}/out.txt"], 3, "unknown output format"),
    (["jacobian", POLY, "--mode", "sideways"], 2, "--mode: unknown mode 'sideways'"),
    (["hvp", "{tmp}/badmode.yaml"], 3, "badmode.yaml: mode: unknown mode 'fwd' for this command"),
    (["eval", "-f", "x", "-p", "x"], 3, "--primal: expected NAME=VALUE"),
]


@pytest.mark.parametrize(("args", "code", "text"), ERRORS, ids=[str(e[2]) for e in ERRORS])
def test_errors_are_one_line_with_exit_code(
    cli: Cli, tmp_path: Path, args: list[Any], code: int, text: str, spec_file: SpecFile
) -> None:
    spec_file("function: [unclosed\n", "bad.yaml")
    spec_file("- 1\n- 2\n", "list.yaml")
    spec_file("function: x\nprimals: {x: [1, 2, 3]}\ntangents: [1, 2, 3, 4]\n", "shape.yaml")
    spec_file("function: x * 2\nprimals: {x: [1, 2, 3]}\n", "notan.yaml")
    spec_file("function: x\nprimals: {x: {arange: 3, dtype: int32}}\ntangents: [1, 2, 3]\n", "int.yaml")
    spec_file("function: jnp.sum(x**2)\nprimals: {x: [1, 2]}\ntangents: [1, 0]\nmode: fwd\n", "badmode.yaml")
    argv = [str(a).format(tmp=tmp_path, assets=ASSETS) for a in args]
    ran = cli(*argv)
    assert ran.exit_code == code, (ran.stdout, ran.stderr)
    assert text in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr and "Traceback" not in ran.stdout
    if code != 2:
        assert ran.stderr.startswith("error: ") and ran.stderr.count("\n") == 1
        assert ran.stdout == ""


@pytest.mark.slow
def test_debug_shows_the_traceback() -> None:
    """The installed command, as a user runs it: --debug gives the traceback, without it one line."""
    args = [str(Path(sys.executable).parent / "jaxdiff"), "eval", "-f", f"{ASSETS}/funcs.py:raises", "-p", "x=1.0"]
    plain = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 4 and "Traceback" not in plain.stderr and plain.stderr.count("\n") == 1
    debug = subprocess.run([*args, "--debug"], capture_output=True, text=True, timeout=120)
    assert debug.returncode == plain.returncode  # the documented status, not Python's 1 (new-user report)
    # the whole chain, down to the user's own line
    assert "Traceback" in debug.stderr and 'raise RuntimeError("user code failed here")' in debug.stderr


def test_devices(cli: Cli) -> None:
    doc = cli("devices", "--json").json()
    assert doc["devices"][0]["platform"] == "cpu" and doc["devices"][0]["default"] is True
    ran = cli("devices", "--platform", "tpu")
    assert ran.exit_code == ExitCode.BAD_INPUT and "tpu" in ran.stderr


def test_float64_turns_on_x64(cli: Cli) -> None:
    ran = cli("eval", "-f", "x / 3", "-p", "x=1", "--dtype", "float64", "--json")
    assert ran.json()["outputs"]["value"] == {"shape": [], "dtype": "float64", "data": 1 / 3}


def test_float32_precision_warning_reaches_the_user(cli: Cli) -> None:
    ran = cli("eval", "-f", "x * 1e34", "-p", "x=[1.0, 2.0]", "--json")
    assert ran.exit_code == ExitCode.OK
    assert ran.json()["warnings"] == [
        "float32 may lose the answer: value reaches 2e+34, near float32's largest value 3.4e+38 (try dtype: float64)"
    ]
    assert "warning: float32 may lose the answer" in ran.stderr
    assert cli("eval", "-f", "x * 1e34", "-p", "x=[1.0, 2.0]", "--dtype", "float64", "--json").json()["warnings"] == []


def test_every_option_takes_its_type_and_default_from_the_option_table() -> None:
    """The hand-written commands spell their options' types for mypy; they must be FLAGS' (the
    generated commands take them from FLAGS)."""
    import inspect
    import typing

    from jaxdiff_cli.cli import app
    from jaxdiff_cli.helptext import FLAGS, REQUIRED

    by_words = {(f.names, f.help): f for f in FLAGS.values()}
    for command in app.registered_commands:
        assert command.callback is not None
        for param in inspect.signature(command.callback, eval_str=True).parameters.values():
            hint = typing.get_type_hints(command.callback, include_extras=True)[param.name]
            kind, info = typing.get_args(hint)[:2]
            # Annotated[..., typer.Option("--fn", "-f")]: Typer keeps the first name as the OptionInfo's default
            said = (info.default, *(info.param_decls or ()))
            names = tuple(n for n in said if isinstance(n, str) and n.startswith("-"))
            flag = by_words[(names, info.help)]
            default = REQUIRED if param.default is inspect.Parameter.empty else param.default
            assert (kind, default) == (flag.type, flag.default), (command.name, param.name)
