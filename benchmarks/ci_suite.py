"""Hundreds of specs in one CI run (issue 25): a generated suite, `jaxdiff check` on it against the
hand-written pytest equivalent, the pytest plugin against `check`, peak memory in N, and a cache
copied to a new path against the cache in place, all measured side by side in one run.

    make bench-ci                                       # or: .venv/bin/python benchmarks/ci_suite.py
    .venv/bin/python benchmarks/ci_suite.py --sizes 25 100 --out benchmarks/ci_results.json
    .venv/bin/python benchmarks/ci_suite.py --write DIR --sizes 25   # only write the suite

The suite is generated deterministically (the same files for the same N): elementwise and reduction
functions, MLP losses over dict parameters, matrix functions, custom_jvp functions from a module, and
specs with cases:. Each spec records golden values (expect:) that the generator computes in NumPy,
and the hand-written side checks the same golden values plus `jax.test_util.check_grads` of order 2,
as a user would write it. Ratios are jaxdiff / hand-written (below 1, jaxdiff is faster).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KINDS = ("elementwise", "reduction", "mlp", "matrix", "custom", "cases")

MODULE = '''"""Functions of the generated CI suite (benchmarks/ci_suite.py)."""
import jax
import jax.numpy as jnp


@jax.custom_jvp
def softplus(x):
    return jnp.logaddexp(x, 0.0)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), jax.nn.sigmoid(x) * t


def mlp_loss(params, x, y):
    h = jnp.tanh(params["w1"] @ x + params["b1"])
    return jnp.mean((params["w2"] @ h - y) ** 2)


def matrix_fn(a):
    return jnp.trace(a @ a.T) + jnp.sum(jnp.sin(a) @ a)
'''

ELEMENTWISE = ["jnp.sin(x) * x**2", "jnp.tanh(x) + 0.5 * x**3", "jnp.exp(-x**2) * jnp.cos(x)", "x / (1.0 + x**2)"]
ELEMENTWISE_NP = [
    lambda x: np.sin(x) * x**2,
    lambda x: np.tanh(x) + 0.5 * x**3,
    lambda x: np.exp(-(x**2)) * np.cos(x),
    lambda x: x / (1.0 + x**2),
]
REDUCTION = ["jnp.sum(jnp.sin(x) * x)", "jnp.sum(x**2) + jnp.prod(jnp.cos(x))", "jnp.log(jnp.sum(jnp.exp(x)))"]
REDUCTION_NP = [lambda x: np.sum(np.sin(x) * x), lambda x: np.sum(x**2) + np.prod(np.cos(x)), lambda x: np.log(np.sum(np.exp(x)))]


def _floats(a: np.ndarray) -> Any:
    return np.round(np.asarray(a, np.float64), 6).tolist()


def spec_text(i: int) -> tuple[str, dict[str, Any]]:
    """Spec number i: its YAML and what the hand-written test needs (function, primals, golden value)."""
    rng = np.random.default_rng(i)
    kind = KINDS[i % len(KINDS)]
    n = 3 + i % 5
    x = np.round(rng.uniform(-1.0, 1.0, n), 6)
    if kind in ("elementwise", "reduction", "custom", "cases"):
        if kind == "elementwise":
            j = i % len(ELEMENTWISE)
            fn, value = ELEMENTWISE[j], ELEMENTWISE_NP[j](x)
        elif kind == "reduction":
            j = i % len(REDUCTION)
            fn, value = REDUCTION[j], REDUCTION_NP[j](x)
        else:
            fn, value = "fns.py:softplus", np.logaddexp(x, 0.0)
        if kind == "cases":
            x2 = np.round(rng.uniform(-1.0, 1.0, n + 1), 6)
            text = (
                f"function: fns.py:softplus\ncases:\n  - name: a\n    primals: {{x: {_floats(x)}}}\n"
                f"    expect: {{value: {_floats(np.logaddexp(x, 0.0))}, rtol: 1.0e-5}}\n"
                f"  - name: b\n    primals: {{x: {_floats(x2)}}}\n"
                f"    expect: {{value: {_floats(np.logaddexp(x2, 0.0))}, rtol: 1.0e-5}}\n"
            )
            return text, {"fn": "softplus", "cases": [{"x": x.tolist()}, {"x": x2.tolist()}]}
        text = f'function: "{fn}"\nprimals: {{x: {_floats(x)}}}\nexpect: {{value: {_floats(value)}, rtol: 1.0e-5}}\n'
        return text, {"fn": "softplus" if kind == "custom" else fn, "cases": [{"x": x.tolist()}]}
    if kind == "mlp":
        h = 4 + i % 3
        p = {"w1": rng.normal(0, 0.5, (h, n)), "b1": rng.normal(0, 0.1, h), "w2": rng.normal(0, 0.5, (2, h))}
        p = {k: np.round(v, 6) for k, v in p.items()}
        y = np.round(rng.normal(0, 1, 2), 6)
        value = np.mean((p["w2"] @ np.tanh(p["w1"] @ x + p["b1"]) - y) ** 2)
        params = ", ".join(f"{k}: {_floats(v)}" for k, v in p.items())
        text = (
            f"function: fns.py:mlp_loss\nprimals:\n  params: {{{params}}}\n  x: {_floats(x)}\n  y: {_floats(y)}\n"
            f"wrt: [params]\nexpect: {{value: {float(np.round(value, 12))}, rtol: 1.0e-5}}\n"
        )
        case = {"params": {k: v.tolist() for k, v in p.items()}, "x": x.tolist(), "y": y.tolist()}
        return text, {"fn": "mlp_loss", "cases": [case]}
    a = np.round(rng.uniform(-1.0, 1.0, (3, 3)), 6)
    value = np.trace(a @ a.T) + np.sum(np.sin(a) @ a)
    text = f"function: fns.py:matrix_fn\nprimals: {{a: {_floats(a)}}}\nexpect: {{value: {float(np.round(value, 12))}, rtol: 1.0e-5}}\n"
    return text, {"fn": "matrix_fn", "cases": [{"a": a.tolist()}]}


HANDWRITTEN = '''"""The hand-written equivalent of `jaxdiff check` on the generated suite: golden values, and
jax.test_util.check_grads of order 2 in both modes, as a user would write them."""
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fns

CASES = json.loads((Path(__file__).parent / "cases.json").read_text())


def function(name):
    return getattr(fns, name) if hasattr(fns, name) else eval("lambda x: " + name, {"jnp": jnp})


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_spec(case):
    f = function(case["fn"])
    def array(v):
        return {k: jnp.asarray(a, jnp.float32) for k, a in v.items()} if isinstance(v, dict) else jnp.asarray(v, jnp.float32)

    args = {k: array(v) for k, v in case["args"].items()}
    np.testing.assert_allclose(f(**args), np.asarray(case["value"]), rtol=1e-5, atol=1e-6)
    if "y" in args:
        check_grads(lambda p: f(p, args["x"], args["y"]), (args["params"],), order=2, modes=["fwd", "rev"], atol=1e-2, rtol=1e-2)
    else:
        check_grads(f, tuple(args.values()), order=2, modes=["fwd", "rev"], atol=1e-2, rtol=1e-2)
'''


def write_suite(folder: Path, n: int) -> list[Path]:
    """N specs in ``folder`` (and the hand-written test beside them), the same files for the same N."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fns.py").write_text(MODULE)
    (folder / "test_handwritten.py").write_text(HANDWRITTEN)
    cases = []
    paths = []
    for i in range(n):
        text, info = spec_text(i)
        path = folder / f"spec{i:04d}.yaml"
        path.write_text(text)
        paths.append(path)
        for k, args in enumerate(info["cases"]):
            f = info["fn"]
            fn_np = {"softplus": lambda x: np.logaddexp(x, 0.0)}.get(f)
            if f == "mlp_loss":
                p, x, y = (
                    (np.asarray(args["params"][k_], float) for k_ in ("w1", "b1", "w2")),
                    np.asarray(args["x"]),
                    np.asarray(args["y"]),
                )
                w1, b1, w2 = p
                value = float(np.mean((w2 @ np.tanh(w1 @ x + b1) - y) ** 2))
            elif f == "matrix_fn":
                a = np.asarray(args["a"])
                value = float(np.trace(a @ a.T) + np.sum(np.sin(a) @ a))
            elif fn_np is not None:
                value = fn_np(np.asarray(args["x"])).tolist()
            else:
                table = dict(zip(ELEMENTWISE + REDUCTION, ELEMENTWISE_NP + REDUCTION_NP))
                value = np.asarray(table[f](np.asarray(args["x"]))).tolist()
            cases.append({"id": f"spec{i:04d}-{k}", "fn": f, "args": args, "value": value})
    (folder / "cases.json").write_text(json.dumps(cases))
    return paths


