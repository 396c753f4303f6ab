"""Jacobians a chunk of basis vectors at a time: in one program, or streamed into a .npy file.

The basis vectors are made inside the program from their indices (no identity matrix is stored),
and each chunk is written in place into one (outputs x inputs) buffer, so memory is the Jacobian
plus one chunk's working set. The streamed Jacobian is computed block by block by one compiled
program (the block's start index is an argument, so it compiles once), each block written into a
memory-mapped file as soon as it is computed: the device holds one block at a time, the host's page
cache the rest, so a Jacobian larger than memory can be saved. ``auto_chunk`` sizes the chunk from
free memory and XLA's own working-set estimate.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_cli.atomic import atomic_path
from jaxdiff_cli.engine.layout import flat_function, nest_jacobian, unflatten_jacobian
from jaxdiff_cli.engine.problem import Problem, Result, Timing, output_shape
from jaxdiff_cli.errors import OutputError, function_failed
from jaxdiff_cli.ops import JACOBIAN

MEMORY_SHARE = 0.5  # of the free memory, what a Jacobian and its working set may take


def jacobian_block(flat_f: Callable[[Any], Any], x: Any, n: int, m: int, mode: str, chunk: int) -> Callable[[Any], Any]:
    """A function of a start index: ``chunk`` columns (fwd, shape (m, chunk)) or rows (rev, (chunk, n))."""
    if mode == "fwd":

        def columns(start: Any) -> Any:
            onehot = (start + jnp.arange(chunk))[:, None] == jnp.arange(n)[None, :]
            cols = jax.vmap(lambda e: jax.jvp(flat_f, (x,), (e,))[1])(onehot.astype(x.dtype))
            return cols.T  # a chunk-sized transpose, never a full-size one

        return columns
    _, pull = jax.vjp(flat_f, x)

    def rows(start: Any) -> Any:
        onehot = (start + jnp.arange(chunk))[:, None] == jnp.arange(m)[None, :]
        return jax.vmap(lambda e: pull(e)[0])(onehot.astype(x.dtype))

    return rows


def block_starts(total: int, chunk: int) -> list[int]:
    """Start indices of the blocks; the last is moved back to end at ``total`` (no padding, no slicing)."""
    return sorted({min(b * chunk, total - chunk) for b in range(-(-total // chunk))})


def chunked_flat_jacobian(h: Callable[..., Any], diff: tuple[Any, ...], mode: str, chunk: int) -> Any:
    """The flat (m, n) Jacobian, ``chunk`` basis vectors at a time, written in place into one buffer.

    A fori_loop of dynamic_update_slice: XLA updates the buffer in place, so memory is the Jacobian
    plus one chunk's working set (lax.map would stack the chunks, and forward mode then transpose).
    """
    flat_f, x, n, m = flat_function(h, diff)
    total = n if mode == "fwd" else m
    chunk = max(1, min(chunk, total))
    block = jacobian_block(flat_f, x, n, m, mode, chunk)
    starts = jnp.asarray(block_starts(total, chunk))

    def body(i: Any, jac: Any) -> Any:
        start = starts[i]
        where = (0, start) if mode == "fwd" else (start, 0)
        return jax.lax.dynamic_update_slice(jac, block(start), where)

    return jax.lax.fori_loop(0, starts.size, body, jnp.zeros((m, n), x.dtype))


def free_bytes(device: Any) -> int:
    """Free memory of the device: the allocator's figures on an accelerator, MemAvailable on the CPU."""
    with contextlib.suppress(Exception):
        stats = device.memory_stats()
        if stats and "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 2**31  # unknown: assume 2 GiB


def _temp_bytes(block: Callable[[Any], Any]) -> int:
    compiled = jax.jit(block).lower(jnp.int32(0)).compile()
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # not every backend reports it
        return 0
    return int(analysis.temp_size_in_bytes) if analysis is not None else 0


def auto_chunk(problem: Problem, mode: str, streamed: bool) -> tuple[int, str]:
    """The largest chunk that fits MEMORY_SHARE of free memory, and why.

    The working set per basis vector comes from XLA's own estimate of the compiled block at two
    chunk sizes (a straight line through them), not from a guess.
    """
    output_shape(problem)  # the function's own program bounded (an expression's) before any block compiles
    flat_f, x, n, m = flat_function(problem.of_diff(problem.primals), problem.diff(problem.primals))
    total = n if mode == "fwd" else m
    item = x.dtype.itemsize
    t1 = _temp_bytes(jacobian_block(flat_f, x, n, m, mode, 1))
    k = min(8, total)
    tk = _temp_bytes(jacobian_block(flat_f, x, n, m, mode, k)) if k > 1 else t1
    per = max((tk - t1) / max(k - 1, 1), (n + m) * item)
    base = max(t1 - per, 0)
    jac = 0 if streamed else m * n * item
    budget = MEMORY_SHARE * free_bytes(jax.devices()[0]) - jac - base
    chunk = int(max(1, min(total, budget // per)))
    return chunk, f"{chunk} of {total} basis vectors: {per / 2**10:.0f} KiB each, {budget / 2**20:.0f} MiB available"


def jacobian_to_npy(
    problem: Problem, mode: str, chunk: int, path: Path, progress: Callable[[int, int], None] | None = None
) -> Result:
    """Compute the Jacobian chunk by chunk straight into ``path`` (.npy, memory-mapped).

    One differentiated array and one output array: the file has shape out.shape + in.shape, as the
    jacobian command prints it. Otherwise the flat (outputs, inputs) matrix, in pytree leaf order.
    The result's blocks are views of the file, named as the jacobian command names them.
    """
    diff = problem.diff(problem.primals)
    flat_f, x, n, m = flat_function(problem.of_diff(problem.primals), diff)
    total = n if mode == "fwd" else m
    chunk = max(1, min(chunk, total))
    out_struct = output_shape(problem)
    out_leaves = jax.tree.leaves(out_struct)
    in_leaves = jax.tree.leaves(diff)
    single = len(out_leaves) == 1 and len(in_leaves) == 1
    shape = tuple(out_leaves[0].shape) + tuple(in_leaves[0].shape) if single else (m, n)
    t0 = time.perf_counter()
    try:
        block = jax.jit(jacobian_block(flat_f, x, n, m, mode, chunk)).lower(jnp.int32(0)).compile()
    except Exception as exc:
        raise function_failed("trace", exc, problem.where) from exc
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    starts = block_starts(total, chunk)
    try:
        with atomic_path(path) as tmp:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=x.dtype, shape=shape)
            flat = mm.reshape(m, n)
            for i, start in enumerate(starts):
                part = np.asarray(block(jnp.int32(start)))
                if mode == "fwd":
                    flat[:, start : start + chunk] = part
                else:
                    flat[start : start + chunk, :] = part
                if progress is not None:
                    progress(i + 1, len(starts))
            mm.flush()
            del mm, flat
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", where=f"-o {path}") from None
    run_s = time.perf_counter() - t1
    saved = np.load(path, mmap_mode="r").reshape(m, n)  # for display: only what is shown is read back
    info: dict[str, Any] = {"mode": mode, "chunk_size": chunk, "streamed_to": str(path), "blocks": len(starts)}
    if not single:
        info["layout"] = "flat (outputs, inputs), pytree leaves in order"
    jac = nest_jacobian(problem, out_struct, unflatten_jacobian(saved, out_struct, diff))
    return Result(JACOBIAN.name, {JACOBIAN.result: jac}, info=info, timing=Timing(compile_s, run_s))
