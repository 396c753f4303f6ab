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

from jaxdiff_cli.errors import OutputClosed
from jaxdiff_cli.safetext import printable, printable_lines

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Result
    from jaxdiff_cli.operations import BenchOutcome, Outcome, SparsityOutcome


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
    elif pictures.terminal and to_stderr:  # too large for a heatmap: the spy, which the terminal shows anyway
        console.print(spy(found, width=console.width))
    console.print(Text(summary_text(outcome.summary)))
    if pictures.file is not None:  # the spec's plot.file: its folder's name is the pull request's
        console.print(Text(printable(f"picture saved to {pictures.file}")))


def show_outcome(outcome: Outcome, *, json_: bool, quiet: bool, output: Path | None, check_finite: bool) -> None:
    """Show, save and draw a computing command's outcome; results are shown and saved before any exit 5."""
    from jaxdiff_cli.operations import finite_or_fail, nonfinite_error, sparse_result
    from jaxdiff_cli.output import render, save

    if not outcome.leader:  # several processes computed this together; process 0 alone prints and writes
        finite_or_fail(outcome, check_finite)
        return
    doc: dict[str, Any] = {}
    if json_ or (output is not None and output.suffix.lower() == ".json"):
        # Only when asked for: every value becomes a Python number, slow for a large Jacobian.
        doc = render.outcome_json(outcome)
    found = sparse_result(outcome.result)
    title = f"{outcome.command} of {' '.join(outcome.spec.function.split())[:60]}"
    if outcome.pictures is not None and outcome.pictures.file is not None and outcome.matrix is not None:
        from jaxdiff_cli.output.pictures import save_figure

        save_figure(
            outcome.matrix, outcome.pictures.file, spy=outcome.pictures.spy, title=title, source=outcome.pictures.file_source
        )
    elif outcome.pictures is not None and outcome.pictures.file is not None and found is not None:
        from jaxdiff_cli.output.pictures import save_spy_figure

        save_spy_figure(found, outcome.pictures.file, title=title, source=outcome.pictures.file_source)
    suffix = output.suffix.lower() if output is not None else ""
    if output is not None and (suffix == ".mtx" or (suffix == ".npz" and found is not None)):
        save_matrix_file(outcome, output, title)
    elif output is not None and not outcome.streamed:
        save.save(output, render.arrays(outcome), doc)
    nonfinite = nonfinite_error(outcome, check_finite)
    if json_:
        print_json(doc if nonfinite is None else render.with_error(doc, nonfinite))  # one document, always
        if nonfinite is not None:
            nonfinite.in_json = True
    elif not quiet:
        print_result(outcome.title, outcome.result, outcome.prep.runtime.device_name, outcome.spec.dtype, saved=output)
        if found is not None:
            from jaxdiff_cli.output.terminal import spy

            print_renderable(spy(found, width=_width()))
    if not quiet:
        show_pictures(outcome, to_stderr=json_)
        for w in outcome.warnings:
            say("warning", w)
    if nonfinite is not None:
        raise nonfinite
    if outcome.nonfinite and not quiet:
        say("warning", outcome.nonfinite)


def _width() -> int:

    return int(Console().width)


def save_matrix_file(outcome: Outcome, output: Path, title: str) -> None:
    """-o FILE.mtx of a Jacobian or Hessian, or -o FILE.npz of a sparse one (scipy.sparse.load_npz reads it)."""
    from jaxdiff_cli.operations import sparse_result
    from jaxdiff_cli.output import matrixfile

    found = sparse_result(outcome.result)
    if found is not None:
        matrixfile.save_matrix(output, found, title=title)
        return
    from jaxdiff_cli.engine.sparse import blocks

    assert outcome.npy is not None  # operations.compute made the dense matrix for the file
    rows, cols = blocks(outcome.prep.problem, outcome.command)
    matrixfile.save_dense_matrix(output, outcome.npy[0], rows, cols, title=title)


def show_sparsity(outcome: SparsityOutcome, *, json_: bool, quiet: bool, output: Path | None, plot_file: Path | None) -> None:
    """`jaxdiff sparsity`: the pattern and coloring on the terminal (with its spy picture), as JSON, in files."""
    from rich.text import Text

    from jaxdiff_cli.output import render
    from jaxdiff_cli.output.terminal import spy

    title = f"sparsity of the {outcome.op} of {' '.join(outcome.spec.function.split())[:60]}"
    doc = render.sparsity_json(outcome) if json_ or (output is not None and output.suffix.lower() == ".json") else {}
    if plot_file is not None:
        from jaxdiff_cli.output.pictures import save_spy_figure

        save_spy_figure(outcome.pattern, plot_file, title=title)
    if output is not None and output.suffix.lower() == ".json":
        from jaxdiff_cli.atomic import atomic_open
        from jaxdiff_cli.encoding import dumps
        from jaxdiff_cli.errors import OutputError

        try:
            with atomic_open(output, "wb") as f:
                f.write(dumps(doc, indent=True) + b"\n")
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"-o {output}") from None
    elif output is not None:
        from jaxdiff_cli.output import matrixfile

        matrixfile.save_matrix(output, outcome.pattern, title=title)
    if json_:
        print_json(doc)
        return
    if quiet:
        return
    info = outcome.info
    lines: list[Any] = [Text(printable(outcome.title), style="bold")]
    if info.get("reason"):
        lines.append(Text(printable(f"auto chose {info['mode']} ({info['reason']})"), style="cyan"))
    lines.append(Text(render.sparse_text(outcome.pattern, _width() - 2)))
    lines.append(spy(outcome.pattern, width=_width()))
    footer = f"device {outcome.prep.runtime.device_name}  dtype {outcome.spec.dtype}"
    lines += [Text(footer, style="dim")] + ([Text(printable(f"saved {output}"))] if output is not None else [])
    lines += [Text(printable(f"picture saved to {plot_file}"))] if plot_file is not None else []
    from rich.console import Group

    print_renderable(Group(*lines))


def show_bench(outcome: BenchOutcome) -> None:
    """`jaxdiff bench`: the table of modes, the recommendation, and what auto would choose."""
    from jaxdiff_cli.output.render import bench_table

    title = f"{outcome.op} of {' '.join(outcome.spec.function.split())[:60]} on {outcome.device}, {outcome.spec.dtype}"
    print_renderable(bench_table(title, outcome.timings, outcome.op))
    for line in (outcome.recommendation and f"recommended: {outcome.recommendation}", outcome.auto):
        if line:
            print_renderable(line)


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
