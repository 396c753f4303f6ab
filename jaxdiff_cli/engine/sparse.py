"""Sparse Jacobians and Hessians: detect the pattern, color it, compute only its nonzeros (asdex).

A Jacobian whose entries are mostly zeros is recovered from a handful of products instead of one
per input or output: columns that share no row (no two nonzeros in one row) can be pushed together
in one JVP, rows that share no column pulled together in one VJP, and a Hessian, being symmetric,
needs fewer still with a star coloring (every nonzero is read from the HVP of the one vertex of its
two-colored star that holds it unmixed). asdex does the three steps: it detects the pattern from the
jaxpr (a global pattern, valid for every value of the differentiated inputs, so it is conservative:
a nonzero is never dropped), colors it (numba), and runs the compressed products, which jaxdiff
compiles as one ``jax.jit`` program like every other operation.

Detection is the slow step (seconds for 10⁵ inputs), so the pattern and its coloring are cached on
disk, keyed by the function's jaxpr, the shapes and dtypes, and the values of everything the
function closes over (the primals that are not differentiated, its constants): a second run skips
both. A function asdex cannot see through (a primitive without a rule) raises :class:`Undetectable`,
and the caller computes densely or refuses: never a wrong matrix.

asdex is an optional extra (``jaxdiff[sparse]``), imported only here and only on the sparse path.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxdiff_cli.engine.layout import Matrix, leaves_with_names
from jaxdiff_cli.engine.problem import Plan, Problem, output_shape, require_scalar
from jaxdiff_cli.engine.sealed import SealedFolder, cache_secret
from jaxdiff_cli.errors import FunctionError, UsageError
from jaxdiff_cli.ops import HESSIAN, JACOBIAN, MATRICES

INSTALL_HINT = "pip install 'jaxdiff[sparse]' (make install includes it)"
KINDS = MATRICES
CACHE_FORMAT = 3  # bump when what a cache file holds changes
DENSIFY_MAX = 2**27  # entries: the largest matrix turned dense for a file, a picture or a check (512 MiB of float32)
_NO_RULE = re.compile(r"No handler for primitive '([^']+)'")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def asdex_module() -> Any:
    """asdex, or a usage error that says how to install it (exit 2)."""
    try:
        import asdex
    except ImportError:
        raise UsageError("sparse Jacobians and Hessians need asdex, which is not installed", hint=INSTALL_HINT) from None
    return asdex


def available() -> bool:
    """Whether asdex can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("asdex") is not None
    except (ImportError, ValueError):  # a test that hides it sets sys.modules["asdex"] = None
        return False