def measured(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, int]:
    """(seconds, peak RSS in bytes, exit status) of one process; its output's tail is printed when it fails."""
    log = cwd / "last-output.txt"
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"exit {code}: {' '.join(cmd[:4])} ...", *tail, sep="\n  ", file=sys.stderr)
    return seconds, int(usage.ru_maxrss) * 1024, code


def bench_size(n: int, work: Path) -> dict[str, Any]:
    folder = work / f"suite{n}"
    paths = write_suite(folder, n)
    cache = work / f"cache{n}"
    env = {**os.environ, "JAXDIFF_CACHE_DIR": str(cache), "XDG_CONFIG_HOME": str(work / "config")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    check = [str(BIN / "jaxdiff"), "check", "-q", *[p.name for p in paths]]
    pytest_cmd = [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    out: dict[str, Any] = {"specs": n}
    cold, out["peak_rss_bytes"], code = measured(check, env, folder)
    out["exit"] = code
    warm, _, _ = measured(check, env, folder)
    moved = work / f"moved{n}"
    shutil.copytree(cache, moved)
    relocated, _, _ = measured(check, {**env, "JAXDIFF_CACHE_DIR": str(moved)}, folder)
    hand, _, hand_code = measured([*pytest_cmd, "test_handwritten.py"], env, folder)
    plugin, _, plugin_code = measured([*pytest_cmd, "--jaxdiff", *[p.name for p in paths]], env, folder)
    warm_again, _, _ = measured(check, env, folder)  # the plugin beside a check measured just before it
    out["seconds"] = {
        "check cold": cold, "check warm": warm, "check, cache copied to a new path": relocated,
        "hand-written pytest": hand, "pytest --jaxdiff (warm)": plugin, "check warm (again)": warm_again,
    }  # fmt: skip
    out["exits"] = {"handwritten": hand_code, "plugin": plugin_code}
    out["ratios"] = {
        "check cold / hand-written": cold / hand,
        "check warm / hand-written": warm / hand,
        "cache copied to a new path / in place": relocated / warm,
        "plugin / check (warm)": plugin / min(warm, warm_again),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[25, 100, 300])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "ci_results.json")
    parser.add_argument("--write", type=Path, help="only write a suite of the first size into this folder")
    args = parser.parse_args()
    if args.write:
        write_suite(args.write, args.sizes[0])
        return
    import jax

    with tempfile.TemporaryDirectory(prefix="jaxdiff-ci-") as tmp:
        sizes = [bench_size(n, Path(tmp)) for n in args.sizes]
    for r in sizes:
        print(f"{r['specs']} specs: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["seconds"].items()))
        print(
            "   "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["ratios"].items())
            + f"; peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB"
        )
    small, big = sizes[0], sizes[-1]
    result = {
        "meta": {"jax": jax.__version__, "cpus": os.cpu_count(), "machine": platform.machine()},
        "sizes": sizes,
        "memory": {
            "peak at largest / peak at smallest": big["peak_rss_bytes"] / small["peak_rss_bytes"],
            "sizes": [small["specs"], big["specs"]],
        },
    }
    print(f"peak RSS at {big['specs']} / at {small['specs']} specs: {result['memory']['peak at largest / peak at smallest']:.2f}")
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
