"""The Typer app: options -> a Request, an Outcome -> output, errors -> exit codes. Only this imports typer.

The work is in operations.py, what is shown and written in output/. Everything heavy (JAX, NumPy,
the engine) is imported inside the commands, so ``jaxdiff``, ``jaxdiff --help``, ``jaxdiff COMMAND
--help`` and ``jaxdiff --version`` never import JAX.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import __version__, signals
from .errors import ExitCode, JaxdiffError, OutputClosed, UsageError, blame

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Result
    from jaxdiff_cli.engine.runtime import Cluster
    from jaxdiff_cli.inputs.spec import Step
    from jaxdiff_cli.operations import Outcome, Pictures, Request

app = typer.Typer(
    name="jaxdiff",
    help=(
        "Derivatives of your functions with JAX: JVPs, VJPs, gradients, Jacobians, Hessians and HVPs,"
        " from a YAML spec or straight from the shell.\n\n"
        "Example: jaxdiff grad -f 'lambda x: jnp.sum(jnp.tanh(x)**2)' -p x=[1,2,3]"
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_show_locals=False,  # --debug: a traceback, not every local (a Jacobian can be large)
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# ---------------------------------------------------------------- options shared by the commands
# Declared once as Annotated types so that their help is written once.


def _opt(*names: str, help: str, **more: Any) -> Any:
    return typer.Option(*names, help=help, show_default=False, **more)


SpecArg = Annotated[
    str | None,
    typer.Argument(help="YAML spec file, or - to read it from stdin. Without it, give --fn and --primal.", show_default=False),
]
FnOpt = Annotated[
    str | None,
    _opt(
        "--fn",
        "-f",
        help="The function: 'lambda x: ...', an expression over the primal names, module:function or file.py:function.",
    ),
]
PrimalOpt = Annotated[
    list[str] | None,
    _opt(
        "--primal",
        "-p",
        help="NAME=VALUE, VALUE in YAML/JSON (x=[1,2,3], 'x={random: normal, shape: [3]}'). Repeatable; by name.",
    ),
]
WrtOpt = Annotated[
    list[str] | None,
    _opt(
        "--wrt",
        "-w",
        help="Argument(s) to differentiate, by name (commas between). Default: the spec's, else the first parameter.",
    ),
]
TangentOpt = Annotated[
    list[str] | None,
    _opt("--tangent", "-t", help="NAME=VALUE tangent for a differentiated argument; a leading batch axis gives a batch."),
]
CotangentOpt = Annotated[
    str | None, _opt("--cotangent", "-c", help="Cotangent VALUE shaped like the output (or with a batch axis).")
]
# The choices of --dtype, --device and --mode, for --help and shell completion. The loader's tables
# (inputs.spec.DTYPES, DEVICES, prepare.MODES) are the truth and check the values; they are copied
# here because importing them would import YAML and NumPy into `jaxdiff --help` (a test keeps them equal).
DTYPE_CHOICES = ("float32", "float64", "complex64", "complex128")
DEVICE_CHOICES = ("cpu", "gpu", "tpu", "auto")
JACOBIAN_MODE_CHOICES = ("fwd", "rev", "auto")
HVP_MODE_CHOICES = ("fwd-rev", "rev-fwd", "rev-rev")
SPARSITY_OP_CHOICES = ("jacobian", "hessian")  # engine.sparse.KINDS


def _choice(*names: str, choices: tuple[str, ...], help: str) -> Any:
    """An option whose values are ``choices``: listed in --help and completed by the shell."""
    return _opt(*names, help=help, metavar="[" + "|".join(choices) + "]", autocompletion=lambda: list(choices))


DtypeOpt = Annotated[str | None, _choice("--dtype", choices=DTYPE_CHOICES, help="float64 and complex128 enable x64.")]
DeviceOpt = Annotated[str | None, _choice("--device", choices=DEVICE_CHOICES, help="auto: JAX's default device.")]
TAYLOR_MODE_CHOICES = ("auto", "jet", "jvp")
JsonOpt = Annotated[bool, _opt("--json", help="Print one JSON document on stdout (schema in the README).")]
OutputOpt = Annotated[
    Path | None,
    _opt("--output", "-o", help="Save results: .npz (all arrays), .npy (the main result), .json (as --json). Atomic."),
]
MatrixOutputOpt = Annotated[
    Path | None,
    _opt(
        "--output",
        "-o",
        help="Save results: .npz, .npy (the matrix), .mtx (Matrix Market: its nonzeros), .json (as --json). Atomic."
        " A sparse result (--sparse, sparse: true, or chosen by itself when the dense matrix would not fit in memory,"
        " as info.reason says) makes .npz scipy's sparse format (scipy.sparse.load_npz); a dense one, its arrays by name.",
    ),
]
QuietOpt = Annotated[
    bool, _opt("--quiet", "-q", help="No progress and no result on the terminal (use with -o); errors still go to stderr.")
]
CheckQuietOpt = Annotated[
    bool,
    _opt("--quiet", "-q", help="No progress and no table: the exit status (and --junit-xml) only; errors still go to stderr."),
]
DebugOpt = Annotated[bool, _opt("--debug", help="Show the full traceback of an error.")]
NoCacheOpt = Annotated[bool, _opt("--no-cache", help="Skip the persistent XLA compilation cache.")]
PlotOpt = Annotated[
    bool, _opt("--plot", help="Draw the matrix as a heatmap in the terminal (stderr with --json), with a summary.")
]
PlotFileOpt = Annotated[
    Path | None, _opt("--plot-file", help="Save the picture as .png or .svg (needs matplotlib: jaxdiff[plot]).")
]
SpyOpt = Annotated[bool, _opt("--spy", help="In --plot-file, draw the sparsity pattern instead of the values.")]
SummaryOpt = Annotated[
    bool, _opt("--summary", help="Sparsity, norm; for a Hessian its symmetry defect, extreme eigenvalues and definiteness.")
]
FiniteOpt = Annotated[bool, _opt("--check-finite", help="Exit 5 if a result (or f's value) holds NaN or Inf.")]
DevicesOpt = Annotated[
    str | None,
    _opt("--devices", help="Spread batched products and Jacobian/Hessian basis vectors over all devices, or the first N."),
]
CoordinatorOpt = Annotated[
    str | None, _opt("--coordinator", envvar="JAX_COORDINATOR_ADDRESS", help="HOST:PORT of process 0, to run on several hosts.")
]
ProcessesOpt = Annotated[
    int | None, _opt("--num-processes", envvar="JAX_NUM_PROCESSES", min=1, help="How many processes in all.")
]
ProcessIdOpt = Annotated[
    int | None, _opt("--process-id", envvar="JAX_PROCESS_ID", min=0, help="This process (0 prints and writes).")
]
NoCodeOpt = Annotated[
    bool,
    _opt(
        "--no-code",
        envvar="JAXDIFF_NO_CODE",
        help="Refuse module:function and file.py:function (they run their own code): expressions and lambdas only."
        " For CI jobs that check specs from pull requests.",
    ),
]
HasAuxOpt = Annotated[
    bool, _opt("--has-aux", help="f returns (output, aux): differentiate the output, report aux (JAX's has_aux).")
]
BakeOpt = Annotated[
    bool,
    _opt(
        "--bake-primals",
        help="Compile the primal values into the program as constants: faster when XLA can precompute or re-lay-out them"
        " (large weights on the CPU), but the program is specific to these values.",
    ),
]
ModeOpt = Annotated[
    str | None,
    _choice(
        "--mode", "-m", choices=JACOBIAN_MODE_CHOICES, help="fwd (jacfwd), rev (jacrev) or auto: forward when inputs <= outputs."
    ),
]
HvpModeOpt = Annotated[
    str | None,
    _choice("--mode", "-m", choices=HVP_MODE_CHOICES, help="fwd-rev (forward-over-reverse, default), rev-fwd or rev-rev."),
]
ChunkOpt = Annotated[
    str | None,
    _opt(
        "--chunk-size",
        help="Push or pull N basis vectors at a time to bound memory, or auto (from free memory)."
        " With -o FILE.npy, chunks are written to the file as they are computed.",
    ),
]
ValueOpt = Annotated[bool, _opt("--value", help="Also show f(x).")]
SparseOpt = Annotated[
    bool,
    _opt(
        "--sparse",
        help="Detect the sparsity pattern, color it and compute only the nonzeros (needs jaxdiff[sparse])."
        " -o FILE.npz is then scipy's sparse format; .mtx is Matrix Market. Of real functions only.",
    ),
]
HolomorphicOpt = Annotated[
    bool,
    _opt(
        "--holomorphic",
        help="f is holomorphic (complex in and out): JAX's holomorphic=True, the complex derivative f'(z)."
        " Without it, a real f of complex z has JAX's gradient ∂f/∂x − i·∂f/∂y.",
    ),
]
OrderOpt = Annotated[int | None, _opt("--order", "-k", help="The order K (1 to 32).")]
TaylorModeOpt = Annotated[
    str | None,
    _choice(
        "--mode",
        "-m",
        choices=TAYLOR_MODE_CHOICES,
        help="auto (default: Taylor mode by jax.experimental.jet, nested forward mode where jet has no rule), jet,"
        " or jvp (nested forward mode).",
    ),
]
CaseOpt = Annotated[
    list[str] | None,
    _opt(
        "--case",
        metavar="NAME",
        help="Of a spec with cases:, use the case(s) of this name (a glob: 'vec*'); repeatable. A command that computes"
        " one thing takes one case.",
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
    has_aux: bool = False
    no_code: bool = False
    devices: str | None = None
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    mode: str | None = None
    chunk_size: str | None = None
    value: bool = True
    plot: bool = False
    plot_file: Path | None = None
    spy: bool = False
    summary: bool = False
    case: list[str] | None = None
    holomorphic: bool = False
    order: int | None = None
    sparse: bool = False

    @classmethod
    def of(cls, params: dict[str, Any]) -> Common:
        """From a command's ``locals()``."""
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name in params})

    def cluster(self) -> Cluster | None:
        """The cluster to join, from --coordinator and friends (or JAX_* variables)."""
        given = [self.coordinator, self.num_processes, self.process_id]
        if all(v is None for v in given):
            return None
        if any(v is None for v in given):
            raise UsageError("several hosts need --coordinator, --num-processes and --process-id together")
        from jaxdiff_cli.engine.runtime import Cluster

        return Cluster(str(self.coordinator), int(self.num_processes or 1), int(self.process_id or 0))

    def request(self, command: str, pictures: Pictures | None = None) -> Request:
        from jaxdiff_cli.inputs.spec import Overrides, parse_chunk_size, parse_order
        from jaxdiff_cli.operations import Request
        from jaxdiff_cli.prepare import Options

        overrides = Overrides(
            function=self.fn, primals=tuple(self.primal or ()), wrt=tuple(self.wrt or ()), tangents=tuple(self.tangent or ()),
            cotangent=self.cotangent, dtype=self.dtype, device=self.device, has_aux=self.has_aux, no_code=self.no_code,
            cases=tuple(self.case or ()),
            holomorphic=self.holomorphic,
        )  # fmt: skip
        chunk = parse_chunk_size(self.chunk_size, "--chunk-size")
        order = parse_order(self.order, "--order")
        options = Options(
            mode=self.mode, chunk_size=chunk, with_value=self.value, bake=self.bake_primals, order=order,
            sparse=self.sparse or None,
        )  # fmt: skip
        return Request(
            command, self.spec, overrides, options, self.devices, self.cluster(), not self.no_cache, self.output, pictures
        )

    @property
    def shows_progress(self) -> bool:
        return not (self.json_ or self.quiet)


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
        if json_:
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


