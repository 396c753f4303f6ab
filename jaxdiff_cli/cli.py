"""The Typer app: the only module that imports typer, and the one place errors become exit codes.

Everything heavy (JAX, NumPy, the engine) is imported inside the commands, so ``jaxdiff``,
``jaxdiff --help``, ``jaxdiff COMMAND --help`` and ``jaxdiff --version`` never import JAX.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__, signals
from .errors import ExitCode, JaxdiffError, NonFiniteError

app = typer.Typer(
    name="jaxdiff",
    help=(
        "Derivatives of your functions with JAX: JVPs, VJPs, gradients, Jacobians, Hessians and HVPs,"
        " from a YAML spec or straight from the shell.\n\n"
        "Example: jaxdiff grad -f 'lambda x: jnp.sum(jnp.tanh(x)**2)' -p x=[1,2,3]"
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------- options shared by the commands
# Declared once as Annotated types so that their help is written once.

SpecArg = Annotated[
    str | None,
    typer.Argument(help="YAML spec file, or - to read it from stdin. Without it, give --fn and --primal.", show_default=False),
]
FnOpt = Annotated[
    str | None,
    typer.Option(
        "--fn",
        "-f",
        help="The function: 'lambda x: ...', an expression over the primal names, module:function or file.py:function.",
        show_default=False,
    ),
]
PrimalOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--primal",
        "-p",
        help="NAME=VALUE, VALUE in YAML/JSON (x=[1,2,3], 'x={random: normal, shape: [3]}'). Repeatable; overrides the spec.",
        show_default=False,
    ),
]
WrtOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--wrt",
        "-w",
        help="Argument(s) to differentiate: a name, or names separated by commas. Default: the spec's, else the first.",
        show_default=False,
    ),
]
TangentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--tangent",
        "-t",
        help="NAME=VALUE tangent for a differentiated argument; a leading batch axis gives a batch.",
        show_default=False,
    ),
]
CotangentOpt = Annotated[
    str | None,
    typer.Option(
        "--cotangent", "-c", help="Cotangent VALUE shaped like the output (or with a leading batch axis).", show_default=False
    ),
]
DtypeOpt = Annotated[str | None, typer.Option("--dtype", help="float32 or float64 (float64 enables x64).", show_default=False)]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, gpu, tpu or auto.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (schema in the README).")]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Save results: .npz (all arrays), .npy (the main result), .json (as --json). Written atomically.",
        show_default=False,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no result on the terminal (use with -o).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Skip the persistent XLA compilation cache.")]
PlotOpt = Annotated[
    bool, typer.Option("--plot", help="Draw the matrix as a heatmap in the terminal (stderr with --json), with a summary.")
]
PlotFileOpt = Annotated[
    Path | None,
    typer.Option("--plot-file", help="Save the picture as .png or .svg (needs matplotlib: jaxdiff[plot]).", show_default=False),
]
SpyOpt = Annotated[bool, typer.Option("--spy", help="In --plot-file, draw the sparsity pattern instead of the values.")]
SummaryOpt = Annotated[
    bool,
    typer.Option("--summary", help="Sparsity, norm; for a Hessian its symmetry defect, extreme eigenvalues and definiteness."),
]
FiniteOpt = Annotated[bool, typer.Option("--check-finite", help="Exit 5 if a result holds NaN or Inf.")]
DevicesOpt = Annotated[
    str | None,
    typer.Option(
        "--devices",
        help="Spread batched products and Jacobian/Hessian basis vectors over all devices, or the first N (a 1-D mesh).",
        show_default=False,
    ),
]
CoordinatorOpt = Annotated[
    str | None,
    typer.Option(
        "--coordinator",
        envvar="JAX_COORDINATOR_ADDRESS",
        help="HOST:PORT of process 0, to run on several hosts.",
        show_default=False,
    ),
]
ProcessesOpt = Annotated[
    int | None,
    typer.Option("--num-processes", envvar="JAX_NUM_PROCESSES", min=1, help="How many processes in all.", show_default=False),
]
ProcessIdOpt = Annotated[
    int | None,
    typer.Option("--process-id", envvar="JAX_PROCESS_ID", min=0, help="This process (0 prints and writes).", show_default=False),
]
NoCodeOpt = Annotated[
    bool,
    typer.Option(
        "--no-code",
        envvar="JAXDIFF_NO_CODE",
        help="Refuse module:function and file.py:function (they run their own code): expressions and lambdas only."
        " For CI jobs that check specs from pull requests.",
    ),
]
BakeOpt = Annotated[
    bool,
    typer.Option(
        "--bake-primals",
        help="Compile the primal values into the program as constants: faster when XLA can precompute or re-lay-out them"
        " (large weights on the CPU), but the program is specific to these values.",
    ),
]


@dataclass(frozen=True)
class Common:
    """The shared options, as each command received them (absent ones keep their defaults)."""

    spec: str | None = None
    fn: str | None = None
    primal: list[str] | None = None
    wrt: list[str] | None = None
    tangent: list[str] | None = None
    cotangent: str | None = None
    dtype: str | None = None
    device: str | None = None
    json_: bool = False
    output: Path | None = None
    quiet: bool = False
    debug: bool = False
    no_cache: bool = False
    check_finite: bool = False
    bake_primals: bool = False
    devices: str | None = None
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    no_code: bool = False

    def cluster(self) -> Any:
        """The distribute.Cluster to join, from --coordinator and friends (or JAX_* variables)."""
        given = [self.coordinator, self.num_processes, self.process_id]
        if all(v is None for v in given):
            return None
        if any(v is None for v in given):
            from jaxdiff_cli.errors import UsageError

            raise UsageError("several hosts need --coordinator, --num-processes and --process-id together")
        from jaxdiff_cli.distribute import Cluster

        return Cluster(str(self.coordinator), int(self.num_processes or 1), int(self.process_id or 0))

    @classmethod
    def of(cls, params: dict[str, Any]) -> Common:
        """From a command's ``locals()``: its own options (mode, value, ...) are left out."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})


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


