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

``check --update`` writes the current results into the block (golden values): only that block of the
file is replaced (found as text: the top-level ``expect:`` key up to the next top-level key), so the
rest of the YAML, comments included, stays. Arrays of more than ``INLINE_MAX`` entries go to a
sidecar ``<spec>.golden.npz`` referenced with ``{file, key}``. The block records the jax/jaxlib
versions, device and dtype, so a later mismatch can say whether the environment changed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jaxdiff_cli.atomic import atomic_open
from jaxdiff_cli.checks.findings import Finding, Report, compare_arrays
from jaxdiff_cli.dtypes import real_dtype
from jaxdiff_cli.encoding import array_json
from jaxdiff_cli.errors import SpecError, suggest
from jaxdiff_cli.inputs.sparsefile import SparseValue
from jaxdiff_cli.inputs.spec import join, refuse_odd_file, where
from jaxdiff_cli.inputs.values import Context, construct, is_constructor, sparse_file, to_array
from jaxdiff_cli.prepare import PRIMARY, Options, Prepared, run_operation

# expect names -> the command that produces them (each command's main result, read backwards)
PRODUCER = {name: op for op, name in PRIMARY.items()} | {"aux": "eval"}  # has_aux data comes with any op
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
MAX_RTOL = 0.01
ATOL_SHARE = 0.01  # of the largest expected magnitude
ATOL_FLOOR = 1e-6  # the most an atol may be where every expected value is (near) zero


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
        findings.append(compare_arrays(name, e.name, actual, e.value, np.zeros(()), "float64", (e.rtol, e.atol)))
    return findings


def check_expectations(prep: Prepared, report: Report) -> None:
    """Run the operations that produce the expected outputs, and compare each (a misspelt key is exit 3)."""
    from jaxdiff_cli.checks import matrices
    from jaxdiff_cli.engine.layout import named_leaves

    spec = prep.spec
    if not spec.expect:
        return
    expectations = parse(spec.expect, prep.ctx)
    ops = sorted({PRODUCER.get(matrices.kind_of(e.name), "") for e in expectations})
    trees: dict[str, Any] = {}  # each operation's outputs, as trees: a Jacobian's blocks, or its SparseMatrix
    for op in ops:
        if not op:
            continue
        result = run_operation(prep, op, Options(mode=spec.mode))
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

INLINE_MAX = 64
_TOP_KEY = re.compile(r"^[^\s#-]")
_EXPECT = re.compile(r"^expect\s*:")


def expect_block(
    results: Mapping[str, Any], recorded: Mapping[str, str], keep: Mapping[str, Any], sidecar: Path
) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """The new ``expect:`` YAML text, the arrays that go to the sidecar file, and the sparse results
    that go to files of their own (``SPEC.golden.NAME.npz``, scipy's sparse form), by file name."""
    from jaxdiff_cli.engine.sparse import SparseMatrix

    block: dict[str, Any] = {}
    big: dict[str, np.ndarray] = {}
    sparse: dict[str, Any] = {}
    for name, arr in results.items():
        if isinstance(arr, SparseMatrix) and arr.shape[0] * arr.shape[1] > INLINE_MAX:
            file = sidecar.name.removesuffix(".npz") + f".{name}.npz"
            sparse[file] = arr
            block[name] = {"file": file}
            continue
        a = arr.dense() if isinstance(arr, SparseMatrix) else np.asarray(arr)
        if a.size > INLINE_MAX:
            big[name] = a
            block[name] = {"file": sidecar.name, "key": name}
        elif a.dtype.kind == "c":  # the {re, im} constructor reads it back
            block[name] = {"re": array_json(a.real)["data"], "im": array_json(a.imag)["data"]}
        else:
            block[name] = array_json(a)["data"]  # reads back to the same bits
    for tol in ("rtol", "atol"):
        if tol in keep:
            block[tol] = keep[tol]
    block["recorded"] = dict(recorded)
    text = yaml.safe_dump({"expect": block}, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
    return text, big, sparse


def replace_block(source: str, new_block: str) -> str:
    """``source`` with its top-level expect block replaced by ``new_block`` (appended if absent)."""
    lines = source.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _EXPECT.match(line)), None)
    if start is None:
        sep = "" if not source or source.endswith("\n") else "\n"
        return source + sep + new_block
    end = start + 1
    while end < len(lines) and not _TOP_KEY.match(lines[end]):
        end += 1
    # Comment lines just above the next key belong to it, not to expect.
    while end - 1 > start and lines[end - 1].lstrip().startswith("#") and not lines[end - 1].startswith(" "):
        end -= 1
    return "".join(lines[:start]) + new_block + "".join(lines[end:])


def update_spec(path: Path, results: Mapping[str, Any], recorded: Mapping[str, str], keep: Mapping[str, Any]) -> list[str]:
    """Rewrite ``path``'s expect block (atomically); returns the files written."""
    sidecar = path.with_name(path.stem + ".golden.npz")
    block, big, sparse = expect_block(results, recorded, keep, sidecar)
    at = where(str(path), "expect")
    # A folder (or FIFO) named like a golden file is a bad spec folder, refused before anything is written.
    for target in ([sidecar] if big else []) + [path.with_name(file) for file in sparse]:
        refuse_odd_file(target, at)
    written = []
    try:
        if big:
            with atomic_open(sidecar) as f:
                np.savez(f, **big)  # type: ignore[arg-type]
            written.append(str(sidecar))
        for file, sm in sparse.items():
            target = path.with_name(file)
            with atomic_open(target) as f:
                save_sparse(f, sm)
            written.append(str(target))
        text = replace_block(path.read_text(encoding="utf-8"), block)
        with atomic_open(path, "w") as f:
            f.write(text)
    except OSError as exc:  # a read-only folder, a full disk: the spec's folder, not a bug
        raise SpecError(f"cannot record golden values: {exc.strerror or exc}", where=at) from None
    written.append(str(path))
    return written


def save_sparse(f: Any, sm: Any) -> None:
    """A sparse result in scipy's .npz form (what ``scipy.sparse.load_npz`` and ``sparsefile`` read),
    written with NumPy: COO, its entries row-major sorted, structural zeros included."""
    np.savez(f, row=sm.row, col=sm.col, format=np.bytes_(b"coo"), shape=np.asarray(sm.shape, np.int64), data=sm.values())