# Each computing command is the shared options plus its own, declared once in this table; the
# commands are registered from it (Typer reads their signatures), so no option is written twice.
_OPTIONS: dict[str, tuple[Any, Any]] = {  # name -> (Annotated type, default), in --help order
    "spec": (SpecArg, None), "fn": (FnOpt, None), "primal": (PrimalOpt, None), "wrt": (WrtOpt, None),
    "tangent": (TangentOpt, None), "cotangent": (CotangentOpt, None), "value": (ValueOpt, False),
    "mode": (ModeOpt, None), "hvp_mode": (HvpModeOpt, None), "chunk_size": (ChunkOpt, None),
    "dtype": (DtypeOpt, None), "device": (DeviceOpt, None), "json_": (JsonOpt, False), "output": (OutputOpt, None),
    "matrix_output": (MatrixOutputOpt, None),
    "quiet": (QuietOpt, False), "debug": (DebugOpt, False), "no_cache": (NoCacheOpt, False),
    "check_finite": (FiniteOpt, False), "bake_primals": (BakeOpt, False), "has_aux": (HasAuxOpt, False),
    "no_code": (NoCodeOpt, False),
    "case": (CaseOpt, None),
    "plot": (PlotOpt, False), "plot_file": (PlotFileOpt, None), "spy": (SpyOpt, False), "summary": (SummaryOpt, False),
    "devices": (DevicesOpt, None), "coordinator": (CoordinatorOpt, None), "num_processes": (ProcessesOpt, None),
    "process_id": (ProcessIdOpt, None),
    "order": (OrderOpt, None), "taylor_mode": (TaylorModeOpt, None), "holomorphic": (HolomorphicOpt, False),
    "sparse": (SparseOpt, False),
}  # fmt: skip
_RENAMED = {"hvp_mode": "mode", "taylor_mode": "mode", "matrix_output": "output"}  # one option, other help
_SHARED = ("spec", "fn", "primal", "dtype", "device", "json_", "output", "quiet", "debug", "no_cache", "check_finite",
           "bake_primals", "has_aux", "no_code", "case")  # fmt: skip
