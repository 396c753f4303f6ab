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
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text()
