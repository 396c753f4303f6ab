"""The terminal: results and pictures on stdout, progress, warnings and errors on stderr, JSON on stdout.

Progress shows only on a terminal and never with --json or --quiet; it is decided before Rich is
imported, so scripts (--json, pipes) do not pay for it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxdiff_cli.errors import ExitCode, NonFiniteError, OutputClosed
from jaxdiff_cli.safetext import printable, printable_lines

if TYPE_CHECKING:
    from jaxdiff_cli.checks.check import Report
    from jaxdiff_cli.engine.problem import Result
    from jaxdiff_cli.inputs.cases import Step
    from jaxdiff_cli.operations import BenchOutcome, CaseOutcome, Outcome, RunOutcome, SparsityOutcome
    from jaxdiff_cli.starter import Starter
    from jaxdiff_cli.target import Target


def Console(**options: Any) -> Any:
    """A Rich console whose closed pipe is our OutputClosed: Rich's own answer, SystemExit(1), would
    read as a failed check (exit 1), or as an internal error where SystemExit is caught.

    It also writes only printable text (safetext): each renderer makes names printable before the
    layout, and this is the net under them, so a name one forgot still cannot reach the terminal as
    an escape sequence. Rich's own styles and cursor moves are not text segments: untouched.
    """
    from rich.console import Console as Rich
    from rich.console import ConsoleOptions, RenderableType
    from rich.segment import Segment

    class Closing(Rich):
        def on_broken_pipe(self) -> None:
            _silence_stdout()
            raise OutputClosed

        def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterator[Segment]:
            for segment in super().render(renderable, options):
                if segment.control is None and not segment.text.isprintable() and segment.text != "\n":
                    segment = Segment(printable_lines(segment.text), segment.style)
                yield segment

    return Closing(**options)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail again."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def write(text: str) -> None:
    """Text on stdout, its lines printable (safetext); a closed pipe is OutputClosed."""
    try:
        sys.stdout.write(printable_lines(text))
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise OutputClosed from None


def stderr() -> Any:
    return Console(stderr=True, highlight=False)


def say(prefix: str, text: str) -> None:
    """One line on stderr: ``error: ...``, ``warning: ...``, ``note: ...`` (control characters escaped)."""
    stderr().print(printable(f"{prefix}: {text}" if prefix else text), markup=False, highlight=False, soft_wrap=True)


def show_cache_warnings() -> None:
    """The engine's CacheWarning (a cache it will not use: engine/runtime.py) as one ``warning:``
    line on stderr; every other Python warning as before."""
    import warnings

    from jaxdiff_cli.errors import CacheWarning

    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
        if issubclass(category, CacheWarning):
            say("warning", str(message))
        else:
            shown(message, category, *rest, **kw)

    warnings.showwarning = show
    warnings.simplefilter("always", CacheWarning)  # once is runtime's own rule, whatever -W says


def print_json(doc: Mapping[str, Any]) -> None:
    """One JSON document on stdout, UTF-8 (RFC 8259: non-finite numbers were encoded as strings before)."""
    from jaxdiff_cli.encoding import dumps

    data = dumps(doc) + b"\n"
    try:
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text-only stream (an embedding program's): the same text
            sys.stdout.write(data.decode())
        else:
            buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        raise OutputClosed from None


def print_lines(lines: list[str]) -> None:
    """Plain lines on stdout (GitHub workflow commands: no wrapping, no markup), each one line."""
    write("".join(printable(line) + "\n" for line in lines))


def print_result(title: str, result: Result, device: str, dtype: str, saved: Path | None = None) -> None:
    """One result on the terminal: its arrays, then device, dtype, compile and run time."""

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

    Console(highlight=False).print(renderable)


UNWRAPPED = 2**16  # columns: wider than any row of check's table, so none is wrapped


def print_table(renderable: Any) -> None:
    """A table on stdout: as wide as the terminal on one, and off one (a CI log, a file) never
    wrapped, each row one line as wide as it needs. A CI log is read at any width, and a row folded
    over 3 to 8 lines at 80 columns is hard to read and to grep."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=UNWRAPPED)
    console.print(renderable)