# ---------------------------------------------------------------- the one shared runner


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _fail(exc: JaxdiffError, debug: bool) -> None:
    if debug:
        raise exc
    _stderr_console().print(f"error: {exc.render()}", markup=False, soft_wrap=True)
    raise typer.Exit(int(exc.exit_code))


def _guarded(debug: bool, body: Any) -> None:
    """Run ``body``; turn our errors into one line and an exit code, Ctrl-C into 130, SIGTERM into 143."""
    try:
        body()
    except typer.Exit:
        raise
    except JaxdiffError as exc:
        _fail(exc, debug)
    except signals.Stopped as exc:  # temporary files are gone: atomic_path removed them unwinding
        if debug:
            raise
        _stderr_console().print(exc.message, markup=False)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:  # in-process (tests, an embedding program): no handlers installed
        if debug:
            raise
        _stderr_console().print("interrupted", markup=False)
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except BaseException as exc:  # never a traceback (nor a silent exit: SystemExit too) without --debug
        if debug:
            raise
        _stderr_console().print(
            f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", markup=False, soft_wrap=True
        )
        raise typer.Exit(int(ExitCode.FUNCTION)) from None


def _chunk(text: str | None) -> int | str | None:
    """--chunk-size: a positive whole number or auto."""
    if text is None or text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise typer.BadParameter(f"{text!r} is not a positive whole number or auto", param_hint="'--chunk-size'")


@dataclass(frozen=True)
class Pictures:
    """jacobian / hessian: what to draw (command-line flags, or the spec's plot: key)."""

    terminal: bool = False
    file: Path | None = None
    spy: bool = False
    summary: bool = False

    def merged(self, spec_plot: dict[str, Any]) -> Pictures:
        return Pictures(
            terminal=self.terminal or bool(spec_plot.get("terminal")),
            file=self.file or (Path(spec_plot["file"]) if spec_plot.get("file") else None),
            spy=self.spy or bool(spec_plot.get("spy")),
            summary=self.summary or bool(spec_plot.get("summary")),
        )

    @property
    def any(self) -> bool:
        return self.terminal or self.file is not None or self.summary


def _run(
    command: str,
    c: Common,
    *,
    mode: str | None = None,
    chunk_size: int | str | None = None,
    with_value: bool = True,
    pictures: Pictures | None = None,
) -> None:
    _guarded(c.debug, lambda: _compute(command, c, mode=mode, chunk_size=chunk_size, with_value=with_value, pictures=pictures))


