"""Every command's work: a Request in, an Outcome out. Never prints.

cli.py turns options into a Request and an Outcome into output (terminal, JSON, files); what
happens in between is here: loading the spec, preparing, computing, diagnostics, pictures' matrices.
Long work reports through a ``Progress`` the caller supplies (a spinner and a bar on a terminal).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from jaxdiff_cli.errors import FunctionError, JaxdiffError, NonFiniteError, SpecError, UsageError, join
from jaxdiff_cli.inputs.cases import Case, Step, case_names, cases_of, load_spec
from jaxdiff_cli.inputs.files import STDIN, expand, read_source
from jaxdiff_cli.inputs.spec import Overrides, Spec, parse_devices
from jaxdiff_cli.ops import HESSIAN, JACOBIAN, MATRICES, OPERATIONS, OPS
from jaxdiff_cli.prepare import (
    Options,
    Prepared,
    compute_operation,
    prepare,
    primary_array,
    run_operation,
    sparse_of,
    stream_jacobian,
)

if TYPE_CHECKING:
    import numpy as np
    from jax.sharding import Mesh

    from jaxdiff_cli.checks.check import Report, Settings
    from jaxdiff_cli.engine.bench import Timing
    from jaxdiff_cli.engine.layout import Matrix
    from jaxdiff_cli.engine.problem import Result
    from jaxdiff_cli.engine.runtime import Cluster
    from jaxdiff_cli.engine.sparse import SparseMatrix
    from jaxdiff_cli.target import Target


class Progress(Protocol):
    """How long work reports itself: a named stage, and steps of a known or unknown number."""

    def stage(self, text: str) -> contextlib.AbstractContextManager[Any]: ...

    def advance(self, text: str, done: int | None = None, total: int | None = None) -> None: ...


class Silent:
    """Progress that shows nothing (scripts, --json, tests)."""

    def stage(self, text: str) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def advance(self, text: str, done: int | None = None, total: int | None = None) -> None:
        return None


@dataclass(frozen=True)
class Pictures:
    """jacobian / hessian: what to draw (command-line flags, or the spec's plot: key)."""

    terminal: bool = False
    file: Path | None = None
    spy: bool = False
    summary: bool = False
    file_source: str = "--plot-file"  # where file came from, for messages: --plot-file or plot.file

    def merged(self, spec_plot: dict[str, Any]) -> Pictures:
        from_spec = self.file is None and bool(spec_plot.get("file"))
        return Pictures(
            terminal=self.terminal or bool(spec_plot.get("terminal")),
            file=self.file or (Path(spec_plot["file"]) if spec_plot.get("file") else None),
            spy=self.spy or bool(spec_plot.get("spy")),
            summary=self.summary or bool(spec_plot.get("summary")),
            file_source="plot.file" if from_spec else self.file_source,
        )

    @property
    def any(self) -> bool:
        return self.terminal or self.file is not None or self.summary


@dataclass(frozen=True)
class Request:
    """One computing command, as the options gave it."""

    command: str
    spec_path: str | None = None
    overrides: Overrides = field(default_factory=Overrides)
    options: Options = field(default_factory=Options)  # mesh stays None: ``devices`` makes it
    devices: str | None = None  # --devices all|N (else the spec's devices:)
    cluster: Cluster | None = None
    no_cache: bool = False
    target: Target | None = None  # -o, checked: a chunked Jacobian into .npy is streamed there; .npy holds one array
    pictures: Pictures | None = None


NotDrawn = Literal["streamed", "complex"]  # why a matrix asked for pictures was not drawn (output/ says it)


@dataclass(frozen=True)
class Outcome:
    """What a computing command found: the result and everything the output needs to show it."""

    command: str
    spec: Spec
    prep: Prepared
    result: Result
    inputs: Mapping[str, Any]  # what was built, by kind (primals, tangents, cotangents), for the JSON document
    lost_precision: list[str]  # where float32 is likely to lose the answer (diagnostics.precision_warnings)
    notes: list[str]  # other warnings, as the engine words them (int32 inputs that may overflow)
    nonfinite: str | None  # the first non-finite entry (or value), as a sentence
    versions: dict[str, str]
    target: Target | None = None  # -o
    pictures: Pictures | None = None  # merged with the spec's plot:
    not_drawn: NotDrawn | None = None
    matrix: Matrix | None = None
    summary: dict[str, Any] | None = None
    single_array: tuple[np.ndarray, str | None] | None = None  # what -o FILE.npy or a dense FILE.mtx holds, and its layout
    streamed: bool = False  # already written to the -o file, chunk by chunk
    leader: bool = True  # this process prints and writes (several processes: process 0)


def _need_function(spec_path: str | None, overrides: Overrides, command: str) -> None:
    if spec_path is None and overrides.function is None:
        raise UsageError("give a SPEC file, or --fn and --primal", hint=f"see jaxdiff {command} --help")


def _quiet_cluster(cluster: Cluster | None) -> contextlib.AbstractContextManager[Any]:
    """With several processes, keep the collectives' own chatter off stdout."""
    if cluster is None:
        return contextlib.nullcontext()
    from jaxdiff_cli.engine.runtime import stdout_to_stderr

    return stdout_to_stderr()


def _mesh(devices: str | None, spec: Spec) -> Mesh | None:
    """The mesh to spread work over: --devices, else the spec's devices:, else none."""
    chosen = parse_devices(devices, "--devices") if devices is not None else spec.devices
    if chosen is None:
        return None
    from jaxdiff_cli.engine.sharding import make_mesh

    mesh: Mesh = make_mesh(chosen)
    return mesh


def compute(request: Request, progress: Progress | None = None) -> Outcome:
    """eval, jvp, vjp, grad, jacobian, hessian, hvp, derivative, taylor."""
    from jaxdiff_cli.engine.diagnostics import integer_warnings, nonfinite_note, precision_warnings
    from jaxdiff_cli.engine.runtime import is_leader, versions

    progress = progress or Silent()
    command = request.command
    _need_function(request.spec_path, request.overrides, command)
    spec = load_spec(request.spec_path, request.overrides)
    with _quiet_cluster(request.cluster), progress.stage(f"preparing {command}"):
        prep = prepare(spec, no_cache=request.no_cache, cluster=request.cluster, only_spec=True)
    opts = replace(request.options, mesh=_mesh(request.devices, spec))
    target = request.target
    chunked = opts.chunk_size is not None or spec.chunk_size is not None
    streamed = command == JACOBIAN.name and target is not None and target.kind == "npy" and chunked
    streamed = streamed and not sparse_of(prep, opts)  # a sparse Jacobian's .npy is its dense form, made if it fits
    if streamed:
        assert target is not None
        # The chunks go into a memory-mapped file: the Jacobian may be larger than memory.
        result = stream_jacobian(prep, opts, target.path, lambda i, n: progress.advance(f"chunk {i} of {n}", i, n))
        inputs: Mapping[str, Any] = prep.inputs
    else:
        with _quiet_cluster(request.cluster), progress.stage(f"compiling and running {command} on {prep.runtime.device_name}"):
            result, inputs = compute_operation(prep, command, opts)
    single_array = None
    # Matrix Market holds the nonzeros of the dense matrix, unless the result is sparse already.
    if (
        target is not None
        and target.one_array
        and not streamed
        and not (target.kind == "mtx" and sparse_result(result) is not None)
    ):
        single_array = primary_array(prep, command, result)
        if target.kind == "npy" and single_array[1]:
            result.info["npy_layout"] = single_array[1]
    pictures = request.pictures.merged(spec.plot) if request.pictures is not None else None
    drawn = _pictures(prep, command, result, pictures, streamed) if pictures is not None else Drawn()
    return Outcome(
        command=command,
        spec=spec,
        prep=prep,
        result=result,
        inputs=inputs,
        lost_precision=precision_warnings({**inputs, **result.outputs}),
        notes=integer_warnings(inputs),
        nonfinite=nonfinite_note(result.outputs, result.value),
        versions=versions(),
        target=target,
        pictures=pictures,
        not_drawn=drawn.not_drawn,
        matrix=drawn.matrix,
        summary=drawn.summary,
        single_array=single_array,
        streamed=streamed,
        leader=is_leader(),
    )


@dataclass(frozen=True)
class Drawn:
    """The matrix and summary a Jacobian's or Hessian's pictures show, or why there are none."""

    matrix: Matrix | None = None
    summary: dict[str, Any] | None = None
    not_drawn: NotDrawn | None = None


PICTURE_DENSE_MAX = 10**6  # entries: up to this a sparse result is also drawn as a dense heatmap


def _pictures(prep: Prepared, command: str, result: Result, pictures: Pictures, streamed: bool) -> Drawn:
    """The matrix and summary of a Jacobian or Hessian, for the pictures asked for."""
    from jaxdiff_cli.engine.layout import hessian_matrix, jacobian_matrix
    from jaxdiff_cli.engine.problem import output_shape
    from jaxdiff_cli.engine.summary import hvp_matvec, summary

    if not pictures.any:
        return Drawn()
    if streamed:
        return Drawn(not_drawn="streamed")
    from jaxdiff_cli.engine.complex_rules import is_complex_tree

    if is_complex_tree(result.outputs[command]):
        return Drawn(not_drawn="complex")
    found = sparse_result(result)
    if found is not None:  # its summary from the nonzeros; its dense view, for the heatmap and image, only when small
        from jaxdiff_cli.engine import sparse

        small = found.shape[0] * found.shape[1] <= PICTURE_DENSE_MAX
        return Drawn(matrix=found.matrix() if small else None, summary=sparse.summary(found))
    problem = prep.problem
    diff = problem.diff(problem.primals)
    if command == JACOBIAN.name:
        matrix = jacobian_matrix(result.outputs[JACOBIAN.result], output_shape(problem), diff, problem.wrt)
    else:
        matrix = hessian_matrix(result.outputs[HESSIAN.result], diff, problem.wrt)
    return Drawn(matrix=matrix, summary=summary(matrix, hvp_matvec(problem) if command == HESSIAN.name else None))


def sparse_result(result: Result) -> SparseMatrix | None:
    """The SparseMatrix a sparse jacobian / hessian computed, else None."""
    from jaxdiff_cli.engine.sparse import SparseMatrix

    found = result.outputs.get(result.op)
    return found if isinstance(found, SparseMatrix) else None


def finite_or_fail(outcome: Outcome, check_finite: bool) -> None:
    """--check-finite: exit 5 on a non-finite result (after the results were shown and saved)."""
    error = nonfinite_error(outcome, check_finite)
    if error is not None:
        raise error


def nonfinite_error(outcome: Outcome, check_finite: bool) -> NonFiniteError | None:
    """The error of --check-finite for this outcome (exit 5), or None."""
    return NonFiniteError(outcome.nonfinite, where="--check-finite") if outcome.nonfinite and check_finite else None


# --------------------------------------------------------------------------- run


@dataclass
class CaseOutcome:
    name: str
    spec: Spec
    device: str | None = None
    steps: list[tuple[Step, Result]] = field(default_factory=list)
    error: JaxdiffError | None = None


@dataclass(frozen=True)
class RunOutcome:
    spec_path: str
    cases: list[CaseOutcome]
    versions: dict[str, str]
    nonfinite: str | None = None  # the first non-finite result of any case
    lost_precision: list[tuple[str, str]] = field(
        default_factory=list
    )  # (case, or case: step; where float32 may lose the answer)

    @property
    def first_error(self) -> JaxdiffError | None:
        return next((c.error for c in self.cases if c.error is not None), None)

    def arrays(self) -> dict[str, Any]:
        """Every output of every case and step, named CASE/STEP/OUTPUT (unique: see Step.label); a sparse
        result as its OUTPUT.row, .col, .data and .shape."""
        from jaxdiff_cli.engine.layout import named_leaves
        from jaxdiff_cli.engine.sparse import file_arrays

        return {
            f"{case.name}/{step.label}/{part}": array
            for case in self.cases
            for step, result in case.steps
            for name, leaf in named_leaves(result.outputs)
            for part, array in file_arrays(name, leaf)
        }


def run_cases(
    spec_path: str,
    *,
    bake_primals: bool = False,
    no_code: bool = False,
    devices: str | None = None,
    cluster: Cluster | None = None,
    no_cache: bool = False,
    progress: Progress | None = None,
    on_step: Callable[[CaseOutcome, Step, Result], None] | None = None,
    on_error: Callable[[JaxdiffError], None] | None = None,
    cases: tuple[str, ...] = (),
) -> RunOutcome:
    """Every operation a spec's run: lists, for each of its cases; a failing case does not stop the others.

    **Arguments:** ``spec_path`` (a file, or - for stdin); ``bake_primals``, ``no_code``, ``devices``,
    ``no_cache``, ``cases`` as the options of that name (``cases``: only the cases whose names match
    these globs); ``cluster`` to join; ``progress`` for a bar; ``on_step`` is called with each result
    as it is computed, ``on_error`` with each failing case's error.
    """
    from jaxdiff_cli.engine.diagnostics import nonfinite_note, precision_warnings
    from jaxdiff_cli.engine.runtime import versions

    progress = progress or Silent()
    data, source, base = read_source(spec_path)
    chosen = cases_of(data, source, base, Overrides(no_code=no_code, cases=cases), spec_path, need_steps=True)
    if cases and not chosen:
        hint = f"cases: {', '.join(case_names(data))}" if "cases" in data else f"{source} has no cases:"
        raise UsageError(f"no case is named {' or '.join(cases)}", where="--case", hint=hint)
    total = sum(len(case.steps) for case in chosen)
    # With --devices (or the spec's devices:), the cases go round-robin over the mesh's devices.
    mesh = _mesh(devices, chosen[0].spec) if chosen else None
    spread = list(mesh.devices.flat) if mesh is not None else []
    only_cpu = all(case.spec.device == "cpu" for case in chosen)  # then JAX may skip accelerators
    done_cases: list[CaseOutcome] = []
    lost: list[tuple[str, str]] = []
    nonfinite: str | None = None
    done = 0
    for number, case in enumerate(chosen):
        item = CaseOutcome(case.name, case.spec)
        done_cases.append(item)
        try:
            device = spread[number % len(spread)] if spread else None
            prep = prepare(case.spec, no_cache=no_cache, cluster=cluster, device=device, only_spec=only_cpu)
            item.device = prep.runtime.device_name
            lost += [(case.name, w) for w in precision_warnings(prep.inputs)]
            for step in case.steps:
                done += 1
                progress.advance(f"{case.name}: {step.label}", done, total)
                opts = Options(
                    mode=step.mode,
                    chunk_size=step.chunk_size,
                    bake_primals=bake_primals,
                    order=step.order,
                    sparse=step.sparse,
                    sparse_key=join(step.key, "sparse") if step.sparse is not None else None,
                )
                result = run_operation(prep, step.op, opts)
                item.steps.append((step, result))
                note = nonfinite_note(result.outputs, result.value)
                if note is not None and nonfinite is None:
                    nonfinite = f"{case.name}: {step.label}: {note}"
                lost += [(f"{case.name}: {step.label}", w) for w in precision_warnings(result.outputs)]
                if on_step is not None:
                    on_step(item, step, result)
        except JaxdiffError as exc:
            item.error = exc
            if on_error is not None:
                on_error(exc)
    return RunOutcome(spec_path, done_cases, versions(), nonfinite, lost)


# --------------------------------------------------------------------------- check


def check(
    patterns: list[str],
    settings: Settings,
    progress: Progress | None = None,
    *,
    no_code: bool = False,
    cases: tuple[str, ...] = (),
) -> list[Report]:
    """Every spec, and every case of a spec with cases:, checked; a bad spec is reported, not fatal.

    ``cases`` (--case): only the cases whose names match these globs; specs without cases: are left out.
    """
    from jaxdiff_cli.checks.check import Report, check_spec
    from jaxdiff_cli.engine.runtime import release_programs

    progress = progress or Silent()
    reports: list[Report] = []
    found: list[str] = []  # every case name seen, for the message when --case picks none
    paths = expand(patterns)
    for k, path in enumerate(paths):
        if len(paths) > 1:  # a bar: spec k of N, the current one, elapsed (on a terminal only)
            progress.advance(f"checking {path}", done=k, total=len(paths))
        with progress.stage(f"checking {path}"):
            try:
                data, source, base = read_source(path)
                found += case_names(data)
                chosen: list[Case] = cases_of(data, source, base, Overrides(no_code=no_code, cases=cases), path, need_steps=False)
            except JaxdiffError as exc:
                reports.append(Report(spec=path, error=exc, file=STDIN if path == "-" else path))
                continue
            # One spec (and its cases) all on the CPU: JAX need not start accelerators.
            alone = len(paths) == 1 and all(case.spec.device == "cpu" for case in chosen)
            for case in chosen:
                report = check_spec(case.spec, settings, only_spec=alone)
                report.spec += f" ({case.name})" if case.spec.case is not None and (len(chosen) > 1 or cases) else ""
                reports.append(report)
                if len(paths) > 1 or len(chosen) > 1:
                    release_programs()  # memory flat in the number of specs (issue 25.3)
    if cases and not reports:
        hint = f"cases: {', '.join(found)}" if found else "no spec has cases:"
        raise UsageError(f"no case is named {' or '.join(cases)}", where="--case", hint=hint)
    return reports


def check_exit(reports: list[Report]) -> int:
    """check's exit status: the first error's code, else 1 if anything failed, else 0."""
    from jaxdiff_cli.errors import ExitCode

    errors = [r.error for r in reports if r.error is not None]
    if errors:
        return int(errors[0].exit_code)
    return 0 if all(r.passed for r in reports) else int(ExitCode.CHECK_FAILED)


# --------------------------------------------------------------------------- sparsity


@dataclass(frozen=True)
class SparsityOutcome:
    """`jaxdiff sparsity`: the pattern of a Jacobian or Hessian and its coloring, without values."""

    op: str
    spec: Spec
    prep: Prepared
    pattern: SparseMatrix  # without data
    info: dict[str, Any]
    versions: dict[str, str]
    target: Target | None = None  # -o


def sparsity(request: Request, op: str, progress: Progress | None = None) -> SparsityOutcome:
    """The sparsity pattern of the Jacobian or Hessian, and its coloring (read from the cache when there)."""
    from jaxdiff_cli.engine import sparse
    from jaxdiff_cli.engine.problem import require_scalar
    from jaxdiff_cli.engine.runtime import pattern_cache_dir, versions
    from jaxdiff_cli.prepare import complex_kind, mode_of

    progress = progress or Silent()
    if op not in MATRICES:
        raise UsageError(f"no sparsity pattern of {op!r}", where="--op", hint=", ".join(MATRICES))
    _need_function(request.spec_path, request.overrides, "sparsity")
    sparse.asdex_module()  # before any work: asdex missing is a usage error, with how to install it
    spec = load_spec(request.spec_path, request.overrides)
    with progress.stage("preparing"):
        prep = prepare(spec, no_cache=request.no_cache, only_spec=True)
    problem = prep.problem
    complex_values = complex_kind(problem)
    if complex_values is not None:
        raise SpecError(
            f"sparsity patterns are of real functions' Jacobians and Hessians; this one has {complex_values}",
            where=problem.where,
            hint="jaxdiff jacobian and hessian without --sparse compute it densely",
        )
    mode = mode_of(prep, op, request.options) if OPS[op].modes else "auto"
    if op == HESSIAN.name:
        require_scalar(problem, op)
    cache = pattern_cache_dir() if prep.runtime.cache is not None else None
    with progress.stage(f"detecting and coloring the sparsity pattern of the {op}"):
        try:
            pattern = sparse.pattern_matrix(problem, op, mode, cache)
        except sparse.Undetectable as exc:
            raise FunctionError(
                f"cannot find the sparsity pattern of the {op}: {exc.reason}",
                where=problem.where,
                hint=f"jaxdiff {op} without --sparse computes it densely",
            ) from None
    c = pattern.coloring
    info: dict[str, Any] = {"wrt": list(problem.wrt), "mode": c.mode}
    if c.reason:
        info.update(auto=True, reason=c.reason)
    info["sparse"] = c.info(pattern.nnz, pattern.density)
    info["blocks"] = sparse.block_info(pattern)
    return SparsityOutcome(op, spec, prep, pattern, info, versions(), request.target)


# --------------------------------------------------------------------------- bench and devices


@dataclass(frozen=True)
class BenchOutcome:
    op: str
    spec: Spec
    device: str
    timings: list[Timing]
    recommendation: str | None
    auto: str | None
    versions: dict[str, str]


def bench(request: Request, op: str, chunk_size: int | None, min_time: float, progress: Progress | None = None) -> BenchOutcome:
    """Time an operation in each of its modes (and chunked, for a Jacobian)."""
    from jaxdiff_cli.engine import bench as timing
    from jaxdiff_cli.engine.plans import choose_mode
    from jaxdiff_cli.engine.runtime import versions
    from jaxdiff_cli.prepare import plan_operation

    progress = progress or Silent()
    if op not in OPERATIONS:
        raise UsageError(f"unknown operation {op!r}", where="--op", hint=", ".join(OPERATIONS))
    _need_function(request.spec_path, request.overrides, "bench")
    spec = load_spec(request.spec_path, request.overrides)
    with progress.stage("preparing"):
        prep = prepare(spec, no_cache=request.no_cache, only_spec=True)
    variants: list[tuple[str | None, int | None]] = [(m, None) for m in OPS[op].timed or (None,)]
    if op == JACOBIAN.name and chunk_size is not None:
        variants += [(m, chunk_size) for m in ("fwd", "rev")]
    timings = []
    skipped: list[str] = []
    for mode, chunk in variants:
        with progress.stage(f"timing {op} {mode or ''} {f'chunk {chunk}' if chunk else ''}"):
            options = Options(mode=mode, chunk_size=chunk, bake_primals=request.options.bake_primals, order=request.options.order)
            try:
                plan = plan_operation(prep, op, options)
            except FunctionError as exc:  # Taylor mode cannot go through f: time the other mode, say why
                if mode != "jet":  # derivative and taylor's Taylor mode
                    raise
                skipped.append(f"jet not timed: {exc.message}")
                continue
            t = timing.time_plan(plan, min_time=min_time)
            label = f"{mode} chunk {chunk}" if chunk else mode
            timings.append(timing.Timing(label, t.compile_s, t.median_s, t.min_s, t.runs, t.temp_bytes))
    auto = "auto would choose {} ({})".format(*choose_mode(prep.problem)) if op == JACOBIAN.name else "; ".join(skipped) or None
    return BenchOutcome(op, spec, prep.runtime.device_name, timings, timing.recommend(timings), auto, versions())


def versions() -> dict[str, str]:
    """jax's and jaxlib's versions, for every JSON document."""
    from jaxdiff_cli.engine.runtime import versions as of_jax

    return of_jax()


def devices(platform: str | None) -> list[dict[str, Any]]:
    """The devices JAX sees (of one platform, if given); the first is the default of device: auto."""
    import jax

    from jaxdiff_cli.engine.runtime import pick_device

    chosen = [pick_device(platform, "--platform")] if platform else []
    found = jax.devices(chosen[0].platform) if chosen else jax.devices()
    default = jax.devices()[0]
    return [{"id": d.id, "platform": d.platform, "kind": d.device_kind, "default": d == default} for d in found]
