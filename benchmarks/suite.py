"""jaxdiff against hand-written JAX, measured side by side in one run.

    make bench                          # or: .venv/bin/python benchmarks/suite.py [--quick] [--out F]

Prints tables of medians and ratios and writes them as JSON (benchmarks/results.json by default).
Ratios are jaxdiff / hand-written: below 1 jaxdiff is faster. In-process timings interleave the
two sides call by call, so the machine's noise falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
TARGETS = {
    "help": 1.15,  # jaxdiff --help / a bare Typer app
    "cold": 1.10,  # a whole jaxdiff run, cache cold / the hand-written script
    "warm": 0.90,  # the same, cache warm
    "op": 1.05,  # each operation in steady state / hand-written jit
    "batched": 8.0,  # a loop of single products / one batched product (n = 256), at least
    "memory": 0.50,  # chunked working memory above the Jacobian / unchunked, at most
}


def median_time(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------- whole process


HANDWRITTEN = """
import json, sys
import jax, jax.numpy as jnp
def fn(x):
    return jnp.stack([x[0]**6 * x[1]**4 * x[2]**9 * x[3]**2, x[0]**2 * x[1]**3 * x[2]**5 * x[3]**3,
                      x[0]**5 * x[1]**7 * x[2]**7 * x[3]**6])