def _compute(
    command: str, c: Common, *, mode: str | None, chunk_size: int | str | None, with_value: bool, pictures: Pictures | None = None
) -> None:
    from jaxdiff_cli import pipeline, render, save
    from jaxdiff_cli.spec import Overrides, load_spec

    if c.output is not None:
        save.check_output_path(c.output)  # fail before any work, not after
    if pictures is not None and pictures.file is not None:
        from jaxdiff_cli.figure import check_figure_path

        check_figure_path(pictures.file)
    overrides = Overrides(
        function=c.fn,
        primals=tuple(c.primal or ()),
        wrt=tuple(c.wrt or ()),
        tangents=tuple(c.tangent or ()),
        cotangent=c.cotangent,
        dtype=c.dtype,
        device=c.device,
        no_code=c.no_code,
    )
    if c.spec is None and c.fn is None:
        from jaxdiff_cli.errors import UsageError

        raise UsageError("give a SPEC file, or --fn and --primal", hint=f"see jaxdiff {command} --help")
    spec = load_spec(c.spec, overrides)
    progress = _progress(c)
    cluster = c.cluster()
    with _cluster_quiet(cluster), progress(f"preparing {command}"):
        prep = pipeline.prepare(spec, use_cache=not c.no_cache, cluster=cluster)
    mesh = _mesh(c.devices, spec)
    options = pipeline.Options(mode=mode, chunk_size=chunk_size, with_value=with_value, bake=c.bake_primals, mesh=mesh)
    chunked = chunk_size is not None or spec.chunk_size is not None
    if command == "jacobian" and c.output is not None and c.output.suffix.lower() == ".npy" and chunked:
        # Stream the chunks into a memory-mapped file: the Jacobian may be larger than memory.
        with _bar(c, None) as advance:
            result = pipeline.stream_jacobian(prep, options, c.output, lambda i, n: advance(f"chunk {i} of {n}", i, n))
        c = replace(c, output=None)  # already saved
    else:
        with _cluster_quiet(cluster), progress(f"compiling and running {command} on {prep.runtime.device_name}"):
            result = pipeline.run_operation(prep, command, options)

    from jaxdiff_cli.numerics import first_nonfinite, precision_warnings
    from jaxdiff_cli.runtime import versions

    timing = {"compile_s": result.timing.compile_s, "run_s": result.timing.run_s}
    warnings = [
        f"float32 may lose the answer: {w} (try dtype: float64)" for w in precision_warnings({**prep.inputs, **result.outputs})
    ]
    bad = first_nonfinite(result.outputs)
    nonfinite = None if bad is None else f"{bad[0]}{list(bad[1]) if bad[1] else ''} is {bad[2]} (the first non-finite entry)"
    pictures = pictures.merged(spec.plot) if pictures is not None else None
    drawn = _draw(command, result, prep, pictures) if pictures is not None and pictures.any else None
    doc: dict[str, Any] = {}
    if c.json_ or (c.output is not None and c.output.suffix.lower() == ".json"):
        # Only when asked for: every value becomes a Python number, slow for a large Jacobian.
        doc = render.document(
            command=command,
            function=spec.function,
            spec=None if spec.source.startswith("<") else spec.source,
            device=prep.runtime.device_name,
            dtype=spec.dtype,
            inputs=prep.inputs,
            outputs=result.outputs,
            info={"wrt": list(spec.wrt), **result.info},
            timing=timing,
            versions=versions(),
        )
        doc["warnings"] = warnings + ([nonfinite] if nonfinite else [])
        if drawn is not None:
            doc["summary"] = drawn[1]
    if not _leader():
        # Several processes computed this together; process 0 alone prints and writes.
        if nonfinite and c.check_finite:
            raise NonFiniteError(nonfinite, where="--check-finite")
        return
    # Results are shown and saved before any exit 5: nothing computed is lost.
    if c.output is not None:
        suffix = c.output.suffix.lower()
        tree = result.outputs if suffix != ".npy" else {pipeline.PRIMARY[command]: result.outputs[pipeline.PRIMARY[command]]}
        save.save(c.output, dict(render.named_leaves(tree)), doc)
    if c.json_:
        sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
    elif not c.quiet:
        fn_text = " ".join(spec.function.split())
        fn_text = fn_text if len(fn_text) <= 80 else fn_text[:77] + "..."
        _print_result(f"{command} of {fn_text}  (wrt {', '.join(spec.wrt)})", result, prep, saved=c.output)
    if drawn is not None and pictures is not None and not c.quiet:
        _show_drawing(drawn, pictures, c)
    if not c.quiet:
        for w in warnings:
            _stderr_console().print(f"warning: {w}", markup=False, soft_wrap=True)
    if nonfinite and c.check_finite:
        raise NonFiniteError(nonfinite, where="--check-finite")
    if nonfinite and not c.quiet:
        _stderr_console().print(f"warning: {nonfinite}", markup=False, soft_wrap=True)


