"""Large Jacobians: an automatic chunk size, and chunks streamed into a memory-mapped .npy file.

The streamed Jacobian is computed block by block by one compiled program (the block's start index
is an argument, so it compiles once), and each block is written into a memory-mapped file as soon
as it is computed: the device holds one block at a time, the host's page cache the rest, so a
Jacobian larger than memory can be saved. The file is written under a temporary name in the same
folder and renamed when complete.
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

from jaxdiff_cli import engine
from jaxdiff_cli.errors import FunctionError, OutputError
from jaxdiff_cli.save import atomic_path

MEMORY_SHARE = 0.5  # of the free memory, what a Jacobian and its working set may take


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


def auto_chunk(problem: engine.Problem, mode: str, streamed: bool) -> tuple[int, str]:
    """The largest chunk that fits MEMORY_SHARE of free memory, and why.

    The working set per basis vector comes from XLA's own estimate of the compiled block at two
    chunk sizes (a straight line through them), not from a guess.
    """
    h = problem.of_diff(problem.primals)
    flat_f, x, n, m = engine.flat_function(h, problem.diff(problem.primals))
    total = n if mode == "fwd" else m
    item = x.dtype.itemsize
    t1 = _temp_bytes(engine.jacobian_block(flat_f, x, n, m, mode, 1))
    k = min(8, total)
    tk = _temp_bytes(engine.jacobian_block(flat_f, x, n, m, mode, k)) if k > 1 else t1
    per = max((tk - t1) / max(k - 1, 1), (n + m) * item)
    base = max(t1 - per, 0)
    jac = 0 if streamed else m * n * item
    budget = MEMORY_SHARE * free_bytes(jax.devices()[0]) - jac - base
    chunk = int(max(1, min(total, budget // per)))
    return chunk, f"{chunk} of {total} basis vectors: {per / 2**10:.0f} KiB each, {budget / 2**20:.0f} MiB available"


def jacobian_to_npy(
    problem: engine.Problem, mode: str, chunk: int, path: Path, progress: Callable[[int, int], None] | None = None
) -> engine.Result:
    """Compute the Jacobian chunk by chunk straight into ``path`` (.npy, memory-mapped).

    One differentiated array and one output array: the file has shape out.shape + in.shape, as the
    jacobian command prints it. Otherwise the flat (outputs, inputs) matrix, in pytree leaf order.
    """
    h = problem.of_diff(problem.primals)
    diff = problem.diff(problem.primals)
    flat_f, x, n, m = engine.flat_function(h, diff)
    total = n if mode == "fwd" else m
    chunk = max(1, min(chunk, total))
    out_leaves = jax.tree.leaves(engine.output_shape(problem))
    in_leaves = jax.tree.leaves(diff)
    shape = (m, n)
    if len(out_leaves) == 1 and len(in_leaves) == 1:
        shape = tuple(out_leaves[0].shape) + tuple(in_leaves[0].shape)
    t0 = time.perf_counter()
    try:
        block = jax.jit(engine.jacobian_block(flat_f, x, n, m, mode, chunk)).lower(jnp.int32(0)).compile()
    except Exception as exc:
        from jaxdiff_cli.functions import describe_user_error

        raise FunctionError(f"the function failed to trace: {describe_user_error(exc)}", where=problem.where) from None
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    starts = engine.block_starts(total, chunk)
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
    saved = np.load(path, mmap_mode="r")  # for display: only what is shown is read back
    name = problem.wrt[0] if len(problem.wrt) == 1 else "flat"
    info = {"mode": mode, "chunk_size": chunk, "streamed_to": str(path), "blocks": len(starts)}
    if shape == (m, n) and not (len(out_leaves) == 1 and len(in_leaves) == 1):
        info["layout"] = "flat (outputs, inputs), pytree leaves in order"
    return engine.Result("jacobian", {"jacobian": {name: saved}}, info=info, timing=engine.Timing(compile_s, run_s))
