"""Results -> Rich renderables and -> JSON-ready dicts. Pure: nothing here prints.

Every JSON document has one envelope (``envelope``); the computing commands' schema (``schema: 1``),
documented in the README:
    {"schema": 1, "jaxdiff_version", "command", "function", "spec", "device", "dtype",
     "info": {...}, "inputs": {name: array}, "outputs": {name: array},
     "timing": {"compile_s", "run_s"}, "versions": {"jax", "jaxlib"}}
with every array as {"shape": [...], "dtype": "float32", "data": nested lists}.
Non-finite floats are the strings "NaN", "Infinity" and "-Infinity" (RFC 8259 has no tokens
for them); every other number is a JSON number that reads back to the same bits in its dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxdiff_cli import __version__
from jaxdiff_cli.encoding import array_doc, array_json, json_number, printable, shape_text
from jaxdiff_cli.engine.layout import named_leaves
from jaxdiff_cli.engine.sparse import SparseMatrix
from jaxdiff_cli.inputs.files import CLI, STDIN
from jaxdiff_cli.output.reports import error_fields, numbers

if TYPE_CHECKING:
    from jaxdiff_cli.checks.check import Report
    from jaxdiff_cli.engine.bench import Timing
    from jaxdiff_cli.errors import JaxdiffError
    from jaxdiff_cli.inputs.spec import Spec
    from jaxdiff_cli.operations import BenchOutcome, Outcome, RunOutcome, SparsityOutcome

SCHEMA_VERSION = 1
F64 = np.dtype(np.float64)


# --------------------------------------------------------------------------- titles and warnings


def _function(spec: Spec, width: int) -> str:
    """The spec's function on one line, cut to ``width`` characters."""
    fn = " ".join(spec.function.split())
    return fn if len(fn) <= width else fn[: width - 3] + "..."


def outcome_title(outcome: Outcome) -> str:
    """The heading of a computing command's result: what, of which function, with respect to what."""
    return f"{outcome.command} of {_function(outcome.spec, 80)}  (wrt {', '.join(outcome.prep.problem.wrt)})"


def sparsity_title(outcome: SparsityOutcome) -> str:
    return f"sparsity of the {outcome.op} of {_function(outcome.spec, 80)}  (wrt {', '.join(outcome.prep.problem.wrt)})"


def file_title(what: str, spec: Spec) -> str:
    """The shorter title of a picture, a Matrix Market comment or a table: ``what of f``."""
    return f"{what} of {' '.join(spec.function.split())[:60]}"


def lost_precision(what: str, at: str = "") -> str:
    """The warning where float32 is likely to lose the answer (``at``: the case, or case and step, of run)."""
    return f"{at + ': ' if at else ''}float32 may lose the answer: {what} (try dtype: float64)"


NOT_DRAWN = {
    "streamed": "a streamed Jacobian is not drawn; load the .npy to plot it",
    "complex": "a complex matrix is not drawn or summarised (pictures and summaries are of real matrices)",
}


def outcome_warnings(outcome: Outcome) -> list[str]:
    """A computing command's warnings, in the order they are printed and listed in its document."""
    fallback = outcome.result.info.get("sparse_fallback")
    return (
        [lost_precision(w) for w in outcome.lost_precision]
        + outcome.notes
        + ([f"not sparse: {fallback}"] if fallback else [])
        + ([NOT_DRAWN[outcome.not_drawn]] if outcome.not_drawn is not None else [])
    )


def run_warnings(outcome: RunOutcome) -> list[str]:
    return [lost_precision(what, at) for at, what in outcome.lost_precision]


# --------------------------------------------------------------------------- JSON


def envelope(command: str, versions: Mapping[str, str], **body: Any) -> dict[str, Any]:
    """Every JSON document jaxdiff prints: the schema, the version and the command first, the
    versions of jax and jaxlib last."""
    return {"schema": SCHEMA_VERSION, "jaxdiff_version": __version__, "command": command, **body, "versions": dict(versions)}


def document(
    *,
    command: str,
    function: str,
    spec: str | None,
    device: str,
    dtype: str,
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    info: Mapping[str, Any],
    timing: Mapping[str, float],
    versions: Mapping[str, str],
) -> dict[str, Any]:
    """The --json document of a computing command."""
    return envelope(
        command,
        versions,
        function=function,
        spec=spec,
        device=device,
        dtype=dtype,
        info={k: v for k, v in info.items() if v is not None},
        inputs={name: array_doc(a) for name, a in named_leaves(dict(inputs))},
        outputs={name: output_json(a, native=True) for name, a in named_leaves(dict(outputs))},
        timing={k: round(v, 6) for k, v in timing.items()},
    )