_SHARDED = ("devices", "coordinator", "num_processes", "process_id")
_PICTURES = ("plot", "plot_file", "spy", "summary")


def _computing(name: str, doc: str, *own: str) -> None:
    """Register the command ``name``: the shared options and its ``own``, ``doc`` as its --help."""
    import inspect

    chosen = [n for n in _OPTIONS if (n in _SHARED and n not in {_RENAMED.get(o) for o in own}) or n in own]
    params = [
        inspect.Parameter(_RENAMED.get(n, n), inspect.Parameter.KEYWORD_ONLY, default=_OPTIONS[n][1], annotation=_OPTIONS[n][0])
        for n in chosen
    ]

    def command(**given: Any) -> None:
        c = Common.of(given)
        _compute(name, c, _pictures(c) if "plot" in own else None)

    command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = doc
    app.command(name)(command)


_computing("eval", """Evaluate f at the primals.

    Example: jaxdiff eval -f "(x + w) * x**2" -p x=3.0 -p w=1.0
    """)  # fmt: skip
_computing("jvp", """Forward mode: f(x) and the Jacobian-vector product J(x)·v.

    Tangents with one more leading axis than the primals are a batch: J·V is computed with
    jax.vmap in one program.

    Example: jaxdiff jvp configs/seed000_poly.yaml
    """, "wrt", "tangent", "holomorphic", *_SHARDED)  # fmt: skip