def _mesh(devices: str | None, spec: Any) -> Any:
    """The mesh to spread work over: --devices, else the spec's devices:, else none."""
    from jaxdiff_cli.distribute import make_mesh, parse_devices

    chosen = parse_devices(devices, "--devices") if devices is not None else parse_devices(spec.devices, spec.where("devices"))
    return make_mesh(chosen) if chosen is not None else None


def _cluster_quiet(cluster: Any) -> Any:
    """With several processes, keep the collectives' own chatter off stdout."""
    import contextlib

    if cluster is None:
        return contextlib.nullcontext()
    from jaxdiff_cli.distribute import stdout_to_stderr

    return stdout_to_stderr()


def _leader() -> bool:
    import jax

    return jax.process_index() == 0


def _draw(command: str, result: Any, prep: Any, pictures: Pictures) -> tuple[Any, dict[str, Any]] | None:
    """The matrix and summary of a Jacobian or Hessian, and its image file if asked for."""
    from jaxdiff_cli import plot
    from jaxdiff_cli.engine import output_shape

    problem = prep.problem
    diff = problem.diff(problem.primals)
    if "streamed_to" in result.info:
        _stderr_console().print("warning: a streamed Jacobian is not drawn; load the .npy to plot it", markup=False)
        return None
    if command == "jacobian":
        matrix = plot.jacobian_matrix(result.outputs["jacobian"], output_shape(problem), diff, problem.wrt)
    else:
        matrix = plot.hessian_matrix(result.outputs["hessian"], diff, problem.wrt)
    facts = plot.summary(matrix, _hvp_matvec(problem) if command == "hessian" else None)
    if pictures.file is not None:
        from jaxdiff_cli.figure import save_figure

        save_figure(matrix, pictures.file, spy=pictures.spy, title=f"{command} of {' '.join(prep.spec.function.split())[:60]}")
    return matrix, facts


def _show_drawing(drawn: tuple[Any, dict[str, Any]], pictures: Pictures, c: Common) -> None:
    """The heatmap and summary, on stdout (stderr with --json, so stdout stays one JSON document)."""
    from rich.console import Console
    from rich.text import Text

    from jaxdiff_cli import plot

    matrix, facts = drawn
    console = Console(stderr=c.json_, highlight=False)
    if pictures.terminal:
        console.print(plot.heatmap(matrix, width=console.width))
    console.print(Text(plot.summary_text(facts)))
    if pictures.file is not None:
        console.print(Text(f"picture saved to {pictures.file}"))


def _hvp_matvec(problem: Any) -> Any:
    """v -> H v on the flat inputs, for Lanczos on a Hessian too large to decompose."""
    import jax
    import numpy as np

    from jaxdiff_cli.engine import flat_function

    flat_f, x, _, _ = flat_function(problem.of_diff(problem.primals), problem.diff(problem.primals))
    hv = jax.jit(lambda v: jax.jvp(jax.grad(lambda y: flat_f(y)[0]), (x,), (v,))[1])
    return lambda v: np.asarray(hv(jax.numpy.asarray(v, x.dtype)), dtype=np.float64)


def _progress(c: Common) -> Any:
    """A spinner on stderr, only on a terminal, never with --json or --quiet."""
    import contextlib

    # Decided before importing Rich: scripts (--json, pipes) do not pay for it.
    if c.json_ or c.quiet or not sys.stderr.isatty():
        return lambda text: contextlib.nullcontext()
    console = _stderr_console()
    return lambda text: console.status(text)


# ---------------------------------------------------------------- commands


@app.command("eval")
def eval_(
    spec: SpecArg = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    check_finite: FiniteOpt = False,
    bake_primals: BakeOpt = False,
    no_code: NoCodeOpt = False,
) -> None:
    """Evaluate f at the primals.

    Example: jaxdiff eval -f "(x + w) * x**2" -p x=3.0 -p w=1.0
    """
    _run("eval", Common.of(locals()))


@app.command()
def jvp(
    spec: SpecArg = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    tangent: TangentOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
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
) -> None:
    """Forward mode: f(x) and the Jacobian-vector product J(x)·v.

    Tangents with one more leading axis than the primals are a batch: J·V is computed with
    jax.vmap in one program.

    Example: jaxdiff jvp configs/seed000_poly.yaml
    """
    _run("jvp", Common.of(locals()))