x = jnp.array([1.0, 0.5, 1.5, 2.0]); v = jnp.array([0.2, 0.3, 0.4, 0.8])
y, t = jax.jit(lambda x, v: jax.jvp(fn, (x,), (v,)))(x, v)
json.dump({"value": y.tolist(), "jvp": t.tolist()}, sys.stdout)
"""
HEAVY = "jnp.sum(jnp.tanh(jnp.cumsum(jnp.sin(x) * jnp.roll(x, 1)) / 7) ** 3) + jnp.sum(jnp.log1p(jnp.outer(x, x) ** 2))"
HEAVY_SCRIPT = f"""
import json, sys
import jax, jax.numpy as jnp
x = jnp.linspace(0.1, 1, 64)
h = jax.jit(jax.hessian(lambda x: {HEAVY}))(x)
json.dump({{"hessian": h.tolist()}}, sys.stdout)
"""
BARE_TYPER = '''
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "x") -> None:
    """Say hello."""
@app.command()
def bye() -> None:
    """Say bye."""
app()
'''


def whole_process(runs: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    (tmp / "handwritten.py").write_text(HANDWRITTEN)
    (tmp / "bare_typer.py").write_text(BARE_TYPER)
    cache = tmp / "cache"
    env = dict(os.environ, JAXDIFF_CACHE_DIR=str(cache))
    py, jd = str(BIN / "python"), str(BIN / "jaxdiff")
    spec = str(ROOT / "configs" / "seed000_poly.yaml")

    def run(cmd: list[str]) -> Callable[[], Any]:
        return lambda: subprocess.run(cmd, env=env, capture_output=True, check=True)

    def cold() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        run([jd, "jvp", spec, "--json"])()

    r = {
        "jaxdiff --help": median_time(run([jd, "--help"]), runs),
        "bare Typer app --help": median_time(run([py, str(tmp / "bare_typer.py"), "--help"]), runs),
        "python -c 'import jax'": median_time(run([py, "-c", "import jax"]), runs),
        "hand-written jvp script": median_time(run([py, str(tmp / "handwritten.py")]), runs),
        "jaxdiff jvp, cache cold": median_time(cold, runs),
    }
    run([jd, "jvp", spec, "--json"])()
    r["jaxdiff jvp, cache warm"] = median_time(run([jd, "jvp", spec, "--json"]), runs)
    # A function that takes longer to compile: here the cache has something to save.
    heavy = [jd, "hessian", "-f", HEAVY, "-p", "x={linspace: [0.1, 1, 64]}", "--json"]
    (tmp / "heavy.py").write_text(HEAVY_SCRIPT)
    r["hand-written hessian script (heavy)"] = median_time(run([py, str(tmp / "heavy.py")]), runs)
    shutil.rmtree(cache, ignore_errors=True)
    r["jaxdiff hessian (heavy), cache cold"] = median_time(lambda: (shutil.rmtree(cache, ignore_errors=True), run(heavy)()), runs)
    run(heavy)()
    r["jaxdiff hessian (heavy), cache warm"] = median_time(run(heavy), runs)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "seconds": r,
        "ratios": {
            "help": r["jaxdiff --help"] / r["bare Typer app --help"],
            "cold": r["jaxdiff jvp, cache cold"] / r["hand-written jvp script"],
            "warm": r["jaxdiff jvp, cache warm"] / r["hand-written jvp script"],
            "cold (heavy)": r["jaxdiff hessian (heavy), cache cold"] / r["hand-written hessian script (heavy)"],
            "warm (heavy)": r["jaxdiff hessian (heavy), cache warm"] / r["hand-written hessian script (heavy)"],
        },
    }


# --------------------------------------------------------------------------- in process


def problems(quick: bool) -> list[tuple[str, Callable[..., Any], tuple[Any, ...], bool]]:
    """(name, f, primals, scalar output) for each benchmark function."""
    import jax
    import jax.numpy as jnp

    def poly(x: Any) -> Any:
        return jnp.stack([x[0] ** 6 * x[1] ** 4 * x[2] ** 9 * x[3] ** 2, x[0] ** 2 * x[1] ** 3 * x[2] ** 5 * x[3] ** 3,
                          x[0] ** 5 * x[1] ** 7 * x[2] ** 7 * x[3] ** 6])  # fmt: skip

    def tanh_sq(x: Any) -> Any:
        return jnp.sum(jnp.tanh(x) ** 2)

    key = jax.random.PRNGKey(0)
    out = [("poly R^4->R^3", poly, (jnp.array([1.0, 0.5, 1.5, 2.0]),), False)]
    out += [(f"sum(tanh(X)^2) {s[0]}x{s[1]}", tanh_sq, (jax.random.normal(key, s),), True) for s in ((30, 40), (300, 400))]
    for n in (64, 256) if quick else (64, 256, 1024):
        ws = [jax.random.normal(jax.random.fold_in(key, i), (n, n)) / jnp.sqrt(n) for i in range(3)]

        def mlp(x: Any, ws: list[Any] = ws) -> Any:
            for w in ws[:-1]:
                x = jnp.tanh(w @ x)
            return ws[-1] @ x

        out.append((f"tanh MLP R^{n}->R^{n}", mlp, (jax.random.normal(key, (n,)),), False))
    return out


def handwritten(op: str, f: Callable[..., Any], x: Any, v: Any, u: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """What a user would write by hand for each operation."""
    import jax
    import jax.numpy as jnp

    table: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
        "jvp": (lambda x, v: jax.jvp(f, (x,), (v,)), (x, v)),
        "vjp": (lambda x, u: (lambda y, pull: (y, pull(u)))(*jax.vjp(f, x)), (x, u)),
        "jacfwd": (jax.jacfwd(f), (x,)),
        "jacrev": (jax.jacrev(f), (x,)),
        "grad": (jax.value_and_grad(f), (x,)),
        "hvp fwd-rev": (lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1], (x, v)),
        "hvp rev-fwd": (lambda x, v: jax.grad(lambda y: jax.jvp(f, (y,), (v,))[1])(x), (x, v)),
        "hvp rev-rev": (lambda x, v: jax.grad(lambda y: jnp.vdot(jax.grad(f)(y), v))(x), (x, v)),
        "hessian": (jax.hessian(f), (x,)),
        # the same outputs as jaxdiff's: f(x) and the products
        "batched jvp x128": (lambda x, V: (f(x), jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(V)), (x, v)),
        "batched vjp x128": (lambda x, U: (lambda y, pull: (y, jax.vmap(pull)(U)))(*jax.vjp(f, x)), (x, u)),
    }
    return table[op]


def engine_plan(op: str, f: Callable[..., Any], x: Any, v: Any, u: Any) -> Any:
    from jaxdiff_cli.engine import plans, problem

    p = problem.Problem(fn=f, names=("x",), primals=(x,), argnums=(0,))
    table = {
        "jvp": lambda: plans.plan_jvp(p, (v,)),
        "vjp": lambda: plans.plan_vjp(p, u),
        "jacfwd": lambda: plans.plan_jacobian(p, "fwd"),
        "jacrev": lambda: plans.plan_jacobian(p, "rev"),
        "grad": lambda: plans.plan_grad(p),
        "hvp fwd-rev": lambda: plans.plan_hvp(p, (v,), "fwd-rev"),
        "hvp rev-fwd": lambda: plans.plan_hvp(p, (v,), "rev-fwd"),
        "hvp rev-rev": lambda: plans.plan_hvp(p, (v,), "rev-rev"),
        "hessian": lambda: plans.plan_hessian(p),
        "batched jvp x128": lambda: plans.plan_jvp(p, (v,), batch=128),
        "batched vjp x128": lambda: plans.plan_vjp(p, u, batch=128),
    }
    return table[op]()


def interleaved(a: Callable[[], Any], b: Callable[[], Any], min_time: float) -> tuple[float, float]:
    """Medians of a and b, called alternately until min_time has passed (at least 7 each)."""
    ta: list[float] = []
    tb: list[float] = []
    start = time.perf_counter()
    while len(ta) < 7 or time.perf_counter() - start < min_time:
        for fn, acc in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
        if len(ta) >= 5000:
            break
    return statistics.median(ta), statistics.median(tb)


def operations(quick: bool, min_time: float) -> list[dict[str, Any]]:
    import jax

    from jaxdiff_cli.engine import problem

    rows = []
    for name, f, (x,), scalar in problems(quick):
        n, m = x.size, int(jax.eval_shape(f, x).size)
        ops = ["jvp", "vjp", "jacfwd", "jacrev", "batched jvp x128", "batched vjp x128"]
        if scalar:
            ops += ["grad", "hvp fwd-rev", "hvp rev-fwd", "hvp rev-rev"] + (["hessian"] if n <= 1200 else [])
        # jacfwd pushes an n x n basis, jacrev pulls an m x m one: past 4096 that is the memory benchmark's business
        ops = [o for o in ops if not (o == "jacfwd" and n > 4096) and not (o == "jacrev" and m > 4096)]
        key = jax.random.PRNGKey(1)
        for op in ops:
            batched = op.startswith("batched")
            v = jax.random.normal(key, ((128,) if batched else ()) + x.shape)
            u = jax.random.normal(key, ((128,) if batched else ()) + (jax.eval_shape(f, x).shape))
            hand_fn, hand_args = handwritten(op, f, x, v, u)
            hand = jax.jit(hand_fn).lower(*hand_args).compile()
            plan = engine_plan(op, f, x, v, u)
            ours, _ = problem.compile_plan(plan)
            t_ours, t_hand = interleaved(
                lambda ours=ours, plan=plan: jax.block_until_ready(ours(*plan.args)),
                lambda hand=hand, hand_args=hand_args: jax.block_until_ready(hand(*hand_args)),
                min_time,
            )
            rows.append({"problem": name, "op": op, "jaxdiff_s": t_ours, "handwritten_s": t_hand, "ratio": t_ours / t_hand})
            print(f"  {name:28s} {op:18s} {t_ours * 1e6:10.1f} us {t_hand * 1e6:10.1f} us  {t_ours / t_hand:5.2f}x", flush=True)
    return rows


def batched_vs_loop(min_time: float) -> dict[str, Any]:
    """One vmapped product of 128 vectors vs a Python loop of 128 single jitted products, n = 256."""
    import jax

    from jaxdiff_cli.engine import plans, problem

    (_, f, (x,), _) = next(p for p in problems(True) if p[0] == "tanh MLP R^256->R^256")
    V = jax.random.normal(jax.random.PRNGKey(2), (128, *x.shape))
    p = problem.Problem(fn=f, names=("x",), primals=(x,), argnums=(0,))
    out: dict[str, Any] = {}
    for kind, batched_plan, single in (
        ("jvp", plans.plan_jvp(p, (V,), batch=128), lambda x, t: jax.jvp(f, (x,), (t,))[1]),
        ("vjp", plans.plan_vjp(p, V, batch=128), lambda x, c: jax.vjp(f, x)[1](c)),
    ):
        compiled, _ = problem.compile_plan(batched_plan)
        one = jax.jit(single)

        def loop(one: Any = one) -> None:
            jax.block_until_ready([one(x, V[i]) for i in range(128)])

        loop()
        t_batch, t_loop = interleaved(lambda c=compiled, pl=batched_plan: jax.block_until_ready(c(*pl.args)), loop, min_time)
        out[kind] = {"batched_s": t_batch, "loop_s": t_loop, "speedup": t_loop / t_batch}
    return out


def model_case(min_time: float) -> list[dict[str, Any]]:
    """Derivatives w.r.t. a parameter pytree passed as jit arguments, layers written as h @ W.T.

    jaxdiff passes every primal as an argument (so a compiled program serves any values and the
    persistent cache can hit). Hand-written code often closes over the parameters instead, letting
    XLA fold them as constants. This measures what that choice costs here.
    """
    import jax
    import jax.numpy as jnp

    from jaxdiff_cli.engine import plans, problem

    rows = []
    for n in (256, 1024):
        key = jax.random.PRNGKey(3)
        params = {f"W{i}": jax.random.normal(jax.random.fold_in(key, i), (n, n)) / jnp.sqrt(n) for i in range(3)}
        x = jax.random.normal(key, (n,))

        def f(params: Any, x: Any) -> Any:
            h = x
            for i in range(3):
                h = jnp.tanh(h @ params[f"W{i}"].T)
            return h

        p = problem.Problem(fn=f, names=("params", "x"), primals=(params, x), argnums=(0,))
        tangent = jax.tree.map(jnp.ones_like, params)
        u = jnp.ones(n)
        for op, plan, as_arg, closed in (
            (
                "jvp",
                plans.plan_jvp(p, (tangent,)),
                lambda P, t: jax.jvp(lambda q: f(q, x), (P,), (t,)),
                lambda t: jax.jvp(lambda q: f(q, x), (params,), (t,)),
            ),
            (
                "vjp",
                plans.plan_vjp(p, u),
                lambda P, c: jax.vjp(lambda q: f(q, x), P)[1](c),
                lambda c: jax.vjp(lambda q: f(q, x), params)[1](c),
            ),
        ):
            ours, _ = problem.compile_plan(plan)
            arg_args = (params, tangent if op == "jvp" else u)
            hand_arg = jax.jit(as_arg).lower(*arg_args).compile()
            hand_closed = jax.jit(closed).lower(arg_args[1]).compile()
            t_ours, t_arg = interleaved(
                lambda: jax.block_until_ready(ours(*plan.args)), lambda: jax.block_until_ready(hand_arg(*arg_args)), min_time
            )
            _, t_closed = interleaved(lambda: None, lambda: jax.block_until_ready(hand_closed(arg_args[1])), min_time)
            baked = replace(plan, bake=True)
            ours_baked, _ = problem.compile_plan(baked)
            t_baked, _ = interleaved(lambda: jax.block_until_ready(ours_baked(*baked.call_args)), lambda: None, min_time)
            rows.append(
                {
                    "n": n,
                    "op": op,
                    "jaxdiff_s": t_ours,
                    "jaxdiff_baked_s": t_baked,
                    "handwritten_arg_s": t_arg,
                    "handwritten_closed_s": t_closed,
                }
            )
            print(
                f"  n={n:5d} {op}: jaxdiff {t_ours * 1e6:8.1f} us, jaxdiff --bake-primals {t_baked * 1e6:8.1f} us, hand-written (W as argument) {t_arg * 1e6:8.1f} us, (W closed over) {t_closed * 1e6:8.1f} us"
            )
    return rows


def torch_comparison(min_time: float) -> dict[str, Any] | None:
    """Seed 004's way (one torch.autograd.grad per output element) and torch.func, vs jaxdiff.

    The same 3-layer tanh MLP R^n -> R^n and the same products; skipped when torch is absent.
    """
    try:
        import torch
        from torch.func import jacrev as t_jacrev
        from torch.func import jvp as t_jvp
        from torch.func import vjp as t_vjp
    except ImportError:
        return None
    import jax
    import numpy as np

    from jaxdiff_cli.engine import plans, problem

    torch.set_num_threads(os.cpu_count() or 1)
    out: dict[str, Any] = {"torch": torch.__version__, "rows": []}
    for n in (64, 256):
        (_, f, (x,), _) = next(p for p in problems(True) if p[0] == f"tanh MLP R^{n}->R^{n}")
        ws = [torch.tensor(np.asarray(w)) for w in f.__defaults__[0]]  # type: ignore[index]

        def tf(v: Any, ws: list[Any] = ws) -> Any:
            for w in ws[:-1]:
                v = torch.tanh(w @ v)
            return ws[-1] @ v

        xt = torch.tensor(np.asarray(x))
        vt = torch.ones(n)

        def seed004_jvp() -> Any:  # seed 004's jvp(): a loop over output elements
            xr = xt.clone().requires_grad_(True)
            y = tf(xr)
            res = torch.zeros(n)
            for i in range(n):
                (g,) = torch.autograd.grad(y[i], xr, retain_graph=True)
                res[i] = (g * vt).sum()
            return res

        def seed004_jacobian() -> Any:  # seed 004's full_jacobian()
            xr = xt.clone().requires_grad_(True)
            y = tf(xr)
            return torch.stack([torch.autograd.grad(y[i], xr, retain_graph=True)[0] for i in range(n)])

        p = problem.Problem(fn=f, names=("x",), primals=(x,), argnums=(0,))
        v = jax.numpy.ones(n)
        for op, ours_plan, seed_fn, func_fn in (
            ("jvp", plans.plan_jvp(p, (v,)), seed004_jvp, lambda: t_jvp(tf, (xt,), (vt,))),
            ("vjp", plans.plan_vjp(p, v), None, lambda: t_vjp(tf, xt)[1](vt)),
            ("jacobian (rev)", plans.plan_jacobian(p, "rev"), seed004_jacobian, lambda: t_jacrev(tf)(xt)),
        ):
            ours, _ = problem.compile_plan(ours_plan)
            t_ours, t_func = interleaved(lambda: jax.block_until_ready(ours(*ours_plan.args)), func_fn, min_time)
            t_seed = median_time(seed_fn, 3) if seed_fn else None
            row = {"n": n, "op": op, "jaxdiff_s": t_ours, "torch_func_s": t_func, "seed004_loop_s": t_seed}
            out["rows"].append(row)
            seed_text = f", seed 004 loop {t_seed * 1e3:9.2f} ms ({t_seed / t_ours:7.0f}x)" if t_seed else ""
            print(f"  n={n:4d} {op:15s} jaxdiff {t_ours * 1e3:8.3f} ms, torch.func {t_func * 1e3:8.3f} ms{seed_text}")
    return out


DEVICES_PROBE = """
import json, os, statistics, sys, time
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count={n}"
sys.path.insert(0, {root!r})
import jax, jax.numpy as jnp
from jaxdiff_cli.engine import plans, problem
from jaxdiff_cli.engine.sharding import make_mesh, shard_plan
mesh = make_mesh("all")
key = jax.random.PRNGKey(0)
ws = [jax.random.normal(jax.random.fold_in(key, i), (512, 512)) / 512**0.5 for i in range(3)]
def f(x):
    for w in ws[:-1]:
        x = jnp.tanh(w @ x)
    return ws[-1] @ x
