"""benchmarks/results.json -> BENCHMARKS.md (run by `make bench` after suite.py)."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 0.01 else f"{s * 1e3:.0f} ms"


def us(s: float) -> str:
    return f"{s * 1e6:.1f} µs"


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks" / "results.json"
    r = json.loads(src.read_text())
    m, t = r["meta"], r["targets"]
    out = [
        "# Benchmarks",
        "",
        f"`make bench` regenerates this page (`benchmarks/suite.py`, then `benchmarks/report.py`). Measured on "
        f"{m['device']} ({m['cpus']} CPUs, {m['machine']}), jax {m['jax']}; the development machine is shared and "
        "noisy, so the in-process figures interleave jaxdiff and hand-written calls one by one. "
        "Ratios are jaxdiff / reference: below 1, jaxdiff is faster. The GPU figures (an NVIDIA H200) are in their own section below.",
        "",
        "## Whole process",
        "",
        "| command | median |",
        "|---|---|",
    ]
    out += [f"| {k} | {ms(v)} |" for k, v in r["process"]["seconds"].items()]
    out += ["", "| ratio | measured | target |", "|---|---|---|"]
    for k, v in r["process"]["ratios"].items():
        target = t.get(k.split(" ")[0])
        out.append(f"| {k} | {v:.2f}x | ≤ {target} |")
    ratio, import_jax = r["process"]["ratios"], r["process"]["seconds"]["python -c 'import jax'"]
    out += [
        "",
        f"A whole run is mostly `import jax` ({ms(import_jax)} here). jaxdiff pauses Python's cyclic "
        "garbage collector while it imports and sets up JAX (jaxdiff_cli/startup.py): without that, full collections "
        "over JAX's objects added about 60 ms to every run. For the seed polynomial compiling costs little, so a warm "
        f"cache saves little ({ratio['warm']:.2f}x); it pays where compiling costs something (the heavy Hessian: "
        f"{ratio['warm (heavy)']:.2f}x).",
        "",
        "## Each operation in steady state, vs hand-written `jax.jit`",
        "",
        "| function | operation | jaxdiff | hand-written | ratio |",
        "|---|---|---|---|---|",
    ]
    ops = r["operations"]
    out += [f"| {o['problem']} | {o['op']} | {us(o['jaxdiff_s'])} | {us(o['handwritten_s'])} | {o['ratio']:.2f}x |" for o in ops]
    ratios = [o["ratio"] for o in ops]
    worst = max(ops, key=lambda o: o["ratio"])
    why_worst = ", where a few µs of noise is a few percent" if worst["handwritten_s"] < 50e-6 else ""
    out += [
        "",
        f"Median ratio {statistics.median(ratios):.3f}x over {len(ops)} pairs; {sum(x <= t['op'] for x in ratios)} of {len(ops)} "
        f"within the {t['op']}x target; worst {worst['ratio']:.2f}x ({worst['problem']}, {worst['op']}, a "
        f"{us(worst['handwritten_s'])} call{why_worst}). One pair re-measured on its own (sum(tanh(X)^2) 30x40, jvp, "
        "calls interleaved for a second, three times) came out at 1.00x, 0.99x and 1.26x on this shared machine: a "
        "single ratio above 1.05x can be noise, and the median is the figure to compare.",
        "",
        "## Batched products vs a loop of single ones (MLP n = 256, 128 vectors)",
        "",
        "| product | one vmapped program | Python loop of jitted single products | speed-up (target ≥ 8x) |",
        "|---|---|---|---|",
    ]
    out += [f"| {k} | {ms(v['batched_s'])} | {ms(v['loop_s'])} | {v['speedup']:.1f}x |" for k, v in r["batched"].items()]
    out += [
        "",
        "## The model case: derivatives w.r.t. a parameter dict passed as jit arguments (layers `h @ W.T`)",
        "",
        "| n | product | jaxdiff | jaxdiff --bake-primals | hand-written, W as argument | hand-written, W closed over |",
        "|---|---|---|---|---|---|",
    ]
    out += [
        f"| {row['n']} | {row['op']} | {us(row['jaxdiff_s'])} | {us(row['jaxdiff_baked_s'])} | {us(row['handwritten_arg_s'])} | {us(row['handwritten_closed_s'])} |"
        for row in r["model"]
    ]
    out += [
        "",
        "jaxdiff passes the parameters as arguments, as hand-written code that reuses its program must: it then runs "
        "as fast as that code. Closing over them is faster on XLA:CPU because XLA may precompute and re-lay-out "
        "constants, while an argument keeps its row-major layout (`Layout.AUTO` leaves it row-major on the CPU, "
        "and pre-transposing W recovers only about 2x). `--bake-primals` gives jaxdiff the closed-over speed, for "
        "a program that serves only those values.",
        "",
    ]
    if r.get("torch"):
        out += [
            f"## PyTorch {r['torch']['torch']}: seed 004's loop over outputs, and torch.func",
            "",
            "| n | product | jaxdiff | torch.func | seed 004 loop | loop / jaxdiff |",
            "|---|---|---|---|---|---|",
        ]
        for row in r["torch"]["rows"]:
            loop = row["seed004_loop_s"]
            out.append(
                f"| {row['n']} | {row['op']} | {ms(row['jaxdiff_s'])} | {ms(row['torch_func_s'])} | "
                + (f"{ms(loop)} | {loop / row['jaxdiff_s']:.0f}x |" if loop else "– | – |")
            )
        out += ["", "(torch is not a dependency: the suite skips this section without it. `pip install torch` to run it.)", ""]
    if r.get("devices"):
        out += [
            "## Sharded over devices (`--devices`)",
            "",
            "| devices | Jacobian, MLP R^512 -> R^512 (rev) | batched JVP, 1024 tangents |",
            "|---|---|---|",
        ]
        out += [f"| {row['devices']} | {ms(row['jacobian_s'])} | {ms(row['batched_jvp_s'])} |" for row in r["devices"]]
        out += [
            "",
            f"CPU devices forced with `XLA_FLAGS=--xla_force_host_platform_device_count=N` on a {m['cpus']}-core machine "
            "share those cores: this shows that sharding works and what it costs, not a speed-up. "
            "On a machine with several GPUs each device is real; the GPU lent to this work was a single H200.",
            "",
        ]
    mem = r["memory"]
    keys = [k for k, v in mem.items() if isinstance(v, dict)]
    jac = mem[keys[0]]["jacobian_bytes"] / 2**20
    out += [
        f"## Peak memory of a Jacobian R^n -> R^n ({jac:.0f} MiB), unchunked vs chunked",
        "",
        "| run | peak above start | above the Jacobian | XLA's temp estimate |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {k} | {mem[k]['peak_above_base'] / 2**20:.1f} MiB | {mem[k]['working_above_jacobian'] / 2**20:.1f} MiB | {mem[k]['xla_temp_bytes'] / 2**20:.1f} MiB |"
        for k in keys
    ]
    out += [
        "",
        f"Chunked / unchunked working memory: fwd {mem['fwd ratio']:.2f}, rev {mem['rev ratio']:.2f} (target ≤ {t['memory']}). "
        "Peak resident memory is read from the kernel (VmHWM, reset after compiling); chunks are written in place "
        "into one buffer, so forward mode needs no full-size transpose.",
        "",
    ]
    taylor = ROOT / "benchmarks" / "taylor.json"
    if taylor.exists():  # benchmarks/taylor.py, run on its own (make bench runs it)
        out += taylor_section(json.loads(taylor.read_text()))
    calls = ROOT / "benchmarks" / "calls.json"
    if calls.exists():
        out += calls_section(json.loads(calls.read_text()))
    gpu = ROOT / "benchmarks" / "gpu_results.json"
    if gpu.exists():  # benchmarks/gpu.py, run on a machine with a GPU (CI and make bench have none)
        out += gpu_section(json.loads(gpu.read_text()))
    sparse = ROOT / "benchmarks" / "sparse_results.json"
    if sparse.exists():
        out += sparse_section(json.loads(sparse.read_text()))
    ci = ROOT / "benchmarks" / "ci_results.json"
    if ci.exists():  # benchmarks/ci_suite.py (make bench-ci)
        out += ci_section(json.loads(ci.read_text()))
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out))


CI_TARGETS = {
    "check warm / hand-written": 0.10,
    "check cold / hand-written": 0.35,
    "cache copied to a new path / in place": 1.3,
    "plugin / check (warm)": 1.1,
}


def ci_section(r: dict) -> list[str]:
    """Hundreds of specs in CI (issue 25), from benchmarks/ci_results.json."""
    m = r["meta"]
    out = [
        "## Hundreds of specs in CI: `jaxdiff check` vs hand-written pytest (`make bench-ci`)",
        "",
        "`benchmarks/ci_suite.py` generates suites of N specs deterministically (elementwise and reduction functions, "
        "MLP losses over dict parameters, matrix functions, custom_jvp functions from a module, specs with `cases:`), "
        "each with golden values, and the hand-written equivalent a user would write: the golden values plus "
        "`jax.test_util.check_grads` of order 2 in both modes, in pytest. Each figure is one whole process "
        f"(jax {m['jax']}, {m['cpus']} CPUs shared with other work: the figures are noisy).",
        "",
        "| N | check cold | check warm | hand-written pytest | pytest --jaxdiff | cache copied to a new path | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in r["sizes"]:
        sec = size["seconds"]
        out.append(
            f"| {size['specs']} | {secs(sec['check cold'])} | {secs(sec['check warm'])} | {secs(sec['hand-written pytest'])} "
            f"| {secs(sec['pytest --jaxdiff (warm)'])} | {secs(sec['check, cache copied to a new path'])} "
            f"| {mib(size['peak_rss_bytes'])} |"
        )
    out += [
        "",
        "| ratio | " + " | ".join(f"N = {s['specs']}" for s in r["sizes"]) + " | target |",
        "|---|" + "---|" * (len(r["sizes"]) + 1),
    ]

    def ratio(size: dict, key: str) -> str:
        failed = {k: v for k, v in size.get("exits", {}).items() if v != 0}
        if key.startswith("plugin") and "plugin" in failed:  # not a run to compare: it failed
            return f"n/a (pytest exit {failed['plugin']})"
        return f"{size['ratios'][key]:.2f}"

    for key, target in CI_TARGETS.items():
        row = " | ".join(ratio(s, key) for s in r["sizes"])
        out.append(f"| {key} | {row} | ≤ {target} |")
    mem = r["memory"]
    small, big = mem["sizes"]
    out += [f"| peak RSS at N = {big} / at N = {small} | {mem['peak at largest / peak at smallest']:.2f} | | ≤ 1.2 |"][
        : 1 if big != small else 0
    ]
    out += ["", r.get("note", ""), ""]
    return out


def taylor_section(t: dict) -> list[str]:
    """Taylor mode (jaxdiff taylor) against K nested JVPs, from benchmarks/taylor.json."""
    m, rows = t["meta"], t["rows"]
    out = [
        "## Taylor mode against K nested JVPs (`derivative`, `taylor`)",
        "",
        f"`benchmarks/taylor.py` on {m['device']} ({m['cpus']} CPUs, shared with other work while it ran), jax {m['jax']}, "
        "float64, one direction v. *taylor*: jaxdiff's `taylor --mode jet`, every coefficient up to K in one program. "
        "*nested*: a hand-written `jax.jit` of K nested `jax.jvp`s, the K-th derivative alone. Ratios are taylor / nested "
        "(below 1, Taylor mode is cheaper), each pair measured in the same run, calls interleaved. The last column is "
        "jaxdiff's `taylor --mode jvp` (every coefficient by nested JVPs: what `auto` falls back to).",
        "",
        "| function | K | compile: taylor | nested | ratio | run: taylor | nested | ratio | run: taylor --mode jvp |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r['function']} | {r['order']} | {ms(r['taylor_compile_s'])} | {ms(r['nested_compile_s'])} | {r['compile_ratio']:.2f}x "
        f"| {us(r['taylor_run_s'])} | {us(r['nested_run_s'])} | {r['run_ratio']:.2f}x | {us(r['fallback_run_s'])} |"
        for r in rows
    ]
    top = [r for r in rows if r["order"] == max(x["order"] for x in rows)]
    low = [r for r in rows if r["order"] != max(x["order"] for x in rows)]
    span = lambda rs, k: f"{min(r[k] for r in rs):.2f}–{max(r[k] for r in rs):.2f}x"  # noqa: E731
    out += [
        "",
        f"Compiling: nested JVPs trace a program that doubles with each order, so at K = {top[0]['order']} Taylor mode "
        f"compiles in {span(top, 'compile_ratio')} of their time; at lower orders the nested program is still small "
        f"({span(low, 'compile_ratio')}). Steady state: XLA merges the nested JVPs' repeated work (their 2^K terms are "
        f"copies of K + 1 distinct ones), and jet's series arithmetic is not free, so Taylor mode runs at "
        f"{span(rows, 'run_ratio')} of the K-th-derivative-only nested program here, while giving all K coefficients. "
        "A command runs its program once, so compiling dominates: Taylor mode pays off at high orders, which is "
        "why `--mode auto` takes nested JVPs up to order 4 and Taylor mode from order 5, and "
        "`jaxdiff bench --op taylor --order K` times both on your function. The two agree to "
        f"{max(r['max_relative_difference'] for r in rows):.0e} (relative).",
        "",
    ]
    return out


def calls_section(r: dict) -> list[str]:
    """benchmarks/calls.json (benchmarks/calls.py): the worker, the import floor and --json."""
    p, js, t = r["process"], r["json"], r["targets"]
    ratios, ranges = p["ratios"], p["ratio_ranges"]
    out = [
        "",
        "## A call in milliseconds: the resident worker, the import floor, --json",
        "",
        f"`benchmarks/calls.py`: whole processes, {p['rounds']} interleaved rounds, medians; the compilation cache warm "
        "and bytecode compiled for every case. The tiny call is `jvp -f 'jnp.sin(x)*x' -p x=1.0 -t x=1.0 --json`; the "
        "Jacobian is `tanh(A @ x)`, n = 200, A and x from .npy files, `--json`.",
        "",
        "| process | wall | CPU |",
        "|---|---|---|",
    ]
    out += [f"| {k} | {ms(v)} | {ms(p['cpu_s'][k])} |" for k, v in p["wall_s"].items()]
    out += ["", "| ratio | measured | per-round range | target |", "|---|---|---|---|"]
    for k, v in ratios.items():
        lo, hi = ranges[k]
        out.append(f"| {k} | {v:.3f}x | {lo:.3f}–{hi:.3f} | ≤ {t[k]} |")
    s = js["seconds"]
    out.append(f"| json / np.save (10^6 float32 entries, in one process) | {js['ratio']:.1f}x | – | ≤ {t['json / np.save']} |")
    import_jax = p["cpu_s"]["python -c 'import jax'"] / p["cpu_s"]["python -c 'import numpy'"]
    out += [
        "",
        f"* **Through a worker** a call costs the client's start (Python with `site`) and a fork of the worker, which "
        "starts its own CPU backend, traces, loads the compiled program from the cache and prints; the client itself "
        f"uses {ms(p['cpu_s']['tiny jvp, worker'])} of CPU. `jaxdiff worker status` after the rounds: {p['served']}.",
        f"* **Without a worker** a tiny call's CPU is {ratios['jvp cpu / numpy']:.2f}x `import numpy`'s; `import jax` alone "
        f"is {import_jax:.2f}x here, so what is left above it is jaxdiff's own (Typer, YAML, its modules, tracing, the "
        "cache load, output). `import jax` was 14.6x `import numpy` with ml_dtypes 0.7.0 (5.8x with 0.6.0, same "
        "session, tests/test_import_floor.py's measure), whose own import took ~1.3 s of CPU: 0.7.0 registers "
        "~38,000 ufunc promoters through NumPy's new DType API (0.6.0: ~1,000 legacy loops), and NumPy 2.4 checks each "
        "new loop against the ufunc's list one by one, so registration is quadratic (perf probes on "
        "`PyUFunc_AddLoop`: 40,519 calls against 2,674). pyproject.toml keeps ml_dtypes below 0.7.",
        f"* **--json of a 10^6-entry float32 Jacobian**: {ms(s['json'])} ({js['bytes']['json'] / 2**20:.1f} MiB of text) "
        f"against {ms(s['np.save'])} for `np.save` ({js['bytes']['np.save'] / 2**20:.1f} MiB); the encoder before "
        f"(Python numbers joined by the json module) took {s['json before (array_json + json.dumps, once)']:.1f} s, "
        f"{js['speedup_over_before']:.0f}x longer. Text costs what it costs: each of the 10^6 numbers is formatted "
        "as its shortest round-trip decimal, where `np.save` copies 4 bytes; for large results use `-o FILE.npy`.",
        "* **A pre-forked spare child** (backend started ahead, replaced after each call) was measured with "
        "`benchmarks/spare_child.py` and not adopted: with pauses between calls it saved ~10% (median 380 ms against "
        "427 ms on the busy machine), back to back it lost (312 against 275 ms), because on 2 cores the replacement "
        "competes with the next call; and a backend started before the call's settings are known would be wrong for "
        "some (`--device`).",
        "",
        "The wall times above are from a 2-core machine shared with other jobs (load average ~10 during the run): "
        "read the ratios, measured in the same rounds.",
        "",
    ]
    return out


def gpu_section(g: dict) -> list[str]:
    """benchmarks/gpu_results.json (benchmarks/gpu.py, on a GPU machine) as the GPU section."""
    m, ops = g["meta"], g["operations"]
    ratios = [o["ratio"] for o in ops]
    out = [
        f"## On a GPU: {m['device_kind']}",
        "",
        f"`benchmarks/gpu.py` on one {m['device_kind']} ({m['cpus']} host CPUs), jax {m['jax']}: the same problems and "
        "interleaved timing as the CPU tables above. Ratios are jaxdiff / hand-written `jax.jit`. "
        f"Steady state: median {statistics.median(ratios):.3f}x over {len(ratios)} pairs, "
        f"from {min(ratios):.2f}x to {max(ratios):.2f}x: on the GPU every call is a ~0.1 ms launch, and jaxdiff "
        "adds nothing to it.",
        "",
        "| function | operation | jaxdiff | hand-written | ratio |",
        "|---|---|---|---|---|",
    ]
    out += [f"| {o['problem']} | {o['op']} | {us(o['jaxdiff_s'])} | {us(o['handwritten_s'])} | {o['ratio']:.2f}x |" for o in ops]
    b = g["batched"]
    out += [
        "",
        "Batched products (MLP n = 256, 128 vectors) against a Python loop of single jitted products: "
        + ", ".join(f"{k} {v['speedup']:.0f}x faster ({ms(v['batched_s'])} vs {ms(v['loop_s'])})" for k, v in b.items())
        + ".",
        "",
    ]
    if isinstance(g.get("process"), dict) and "seconds" in g["process"]:
        out += ["| whole process on the GPU (medians of 9) | median |", "|---|---|"]
        out += [f"| {k} | {ms(v)} |" for k, v in g["process"]["seconds"].items()]
        rr = g["process"]["ratios"]
        out += ["", f"Whole run / the hand-written script: {rr['cold']:.2f}x cold, {rr['warm']:.2f}x warm.", ""]
    rows = g.get("relocated_cache")
    if isinstance(rows, list):
        out += [
            "A persistent cache filled at one path and copied to another (a `jax.grad` through four 2048×2048 "
            "products, each row a fresh process; *new entries* are programs compiled again after the copy):",
            "",
            "| JAX's XLA caches | cold compile | warm, in place | warm, copied | new entries after the copy |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| `{r['xla_caches']}` | {ms(r['cold_s'])} | {ms(r['warm_in_place_s'])} | {ms(r['warm_copied_s'])} | "
            f"{r['entries_after_copied_run'] - r['entries_before']} |"
            for r in rows
        ]
        out += [
            "",
            "With the XLA caches on (JAX's default) the cache folder's path is part of every key, so a copied cache "
            "compiles again; off, the copy hits, and the cold compile costs about the same here: the autotuning "
            "cache saved nothing measurable on this program.",
            "",
        ]
    return out


def mib(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def secs(s: float) -> str:
    return f"{s:.2f} s" if s >= 0.1 else ms(s)


def sparse_section(r: dict) -> list[str]:
    """benchmarks/sparse_results.json (benchmarks/sparse.py) as the section on --sparse."""
    m, t, rows = r["meta"], r["targets"], r["rows"]
    out = [
        "## Sparse Jacobians and Hessians (`--sparse`): vs asdex called directly, and vs dense",
        "",
        f"`make bench-sparse` regenerates this section (`benchmarks/sparse.py`, then `benchmarks/report.py`). Measured "
        f"{m['date']} on {m['device']} ({m['cpus']} CPUs, {m['machine']}), jax {m['jax']}, asdex {m['asdex']}. The machine "
        f"was shared with other work while it ran (load average {m['load_before']:.1f} before, {m['load_after']:.1f} after, "
        "on 2 cores): times carry that noise, so the steady-state ratios are the median of per-round ratios of calls "
        "interleaved one by one, which a preempted round does not move. Each side runs in its own processes, so peak "
        "memory (VmHWM) is its own. Problems: `banded`, the 1-D residual 2x_i - x_(i-1) - x_(i+1) + x_i^3 (tridiagonal "
        "Jacobian); `laplacian`, configs/pde_laplacian2d_sparse.yaml's residual on a k x k grid (five diagonals); "
        "`chain`, the Hessian of sum((x_(i+1) - x_i)^4) + sum(cos x) (tridiagonal).",
        "",
        "| problem | n | nnz | colors | jaxdiff: detect | color | compile | steady | peak | asdex: detect | color | first call | steady | peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        a, b = row["jaxdiff"], row["asdex"]
        out.append(
            f"| {row['problem']} | {row['n']:,} | {a['nnz']:,} | {a['colors']} ({a['coloring']}) | {secs(a['detect_s'])} | "
            f"{secs(a['color_s'])} | {secs(a['compile_s'])} | {ms(a['steady_s'])} | {mib(a['peak_bytes'])} | "
            f"{secs(b['detect_s'])} | {secs(b['color_s'])} | {secs(b['first_call_s'])} | {ms(b['steady_s'])} | {mib(b['peak_bytes'])} |"
        )
    out += [
        "",
        "jaxdiff pauses Python's cyclic garbage collector while asdex detects and colors (the collector would walk "
        "the millions of index sets detection builds, none of them garbage cycles, again and again): that is why its "
        "detection is faster than asdex's own at 10^5 and 10^6, with the same peak memory. "
        "jaxdiff's compile is its own (`lower().compile()`); asdex's first call is its compile and one run. asdex's "
        "steady state is its documented `jax.jit(asdex.jacobian_from_coloring(f, coloring))`, which returns a BCOO, "
        "except where that fails (the BCOO reshape of a block of more than 2^31 entries of a 2-D input, here from "
        "10^5 inputs on, overflows int32 inside `jax.experimental.sparse`): there, its data-only path.",
        "",
        f"| problem | n | steady vs asdex, same output (target ≤ {t['vs_asdex']}) | vs asdex's BCOO | peak vs asdex | "
        "dense jacfwd / jacrev (hessian) | sparse speed-up | target n/(2·colors) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    met, missed = [], []
    for row in rows:
        a, b = row["jaxdiff"], row["asdex"]
        dense = [d for d in (a.get("dense_fwd_s"), a.get("dense_rev_s")) if d is not None]
        if dense:
            best = min(dense)
            target = a["n"] / (2 * a["colors"])
            speed = f"{best / a['steady_s']:,.0f}x"
            dense_text = " / ".join(ms(d) for d in dense)
            met.append(best / a["steady_s"] >= target)
            target_text = f"{target:,.0f}x"
            if not met[-1]:
                missed.append(f"{row['problem']} at n = {a['n']:,} ({speed} for {target_text})")
        else:
            speed = dense_text = target_text = "–"
        bcoo = f"{a['ratio_bcoo']:.3f}x" if a.get("ratio_bcoo") else "– (BCOO failed)"
        out.append(
            f"| {row['problem']} | {row['n']:,} | {a['ratio_data']:.3f}x | {bcoo} | {a['peak_bytes'] / b['peak_bytes']:.2f}x | "
            f"{dense_text} | {speed} | {target_text} |"
        )
    ratios = [row["jaxdiff"]["ratio_data"] for row in rows]
    out += [
        "",
        f"Steady state against asdex computing the same thing: {sum(x <= t['vs_asdex'] for x in ratios)} of {len(ratios)} "
        f"within {t['vs_asdex']}x, worst {max(ratios):.3f}x. The two programs are the same: jaxdiff compiles asdex's "
        "compressed products and gather in its own `jax.jit` program, and their optimised HLO is identical but for the "
        "parameter's name (XLA fuses the products into the gather that reads each nonzero), so a ratio away from 1 is "
        f"the machine's noise (which rows land past {t['vs_asdex']}x changes from one run to the next). Sparse against dense: {sum(met)} of {len(met)} meet the n/(2·colors) target"
        + (f"; missed: {', '.join(missed)}" if missed else "")
        + ". At n ≈ 10^3 the dense matrix (4 MiB) is written by XLA in a fraction of a millisecond, while a sparse "
        "call cannot go below the cost of one jit dispatch on this machine (15–40 µs, the same for asdex); at 4096 "
        "the dense matrix (64 MiB) no longer fits in cache and sparse is hundreds of times faster.",
        "",
    ]
    if r.get("sparsejac"):
        version = r["sparsejac"][0]["version"]
        out += [
            f"### Another library: sparsejac {version}",
            "",
            "sparsejac computes sparse Jacobians of 1-D functions from a pattern the user gives (it detects none, and has "
            "no Hessians or pytrees); it colors with networkx. Given asdex's pattern of the banded residual:",
            "",
            "| n | its coloring | its steady state | jaxdiff's | jaxdiff / sparsejac |",
            "|---|---|---|---|---|",
        ]
        out += [
            f"| {o['n']:,} | {secs(o['color_s'])} | {ms(o['sparsejac_s'])} | {ms(o['steady_s'])} | {o['ratio']:.2f}x |"
            for o in r["sparsejac"]
        ]
        out += [
            "",
            "asdex is kept: it is the one that detects patterns, colors Hessians symmetrically, handles several "
            "arguments and pytrees, and is maintained; its numba coloring is the faster too.",
            "",
        ]
    if r.get("cli"):
        asdex_peak = {row["n"]: row["asdex"]["peak_bytes"] for row in rows if row["problem"] == "laplacian"}
        out += [
            "### The whole CLI: the 2-D Laplacian residual, `jaxdiff jacobian configs/pde_laplacian2d_sparse.yaml -p 'u=...' -o J.npz -q`",
            "",
            f"| n | cold run (empty caches; target < {t['cold_s']:.0f} s) | peak | asdex's own peak | warm run "
            f"(pattern and program cached; target < {t['warm_s']:.0f} s) | peak |",
            "|---|---|---|---|---|---|",
        ]
        for c in r["cli"]:
            own = asdex_peak.get(c["n"])
            out.append(
                f"| {c['n']:,} | {c['cold']['wall_s']:.1f} s | {mib(c['cold']['peak_bytes'])} | {mib(own) if own else '–'} | "
                f"{c['warm']['wall_s']:.1f} s | {mib(c['warm']['peak_bytes'])} |"
            )
        out += [
            "",
            "A cold run is mostly asdex's detection (pure Python over index sets, single-threaded) and its memory; "
            "a warm run reads the pattern and coloring from `sparsity/` beside the compilation cache, and the "
            "compiled program from the cache itself. Both save the nonzeros as a scipy `.npz`.",
            "",
        ]
    return out


if __name__ == "__main__":
    main()