class Undetectable(Exception):
    """asdex cannot find this function's pattern (a primitive it has no rule for, or its own failure)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------- what a sparse result is


@dataclass(frozen=True)
class Coloring:
    """How the nonzeros are computed: the coloring, its passes, and what finding it cost."""

    method: str  # "column" (JVPs), "row" (VJPs) or "star" (symmetric, HVPs)
    mode: str  # jaxdiff's name of the products: fwd, rev, fwd-rev
    colors: int
    assignment: np.ndarray  # the color of each column (fwd, star) or row (rev); -1: not seeded
    passes: str  # "7 JVPs instead of 10,000"
    detect_s: float = 0.0
    color_s: float = 0.0
    cached: bool = False  # the pattern and coloring came from the cache
    reason: str | None = None  # why this coloring (auto), or why the sparse path at all

    def info(self, nnz: int, density: float) -> dict[str, Any]:
        """What ``info.sparse`` of the JSON document says."""
        return {
            "coloring": self.method,
            "colors": self.colors,
            "passes": self.passes,
            "nnz": nnz,
            "density": float(density),
            "detect_s": round(self.detect_s, 6),
            "color_s": round(self.color_s, 6),
            "cached": self.cached,
        }


@dataclass(frozen=True)
class SparseMatrix:
    """A Jacobian or Hessian as its nonzeros (COO), with the block names of its rows and columns.

    ``data[k]`` is the entry at ``(row[k], col[k])``; entries are row-major sorted and unique. The
    pattern is structural: an entry may be exactly zero at this point (``where`` took the other
    branch) and is kept, so the pattern is the same at every point. ``data`` is None for a pattern
    without values (``jaxdiff sparsity``). Rows and columns are laid out as ``layout.Matrix``'s:
    outputs (or inputs for a Hessian) by rows, inputs by columns, each argument and pytree leaf a block.
    """

    kind: str  # ops.MATRICES: jacobian or hessian
    shape: tuple[int, int]
    row: np.ndarray
    col: np.ndarray
    data: np.ndarray | None
    rows: list[tuple[str, int]]
    cols: list[tuple[str, int]]
    coloring: Coloring

    @property
    def nnz(self) -> int:
        return int(self.row.size)

    @property
    def density(self) -> float:
        size = self.shape[0] * self.shape[1]
        return self.nnz / size if size else 0.0

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype if self.data is not None else np.dtype(np.int8)

    def values(self) -> np.ndarray:
        """The nonzeros' values (ones for a pattern without values)."""
        return self.data if self.data is not None else np.ones(self.nnz, np.int8)

    def dense_bytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def dense(self, limit: int = DENSIFY_MAX, why: str = "") -> np.ndarray:
        """The full matrix; refused (a usage error) above ``limit`` entries."""
        entries = self.shape[0] * self.shape[1]
        if entries > limit:
            raise UsageError(
                f"the dense {self.kind} would have {entries:,} entries ({human_bytes(self.dense_bytes())}){why}",
                hint="keep it sparse: -o FILE.npz (scipy.sparse.load_npz) or FILE.mtx (Matrix Market)",
            )
        out = np.zeros(self.shape, self.dtype)
        out[self.row, self.col] = self.values()
        return out

    def matrix(self) -> Matrix:
        """The dense view that pictures and summaries of small matrices use."""
        return Matrix(self.kind, self.dense().astype(np.float64), self.rows, self.cols)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """M v in float64, from the nonzeros alone."""
        d = np.asarray(self.values(), np.float64)
        return np.bincount(self.row, weights=d * np.asarray(v, np.float64)[self.col], minlength=self.shape[0])

    def rmatvec(self, u: np.ndarray) -> np.ndarray:
        """Mᵀ u in float64, from the nonzeros alone."""
        d = np.asarray(self.values(), np.float64)
        return np.bincount(self.col, weights=d * np.asarray(u, np.float64)[self.row], minlength=self.shape[1])

    def with_data(self, data: np.ndarray) -> SparseMatrix:
        return replace(self, data=data)

    def block(self, block: Block) -> SparseMatrix:
        """The nonzeros of one block (rows r0:r1, columns c0:c1), as a matrix of the block's size."""
        (r0, r1), (c0, c1) = block.rows, block.cols
        keep = (self.row >= r0) & (self.row < r1) & (self.col >= c0) & (self.col < c1)
        data = None if self.data is None else self.data[keep]
        rows = [(n, k) for n, k in self.rows if n == block.row_name]
        cols = [(n, k) for n, k in self.cols if n == block.col_name]
        return replace(
            self, shape=(r1 - r0, c1 - c0), row=self.row[keep] - r0, col=self.col[keep] - c0, data=data, rows=rows, cols=cols
        )


@dataclass(frozen=True)
class Block:
    """One block of a Jacobian or Hessian: the dense result's name for it, where it lies in the flat
    matrix, and its shape as the dense result has it (output leaf + input leaf, or leaf_a + leaf_b)."""

    name: str  # jacobian.u, jacobian[0].q[1], hessian.p.a.p.b
    row_name: str
    col_name: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    shape: tuple[int, ...]


def as_array(leaf: Any) -> np.ndarray:
    """An output leaf as one array: a sparse matrix dense (small ones only, see ``SparseMatrix.dense``)."""
    return leaf.dense() if isinstance(leaf, SparseMatrix) else np.asarray(leaf)


def file_arrays(name: str, leaf: Any) -> list[tuple[str, np.ndarray]]:
    """An output leaf as the arrays of an .npz of several results: a sparse matrix as NAME.row, .col,
    .data and .shape (``scipy.sparse.coo_matrix((data, (row, col)), shape)`` rebuilds it)."""
    if not isinstance(leaf, SparseMatrix):
        return [(name, np.asarray(leaf))]
    parts = [(f"{name}.row", leaf.row), (f"{name}.col", leaf.col), (f"{name}.data", leaf.values())]
    return [*parts, (f"{name}.shape", np.asarray(leaf.shape))]


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def count(n: int) -> str:
    """A count as people read it: 10,000 below 10⁵, 5.0e6 from there."""
    return f"{n:,}" if n < 10**5 else f"{n:.1e}".replace("e+0", "e").replace("e+", "e")


# --------------------------------------------------------------------------- blocks


