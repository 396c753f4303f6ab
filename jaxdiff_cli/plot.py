"""Jacobian and Hessian pictures: the matrix with its blocks, a terminal heatmap, and a summary.

A Jacobian is drawn with its outputs as rows and its inputs as columns, a Hessian with inputs on
both axes; every pytree leaf and every differentiated argument is a block, and blocks are separated
by lines. Nothing here prints: ``heatmap`` returns a Rich renderable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

LEVELS = ("··", "░░", "▒▒", "▓▓")  # |v| up to 25, 50, 75, 100 % of the largest magnitude
POSITIVE, NEGATIVE = "#c0392b", "#2e6fd8"  # diverging around zero: red above, blue below
EIG_DENSE_MAX = 500  # up to this size a Hessian's spectrum comes from the matrix, above from HVPs


@dataclass(frozen=True)
class Matrix:
    """A derivative as one 2-D array, with the names and sizes of its row and column blocks."""

    kind: str  # "jacobian" | "hessian"
    data: np.ndarray
    rows: list[tuple[str, int]]
    cols: list[tuple[str, int]]


def _path_name(path: Sequence[Any]) -> str:
    parts = []
    for key in path:
        name = getattr(key, "key", getattr(key, "idx", getattr(key, "name", key)))
        parts.append(f"[{name}]" if isinstance(name, int) else f".{name}")
    return "".join(parts)


def leaves_with_names(tree: Any, prefix: str) -> list[tuple[str, Any]]:
    """Leaves in JAX's order, named ``prefix.path``."""
    import jax

    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(prefix + _path_name(path), leaf) for path, leaf in flat]


def jacobian_matrix(by_arg: dict[str, Any], out_struct: Any, diff: Sequence[Any], names: Sequence[str]) -> Matrix:
    """The engine's per-argument Jacobian (output tree of input trees) as one matrix."""
    import jax

    out_tree: Any = jax.tree.structure(out_struct)
    out_leaves = leaves_with_names(out_struct, "f")
    rows = [(n, max(1, int(np.prod(leaf.shape)))) for n, leaf in out_leaves]
    cols: list[tuple[str, int]] = []
    col_blocks: list[list[np.ndarray]] = [[] for _ in rows]
    for name, arg in zip(names, diff):
        in_leaves = leaves_with_names(arg, name)
        cols += [(n, max(1, int(np.prod(leaf.shape)))) for n, leaf in in_leaves]
        per_out = out_tree.flatten_up_to(by_arg[name])
        for r, sub in enumerate(per_out):
            for (_, size_in), block in zip(cols[-len(in_leaves) :], jax.tree.leaves(sub)):
                col_blocks[r].append(np.asarray(block, dtype=np.float64).reshape(rows[r][1], size_in))
    data = np.block(col_blocks) if rows else np.zeros((0, 0))
    return Matrix("jacobian", data, rows, cols)


def hessian_matrix(nested: dict[str, Any], diff: Sequence[Any], names: Sequence[str]) -> Matrix:
    """The engine's Hessian ``H[a][path in a][b][path in b]`` as one matrix over all input leaves."""
    import jax

    blocks_in = [(name, leaves_with_names(arg, name)) for name, arg in zip(names, diff)]
    axis = [(n, max(1, int(np.prod(leaf.shape)))) for _, leaves in blocks_in for n, leaf in leaves]
    rows_out: list[list[np.ndarray]] = []
    for (a, a_leaves), arg in zip(blocks_in, diff):
        a_tree: Any = jax.tree.structure(arg)
        for (_, la), per_b in zip(a_leaves, a_tree.flatten_up_to(nested[a])):
            size_a = max(1, int(np.prod(la.shape)))
            row: list[np.ndarray] = []
            for b, b_leaves in blocks_in:
                for (_, lb), block in zip(b_leaves, jax.tree.leaves(per_b[b])):
                    row.append(np.asarray(block, dtype=np.float64).reshape(size_a, max(1, int(np.prod(lb.shape)))))
            rows_out.append(row)
    return Matrix("hessian", np.block(rows_out), axis, axis)


# --------------------------------------------------------------------------- the terminal heatmap


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
    axes = "rows: outputs, columns: inputs" if m.kind == "jacobian" else "rows and columns: inputs"
    return Group(
        *lines,
        legend,
        Text(f"{m.kind} {m.data.shape[0]}x{m.data.shape[1]} ({axes})" + ("; " + note[0] if note else ""), style="dim"),
    )