@app.command()
def vjp(
    spec: SpecArg = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    cotangent: CotangentOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
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
) -> None:
    """Reverse mode: f(x) and the vector-Jacobian product uᵀ·J(x), one result per differentiated argument.

    Cotangents with one more leading axis than the output are a batch (Uᵀ·J via jax.vmap).

    Example: jaxdiff vjp configs/seed000_poly.yaml
    """
    _run("vjp", Common.of(locals()))


@app.command()
def grad(
    spec: SpecArg = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    value: Annotated[bool, typer.Option("--value", help="Also show f(x).")] = False,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    check_finite: FiniteOpt = False,
    bake_primals: BakeOpt = False,
    no_code: NoCodeOpt = False,
) -> None:
    """Gradient ∇f(x) of a scalar-valued f, per differentiated argument.

    Example: jaxdiff grad -f "lambda x: jnp.sum(jnp.tanh(x)**2)" -p x=[1,2,3]
    """
    _run("grad", Common.of(locals()), with_value=value)


@app.command()
def jacobian(
    spec: SpecArg = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            "-m",
            help="fwd (jacfwd), rev (jacrev) or auto: forward when inputs <= outputs, else reverse.",
            show_default=False,
        ),
    ] = None,
    chunk_size: Annotated[
        str | None,
        typer.Option(
            "--chunk-size",
            help="Push or pull N basis vectors at a time to bound memory, or auto (from free memory)."
            " With -o FILE.npy, chunks are written to the file as they are computed.",
            show_default=False,
        ),
    ] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    check_finite: FiniteOpt = False,
    bake_primals: BakeOpt = False,
    no_code: NoCodeOpt = False,
    plot: PlotOpt = False,
    plot_file: PlotFileOpt = None,
    spy: SpyOpt = False,
    summary: SummaryOpt = False,
    devices: DevicesOpt = None,
    coordinator: CoordinatorOpt = None,
    num_processes: ProcessesOpt = None,
    process_id: ProcessIdOpt = None,
) -> None:
    """The Jacobian ∂f(x), output axes first, per differentiated argument.

    Example: jaxdiff jacobian configs/seed001_simplefun_vector.yaml --mode rev
    """
    pictures = Pictures(terminal=plot, file=plot_file, spy=spy, summary=summary)
    _run("jacobian", Common.of(locals()), mode=mode, chunk_size=_chunk(chunk_size), pictures=pictures)


@app.command()
def hessian(
    spec: SpecArg = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    check_finite: FiniteOpt = False,
    bake_primals: BakeOpt = False,
    no_code: NoCodeOpt = False,
    plot: PlotOpt = False,
    plot_file: PlotFileOpt = None,
    spy: SpyOpt = False,
    summary: SummaryOpt = False,
    devices: DevicesOpt = None,
    coordinator: CoordinatorOpt = None,
    num_processes: ProcessesOpt = None,
    process_id: ProcessIdOpt = None,
) -> None:
    """The Hessian ∂²f(x) of a scalar-valued f (forward-over-reverse).

    Example: jaxdiff hessian -f "lambda x: jnp.sum(x**3)" -p x=[1,2]
    """
    _run("hessian", Common.of(locals()), pictures=Pictures(terminal=plot, file=plot_file, spy=spy, summary=summary))


@app.command()
def hvp(
    spec: SpecArg = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    tangent: TangentOpt = None,
    mode: Annotated[
        str | None,
        typer.Option("--mode", "-m", help="fwd-rev (forward-over-reverse, default), rev-fwd or rev-rev.", show_default=False),
    ] = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
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
) -> None:
    """Hessian-vector product ∂²f(x)·v of a scalar-valued f, without forming the Hessian.

    Example: jaxdiff hvp configs/seed003_tanh_hvp.yaml --mode rev-rev
    """
    _run("hvp", Common.of(locals()), mode=mode)