x = jax.random.normal(key, (512,))
p = problem.Problem(fn=f, names=("x",), primals=(x,), argnums=(0,))
V = jax.random.normal(key, (1024, 512))
def timed(plan):
    compiled, _ = problem.compile_plan(plan)
    problem.call(compiled, plan)
    ts = []
    for _ in range(15):
        t0 = time.perf_counter(); problem.call(compiled, plan); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
jac = shard_plan(p, "jacobian", mesh, mode="rev")
jvp = shard_plan(p, "jvp", mesh, vectors=(V,), batch=1024)
print(json.dumps({{"devices": mesh.size, "jacobian_s": timed(jac), "batched_jvp_s": timed(jvp)}}))
"""


def devices_scaling() -> list[dict[str, Any]]:
    """The same Jacobian (MLP R^512 -> R^512, rev) and batched JVP (1024 tangents) on 1, 2 and 4 devices."""
    rows = []
    for n in (1, 2, 4):
        res = subprocess.run(
            [str(BIN / "python"), "-c", DEVICES_PROBE.format(n=n, root=str(ROOT))], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  {n} device(s): jacobian {r['jacobian_s'] * 1e3:8.2f} ms, batched jvp x1024 {r['batched_jvp_s'] * 1e3:8.2f} ms")
    return rows


# --------------------------------------------------------------------------- memory

MEMORY_PROBE = """
import json, sys
import jax, jax.numpy as jnp
sys.path.insert(0, {root!r})
from jaxdiff_cli.engine import plans, problem
n, mode, chunk = {n}, {mode!r}, {chunk}
def f(x):
    return jnp.cumsum(jnp.sin(x)) * x[::-1]
