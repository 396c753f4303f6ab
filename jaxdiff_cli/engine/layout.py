"""How results are laid out and named: per argument, JAX's nesting, flat views and one-matrix views.

- A Jacobian: ``J[path in output][a][path in a]``, the output tree whose every leaf is a mapping
  from the differentiated arguments' names to their trees (jacfwd/jacrev's nesting, with its tuple
  over argnums replaced by names); a block has shape output leaf + input leaf.
- A Hessian: ``H[a][path in a][b][path in b]`` (jax.hessian's nesting with its tuples over
  arguments replaced by names), each block of shape leaf_a + leaf_b.
- Every leaf is named by its path: ``hessian.p.a.p.b``, ``grad.q[1]``.
- The flat matrix of a Jacobian or Hessian: rows outputs, columns inputs, every argument and leaf a
  block in JAX's leaf order (what pictures draw, ``-o FILE.npy`` holds and ``check`` compares).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxdiff_cli.engine.problem import Problem
from jaxdiff_cli.ops import HESSIAN, JACOBIAN


def step(key: Any, index: bool = False) -> str:
    """One step of a path as it is written in names: ``.a`` for a key that is a name, ``[0]`` for a
    list index, ``['a.b']`` for any other key, so that two leaves never share a name."""
    if index:
        return f"[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f".{key}"
    return f"[{key!r}]"


def named_leaves(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Walk a pytree of dicts / lists / tuples, naming each leaf ``a.b[0]``."""
    if isinstance(tree, Mapping):
        for k, v in tree.items():
            yield from named_leaves(v, f"{prefix}{step(k)}" if prefix else str(k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from named_leaves(v, f"{prefix}{step(i, index=True)}")
    elif tree is not None:
        yield prefix, tree


def key_text(key: Any) -> str:
    """One step of a JAX key path, written as ``step`` writes it."""
    if hasattr(key, "idx"):
        return step(key.idx, index=True)
    return step(getattr(key, "key", getattr(key, "name", key)))


def leaves_with_names(tree: Any, prefix: str) -> list[tuple[str, Any]]:
    """Leaves in JAX's order, named ``prefix.path``."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(prefix + "".join(key_text(k) for k in path), leaf) for path, leaf in flat]


def flat_function(h: Callable[..., Any], diff: tuple[Any, ...]) -> tuple[Callable[[Any], Any], Any, int, int]:
    """f as a function of one flat vector: (f_flat, x_flat, n inputs, m outputs)."""
    x_flat, unravel_in = ravel_pytree(diff)

    def flat_f(x: Any) -> Any:
        return ravel_pytree(h(*unravel_in(x)))[0]

    m = int(jax.eval_shape(flat_f, x_flat).size)
    return flat_f, x_flat, int(x_flat.size), m


def unflatten_jacobian(jac: Any, out_struct: Any, diff: tuple[Any, ...]) -> tuple[Any, ...]:
    """A flat (m, n) Jacobian -> per argument, the pytree jax.jacfwd would give."""
    out_leaves, out_tree = jax.tree.flatten(out_struct)
    per_arg = []
    col = 0
    for arg in diff:
        in_leaves, in_tree = jax.tree.flatten(arg)
        blocks_per_out = []
        row = 0
        for o in out_leaves:
            osize = int(np.prod(o.shape))
            c = col
            inner = []
            for leaf in in_leaves:
                isize = int(np.prod(leaf.shape))
                inner.append(jac[row : row + osize, c : c + isize].reshape(tuple(o.shape) + tuple(leaf.shape)))
                c += isize
            blocks_per_out.append(jax.tree.unflatten(in_tree, inner))
            row += osize
        col += sum(int(np.prod(leaf.shape)) for leaf in in_leaves)
        per_arg.append(jax.tree.unflatten(out_tree, blocks_per_out))
    return tuple(per_arg)


def nest_jacobian(problem: Problem, out_struct: Any, per_arg: Sequence[Any]) -> Any:
    """The Jacobian by name from one block per argument (each the output tree of that argument's
    tree): ``J[path in output][a][path in a]``, so ``jacobian.x`` for one array in and out, and
    ``jacobian[0].q[1]`` for output 0 with respect to leaf 1 of argument q."""
    out_tree: Any = jax.tree.structure(out_struct)
    cols = [out_tree.flatten_up_to(block) for block in per_arg]
    return out_tree.unflatten([{a: cols[k][i] for k, a in enumerate(problem.wrt)} for i in range(out_tree.num_leaves)])


def nest_hessian(problem: Problem, diff: Sequence[Any], block: Callable[[int, int], Any]) -> dict[str, Any]:
    """The Hessian by name: ``H[a][path in a][b][path in b]`` has shape leaf_a.shape + leaf_b.shape.

    ``block(i, j)`` is the block of arguments i and j as JAX nests it: argument i's tree, each of
    whose leaves is argument j's tree. This is jax.hessian's layout with its tuples over arguments
    replaced by the arguments' names, so every block of a pytree argument is named in full
    (``hessian.p.a.p.b``).
    """
    out: dict[str, Any] = {}
    for i, (a, arg) in enumerate(zip(problem.wrt, diff)):
        tree: Any = jax.tree.structure(arg)
        cols = [tree.flatten_up_to(block(i, j)) for j in range(len(problem.wrt))]
        out[a] = tree.unflatten([{b: cols[j][k] for j, b in enumerate(problem.wrt)} for k in range(tree.num_leaves)])
    return out


@dataclass(frozen=True)
class Matrix:
    """A derivative as one 2-D array, with the names and sizes of its row and column blocks."""

    kind: str  # ops.MATRICES: jacobian or hessian
    data: np.ndarray
    rows: list[tuple[str, int]]
    cols: list[tuple[str, int]]


def wide(block: Any) -> np.ndarray:
    """A block in float64, or complex128 for a complex one (never dropping an imaginary part)."""
    a = np.asarray(block)
    return a.astype(np.complex128 if a.dtype.kind == "c" else np.float64)


def _size(leaf: Any) -> int:
    return max(1, int(np.prod(leaf.shape)))


def jacobian_matrix(nested: Any, out_struct: Any, diff: Sequence[Any], names: Sequence[str]) -> Matrix:
    """The Jacobian ``J[path in output][a][path in a]`` as one matrix: rows outputs, columns inputs."""
    out_tree: Any = jax.tree.structure(out_struct)
    rows = [(n, _size(leaf)) for n, leaf in leaves_with_names(out_struct, "f")]
    in_blocks = [(name, leaves_with_names(arg, name)) for name, arg in zip(names, diff)]
    cols = [(n, _size(leaf)) for _, leaves in in_blocks for n, leaf in leaves]
    row_blocks: list[list[np.ndarray]] = []
    for (_, size_out), per_arg in zip(rows, out_tree.flatten_up_to(nested)):
        row_blocks.append(
            [
                wide(block).reshape(size_out, _size(leaf))
                for name, leaves in in_blocks
                for (_, leaf), block in zip(leaves, jax.tree.leaves(per_arg[name]))
            ]
        )
    data = np.block(row_blocks) if rows else np.zeros((0, 0))
    return Matrix(JACOBIAN.name, data, rows, cols)


def hessian_matrix(nested: Mapping[str, Any], diff: Sequence[Any], names: Sequence[str]) -> Matrix:
    """The Hessian ``H[a][path in a][b][path in b]`` as one matrix over all input leaves."""
    blocks_in = [(name, leaves_with_names(arg, name)) for name, arg in zip(names, diff)]
    axis = [(n, _size(leaf)) for _, leaves in blocks_in for n, leaf in leaves]
    rows_out: list[list[np.ndarray]] = []
    for (a, a_leaves), arg in zip(blocks_in, diff):
        a_tree: Any = jax.tree.structure(arg)
        for (_, la), per_b in zip(a_leaves, a_tree.flatten_up_to(nested[a])):
            row: list[np.ndarray] = []
            for b, b_leaves in blocks_in:
                for (_, lb), block in zip(b_leaves, jax.tree.leaves(per_b[b])):
                    row.append(wide(block).reshape(_size(la), _size(lb)))
            rows_out.append(row)
    return Matrix(HESSIAN.name, np.block(rows_out), axis, axis)
