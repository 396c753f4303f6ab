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

BIG = ["eval", "-f", "x * 2", "-p", "x={ones: [6000, 6000]}", "-q"]  # a 144 MB .npz


def _jaxdiff() -> str:
    return str(Path(sys.executable).parent / "jaxdiff")


def _start_and_signal(tmp_path: Path, target: Path, sig: int) -> subprocess.Popen[bytes]:
    """Start a big write; send ``sig`` once its temporary file exists (that is, mid-write)."""
    proc = subprocess.Popen([_jaxdiff(), *BIG, "-o", str(target)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(f".{target.name}.") for p in tmp_path.iterdir()):
            proc.send_signal(sig)
            break
        time.sleep(0.002)
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


def test_ctrl_c_mid_write_exits_130_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.npz"
    proc = _start_and_signal(tmp_path, target, signal.SIGINT)
    assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary file was removed too
    assert b"Traceback" not in (proc.stderr.read() if proc.stderr else b"")


def test_written_files_get_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "r.npy"
    subprocess.run([_jaxdiff(), "eval", "-f", "x", "-p", "x=[1.0]", "-o", str(target), "-q"], check=True, timeout=120)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
