"""The installed `jaxdiff` and `python -m jaxdiff_cli`, as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from ..conftest import CONFIGS, ROOT


def _jaxdiff() -> str:
    local = Path(sys.executable).parent / "jaxdiff"
    found = str(local) if local.exists() else shutil.which("jaxdiff")
    assert found, "jaxdiff is not installed (make install)"
    return found


def test_installed_console_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [_jaxdiff(), "jvp", str(CONFIGS / "seed000_poly.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no progress or colour when stderr is not a terminal
    assert json.loads(out.stdout)["outputs"]["jvp"]["data"] == [65.353714, 35.943752, 80.87344]


def test_python_dash_m() -> None:
    out = subprocess.run([sys.executable, "-m", "jaxdiff_cli", "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("jaxdiff ")


def test_bad_spec_exit_code_from_the_shell(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("function: x\nprimals: {x: [1, 2]}\nwrt: [y]\n")
    out = subprocess.run([_jaxdiff(), "jvp", str(spec)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 3
    assert out.stderr.strip() == f"error: {spec}: wrt: 'y' is not a primal; primals are x"
