"""The Typer app: options -> a Request, an Outcome -> output, errors -> exit codes. Only this imports typer.

The work is in operations.py, what is shown and written in output/, the words of --help in
helptext.py. Everything heavy (JAX, NumPy, the engine) is imported inside the commands, so
``jaxdiff``, ``jaxdiff --help``, ``jaxdiff COMMAND --help`` and ``jaxdiff --version`` never import JAX.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import __version__, signals, startup, switches
from .errors import ExitCode, JaxdiffError, OutputClosed, blame
from .helptext import APP, COMMANDS, FLAGS
from .options import Common
from .worker.words import WORKER

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Result
    from jaxdiff_cli.inputs.spec import Step
    from jaxdiff_cli.operations import Outcome, Pictures

app = typer.Typer(
    name="jaxdiff",
    help=APP,
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_show_locals=False,  # --debug: a traceback, not every local (a Jacobian can be large)
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------- options, declared once


def _flag(key: str) -> Any:
    """The Typer option (or argument) of ``helptext.FLAGS[key]``: choices listed in --help and completed."""
    f = FLAGS[key]
    if not f.names:
        return typer.Argument(help=f.help, show_default=False)
    more: dict[str, Any] = {k: v for k, v in (("envvar", f.envvar), ("metavar", f.metavar), ("min", f.min)) if v is not None}
    if f.choices:
        more.update(metavar="[" + "|".join(f.choices) + "]", autocompletion=lambda: list(f.choices))
    return typer.Option(*f.names, help=f.help, show_default=False, **more)


SpecArg = Annotated[str | None, _flag("spec")]
FnOpt = Annotated[str | None, _flag("fn")]
PrimalOpt = Annotated[list[str] | None, _flag("primal")]
WrtOpt = Annotated[list[str] | None, _flag("wrt")]
TangentOpt = Annotated[list[str] | None, _flag("tangent")]
CotangentOpt = Annotated[str | None, _flag("cotangent")]
DtypeOpt = Annotated[str | None, _flag("dtype")]
DeviceOpt = Annotated[str | None, _flag("device")]
CaseOpt = Annotated[list[str] | None, _flag("case")]
HasAuxOpt = Annotated[bool, _flag("has_aux")]
NoCodeOpt = Annotated[bool, _flag("no_code")]
OrderOpt = Annotated[int | None, _flag("order")]
BakeOpt = Annotated[bool, _flag("bake_primals")]
NoCacheOpt = Annotated[bool, _flag("no_cache")]
DevicesOpt = Annotated[str | None, _flag("devices")]
CoordinatorOpt = Annotated[str | None, _flag("coordinator")]
ProcessesOpt = Annotated[int | None, _flag("num_processes")]
ProcessIdOpt = Annotated[int | None, _flag("process_id")]
JsonOpt = Annotated[bool, _flag("json_")]
OutputOpt = Annotated[Path | None, _flag("output")]
QuietOpt = Annotated[bool, _flag("quiet")]
DebugOpt = Annotated[bool, _flag("debug")]
FiniteOpt = Annotated[bool, _flag("check_finite")]
PlotFileOpt = Annotated[Path | None, _flag("plot_file")]

# Each computing command is the shared options plus its own, taken from this table; the commands are
# registered from it (Typer reads their signatures), so no option is written twice.
_OPTIONS: dict[str, tuple[Any, Any]] = {  # name -> (Annotated type, default), in --help order
    "spec": (SpecArg, None), "fn": (FnOpt, None), "primal": (PrimalOpt, None), "wrt": (WrtOpt, None),
    "tangent": (TangentOpt, None), "cotangent": (CotangentOpt, None), "value": (Annotated[bool, _flag("value")], False),
    "mode": (Annotated[str | None, _flag("mode")], None), "hvp_mode": (Annotated[str | None, _flag("hvp_mode")], None),
    "chunk_size": (Annotated[str | None, _flag("chunk_size")], None),
    "dtype": (DtypeOpt, None), "device": (DeviceOpt, None), "json_": (JsonOpt, False), "output": (OutputOpt, None),
    "matrix_output": (Annotated[Path | None, _flag("matrix_output")], None),
    "quiet": (QuietOpt, False), "debug": (DebugOpt, False), "no_cache": (NoCacheOpt, False),
    "check_finite": (FiniteOpt, False), "bake_primals": (BakeOpt, False), "has_aux": (HasAuxOpt, False),
    "no_code": (NoCodeOpt, False), "case": (CaseOpt, None),
    "plot": (Annotated[bool, _flag("plot")], False), "plot_file": (PlotFileOpt, None),
    "spy": (Annotated[bool, _flag("spy")], False), "summary": (Annotated[bool, _flag("summary")], False),
    "devices": (DevicesOpt, None), "coordinator": (CoordinatorOpt, None), "num_processes": (ProcessesOpt, None),
    "process_id": (ProcessIdOpt, None), "order": (OrderOpt, None),
    "taylor_mode": (Annotated[str | None, _flag("taylor_mode")], None),
    "holomorphic": (Annotated[bool, _flag("holomorphic")], False), "sparse": (Annotated[bool, _flag("sparse")], False),
}  # fmt: skip
_RENAMED = {"hvp_mode": "mode", "taylor_mode": "mode", "matrix_output": "output"}  # one option, other help
_SHARED = ("spec", "fn", "primal", "dtype", "device", "json_", "output", "quiet", "debug", "no_cache", "check_finite",
           "bake_primals", "has_aux", "no_code", "case")  # fmt: skip
_SHARDED = ("devices", "coordinator", "num_processes", "process_id")
_PICTURES = ("plot", "plot_file", "spy", "summary")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"jaxdiff {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Derivatives of your functions with JAX."""


