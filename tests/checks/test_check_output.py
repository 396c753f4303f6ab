"""`jaxdiff check`'s whole output, text and --json, on a suite with deliberate failures of every kind
(a wrong golden value, a wrong custom_jvp and custom_vjp rule, a kink, a NaN, a misspelt expect key,
cases:, has_aux, an input above the column-by-column limit), against the output recorded from the
code before check shared and fused its programs (issue 25): the same verdicts, rows and messages.

The golden files were written by ``record()`` below, run on the code before that change
(``python -c "from tests.checks.test_check_output import record; record()"``); they are never
rewritten by the test itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

SUITE = "tests/assets/scale_suite"
GOLDEN = ROOT / "tests" / "golden"


def _specs() -> list[str]:
    return sorted(f"{SUITE}/{p.name}" for p in (ROOT / SUITE).glob("*.yaml"))


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    """The JSON document without what depends on the installed versions."""
    return {k: v for k, v in doc.items() if k not in ("jaxdiff_version", "versions")}


def run_check(*extra: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from jaxdiff_cli.cli import app

    result = CliRunner().invoke(app, ["check", *_specs(), *extra])
    return result.exit_code, result.stdout


def record() -> None:  # pragma: no cover - run by hand, on the old code only
    import os

    os.chdir(ROOT)
    code, text = run_check()
    (GOLDEN / "check_suite.txt").write_text(f"exit {code}\n{text}", encoding="utf-8")
    code, out = run_check("--json")
    doc = {"exit": code, "document": _stable(json.loads(out))}
    (GOLDEN / "check_suite.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)  # the reports name the specs by the paths given, relative to here
    return ROOT


@pytest.mark.slow
def test_text_output_as_recorded(at_root: Path) -> None:
    code, text = run_check()
    assert f"exit {code}\n{text}" == (GOLDEN / "check_suite.txt").read_text(encoding="utf-8")


@pytest.mark.slow
def test_json_output_as_recorded(at_root: Path) -> None:
    code, out = run_check("--json")
    recorded = json.loads((GOLDEN / "check_suite.json").read_text(encoding="utf-8"))
    assert code == recorded["exit"] == 3  # the misspelt key: exit 3, and every other spec still checked
    assert _stable(json.loads(out)) == recorded["document"]
