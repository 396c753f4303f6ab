"""Spreading work over devices and hosts with JAX's own machinery.

- A 1-D ``Mesh`` over the devices (all, or the first N), axis ``"d"``.
- Batched products: the batch axis is sharded (``NamedSharding(mesh, P("d"))``), the primal point is
  replicated, and jit partitions the vmapped program. A batch that does not divide evenly is
  padded with zeros and the padding sliced off the result.
- Jacobians and Hessians: the basis vectors are sharded with ``shard_map``; each device pushes
  (fwd) or pulls (rev) its own share, ``chunk`` at a time if asked, and the blocks are gathered.
- Several hosts: ``jax.distributed.initialize`` (gloo collectives on the CPU), after which the
  mesh spans every process's devices. Arrays are built on every process from the same spec, with
  ``jax.make_array_from_callback``, and results are gathered to every process; only process 0
  prints and writes.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxdiff_cli.errors import DeviceError, UsageError

AXIS = "d"


@dataclass(frozen=True)
class Cluster:
    """Several processes (hosts): where the coordinator is, how many, which one this is."""

    coordinator: str
    num_processes: int
    process_id: int
    timeout_s: int = field(default_factory=lambda: int(os.environ.get("JAXDIFF_CLUSTER_TIMEOUT", "60")))


def initialize(cluster: Cluster, platform: str) -> None:
    """Join the cluster before any JAX backend starts; a clear error instead of a hang."""
    import jax

    if not 0 <= cluster.process_id < cluster.num_processes:
        raise UsageError(f"process id {cluster.process_id} is not in 0..{cluster.num_processes - 1}", where="--process-id")
    if cluster.process_id != 0:
        _reach(cluster)
    if platform in ("cpu", "auto"):
        # XLA:CPU needs a collectives implementation for cross-process programs.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
            initialization_timeout=cluster.timeout_s,
        )
    except Exception as exc:  # the coordinator is unreachable, or the cluster disagrees
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeviceError(
            f"cannot join the cluster at {cluster.coordinator} as process {cluster.process_id} of "
            f"{cluster.num_processes} within {cluster.timeout_s} s: {first[:200]}",
            where="--coordinator",
            hint="is process 0 running, and the address reachable?",
        ) from None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while.

    Gloo's C++ code prints "[Gloo] Rank 0 is connected ..." straight to fd 1 when its context starts,
    which would corrupt the one JSON document that --json promises on stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _reach(cluster: Cluster) -> None:
    """Wait for the coordinator's port to answer, up to the timeout.

    JAX's client does not raise when it cannot reach the coordinator: it aborts the process from
    C++. Checking the port first turns the usual failure (process 0 not started, wrong address)
    into a clean error. (Process 0 waiting for peers that never come still ends in JAX's own abort,
    after the same timeout: there is no hang either way.)
    """
    import socket
    import time

    host, sep, port = cluster.coordinator.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"expected HOST:PORT, got {cluster.coordinator!r}", where="--coordinator")
    deadline = time.monotonic() + cluster.timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise DeviceError(
                    f"cannot reach the coordinator {cluster.coordinator} within {cluster.timeout_s} s ({exc.strerror or exc})",
                    where="--coordinator",
                    hint="start process 0 first, or check the address; JAXDIFF_CLUSTER_TIMEOUT sets the wait",
                ) from None
            time.sleep(0.2)


def make_mesh(devices: str | int) -> Any:
    """A 1-D mesh over all devices (every process's) or the first N."""
    import jax
    from jax.sharding import Mesh

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


def parse_devices(text: Any, where: str) -> str | int | None:
    if text is None:
        return None
    if text == "all":
        return "all"
    if isinstance(text, int) and not isinstance(text, bool) and text >= 1:
        return text
    if isinstance(text, str) and text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"{text!r} is not all or a positive number of devices", where=where)


def _global(x: Any, sharding: Any) -> Any:
    """A global array from the same host data on every process (works with one process too)."""
    import jax

    data = np.asarray(x)
    return jax.make_array_from_callback(data.shape, sharding, lambda index: data[index])


def replicate(tree: Any, mesh: Any) -> Any:
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    return jax.tree.map(lambda a: _global(a, NamedSharding(mesh, P())), tree)


def shard_leading(tree: Any, mesh: Any) -> tuple[Any, int]:
    """Pad every leaf's leading axis to a multiple of the device count, then shard it; returns the
    padded tree and the original length."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

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
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), tree)
    return jax.tree.map(np.asarray, tree)


def sharded_basis(
    products: Callable[[Any, Any], Any], x: Any, total: int, mesh: Any, chunk: int | None
) -> Callable[[Any, Any], Any]:
    """A jit-able function (x, indices) -> the products for every basis index, sharded over the mesh.

    ``products(x, onehots)`` maps a batch of one-hot vectors to their products (rows). Each device
    gets ``indices`` of its own; with ``chunk`` it goes through them chunk by chunk (lax.map).
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec as P

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


def basis_indices(total: int, mesh: Any) -> Any:
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    padded = math.ceil(total / mesh.size) * mesh.size
    # Padding indices point past the end: their one-hot vectors are zero, their rows dropped.
    return _global(np.arange(padded, dtype=np.int32), NamedSharding(mesh, P(AXIS)))


