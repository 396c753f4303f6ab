"""The Typer app: options -> a Request, an Outcome -> output, errors -> exit codes. Only this imports typer.

Every command reads the same: inside ``with exit_codes(...)``, check the paths it will write
(``Target.of``), call its operation, show the outcome (``console.show_*``). The work is in
operations.py, what is shown and written in output/, each option's words, type and default in
helptext.py. Everything heavy (JAX, NumPy, the engine) is imported inside the commands, so
``jaxdiff``, ``jaxdiff --help``, ``jaxdiff COMMAND --help`` and ``jaxdiff --version`` never import JAX.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__, signals, startup, switches
from .errors import ExitCode, JaxdiffError, OutputClosed, blame
from .helptext import APP, COMMANDS, FLAGS
from .ops import DERIVATIVE, EVAL, GRAD, HESSIAN, HVP, JACOBIAN, JVP, OPS, TAYLOR, VJP
from .options import Common
from .target import ARRAYS, MATRIX, PATTERN, RUN, Target
from .worker.words import WORKER

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


# The options the hand-written commands share (FLAGS holds the same type and default: a test keeps them equal).
SpecArg = Annotated[str | None, _flag("spec")]
FnOpt = Annotated[str | None, _flag("fn")]
PrimalOpt = Annotated[list[str] | None, _flag("primal")]
WrtOpt = Annotated[list[str] | None, _flag("wrt")]
TangentOpt = Annotated[list[str] | None, _flag("tangent")]
CotangentOpt = Annotated[str | None, _flag("cotangent")]
DtypeOpt = Annotated[str | None, _flag("dtype")]
DeviceOpt = Annotated[str | None, _flag("device")]
CasesOpt = Annotated[list[str] | None, _flag("cases")]
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

# Each computing command takes the shared options and its own, in --help order (the order of FLAGS);
# an own key "cmd.name" stands for the shared "name" (jacobian's -o also takes .mtx).
SHARED = (
    "spec",
    "fn",
    "primal",
    "dtype",
    "device",
    "json_",
    "output",
    "quiet",
    "debug",
    "no_cache",
    "check_finite",
    "bake_primals",
    "has_aux",
    "no_code",
    "cases",
)
SHARDED = ("devices", "coordinator", "num_processes", "process_id")
PICTURES = ("plot", "plot_file", "spy", "summary")
COMPUTING: dict[str, tuple[str, ...]] = {
    EVAL.name: (),
    JVP.name: ("wrt", "tangent", "holomorphic", *SHARDED),
    VJP.name: ("wrt", "cotangent", "holomorphic", *SHARDED),
    GRAD.name: ("wrt", "value", "holomorphic"),
    JACOBIAN.name: ("wrt", "jacobian.mode", "chunk_size", "holomorphic", *PICTURES, *SHARDED, "sparse", "matrix.output"),
    HESSIAN.name: ("wrt", "holomorphic", *PICTURES, *SHARDED, "sparse", "matrix.output"),
    HVP.name: ("wrt", "tangent", "hvp.mode", "holomorphic", *SHARDED),
    DERIVATIVE.name: ("wrt", "tangent", "order", "taylor.mode"),
    TAYLOR.name: ("wrt", "tangent", "order", "taylor.mode"),
}


def _param(key: str) -> str:
    """The parameter an option key fills: its last part ("hvp.mode" -> "mode")."""
    return key.rsplit(".", 1)[-1]


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


@contextlib.contextmanager
def exit_codes(debug: bool, *, json_: bool = False) -> Iterator[None]:
    """Our errors as one line and an exit code, Ctrl-C as 130, SIGTERM as 143; a traceback only with ``debug``.

    With ``json_`` (--json), an error is also a JSON document on stdout, ``{"error": {...}}``.
    """
    from jaxdiff_cli.output.console import say

    try:
        yield
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
        if debug and not isinstance(exc, Exception):
            raise
        if debug:  # the traceback, then the same line and exit status as without --debug (not Python's 1)
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        error = exc if isinstance(exc, JaxdiffError) else blame(exc)
        say("error", error.render())
        if json_ and not error.in_json:  # stdout holds one JSON document, always
            from jaxdiff_cli.output.console import print_json
            from jaxdiff_cli.output.reports import error_json

            with contextlib.suppress(OutputClosed):  # the error's exit code says it all
                print_json(error_json(error))
        raise typer.Exit(int(error.exit_code)) from None


def _check_figure(path: Path | None) -> None:
    if path is not None:
        from jaxdiff_cli.output.pictures import check_figure_path

        check_figure_path(path)


# ---------------------------------------------------------------- the computing commands


def _compute(command: str, c: Common) -> None:
    """Every computing command: check the paths, compute, show."""
    with exit_codes(c.debug, json_=c.json_):
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console

        op = OPS[command]
        target = Target.of(c.output, MATRIX if op.matrix else ARRAYS)  # before any work, not after
        pictures = c.pictures() if op.matrix else None
        _check_figure(c.plot_file if op.matrix else None)
        with console.progress(c.shows_progress) as progress:
            outcome = operations.compute(c.request(command, target, pictures), progress)
        console.show_outcome(outcome, json_=c.json_, quiet=c.quiet, check_finite=c.check_finite)


def _computing(name: str, own: tuple[str, ...]) -> None:
    """Register the command ``name``: the shared options and its ``own``, its text from helptext.COMMANDS."""
    replaced = {_param(k) for k in own}
    keys = [k for k in FLAGS if k in own or (k in SHARED and k not in replaced)]
    params = [
        inspect.Parameter(
            _param(k), inspect.Parameter.KEYWORD_ONLY, default=FLAGS[k].default, annotation=Annotated[FLAGS[k].type, _flag(k)]
        )
        for k in keys
    ]

    def command(**given: Any) -> None:
        _compute(name, Common(**given))

    command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    app.command(name, help=COMMANDS[name])(command)


for _name, _own in COMPUTING.items():
    _computing(_name, _own)


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
    cases: CasesOpt = None,
    quiet: Annotated[bool, _flag("check.quiet")] = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    no_code: NoCodeOpt = False,
) -> None:
    with exit_codes(debug, json_=json_ or output_format == "json"):
        from jaxdiff_cli import operations
        from jaxdiff_cli.checks.check import Settings
        from jaxdiff_cli.output import console
        from jaxdiff_cli.output import reports as ci

        fmt = ci.output_format(output_format, json_)
        refuse_code = switches.no_code(no_code)  # a bad JAXDIFF_NO_CODE: one error, not one per spec
        if junit_xml is not None:
            ci.check_report_path(junit_xml)  # before any work, not after
        settings = Settings(rtol=rtol, atol=atol, seed=seed, no_cache=no_cache, update=update)
        with console.progress(fmt == "text" and not quiet) as progress:
            reports = operations.check(specs, settings, progress, no_code=refuse_code, cases=tuple(cases or ()))
        console.show_check(reports, output_format=fmt, quiet=quiet, junit_xml=junit_xml)
        raise typer.Exit(operations.check_exit(reports))


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
    cases: CasesOpt = None,
) -> None:
    c = Common(json_=json_, quiet=quiet, coordinator=coordinator, num_processes=num_processes, process_id=process_id)
    with exit_codes(debug, json_=json_):
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console

        target = Target.of(output, RUN)
        with console.progress(c.shows_progress) as progress:
            outcome = operations.run_cases(
                spec,
                bake_primals=bake_primals,
                no_code=no_code,
                devices=devices,
                cluster=c.cluster(),
                no_cache=no_cache,
                progress=progress,
                on_step=console.show_step if c.shows_progress else None,
                on_error=lambda exc: console.say("error", exc.render()),
                cases=tuple(cases or ()),
            )
        raise typer.Exit(console.show_run(outcome, target=target, json_=json_, quiet=quiet, check_finite=check_finite))


@app.command(help=COMMANDS["bench"])
def bench(
    spec: SpecArg = None,
    op: Annotated[str, _flag("bench.op")] = JACOBIAN.name,
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
    cases: CasesOpt = None,
) -> None:
    c = Common(
        spec=spec,
        fn=fn,
        primal=primal,
        wrt=wrt,
        tangent=tangent,
        cotangent=cotangent,
        dtype=dtype,
        device=device,
        json_=json_,
        quiet=quiet,
        no_cache=no_cache,
        bake_primals=bake_primals,
        has_aux=has_aux,
        no_code=no_code,
        cases=cases,
        order=order,
    )
    with exit_codes(debug, json_=json_):
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console

        with console.progress(c.shows_progress) as progress:
            outcome = operations.bench(c.request("bench"), op, chunk_size, min_time, progress)
        console.show_bench(outcome, json_=json_, quiet=quiet)


@app.command(help=COMMANDS["sparsity"])
def sparsity(
    spec: SpecArg = None,
    op: Annotated[str, _flag("sparsity.op")] = JACOBIAN.name,
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
    c = Common(
        spec=spec,
        fn=fn,
        primal=primal,
        wrt=wrt,
        dtype=dtype,
        device=device,
        json_=json_,
        quiet=quiet,
        no_cache=no_cache,
        has_aux=has_aux,
        no_code=no_code,
        mode=mode,
    )
    with exit_codes(debug, json_=json_):
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console

        target = Target.of(output, PATTERN)
        _check_figure(plot_file)
        with console.progress(c.shows_progress) as progress:
            outcome = operations.sparsity(c.request("sparsity", target), op, progress)
        console.show_sparsity(outcome, json_=json_, quiet=quiet, plot_file=plot_file)


@app.command(help=COMMANDS["devices"])
def devices(
    json_: JsonOpt = False, debug: DebugOpt = False, platform: Annotated[str | None, _flag("devices.platform")] = None
) -> None:
    with exit_codes(debug, json_=json_):
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console

        console.show_devices(operations.devices(platform), json_=json_)


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
    with exit_codes(debug):
        from jaxdiff_cli.output import console, save
        from jaxdiff_cli.starter import starter_spec

        if output is not None:
            save.check_new_file(output)  # before any work
        folder = (output.parent if str(output.parent) else Path(".")) if output is not None else None
        starter = starter_spec(
            function,
            tuple(primal or ()),
            wrt=tuple(wrt or ()),
            tangents=tuple(tangent or ()),
            dtype=dtype,
            name=output.name if output is not None else "spec.yaml",
            base_dir=folder.resolve() if folder is not None else None,
        )
        console.show_starter(starter, output)


@app.command(help=COMMANDS["schema"])
def schema(debug: DebugOpt = False) -> None:
    with exit_codes(debug):
        from jaxdiff_cli.output import console
        from jaxdiff_cli.schema import schema_text

        console.write(schema_text())


def _completion_for_named_shell(args: list[str]) -> None:
    """``jaxdiff --show-completion zsh`` prints zsh's script (and ``--install-completion zsh`` installs it).
    Where Typer can tell which shell started it, its options are flags for that shell and a shell named
    after them is ignored: zsh's script asked for from bash was bash's. Given a shell, Typer's form that
    takes one is used (the switch is Typer's own, read when the app is built)."""
    if len(args) >= 2 and args[0] in ("--show-completion", "--install-completion") and not args[1].startswith("-"):
        os.environ["_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"] = "1"
    elif args and args[0].startswith(("--show-completion=", "--install-completion=")):
        os.environ["_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"] = "1"


# ---------------------------------------------------------------- the resident worker: jaxdiff_cli/worker/

worker_app = typer.Typer(name="worker", help=WORKER["group"], no_args_is_help=True)
app.add_typer(worker_app)


def _worker(action: str, *args: str) -> None:
    with exit_codes(False):
        from jaxdiff_cli.worker import control

        lines, code = getattr(control, action)(*args)
        typer.echo("\n".join(lines))
        raise typer.Exit(code)


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
    from jaxdiff_cli.output.console import say, show_cache_warnings

    code: int | str | None = 0
    show_cache_warnings()
    startup.pause_gc()  # until JAX is set up (startup.settled, from prepare)
    signals.install()
    _completion_for_named_shell(sys.argv[1:])
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