def show_pictures(outcome: Outcome, to_stderr: bool) -> None:
    """The heatmap and summary; on stderr with --json, so stdout stays one JSON document."""
    from jaxdiff_cli.operations import sparse_result

    pictures = outcome.pictures
    found = sparse_result(outcome.result)
    if (outcome.matrix is None and found is None) or outcome.summary is None or pictures is None:
        return
    # Only now: Rich's text and the heatmap cost ~50 ms of imports that a plain result never uses.
    from rich.text import Text

    from jaxdiff_cli.output.terminal import heatmap, spy, summary_text

    console = Console(stderr=to_stderr, highlight=False)
    if pictures.terminal and outcome.matrix is not None:
        console.print(heatmap(outcome.matrix, width=console.width))
    elif (
        pictures.terminal and to_stderr and found is not None
    ):  # too large for a heatmap: the spy, which the terminal shows anyway
        console.print(spy(found, width=console.width))
    console.print(Text(summary_text(outcome.summary)))
    if pictures.file is not None:  # the spec's plot.file: its folder's name is the pull request's
        console.print(Text(printable(f"picture saved to {pictures.file}")))


def show_outcome(outcome: Outcome, *, json_: bool, quiet: bool, check_finite: bool) -> None:
    """Show, save and draw a computing command's outcome; results are shown and saved before any exit 5."""
    from jaxdiff_cli.operations import finite_or_fail, nonfinite_error, sparse_result
    from jaxdiff_cli.output import render

    if not outcome.leader:  # several processes computed this together; process 0 alone prints and writes
        finite_or_fail(outcome, check_finite)
        return
    target = outcome.target
    doc: dict[str, Any] = {}
    if json_ or (target is not None and target.kind == "json"):
        # Only when asked for: every value becomes a Python number, slow for a large Jacobian.
        doc = render.outcome_json(outcome)
    found = sparse_result(outcome.result)
    title = render.file_title(outcome.command, outcome.spec)
    if outcome.pictures is not None and outcome.pictures.file is not None and outcome.matrix is not None:
        from jaxdiff_cli.output.pictures import save_figure

        save_figure(
            outcome.matrix, outcome.pictures.file, spy=outcome.pictures.spy, title=title, source=outcome.pictures.file_source
        )
    elif outcome.pictures is not None and outcome.pictures.file is not None and found is not None:
        from jaxdiff_cli.output.pictures import save_spy_figure

        save_spy_figure(found, outcome.pictures.file, title=title, source=outcome.pictures.file_source)
    if target is not None:
        _save_outcome(outcome, target, doc, title)
    nonfinite = nonfinite_error(outcome, check_finite)
    if json_:
        print_json(doc if nonfinite is None else render.with_error(doc, nonfinite))  # one document, always
        if nonfinite is not None:
            nonfinite.in_json = True
    elif not quiet:
        saved = target.path if target is not None else None
        print_result(render.outcome_title(outcome), outcome.result, outcome.prep.runtime.device_name, outcome.spec.dtype, saved)
        if found is not None:
            from jaxdiff_cli.output.terminal import spy

            print_renderable(spy(found, width=_width()))
    if not quiet:
        show_pictures(outcome, to_stderr=json_)
        for w in render.outcome_warnings(outcome):
            say("warning", w)
    if nonfinite is not None:
        raise nonfinite
    if outcome.nonfinite and not quiet:
        say("warning", outcome.nonfinite)


