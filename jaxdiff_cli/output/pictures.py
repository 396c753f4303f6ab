"""Jacobian and Hessian pictures as image files (matplotlib, an optional extra: ``jaxdiff[plot]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from jaxdiff_cli.atomic import atomic_open
from jaxdiff_cli.engine.layout import Matrix
from jaxdiff_cli.engine.sparse import SparseMatrix, binned
from jaxdiff_cli.errors import OutputError, UsageError
from jaxdiff_cli.ops import HESSIAN

SIZE = (6.4, 4.8)  # inches; at DPI the image is 640 x 480 pixels
DPI = 100
FORMATS = (".png", ".svg")


def check_figure_path(path: Path, source: str = "--plot-file") -> None:
    """Fail before any work: wrong format, missing folder, or no matplotlib.

    ``source`` names where the path came from in messages: --plot-file, or a spec's plot.file.
    """
    if path.suffix.lower() not in FORMATS:
        raise OutputError(f"unknown image format {path.suffix or '(none)'!r}", where=f"{source} {path}", hint=", ".join(FORMATS))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", where=f"{source} {path}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(
            "--plot-file needs matplotlib, which is not installed", hint="pip install 'jaxdiff[plot]' (make install includes it)"
        ) from None


def _axis_labels(ax: Any, kind: str, n_col_blocks: int) -> None:
    if n_col_blocks > 3:
        ax.tick_params(axis="x", labelrotation=30)
    ax.set_xlabel("inputs" if kind == HESSIAN.name else "inputs (columns)", fontsize=8)
    ax.set_ylabel("inputs" if kind == HESSIAN.name else "outputs (rows)", fontsize=8)


def _name_blocks(ax: Any, rows: list[tuple[str, int]], cols: list[tuple[str, int]], color: str) -> None:
    """Lines between the row and column blocks, and one label a block at its centre: its name and
    number of entries (indices run from its edge). Blocks under 1.5% of the axis go unlabelled."""
    for blocks, line, axis in ((rows, ax.axhline, ax.yaxis), (cols, ax.axvline, ax.xaxis)):
        total = sum(size for _, size in blocks)
        ticks, labels, start = [], [], 0
        for name, size in blocks:
            if size >= 0.015 * total or len(blocks) <= 3:
                ticks.append(start + (size - 1) / 2)
                labels.append(f"{name} [{size:,}]" if size > 1 else name)
            start += size
            if start < total:
                line(start - 0.5, color=color, linewidth=0.8)
        axis.set_ticks(ticks, labels, fontsize=7)


def _write(fig: Any, path: Path, source: str) -> None:
    """The figure into ``path``, atomically (a run killed mid-write leaves the old image or none)."""
    fig.tight_layout()
    try:
        with atomic_open(path) as handle:
            fig.savefig(handle, format=path.suffix.lower().lstrip("."), dpi=DPI)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"{source} {path}") from None


def save_figure(m: Matrix, path: Path, *, spy: bool = False, title: str = "", source: str = "--plot-file") -> None:
    """A heatmap (diverging colours around zero, with a colour bar) or a sparsity pattern, blocks marked."""
    check_figure_path(path, source)
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    try:
        data = m.data
        if spy:
            ax.imshow(data != 0, cmap="Greys", interpolation="nearest", aspect="auto", vmin=0, vmax=1)
            ax.set_title(title + f"  (nonzeros: {np.count_nonzero(data)} of {data.size})", fontsize=9)
        else:
            finite = data[np.isfinite(data)]
            vmax = float(np.max(np.abs(finite), initial=0.0)) or 1.0
            image = ax.imshow(data, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest", aspect="auto")
            fig.colorbar(image, ax=ax, shrink=0.85)
            ax.set_title(title, fontsize=9)
        _name_blocks(ax, m.rows, m.cols, "black")
        # Index ticks on the top and right: the index of an entry within its block, to read a cell off.
        for secondary, blocks in ((ax.secondary_xaxis("top"), m.cols), (ax.secondary_yaxis("right"), m.rows)):
            positions, indices = index_ticks(blocks)
            secondary.set_ticks(positions, indices, fontsize=6)
        _axis_labels(ax, m.kind, len(m.cols))
        _write(fig, path, source)
    finally:
        plt.close(fig)


def index_ticks(blocks: list[tuple[str, int]], most: int = 12) -> tuple[list[float], list[str]]:
    """Where the index ticks of an axis go, and their labels: the index within each block (0 at its first
    entry), every 1, 2, 5, 10, 20, 50, ... entries so that about ``most`` fit along the axis."""
    total = sum(size for _, size in blocks)
    step = next(s * 10**k for k in range(64) for s in (1, 2, 5) if total / (s * 10**k) <= most)
    positions: list[float] = []
    labels: list[str] = []
    start = 0
    for _, size in blocks:
        for i in range(0, size, step):
            if i and size - i < step / 2:
                continue  # too close to the next block's 0 to read apart
            positions.append(float(start + i))
            labels.append(str(i))
        start += size
    if len(positions) > 2 * most:  # many small blocks, each with its 0: keep an even sample
        keep = range(0, len(positions), -(-len(positions) // most))
        positions, labels = [positions[k] for k in keep], [labels[k] for k in keep]
    return positions, labels


SPY_BINS = 480  # a large pattern is drawn as this many rows (and columns) of blocks at most


def save_spy_figure(sm: SparseMatrix, path: Path, *, title: str = "", source: str = "--plot-file") -> None:
    """The sparsity pattern of a sparse result (or of ``jaxdiff sparsity``) as an image, blocks marked.

    Nothing is densified: a matrix larger than ``SPY_BINS`` along an axis is drawn in blocks, each
    black when it holds a nonzero, so a band one entry wide stays visible at any size.
    """
    check_figure_path(path, source)
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window
    import matplotlib.pyplot as plt

    m, n = sm.shape
    rb, cb = max(1, min(m, SPY_BINS)), max(1, min(n, SPY_BINS))
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI)
    try:
        counts = binned(sm, rb, cb)
        extent = (-0.5, n - 0.5, m - 0.5, -0.5)  # axes in the matrix's own indices, whatever the blocks
        aspect: Literal["equal", "auto"] = "equal" if max(m, n) <= 4 * min(m, n) else "auto"  # square looks square
        ax.imshow(counts > 0, cmap="Greys", interpolation="nearest", aspect=aspect, vmin=0, vmax=1, extent=extent)
        facts = f"{sm.nnz:,} nonzeros of {m:,} x {n:,}; {sm.coloring.colors} colors: {sm.coloring.passes}"
        ax.set_title(f"{title}\n{facts}", fontsize=8)
        _name_blocks(ax, sm.rows, sm.cols, "tab:red")
        _axis_labels(ax, sm.kind, len(sm.cols))
        _write(fig, path, source)
    finally:
        plt.close(fig)