_computing("vjp", """Reverse mode: f(x) and the vector-Jacobian product uᵀ·J(x), one result per differentiated argument.

    Cotangents with one more leading axis than the output are a batch (Uᵀ·J via jax.vmap).

    Example: jaxdiff vjp configs/seed000_poly.yaml
    """, "wrt", "cotangent", "holomorphic", *_SHARDED)  # fmt: skip
_computing("grad", """Gradient ∇f(x) of a scalar-valued f, per differentiated argument.

    Example: jaxdiff grad -f "lambda x: jnp.sum(jnp.tanh(x)**2)" -p x=[1,2,3]
    """, "wrt", "value", "holomorphic")  # fmt: skip
_computing("jacobian", """The Jacobian ∂f(x), output axes first, per differentiated argument.

    Example: jaxdiff jacobian configs/seed001_simplefun_vector.yaml --mode rev
    """, "wrt", "mode", "chunk_size", "holomorphic", *_PICTURES, *_SHARDED, "sparse", "matrix_output")  # fmt: skip
_computing("hessian", """The Hessian ∂²f(x) of a scalar-valued f (forward-over-reverse).

    Example: jaxdiff hessian -f "lambda x: jnp.sum(x**3)" -p x=[1,2]
    """, "wrt", "holomorphic", *_PICTURES, *_SHARDED, "sparse", "matrix_output")  # fmt: skip
