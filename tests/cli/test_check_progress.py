"""check over several specs shows a progress bar on a terminal (spec k of N, the current spec,
elapsed), on stderr, and nothing extra off a terminal (issue 25.5)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def _specs(tmp_path: Path) -> list[str]:
    paths = []
    for i, fn in enumerate(("x * 2.0", "jnp.sin(x)")):
        path = tmp_path / f"s{i}.yaml"
        path.write_text(f'function: "{fn}"\nprimals: {{x: [0.5, 1.0]}}\n')
        paths.append(str(path))
    return paths


def test_a_terminal_shows_spec_k_of_n_the_spec_and_the_time(tmp_path: Path, monkeypatch: Any) -> None:
    from rich.console import Console

    from jaxdiff_cli import operations
    from jaxdiff_cli.checks.check import Settings
    from jaxdiff_cli.output.console import TerminalProgress

    monkeypatch.setenv("TERM", "xterm")  # conftest pins a dumb terminal, where Rich draws no live bar
    out = io.StringIO()
    shown = TerminalProgress(Console(file=out, force_terminal=True, force_interactive=True, width=120, color_system=None))
    try:
        reports = operations.check(_specs(tmp_path), Settings(), shown)
    finally:
        shown.close()
    text = out.getvalue()
    assert [r.passed for r in reports] == [True, True]
    assert "1/2" in text and "s1.yaml" in text  # the second spec, as spec 2 of 2 starts
    assert "0:00:" in text  # elapsed


def test_off_a_terminal_check_writes_no_progress(cli: Any, tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    for extra in ((), ("--json",), ("-q",)):
        ran = cli("check", *specs, *extra)
        assert ran.exit_code == 0, ran.stdout + ran.stderr
        assert ran.stderr == ""


def test_json_and_quiet_ask_for_no_progress_even_on_a_terminal(monkeypatch: Any) -> None:
    import sys

    from jaxdiff_cli.operations import Silent
    from jaxdiff_cli.output import console

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with console.progress(False) as shown:  # what check passes for --json and -q
        assert isinstance(shown, Silent)
    with console.progress(True) as shown:
        assert isinstance(shown, console.TerminalProgress)
