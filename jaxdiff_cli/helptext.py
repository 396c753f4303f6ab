"""What ``--help`` says: every option's flags, words and choices, and every command's text.

Data only, stdlib only: ``cli.py`` turns each entry into a Typer option, so the words of a flag
are written once, and ``jaxdiff --help`` reads them without importing YAML, NumPy or JAX. The
modes and operations are the operation table's (``ops.py``, stdlib only). The dtypes and devices
copy the loader's tables (``dtypes.DTYPES``, ``inputs.spec.DEVICES``), which are the truth and check
the values; importing the loader would import YAML and NumPy into ``--help``, so a test keeps the
copies equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxdiff_cli.ops import DERIVATIVE, EVAL, GRAD, HESSIAN, HVP, JACOBIAN, JVP, MATRICES, TAYLOR, VJP

DTYPE_CHOICES = ("float32", "float64", "complex64", "complex128")
DEVICE_CHOICES = ("cpu", "gpu", "tpu", "auto")
OUTPUT_FORMAT_CHOICES = ("text", "json", "github")


@dataclass(frozen=True)
class Flag:
    """One option (or, with no ``names``, the positional argument) as ``--help`` shows it, with the
    Python type Typer reads it into and its default."""

    names: tuple[str, ...]
    help: str
    choices: tuple[str, ...] = ()  # listed in --help and completed by the shell
    envvar: str | None = None
    metavar: str | None = None
    min: int | None = None
    type: Any = str | None
    default: Any = None


REQUIRED: Any = ...  # the default of an argument that must be given


def switch(names: tuple[str, ...], help: str, **more: Any) -> Flag:
    """An on/off option: a bool, off unless given."""
    return Flag(names, help, type=bool, default=False, **more)


_FUNCTION = "The function: 'lambda x: ...', an expression over the primal names, module:function or file.py:function."

# In --help order: a computing command lists the shared options and its own in this order (cli.py).
FLAGS: dict[str, Flag] = {
    # ---- the function, its inputs, what to differentiate
    "spec": Flag((), "YAML spec file, or - to read it from stdin. Without it, give --fn and --primal."),
    "fn": Flag(("--fn", "-f"), _FUNCTION),
    "primal": Flag(
        ("--primal", "-p"),
        "NAME=VALUE, VALUE in YAML/JSON (x=[1,2,3], 'x={random: normal, shape: [3]}'). Repeatable; by name.",
        type=list[str] | None,
    ),
    "wrt": Flag(
        ("--wrt", "-w"),
        "Argument(s) to differentiate, by name (commas between). Default: the spec's, else the first parameter.",
        type=list[str] | None,
    ),
    "tangent": Flag(
        ("--tangent", "-t"),
        "NAME=VALUE tangent for a differentiated argument; a leading batch axis gives a batch.",
        type=list[str] | None,
    ),
    "cotangent": Flag(("--cotangent", "-c"), "Cotangent VALUE shaped like the output (or with a batch axis)."),
    # ---- what a command computes, and how
    "value": switch(("--value",), "Also show f(x)."),
    "jacobian.mode": Flag(
        ("--mode", "-m"), "fwd (jacfwd), rev (jacrev) or auto: forward when inputs <= outputs.", JACOBIAN.modes
    ),
    "hvp.mode": Flag(("--mode", "-m"), "fwd-rev (forward-over-reverse, default), rev-fwd or rev-rev.", HVP.modes),
    "chunk_size": Flag(
        ("--chunk-size",),
        "Push or pull N basis vectors at a time to bound memory, or auto (from free memory)."
        " With -o FILE.npy, chunks are written to the file as they are computed.",
    ),
    "dtype": Flag(("--dtype",), "float64 and complex128 enable x64.", DTYPE_CHOICES),
    "device": Flag(("--device",), "auto: JAX's default device.", DEVICE_CHOICES),
    # ---- what is shown and written
    "json_": switch(("--json",), "Print one JSON document on stdout (schema in the README)."),
    "output": Flag(
        ("--output", "-o"),
        "Save results: .npz (all arrays), .npy (the main result), .json (as --json). Atomic.",
        type=Path | None,
    ),
    "matrix.output": Flag(
        ("--output", "-o"),
        "Save results: .npz, .npy (the matrix), .mtx (Matrix Market: its nonzeros), .json (as --json). Atomic."
        " A sparse result (--sparse, sparse: true, or chosen by itself when the dense matrix would not fit in memory,"
        " as info.reason says) makes .npz scipy's sparse format (scipy.sparse.load_npz); a dense one, its arrays by name.",
        type=Path | None,
    ),
    "quiet": switch(("--quiet", "-q"), "No progress and no result on the terminal (use with -o); errors still go to stderr."),
    "debug": switch(("--debug",), "Show the full traceback of an error."),
    "no_cache": switch(("--no-cache",), "Skip the persistent XLA compilation cache."),
    "check_finite": switch(("--check-finite",), "Exit 5 if a result (or f's value) holds NaN or Inf."),
    "bake_primals": switch(
        ("--bake-primals",),
        "Compile the primal values into the program as constants: faster when XLA can precompute or re-lay-out them"
        " (large weights on the CPU), but the program is specific to these values.",
    ),
    "has_aux": switch(("--has-aux",), "f returns (output, aux): differentiate the output, report aux (JAX's has_aux)."),
    "no_code": switch(
        ("--no-code",),
        "Refuse module:function and file.py:function (they run their own code): expressions and lambdas only."
        " For CI jobs that check specs from pull requests. Also JAXDIFF_NO_CODE=1 (1, true, yes, on, y, t; 0, false,"
        " no, off, n, f; any other value is an error).",
    ),
    "cases": Flag(
        ("--case",),
        "Of a spec with cases:, use the case(s) of this name (a glob: 'vec*'); repeatable. A command that computes"
        " one thing takes one case.",
        metavar="NAME",
        type=list[str] | None,
    ),
    # ---- pictures of a Jacobian or Hessian
    "plot": switch(("--plot",), "Draw the matrix as a heatmap in the terminal (stderr with --json), with a summary."),
    "plot_file": Flag(("--plot-file",), "Save the picture as .png or .svg (needs matplotlib: jaxdiff[plot]).", type=Path | None),
    "spy": switch(("--spy",), "In --plot-file, draw the sparsity pattern instead of the values."),
    "summary": switch(("--summary",), "Sparsity, norm; for a Hessian its symmetry defect, extreme eigenvalues and definiteness."),
    # ---- several devices and hosts
    "devices": Flag(
        ("--devices",), "Spread batched products and Jacobian/Hessian basis vectors over all devices, or the first N."
    ),
    "coordinator": Flag(("--coordinator",), "HOST:PORT of process 0, to run on several hosts.", envvar="JAX_COORDINATOR_ADDRESS"),
    "num_processes": Flag(("--num-processes",), "How many processes in all.", envvar="JAX_NUM_PROCESSES", min=1, type=int | None),
    "process_id": Flag(("--process-id",), "This process (0 prints and writes).", envvar="JAX_PROCESS_ID", min=0, type=int | None),
    # ---- derivative and taylor; complex and sparse functions
    "order": Flag(("--order", "-k"), "The order K (1 to 32).", type=int | None),
    "taylor.mode": Flag(
        ("--mode", "-m"),
        "auto (default: Taylor mode by jax.experimental.jet, nested forward mode where jet has no rule), jet,"
        " or jvp (nested forward mode).",
        TAYLOR.modes,
    ),
    "holomorphic": switch(
        ("--holomorphic",),
        "f is holomorphic (complex in and out): JAX's holomorphic=True, the complex derivative f'(z)."
        " Without it, a real f of complex z has JAX's gradient ∂f/∂x − i·∂f/∂y.",
    ),
    "sparse": switch(
        ("--sparse",),
        "Detect the sparsity pattern, color it and compute only the nonzeros (needs jaxdiff[sparse])."
        " -o FILE.npz is then scipy's sparse format; .mtx is Matrix Market. Of real functions only.",
    ),
    # ---- check
    "check.specs": Flag((), "Spec files or glob patterns (specs/*.yaml).", type=list[str], default=REQUIRED),
    "check.rtol": Flag(("--rtol",), "Relative tolerance of AD vs FD (default 1e-4 float32, 1e-7 float64).", type=float | None),
    "check.atol": Flag(("--atol",), "Absolute tolerance of AD vs FD (default 1e-6 float32, 1e-12 float64).", type=float | None),
    "check.seed": Flag(("--seed",), "Seed of the random directions and vectors (default 0).", type=int, default=0),
    "check.update": switch(
        ("--update",),
        "Record the current results in each spec's expect: block (golden values, with jax, device, dtype), keeping"
        " its comments, and say what changed (old → new). Only records: exit 0 when it recorded everything.",
    ),
    "check.output_format": Flag(
        ("--output-format",),
        "text (a table), json (as --json) or github (workflow commands that annotate the spec's failing line,"
        " then the table). Default: github where GITHUB_ACTIONS=true, else text.",
        OUTPUT_FORMAT_CHOICES,
    ),
    "check.junit_xml": Flag(
        ("--junit-xml",),
        "Also write a JUnit XML report (one test per spec, case and check). Atomic.",
        metavar="FILE",
        type=Path | None,
    ),
    "check.quiet": switch(
        ("--quiet", "-q"), "No progress and no table: the exit status (and --junit-xml) only; errors still go to stderr."
    ),
    # ---- run, bench, sparsity, devices, init
    "run.spec": Flag((), "A spec with 'run:' (and optionally 'cases:'), or - for stdin.", type=str, default=REQUIRED),
    "bench.op": Flag(
        ("--op",),
        "The operation: jacobian (fwd vs rev, the default), hvp (three modes), jvp, vjp, grad, ...",
        type=str,
        default=JACOBIAN.name,
    ),
    "bench.chunk_size": Flag(("--chunk-size",), "Also time the chunked Jacobian.", min=1, type=int | None),
    "bench.min_time": Flag(
        ("--min-time",), "Seconds of timed calls per mode, at least 5 calls (default 0.5).", type=float, default=0.5
    ),
    "sparsity.op": Flag(("--op",), "jacobian (the default) or hessian.", MATRICES, type=str, default=JACOBIAN.name),
    "sparsity.mode": Flag(
        ("--mode", "-m"), "jacobian: fwd (column coloring), rev (row coloring) or auto (the fewer colors).", JACOBIAN.modes
    ),
    "sparsity.output": Flag(
        ("--output", "-o"),
        "Save the pattern: .npz (scipy.sparse.load_npz), .mtx (Matrix Market), .json. Atomic.",
        type=Path | None,
    ),
    "sparsity.no_cache": switch(("--no-cache",), "Detect and color afresh, and keep nothing."),
    "devices.platform": Flag(("--platform",), "Only this platform: cpu, gpu or tpu."),
    "init.function": Flag((), _FUNCTION, type=str, default=REQUIRED),
    "init.output": Flag(
        ("--output", "-o"),
        "Write the spec to FILE (never over an existing file); default: print it.",
        metavar="FILE",
        type=Path | None,
    ),
}

APP = (
    "Derivatives of your functions with JAX: JVPs, VJPs, gradients, Jacobians, Hessians and HVPs,"
    " from a YAML spec or straight from the shell.\n\n"
    "Example: jaxdiff grad -f 'lambda x: jnp.sum(jnp.tanh(x)**2)' -p x=[1,2,3]"
)

COMMANDS: dict[str, str] = {
    EVAL.name: """Evaluate f at the primals.

    Example: jaxdiff eval -f "(x + w) * x**2" -p x=3.0 -p w=1.0
    """,
    JVP.name: """Forward mode: f(x) and the Jacobian-vector product J(x)·v.

    Tangents with one more leading axis than the primals are a batch: J·V is computed with
    jax.vmap in one program.

    Example: jaxdiff jvp configs/seed000_poly.yaml
    """,
    VJP.name: """Reverse mode: f(x) and the vector-Jacobian product uᵀ·J(x), one result per differentiated argument.

    Cotangents with one more leading axis than the output are a batch (Uᵀ·J via jax.vmap).

    Example: jaxdiff vjp configs/seed000_poly.yaml
    """,
    GRAD.name: """Gradient ∇f(x) of a scalar-valued f, per differentiated argument.

    Example: jaxdiff grad -f "lambda x: jnp.sum(jnp.tanh(x)**2)" -p x=[1,2,3]
    """,
    JACOBIAN.name: """The Jacobian ∂f(x), output axes first, per differentiated argument.

    Example: jaxdiff jacobian configs/seed001_simplefun_vector.yaml --mode rev
    """,
    HESSIAN.name: """The Hessian ∂²f(x) of a scalar-valued f (forward-over-reverse).

    Example: jaxdiff hessian -f "lambda x: jnp.sum(x**3)" -p x=[1,2]
    """,
    HVP.name: """Hessian-vector product ∂²f(x)·v of a scalar-valued f, without forming the Hessian.

    Example: jaxdiff hvp configs/seed003_tanh_hvp.yaml --mode rev-rev
    """,
    DERIVATIVE.name: """The K-th derivative of s ↦ f(x + s·v) at s = 0, for any output shape.

    Of a function of one scalar (v = 1), or along the tangents -t (several arguments: all move
    together). By Taylor mode (jax.experimental.jet) where jet has rules for every primitive of f,
    else by nested forward mode (jvp of jvp ...); info says which, and why.

    Example: jaxdiff derivative -f "sin(x) * exp(x)" -p x=0.5 --order 4
    """,
    TAYLOR.name: """Taylor coefficients f⁽ᵏ⁾(x)[v, ..., v] / k!, k = 0..K, of s ↦ f(x + s·v), in one pass.

    Each output leaf gets a leading axis of K + 1 coefficients (coefficient 0 is f(x)). Taylor mode
    (jax.experimental.jet) where it applies, else nested forward mode, as derivative.

    Example: jaxdiff taylor -f "jnp.exp(x)" -p x=[0.0,1.0] -t x=[1.0,2.0] --order 4
    """,
    "check": """Check specs: their expect: values, and AD in both modes against finite differences.

    Also the adjoint identity ⟨u, Jv⟩ = ⟨Jᵀu, v⟩, the HVP modes against each other, and that all
    results are finite. Exit 0 if every check passes, 1 if one fails, 3/4 for a bad spec or function.

    Example: jaxdiff check configs/seed000_poly.yaml configs/seed002_adder.yaml
    """,
    "run": """Run every operation a spec lists, for each of its cases; one JSON document for all.

    A spec's top-level keys are shared defaults; each entry of 'cases:' overrides them, and
    'run:' lists the operations (e.g. [jvp, vjp, {jacobian: {mode: rev}}]).

    Example: jaxdiff run configs/cases_seed001_simplefun.yaml --json
    """,
    "bench": """Time an operation in each of its modes: compile time, steady-state time, working memory.

    jacobian compares fwd and rev (and a chunk size, if given); hvp its three modes; derivative and
    taylor Taylor mode (jet) against nested forward mode (--order K). The recommendation is the
    fastest mode in steady state.

    Example: jaxdiff bench configs/seed003_tanh_hvp.yaml --op hvp --min-time 0.1
    """,
    "sparsity": """The sparsity pattern of the Jacobian (or Hessian) and its coloring, without computing values.

    Shows the nonzeros, the density, the colors (the JVPs, VJPs or HVPs that --sparse needs) and a
    spy picture; the pattern is valid at every value of the differentiated inputs. Needs jaxdiff[sparse].

    Example: jaxdiff sparsity configs/pde_laplacian2d_sparse.yaml
    """,
    "devices": """List the devices JAX sees (the first is the default for device: auto).

    Example: jaxdiff devices --json
    """,
    "init": """Write a starter spec: the function, its primals, what to differentiate and an empty expect: block.

    Then `jaxdiff check --update FILE` records the results as the expected values, and `jaxdiff
    check FILE` guards them from then on. The spec is read back (as any spec is) before it is written.

    Example: jaxdiff init "lambda x: jnp.sum(jnp.sin(x)**2)" -p x=[0.5,1.0]
    """,
    "schema": """Print the JSON Schema of a spec, for editors and validators (the package ships it as spec.schema.json).

    Save it next to your specs and name it on a spec's first line, for completion and checking in
    editors with the YAML language server: # yaml-language-server: $schema=jaxdiff.schema.json

    Example: jaxdiff schema
    """,
}