_computing("hvp", """Hessian-vector product ∂²f(x)·v of a scalar-valued f, without forming the Hessian.

    Example: jaxdiff hvp configs/seed003_tanh_hvp.yaml --mode rev-rev
    """, "wrt", "tangent", "hvp_mode", "holomorphic", *_SHARDED)  # fmt: skip
_computing("derivative", """The K-th derivative of s ↦ f(x + s·v) at s = 0, for any output shape.

    Of a function of one scalar (v = 1), or along the tangents -t (several arguments: all move
    together). By Taylor mode (jax.experimental.jet) where jet has rules for every primitive of f,
    else by nested forward mode (jvp of jvp ...); info says which, and why.

    Example: jaxdiff derivative -f "sin(x) * exp(x)" -p x=0.5 --order 4
    """, "wrt", "tangent", "order", "taylor_mode")  # fmt: skip
_computing("taylor", """Taylor coefficients f⁽ᵏ⁾(x)[v, ..., v] / k!, k = 0..K, of s ↦ f(x + s·v), in one pass.

    Each output leaf gets a leading axis of K + 1 coefficients (coefficient 0 is f(x)). Taylor mode
    (jax.experimental.jet) where it applies, else nested forward mode, as derivative.

    Example: jaxdiff taylor -f "jnp.exp(x)" -p x=[0.0,1.0] -t x=[1.0,2.0] --order 4
    """, "wrt", "tangent", "order", "taylor_mode")  # fmt: skip


def _pictures(c: Common) -> Pictures:
    from jaxdiff_cli.operations import Pictures

    return Pictures(terminal=c.plot, file=c.plot_file, spy=c.spy, summary=c.summary)


# ---------------------------------------------------------------- check, run, bench, devices


