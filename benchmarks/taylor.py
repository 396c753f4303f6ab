"""Taylor mode (jaxdiff taylor, jax.experimental.jet) against K nested JVPs, at K = 2, 4, 8, in one run.

    .venv/bin/python benchmarks/taylor.py [--quick] [--out benchmarks/taylor.json]

For each function and order K: jaxdiff's taylor plan with --mode jet (every coefficient up to K in
one program) against a hand-written jit of K nested jax.jvp calls (the K-th derivative alone), both
along one direction v, in float64; and, for reference, jaxdiff's taylor plan with --mode jvp (every
coefficient by nested jvps: what the fallback runs). Compile time (lower + compile) and steady-state time per call
(medians, the two sides' calls interleaved so the machine's noise falls on both alike). Ratios are
taylor / nested: below 1, Taylor mode is cheaper. Also checks that the two agree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ORDERS = (2, 4, 8)


def functions() -> dict[str, tuple[Callable[[Any], Any], Any, Any]]:
    """name -> (f, x, v)."""
    import jax
    import jax.numpy as jnp

    n = 64
    w1 = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float64) / jnp.sqrt(n)
    w2 = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float64) / jnp.sqrt(n)

    def mlp(x: Any) -> Any:
        return w2 @ jnp.tanh(w1 @ jnp.tanh(x))

    def scalar(x: Any) -> Any:
        return jnp.sin(x) * jnp.exp(x) / (1 + x**2)

    def wide(x: Any) -> Any:
        return jnp.sum(jnp.log1p(x**2) * jnp.exp(-x) + jnp.sin(3 * x) ** 2)

    return {
        "sin(x) exp(x) / (1 + x²), R -> R": (scalar, jnp.float64(0.3), jnp.float64(1.0)),
        "tanh MLP R^64 -> R^64": (mlp, jnp.linspace(-1, 1, n), jnp.cos(jnp.arange(n, dtype=jnp.float64))),
        "Σ log1p(x²) e^-x + sin²(3x), R^4096 -> R": (wide, jnp.linspace(0, 2, 4096), jnp.ones(4096) / 64),
    }


def nested(f: Callable[[Any], Any], x: Any, v: Any, k: int) -> Any:
    import jax

    if k == 0:
        return f(x)
    return jax.jvp(lambda y: nested(f, y, v, k - 1), (x,), (v,))[1]


def measure(quick: bool) -> list[dict[str, Any]]:
    import jax
    import numpy as np

    from jaxdiff_cli.engine.problem import Problem, call, compile_plan
    from jaxdiff_cli.engine.taylor import plan_taylor

    calls = 30 if quick else 200
    rows = []
    for name, (f, x, v) in functions().items():
        problem = Problem(fn=f, names=("x",), primals=(x,), argnums=(0,))
        for k in ORDERS:
            plan = plan_taylor(problem, (v,), k, "jet")
            taylor_compiled, taylor_compile_s = compile_plan(plan)
            fallback = plan_taylor(problem, (v,), k, "jvp")
            fallback_compiled, fallback_compile_s = compile_plan(fallback)
            t1 = time.perf_counter()
            nested_compiled = jax.jit(lambda x, v, k=k, f=f: nested(f, x, v, k)).lower(x, v).compile()
            nested_compile_s = time.perf_counter() - t1
            coefficients = call(taylor_compiled, plan)[1]
            kth = np.asarray(nested_compiled(x, v))
            agree = float(np.max(np.abs(np.asarray(coefficients)[k] * math.factorial(k) - kth) / (1 + np.abs(kth))))
            times: dict[str, list[float]] = {"taylor": [], "nested": [], "fallback": []}
            for _ in range(calls):  # interleaved, after one warm-up call each (above)
                s = time.perf_counter()
                jax.block_until_ready(taylor_compiled(*plan.call_args))
                times["taylor"].append(time.perf_counter() - s)
                s = time.perf_counter()
                jax.block_until_ready(nested_compiled(x, v))
                times["nested"].append(time.perf_counter() - s)
                s = time.perf_counter()
                jax.block_until_ready(fallback_compiled(*fallback.call_args))
                times["fallback"].append(time.perf_counter() - s)
            run = {side: statistics.median(ts) for side, ts in times.items()}
            row = {
                "function": name,
                "order": k,
                "taylor_compile_s": taylor_compile_s,
                "nested_compile_s": nested_compile_s,
                "taylor_run_s": run["taylor"],
                "nested_run_s": run["nested"],
                "fallback_compile_s": fallback_compile_s,
                "fallback_run_s": run["fallback"],
                "compile_ratio": taylor_compile_s / nested_compile_s,
                "run_ratio": run["taylor"] / run["nested"],
                "max_relative_difference": agree,
            }
            rows.append(row)
            print(
                f"  {name:42s} K={k}  compile {taylor_compile_s * 1e3:7.0f} / {nested_compile_s * 1e3:7.0f} ms"
                f" = {row['compile_ratio']:5.2f}x   run {run['taylor'] * 1e6:8.1f} / {run['nested'] * 1e6:8.1f} µs"
                f" = {row['run_ratio']:5.2f}x   agree {agree:.1e}",
                flush=True,
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer timed calls (a smoke test)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "taylor.json"))
    args = ap.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "jax": jax.__version__, "device": str(jax.devices()[0])}
    print("Taylor mode (jaxdiff taylor --mode jet, all K coefficients) vs K nested JVPs (the K-th derivative), float64")
    print(f"on {meta['device']}, {meta['cpus']} CPUs, jax {meta['jax']}; ratios taylor / nested\n")
    rows = measure(args.quick)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