@app.command()
def check(
    specs: Annotated[list[str], typer.Argument(help="Spec files or glob patterns (specs/*.yaml).", show_default=False)],
    rtol: Annotated[
        float | None,
        typer.Option("--rtol", help="Relative tolerance of AD vs FD (default 1e-4 float32, 1e-7 float64).", show_default=False),
    ] = None,
    atol: Annotated[
        float | None,
        typer.Option("--atol", help="Absolute tolerance of AD vs FD (default 1e-6 float32, 1e-12 float64).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random directions and vectors.")] = 0,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Record the current results as each spec's expect: block (golden values), with jax version, device, dtype.",
        ),
    ] = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: NoCacheOpt = False,
    no_code: NoCodeOpt = False,
) -> None:
    """Check specs: their expect: values, and AD in both modes against finite differences.

    Also the adjoint identity ⟨u, Jv⟩ = ⟨Jᵀu, v⟩, the HVP modes against each other, and that all
    results are finite. Exit 0 if every check passes, 1 if one fails, 3/4 for a bad spec or function.

    Example: jaxdiff check configs/seed000_poly.yaml configs/seed002_adder.yaml
    """

    def body() -> None:
        from jaxdiff_cli import render
        from jaxdiff_cli.check import Report, Settings, check_spec
        from jaxdiff_cli.spec import Overrides, load_cases

        paths = _expand(specs)
        settings = Settings(rtol=rtol, atol=atol, seed=seed, use_cache=not no_cache, update=update)
        progress = _progress(Common(json_=json_, quiet=quiet))
        reports: list[Report] = []
        for path in paths:
            with progress(f"checking {path}"):
                try:
                    cases = load_cases(path, Overrides(no_code=no_code), need_steps=False)
                except JaxdiffError as exc:
                    reports.append(Report(spec=path, error=exc))
                    continue
                for case in cases:
                    report = check_spec(case.spec, settings)
                    report.spec += f" ({case.name})" if len(cases) > 1 else ""
                    reports.append(report)
        from jaxdiff_cli.runtime import versions

        if json_:
            sys.stdout.write(json.dumps(render.check_json(reports, versions()), allow_nan=False) + "\n")
        elif not quiet:
            from rich.console import Console

            Console(highlight=False).print(render.check_table(reports))
        errors = [r.error for r in reports if r.error is not None]
        if errors:
            raise typer.Exit(int(errors[0].exit_code))
        if not all(r.passed for r in reports):
            raise typer.Exit(int(ExitCode.CHECK_FAILED))

    _guarded(debug, body)


@app.command()
def run(
    spec: Annotated[
        str, typer.Argument(help="A spec with 'run:' (and optionally 'cases:'), or - for stdin.", show_default=False)
    ],
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
) -> None:
    """Run every operation a spec lists, for each of its cases; one JSON document for all.

    A spec's top-level keys are shared defaults; each entry of 'cases:' overrides them, and
    'run:' lists the operations (e.g. [jvp, vjp, {jacobian: {mode: rev}}]).

    Example: jaxdiff run configs/cases_seed001_simplefun.yaml --json
    """
    common = Common.of(locals())
    _guarded(debug, lambda: _run_cases(spec, common))


def _run_cases(spec_path: str, c: Common) -> None:
    from jaxdiff_cli import pipeline, render, save
    from jaxdiff_cli.numerics import first_nonfinite
    from jaxdiff_cli.runtime import versions
    from jaxdiff_cli.spec import Overrides, load_cases

    if c.output is not None:
        save.check_output_path(c.output)
    cases = load_cases(spec_path, Overrides(no_code=c.no_code))
    total = sum(len(case.steps) for case in cases)
    # With --devices (or the spec's devices:), the cases go round-robin over the mesh's devices.
    mesh = _mesh(c.devices, cases[0].spec) if cases else None
    spread = list(mesh.devices.flat) if mesh is not None else []
    items: list[dict[str, Any]] = []
    arrays: dict[str, Any] = {}
    first_error: JaxdiffError | None = None
    bad_finite: str | None = None
    with _bar(c, total) as advance:
        for number, case in enumerate(cases):
            item: dict[str, Any] = {"name": case.name, "function": case.spec.function, "dtype": case.spec.dtype, "results": []}
            items.append(item)
            try:
                device = spread[number % len(spread)] if spread else None
                prep = pipeline.prepare(case.spec, use_cache=not c.no_cache, cluster=c.cluster(), device=device)
                item["device"] = prep.runtime.device_name
                for step in case.steps:
                    advance(f"{case.name}: {step.op}")
                    result = pipeline.run_operation(
                        prep, step.op, pipeline.Options(mode=step.mode, chunk_size=step.chunk_size, bake=c.bake_primals)
                    )
                    item["results"].append(
                        {
                            "op": step.op,
                            "info": {k: v for k, v in result.info.items() if v is not None},
                            "outputs": {n: render.array_json(a) for n, a in render.named_leaves(result.outputs)},
                            "timing": {"compile_s": round(result.timing.compile_s, 6), "run_s": round(result.timing.run_s, 6)},
                        }
                    )
                    arrays.update({f"{case.name}/{step.op}/{n}": a for n, a in render.named_leaves(result.outputs)})
                    bad = first_nonfinite(result.outputs)
                    if bad is not None and bad_finite is None:
                        bad_finite = f"{case.name}: {step.op}: {bad[0]}{list(bad[1])} is {bad[2]}"
                    if not c.json_ and not c.quiet:
                        _print_result(f"{case.name}: {step.op}", result, prep)
            except JaxdiffError as exc:
                item["error"] = {"exit_code": int(exc.exit_code), "message": exc.render()}
                first_error = first_error or exc
                _stderr_console().print(f"error: {exc.render()}", markup=False, soft_wrap=True)
    doc = {
        "schema": 1,
        "jaxdiff_version": __version__,
        "command": "run",
        "spec": spec_path if spec_path != "-" else None,
        "cases": items,
        "versions": versions(),
    }
    if c.output is not None:
        save.save(c.output, arrays, doc)
    if c.json_:
        sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
    if first_error is not None:
        raise typer.Exit(int(first_error.exit_code))
    if bad_finite and c.check_finite:
        raise NonFiniteError(bad_finite, where="--check-finite")


