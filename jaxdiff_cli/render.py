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