def _save_outcome(outcome: Outcome, target: Target, doc: dict[str, Any], title: str) -> None:
    """-o FILE, by its kind: the one dispatch to save.py and matrixfile.py."""
    from jaxdiff_cli.operations import sparse_result
    from jaxdiff_cli.output import matrixfile, render, save

    found = sparse_result(outcome.result)
    match target.kind:
        case "mtx" | "npz" if found is not None:  # scipy's sparse .npz, or Matrix Market
            matrixfile.save_matrix(target.path, found, title=title)
        case "mtx":  # a dense matrix: its nonzeros, made by operations.compute
            from jaxdiff_cli.engine.sparse import blocks

            assert outcome.single_array is not None
            rows, cols = blocks(outcome.prep.problem, outcome.command)
            matrixfile.save_dense_matrix(target.path, outcome.single_array[0], rows, cols, title=title)
        case _ if outcome.streamed:  # written chunk by chunk already
            return
        case _:
            save.save(target, render.arrays(outcome), doc)


def _width() -> int:

    return int(Console().width)


def show_sparsity(outcome: SparsityOutcome, *, json_: bool, quiet: bool, plot_file: Path | None) -> None:
    """`jaxdiff sparsity`: the pattern and coloring on the terminal (with its spy picture), as JSON, in files."""
    from rich.text import Text

    from jaxdiff_cli.output import render, save
    from jaxdiff_cli.output.terminal import spy

    target = outcome.target
    title = render.file_title(f"sparsity of the {outcome.op}", outcome.spec)
    doc = render.sparsity_json(outcome) if json_ or (target is not None and target.kind == "json") else {}
    if plot_file is not None:
        from jaxdiff_cli.output.pictures import save_spy_figure

        save_spy_figure(outcome.pattern, plot_file, title=title)
    if target is not None and target.kind == "json":
        save.save(target, {}, doc)
    elif target is not None:
        from jaxdiff_cli.output import matrixfile

        matrixfile.save_matrix(target.path, outcome.pattern, title=title)
    if json_:
        print_json(doc)
        return
    if quiet:
        return
    info = outcome.info
    lines: list[Any] = [Text(printable(render.sparsity_title(outcome)), style="bold")]
    if info.get("reason"):
        lines.append(Text(printable(f"auto chose {info['mode']} ({info['reason']})"), style="cyan"))
    lines.append(Text(render.sparse_text(outcome.pattern, _width() - 2)))
    lines.append(spy(outcome.pattern, width=_width()))
    footer = f"device {outcome.prep.runtime.device_name}  dtype {outcome.spec.dtype}"
    lines += [Text(footer, style="dim")] + ([Text(printable(f"saved {target.path}"))] if target is not None else [])
    lines += [Text(printable(f"picture saved to {plot_file}"))] if plot_file is not None else []
    from rich.console import Group

    print_renderable(Group(*lines))


def show_bench(outcome: BenchOutcome, *, json_: bool, quiet: bool) -> None:
    """`jaxdiff bench`: the table of modes, the recommendation, and what auto would choose (or the document)."""
    from jaxdiff_cli.output import render

    if json_:
        print_json(render.bench_json(outcome))
        return
    if quiet:
        return
    title = f"{render.file_title(outcome.op, outcome.spec)} on {outcome.device}, {outcome.spec.dtype}"
    print_renderable(render.bench_table(title, outcome.timings, outcome.op))
    for line in (outcome.recommendation and f"recommended: {outcome.recommendation}", outcome.auto):
        if line:
            print_renderable(line)


def show_devices(rows: list[dict[str, Any]], *, json_: bool) -> None:
    """`jaxdiff devices`: a table, or the document."""
    from jaxdiff_cli.operations import versions
    from jaxdiff_cli.output import render

    if json_:
        print_json(render.envelope("devices", versions(), devices=rows))
    else:
        print_renderable(render.devices_table(rows))


