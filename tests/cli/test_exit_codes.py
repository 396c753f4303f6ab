"""Every exit status of CLI.md, one test each, through the CLI and asserted by name.

``test_every_exit_code_has_a_test`` fails when ExitCode gains a member that TESTED (at the bottom)
does not map to a test here. The real signals (SIGINT, SIGTERM sent to a running ``jaxdiff``) are in test_red_team.py; here each
status is reached the way the CLI maps it, in-process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jaxdiff_cli import operations, signals
from jaxdiff_cli.errors import ExitCode, OutputClosed

from ..conftest import Cli, SpecFile


def test_ok(cli: Cli) -> None:
    ran = cli("eval", "-f", "x * 2", "-p", "x=1.5", "--json")
    assert ran.exit_code == ExitCode.OK and ran.json()["outputs"]["value"]["data"] == 3.0


def test_check_failed(cli: Cli, spec_file: SpecFile) -> None:
    ran = cli("check", spec_file("function: x * 2\nprimals: {x: 1.5}\nexpect: {value: 4.0}\n"))
    assert ran.exit_code == ExitCode.CHECK_FAILED


@pytest.mark.parametrize("args", [["jvp"], ["jvp", "--no-such-option"], ["sparsity", "-f", "x", "-p", "x=[1.0]", "--op", "jvp"]])
def test_usage(cli: Cli, args: list[str]) -> None:
    assert cli(*args).exit_code == ExitCode.USAGE


def test_bad_output(cli: Cli, tmp_path: Path) -> None:
    ran = cli("jacobian", "-f", "x", "-p", "x=1.0", "-o", str(tmp_path / "J.txt"))
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert "unknown output format '.txt'" in ran.stderr and ".npz, .npy, .json, .mtx" in ran.stderr


def test_bad_input(cli: Cli, spec_file: SpecFile) -> None:
    ran = cli("eval", spec_file("function: [unclosed\n"))
    assert ran.exit_code == ExitCode.BAD_INPUT


def test_function(cli: Cli, spec_file: SpecFile) -> None:
    spec_file("def f(x):\n    raise ValueError('boom')\n", "boom.py")
    ran = cli("eval", spec_file("function: boom.py:f\nprimals: {x: 1.0}\n"))
    assert ran.exit_code == ExitCode.FUNCTION and "boom" in ran.stderr


def test_non_finite(cli: Cli) -> None:
    ran = cli("eval", "-f", "jnp.log(x)", "-p", "x=-1.0", "--check-finite")
    assert ran.exit_code == ExitCode.NON_FINITE


def _raising(exc: BaseException) -> object:
    def compute(*args: object, **kwargs: object) -> object:
        raise exc

    return compute


@pytest.mark.parametrize(
    ("raised", "code", "said"),
    [
        (RuntimeError("a bug"), ExitCode.INTERNAL, "internal error: RuntimeError: a bug"),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED, "interrupted"),
        (signals.Interrupted(), ExitCode.INTERRUPTED, "interrupted"),
        (signals.Terminated(), ExitCode.TERMINATED, "terminated"),
        (OutputClosed(), ExitCode.OUTPUT_CLOSED, ""),
    ],
    ids=["internal", "ctrl-c", "sigint", "sigterm", "output-closed"],
)
def test_what_jaxdiff_does_not_decide(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, raised: BaseException, code: ExitCode, said: str
) -> None:
    monkeypatch.setattr(operations, "compute", _raising(raised))
    ran = cli("eval", "-f", "x", "-p", "x=1.0")
    assert ran.exit_code == code
    assert said in ran.stderr if said else ran.stderr == ""
    assert "Traceback" not in ran.stderr


TESTED = {
    ExitCode.OK: test_ok,
    ExitCode.CHECK_FAILED: test_check_failed,
    ExitCode.USAGE: test_usage,
    ExitCode.BAD_INPUT: test_bad_input,
    ExitCode.FUNCTION: test_function,
    ExitCode.NON_FINITE: test_non_finite,
    ExitCode.INTERNAL: test_what_jaxdiff_does_not_decide,
    ExitCode.INTERRUPTED: test_what_jaxdiff_does_not_decide,
    ExitCode.TERMINATED: test_what_jaxdiff_does_not_decide,
    ExitCode.OUTPUT_CLOSED: test_what_jaxdiff_does_not_decide,
}


def test_every_exit_code_has_a_test() -> None:
    assert set(TESTED) == set(ExitCode), f"no test here for {sorted(set(ExitCode) - set(TESTED))}"
