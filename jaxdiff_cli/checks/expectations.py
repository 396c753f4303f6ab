"""The spec's ``expect:`` block: read it, check it against what the operations produce, record it.

    expect:
      jvp: [65.353714, 35.943752, 80.87344]        # a whole output, by its name in --json
      vjp.x1: {index: [0], value: [...]}            # part of it: result[0]
      jacobian.x: {einsum: "ijij->ij", value: ...}  # part of it: np.einsum("ijij->ij", result)
      rtol: 1.0e-6                                  # optional; atol too
      jacobian.w: {value: ..., rtol: 1.0e-3}        # a tolerance for one entry
      hessian.x.x: {file: s.golden.npz, key: hessian.x.x}   # a value from a file
      recorded: {jax: 0.10.2, ...}                  # written by `check --update`; not compared

Default tolerances follow the dtype: rtol 1e-5 / atol 1e-6 for float32, 1e-12 / 1e-14 for float64
(complex64 and complex128 as their parts). Complex values are written ``1+2j`` or ``{re: ..., im: ...}``.

``check --update`` records the current results in the block (golden values): see ``record.py``. The
block records the jax/jaxlib versions, device and dtype, so a later mismatch can say whether the
environment changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxdiff_cli.checks.findings import ATOL_FLOOR, ATOL_SHARE, Finding, Report, compare_arrays
from jaxdiff_cli.dtypes import real_dtype
from jaxdiff_cli.errors import SpecError, join, suggest
from jaxdiff_cli.inputs.sparsefile import SparseValue
from jaxdiff_cli.inputs.values import Context, construct, is_constructor, sparse_file, to_array
from jaxdiff_cli.ops import EVAL, OPS
from jaxdiff_cli.prepare import Options, Prepared, run_operation, run_operations

# expect names -> the command that produces them (each command's main result, read backwards)
PRODUCER = {op.result: op.name for op in OPS.values()} | {"aux": EVAL.name}  # has_aux data comes with any op
DEFAULT_TOL = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)}
_ENTRY_KEYS = {"value", "index", "einsum", "rtol", "atol"}
_EINSUM = re.compile(r"^[a-zA-Z]+->[a-zA-Z]*$")
ENTRY_KEYS, EINSUM_PATTERN = frozenset(_ENTRY_KEYS), _EINSUM.pattern  # what the spec's JSON Schema reads (schema.py)


@dataclass(frozen=True)
class Expectation:
    name: str  # output name, as in --json ("vjp.x")
    value: np.ndarray  # a sparse expected value's nonzeros
    rtol: float
    atol: float
    index: tuple[int, ...] | None = None
    einsum: str | None = None
    sparse: SparseValue | None = None  # a scipy sparse .npz ({file: J.npz}), compared on the patterns

    def select(self, actual: Any) -> np.ndarray:
        a = _wide(actual)
        if self.index is not None:
            a = a[self.index]
        if self.einsum is not None:
            a = np.einsum(self.einsum, a)
        return np.asarray(a)


def _wide(value: Any) -> np.ndarray:
    """In float64, or complex128 for complex values (never dropping an imaginary part)."""
    a = np.asarray(value)
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


# A spec arrives in a pull request: a tolerance loose enough to accept anything would switch its own
# check off (rtol: .inf, rtol: 0.999999, atol: 1e300). A derivative within 1% is not a tolerance
# question any more, and an atol as large as the values themselves accepts zeros for them.
# The atol written may be at most ATOL_SHARE of the largest expected magnitude (ATOL_FLOOR where every
# expected value is zero); on each entry it then counts up to ATOL_SHARE of that entry's own (findings.py).
MAX_RTOL = 0.01


def _tol(raw: Any, ctx: Context, keypath: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
        raise ctx.error(keypath, "a tolerance is a finite number >= 0")
    if keypath.endswith("rtol") and raw > MAX_RTOL:
        raise ctx.error(
            keypath,
            f"rtol {raw:g} would accept anything within 100% of the expected value"
            if raw >= 1
            else f"rtol {raw:g} would accept values {raw:.0%} away from the expected ones",
            hint=f"rtol is at most {MAX_RTOL:g}",
        )
    return float(raw)


def _atol_fits(atol: float, value: np.ndarray, ctx: Context, keypath: str) -> None:
    """An atol that accepts zero for every expected value would make the entry check nothing."""
    biggest = float(np.max(np.abs(value), initial=0.0)) if value.size else 0.0
    most = max(ATOL_FLOOR, ATOL_SHARE * biggest) if math.isfinite(biggest) else math.inf
    if atol > most:
        raise ctx.error(
            keypath,
            f"atol {atol:g} would accept values far from the expected ones (largest |value| {biggest:g})",
            hint=f"atol is at most 1% of the largest expected value, or {ATOL_FLOOR:g}: here {most:g}",
        )


def parse(expect: Mapping[str, Any], ctx: Context) -> list[Expectation]:
    """Check the expect block's form and read its values (in float64, to compare precisely)."""
    rtol0, atol0 = DEFAULT_TOL[real_dtype(ctx.dtype)]
    rtol = _tol(expect["rtol"], ctx, "expect.rtol") if "rtol" in expect else rtol0
    atol = _tol(expect["atol"], ctx, "expect.atol") if "atol" in expect else atol0
    wide = Context("float64", ctx.base_dir, ctx.source)
    out = []
    for name, raw in expect.items():
        if name in ("rtol", "atol", "recorded"):
            continue
        kp = join("expect", name)
        # {value: ..., index/einsum/rtol/atol: ...} is an entry; {value: ..., dtype: ...} a value.
        entry = raw if isinstance(raw, dict) and "value" in raw and set(raw) <= _ENTRY_KEYS else {"value": raw}
        extra = set(entry) - _ENTRY_KEYS
        if extra:
            raise ctx.error(join(kp, sorted(extra)[0]), "unknown key", hint=f"an entry takes {', '.join(sorted(_ENTRY_KEYS))}")
        index = entry.get("index")
        if index is not None and (not isinstance(index, list) or not all(isinstance(i, int) for i in index)):
            raise ctx.error(join(kp, "index"), "a list of whole numbers")
        einsum = entry.get("einsum")
        if einsum is not None and (not isinstance(einsum, str) or not _EINSUM.match(einsum)):
            raise ctx.error(join(kp, "einsum"), "an einsum selection such as 'ijij->ij'")
        value_path = join(kp, "value") if entry is raw else kp
        value = entry["value"]
        sparse = sparse_file(value, wide, value_path)  # -o J.npz of a sparse result, a sparse golden file
        if sparse is not None:
            if index is not None or einsum is not None:
                raise ctx.error(
                    join(kp, "index" if index is not None else "einsum"),
                    "a sparse expected value is compared whole",
                    hint="give a part as a dense value, or name the block (jacobian.x) with a sparse file of its own",
                )
            array = sparse.data
        elif is_constructor(value):  # a recorded golden value may live in a sidecar: {file: spec.golden.npz, key: name}
            array = _wide(construct(value, wide, value_path))
        else:
            array = to_array(value, wide, value_path)
        entry_atol = _tol(entry["atol"], ctx, join(kp, "atol")) if "atol" in entry else atol
        if "atol" in entry or "atol" in expect:
            _atol_fits(entry_atol, array, ctx, join(kp, "atol") if "atol" in entry else "expect.atol")
        out.append(
            Expectation(
                name=str(name),
                value=array,
                rtol=_tol(entry["rtol"], ctx, join(kp, "rtol")) if "rtol" in entry else rtol,
                atol=entry_atol,
                index=tuple(index) if index is not None else None,
                einsum=einsum,
                sparse=sparse,
            )
        )
    return out