# --------------------------------------------------------------------------- sharded operations


def _sliced(plan: Any, key: str, length: int) -> None:
    """Gather the results, and cut the padding off the batch axis of ``outputs[key]``."""
    import jax

    original = plan.finish

    def finish(out: Any) -> dict[str, Any]:
        outputs: dict[str, Any] = original(gather(out))
        outputs[key] = jax.tree.map(lambda a: a[:length], outputs[key])
        return outputs

    plan.finish = finish


def shard_plan(prep: Any, op: str, mode: str | None, chunk: int | None, mesh: Any) -> Any:
    """The engine plan of ``op`` spread over ``mesh``, or None when the operation has nothing to shard."""
    from jaxdiff_cli import engine, pipeline

    problem = prep.problem
    primals = replicate(problem.primals, mesh)
    info = {"devices": mesh.size}
    if op in ("jvp", "hvp"):
        tangents, batch = pipeline._tangents(prep, op)
        if batch is None:
            return None
        sharded, length = shard_leading(tangents, mesh)
        padded = length + (-length) % mesh.size
        plan = (
            engine.plan_jvp(problem, sharded, padded)
            if op == "jvp"
            else engine.plan_hvp(problem, sharded, mode or "fwd-rev", padded)
        )
        plan.args = (primals, sharded)
        _sliced(plan, op, length)
        plan.info.update(info, batch=length)
        return plan
    if op == "vjp":
        cotangent, batch = pipeline._cotangents(prep)
        if batch is None:
            return None
        sharded, length = shard_leading(cotangent, mesh)
        plan = engine.plan_vjp(problem, sharded, length + (-length) % mesh.size)
        plan.args = (primals, sharded)
        _sliced(plan, "vjp", length)
        plan.info.update(info, batch=length)
        return plan
    if op == "jacobian":
        return _jacobian_plan(problem, primals, mode or "auto", chunk, mesh)
    if op == "hessian":
        return _hessian_plan(problem, primals, chunk, mesh)
    return None


def _jacobian_plan(problem: Any, primals: Any, mode: str, chunk: int | None, mesh: Any) -> Any:
    import jax

    from jaxdiff_cli import engine

    info: dict[str, Any] = {"mode": mode}
    if mode == "auto":
        mode, reason = engine.choose_mode(problem)
        info = {"mode": mode, "auto": True, "reason": reason}
    out_struct = engine.output_shape(problem)
    diff = problem.diff(problem.primals)
    _, _, n, m = engine.flat_function(problem.of_diff(problem.primals), diff)
    total = n if mode == "fwd" else m

    def products(flat_f: Any) -> Callable[[Any, Any], Any]:
        if mode == "fwd":
            return lambda x, onehot: jax.vmap(lambda e: jax.jvp(flat_f, (x,), (e,))[1])(onehot)
        return lambda x, onehot: jax.vmap(lambda c: jax.vjp(flat_f, x)[1](c)[0])(onehot)

    def g(primals: Any, idx: Any) -> Any:
        flat_f, x, _, _ = engine.flat_function(problem.of_diff(primals), problem.diff(primals))
        return sharded_basis(products(flat_f), x, total, mesh, chunk)(x, idx)

    def finish(rows: Any) -> dict[str, Any]:
        rows = gather(rows)[:total]
        flat = rows.T if mode == "fwd" else rows
        return {"jacobian": engine.by_arg(problem, engine.unflatten_jacobian(flat, out_struct, diff))}

    info.update(devices=mesh.size, **({"chunk_size": chunk} if chunk else {}))
    return engine.Plan("jacobian", g, (primals, basis_indices(total, mesh)), finish, problem.where, info)


def _hessian_plan(problem: Any, primals: Any, chunk: int | None, mesh: Any) -> Any:
    import jax

    from jaxdiff_cli import engine

    engine.require_scalar(problem, "hessian")
    diff = problem.diff(problem.primals)
    _, _, n, _ = engine.flat_function(problem.of_diff(problem.primals), diff)

    def g(primals: Any, idx: Any) -> Any:
        flat_f, x, _, _ = engine.flat_function(problem.of_diff(primals), problem.diff(primals))
        grad = jax.grad(lambda y: flat_f(y)[0])
        hvps = lambda x, onehot: jax.vmap(lambda e: jax.jvp(grad, (x,), (e,))[1])(onehot)  # noqa: E731
        return sharded_basis(hvps, x, n, mesh, chunk)(x, idx)

    def finish(rows: Any) -> dict[str, Any]:
        h = gather(rows)[:n].T  # row i is H e_i: column i
        # A Hessian is the Jacobian of the gradient, whose structure is the differentiated arguments':
        # per_arg[j][i] is argument i's tree of argument j's trees.
        per_arg = engine.unflatten_jacobian(h, diff, diff)
        return {"hessian": engine.nest_hessian(problem, diff, lambda i, j: per_arg[j][i])}

    info = {"mode": "fwd-rev", "devices": mesh.size, **({"chunk_size": chunk} if chunk else {})}
    return engine.Plan("hessian", g, (primals, basis_indices(n, mesh)), finish, problem.where, info)
