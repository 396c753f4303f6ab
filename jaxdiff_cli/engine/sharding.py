"""Spreading one operation over the devices of a 1-D mesh, with JAX's own machinery.

- Batched products: the batch axis is sharded (``NamedSharding(mesh, P("d"))``), the primal point is
  replicated, and jit partitions the vmapped program. A batch that does not divide evenly is
  padded with zeros and the padding sliced off the result.
- Jacobians and Hessians: the basis vectors are sharded with ``shard_map``; each device pushes
  (fwd) or pulls (rev) its own share, ``chunk`` at a time if asked, and the blocks are gathered.
- With several processes (runtime.py joins them) the mesh spans every process's devices: arrays
  are built on every process from the same host data with ``jax.make_array_from_callback``, and
  results are gathered to every process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdiff_cli.engine.layout import flat_function, nest_hessian, nest_jacobian, unflatten_jacobian
from jaxdiff_cli.engine.plans import hvp_product, jacobian_mode, plan_hvp, plan_jvp, plan_vjp
from jaxdiff_cli.engine.problem import Plan, Problem, output_shape, require_scalar
from jaxdiff_cli.errors import DeviceError
from jaxdiff_cli.ops import HESSIAN, HVP, JACOBIAN, JVP, VJP

AXIS = "d"


def make_mesh(devices: str | int) -> Any:
    """A 1-D mesh over all devices (every process's) or the first N."""
    found = jax.devices()
    if devices == "all":
        chosen = found
    else:
        n = int(devices)
        if not 1 <= n <= len(found):
            raise DeviceError(
                f"{n} devices asked for, but JAX sees {len(found)}",
                where="devices",
                hint="on the CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N gives N devices",
            )
        chosen = found[:n]
    return Mesh(np.array(chosen), (AXIS,))


def _global(x: Any, sharding: Any) -> Any:
    """A global array from the same host data on every process (works with one process too)."""
    data = np.asarray(x)
    return jax.make_array_from_callback(data.shape, sharding, lambda index: data[index])


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.tree.map(lambda a: _global(a, NamedSharding(mesh, P())), tree)


def shard_leading(tree: Any, mesh: Mesh) -> tuple[Any, int]:
    """Pad every leaf's leading axis to a multiple of the device count, then shard it; returns the
    padded tree and the original length."""
    leaves = jax.tree.leaves(tree)
    length = int(np.shape(leaves[0])[0])
    padded = math.ceil(length / mesh.size) * mesh.size

    def pad(a: Any) -> Any:
        a = np.asarray(a)
        if padded != length:
            a = np.concatenate([a, np.zeros((padded - length, *a.shape[1:]), a.dtype)])
        return _global(a, NamedSharding(mesh, P(AXIS)))

    return jax.tree.map(pad, tree), length


def gather(tree: Any) -> Any:
    """Every result as host NumPy arrays, on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), tree)
    return jax.tree.map(np.asarray, tree)


def sharded_basis(
    products: Callable[[Any, Any], Any], x: Any, total: int, mesh: Mesh, chunk: int | None
) -> Callable[[Any, Any], Any]:
    """A jit-able function (x, indices) -> the products for every basis index, sharded over the mesh.

    ``products(x, onehots)`` maps a batch of one-hot vectors to their products (rows). Each device
    gets ``indices`` of its own; with ``chunk`` it goes through them chunk by chunk (lax.map).
    """

    def local(x: Any, idx: Any) -> Any:
        def some(ids: Any) -> Any:
            onehot = (ids[:, None] == jnp.arange(total)[None, :]).astype(x.dtype)
            return products(x, onehot)

        if chunk is None or chunk >= idx.shape[0]:
            return some(idx)
        blocks = jax.lax.map(some, idx.reshape(-1, chunk)) if idx.shape[0] % chunk == 0 else None
        if blocks is not None:
            return blocks.reshape(idx.shape[0], -1)
        return jax.lax.map(lambda i: some(i[None])[0], idx, batch_size=chunk)

    # The pullback's residuals are the same on every device: the varying-axis check does not apply.
    return jax.shard_map(local, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(AXIS), check_vma=False)


def basis_indices(total: int, mesh: Mesh) -> Any:
    padded = math.ceil(total / mesh.size) * mesh.size
    # Padding indices point past the end: their one-hot vectors are zero, their rows dropped.
    return _global(np.arange(padded, dtype=np.int32), NamedSharding(mesh, P(AXIS)))


def _sliced(plan: Plan, key: str, length: int, args: tuple[Any, ...], info: dict[str, Any]) -> Plan:
    """The plan on sharded arguments: results gathered, the padding cut off ``outputs[key]``."""
    original = plan.finish

    def finish(out: Any) -> dict[str, Any]:
        outputs: dict[str, Any] = original(gather(out))
        outputs[key] = jax.tree.map(lambda a: a[:length], outputs[key])
        return outputs

    return replace(plan, args=args, finish=finish, info={**plan.info, **info, "batch": length})


def shard_plan(
    problem: Problem,
    op: str,
    mesh: Mesh,
    *,
    mode: str | None = None,
    chunk: int | None = None,
    vectors: Any = None,
    batch: int | None = None,
) -> Plan | None:
    """The plan of ``op`` spread over ``mesh``, or None when the operation has nothing to shard.

    ``vectors`` are the tangents (jvp, hvp) or the cotangent (vjp), with their ``batch`` size.
    """
    primals = replicate(problem.primals, mesh)
    info = {"devices": mesh.size}
    if op in (JVP.name, VJP.name, HVP.name):
        if batch is None:
            return None
        sharded, length = shard_leading(vectors, mesh)
        padded = length + (-length) % mesh.size
        if op == JVP.name:
            plan = plan_jvp(problem, sharded, padded)
        elif op == VJP.name:
            plan = plan_vjp(problem, sharded, padded)
        else:
            plan = plan_hvp(problem, sharded, mode or str(HVP.default), padded)
        return _sliced(plan, op, length, (primals, sharded), info)
    if op == JACOBIAN.name:
        return _jacobian_plan(problem, primals, mode or str(JACOBIAN.default), chunk, mesh)
    if op == HESSIAN.name:
        return _hessian_plan(problem, primals, chunk, mesh)
    return None


def _jacobian_plan(problem: Problem, primals: Any, mode: str, chunk: int | None, mesh: Mesh) -> Plan:
    mode, info = jacobian_mode(problem, mode)
    out_struct = output_shape(problem)
    diff = problem.diff(problem.primals)
    _, _, n, m = flat_function(problem.of_diff(problem.primals), diff)
    total = n if mode == "fwd" else m

    def products(flat_f: Any) -> Callable[[Any, Any], Any]:
        if mode == "fwd":
            return lambda x, onehot: jax.vmap(lambda e: jax.jvp(flat_f, (x,), (e,))[1])(onehot)
        return lambda x, onehot: jax.vmap(lambda c: jax.vjp(flat_f, x)[1](c)[0])(onehot)

    def g(primals: Any, idx: Any) -> Any:
        flat_f, x, _, _ = flat_function(problem.of_diff(primals), problem.diff(primals))
        return sharded_basis(products(flat_f), x, total, mesh, chunk)(x, idx)

    def finish(rows: Any) -> dict[str, Any]:
        rows = gather(rows)[:total]
        flat = rows.T if mode == "fwd" else rows
        return {JACOBIAN.result: nest_jacobian(problem, out_struct, unflatten_jacobian(flat, out_struct, diff))}

    info.update(devices=mesh.size, **({"chunk_size": chunk} if chunk else {}))
    return Plan(
        JACOBIAN.name, g, (primals, basis_indices(total, mesh)), finish, problem.where, info, max_program=problem.max_program
    )


def _hessian_plan(problem: Problem, primals: Any, chunk: int | None, mesh: Mesh) -> Plan:
    require_scalar(problem, HESSIAN.name)
    diff = problem.diff(problem.primals)
    _, _, n, _ = flat_function(problem.of_diff(problem.primals), diff)

    def g(primals: Any, idx: Any) -> Any:
        flat_f, x, _, _ = flat_function(problem.of_diff(primals), problem.diff(primals))

        def hvps(x: Any, onehot: Any) -> Any:
            return jax.vmap(lambda e: hvp_product(lambda y: flat_f(y)[0], x, e))(onehot)

        return sharded_basis(hvps, x, n, mesh, chunk)(x, idx)

    def finish(rows: Any) -> dict[str, Any]:
        h = gather(rows)[:n].T  # row i is H e_i: column i
        # A Hessian is the Jacobian of the gradient, whose structure is the differentiated arguments':
        # per_arg[j][i] is argument i's tree of argument j's trees.
        per_arg = unflatten_jacobian(h, diff, diff)
        return {HESSIAN.result: nest_hessian(problem, diff, lambda i, j: per_arg[j][i])}

    info = {"mode": "fwd-rev", "devices": mesh.size, **({"chunk_size": chunk} if chunk else {})}
    return Plan(HESSIAN.name, g, (primals, basis_indices(n, mesh)), finish, problem.where, info, max_program=problem.max_program)