def _cell(v: float, vmax: float) -> tuple[str, str]:
    if not math.isfinite(v):
        return "!!", "bold yellow"
    if v == 0.0 or vmax == 0.0:
        return "  ", ""
    level = min(3, int(abs(v) / vmax * 4 - 1e-12))
    return LEVELS[level], POSITIVE if v > 0 else NEGATIVE


# --------------------------------------------------------------------------- summary


def lanczos_extremes(
    matvec: Callable[[np.ndarray], np.ndarray], n: int, steps: int = 200, seed: int = 0
) -> tuple[float, float, float, float]:
    """Smallest and largest eigenvalue of a symmetric operator from matrix-vector products alone,
    each with its residual bound (an eigenvalue lies within it of the Ritz value).

    Lanczos with full reorthogonalisation: the extreme Ritz values converge first, so a few hundred
    products at most give the ends of the spectrum of a matrix that is never formed.
    """
    k = min(steps, n)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(n)
    q /= np.linalg.norm(q)
    basis = np.zeros((k + 1, n))
    basis[0] = q
    alpha, beta = np.zeros(k), np.zeros(k)
    used = k
    for j in range(k):
        w = np.asarray(matvec(basis[j]), dtype=np.float64)
        if j > 0:
            w = w - beta[j - 1] * basis[j - 1]
        alpha[j] = w @ basis[j]
        w = w - alpha[j] * basis[j]
        w -= basis[: j + 1].T @ (basis[: j + 1] @ w)  # full reorthogonalisation
        beta[j] = np.linalg.norm(w)
        if beta[j] < 1e-12 * max(1.0, abs(alpha[j])):
            used = j + 1
            break
        basis[j + 1] = w / beta[j]
    t = np.diag(alpha[:used]) + np.diag(beta[: used - 1], 1) + np.diag(beta[: used - 1], -1)
    eig, vecs = np.linalg.eigh(t)
    last = beta[used - 1] if used == k else 0.0  # an invariant subspace was found: exact
    return float(eig[0]), float(eig[-1]), float(abs(last * vecs[-1, 0])), float(abs(last * vecs[-1, -1]))


def definiteness(lo: float, hi: float, scale: float) -> str:
    tol = 1e-10 * max(scale, 1e-300)
    if lo > tol:
        return "positive definite"
    if hi < -tol:
        return "negative definite"
    if lo >= -tol:
        return "positive semidefinite"
    if hi <= tol:
        return "negative semidefinite"
    return "indefinite"


def summary(m: Matrix, hvp: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, Any]:
    """Sparsity, norm, and for a Hessian its symmetry defect and extreme eigenvalues."""
    d = m.data
    finite = d[np.isfinite(d)]
    out: dict[str, Any] = {
        "shape": list(d.shape),
        "zeros": float(np.mean(d == 0)) if d.size else 0.0,
        "frobenius_norm": float(np.linalg.norm(finite)),
        "max_abs": float(np.max(np.abs(finite), initial=0.0)),
    }
    if m.kind == "hessian" and d.shape[0] == d.shape[1] and d.size:
        norm = np.linalg.norm(d)
        out["symmetry_defect"] = float(np.linalg.norm(d - d.T) / norm) if norm else 0.0
        n = d.shape[0]
        if n <= EIG_DENSE_MAX or hvp is None:
            eig = np.linalg.eigvalsh((d + d.T) / 2)
            lo, hi, how = float(eig[0]), float(eig[-1]), "eigvalsh of the Hessian"
            out["eigenvalues"] = {"min": lo, "max": hi, "method": how}
        else:
            lo, hi, r_lo, r_hi = lanczos_extremes(hvp, n)
            how = "Lanczos on HVPs (the Hessian is not used)"
            out["eigenvalues"] = {"min": lo, "max": hi, "method": how, "residual_min": r_lo, "residual_max": r_hi}
        out["definiteness"] = definiteness(lo, hi, max(abs(lo), abs(hi)))
    return out


def summary_text(s: dict[str, Any]) -> str:
    parts = [
        f"{s['shape'][0]}x{s['shape'][1]}",
        f"{100 * s['zeros']:.1f}% exact zeros",
        f"‖·‖_F {s['frobenius_norm']:.4g}",
        f"max |v| {s['max_abs']:.4g}",
    ]
    if "symmetry_defect" in s:
        parts.append(f"symmetry defect {s['symmetry_defect']:.2g}")
        e = s["eigenvalues"]
        bounds = f" ± {e['residual_min']:.1g}, ± {e['residual_max']:.1g}" if "residual_min" in e else ""
        parts.append(f"eigenvalues [{e['min']:.4g}, {e['max']:.4g}]{bounds} ({e['method']}): {s['definiteness']}")
    return "summary: " + ", ".join(parts)