def _print_result(title: str, result: Any, prep: Any, saved: Path | None = None) -> None:
    """One result on the terminal: its arrays, then device, dtype, compile and run time."""
    from rich.console import Console

    from jaxdiff_cli import render

    console = Console(highlight=False)
    footer = {
        "device": prep.runtime.device_name,
        "dtype": prep.spec.dtype,
        "compile": f"{result.timing.compile_s * 1e3:.1f} ms",
        "run": f"{result.timing.run_s * 1e3:.2f} ms",
    }
    if saved is not None:
        footer["saved"] = str(saved)
    console.print(render.rich_result(title=title, outputs=result.outputs, info=result.info, footer=footer, width=console.width))


def _bar(c: Common, total: int | None) -> Any:
    """A progress bar on stderr, only on a terminal: ``advance(text, done=None, total=None)``."""
    import contextlib

    if c.json_ or c.quiet or not sys.stderr.isatty():
        return contextlib.nullcontext(lambda text, done=None, of=None: None)
    console = _stderr_console()

    @contextlib.contextmanager
    def bar() -> Any:
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("running", total=total)

            def advance(text: str, done: int | None = None, of: int | None = None) -> None:
                if done is None:
                    progress.update(task, advance=1, description=text)
                else:
                    progress.update(task, completed=done, total=of, description=text)

            yield advance

    return bar()


@app.command()
def bench(
    spec: SpecArg = None,
    op: Annotated[
        str, typer.Option("--op", help="The operation: jacobian (fwd vs rev), hvp (three modes), jvp, vjp, grad, hessian, eval.")
    ] = "jacobian",
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", min=1, help="Also time the chunked Jacobian.", show_default=False)
    ] = None,
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed calls per mode (at least 5 calls).")] = 0.5,
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
    no_code: NoCodeOpt = False,
) -> None:
    """Time an operation in each of its modes: compile time, steady-state time, working memory.

    jacobian compares fwd and rev (and a chunk size, if given); hvp its three modes. The
    recommendation is the fastest mode in steady state.

    Example: jaxdiff bench configs/seed003_tanh_hvp.yaml --op hvp --min-time 0.1
    """
    common = Common.of(locals())
    _guarded(debug, lambda: _bench(common, op, chunk_size, min_time))


