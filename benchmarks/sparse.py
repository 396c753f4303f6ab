"""Sparse Jacobians and Hessians: jaxdiff against asdex called directly, and against dense jacfwd/jacrev.

    make bench-sparse                   # or: .venv/bin/python benchmarks/sparse.py [--max-n N] [--out F]

Three problems at n = 10^3, 4096, 10^4, 10^5, 10^6: a 1-D banded residual (tridiagonal Jacobian),
the 2-D Laplacian residual with a cubic term (five diagonals), and the Hessian of a sum of
neighbour interactions (a chain). Each size runs in fresh processes, so that peak memory (the
kernel's VmHWM) is each side's own:

- jaxdiff's engine: detection, coloring (no cache), compile, first call, peak memory; then, in the
  same process, steady state interleaved call by call with asdex called directly on the same
  coloring (its documented ``jax.jit(asdex.jacobian_from_coloring(f, coloring))``, which returns a
  BCOO, and the data-only ``decompress_data(compressed(x))``, which returns what jaxdiff returns);
  up to n = 4096 also dense ``jax.jacfwd`` / ``jax.jacrev`` (``jax.hessian``), jitted.
- asdex alone: detection, coloring, first call (compile + run), steady state, peak memory.
- the whole CLI (the 2-D Laplacian at 10^5 and 10^6): one cold run (empty caches) and one warm run
  (pattern and program cached), wall time and peak memory (``/usr/bin/time``).

Writes benchmarks/sparse_results.json; benchmarks/report.py adds it to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIZES = (1000, 4096, 10**4, 10**5, 10**6)
PROBLEMS = ("banded", "laplacian", "chain")
DENSE_MAX = 4096  # dense jacfwd / jacrev are timed up to this size
TARGETS = {"vs_asdex": 1.05, "cold_s": 60.0, "warm_s": 10.0}

COMMON = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
import jax, jax.numpy as jnp, numpy as np

def build(name, n):
    if name == "banded":  # 1-D residual 2x_i - x_(i-1) - x_(i+1) + x_i^3: a tridiagonal Jacobian
        def f(x):
            p = jnp.pad(x, 1)
            return 2 * x - p[:-2] - p[2:] + x**3
        return f, jnp.linspace(0.1, 1.0, n), "jacobian"
    if name == "laplacian":  # configs/pde_laplacian2d_sparse.yaml's residual on a k x k grid: five diagonals
        k = int(round(n ** 0.5))
        forcing = jnp.ones((k, k))
        def f(u):
            p = jnp.pad(u, 1)
            return ((4 * u - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]) * 16.0 + u**3 - forcing).ravel()
        return f, jax.random.normal(jax.random.PRNGKey(0), (k, k)), "jacobian"
    if name == "chain":  # sum of neighbour interactions: a tridiagonal Hessian
        def f(x):
            return jnp.sum((x[1:] - x[:-1]) ** 4) + jnp.sum(jnp.cos(x))
        return f, jnp.linspace(0.1, 1.0, n), "hessian"
    raise ValueError(name)

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    return 0

def steady(fns, min_time, cap=2000):
    # Medians of the calls, interleaved call by call (the machine's noise falls on all alike), in an
    # order that rotates every round (none always runs first).
    times = [[] for _ in fns]
    start = time.perf_counter()
    k = 0
    while len(times[0]) < 7 or (time.perf_counter() - start < min_time * len(fns) and len(times[0]) < cap):
        for i in range(len(fns)):
            j = (i + k) % len(fns)
            t0 = time.perf_counter()
            jax.block_until_ready(fns[j]())
            times[j].append(time.perf_counter() - t0)
        k += 1
    medians = [statistics.median(t) for t in times]
    # each round's ratio to the first function, then their median: robust when a round is preempted
    paired = [statistics.median(a / b for a, b in zip(times[0], t)) for t in times[1:]]
    return medians, paired

name, n, min_time = {name!r}, {n}, {min_time}
f, x, kind = build(name, n)
"""