def output_json(a: Any, native: bool = False) -> dict[str, Any]:
    """An output as JSON: an array as {shape, dtype, data}; a sparse Jacobian or Hessian as COO.

    Plain lists; ``native``: NumPy arrays where ``encoding.dumps`` writes them as the lists would
    read (a printed or saved document: several times faster for a large result)."""
    if isinstance(a, SparseMatrix):
        return coo_json(a, native)
    return array_doc(a) if native else array_json(a)


def coo_json(sm: SparseMatrix, native: bool = False) -> dict[str, Any]:
    """``{"format": "coo", "shape", "dtype", "row", "col", "data"}``: ``data[k]`` is the entry at
    ``(row[k], col[k])``, row-major sorted. A pattern without values has no dtype and no data."""
    doc: dict[str, Any] = {"format": "coo", "shape": list(sm.shape)}
    if sm.data is not None:
        doc["dtype"] = str(sm.data.dtype)
    encode = array_doc if native else array_json
    doc["row"] = encode(sm.row)["data"]
    doc["col"] = encode(sm.col)["data"]
    if sm.data is not None:
        doc["data"] = encode(sm.data)["data"]
    return doc


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The --json document of eval, jvp, vjp, grad, jacobian, hessian, hvp."""
    spec, result = outcome.spec, outcome.result
    doc = document(
        command=outcome.command,
        function=spec.function,
        spec=spec_name(spec),
        device=outcome.prep.runtime.device_name,
        dtype=spec.dtype,
        inputs=outcome.inputs,
        outputs=result.outputs,
        info={"wrt": list(outcome.prep.problem.wrt), **result.info},
        timing={"compile_s": result.timing.compile_s, "run_s": result.timing.run_s},
        versions=outcome.versions,
    )
    doc["warnings"] = outcome_warnings(outcome) + ([outcome.nonfinite] if outcome.nonfinite else [])
    if spec.case is not None:
        doc["case"] = spec.case
    if outcome.summary is not None:
        doc["summary"] = outcome.summary
    return doc


def spec_name(spec: Spec) -> str | None:
    """The spec as every document names it: its file, ``<stdin>``, or None (no spec: the command line).

    A case of a spec with ``cases:`` is named by the file too, and by its ``case`` beside it.
    """
    file = getattr(spec.source, "file", str(spec.source))
    return None if file == CLI else file


def arrays(outcome: Outcome) -> dict[str, Any]:
    """What -o saves: every output by name (.npz), or the one array of .npy."""
    if outcome.single_array is not None:
        return {outcome.result.op: outcome.single_array[0]}
    return dict(named_leaves(outcome.result.outputs))


def with_error(doc: dict[str, Any], error: JaxdiffError) -> dict[str, Any]:
    """A command's document with the error that ends it inside (``--check-finite``): one document on
    stdout, its results and ``"error"`` as ``{"error": {...}}`` gives it alone."""
    return {**doc, "error": error_fields(error)}


def run_json(outcome: RunOutcome) -> dict[str, Any]:
    """The `run` document: every case, each step's outputs, info and timing (or the case's error)."""
    cases = []
    for case in outcome.cases:
        item: dict[str, Any] = {"name": case.name, "function": case.spec.function, "dtype": case.spec.dtype, "results": []}
        if case.device is not None:
            item["device"] = case.device
        for step, result in case.steps:
            item["results"].append(
                {
                    "op": step.op,
                    "name": step.label,
                    "info": {k: v for k, v in result.info.items() if v is not None},
                    "outputs": {n: output_json(a, native=True) for n, a in named_leaves(result.outputs)},
                    "timing": {"compile_s": round(result.timing.compile_s, 6), "run_s": round(result.timing.run_s, 6)},
                }
            )
        if case.error is not None:
            item["error"] = error_fields(case.error)
        cases.append(item)
    warnings = run_warnings(outcome) + ([outcome.nonfinite] if outcome.nonfinite else [])
    spec = STDIN if outcome.spec_path == "-" else outcome.spec_path
    return envelope("run", outcome.versions, spec=spec, cases=cases, warnings=warnings)


def sparsity_json(outcome: SparsityOutcome) -> dict[str, Any]:
    """The `sparsity` document: the pattern as COO without data, and the coloring (each vertex's color)."""
    spec, sm = outcome.spec, outcome.pattern
    c = sm.coloring
    return envelope(
        "sparsity",
        outcome.versions,
        op=outcome.op,
        function=spec.function,
        spec=None if spec.source.startswith("<") else spec.source,
        device=outcome.prep.runtime.device_name,
        dtype=spec.dtype,
        info=outcome.info,
        pattern=coo_json(sm, native=True),
        coloring={"method": c.method, "mode": c.mode, "colors": c.colors, "assignment": c.assignment.tolist()},
        timing={"detect_s": round(c.detect_s, 6), "color_s": round(c.color_s, 6)},
    )


def bench_json(outcome: BenchOutcome) -> dict[str, Any]:
    return envelope(
        "bench",
        outcome.versions,
        op=outcome.op,
        function=outcome.spec.function,
        device=outcome.device,
        dtype=outcome.spec.dtype,
        timings=[t.as_dict() for t in outcome.timings],
        recommendation=outcome.recommendation,
        auto=outcome.auto,
    )


# --------------------------------------------------------------------------- terminal


def format_array(arr: Any, width: int = 100) -> str:
    """Values as NumPy prints them, large arrays summarised with '...'; an exact zero is 0., never -0."""
    a = np.asarray(arr)
    if a.dtype.kind in "fc":
        a = a + a.dtype.type(0)  # -0.0 + 0.0 is +0.0; every other value is unchanged
    precision = 8 if a.dtype in (np.float64, np.complex128) else 7
    return np.array2string(a, max_line_width=width, threshold=200, edgeitems=3, precision=precision)


def rich_result(
    *,
    title: str,
    outputs: Mapping[str, Any],
    info: Mapping[str, Any],
    footer: Mapping[str, str],
    width: int = 100,
) -> Any:
    """A Rich renderable: one panel per output leaf, a line of info, and a footer."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [Text(printable(title), style="bold")]
    # auto is said by "auto chose ... (reason)" below; a flag that is on is its name (holomorphic), never "True".
    notes = [
        (k if v is True else f"{k}: {'no' if v is False else v}")
        for k, v in info.items()
        if v is not None and k not in ("reason", "sparse", "blocks", "auto")
    ]
    if info.get("reason"):
        notes.append(f"auto chose {info.get('mode')} ({info['reason']})")
    if notes:
        parts.append(Text(printable(" · ".join(notes)), style="cyan"))
    for name, arr in named_leaves(dict(outputs)):
        if isinstance(arr, SparseMatrix):
            head = Text.assemble(
                (printable(name), "bold green"), "  ", (shape_text(arr.shape), "magenta"), "  ", ("sparse", "yellow")
            )
            parts.append(Panel(Text(sparse_text(arr, width - 6)), title=head, title_align="left", expand=False))
            continue
        a = np.asarray(arr)
        head = Text.assemble(
            (printable(name), "bold green"), "  ", (shape_text(a.shape), "magenta"), "  ", (str(a.dtype), "yellow")
        )
        parts.append(Panel(Text(format_array(a, width - 6)), title=head, title_align="left", expand=False))
    table = Table.grid(padding=(0, 2))
    for _ in footer:
        table.add_column()
    table.add_row(*[Text.assemble((f"{k} ", "dim"), printable(v)) for k, v in footer.items()])
    parts.append(table)
    return Group(*parts)


def sparse_text(sm: SparseMatrix, width: int = 100) -> str:
    """A sparse Jacobian or Hessian (or its pattern) in a few lines: nnz, density, colors, how found, blocks,
    and its first nonzeros."""
    c = sm.coloring
    kind = {"column": "column coloring", "row": "row coloring", "star": "star (symmetric) coloring"}[c.method]
    colors = f"{c.colors} color{'' if c.colors == 1 else 's'}"
    lines = [f"nnz {sm.nnz:,} of {sm.shape[0] * sm.shape[1]:,} (density {100 * sm.density:.3g}%) · {colors}, {kind}: {c.passes}"]
    if c.cached:
        lines.append(f"pattern and coloring from the cache (read in {c.detect_s:.2f} s)")
    else:
        lines.append(f"pattern detected in {c.detect_s:.2f} s, colored in {c.color_s:.2f} s")
    lines.append(
        f"rows: {', '.join(f'{n} [{k:,}]' for n, k in sm.rows)}; columns: {', '.join(f'{n} [{k:,}]' for n, k in sm.cols)}"
    )
    if sm.data is not None and sm.nnz:
        shown: list[str] = []
        for k in range(min(sm.nnz, 12)):
            item = f"({sm.row[k]}, {sm.col[k]}) {format_array(sm.data[k])}"
            if len(", ".join([*shown, item])) > width - 20:
                break
            shown.append(item)
        more = ", ..." if len(shown) < sm.nnz else ""
        lines.append(f"nonzeros: {', '.join(shown)}{more}")
    return "\n".join(lines)


def devices_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Devices JAX sees")
    for col in ("id", "platform", "kind", "default"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["platform"], r["kind"], "yes" if r["default"] else "")
    return table


# --------------------------------------------------------------------------- check reports


def check_json(reports: Sequence[Report], versions: Mapping[str, str]) -> dict[str, Any]:
    """The `check --json` document: every spec, every finding, the worst entry of each failure."""

    def finding(f: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"name": f.name, "passed": f.passed, "skipped": f.skipped, "detail": f.detail}
        if f.worst is not None:
            w = f.worst
            d["worst"] = {
                "output": w.output,
                "index": list(w.index),
                "ad": json_number(w.ad, F64),
                "reference": json_number(w.reference, F64),
                "error_estimate": json_number(w.error, F64),
                "bound": json_number(w.bound, F64),
            }
        return d

    specs = []
    for r in reports:
        item: dict[str, Any] = {
            "spec": r.spec,
            "passed": r.passed,
            "checks": [finding(f) for f in r.findings],
            "updated": r.updated,
            "changes": r.changes,
            "not_recorded": r.unrecorded,
        }
        if r.error is not None:
            item["error"] = error_fields(r.error)
        specs.append(item)
    return envelope("check", versions, passed=all(r.passed for r in reports), specs=specs)


def check_table(reports: Sequence[Report]) -> Any:
    """A Rich table per spec: one row per check; a failure shows its worst entry, AD value, reference
    and the reference's error estimate."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for r in reports:
        mark = (
            Text("ERROR", style="bold red")
            if r.error
            else Text("pass", style="green")
            if r.passed
            else Text("FAIL", style="bold red")
        )
        parts.append(Text.assemble(mark, "  ", (printable(r.spec), "bold")))
        if r.error is not None:
            parts.append(Text(f"  {r.error.render()}"))
            continue
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=any(not f.passed for f in r.findings))
        for col in ("", "check", "detail", "worst", "AD", "reference", "± est."):
            # Numbers are never split across lines (-4.247665e-1 / 8 read as two numbers in an
            # 80-column CI log): the text columns fold instead.
            whole = col in ("", "AD", "reference", "± est.")
            table.add_column(col, overflow="fold", no_wrap=whole)
        for f in r.findings:
            status = (
                Text("skip", style="yellow")
                if f.skipped
                else Text("ok", style="green")
                if f.passed
                else Text("FAIL", style="bold red")
            )
            w = f.worst
            cells = ["", "", "", ""]
            if w is not None:
                cells = [f"{w.output}{list(w.index)}", *numbers(w.ad, w.reference), f"{w.error:.2g}"]
            # Text, not str: a str cell is Rich markup, and names and details come from the spec.
            table.add_row(status, *(Text(printable(c)) for c in (f.name, f.detail, *cells)))
        parts.append(table)
        for change in r.changes:  # check --update: what it recorded, old → new
            parts.append(Text(printable(f"  {change}")))
        if r.updated:
            kept = f"; {r.unchanged} unchanged" if r.unchanged else ""
            parts.append(Text(printable(f"  recorded golden values in {', '.join(r.updated)}{kept}"), style="cyan"))
        elif r.changes == [] and r.unchanged and r.error is None and not r.findings:
            parts.append(Text(f"  nothing to record: {r.unchanged} unchanged", style="cyan"))
        for note in r.unrecorded:
            parts.append(Text(printable(f"  not recorded: {note}"), style="yellow"))
    failed = sum(not r.passed for r in reports)
    parts.append(Text(f"{len(reports) - failed} of {len(reports)} spec(s) passed", style="bold"))
    return Group(*parts)


def bench_table(title: str, timings: Sequence[Timing], op: str) -> Any:
    """`jaxdiff bench`: one row per mode."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(printable(title)))
    for col in ("mode", "compile", "median run", "min run", "runs", "working memory"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    for t in timings:
        mem = f"{t.temp_bytes / 2**20:.2f} MiB" if t.temp_bytes is not None else "n/a"
        table.add_row(
            t.mode or op, f"{t.compile_s * 1e3:.1f} ms", f"{t.median_s * 1e3:.4f} ms", f"{t.min_s * 1e3:.4f} ms", str(t.runs), mem
        )
    return table
