"""What a red team found after the allowlist landed, each now refused (or bounded) and tested.

A spec from a pull request must not write to the CI log as if it were jaxdiff, switch its own check
off, make one spec run another spec's module, read files outside its folder through a glob, or make
jaxdiff work for minutes and gigabytes before a limit refuses it.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import Cli, SpecFile

JAXDIFF = str(Path(sys.executable).parent / "jaxdiff")


# --------------------------------------------------------------------------- the CI log


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'function: x**2\nprimals: {x: [1.0]}\nrun: [eval]\ncases: [{name: "a\\n::error::PWNED"}]\n',
            "the case name 'a\\n::error::PWNED' holds a control character",
        ),
        ('function: x**2\nprimals: {x: [1.0]}\nexpect: {"value\\n::error::PWNED": [1.0]}\n', "holds a control character"),
    ],
)
def test_control_characters_in_names_are_refused(cli: Cli, tmp_path: Path, text: str, message: str, spec_file: SpecFile) -> None:
    for command in ("run", "check"):
        ran = cli(command, spec_file(text, "s.yaml"))
        out = ran.stdout + ran.stderr
        assert ran.exit_code == ExitCode.BAD_INPUT and message in " ".join(out.split())
        assert not any(line.startswith("::error") for line in out.splitlines()), out


def test_a_control_character_in_a_message_is_escaped(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    ran = cli("eval", spec_file('function: x\nprimals: {x: {file: "a\\n::error::PWNED.npy"}}\n', "s.yaml"))
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert ran.stderr.count("\n") == 1 and "a\\n::error::PWNED.npy" in ran.stderr


def test_rich_markup_in_a_name_is_shown_not_rendered(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    ran = cli(
        "check", spec_file("function: x**2\nprimals: {x: [1.0]}\nexpect: {'value[link=file:///etc/passwd]': [1.0]}\n", "s.yaml")
    )
    assert "[link=file:///etc/passwd]" in ran.stdout + ran.stderr


# --------------------------------------------------------------------------- switching check off


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ("{value: 99.0, atol: 1.0e+300}", "atol 1e+300 would accept values far from the expected ones"),
        ("{value: 99.0, rtol: 0.999999999}", "rtol 1 would accept values 100% away"),
        ("{value: {value: 99.0, atol: 5.0}}", "atol 5 would accept"),
    ],
)
def test_tolerances_cannot_accept_anything(cli: Cli, tmp_path: Path, expect: str, message: str, spec_file: SpecFile) -> None:
    ran = cli("check", spec_file(f"function: jnp.sum(x)\nprimals: {{x: [1.0]}}\nexpect: {expect}\n", "s.yaml"), "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert message in ran.json()["specs"][0]["error"]["message"]


def test_a_derivative_without_any_usable_reference_does_not_pass(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    # f is finite at x = 1 and NaN at every other point, so no finite difference exists; its AD
    # derivative (1) is wrong (the true one is cos 1). Comparing nothing must not pass.
    text = "function: 'lambda x: jnp.where(x == 1.0, x + lax.stop_gradient(jnp.sin(x) - x), jnp.nan)'\nprimals: {x: 1.0}\n"
    ran = cli("check", spec_file(text, "s.yaml"), "--json")
    assert ran.exit_code == ExitCode.CHECK_FAILED
    failed = [c for c in ran.json()["specs"][0]["checks"] if not c["passed"]]
    assert failed and all("no entry has a usable reference" in c["detail"] for c in failed if "FD" in c["name"])


# --------------------------------------------------------------------------- one spec, one module


def test_each_spec_gets_the_module_next_to_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_file: SpecFile
) -> None:
    monkeypatch.chdir(tmp_path)
    for folder, factor in (("a", 2.0), ("b", 3.0)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "redmod.py").write_text(f"def f(x):\n    return {factor} * x\n")
        spec_file(f"function: redmod:f\nprimals: {{x: 1.0}}\nexpect: {{value: {factor}}}\n", "s.yaml", folder=tmp_path / folder)
    ran = cli("check", "a/s.yaml", "b/s.yaml", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stdout
    sys.modules.pop("redmod", None)


# --------------------------------------------------------------------------- what a spec's YAML can cost


def test_yaml_integers_are_yaml_1_2(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    # YAML 1.1's base 60 (1:30 is 90) converts in time quadratic in its length: not an integer here.
    ran = cli("eval", spec_file("function: x\nprimals: {x: [1:30]}\n", "s.yaml"))
    assert ran.exit_code == ExitCode.BAD_INPUT and "'1:30' is not a number" in ran.stderr
    t0 = time.monotonic()
    ran = cli("eval", spec_file("function: x\nprimals: {x: 1.0}\ndescription: " + ":".join(["1"] * 200_000) + "\n", "s.yaml"))
    assert ran.exit_code == ExitCode.OK and time.monotonic() - t0 < 10
    ran = cli("eval", spec_file("function: x\nprimals: {x: 1.0}\ndescription: " + "9" * 5000 + "\n", "s.yaml"))
    assert ran.exit_code == ExitCode.BAD_INPUT and "an integer of 5,000 digits" in ran.stderr
    ran = cli("eval", spec_file("function: x\nprimals: {x: [0x10, 0o7, 12]}\n", "s.yaml"), "--json")
    assert ran.outputs()["value"].tolist() == [16.0, 7.0, 12.0]


def _npz_declaring(path: Path, shape: tuple[int, ...], members: int = 1) -> None:
    """An .npz whose members declare ``shape`` in their headers (the data itself is not there)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for k in range(members):
            archive.writestr(f"k{k}.npy", header.getvalue() + b"\0" * 16)