@app.command()
def check(
    specs: Annotated[list[str], typer.Argument(help="Spec files or glob patterns (specs/*.yaml).", show_default=False)],
    rtol: Annotated[
        float | None, _opt("--rtol", help="Relative tolerance of AD vs FD (default 1e-4 float32, 1e-7 float64).")
    ] = None,
    atol: Annotated[
        float | None, _opt("--atol", help="Absolute tolerance of AD vs FD (default 1e-6 float32, 1e-12 float64).")
    ] = None,
    seed: Annotated[int, _opt("--seed", help="Seed of the random directions and vectors (default 0).")] = 0,
    update: Annotated[
        bool,
        _opt(
            "--update", help="Record the current results as each spec's expect: block (golden values), with jax, device, dtype."
        ),
    ] = False,
    json_: JsonOpt = False,
    output_format: Annotated[
        str | None,
        _choice(
            "--output-format",
            choices=("text", "json", "github"),
            help="text (a table), json (as --json) or github (workflow commands that annotate the spec's failing line,"
            " then the table). Default: github where GITHUB_ACTIONS=true, else text.",
        ),
    ] = None,
    junit_xml: Annotated[
        Path | None,
        _opt("--junit-xml", metavar="FILE", help="Also write a JUnit XML report (one test per spec, case and check). Atomic."),
    ] = None,
    case: CaseOpt = None,
    quiet: CheckQuietOpt = False,
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
        from jaxdiff_cli import operations
        from jaxdiff_cli.checks.check import Settings
        from jaxdiff_cli.output import console, render
        from jaxdiff_cli.output import reports as ci

        fmt = _output_format(output_format, json_)
        if junit_xml is not None:
            ci.check_report_path(junit_xml)  # fail before any work, not after
        settings = Settings(rtol=rtol, atol=atol, seed=seed, use_cache=not no_cache, update=update)
        with console.progress(fmt == "text" and not quiet) as progress:
            reports = operations.check(specs, settings, progress, no_code=no_code, cases=tuple(case or ()))
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


def _output_format(chosen: str | None, json_: bool) -> str:
    """check's output format: --output-format, --json, else github in GitHub Actions, else text."""
    import os

    if chosen is not None and chosen not in ("text", "json", "github"):
        raise UsageError(f"unknown format {chosen!r}", where="--output-format", hint="text, json or github")
    if json_ and chosen not in (None, "json"):
        raise UsageError(f"--json and --output-format {chosen} disagree", hint="give one of them")
    if chosen is not None:
        return chosen
    if json_:
        return "json"
    return "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"


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
    case: CaseOpt = None,
) -> None:
    """Run every operation a spec lists, for each of its cases; one JSON document for all.

    A spec's top-level keys are shared defaults; each entry of 'cases:' overrides them, and
    'run:' lists the operations (e.g. [jvp, vjp, {jacobian: {mode: rev}}]).

    Example: jaxdiff run configs/cases_seed001_simplefun.yaml --json
    """
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
        if not c.quiet:
            for warning in outcome.warnings + ([outcome.nonfinite] if outcome.nonfinite else []):
                console.say("warning", warning)
        if c.output is not None:
            save.save(c.output, outcome.arrays(), doc)
        if c.json_:
            console.print_json(doc)
        if outcome.first_error is not None:
            raise typer.Exit(int(outcome.first_error.exit_code))
        if outcome.nonfinite and c.check_finite:
            from jaxdiff_cli.errors import NonFiniteError

            raise NonFiniteError(outcome.nonfinite, where="--check-finite")

    _guarded(debug, body, c.json_)


