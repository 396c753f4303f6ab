"""A Jacobian or Hessian in the terminal: a heatmap of its blocks, and its summary as a line.

Rows are outputs and columns inputs (for a Hessian, inputs on both axes); every argument and
pytree leaf is a block, separated by lines. Nothing here prints: ``heatmap`` returns a Rich
renderable.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from jaxdiff_cli.engine.layout import Matrix
from jaxdiff_cli.engine.sparse import SparseMatrix, binned
from jaxdiff_cli.ops import JACOBIAN
from jaxdiff_cli.safetext import printable

LEVELS = ("··", "░░", "▒▒", "▓▓")  # |v| up to 25, 50, 75, 100 % of the largest magnitude
POSITIVE, NEGATIVE = "#c0392b", "#2e6fd8"  # diverging around zero: red above, blue below


def downsample(data: np.ndarray, max_rows: int, max_cols: int) -> tuple[np.ndarray, int, int]:
    """Each cell the largest-magnitude entry (with its sign) of its block: keeps structure visible."""
    r, c = data.shape
    fr, fc = max(1, math.ceil(r / max_rows)), max(1, math.ceil(c / max_cols))
    if fr == 1 and fc == 1:
        return data, 1, 1
    pr, pc = math.ceil(r / fr) * fr, math.ceil(c / fc) * fc
    padded = np.zeros((pr, pc))
    padded[:r, :c] = data
    blocks = padded.reshape(pr // fr, fr, pc // fc, fc).transpose(0, 2, 1, 3).reshape(pr // fr, pc // fc, fr * fc)
    pick = np.abs(blocks).argmax(axis=2)
    return np.take_along_axis(blocks, pick[..., None], axis=2)[..., 0], fr, fc


def _starts(blocks: list[tuple[str, int]], factor: int) -> list[int]:
    """The (downsampled) cell where each block starts; each block ends where the next starts."""
    out, total = [0], 0
    for _, size in blocks[:-1]:
        total += size
        out.append(math.ceil(total / factor))
    return out


def heatmap(m: Matrix, width: int = 100, max_rows: int = 40) -> Any:
    """A Rich renderable: the matrix as shaded cells, blocks separated, a legend with the range."""
    from rich.console import Group
    from rich.text import Text

    m = replace(m, rows=_printable(m.rows), cols=_printable(m.cols))  # names of pytree leaves: a function's keys
    label_w = min(14, max((len(n) for n, _ in m.rows), default=1) + 1)
    max_cols = max(4, (width - label_w - 2 - max(0, len(m.cols) - 1)) // 2)
    data, fr, fc = downsample(m.data, max_rows, max_cols)
    vmax = float(np.max(np.abs(m.data[np.isfinite(m.data)]), initial=0.0))
    row_starts, col_starts = _starts(m.rows, fr), _starts(m.cols, fc)
    row_ends, col_ends = row_starts[1:], col_starts[1:]
    row_labels = {cell: name for cell, (name, _) in zip(row_starts, m.rows)}
    lines: list[Any] = []
    # Column block names, each where its block starts (2 characters a cell, 1 per separator).
    header = [" "] * (2 * data.shape[1] + len(col_ends) + 16)
    for (name, _), j in zip(m.cols, col_starts):
        at = 2 * j + sum(1 for e in col_ends if 0 < e <= j)
        room = len(header) - at
        for k, ch in enumerate(name[: max(1, room)]):
            header[at + k] = ch
    lines.append(Text(" " * label_w + "".join(header).rstrip(), style="bold"))
    sep = "─" * (2 * data.shape[1] + len(col_ends))
    for i in range(data.shape[0]):
        label = row_labels.get(i, "")
        line = Text(f"{label[: label_w - 1]:<{label_w}}", style="bold")
        for j in range(data.shape[1]):
            if j in col_ends and j != 0:
                line.append("│", style="dim")
            line.append(*_cell(data[i, j], vmax))
        lines.append(line)
        if i + 1 in row_ends and i + 1 < data.shape[0]:
            lines.append(Text(" " * label_w + sep, style="dim"))
    note = []
    if fr > 1 or fc > 1:
        note.append(
            f"downsampled from {m.data.shape[0]}x{m.data.shape[1]}: each cell is the largest-magnitude entry of a {fr}x{fc} block"
        )
    legend = Text("legend: ")
    for k, glyph in enumerate(LEVELS):
        legend.append(glyph, style=POSITIVE)
        legend.append(glyph, style=NEGATIVE)
        legend.append(f" ≤{25 * (k + 1)}%  ")
    legend.append(f"of max |v| = {vmax:.4g}; red > 0, blue < 0, blank = exact 0", style="dim")
    axes = "rows: outputs, columns: inputs" if m.kind == JACOBIAN.name else "rows and columns: inputs"
    return Group(
        *lines,
        legend,
        Text(f"{m.kind} {m.data.shape[0]}x{m.data.shape[1]} ({axes})" + ("; " + note[0] if note else ""), style="dim"),
    )


def _printable(blocks: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return [(printable(name), size) for name, size in blocks]


def _cell(v: float, vmax: float) -> tuple[str, str]:
    if not math.isfinite(v):
        return "!!", "bold yellow"
    if v == 0.0 or vmax == 0.0:
        return "  ", ""
    level = min(3, int(abs(v) / vmax * 4 - 1e-12))
    return LEVELS[level], POSITIVE if v > 0 else NEGATIVE


def summary_text(s: dict[str, Any]) -> str:
    parts = [
        f"{s['shape'][0]}x{s['shape'][1]}",
        f"{100 * s['zeros']:.1f}% exact zeros",
        f"‖·‖_F {s['frobenius_norm']:.4g}",
        f"max |v| {s['max_abs']:.4g}",
    ]
    if "nnz" in s:  # a sparse result: its pattern
        parts.append(f"{s['nnz']:,} nonzeros in the pattern, {s['colors']} colors")
    if "symmetry_defect" in s:
        parts.append(f"symmetry defect {s['symmetry_defect']:.2g}")
        e = s["eigenvalues"]
        bounds = f" ± {e['residual_min']:.1g}, ± {e['residual_max']:.1g}" if "residual_min" in e else ""
        parts.append(f"eigenvalues [{e['min']:.4g}, {e['max']:.4g}]{bounds} ({e['method']}): {s['definiteness']}")
    return "summary: " + ", ".join(parts)


# Braille characters draw 2 x 4 dots each: a spy picture at eight times the resolution of a heatmap.
_BRAILLE = 0x2800
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [dot row][dot column] -> bit


def spy_grid(sm: SparseMatrix, width: int = 100, max_lines: int = 16) -> tuple[np.ndarray, int, int]:
    """Which dots of the picture hold a nonzero, and how many rows and columns of the matrix a dot covers.

    Dots are square on a terminal (a character is two dots wide and four tall, and twice as tall as
    wide), so the picture keeps the matrix's aspect; a small matrix is drawn one dot per entry.
    """
    import math

    m, n = sm.shape
    lines = max(1, min(max_lines, math.ceil(m / 4)))
    chars = max(1, min(width, math.ceil(n / 2), max(1, round(2 * lines * n / max(m, 1)))))
    if chars == width:  # wide: fewer lines keep the aspect
        lines = max(1, min(lines, round(chars * m / (2 * max(n, 1)))))
    rows_b, cols_b = min(4 * lines, m), min(2 * chars, n)
    counts = binned(sm, rows_b, cols_b) if rows_b and cols_b else np.zeros((0, 0), np.int64)
    return counts > 0, math.ceil(m / max(rows_b, 1)), math.ceil(n / max(cols_b, 1))


def _column_names(names: list[str], at: list[int], width: int) -> str:
    """The column blocks' names over the picture, each at its block's first character.

    A name never runs into the next one (``p.ap.b``): it is cut to the room before the next name,
    less a space, with an ellipsis, and left out when not even that fits (the block list above the
    picture names every block in full).
    """
    header = [" "] * width
    for k, (name, start) in enumerate(zip(names, at)):
        later = [a for a in at[k + 1 :] if a > start]
        room = min(later[0] - 1 if later else width, width) - start
        if len(name) > room:
            name = name[: room - 1] + "…" if room >= 3 else ""
        header[start : start + len(name)] = name
    return "".join(header).rstrip()


def spy(sm: SparseMatrix, width: int = 100, max_lines: int = 16) -> Any:
    """A sparse matrix's pattern in braille dots, its blocks separated and named, with a legend."""
    import math

    from rich.console import Group
    from rich.text import Text

    sm = replace(sm, rows=_printable(sm.rows), cols=_printable(sm.cols))
    m, n = sm.shape
    label_w = min(14, max((len(name) for name, _ in sm.rows), default=1) + 1)
    room = max(4, width - label_w - 2 - max(0, len(sm.cols) - 1))
    dots, fr, fc = spy_grid(sm, room, max_lines)
    rows_b, cols_b = dots.shape
    lines_n, chars_n = math.ceil(rows_b / 4), math.ceil(cols_b / 2)
    cells = np.zeros((lines_n * 4, chars_n * 2), bool)
    cells[:rows_b, :cols_b] = dots
    codes = np.full((lines_n, chars_n), _BRAILLE)
    for i in range(4):
        for j in range(2):
            codes += np.where(cells[i::4, j::2], _DOT[i][j], 0)

    def starts(blocks: list[tuple[str, int]], total: int, bins: int, per_char: int) -> list[int]:
        out, seen = [], 0
        for _, size in blocks:
            out.append(min(round(seen * bins / max(total, 1) / per_char), max(bins // per_char, 1)))
            seen += size
        return out

    col_starts, row_starts = starts(sm.cols, n, cols_b, 2), starts(sm.rows, m, rows_b, 4)
    col_cuts = sorted({c for c in col_starts[1:] if 0 < c < chars_n})
    row_cuts = sorted({r for r in row_starts[1:] if 0 < r < lines_n})
    at = [c + sum(1 for cut in col_cuts if cut <= c) for c in col_starts]
    out: list[Any] = [
        Text(" " * label_w + _column_names([name for name, _ in sm.cols], at, chars_n + len(col_cuts) + 16), style="bold")
    ]
    labels: dict[int, str] = {}
    for (name, _), r in zip(sm.rows, row_starts):
        labels.setdefault(min(r, lines_n - 1), name)
    for i in range(lines_n):
        line = Text(f"{labels.get(i, '')[: label_w - 1]:<{label_w}}", style="bold")
        for j in range(chars_n):
            if j in col_cuts:
                line.append("│", style="dim")
            line.append(chr(int(codes[i, j])))
        out.append(line)
        if i + 1 in row_cuts:
            out.append(Text(" " * label_w + "─" * (chars_n + len(col_cuts)), style="dim"))
    axes = "rows: outputs, columns: inputs" if sm.kind == JACOBIAN.name else "rows and columns: inputs"
    scale = "each dot one entry" if fr == 1 and fc == 1 else f"each dot a {fr:,}x{fc:,} block, shown when it holds a nonzero"
    out.append(
        Text(
            f"spy: {sm.kind} {m:,}x{n:,}, {sm.nnz:,} nonzeros (density {100 * sm.density:.3g}%); {scale} ({axes})",
            style="dim",
        )
    )
    return Group(*out)