def check_outputs(outputs: Mapping[str, Any], expectations: list[Expectation]) -> list[Finding]:
    """Each expectation whose output is among ``outputs``, compared by the one comparator.

    An output is an array, or a sparse result (``SparseMatrix``, ``matrices.SparseActual``): compared on
    the patterns with a sparse expected value, made dense (when it can be) for a dense one.
    """
    from jaxdiff_cli.checks import matrices
    from jaxdiff_cli.engine.sparse import SparseMatrix

    findings = []
    for e in expectations:
        if e.name not in outputs:
            continue
        name = f"expect {e.name}"
        found = outputs[e.name]
        if isinstance(found, SparseMatrix):
            found = matrices.SparseActual(found, found.shape)
        if e.sparse is not None:
            findings.append(matrices.compare_sparse(name, e.name, found, e.sparse, (e.rtol, e.atol)))
            continue
        if isinstance(found, matrices.SparseActual):
            found = matrices.dense_or_finding(name, found)
            if isinstance(found, Finding):
                findings.append(found)
                continue
        try:
            actual = e.select(found)
        except (IndexError, ValueError) as exc:
            findings.append(Finding(name, False, f"cannot select: {exc}"))
            continue
        if actual.shape != e.value.shape:
            findings.append(Finding(name, False, f"shape {actual.shape}, expected {e.value.shape}"))
            continue
        findings.append(compare_arrays(name, e.name, actual, e.value, np.zeros(()), "float64", (e.rtol, e.atol), per_entry=True))
    return findings