@app.command()
def bench(
    spec: SpecArg = None,
    op: Annotated[
        str, _opt("--op", help="The operation: jacobian (fwd vs rev, the default), hvp (three modes), jvp, vjp, grad, ...")
    ] = ("jacobian"),
    chunk_size: Annotated[int | None, _opt("--chunk-size", min=1, help="Also time the chunked Jacobian.")] = None,
    min_time: Annotated[float, _opt("--min-time", help="Seconds of timed calls per mode, at least 5 calls (default 0.5).")] = 0.5,
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
    """Time an operation in each of its modes: compile time, steady-state time, working memory.

    jacobian compares fwd and rev (and a chunk size, if given); hvp its three modes; derivative and
    taylor Taylor mode (jet) against nested forward mode (--order K). The recommendation is the
    fastest mode in steady state.

    Example: jaxdiff bench configs/seed003_tanh_hvp.yaml --op hvp --min-time 0.1
    """
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


@app.command()
def sparsity(
    spec: SpecArg = None,
    op: Annotated[str, _choice("--op", choices=SPARSITY_OP_CHOICES, help="jacobian (the default) or hessian.")] = "jacobian",
    mode: Annotated[
        str | None,
        _choice(
            "--mode",
            "-m",
            choices=JACOBIAN_MODE_CHOICES,
            help="jacobian: fwd (column coloring), rev (row coloring) or auto (the fewer colors).",
        ),
    ] = None,
    fn: FnOpt = None,
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    json_: JsonOpt = False,
    output: Annotated[
        Path | None,
        _opt("--output", "-o", help="Save the pattern: .npz (scipy.sparse.load_npz), .mtx (Matrix Market), .json. Atomic."),
    ] = None,
    plot_file: PlotFileOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
    no_cache: Annotated[bool, _opt("--no-cache", help="Detect and color afresh, and keep nothing.")] = False,
    has_aux: HasAuxOpt = False,
    no_code: NoCodeOpt = False,
) -> None:
    """The sparsity pattern of the Jacobian (or Hessian) and its coloring, without computing values.

    Shows the nonzeros, the density, the colors (the JVPs, VJPs or HVPs that --sparse needs) and a
    spy picture; the pattern is valid at every value of the differentiated inputs. Needs jaxdiff[sparse].

    Example: jaxdiff sparsity configs/pde_laplacian2d_sparse.yaml
    """
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

    _guarded(debug, body)


@app.command()
def devices(
    json_: JsonOpt = False,
    debug: DebugOpt = False,
    platform: Annotated[
        str | None, typer.Option("--platform", help="Only this platform: cpu, gpu or tpu.", show_default=False)
    ] = None,
) -> None:
    """List the devices JAX sees (the first is the default for device: auto).

    Example: jaxdiff devices --json
    """

    def body() -> None:
        from jaxdiff_cli import operations
        from jaxdiff_cli.output import console, render

        rows = operations.devices(platform)
        if json_:
            console.print_json(render.envelope("devices", operations.versions(), devices=rows))
        else:
            console.print_renderable(render.devices_table(rows))

    _guarded(debug, body, json_)


@app.command()
def init(
    function: Annotated[
        str,
        typer.Argument(
            help="The function: 'lambda x: ...', an expression over the primal names, module:function or file.py:function.",
            show_default=False,
        ),
    ],
    primal: PrimalOpt = None,
    wrt: WrtOpt = None,
    tangent: TangentOpt = None,
    dtype: DtypeOpt = None,
    output: Annotated[
        Path | None,
        _opt("--output", "-o", metavar="FILE", help="Write the spec to FILE (never over an existing file); default: print it."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Write a starter spec: the function, its primals, what to differentiate and an empty expect: block.

    Then `jaxdiff check --update FILE` records the results as the expected values, and `jaxdiff
    check FILE` guards them from then on. The spec is read back (as any spec is) before it is written.

    Example: jaxdiff init "lambda x: jnp.sum(jnp.sin(x)**2)" -p x=[0.5,1.0]
    """

    def body() -> None:
        from jaxdiff_cli.atomic import write_new
        from jaxdiff_cli.errors import OutputError
        from jaxdiff_cli.output import console
        from jaxdiff_cli.starter import starter_spec

        name = output.name if output is not None else "spec.yaml"
        folder = (output.parent if str(output.parent) else Path(".")) if output is not None else None
        refused = "exists: jaxdiff init never overwrites a file"
        if output is not None and output.exists():
            raise OutputError(refused, where=f"-o {output}", hint="remove it or pick another name")
        if folder is not None and not folder.is_dir():
            raise OutputError(f"folder {folder} does not exist", where=f"-o {output}")
        text = starter_spec(
            function, tuple(primal or ()), wrt=tuple(wrt or ()), tangents=tuple(tangent or ()), dtype=dtype, name=name,
            base_dir=folder.resolve() if folder is not None else None,
        )  # fmt: skip
        if output is None:
            console.write(text)
            return
        try:
            write_new(output, text.encode("utf-8"))
        except FileExistsError:
            raise OutputError(refused, where=f"-o {output}") from None
        except OSError as exc:
            raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"-o {output}") from None
        typer.echo(f"wrote {output}; next: jaxdiff check --update {output}", err=True)

    _guarded(debug, body)


@app.command()
def schema(debug: DebugOpt = False) -> None:
    """Print the JSON Schema of a spec, for editors and validators (the package ships it as spec.schema.json).

    Save it next to your specs and name it on a spec's first line, for completion and checking in
    editors with the YAML language server: # yaml-language-server: $schema=jaxdiff.schema.json

    Example: jaxdiff schema
    """

    def body() -> None:
        from jaxdiff_cli.output import console
        from jaxdiff_cli.schema import schema_text

        console.write(schema_text())

    _guarded(debug, body)


def main() -> None:
    """The ``jaxdiff`` command: the app, with SIGINT and SIGTERM turned into exits 130 and 143.

    Whenever a signal lands (in a command, while Typer parses, as the output is finished), it
    unwinds as an exception, so temporary files are removed, and ends in one line and its status.
    Once the status is decided, later signals are ignored while the interpreter shuts down.
    """
    from jaxdiff_cli.output.console import say

    code: int | str | None = 0
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
