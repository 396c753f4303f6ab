"""``expect:`` entries of Jacobians and Hessians, whichever form the result took.

- A sparse result (``sparse: true``) is one output, ``jacobian`` or ``hessian``. The dense result's
  names of its blocks (``jacobian.u``, ``jacobian[0].q[1]``, ``hessian.p.a.p.b``) name the same
  blocks of it, so turning ``sparse:`` on or off keeps an ``expect:`` block valid.
- The bare name (``jacobian``, ``hessian``) is the whole flat matrix (rows outputs, columns
  inputs, blocks in the layout's order) of either form.
- An expected value in scipy's sparse ``.npz`` (jaxdiff's own ``-o J.npz``, a sparse golden file)
  is compared on the union of both patterns, never made dense: an entry in one pattern and not the
  other is compared with zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxdiff_cli.checks.findings import Finding, Worst, compare_arrays
from jaxdiff_cli.engine.problem import Problem
from jaxdiff_cli.engine.sparse import SparseMatrix, named_blocks
from jaxdiff_cli.errors import UsageError
from jaxdiff_cli.inputs.sparsefile import SparseValue
from jaxdiff_cli.ops import HESSIAN, MATRICES

KINDS = MATRICES


@dataclass(frozen=True)
class SparseActual:
    """A sparse result, or one block of it, with the shape its dense form has (the dense result's)."""

    matrix: SparseMatrix
    shape: tuple[int, ...]

    def dense(self) -> np.ndarray:
        """The dense form; refused (UsageError) past ``sparse.DENSIFY_MAX`` entries."""
        return self.matrix.dense(why=", too many to compare with a dense expected value").reshape(self.shape)


def kind_of(name: str) -> str:
    """The output an expect name belongs to: ``jacobian`` of ``jacobian[0].q[1]``."""
    return name.split(".")[0].split("[")[0]


def actual_for(name: str, results: Mapping[str, Any], outputs: Mapping[str, Any], problem: Problem) -> Any:
    """The result an expect entry names: an output by its name, a block of a sparse result by the dense
    result's name for it, or the flat matrix of a dense Jacobian or Hessian by the bare name; None if none.

    ``results`` are the outputs by name (``layout.named_leaves``); ``outputs`` the operations' output
    trees (``jacobian`` -> a SparseMatrix, or the nested dense blocks).
    """
    if name in results:
        found = results[name]
        return SparseActual(found, found.shape) if isinstance(found, SparseMatrix) else found
    kind = kind_of(name)
    tree = outputs.get(kind) if kind in KINDS else None
    if tree is None:
        return None
    if isinstance(tree, SparseMatrix):
        block = named_blocks(problem, kind).get(name)
        return SparseActual(tree.block(block), block.shape) if block is not None else None
    return _flat(problem, kind, tree) if name == kind else None


def _flat(problem: Problem, kind: str, tree: Any) -> np.ndarray:
    from jaxdiff_cli.engine.layout import hessian_matrix, jacobian_matrix
    from jaxdiff_cli.engine.problem import output_shape

    diff = problem.diff(problem.primals)
    if kind == HESSIAN.name:
        return hessian_matrix(tree, diff, problem.wrt).data
    return jacobian_matrix(tree, output_shape(problem), diff, problem.wrt).data


def names(results: Mapping[str, Any], outputs: Mapping[str, Any], problem: Problem) -> list[str]:
    """Every name an expect entry may use for these results (for the hint of a misspelt one)."""
    known = set(results)
    for kind in KINDS:
        tree = outputs.get(kind)
        if isinstance(tree, SparseMatrix):
            known |= set(named_blocks(problem, kind))
        elif tree is not None:
            known.add(kind)
    return sorted(known)


def dense_or_finding(name: str, actual: SparseActual) -> np.ndarray | Finding:
    """A sparse actual made dense for a dense expected value, or the failed finding that says why not."""
    try:
        return actual.dense()
    except UsageError as exc:
        return Finding(name, False, f"{exc.message} (record it with check --update: a sparse golden file)")


def compare_sparse(name: str, output: str, actual: Any, expected: SparseValue, tol: tuple[float, float]) -> Finding:
    """A sparse expected value against a result (sparse or dense) on the union of both patterns."""
    m, n = expected.shape
    if isinstance(actual, SparseActual):
        got = actual.matrix
        if got.shape != expected.shape:
            return Finding(name, False, f"shape {got.shape}, expected a {m}x{n} matrix")
        row, col, data, dense_shape = got.row.astype(np.int64), got.col.astype(np.int64), got.values(), actual.shape
    else:
        a = np.asarray(actual)
        if a.size != m * n:
            return Finding(name, False, f"shape {a.shape}, expected a {m}x{n} matrix")
        flat = a.reshape(m, n)
        row, col = np.nonzero(flat)
        data, dense_shape = flat[row, col], a.shape
    keys_got, keys_want = row * n + col, expected.row * n + expected.col
    keys = np.union1d(keys_got, keys_want)
    wide = np.complex128 if np.iscomplexobj(data) or np.iscomplexobj(expected.data) else np.float64
    got_v, want_v = np.zeros(keys.size, wide), np.zeros(keys.size, wide)
    got_v[np.searchsorted(keys, keys_got)] = data
    want_v[np.searchsorted(keys, keys_want)] = expected.data
    finding = compare_arrays(name, output, got_v, want_v, np.zeros(()), "float64", tol, per_entry=True)
    detail = f"{finding.detail} on the union of both patterns"
    w = finding.worst
    if w is None:
        return Finding(name, finding.passed, detail)
    key = int(keys[w.index[0]])
    index = tuple(int(i) for i in np.unravel_index(key, dense_shape)) if math.prod(dense_shape) == m * n else divmod(key, n)
    return Finding(name, False, detail, Worst(w.output, index, w.ad, w.reference, w.error, w.bound))