x = jnp.linspace(0.1, 1.0, n)
plan = plans.plan_jacobian(problem.Problem(fn=f, names=("x",), primals=(x,), argnums=(0,)), mode, chunk)
compiled, _ = problem.compile_plan(plan)
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    return 0
open("/proc/self/clear_refs", "w").write("5")  # reset the high-water mark: compiling is not measured
base = hwm()
jac = jax.block_until_ready(compiled(*plan.args))
peak = hwm()
temp = compiled.memory_analysis().temp_size_in_bytes
json.dump({{"peak_above_base": peak - base, "jacobian_bytes": n * n * 4, "xla_temp_bytes": int(temp)}}, sys.stdout)
"""


def memory(n: int, chunk: int) -> dict[str, Any]:
    out = {}
    for mode in ("fwd", "rev"):
        for c in (None, chunk):
            code = MEMORY_PROBE.format(root=str(ROOT), n=n, mode=mode, chunk=c)
            res = subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True, check=True)
            r = json.loads(res.stdout)
            r["working_above_jacobian"] = r["peak_above_base"] - r["jacobian_bytes"]
            out[f"{mode} {'chunk ' + str(c) if c else 'unchunked'}"] = r
    for mode in ("fwd", "rev"):
        un, ch = out[f"{mode} unchunked"], out[f"{mode} chunk {chunk}"]
        out[f"{mode} ratio"] = ch["working_above_jacobian"] / max(un["working_above_jacobian"], 1)
    return out


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer runs and sizes (a smoke test of the suite)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    args = ap.parse_args()
    runs, min_time = (3, 0.05) if args.quick else (9, 0.3)

    import jax

    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "quick": args.quick,
    }
    print(f"jaxdiff benchmarks on {meta['device']}, {meta['cpus']} CPUs, jax {meta['jax']}\n")
    print(f"whole process (medians of {runs} runs)")
    proc = whole_process(runs)
    for k, v in proc["seconds"].items():
        print(f"  {k:30s} {v * 1e3:8.0f} ms")
    for k, v in proc["ratios"].items():
        target = TARGETS.get(k.split(" ")[0])
        print(f"  ratio {k:13s} {v:5.2f}x" + (f"  (target <= {target})" if target else ""))
    print("\nsteady state, jaxdiff vs hand-written jax.jit (median per call, interleaved)")
    ops = operations(args.quick, min_time)
    worst = max(ops, key=lambda r: r["ratio"])
    print(
        f"  median ratio {statistics.median(r['ratio'] for r in ops):.3f}x, worst {worst['ratio']:.2f}x ({worst['problem']}, {worst['op']})"
    )
    print("\nbatched (one vmapped program) vs a Python loop of single products, MLP n = 256, 128 vectors")
    batch = batched_vs_loop(min_time)
    for k, v in batch.items():
        print(f"  {k}: batched {v['batched_s'] * 1e3:.3f} ms, loop {v['loop_s'] * 1e3:.2f} ms, speed-up {v['speedup']:.1f}x")
    print("\nPyTorch: seed 004's loop over outputs, and torch.func (skipped without torch)")
    torch_rows = torch_comparison(min_time)
    if torch_rows is None:
        print("  torch is not installed: pip install torch to compare")
    print(f"\nsharded over 1, 2 and 4 devices ({platform.machine()} CPU devices forced with XLA_FLAGS: {os.cpu_count()} cores)")
    scaling = devices_scaling()
    print("\nthe model case: w.r.t. a parameter dict passed as jit arguments, layers h @ W.T")
    model = model_case(min_time)
    n, chunk = (1024, 64) if args.quick else (4096, 256)
    print(f"\npeak memory of a Jacobian R^{n} -> R^{n} ({n * n * 4 / 2**20:.0f} MiB), unchunked vs --chunk-size {chunk}")
    mem = memory(n, chunk)
    for k, v in mem.items():
        if isinstance(v, dict):
            print(
                f"  {k:18s} peak +{v['peak_above_base'] / 2**20:7.1f} MiB, above the Jacobian +{v['working_above_jacobian'] / 2**20:7.1f} MiB, XLA temp {v['xla_temp_bytes'] / 2**20:7.1f} MiB"
            )
        else:
            print(f"  {k:18s} {v:.2f}  (target <= {TARGETS['memory']})")
    Path(args.out).write_text(
        json.dumps(
            {
                "meta": meta,
                "targets": TARGETS,
                "process": proc,
                "operations": ops,
                "batched": batch,
                "model": model,
                "torch": torch_rows,
                "devices": scaling,
                "memory": mem,
            },
            indent=1,
        )
    )
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
