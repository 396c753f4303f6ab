"""The terminal: results and pictures on stdout, progress, warnings and errors on stderr, JSON on stdout.

Progress shows only on a terminal and never with --json or --quiet; it is decided before Rich is
imported, so scripts (--json, pipes) do not pay for it.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Result
    from jaxdiff_cli.operations import BenchOutcome, Outcome


def stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def say(prefix: str, text: str) -> None:
    """One line on stderr: ``error: ...``, ``warning: ...``, ``note: ...``."""
    stderr().print(f"{prefix}: {text}" if prefix else text, markup=False, soft_wrap=True)


def print_json(doc: Mapping[str, Any]) -> None:
    """One JSON document on stdout (RFC 8259: non-finite numbers were encoded as strings before)."""
    sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")


def print_lines(lines: list[str]) -> None:
    """Plain lines on stdout, as they are (GitHub workflow commands: no wrapping, no markup)."""
    for line in lines:
        sys.stdout.write(line + "\n")


def print_result(title: str, result: Result, device: str, dtype: str, saved: Path | None = None) -> None:
    """One result on the terminal: its arrays, then device, dtype, compile and run time."""
    from rich.console import Console

    from jaxdiff_cli.output.render import rich_result

    console = Console(highlight=False)
    footer = {
        "device": device,
        "dtype": dtype,
        "compile": f"{result.timing.compile_s * 1e3:.1f} ms",
        "run": f"{result.timing.run_s * 1e3:.2f} ms",
    }
    if saved is not None:
        footer["saved"] = str(saved)
    console.print(rich_result(title=title, outputs=result.outputs, info=result.info, footer=footer, width=console.width))


def print_renderable(renderable: Any) -> None:
    from rich.console import Console

    Console(highlight=False).print(renderable)


def show_pictures(outcome: Outcome, to_stderr: bool) -> None:
    """The heatmap and summary; on stderr with --json, so stdout stays one JSON document."""
    from rich.console import Console
    from rich.text import Text

    from jaxdiff_cli.output.terminal import heatmap, summary_text

    pictures = outcome.pictures
    if outcome.matrix is None or outcome.summary is None or pictures is None:
        return
    console = Console(stderr=to_stderr, highlight=False)
    if pictures.terminal:
        console.print(heatmap(outcome.matrix, width=console.width))
    console.print(Text(summary_text(outcome.summary)))
    if pictures.file is not None:
        console.print(Text(f"picture saved to {pictures.file}"))


def show_outcome(outcome: Outcome, *, json_: bool, quiet: bool, output: Path | None, check_finite: bool) -> None:
    """Show, save and draw a computing command's outcome; results are shown and saved before any exit 5."""
    from jaxdiff_cli.operations import finite_or_fail
    from jaxdiff_cli.output import render, save

    if not outcome.leader:  # several processes computed this together; process 0 alone prints and writes
        finite_or_fail(outcome, check_finite)
        return
    doc: dict[str, Any] = {}
    if json_ or (output is not None and output.suffix.lower() == ".json"):
        # Only when asked for: every value becomes a Python number, slow for a large Jacobian.
        doc = render.outcome_json(outcome)
    if outcome.pictures is not None and outcome.pictures.file is not None and outcome.matrix is not None:
        from jaxdiff_cli.output.pictures import save_figure

        title = f"{outcome.command} of {' '.join(outcome.spec.function.split())[:60]}"
        save_figure(outcome.matrix, outcome.pictures.file, spy=outcome.pictures.spy, title=title)
    if output is not None and not outcome.streamed:
        save.save(output, render.arrays(outcome), doc)
    if json_:
        print_json(doc)
    elif not quiet:
        print_result(outcome.title, outcome.result, outcome.prep.runtime.device_name, outcome.spec.dtype, saved=output)
    if not quiet:
        show_pictures(outcome, to_stderr=json_)
        for w in outcome.warnings:
            say("warning", w)
    finite_or_fail(outcome, check_finite)
    if outcome.nonfinite and not quiet:
        say("warning", outcome.nonfinite)


def show_bench(outcome: BenchOutcome) -> None:
    """`jaxdiff bench`: the table of modes, the recommendation, and what auto would choose."""
    from jaxdiff_cli.output.render import bench_table

    title = f"{outcome.op} of {' '.join(outcome.spec.function.split())[:60]} on {outcome.device}, {outcome.spec.dtype}"
    print_renderable(bench_table(title, outcome.timings, outcome.op))
    for line in (outcome.recommendation and f"recommended: {outcome.recommendation}", outcome.auto):
        if line:
            print_renderable(line)


class TerminalProgress:
    """A spinner for stages and a bar for counted steps, on stderr (operations.Progress)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.bar: Any = None
        self.task: Any = None

    def stage(self, text: str) -> contextlib.AbstractContextManager[Any]:
        if self.bar is not None:  # a bar is showing: the stage is its description
            self.bar.update(self.task, description=text)
            return contextlib.nullcontext()
        return self.console.status(text)  # type: ignore[no-any-return]

    def advance(self, text: str, done: int | None = None, total: int | None = None) -> None:
        if self.bar is None:
            from rich.progress import Progress

            self.bar = Progress(console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(text, total=total)
        if done is None:
            self.bar.update(self.task, advance=1, description=text)
        else:
            self.bar.update(self.task, completed=done, total=total, description=text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@contextlib.contextmanager
def progress(enabled: bool) -> Iterator[Any]:
    """A Progress for operations: on a terminal when enabled, else one that shows nothing."""
    from jaxdiff_cli.operations import Silent

    if not enabled or not sys.stderr.isatty():
        yield Silent()
        return
    shown = TerminalProgress(stderr())
    try:
        yield shown
    finally:
        shown.close()
