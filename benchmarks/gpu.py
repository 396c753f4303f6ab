"""jaxdiff against hand-written JAX on a GPU, measured side by side in one run.

    python benchmarks/gpu.py --out gpu_results.json      # on a machine whose default JAX device is a GPU

The steady-state tables reuse suite.py's problems and its interleaved timing; the whole-process rows
run the real CLI (``python -P -m jaxdiff_cli``, as the CI recipes do) against a hand-written script,
both on the GPU. The cache rows answer one question for the README: with JAX's XLA caches
(``jax_persistent_cache_enable_xla_caches``) on, does a persistent cache copied to a new path still
hit on a GPU, and what does the autotune cache save when it does? ``benchmarks/report.py`` turns the
JSON into BENCHMARKS.md's GPU section.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# A program with matrix products, so that XLA's GPU autotuner has something to choose.
CACHE_PROBE = """
import os, sys, time
import jax, jax.numpy as jnp
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
jax.config.update("jax_persistent_cache_enable_xla_caches", sys.argv[2])
def f(ws, x):
    for w in ws:
        x = jnp.tanh(w @ x)
    return jnp.sum(x ** 2)
n = 2048
ws = [jnp.ones((n, n), jnp.float32) / n for _ in range(4)]
x = jnp.ones((n, 64), jnp.float32)
t0 = time.perf_counter()
jax.jit(jax.grad(lambda x: f(ws, x)))(x).block_until_ready()
print(time.perf_counter() - t0)
"""


def entries(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def whole_process(runs: int, tmp: Path) -> dict[str, Any]:
    py = sys.executable
    from suite import HANDWRITTEN  # the CPU table's hand-written jvp script, the same program

    (tmp / "hand.py").write_text(HANDWRITTEN)
    cache = tmp / "cli-cache"
    env = dict(os.environ, JAXDIFF_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT), JAXDIFF_NO_WORKER="1")
    spec = str(ROOT / "configs" / "seed000_poly.yaml")
    cli = [py, "-P", "-m", "jaxdiff_cli", "jvp", spec, "--device", "gpu", "--json"]

    def timed(cmd: list[str], before: Any = None) -> float:
        out = []
        for _ in range(runs):
            if before:
                before()
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True, cwd=tmp)
            out.append(time.perf_counter() - t0)
        return statistics.median(out)

    r = {
        "python -c 'import jax'": timed([py, "-c", "import jax"]),
        "hand-written jvp script (GPU)": timed([py, str(tmp / "hand.py")]),
        "jaxdiff jvp --device gpu, cache cold": timed(cli, lambda: shutil.rmtree(cache, ignore_errors=True)),
    }
    r["jaxdiff jvp --device gpu, cache warm"] = timed(cli)
    return {
        "seconds": r,
        "ratios": {
            "cold": r["jaxdiff jvp --device gpu, cache cold"] / r["hand-written jvp script (GPU)"],
            "warm": r["jaxdiff jvp --device gpu, cache warm"] / r["hand-written jvp script (GPU)"],
        },
    }


def relocated_cache(tmp: Path) -> list[dict[str, Any]]:
    """Fill a cache at A, copy it to B, compile again at B: new entries at B mean the copy missed."""
    probe = tmp / "probe.py"
    probe.write_text(CACHE_PROBE)
    rows = []
    for xla_caches in ("all", "none"):
        a, b = tmp / f"cache-{xla_caches}-a", tmp / f"cache-{xla_caches}-b"

        def run(folder: Path, xla_caches: str = xla_caches) -> float:
            out = subprocess.run(
                [sys.executable, str(probe), str(folder), xla_caches], capture_output=True, text=True, check=True
            )
            return float(out.stdout.strip().splitlines()[-1])

        cold = run(a)
        warm_in_place = run(a)
        shutil.copytree(a, b)
        before = entries(b)
        warm_copied = run(b)
        rows.append(
            {
                "xla_caches": xla_caches,
                "cold_s": cold,
                "warm_in_place_s": warm_in_place,
                "warm_copied_s": warm_copied,
                "entries_before": before,
                "entries_after_copied_run": entries(b),
            }
        )
        print(f"  xla caches {xla_caches}: {rows[-1]}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="gpu_results.json")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only-cache", action="store_true", help="only the copied-cache rows (merged into --out if it exists)")
    args = ap.parse_args()

    import jax
    import suite

    runs, min_time = (3, 0.05) if args.quick else (9, 0.3)
    device = jax.devices()[0]
    meta = {"device": str(device), "device_kind": device.device_kind, "jax": jax.__version__, "cpus": os.cpu_count()}
    print(f"jaxdiff on {meta['device_kind']} ({meta['device']}), jax {meta['jax']}\n", flush=True)
    results: dict[str, Any] = {"meta": meta}
    tmp = Path(tempfile.mkdtemp())
    if args.only_cache:
        out = Path(args.out)
        results = json.loads(out.read_text()) if out.exists() else results
        results["relocated_cache"] = relocated_cache(tmp)
        out.write_text(json.dumps(results, indent=1))
        return
    print("steady state, jaxdiff vs hand-written jax.jit (median per call, interleaved)", flush=True)
    results["operations"] = suite.operations(args.quick, min_time)
    ratios = [r["ratio"] for r in results["operations"]]
    print(f"  median ratio {statistics.median(ratios):.3f}x, max {max(ratios):.2f}x", flush=True)
    print("\nbatched vs a loop of single products", flush=True)
    results["batched"] = suite.batched_vs_loop(min_time)
    print(json.dumps(results["batched"]), flush=True)
    print("\nthe model case", flush=True)
    results["model"] = suite.model_case(min_time)
    print("\ncache copied to a new path (JAX's XLA caches all / none)", flush=True)
    try:
        results["relocated_cache"] = relocated_cache(tmp)
    except subprocess.CalledProcessError as exc:
        results["relocated_cache"] = {"error": exc.stderr[-2000:]}
        print(exc.stderr[-2000:])
    print(f"\nwhole process (medians of {runs} runs)", flush=True)
    try:
        results["process"] = whole_process(runs, tmp)
        print(json.dumps(results["process"], indent=1))
    except subprocess.CalledProcessError as exc:
        results["process"] = {"error": (exc.stderr or b"")[-2000:].decode(errors="replace")}
        print(results["process"])
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