def blocks(problem: Problem, kind: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Names and sizes of the row and column blocks, as ``layout.jacobian_matrix`` names them."""
    cols = [
        (name, max(1, int(np.prod(leaf.shape))))
        for arg_name, arg in zip(problem.wrt, problem.diff(problem.primals))
        for name, leaf in leaves_with_names(arg, arg_name)
    ]
    if kind == HESSIAN.name:
        return cols, cols
    rows = [(name, max(1, int(np.prod(leaf.shape)))) for name, leaf in leaves_with_names(output_shape(problem), "f")]
    return rows, cols


def named_blocks(problem: Problem, kind: str) -> dict[str, Block]:
    """Every block of the flat Jacobian or Hessian by the name the dense result gives it
    (``layout``'s names: ``jacobian.<output path>.<arg><path>``, ``hessian.<arg><path>.<arg><path>``),
    so that an ``expect:`` entry written for the dense result reads the same block of a sparse one."""
    cols = [
        (name, tuple(leaf.shape))
        for arg_name, arg in zip(problem.wrt, problem.diff(problem.primals))
        for name, leaf in leaves_with_names(arg, arg_name)
    ]
    hessian = kind == HESSIAN.name
    rows = cols if hessian else [(name, tuple(leaf.shape)) for name, leaf in leaves_with_names(output_shape(problem), "f")]
    out: dict[str, Block] = {}
    r0 = 0
    for row, row_shape in rows:
        r1 = r0 + max(1, math.prod(row_shape))
        c0 = 0
        for col, col_shape in cols:
            c1 = c0 + max(1, math.prod(col_shape))
            # A Hessian's rows are inputs (hessian.p.a.p.b); a Jacobian's the output "f" and its path (f[0] -> jacobian[0]).
            name = f"{HESSIAN.result}.{row}.{col}" if hessian else f"{JACOBIAN.result}{row[1:]}.{col}"
            out[name] = Block(name, row, col, (r0, r1), (c0, c1), row_shape + col_shape)
            c0 = c1
        r0 = r1
    return out


# --------------------------------------------------------------------------- detection and coloring


def _function(problem: Problem) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """f of the differentiated arguments (the others closed over, so asdex sees their values), and those arguments."""
    return problem.of_diff(problem.primals), problem.diff(problem.primals)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a while (reference counting still frees everything).

    Detection builds a small set per entry of every intermediate array (millions at 10⁶ inputs),
    none of them garbage cycles; the collector, triggered every few hundred container allocations,
    would walk them all again and again. Measured: detection 3x faster at 10⁵ inputs and 1.7x at
    10⁶, with the same peak memory.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def detect(problem: Problem, kind: str) -> Any:
    """The sparsity pattern (asdex's SparsityPattern) of the Jacobian or the Hessian."""
    asdex = asdex_module()
    h, diff = _function(problem)
    argnums = tuple(range(len(diff)))
    detector = asdex.jacobian_sparsity if kind == JACOBIAN.name else asdex.hessian_sparsity
    try:
        with _no_cyclic_gc():
            return detector(h, *diff, argnums=argnums)
    except (FunctionError, UsageError):
        raise
    except Exception as exc:  # a primitive without a rule, or asdex's own failure: never guess a pattern
        found = _NO_RULE.search(str(exc))
        if found:
            raise Undetectable(f"asdex has no sparsity rule for the primitive '{found.group(1)}'") from exc
        said = whole_sentences(str(exc))
        raise Undetectable(f"sparsity detection failed ({type(exc).__name__}{': ' + said if said else ''})") from exc


def whole_sentences(text: str, limit: int = 200) -> str:
    """The first line of a message, shortened to the sentences that fit in ``limit`` characters.

    A warning cut mid-sentence reads as another sentence ("For differentiation of non-holomorphic ):"),
    so a long message is cut after a sentence, or, when its first sentence alone is too long, after
    a word, with an ellipsis to show it was cut.
    """
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(line) <= limit:
        return line
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", line[: limit + 1])]
    if ends:
        return line[: ends[-1]]
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def _passes(method: str, colors: int, m: int, n: int) -> str:
    """What the coloring costs against dense: ``7 JVPs instead of 900``; ``3 VJPs, as many as dense``."""
    product = {"column": "JVP", "row": "VJP", "star": "HVP"}[method]
    plural = "" if colors == 1 else "s"
    dense = m if method == "row" else n
    if colors >= dense:  # coloring saved nothing ("1 VJP instead of 1" would read as a saving)
        return f"{colors} {product}{plural}, as many as dense"
    return f"{colors} {product}{plural} instead of {count(dense)}"


def _colors(k: int, side: str, product: str) -> str:
    return f"{k} {side} color{'' if k == 1 else 's'} ({product}{'' if k == 1 else 's'})"


def color(pattern: Any, kind: str, mode: str) -> tuple[Any, Coloring]:
    """Color a pattern: columns (fwd), rows (rev), the fewer of the two (auto), or a star coloring (hessian)."""
    asdex = asdex_module()
    m, n = pattern.shape
    with warnings.catch_warnings(), _no_cyclic_gc():  # coloring builds dicts of lists, one entry per row or column
        # asdex warns when coloring saves nothing; jaxdiff says so in the reason instead.
        warnings.simplefilter("ignore", asdex.DenseColoringWarning)
        if kind == HESSIAN.name:
            colored = asdex.hessian_coloring_from_sparsity(pattern, mode="fwd_over_rev")
            method, ours, reason = "star", "fwd-rev", None
        elif mode == "auto":
            by_col = asdex.jacobian_coloring_from_sparsity(pattern, mode="fwd")
            by_row = asdex.jacobian_coloring_from_sparsity(pattern, mode="rev")
            # Ties go to forward mode: a JVP is cheaper than a VJP.
            colored = by_col if by_col.num_colors <= by_row.num_colors else by_row
            method, ours = ("column", "fwd") if colored is by_col else ("row", "rev")
            reason = (
                f"pattern {count(pattern.nnz)} nonzero{'' if pattern.nnz == 1 else 's'};"
                f" {_colors(by_col.num_colors, 'column', 'JVP')} vs {_colors(by_row.num_colors, 'row', 'VJP')}:"
                f" {_passes(method, colored.num_colors, m, n)}"
            )
        else:
            colored = asdex.jacobian_coloring_from_sparsity(pattern, mode=mode)
            method, ours, reason = ("column" if mode == "fwd" else "row"), mode, None
    coloring = Coloring(
        method=method,
        mode=ours,
        colors=int(colored.num_colors),
        assignment=np.asarray(colored.colors),
        passes=_passes(method, int(colored.num_colors), m, n),
        reason=reason,
    )
    return colored, coloring


# --------------------------------------------------------------------------- the pattern cache


def cache_key(problem: Problem, kind: str) -> str | None:
    """What the pattern depends on, hashed: the jaxpr, the shapes and dtypes, the closed-over values.

    The pattern is valid for every value of the differentiated arguments, but not of the others:
    an index array decides which entries a gather reads. So their values (constants of the jaxpr,
    as the function closes over them) are part of the key. None when something cannot be hashed.
    """
    from importlib.metadata import version

    h, diff = _function(problem)
    try:
        closed = jax.make_jaxpr(h)(*diff)
        consts = [np.asarray(c) for c in closed.consts]
    except Exception:  # e.g. a PRNG key array, which has no NumPy form
        return None
    digest = hashlib.sha256()
    # Object addresses (custom_jvp rules print as functions) differ from run to run, the pattern not.
    text = _ADDRESS.sub("", str(closed.jaxpr))
    for part in (str(CACHE_FORMAT), kind, jax.__version__, version("asdex"), str(jax.tree.structure(diff)), text):
        digest.update(part.encode())
        digest.update(b"\0")
    for c in consts:
        if c.dtype == object:
            return None
        digest.update(f"{c.dtype}{c.shape}".encode())
        digest.update(np.ascontiguousarray(c).tobytes())
    return digest.hexdigest()[:40]


def _store(cache: Path | None) -> SealedFolder | None:
    """The pattern cache in ``cache``, every file sealed with the user's key (engine/sealed.py): a
    planted pattern would give a wrong matrix, so none is read unsealed. None: no cache."""
    secret = cache_secret() if cache is not None else None
    return SealedFolder(cache, secret, "sparsity") if cache is not None and secret is not None else None


def _save_colored(store: SealedFolder, name: str, colored: Any, coloring: Coloring) -> None:
    """A colored pattern in asdex's own format (``ColoredPattern.save``/``load``), after jaxdiff's facts
    about it (JSON, its length first), sealed in one file; skipped when it cannot be (the cache is best effort)."""
    facts = {k: v for k, v in coloring.__dict__.items() if k not in ("assignment", "detect_s", "color_s", "cached")}
    with contextlib.suppress(OSError, TypeError, ValueError):
        text = json.dumps(facts).encode()
        buffer = io.BytesIO()
        colored.save(buffer)
        store.write(name, len(text).to_bytes(8, "big") + text + buffer.getvalue())


def _load_colored(store: SealedFolder, name: str) -> tuple[Any, Coloring] | None:
    """A cached colored pattern and jaxdiff's facts about it, or None (absent, not sealed by this key, another layout)."""
    t0 = time.perf_counter()
    blob = store.read(name)
    if blob is None:
        return None
    asdex = asdex_module()
    try:
        size = int.from_bytes(blob[:8], "big")
        facts = json.loads(blob[8 : 8 + size])
        colored = asdex.ColoredPattern.load(io.BytesIO(blob[8 + size :]))
        coloring = Coloring(**facts, assignment=np.asarray(colored.colors), detect_s=time.perf_counter() - t0, cached=True)
    except Exception:  # sealed by this key but from another version: compute afresh
        return None
    return colored, coloring


def _save_pattern(store: SealedFolder, name: str, pattern: Any) -> None:
    with contextlib.suppress(OSError, TypeError, ValueError):
        buffer = io.BytesIO()
        pattern.save(buffer)
        store.write(name, buffer.getvalue())


def _load_pattern(store: SealedFolder, name: str) -> Any:
    blob = store.read(name)
    if blob is None:
        return None
    try:
        return asdex_module().SparsityPattern.load(io.BytesIO(blob))
    except Exception:
        return None


def colored_pattern(problem: Problem, kind: str, mode: str, cache: Path | None) -> tuple[Any, Coloring]:
    """The pattern of ``kind`` colored for ``mode``: from the cache, else detected (or read) and colored, and cached.

    ``cache`` None skips the cache both ways (``--no-cache``). Raises :class:`Undetectable`.
    """
    if kind not in KINDS:
        raise UsageError(f"no sparse {kind}", hint=", ".join(KINDS))
    asdex_module()
    store = _store(cache)
    key = cache_key(problem, kind) if store is not None else None
    request = HESSIAN.name if kind == HESSIAN.name else mode
    if store is not None and key is not None:
        found = _load_colored(store, f"{key}.{request}")
        if found is not None and found[0].sparsity.shape == _expected_shape(problem, kind):
            return found
    t0 = time.perf_counter()
    pattern = _load_pattern(store, f"{key}.pattern") if store is not None and key is not None else None
    loaded = pattern is not None
    if pattern is None:
        pattern = detect(problem, kind)
    detect_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    colored, coloring = color(pattern, kind, mode)
    coloring = replace(coloring, detect_s=detect_s, color_s=time.perf_counter() - t1, cached=loaded)
    if store is not None and key is not None:
        if not loaded:
            _save_pattern(store, f"{key}.pattern", pattern)
        _save_colored(store, f"{key}.{request}", colored, coloring)
    return colored, coloring


def _expected_shape(problem: Problem, kind: str) -> tuple[int, int]:
    n, m = problem.sizes()
    return (n, n) if kind == HESSIAN.name else (m, n)


def pattern_matrix(problem: Problem, kind: str, mode: str, cache: Path | None) -> SparseMatrix:
    """The pattern and its coloring, without values (``jaxdiff sparsity``)."""
    return _matrix(problem, kind, *colored_pattern(problem, kind, mode, cache))


def _matrix(problem: Problem, kind: str, colored: Any, coloring: Coloring) -> SparseMatrix:
    """The pattern of a colored pattern as a SparseMatrix without values, its blocks named."""
    rows, cols = blocks(problem, kind)
    sp = colored.sparsity
    shape = (int(sp.shape[0]), int(sp.shape[1]))
    return SparseMatrix(kind, shape, np.asarray(sp.rows), np.asarray(sp.cols), None, rows, cols, coloring)


# --------------------------------------------------------------------------- the plan


def plan_sparse(problem: Problem, kind: str, mode: str = "auto", chunk: int | None = None, cache: Path | None = None) -> Plan:
    """The sparse Jacobian or Hessian as one jit program: the compressed products, then their nonzeros.

    The program's argument is the primals, as for every plan; the coloring (seeds and the gather that
    reads each nonzero out of the compressed matrix) is part of the program. ``chunk`` bounds how many
    colors are pushed at a time (``lax.map``); None pushes them all at once (``vmap``).
    """
    asdex = asdex_module()
    if kind == HESSIAN.name:
        require_scalar(problem, HESSIAN.name)
    colored, coloring = colored_pattern(problem, kind, mode, cache)
    empty = _matrix(problem, kind, colored, coloring)
    compress = asdex.compressed_jacobian_from_coloring if kind == JACOBIAN.name else asdex.compressed_hessian_from_coloring

    def g(primals: tuple[Any, ...]) -> Any:
        h = problem.of_diff(primals)
        compressed = compress(h, colored, chunk_size=chunk)(*problem.diff(primals))
        return asdex.decompress_data(compressed, colored)

    def finish(data: Any) -> dict[str, Any]:
        return {kind: empty.with_data(np.asarray(data))}

    info: dict[str, Any] = {"mode": coloring.mode}
    if coloring.reason:
        info.update(auto=True, reason=coloring.reason)
    info["sparse"] = coloring.info(empty.nnz, empty.density)
    info["blocks"] = block_info(empty)
    if chunk is not None:
        info["chunk_size"] = chunk
    return Plan(kind, g, (problem.primals,), finish, problem.where, info, max_program=problem.max_program)


def block_info(sm: SparseMatrix) -> dict[str, list[list[Any]]]:
    """The row and column blocks, as the JSON document's info names them: [[name, size], ...]."""
    return {"rows": [[name, size] for name, size in sm.rows], "columns": [[name, size] for name, size in sm.cols]}


def dense_bytes(problem: Problem, kind: str) -> int:
    """What the dense Jacobian (outputs x inputs) or Hessian (inputs x inputs) takes."""
    n, m = problem.sizes()
    item = max((leaf.dtype.itemsize for leaf in jax.tree.leaves(problem.diff(problem.primals))), default=4)
    return (n * n if kind == HESSIAN.name else m * n) * int(item)


# --------------------------------------------------------------------------- facts about a sparse matrix


def summary(sm: SparseMatrix) -> dict[str, Any]:
    """What ``engine.summary.summary`` says of a dense matrix, from the nonzeros alone, and the pattern's facts.

    A Hessian's eigenvalues come from Lanczos on the sparse matrix-vector product above
    ``summary.EIG_DENSE_MAX`` inputs (nothing is densified), from the matrix itself below.
    """
    from jaxdiff_cli.engine import summary as dense_summary

    d = np.asarray(sm.values(), np.float64)
    finite = d[np.isfinite(d)]
    size = sm.shape[0] * sm.shape[1]
    out: dict[str, Any] = {
        "shape": list(sm.shape),
        "zeros": 1.0 - float(np.count_nonzero(d)) / size if size else 0.0,
        "frobenius_norm": float(np.linalg.norm(finite)),
        "max_abs": float(np.max(np.abs(finite), initial=0.0)),
        "nnz": sm.nnz,
        "density": sm.density,
        "colors": sm.coloring.colors,
    }
    if sm.kind == HESSIAN.name and sm.shape[0] == sm.shape[1] and sm.nnz:
        n = sm.shape[0]
        key = sm.row.astype(np.int64) * n + sm.col
        order = np.argsort(key)
        t_key = sm.col.astype(np.int64) * n + sm.row
        pos = np.clip(np.searchsorted(key[order], t_key), 0, sm.nnz - 1)
        transposed = np.where(key[order][pos] == t_key, d[order][pos], 0.0)
        norm = np.linalg.norm(d)
        out["symmetry_defect"] = float(np.linalg.norm(d - transposed) / norm) if norm else 0.0
        if n <= dense_summary.EIG_DENSE_MAX:
            dense = sm.dense().astype(np.float64)
            eig = np.linalg.eigvalsh((dense + dense.T) / 2)
            lo, hi = float(eig[0]), float(eig[-1])
            out["eigenvalues"] = {"min": lo, "max": hi, "method": "eigvalsh of the Hessian"}
        else:

            def sym(v: np.ndarray) -> np.ndarray:
                return np.asarray((sm.matvec(v) + sm.rmatvec(v)) / 2)

            lo, hi, r_lo, r_hi = dense_summary.lanczos_extremes(sym, n)
            how = "Lanczos on the sparse Hessian"
            out["eigenvalues"] = {"min": lo, "max": hi, "method": how, "residual_min": r_lo, "residual_max": r_hi}
        out["definiteness"] = dense_summary.definiteness(lo, hi, max(abs(lo), abs(hi)))
    return out


def binned(sm: SparseMatrix, rows: int, cols: int) -> np.ndarray:
    """How many nonzeros fall in each of rows x cols equal blocks of the matrix (for spy pictures)."""
    m, n = sm.shape
    r = (sm.row.astype(np.int64) * rows) // max(m, 1)
    c = (sm.col.astype(np.int64) * cols) // max(n, 1)
    return np.bincount(r * cols + c, minlength=rows * cols).reshape(rows, cols)
