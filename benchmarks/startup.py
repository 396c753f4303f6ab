"""Whole-process timings: `jaxdiff --help` vs a bare Typer import vs `import jax`, and a spec run
with the compilation cache cold, warm and off. Medians of 7.

    .venv/bin/python benchmarks/startup.py

(The full suite against hand-written JAX is issue 4's; this is the start-up part of it.)
"""

import os
import shutil
import statistics
import subprocess
import tempfile
import time

J = ".venv/bin/jaxdiff"
PY = ".venv/bin/python"


def t(cmd, env=None, n=7, setup=None):
    xs = []
    for _ in range(n):
        if setup:
            setup()
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=True)
        xs.append(time.perf_counter() - t0)
    return statistics.median(xs)


cache = tempfile.mkdtemp()
env = dict(os.environ, JAXDIFF_CACHE_DIR=cache)


def clear():
    shutil.rmtree(cache, ignore_errors=True)
    os.makedirs(cache)


r = {}
r["jaxdiff --help"] = t([J, "--help"])
r["python -c 'import typer' (bare)"] = t([PY, "-c", "import typer"])
r["python -c 'import jax'"] = t([PY, "-c", "import jax"])
spec = "configs/seed000_poly.yaml"
r["jvp poly, cold cache"] = t([J, "jvp", spec, "--json"], env=env, setup=clear)
r["jvp poly, warm cache"] = t([J, "jvp", spec, "--json"], env=env)
r["jvp poly, --no-cache"] = t([J, "jvp", spec, "--json", "--no-cache"], env=env)
spec = "configs/seed004_mlp.yaml"
r["jacobian mlp, cold cache"] = t([J, "jacobian", spec, "--json"], env=env, setup=clear)
r["jacobian mlp, warm cache"] = t([J, "jacobian", spec, "--json"], env=env)
for k, v in r.items():
    print(f"{k:40s} {v * 1000:8.0f} ms")
