"""Outputs are written atomically: a run killed or interrupted mid-write leaves the old file or none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import Cli

SMALL = ["eval", "-f", "x * 2", "-p", "x={ones: [100, 100]}", "-q"]
# The write waits this long once its temporary file exists (a hook for tests in save.atomic_path):
# the signal, sent as soon as the test sees that file, lands mid-write every time.
HOLD = {"JAXDIFF_TEST_HOLD_WRITE": "60"}


def _jaxdiff() -> str:
    return str(Path(sys.executable).parent / "jaxdiff")


def _start_and_signal(tmp_path: Path, target: Path, sig: int) -> subprocess.Popen[bytes]:
    """Start a write; send ``sig`` once its temporary file exists (the write is held open there)."""
    proc = subprocess.Popen(
        [_jaxdiff(), *SMALL, "-o", str(target)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **HOLD},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(f".{target.name}.") for p in tmp_path.iterdir()):
            proc.send_signal(sig)
            break
        time.sleep(0.01)
    else:
        proc.kill()
        pytest.fail("the write finished or never started before the signal")
    proc.wait(timeout=60)
    return proc


@pytest.mark.parametrize("old", [True, False], ids=["replacing", "new"])
def test_killed_mid_write_leaves_old_file_or_none(tmp_path: Path, old: bool) -> None:
    target = tmp_path / "out.npz"
    if old:
        np.savez(target, value=np.arange(3.0))
    proc = _start_and_signal(tmp_path, target, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    if old:
        with np.load(target) as f:
            np.testing.assert_array_equal(f["value"], np.arange(3.0))  # the old file, whole
    else:
        assert not target.exists()


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")], ids=["ctrl-c", "sigterm"]
)
def test_signal_mid_write_exits_with_its_status_and_leaves_nothing(tmp_path: Path, sig: int, code: int, word: str) -> None:
    target = tmp_path / "out.npz"
    proc = _start_and_signal(tmp_path, target, sig)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == code, stderr
    assert stderr == f"{word}\n"  # one line, no traceback
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file was removed too


def test_a_late_signal_still_gives_its_status(tmp_path: Path) -> None:
    """A signal after the write (while the result is printed, or JAX shuts down) is never a bare -2."""
    proc = subprocess.Popen(
        [_jaxdiff(), "eval", "-f", "x * 2", "-p", "x=[1.0]", "-o", str(tmp_path / "r.npy")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "r.npy").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    # Either the signal landed before the status was decided (130, "interrupted") or after (0):
    # never a bare -2, never a traceback.
    assert (proc.returncode, err.strip()) in {(130, b"interrupted"), (0, b"")}, (proc.returncode, err)


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "r.npy"
    subprocess.run([_jaxdiff(), "eval", "-f", "x", "-p", "x=[1.0]", "-o", str(target), "-q"], check=True, timeout=120)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("columns", ["60", "80"])
def test_check_table_never_splits_a_number(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    """In a narrow CI log a number split over two lines (-4.247665e-1 / 8) reads as another number."""
    monkeypatch.setenv("COLUMNS", columns)
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "function: x * 1.0e-9\nprimals: {x: [-4.247665, 6.479936]}\ndtype: float64\nexpect:\n  value: [-4.0e-9, 6.0e-9]\n"
    )
    ran = cli("check", spec)
    assert ran.exit_code == ExitCode.CHECK_FAILED
    lines = ran.stdout.splitlines()
    assert any("6.479936e-09" in line and "6e-09" in line for line in lines), ran.stdout


def _with_stdout_closed(*args: str) -> subprocess.CompletedProcess[str]:
    """jaxdiff with a stdout whose reader is already gone (`| head` that has read its lines)."""
    read, write = os.pipe()
    os.close(read)
    try:
        jaxdiff = str(Path(sys.executable).parent / "jaxdiff")
        return subprocess.run([jaxdiff, *args], stdout=write, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    finally:
        os.close(write)


def test_a_closed_stdout_is_141_and_silent(tmp_path: Path) -> None:
    ran = _with_stdout_closed("jacobian", "-f", "jnp.sin(x)", "-p", "x={ones: 50}")
    assert ran.returncode == 141 and ran.stderr == "", ran.stderr


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_check_keeps_its_verdict_when_stdout_is_closed(tmp_path: Path, fmt: str) -> None:
    """Under `set -o pipefail`, `jaxdiff check ... | head` must pass or fail as the checks did."""
    good = tmp_path / "good.yaml"
    good.write_text("function: x**2\nprimals: {x: [1.0]}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("function: x**2\nprimals: {x: [1.0]}\nexpect: {value: [2.0]}\n")
    assert _with_stdout_closed("check", str(good), "--output-format", fmt).returncode == 0
    ran = _with_stdout_closed("check", str(bad), "--output-format", fmt)
    assert ran.returncode == 1 and "internal error" not in ran.stderr