def _bench(c: Common, op: str, chunk_size: int | None, min_time: float) -> None:
    from jaxdiff_cli import bench as bench_mod
    from jaxdiff_cli import pipeline
    from jaxdiff_cli.errors import UsageError
    from jaxdiff_cli.runtime import versions
    from jaxdiff_cli.spec import OPERATIONS, Overrides, load_spec

    if op not in OPERATIONS:
        raise UsageError(f"unknown operation {op!r}", where="--op", hint=", ".join(OPERATIONS))
    if c.spec is None and c.fn is None:
        raise UsageError("give a SPEC file, or --fn and --primal", hint="see jaxdiff bench --help")
    overrides = Overrides(
        function=c.fn, primals=tuple(c.primal or ()), wrt=tuple(c.wrt or ()), tangents=tuple(c.tangent or ()),
        cotangent=c.cotangent, dtype=c.dtype, device=c.device, no_code=c.no_code,
    )  # fmt: skip
    spec = load_spec(c.spec, overrides)
    progress = _progress(c)
    with progress("preparing"):
        prep = pipeline.prepare(spec, use_cache=not c.no_cache)
    variants: list[tuple[str | None, int | None]] = [(m, None) for m in bench_mod.MODES.get(op, (None,))]
    if op == "jacobian" and chunk_size is not None:
        variants += [(m, chunk_size) for m in ("fwd", "rev")]
    timings = []
    for mode, chunk in variants:
        with progress(f"timing {op} {mode or ''} {f'chunk {chunk}' if chunk else ''}"):
            plan = pipeline.plan_operation(prep, op, pipeline.Options(mode=mode, chunk_size=chunk, bake=c.bake_primals))
            timing = bench_mod.time_plan(plan, min_time=min_time)
            label = f"{mode} chunk {chunk}" if chunk else mode
            timings.append(
                bench_mod.Timing(label, *[getattr(timing, f) for f in ("compile_s", "median_s", "min_s", "runs", "temp_bytes")])
            )
    advice = bench_mod.recommend(timings)
    auto = None
    if op == "jacobian":
        from jaxdiff_cli.engine import choose_mode

        auto = "auto would choose {} ({})".format(*choose_mode(prep.problem))
    if c.json_:
        doc = {
            "schema": 1, "jaxdiff_version": __version__, "command": "bench", "op": op, "function": spec.function,
            "device": prep.runtime.device_name, "dtype": spec.dtype, "timings": [t.as_dict() for t in timings],
            "recommendation": advice, "auto": auto, "versions": versions(),
        }  # fmt: skip
        sys.stdout.write(json.dumps(doc) + "\n")
    elif not c.quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{op} of {' '.join(spec.function.split())[:60]} on {prep.runtime.device_name}, {spec.dtype}")
        for col in ("mode", "compile", "median run", "min run", "runs", "working memory"):
            table.add_column(col, justify="right" if col != "mode" else "left")
        for t in timings:
            mem = f"{t.temp_bytes / 2**20:.2f} MiB" if t.temp_bytes is not None else "n/a"
            table.add_row(
                t.mode or op,
                f"{t.compile_s * 1e3:.1f} ms",
                f"{t.median_s * 1e3:.4f} ms",
                f"{t.min_s * 1e3:.4f} ms",
                str(t.runs),
                mem,
            )
        console = Console(highlight=False)
        console.print(table)
        for line in (advice and f"recommended: {advice}", auto):
            if line:
                console.print(line)


def _expand(patterns: list[str]) -> list[str]:
    """Spec paths, with glob patterns expanded here too (a shell that did not, or quoted ones)."""
    import glob

    from jaxdiff_cli.errors import SpecError

    paths: list[str] = []
    for p in patterns:
        if any(ch in p for ch in "*?[") and not Path(p).exists():
            found = sorted(glob.glob(p, recursive=True))
            if not found:
                raise SpecError("no file matches this pattern", where=p)
            paths.extend(found)
        else:
            paths.append(p)
    return paths


@app.command()
def devices(
    json_: JsonOpt = False,
    debug: DebugOpt = False,
    device: Annotated[
        str | None, typer.Option("--platform", help="Only this platform: cpu, gpu or tpu.", show_default=False)
    ] = None,
) -> None:
    """List the devices JAX sees (the first is the default for device: auto).

    Example: jaxdiff devices --json
    """

    def body() -> None:
        import jax

        from jaxdiff_cli import render
        from jaxdiff_cli.runtime import pick_device

        chosen = [pick_device(device, "--platform")] if device else []
        found = jax.devices(chosen[0].platform) if chosen else jax.devices()
        default = jax.devices()[0]
        rows = [{"id": d.id, "platform": d.platform, "kind": d.device_kind, "default": d == default} for d in found]
        if json_:
            sys.stdout.write(json.dumps({"schema": 1, "jaxdiff_version": __version__, "devices": rows}) + "\n")
        else:
            from rich.console import Console

            Console().print(render.devices_table(rows))

    _guarded(debug, body)


def main() -> None:
    """The ``jaxdiff`` command: the app, with SIGINT and SIGTERM turned into exits 130 and 143.

    Whenever a signal lands (in a command, while Typer parses, as the output is finished), it
    unwinds as an exception, so temporary files are removed, and ends in one line and its status.
    Once the status is decided, later signals are ignored while the interpreter shuts down.
    """
    code: int | str | None = 0
    signals.install()
    try:
        try:
            app(prog_name="jaxdiff")
        except SystemExit as exc:  # Click ends every run this way, with the status
            code = exc.code
        signals.ignore_from_now()
    except signals.Stopped as exc:  # landed outside a command's own handling
        signals.ignore_from_now()
        _stderr_console().print(exc.message, markup=False)
        code = int(exc.exit_code)
    sys.exit(code)