JAXDIFF_PROBE = (
    COMMON
    + """
import asdex, tempfile
from jaxdiff_cli.engine import sparse
from jaxdiff_cli.engine.problem import Problem, call, compile_plan
p = Problem(fn=f, names=("x",), primals=(x,), argnums=(0,))
cache = __import__("pathlib").Path(tempfile.mkdtemp())
plan = sparse.plan_sparse(p, kind, "auto", None, cache)
info = plan.info["sparse"]
compiled, compile_s = compile_plan(plan)
t0 = time.perf_counter()
call(compiled, plan)
first_s = time.perf_counter() - t0
out = {{"detect_s": info["detect_s"], "color_s": info["color_s"], "compile_s": compile_s, "first_call_s": first_s,
       "nnz": info["nnz"], "colors": info["colors"], "coloring": info["coloring"], "passes": info["passes"],
       "n": int(x.size), "peak_bytes": peak()}}
colored, _ = sparse.colored_pattern(p, kind, "auto", cache)  # the same coloring, from the cache
if kind == "jacobian":
    bcoo = jax.jit(asdex.jacobian_from_coloring(f, colored))
    compress = asdex.compressed_jacobian_from_coloring(f, colored)
else:
    bcoo = jax.jit(asdex.hessian_from_coloring(f, colored))
    compress = asdex.compressed_hessian_from_coloring(f, colored)
data_only = jax.jit(lambda x: asdex.decompress_data(compress(x), colored))
ours = np.asarray(call(compiled, plan))
from jax.experimental.sparse import BCOO
assert np.array_equal(ours, np.asarray(data_only(x)))
fns = [lambda: compiled(*plan.call_args), lambda: data_only(x)]
try:  # one block (argnums (0,), as jaxdiff detects)
    (block,) = jax.tree.leaves(bcoo(x), is_leaf=lambda a: isinstance(a, BCOO))
    assert np.array_equal(ours, np.asarray(block.data))
    fns.append(lambda: bcoo(x))
except Exception:  # asdex's BCOO reshape overflows int32 past 2^31 entries (a 10^6 x 10^6 block of a 2-D input)
    pass
times, paired = steady(fns, min_time)
out.update(steady_s=times[0], asdex_data_s=times[1], asdex_bcoo_s=times[2] if len(times) > 2 else None)
out.update(ratio_data=paired[0], ratio_bcoo=paired[1] if len(paired) > 1 else None)
if n <= {dense_max}:
    dense = [jax.jit(jax.jacfwd(f)), jax.jit(jax.jacrev(f))] if kind == "jacobian" else [jax.jit(jax.hessian(f))]
    for d in dense:
        jax.block_until_ready(d(x))
    ref = np.asarray(dense[0](x)).reshape(plan.finish(ours)[kind].shape)
    sm = plan.finish(ours)[kind]
    assert np.allclose(sm.dense(), ref, rtol=1e-5, atol=1e-5)
    times, _ = steady([(lambda d=d: d(x)) for d in dense], min_time, cap=30)
    out["dense_fwd_s"] = times[0]
    out["dense_rev_s"] = times[1] if len(times) > 1 else None
print(json.dumps(out))
"""
)

ASDEX_PROBE = (
    COMMON
    + """
import asdex, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
pattern = (asdex.jacobian_sparsity if kind == "jacobian" else asdex.hessian_sparsity)(f, x)
detect_s = time.perf_counter() - t0
t0 = time.perf_counter()
if kind == "jacobian":
    colored = asdex.jacobian_coloring_from_sparsity(pattern)
    fn = jax.jit(asdex.jacobian_from_coloring(f, colored))
    compress = asdex.compressed_jacobian_from_coloring(f, colored)
else:
    colored = asdex.hessian_coloring_from_sparsity(pattern)
    fn = jax.jit(asdex.hessian_from_coloring(f, colored))
    compress = asdex.compressed_hessian_from_coloring(f, colored)
color_s = time.perf_counter() - t0
output = "bcoo"
t0 = time.perf_counter()
try:
    jax.block_until_ready(fn(x))
except Exception:  # asdex's BCOO reshape overflows int32 past 2^31 entries (a 10^6 x 10^6 block of a 2-D input)
    output = "data (BCOO failed)"
    fn = jax.jit(lambda x: asdex.decompress_data(compress(x), colored))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(x))
first_s = time.perf_counter() - t0
(steady_s,), _ = steady([lambda: fn(x)], min_time)
print(json.dumps({{"detect_s": detect_s, "color_s": color_s, "first_call_s": first_s, "steady_s": steady_s, "output": output,
                  "colors": int(colored.num_colors), "nnz": int(pattern.nnz), "peak_bytes": peak()}}))
"""
)


SPARSEJAC_PROBE = (
    COMMON
    + """
# sparsejac (not a dependency): given asdex's pattern, its networkx coloring and its steady state
import asdex, sparsejac
from jax.experimental import sparse as jsparse
from jaxdiff_cli.engine import sparse
from jaxdiff_cli.engine.problem import Problem, compile_plan
p = Problem(fn=f, names=("x",), primals=(x,), argnums=(0,))
plan = sparse.plan_sparse(p, kind, "fwd", None, None)
compiled, _ = compile_plan(plan)
pat = asdex.jacobian_sparsity(f, x)
bcoo = jsparse.BCOO((jnp.ones(pat.nnz), jnp.stack([jnp.asarray(pat.rows), jnp.asarray(pat.cols)], 1)), shape=pat.shape)
t0 = time.perf_counter()
sj = jax.jit(sparsejac.jacfwd(f, bcoo))
color_s = time.perf_counter() - t0
jax.block_until_ready(sj(x))
times, paired = steady([lambda: compiled(*plan.call_args), lambda: sj(x)], min_time)
print(json.dumps({{"n": n, "color_s": color_s, "steady_s": times[0], "sparsejac_s": times[1], "ratio": paired[0],
                  "version": __import__("importlib.metadata").metadata.version("sparsejac")}}))
"""
)