def show_check(reports: list[Report], *, output_format: str, quiet: bool, junit_xml: Path | None) -> None:
    """`jaxdiff check`: the JUnit report and the job summary, then the document, the annotations or the table.

    check's verdict is its exit status: a reader that stops early (| head) must not turn a pass
    into 141 under `set -o pipefail`, so a closed stdout ends the output quietly.
    """
    from jaxdiff_cli.operations import versions
    from jaxdiff_cli.output import render
    from jaxdiff_cli.output import reports as ci

    if junit_xml is not None:
        ci.write_junit(junit_xml, ci.junit_xml(reports, versions()))
    problem = ci.write_step_summary(reports)  # in GitHub Actions; the verdict stays the check's
    if problem is not None:
        say("warning", problem)
    with contextlib.suppress(OutputClosed):
        if output_format == "json":
            print_json(render.check_json(reports, versions()))
        if output_format == "github":
            print_lines(ci.github_annotations(reports))
        if output_format != "json" and not quiet:
            print_table(render.check_table(reports))
        elif output_format != "json":  # --quiet hides the table, not why the exit status is 3 or 4
            for report in reports:
                if report.error is not None:
                    say("error", report.error.render())


def show_step(case: CaseOutcome, step: Step, result: Result) -> None:
    """`jaxdiff run`: one step's result, as soon as it is computed."""
    print_result(f"{case.name}: {step.label}", result, case.device or "", case.spec.dtype)


def show_starter(starter: Starter, output: Path | None) -> None:
    """`jaxdiff init`: the starter spec on stdout, or written to a new file (then what to do next, on stderr)."""
    from jaxdiff_cli.output import save

    if starter.warning is not None:
        say("warning", starter.warning)
    if output is None:
        write(starter.text)
        return
    save.write_new_file(output, starter.text)
    sys.stderr.write(f"wrote {output}; next: jaxdiff check --update {output}\n")
    sys.stderr.flush()


def show_run(outcome: RunOutcome, *, target: Target | None, json_: bool, quiet: bool, check_finite: bool) -> ExitCode:
    """`jaxdiff run`: warnings, -o FILE and the document; the exit status is the first failing case's.

    Each result was shown as it was computed (operations.run_cases' on_step), and each failing
    case's error as it failed (on_error), so that status is returned, not raised again.
    """
    from jaxdiff_cli.output import render, save

    doc = render.run_json(outcome)
    nonfinite = None
    if outcome.nonfinite and check_finite and outcome.first_error is None:
        nonfinite = NonFiniteError(outcome.nonfinite, where="--check-finite")
        doc = render.with_error(doc, nonfinite)  # one JSON document: the results and the error
        nonfinite.in_json = json_
    if not quiet:
        for warning in render.run_warnings(outcome) + ([outcome.nonfinite] if outcome.nonfinite else []):
            say("warning", warning)
    if target is not None:
        save.save(target, outcome.arrays(), doc)
    if json_:
        print_json(doc)
    if outcome.first_error is not None:
        return outcome.first_error.exit_code
    if nonfinite is not None:
        raise nonfinite
    return ExitCode.OK


def _plain(text: str) -> str:
    """Progress text from a spec (case names, paths): no control characters, and no Rich markup,
    which status lines and progress bars would otherwise render ([link=...] makes a hyperlink)."""
    from rich.markup import escape

    return escape(printable(text))


class TerminalProgress:
    """A spinner for stages and a bar for counted steps, on stderr (operations.Progress)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.bar: Any = None
        self.task: Any = None

    def stage(self, text: str) -> contextlib.AbstractContextManager[Any]:
        text = _plain(text)
        if self.bar is not None:  # a bar is showing: the stage is its description
            self.bar.update(self.task, description=text)
            return contextlib.nullcontext()
        return self.console.status(text)  # type: ignore[no-any-return]

    def advance(self, text: str, done: int | None = None, total: int | None = None) -> None:
        text = _plain(text)
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # step k of N, what it is doing, and how long it has run (a remaining time is a guess
            # for steps as unequal as specs)
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.bar = Progress(*columns, console=self.console, transient=True)
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
