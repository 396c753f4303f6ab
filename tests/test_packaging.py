"""The distribution as PyPI would get it: built offline with the real `build` (dev dependencies), then opened."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_sdist_holds_what_the_tests_need_and_the_wheel_its_license_and_types(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        inside = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    # every test, config and asset, and the files the tests read (README examples, the pre-commit hook)
    wanted = {
        p.relative_to(ROOT).as_posix()
        for folder in ("tests", "configs", "docs")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    wanted |= {"README.md", "LICENSE", ".pre-commit-hooks.yaml", "pyproject.toml", "jaxdiff_cli/py.typed"}
    assert sorted(wanted - inside) == []
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        metadata = next(whl.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert {"jaxdiff_cli/py.typed", "jaxdiff_cli/spec.schema.json"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata and "Classifier: Typing :: Typed" in metadata
    assert "Requires-Python: >=3.11" in metadata  # pip on Python 3.10 refuses it, not installs a jax it cannot run
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()


def test_the_python_and_jax_floors_agree_with_what_the_code_uses() -> None:
    """Python >= 3.11 and jax >= 0.8.0: jax.enable_x64 (the checks' float64 references) came in jax 0.8.0,
    and jax needs Python 3.11 from 0.7. ruff's target and the classifiers follow requires-python."""
    import tomllib

    import jax

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert "jax>=0.8.0" in project["project"]["dependencies"] and "jaxlib>=0.8.0" in project["project"]["dependencies"]
    python = "Programming Language :: Python :: 3."
    versions = [c.rsplit(" ", 1)[-1] for c in project["project"]["classifiers"] if c.startswith(python)]
    assert versions and all(tuple(map(int, v.split("."))) >= (3, 11) for v in versions)
    assert callable(jax.enable_x64)
    uses = [p for p in (ROOT / "jaxdiff_cli").rglob("*.py") if "jax.enable_x64(" in p.read_text()]
    assert uses  # what sets the floor: if no module uses it any more, the floor may come down