@pytest.mark.parametrize(
    ("shape", "members", "message"),
    [
        ((10**9,), 1, "holds 1,000,000,000 elements; at most"),
        ((2,), 20_000, "holds 20,000 arrays; at most 10,000"),
    ],
)
def test_data_files_are_sized_from_their_headers(
    cli: Cli, tmp_path: Path, shape: Any, members: int, message: str, spec_file: SpecFile
) -> None:
    _npz_declaring(tmp_path / "d.npz", shape, members)
    ran = cli("eval", spec_file("function: 'lambda x: x'\nprimals: {x: {file: d.npz}}\n", "s.yaml"))
    assert ran.exit_code == ExitCode.BAD_INPUT and message in ran.stderr


def test_a_broken_archive_or_name_is_bad_input(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    ran = cli("eval", spec_file("function: 'lambda x: x'\nprimals: {x: {file: bad.npz}}\n", "s.yaml"))
    assert ran.exit_code == ExitCode.BAD_INPUT and "cannot read bad.npz" in ran.stderr
    ran = cli("eval", spec_file("function: 'lambda x: x'\nprimals: {x: {file: " + "a" * 5000 + ".npy}}\n", "s.yaml"))
    assert ran.exit_code == ExitCode.BAD_INPUT


def test_all_the_primals_together_are_bounded(cli: Cli) -> None:
    args = [a for k in range(3) for a in ("-p", f"p{k}={{zeros: [200000000]}}")]
    ran = cli("eval", "-f", "lambda p0, p1, p2: p0[0]", *args)
    assert ran.exit_code == ExitCode.BAD_INPUT and "at most 268,435,456 in all" in ran.stderr


# --------------------------------------------------------------------------- globs


def test_a_glob_does_not_follow_a_link_out_of_its_folder(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "secret.yaml"
    outside.write_text("GITHUB_TOKEN: abc\n")
    specs = tmp_path / "repo" / "specs"
    specs.mkdir(parents=True)
    (specs / "a.yaml").symlink_to(outside)
    monkeypatch.chdir(tmp_path / "repo")
    ran = cli("check", "specs/*.yaml")
    assert ran.exit_code == ExitCode.BAD_INPUT and "is a link to" in ran.stderr and "GITHUB_TOKEN" not in ran.stderr


@pytest.mark.parametrize("pattern", ["specs/sub/*.yaml", "specs/sub/**/*.yaml", "link/*.yaml"])
def test_a_glob_whose_own_folder_is_a_link_out_is_refused(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str
) -> None:
    # The pattern's literal folder was resolved and every match checked against it, so a pull request
    # that made specs/sub (or specs/ itself) a link had its outside specs checked (red team, issue 19).
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.yaml").write_text('function: "x * 2"\nprimals: {x: 1.0}\n')
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / "specs" / "sub").symlink_to(outside)
    (repo / "link").symlink_to(outside)
    monkeypatch.chdir(repo)
    ran = cli("check", pattern)
    assert ran.exit_code == ExitCode.BAD_INPUT and "outside" in ran.stderr and "leak" not in ran.stdout, ran.stdout


def test_a_recursive_glob_does_not_walk_links_to_folders(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_file: SpecFile
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "a").symlink_to(tmp_path)
    (specs / "b").symlink_to(tmp_path)
    spec_file("function: jnp.sum(x**2)\nprimals: {x: [1.0]}\n", "s.yaml", folder=specs)
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    ran = cli("check", "specs/**/*.yaml", "--json")
    assert ran.exit_code == ExitCode.OK and len(ran.json()["specs"]) == 1 and time.monotonic() - t0 < 60


# --------------------------------------------------------------------------- what an expression can cost


@pytest.mark.parametrize(
    ("command", "fn", "message"),
    [
        ("eval", "lambda x: x + jnp.sum(jnp.array([[0.0]*10000]*10000))", "a sequence of 100000000 items"),
        ("eval", "lambda x: " + "jax.grad(" * 8 + "jnp.sin" + ")" * 8 + "(x)", "transformations nested more than 6 deep"),
        # Evaluating 900 outputs is cheap; compiling their reverse-mode Jacobian is not.
        ("jacobian", "lambda x: [[x]*30]*30", "the function returns 900 arrays; at most 256"),
    ],
)
def test_work_is_bounded_before_it_grows(cli: Cli, xla_compiles: list[Any], command: str, fn: str, message: str) -> None:
    ran = cli(command, "-f", fn, "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and message in ran.stderr, ran.stderr
    assert xla_compiles == []  # refused while tracing: the expensive step (XLA's compile) never started
    assert cli(command, "-f", "lambda x: x * 2", "-p", "x=1.0").exit_code == 0 and xla_compiles  # the count sees one


def test_a_call_returning_more_arrays_than_one_call_may_is_refused(cli: Any) -> None:
    # A chain of tree.map over 10,000 leaves: it ran out of the work budget (exit 4) after 10,000
    # sin calls; the first call's 10,000 returned arrays are refused now (issue 19.4), exit 3.
    fn = "lambda x: jnp.sum(jnp.stack(" + "jax.tree.map(jnp.sin, " * 20 + "[x]*10000" + ")" * 20 + "))"
    ran = cli("eval", "-f", fn, "-p", "x=1.0")
    assert ran.exit_code == ExitCode.BAD_INPUT and "map(...) returns 10,000 arrays" in ran.stderr, ran.stderr


def test_depth_six_of_grad_still_works(cli: Cli) -> None:
    ran = cli("eval", "-f", "lambda x: jax.grad(jax.grad(jnp.sin))(x)", "-p", "x=1.0", "--json")
    np.testing.assert_allclose(ran.outputs()["value"], -np.sin(1.0), rtol=1e-6)


# --------------------------------------------------------------------------- what a function can return


@pytest.mark.parametrize(
    ("command", "fn", "code", "message"),
    [
        ("eval", "lambda x: jax.random.key(0)", ExitCode.FUNCTION, "returned a PRNG key, not numbers"),
        (
            "jacobian",
            "lambda x: x > 0",
            ExitCode.BAD_INPUT,
            "jacobian needs float or complex outputs, but the function returns bool",
        ),
    ],
)
def test_outputs_that_are_not_numbers(cli: Cli, command: str, fn: str, code: int, message: str) -> None:
    ran = cli(command, "-f", fn, "-p", "x=[1.0]")
    assert ran.exit_code == code and message in ran.stderr


def test_check_of_an_empty_output_compares_nothing_and_says_so(cli: Cli, tmp_path: Path, spec_file: SpecFile) -> None:
    ran = cli("check", spec_file("function: 'lambda x: jnp.zeros((0,)) * x[0]'\nprimals: {x: [1.0]}\n", "s.yaml"), "--json")
    assert ran.exit_code == ExitCode.OK
    assert any(c["skipped"] and "no entries" in c["detail"] for c in ran.json()["specs"][0]["checks"])


# --------------------------------------------------------------------------- signals


@pytest.mark.slow
def test_sigterm_ends_a_run_stuck_in_xla_within_the_grace_period(tmp_path: Path) -> None:
    forever = "lambda x: lax.while_loop(lambda c: c > -1.0, lambda c: c + 1.0, x)"
    proc = subprocess.Popen(
        [JAXDIFF, "eval", "-f", forever, "-p", "x=1.0"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "JAXDIFF_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    time.sleep(6)  # compiled and running the endless loop (in XLA: no Python handler runs there)
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == ExitCode.TERMINATED and b"terminated" in err
    assert time.monotonic() - t0 < 20
