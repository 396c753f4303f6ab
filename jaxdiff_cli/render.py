"""Results -> Rich renderables and -> JSON-ready dicts. Pure: nothing here prints.

JSON schema (``schema: 1``), documented in the README:
    {"schema": 1, "jaxdiff_version", "command", "function", "spec", "device", "dtype",
     "info": {...}, "inputs": {name: array}, "outputs": {name: array},
     "timing": {"compile_s", "run_s"}, "versions": {"jax", "jaxlib"}}
with every array as {"shape": [...], "dtype": "float32", "data": nested lists}.
Non-finite floats are the strings "NaN", "Infinity" and "-Infinity" (RFC 8259 has no tokens
for them); every other number is a JSON number that reads back to the same bits in its dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from jaxdiff_cli import __version__

SCHEMA_VERSION = 1


def named_leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Walk a pytree of dicts / lists / tuples, naming each leaf ``a.b[0]``."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from named_leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from named_leaves(v, f"{prefix}[{i}]")
    elif tree is not None:
        yield prefix, tree


# --------------------------------------------------------------------------- JSON


def _json_number(value: float, dtype: np.dtype[Any]) -> float | int | str | bool:
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def array_json(arr: Any) -> dict[str, Any]:
    a = np.asarray(arr)
    if a.dtype == np.float32 or a.dtype == np.float16:
        # str() of a float32 is its shortest round-trip form; as a float64 it still reads back exactly.
        flat = [float(str(v)) for v in a.ravel()]
    else:
        flat = a.ravel().tolist()
    # An object array's tolist() nests plain Python values in the array's shape (0-d included).
    data = np.array([_json_number(v, a.dtype) for v in flat], dtype=object).reshape(a.shape).tolist()
    return {"shape": list(a.shape), "dtype": str(a.dtype), "data": data}


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
    """The --json document."""
    return {
        "schema": SCHEMA_VERSION,
        "jaxdiff_version": __version__,
        "command": command,
        "function": function,
        "spec": spec,
        "device": device,
        "dtype": dtype,
        "info": {k: v for k, v in info.items() if v is not None},
        "inputs": {name: array_json(a) for name, a in named_leaves(dict(inputs))},
        "outputs": {name: array_json(a) for name, a in named_leaves(dict(outputs))},
        "timing": {k: round(v, 6) for k, v in timing.items()},
        "versions": dict(versions),
    }


# --------------------------------------------------------------------------- terminal


def format_array(arr: Any, width: int = 100) -> str:
    """Values as NumPy prints them, large arrays summarised with '...'."""
    a = np.asarray(arr)
    return np.array2string(a, max_line_width=width, threshold=200, edgeitems=3, precision=8 if a.dtype == np.float64 else 7)


def shape_text(arr: Any) -> str:
    shape = np.shape(arr)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


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

    parts: list[Any] = [Text(title, style="bold")]
    notes = [f"{k}: {v}" for k, v in info.items() if v is not None and k != "reason"]
    if info.get("reason"):
        notes.append(f"auto chose {info.get('mode')} ({info['reason']})")
    if notes:
        parts.append(Text(" · ".join(notes), style="cyan"))
    for name, arr in named_leaves(dict(outputs)):
        a = np.asarray(arr)
        head = Text.assemble((name, "bold green"), "  ", (shape_text(a), "magenta"), "  ", (str(a.dtype), "yellow"))
        parts.append(Panel(Text(format_array(a, width - 6)), title=head, title_align="left", expand=False))
    table = Table.grid(padding=(0, 2))
    for _ in footer:
        table.add_column()
    table.add_row(*[Text.assemble((f"{k} ", "dim"), v) for k, v in footer.items()])
    parts.append(table)
    return Group(*parts)


def devices_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Devices JAX sees")
    for col in ("id", "platform", "kind", "default"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["id"]), r["platform"], r["kind"], "yes" if r["default"] else "")
    return table


# --------------------------------------------------------------------------- check reports


def _num(v: float) -> str:
    return f"{v:.7g}"


def check_json(reports: list[Any], versions: Mapping[str, str]) -> dict[str, Any]:
    """The `check --json` document: every spec, every finding, the worst entry of each failure."""

    def finding(f: Any) -> dict[str, Any]:
        d: dict[str, Any] = {"name": f.name, "passed": f.passed, "skipped": f.skipped, "detail": f.detail}
        if f.worst is not None:
            w = f.worst
            d["worst"] = {
                "output": w.output,
                "index": list(w.index),
                "ad": _json_number(w.ad, np.dtype(np.float64)),
                "reference": _json_number(w.reference, np.dtype(np.float64)),
                "error_estimate": _json_number(w.error, np.dtype(np.float64)),
                "bound": _json_number(w.bound, np.dtype(np.float64)),
            }
        return d

    specs = []
    for r in reports:
        item: dict[str, Any] = {
            "spec": r.spec,
            "passed": r.passed,
            "checks": [finding(f) for f in r.findings],
            "updated": r.updated,
        }
        if r.error is not None:
            item["error"] = {"exit_code": int(r.error.exit_code), "message": r.error.render()}
        specs.append(item)
    return {
        "schema": SCHEMA_VERSION,
        "jaxdiff_version": __version__,
        "command": "check",
        "passed": all(r.passed for r in reports),
        "specs": specs,
        "versions": dict(versions),
    }


def check_table(reports: list[Any]) -> Any:
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
        parts.append(Text.assemble(mark, "  ", (r.spec, "bold")))
        if r.error is not None:
            parts.append(Text(f"  {r.error.render()}"))
            continue
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=any(not f.passed for f in r.findings))
        for col in ("", "check", "detail", "worst", "AD", "reference", "± est."):
            table.add_column(col, overflow="fold")
        for f in r.findings:
            status = (
                Text("skip", style="yellow")
                if f.skipped
                else Text("ok", style="green")
                if f.passed
                else Text("FAIL", style="bold red")
            )
            w = f.worst
            cells = (
                ["", "", "", ""] if w is None else [f"{w.output}{list(w.index)}", _num(w.ad), _num(w.reference), f"{w.error:.2g}"]
            )
            table.add_row(status, f.name, f.detail, *cells)
        parts.append(table)
        if r.updated:
            parts.append(Text(f"  recorded golden values in {', '.join(r.updated)}", style="cyan"))
    failed = sum(not r.passed for r in reports)
    parts.append(Text(f"{len(reports) - failed} of {len(reports)} spec(s) passed", style="bold"))
    return Group(*parts)
