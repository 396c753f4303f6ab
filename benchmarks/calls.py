"""A call in milliseconds: the resident worker, the import floor and --json, measured side by side.

    .venv/bin/python benchmarks/calls.py [--rounds N] [--out F]     (part of `make bench`)

Whole processes, the rounds interleaved (every case once per round, so the machine's noise falls
on all alike), medians over the rounds; the compilation cache warm for every case:

* a tiny `jvp` (``jnp.sin(x)*x`` at a scalar) through a worker vs the same call without one;
* `jacobian --json` of ``tanh(A @ x)``, n = 200, A and x from .npy files, through a worker vs without;
* without a worker, a tiny `jvp` process's CPU time vs ``python -c "import numpy"``'s;
* in one process, the --json document of a 10^6-entry float32 Jacobian (jaxdiff's encoder, written
  to a file) vs ``np.save`` of the same array; the encoder jaxdiff had before is timed once.

Writes benchmarks/calls.json; benchmarks/report.py turns it into a section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
BIN = Path(sys.executable).parent
TARGETS = {"worker jvp": 0.15, "worker jacobian": 0.20, "jvp cpu / numpy": 4.5, "json / np.save": 3.0}
TINY = ["jvp", "-f", "jnp.sin(x)*x", "-p", "x=1.0", "-t", "x=1.0", "--json"]


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one process; CPU is its own, user + system."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def processes(rounds: int) -> dict[str, Any]:
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="jdcalls-"))
    rng = np.random.default_rng(0)
    np.save(tmp / "A.npy", (rng.standard_normal((200, 200)) / 14).astype(np.float32))
    np.save(tmp / "x.npy", rng.standard_normal(200).astype(np.float32))
    (tmp / "jac.yaml").write_text("function: jnp.tanh(A @ x)\nprimals:\n  A: {file: A.npy}\n  x: {file: x.npy}\nwrt: [x]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAXDIFF_", "PYTHONDONTWRITEBYTECODE"))}
    env.update(JAXDIFF_CACHE_DIR=str(tmp / "cache"), JAXDIFF_WORKER_DIR=tempfile.mkdtemp(prefix="jdw-"))
    plain = {**env, "JAXDIFF_NO_WORKER": "1"}
    jd, py = str(BIN / "jaxdiff"), str(BIN / "python")
    cases = {
        "tiny jvp, no worker": ([jd, *TINY], plain),
        "tiny jvp, worker": ([jd, *TINY], env),
        "jacobian n=200 --json, no worker": ([jd, "jacobian", "jac.yaml", "--json"], plain),
        "jacobian n=200 --json, worker": ([jd, "jacobian", "jac.yaml", "--json"], env),
        "python -c 'import numpy'": ([py, "-c", "import numpy"], plain),
        "python -c 'import jax'": ([py, "-c", "import jax"], plain),
    }
    subprocess.run([py, "-m", "compileall", "-q", str(ROOT / "jaxdiff_cli")], check=True, capture_output=True)
    started = subprocess.run([jd, "worker", "start"], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        for cmd, e in cases.values():  # the compilation cache warm, bytecode written, the worker's first child
            run(cmd, e, tmp)
        wall: dict[str, list[float]] = {k: [] for k in cases}
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(rounds):
            for name, (cmd, e) in cases.items():
                w, c = run(cmd, e, tmp)
                wall[name].append(w)
                cpu[name].append(c)
        status = subprocess.run([jd, "worker", "status"], env=env, capture_output=True, text=True).stdout
    finally:
        subprocess.run([jd, "worker", "stop"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in wall.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    per_round = {  # each round's ratio: their spread says how much to trust the median
        "worker jvp": [w / n for w, n in zip(wall["tiny jvp, worker"], wall["tiny jvp, no worker"])],
        "worker jacobian": [
            w / n for w, n in zip(wall["jacobian n=200 --json, worker"], wall["jacobian n=200 --json, no worker"])
        ],
        "jvp cpu / numpy": [j / n for j, n in zip(cpu["tiny jvp, no worker"], cpu["python -c 'import numpy'"])],
    }
    return {
        "rounds": rounds,
        "wall_s": med,
        "cpu_s": cpu_med,
        "ratios": {
            "worker jvp": med["tiny jvp, worker"] / med["tiny jvp, no worker"],
            "worker jacobian": med["jacobian n=200 --json, worker"] / med["jacobian n=200 --json, no worker"],
            "jvp cpu / numpy": cpu_med["tiny jvp, no worker"] / cpu_med["python -c 'import numpy'"],
        },
        "ratio_ranges": {k: [min(v), max(v)] for k, v in per_round.items()},
        "served": status.strip().splitlines()[0] if status else "",
    }


def json_vs_npsave(rounds: int) -> dict[str, Any]:
    import numpy as np

    from jaxdiff_cli.encoding import array_doc, array_json, dumps

    jac = np.random.default_rng(0).standard_normal((1000, 1000)).astype(np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="jdjson-"))

    def encode() -> None:
        (tmp / "J.json").write_bytes(dumps({"outputs": {"jacobian": array_doc(jac)}}) + b"\n")

    def save() -> None:
        with open(tmp / "J.npy", "wb") as f:
            np.save(f, jac)

    times: dict[str, list[float]] = {"json": [], "np.save": []}
    for _ in range(rounds):
        for name, fn in (("json", encode), ("np.save", save)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t0 = time.perf_counter()  # what --json did before orjson: Python numbers, joined by the json module
    (tmp / "old.json").write_text(json.dumps({"outputs": {"jacobian": array_json(jac)}}, allow_nan=False) + "\n")
    before = time.perf_counter() - t0
    sizes = {"json": (tmp / "J.json").stat().st_size, "np.save": (tmp / "J.npy").stat().st_size}
    shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "entries": jac.size,
        "seconds": {**med, "json before (array_json + json.dumps, once)": before},
        "bytes": sizes,
        "ratio": med["json"] / med["np.save"],
        "speedup_over_before": before / med["json"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "calls.json"))
    args = ap.parse_args()
    print(f"a call in milliseconds (medians of {args.rounds} interleaved rounds)")
    proc = processes(args.rounds)
    for k, v in proc["wall_s"].items():
        print(f"  {k:36s} {v * 1e3:8.0f} ms wall {proc['cpu_s'][k] * 1e3:8.0f} ms CPU")
    out = json_vs_npsave(args.rounds)
    print(
        f"  --json of a 10^6-entry Jacobian {out['seconds']['json'] * 1e3:.1f} ms, np.save {out['seconds']['np.save'] * 1e3:.1f} ms"
    )
    ratios = {**proc["ratios"], "json / np.save": out["ratio"]}
    for k, v in ratios.items():
        print(f"  ratio {k:18s} {v:6.3f}x  (target <= {TARGETS[k]})")
    Path(args.out).write_text(json.dumps({"targets": TARGETS, "process": proc, "json": out}, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