# ---------------------------------------------------------------- errors -> exit codes


def _guarded(debug: bool, body: Callable[[], None], json_: bool = False) -> None:
    """Run ``body``; turn our errors into one line and an exit code, Ctrl-C into 130, SIGTERM into 143.

    With ``json_`` (--json), an error is also a JSON document on stdout, ``{"error": {...}}``.
    """
    from jaxdiff_cli.output.console import say

    try:
        body()
    except typer.Exit:
        raise
    except signals.Stopped as exc:  # temporary files are gone: atomic_path removed them unwinding
        if debug:
            raise
        say("", exc.message)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:  # in-process (tests, an embedding program): no handlers installed
        if debug:
            raise
        say("", "interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except OutputClosed:  # `| head`: the reader has what it wanted; not an error, nothing to say
        raise typer.Exit(int(ExitCode.OUTPUT_CLOSED)) from None
    except BaseException as exc:  # never a traceback (nor a silent exit: SystemExit too) without --debug
        if debug:
            raise
        error = exc if isinstance(exc, JaxdiffError) else blame(exc)
        say("error", error.render())
        if json_ and not error.in_json:  # stdout holds one JSON document, always
            from jaxdiff_cli.output.console import print_json
            from jaxdiff_cli.output.reports import error_json

            with contextlib.suppress(OutputClosed):  # the error's exit code says it all
                print_json(error_json(error))
        raise typer.Exit(int(error.exit_code)) from None


# ---------------------------------------------------------------- the computing commands


def _compute(command: str, c: Common, pictures: Pictures | None = None) -> None:
    from jaxdiff_cli.output.console import show_outcome

    def body() -> None:
        show_outcome(_computed(command, c, pictures), json_=c.json_, quiet=c.quiet, output=c.output, check_finite=c.check_finite)

    _guarded(c.debug, body, c.json_)


def _computed(command: str, c: Common, pictures: Pictures | None) -> Outcome:
    from jaxdiff_cli import operations
    from jaxdiff_cli.output import console, save

    if c.output is not None:  # fail before any work, not after; Matrix Market holds a Jacobian or Hessian
        save.check_output_path(c.output, save.FORMATS + ((".mtx",) if command in ("jacobian", "hessian") else ()))
    if pictures is not None and pictures.file is not None:
        from jaxdiff_cli.output.pictures import check_figure_path

        check_figure_path(pictures.file)
    with console.progress(c.shows_progress) as progress:
        return operations.compute(c.request(command, pictures), progress)


def _computing(name: str, *own: str) -> None:
    """Register the command ``name``: the shared options and its ``own``, its text from helptext.COMMANDS."""
    chosen = [n for n in _OPTIONS if (n in _SHARED and n not in {_RENAMED.get(o) for o in own}) or n in own]
    params = [
        inspect.Parameter(_RENAMED.get(n, n), inspect.Parameter.KEYWORD_ONLY, default=_OPTIONS[n][1], annotation=_OPTIONS[n][0])
        for n in chosen
    ]

    def command(**given: Any) -> None:
        c = Common.of(given)
        _compute(name, c, c.pictures() if "plot" in own else None)

    command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    app.command(name, help=COMMANDS[name])(command)


_computing("eval")
_computing("jvp", "wrt", "tangent", "holomorphic", *_SHARDED)
_computing("vjp", "wrt", "cotangent", "holomorphic", *_SHARDED)
_computing("grad", "wrt", "value", "holomorphic")
_computing("jacobian", "wrt", "mode", "chunk_size", "holomorphic", *_PICTURES, *_SHARDED, "sparse", "matrix_output")
_computing("hessian", "wrt", "holomorphic", *_PICTURES, *_SHARDED, "sparse", "matrix_output")
_computing("hvp", "wrt", "tangent", "hvp_mode", "holomorphic", *_SHARDED)
_computing("derivative", "wrt", "tangent", "order", "taylor_mode")
_computing("taylor", "wrt", "tangent", "order", "taylor_mode")


# ---------------------------------------------------------------- check, run, bench, sparsity, devices, init, schema


@app.command(help=COMMANDS["check"])
def check(
    specs: Annotated[list[str], _flag("check.specs")],
    rtol: Annotated[float | None, _flag("check.rtol")] = None,
    atol: Annotated[float | None, _flag("check.atol")] = None,
    seed: Annotated[int, _flag("check.seed")] = 0,
    update: Annotated[bool, _flag("check.update")] = False,
    json_: JsonOpt = False,
    output_format: Annotated[str | None, _flag("check.output_format")] = None,
    junit_xml: Annotated[Path | None, _flag("check.junit_xml")] = None,
    case: CaseOpt = None,
    quiet: Annotated[bool, _flag("check.quiet")] = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    no_code: NoCodeOpt = False,
) -> None:
    def body() -> None:
        from jaxdiff_cli import operations
        from jaxdiff_cli.checks.check import Settings
        from jaxdiff_cli.output import console, render
        from jaxdiff_cli.output import reports as ci

        fmt = ci.output_format(output_format, json_)
        refuse_code = switches.no_code(no_code)  # a bad JAXDIFF_NO_CODE: one error, not one per spec
        if junit_xml is not None:
            ci.check_report_path(junit_xml)  # fail before any work, not after
        settings = Settings(rtol=rtol, atol=atol, seed=seed, use_cache=not no_cache, update=update)
        with console.progress(fmt == "text" and not quiet) as progress:
            reports = operations.check(specs, settings, progress, no_code=refuse_code, cases=tuple(case or ()))
        if junit_xml is not None:
            ci.write_junit(junit_xml, ci.junit_xml(reports, operations.versions()))
        # check's verdict is its exit status: a reader that stops early (| head) must not turn a
        # pass into 141 under `set -o pipefail`.
        with contextlib.suppress(OutputClosed):
            if fmt == "json":
                console.print_json(render.check_json(reports, operations.versions()))
            if fmt == "github":
                console.print_lines(ci.github_annotations(reports))
            if fmt != "json" and not quiet:
                console.print_renderable(render.check_table(reports))
            elif fmt != "json":  # --quiet hides the table, not why the exit status is 3 or 4
                for report in reports:
                    if report.error is not None:
                        console.say("error", report.error.render())
        raise typer.Exit(operations.check_exit(reports))

    _guarded(debug, body, json_ or output_format == "json")


@app.command(help=COMMANDS["run"])
def run(
    spec: Annotated[str, _flag("run.spec")],
    json_: JsonOpt = False,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    check_finite: FiniteOpt = False,
    bake_primals: BakeOpt = False,
    no_code: NoCodeOpt = False,
    devices: DevicesOpt = None,
    coordinator: CoordinatorOpt = None,
    num_processes: ProcessesOpt = None,
    process_id: ProcessIdOpt = None,
    case: CaseOpt = None,
) -> None:
    c = Common.of(locals())

    def body() -> None:
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console, render, save

        if c.output is not None:
            save.check_output_path(c.output, formats=(".npz", ".json"))

        def shown(case: operations.CaseOutcome, step: Step, result: Result) -> None:
            if c.shows_progress:
                console.print_result(f"{case.name}: {step.label}", result, case.device or "", case.spec.dtype)

        with console.progress(c.shows_progress) as progress:
            outcome = operations.run_cases(
                spec, bake=c.bake_primals, no_code=c.no_code, devices=c.devices, cluster=c.cluster(), use_cache=not c.no_cache,
                progress=progress, on_step=shown, on_error=lambda exc: console.say("error", exc.render()),
                select=tuple(c.case or ()),
            )  # fmt: skip
        doc = render.run_json(outcome)
        nonfinite = None
        if outcome.nonfinite and c.check_finite and outcome.first_error is None:
            from jaxdiff_cli.errors import NonFiniteError

            nonfinite = NonFiniteError(outcome.nonfinite, where="--check-finite")
            doc = render.with_error(doc, nonfinite)  # one JSON document: the results and the error
            nonfinite.in_json = c.json_
        if not c.quiet:
            for warning in outcome.warnings + ([outcome.nonfinite] if outcome.nonfinite else []):
                console.say("warning", warning)
        if c.output is not None:
            save.save(c.output, outcome.arrays(), doc)
        if c.json_:
            console.print_json(doc)
        if outcome.first_error is not None:
            raise typer.Exit(int(outcome.first_error.exit_code))
        if nonfinite is not None:
            raise nonfinite

    _guarded(debug, body, c.json_)


@app.command(help=COMMANDS["bench"])
def bench(
    spec: SpecArg = None,
    op: Annotated[str, _flag("bench.op")] = "jacobian",
    chunk_size: Annotated[int | None, _flag("bench.chunk_size")] = None,
    min_time: Annotated[float, _flag("bench.min_time")] = 0.5,
    order: OrderOpt = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    tangent: TangentOpt = None,
    cotangent: CotangentOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    bake_primals: BakeOpt = False,
    has_aux: HasAuxOpt = False,
    no_code: NoCodeOpt = False,
    case: CaseOpt = None,
) -> None:
    c = Common.of({k: v for k, v in locals().items() if k != "chunk_size"})

    def body() -> None:
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console, render

        with console.progress(c.shows_progress) as progress:
            outcome = operations.bench(c.request("bench"), op, chunk_size, min_time, progress)
        if c.json_:
            console.print_json(render.bench_json(outcome))
        elif not c.quiet:
            console.show_bench(outcome)

    _guarded(debug, body, c.json_)


@app.command(help=COMMANDS["sparsity"])
def sparsity(
    spec: SpecArg = None,
    op: Annotated[str, _flag("sparsity.op")] = "jacobian",
    mode: Annotated[str | None, _flag("sparsity.mode")] = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
    output: Annotated[Path | None, _flag("sparsity.output")] = None,
    plot_file: PlotFileOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: Annotated[bool, _flag("sparsity.no_cache")] = False,
    has_aux: HasAuxOpt = False,
    no_code: NoCodeOpt = False,
) -> None:
    c = Common.of(locals())

    def body() -> None:
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console, save

        if c.output is not None:
            save.check_output_path(c.output, formats=(".npz", ".mtx", ".json"))
        if c.plot_file is not None:
            from jaxdiff_cli.output.pictures import check_figure_path

            check_figure_path(c.plot_file)
        with console.progress(c.shows_progress) as progress:
            outcome = operations.sparsity(c.request("sparsity"), op, progress)
        console.show_sparsity(outcome, json_=c.json_, quiet=c.quiet, output=c.output, plot_file=c.plot_file)

    _guarded(debug, body, c.json_)


@app.command(help=COMMANDS["devices"])
def devices(
    json_: JsonOpt = False, debug: DebugOpt = False, platform: Annotated[str | None, _flag("devices.platform")] = None
) -> None:
    def body() -> None:
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console, render

        rows = operations.devices(platform)
        if json_:
            console.print_json(render.envelope("devices", operations.versions(), devices=rows))
        else:
            console.print_renderable(render.devices_table(rows))

    _guarded(debug, body, json_)


@app.command(help=COMMANDS["init"])
def init(
    function: Annotated[str, _flag("init.function")],
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    tangent: TangentOpt = None,
    dtype: DtypeOpt = None,
    output: Annotated[Path | None, _flag("init.output")] = None,
    debug: DebugOpt = False,
) -> None:
    def body() -> None:
        from jaxdiff_cli.output import console, save
        from jaxdiff_cli.starter import starter_spec

        if output is not None:
            save.check_new_file(output)  # before any work
        folder = (output.parent if str(output.parent) else Path(".")) if output is not None else None
        starter = starter_spec(
            function, tuple(primal or ()), wrt=tuple(wrt or ()), tangents=tuple(tangent or ()), dtype=dtype,
            name=output.name if output is not None else "spec.yaml", base_dir=folder.resolve() if folder is not None else None,
        )  # fmt: skip
        if starter.warning is not None:
            console.say("warning", starter.warning)
        if output is None:
            console.write(starter.text)
            return
        save.write_new_file(output, starter.text)
        typer.echo(f"wrote {output}; next: jaxdiff check --update {output}", err=True)

    _guarded(debug, body)


@app.command(help=COMMANDS["schema"])
def schema(debug: DebugOpt = False) -> None:
    def body() -> None:
        from jaxdiff_cli.output import console
        from jaxdiff_cli.schema import schema_text

        console.write(schema_text())

    _guarded(debug, body)


# ---------------------------------------------------------------- the resident worker: jaxdiff_cli/worker/

worker_app = typer.Typer(name="worker", help=WORKER["group"], no_args_is_help=True)
app.add_typer(worker_app)


def _worker(action: str, *args: str) -> None:
    def body() -> None:
        from jaxdiff_cli.worker import control

        lines, code = getattr(control, action)(*args)
        typer.echo("\n".join(lines))
        raise typer.Exit(code)

    _guarded(False, body)


@worker_app.command("start", help=WORKER["start"])
def worker_start(idle: Annotated[str, typer.Option("--idle", metavar="DURATION", help=WORKER["idle"])] = "15m") -> None:
    _worker("start", idle)


worker_app.command("stop", help=WORKER["stop"])(lambda: _worker("stop"))
worker_app.command("status", help=WORKER["status"])(lambda: _worker("status"))


def build_command_once() -> None:
    """For the worker, before it forks: the app's Click command, built once, not by every ``app()`` (~30-40 ms)."""
    built, build = typer.main.get_command(app), typer.main.get_command

    def get_command(typer_instance: typer.Typer) -> Any:
        return built if typer_instance is app else build(typer_instance)

    typer.main.get_command = get_command


def main() -> None:
    """The ``jaxdiff`` command: the app, with SIGINT and SIGTERM turned into exits 130 and 143.

    Whenever a signal lands (in a command, while Typer parses, as the output is finished), it
    unwinds as an exception, so temporary files are removed, and ends in one line and its status.
    Once the status is decided, later signals are ignored while the interpreter shuts down.
    """
    from jaxdiff_cli.output.console import say

    code: int | str | None = 0
    startup.pause_gc()  # until JAX is set up (startup.settled, from prepare)
    signals.install()
    try:
        try:
            app(prog_name="jaxdiff")
        except SystemExit as exc:  # Click ends every run this way, with the status
            code = exc.code
        lost = signals.swallowed()  # a signal that landed in a callback Python ignores exceptions of
        signals.ignore_from_now()
        if lost is not None and code in (0, None):
            say("", lost.message)
            code = int(lost.exit_code)
    except signals.Stopped as exc:  # landed outside a command's own handling
        signals.ignore_from_now()
        say("", exc.message)
        code = int(exc.exit_code)
    sys.exit(code)
