"""Run in a subprocess with forced host devices: each sharded operation vs the same on one device.

Prints one JSON line: {case: {"devices": N, "max_abs_diff": d}} or {case: {"error": ...}}.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={sys.argv[1]}"
os.environ.setdefault("JAXDIFF_CACHE_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "jaxdiff-shard-test"))

import numpy as np
from typer.testing import CliRunner

from jaxdiff_cli.cli import app

FN = ["-f", "jnp.cumsum(jnp.sin(x)) * x[::-1]", "-p", "x={linspace: [0.1, 1.0, 7]}"]
SCALAR = ["-f", "jnp.sum(jnp.tanh(x) ** 2) + jnp.sum(x[:-1] * x[1:]) ** 2", "-p", "x={linspace: [-1, 1, 7]}"]
TWO_TREES = "lambda p, x: jnp.sum(p['a']**2 * x) + jnp.sum(p['n']['b']) * jnp.sum(x**3)"
CASES = {
    "jacobian fwd": ["jacobian", *FN, "--mode", "fwd"],
    "jacobian rev": ["jacobian", *FN, "--mode", "rev"],
    "jacobian fwd chunked": ["jacobian", *FN, "--mode", "fwd", "--chunk-size", "1"],
    "jacobian rev chunked": ["jacobian", *FN, "--mode", "rev", "--chunk-size", "3"],
    "jacobian pytree": ["jacobian", "configs/seed004_mlp.yaml", "--mode", "rev"],
    "hessian": ["hessian", *SCALAR],
    "hessian, two pytree arguments": [
        "hessian",
        "-f",
        TWO_TREES,
        "-p",
        "p={a: [1, 2, 3], n: {b: [0.5, 1.5]}}",
        "-p",
        "x={linspace: [-1, 1, 3]}",
        "-w",
        "p,x",
    ],
    "batched jvp (7 on N)": ["jvp", *FN, "-t", "x={random: normal, shape: [7, 7], seed: 1}"],
    "batched vjp (5 on N)": ["vjp", *FN, "-c", "{random: normal, shape: [5, 7], seed: 2}"],
    "batched hvp": ["hvp", *SCALAR, "-t", "x={random: normal, shape: [6, 7], seed: 3}"],
    "batched jvp, pytree": ["jvp", "configs/seed004_mlp_batched.yaml"],
}


def outputs(args: list[str]) -> tuple[dict, dict]:
    ran = CliRunner().invoke(app, [*args, "--json"])
    if ran.exit_code:
        raise RuntimeError(ran.stderr.strip())
    doc = json.loads(ran.stdout)
    return {k: np.asarray(v["data"], dtype=v["dtype"]) for k, v in doc["outputs"].items()}, doc["info"]


report = {}
for name, args in CASES.items():
    try:
        one, _ = outputs(args)
        many, info = outputs([*args, "--devices", "all"])
        assert set(one) == set(many), (sorted(one), sorted(many))
        diff = max(float(np.max(np.abs(one[k] - many[k]), initial=0.0)) for k in one)
        shapes = all(one[k].shape == many[k].shape for k in one)
        report[name] = {"devices": info.get("devices"), "max_abs_diff": diff, "same_shapes": shapes}
    except Exception as exc:  # reported, and the test fails on it
        report[name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(report))