def probe(code: str) -> dict[str, Any]:
    res = subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def timed_cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One jaxdiff run: its wall time and peak resident memory (GNU time's %M)."""
    res = subprocess.run(["/usr/bin/time", "-f", "%e %M", str(BIN / "jaxdiff"), *args], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    wall, kib = res.stderr.strip().splitlines()[-1].split()
    return {"wall_s": float(wall), "peak_bytes": int(kib) * 1024}


def cli_runs(k: int) -> dict[str, Any]:
    """The config's 2-D residual on a k x k grid through the CLI, cold and warm, saved as J.npz."""
    tmp = Path(tempfile.mkdtemp())
    env = dict(os.environ, JAXDIFF_CACHE_DIR=str(tmp / "cache"))
    args = [
        "jacobian", str(ROOT / "configs" / "pde_laplacian2d_sparse.yaml"),
        "-p", f"u={{random: normal, shape: [{k}, {k}], seed: 0}}", "-p", f"f={{ones: [{k}, {k}]}}",
        "-o", str(tmp / "J.npz"), "-q",
    ]  # fmt: skip
    cold = timed_cli(args, env)
    warm = timed_cli(args, env)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"n": k * k, "cold": cold, "warm": warm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-n", type=int, default=max(SIZES), help="skip larger sizes (a quick run)")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of steady-state calls per side")
    ap.add_argument("--problems", nargs="*", choices=PROBLEMS, help="only these problems")
    ap.add_argument("--sizes", nargs="*", type=int, help="only these sizes")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "sparse_results.json"))
    args = ap.parse_args()
    import asdex
    import jax

    load = os.getloadavg()[0]
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "asdex": getattr(asdex, "__version__", None) or __import__("importlib.metadata").metadata.version("asdex"),
        "device": str(jax.devices()[0]),
        "load_before": load,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(
        f"sparse benchmarks on {meta['device']}, {meta['cpus']} CPUs (load {load:.1f}), jax {meta['jax']}, asdex {meta['asdex']}"
    )
    rows = []
    for name in args.problems or PROBLEMS:
        for n in (s for s in (args.sizes or SIZES) if s <= args.max_n):
            fmt = {"root": str(ROOT), "name": name, "n": n, "min_time": args.min_time, "dense_max": DENSE_MAX}
            ours = probe(JAXDIFF_PROBE.format(**fmt))
            theirs = probe(ASDEX_PROBE.format(**fmt))
            row = {"problem": name, "n": ours["n"], "jaxdiff": ours, "asdex": theirs}
            rows.append(row)
            dense = ours.get("dense_fwd_s")
            extra = ""
            if dense is not None:
                best = min(t for t in (ours["dense_fwd_s"], ours["dense_rev_s"]) if t is not None)
                extra = f", dense {best * 1e3:8.2f} ms ({best / ours['steady_s']:.0f}x, target {ours['n'] / (2 * ours['colors']):.0f}x)"
            print(
                f"  {name:9s} n={ours['n']:>7} nnz={ours['nnz']:>8} colors={ours['colors']:2d}"
                f" | detect {ours['detect_s']:6.2f} s color {ours['color_s']:5.2f} s compile {ours['compile_s']:5.2f} s"
                f" steady {ours['steady_s'] * 1e3:8.3f} ms peak {ours['peak_bytes'] / 2**20:6.0f} MiB"
                f" | asdex detect {theirs['detect_s']:6.2f} s steady {theirs['steady_s'] * 1e3:8.3f} ms"
                f" peak {theirs['peak_bytes'] / 2**20:6.0f} MiB | vs asdex data-only {ours['ratio_data']:.3f}x"
                f" BCOO {ours['ratio_bcoo'] or float('nan'):.3f}x{extra}",
                flush=True,
            )
    cli = []
    for k in (316, 1000):
        if k * k <= args.max_n * 1.01 and (not args.sizes or any(abs(k * k - s) < 0.01 * s for s in args.sizes)):
            r = cli_runs(k)
            cli.append(r)
            print(
                f"  CLI jacobian --sparse (config, {k}x{k}): cold {r['cold']['wall_s']:.1f} s {r['cold']['peak_bytes'] / 2**20:.0f} MiB,"
                f" warm {r['warm']['wall_s']:.1f} s {r['warm']['peak_bytes'] / 2**20:.0f} MiB",
                flush=True,
            )
    others = []
    try:
        import sparsejac  # noqa: F401
    except ImportError:
        print("  sparsejac is not installed: skipped (pip install sparsejac to compare)")
    else:
        for n in (s for s in (10**4, 10**5) if s <= args.max_n):
            fmt = {"root": str(ROOT), "name": "banded", "n": n, "min_time": args.min_time, "dense_max": DENSE_MAX}
            r = probe(SPARSEJAC_PROBE.format(**fmt))
            others.append(r)
            print(
                f"  sparsejac {r['version']} n={n}: coloring {r['color_s']:.2f} s, steady jaxdiff / sparsejac {r['ratio']:.3f}x"
            )
    meta["load_after"] = os.getloadavg()[0]
    doc = {"meta": meta, "targets": TARGETS, "rows": rows, "cli": cli, "sparsejac": others}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