def check_expectations(prep: Prepared, report: Report) -> tuple[list[Expectation], dict[str, Any]]:
    """Run the operations that produce the expected outputs, and compare each (a misspelt key is exit 3).
    Returns the entries and what each was compared with (what --update records)."""
    from jaxdiff_cli.checks import matrices
    from jaxdiff_cli.engine.layout import named_leaves

    spec = prep.spec
    if not spec.expect:
        return [], {}
    expectations = parse(spec.expect, prep.ctx)
    ops = sorted({PRODUCER.get(matrices.kind_of(e.name), "") for e in expectations})
    trees: dict[str, Any] = {}  # each operation's outputs, as trees: a Jacobian's blocks, or its SparseMatrix
    for result in run_operations(prep, [op for op in ops if op], Options(mode=spec.mode)):
        trees.update(result.outputs)
        for name, arr in named_leaves(result.outputs):
            report.results.setdefault(name, arr)
    actual: dict[str, Any] = {}
    for e in expectations:
        prefix = matrices.kind_of(e.name)
        found = matrices.actual_for(e.name, report.results, trees, prep.problem) if prefix in PRODUCER else None
        if found is None:
            # A misspelt key is a bad spec (exit 3), not a failed check.
            known = matrices.names(report.results, trees, prep.problem) if prefix in PRODUCER else sorted(PRODUCER)
            listed = ", ".join(known[:8]) + (f", ... ({len(known)} in all)" if len(known) > 8 else "")
            raise SpecError(
                f"no output named {e.name!r}",
                where=spec.where(join("expect", e.name)),
                hint=suggest(e.name, known) or f"outputs: {listed}",
            )
        actual[e.name] = found
    report.findings.extend(check_outputs(actual, expectations))
    return expectations, actual


RECORD_MAX = 10**6  # largest Jacobian / Hessian (entries) that --update records


def environment(prep: Prepared) -> dict[str, str]:
    from jaxdiff_cli.engine.runtime import versions

    return {**versions(), "device": prep.runtime.device.platform, "dtype": prep.spec.dtype}


def collect_results(prep: Prepared, report: Report) -> None:
    """Run every operation the spec supports and keep its outputs (what --update records).

    A dense Jacobian or Hessian is recorded up to RECORD_MAX entries; a sparse one (``sparse: true``)
    at any size, as its nonzeros. What is left out is said in ``report.unrecorded``, with why.
    """
    from jaxdiff_cli.engine.complex_rules import complex_sides
    from jaxdiff_cli.engine.layout import named_leaves
    from jaxdiff_cli.engine.problem import is_scalar, output_shape
    from jaxdiff_cli.engine.sparse import SparseMatrix, count
    from jaxdiff_cli.prepare import sparse_of

    spec = prep.spec
    n, m = prep.problem.sizes()
    scalar = is_scalar(output_shape(prep.problem))
    sparse = sparse_of(prep, Options())
    entries = {"jacobian": m * n, "hessian": n * n}
    ops = ["eval"]
    ops += ["jvp"] if spec.tangents is not None else []
    ops += ["vjp"] if spec.cotangents is not None or scalar else []
    ops += ["jacobian"]
    if scalar:
        ops += ["grad", "hessian"] + (["hvp"] if spec.tangents is not None else [])
    ops += ["derivative", "taylor"] if spec.order is not None else []
    complex_in, complex_out = complex_sides(prep.problem)
    if (complex_in or complex_out) and not prep.problem.holomorphic:  # what complex values leave undefined
        undefined = (
            {"hessian", "hvp"} | ({"grad"} if complex_out else set()) | ({"jacobian"} if complex_in and complex_out else set())
        )
        ops = [op for op in ops if op not in undefined]
    too_big = f"more than the {count(RECORD_MAX)} dense entries recorded"
    for op in ops:
        if op in entries and entries[op] > RECORD_MAX and not sparse:
            remedy = "sparse: true records its nonzeros" if not (complex_in or complex_out) else "sparse is of real functions"
            report.unrecorded.append(f"{op}: {count(entries[op])} dense entries, {too_big} ({remedy})")
            continue
        result = run_operation(prep, op, Options(mode=spec.mode if op in ("jacobian", "hvp") else None))
        if op in entries and entries[op] > RECORD_MAX and not isinstance(result.outputs.get(op), SparseMatrix):
            why = result.info.get("sparse_fallback", "computed densely")
            report.unrecorded.append(f"{op}: {count(entries[op])} dense entries, {too_big} ({why})")
            result.outputs.pop(op)
        for name, arr in named_leaves(result.outputs):
            report.results.setdefault(name, arr)


def note_environment(prep: Prepared, report: Report) -> None:
    """When recorded values fail, say whether jax, the device or the dtype changed since."""
    recorded = prep.spec.expect.get("recorded")
    if not isinstance(recorded, dict):
        return
    now = environment(prep)
    changed = [f"{k} {recorded.get(k)} -> {v}" for k, v in now.items() if str(recorded.get(k)) != v]
    if not changed:
        return
    note = "; recorded in another environment: " + ", ".join(changed)
    report.findings = [
        f if f.passed or not f.name.startswith("expect ") else Finding(f.name, f.passed, f.detail + note, f.worst, f.skipped)
        for f in report.findings
    ]


# --------------------------------------------------------------------------- golden values

INLINE_MAX = 64  # larger arrays are recorded in a sidecar .npz (checks/record.py)


def save_sparse(f: Any, sm: Any) -> None:
    """A sparse result in scipy's .npz form (what ``scipy.sparse.load_npz`` and ``sparsefile`` read),
    written with NumPy: COO, its entries row-major sorted, structural zeros included."""
    np.savez(f, row=sm.row, col=sm.col, format=np.bytes_(b"coo"), shape=np.asarray(sm.shape, np.int64), data=sm.values())
