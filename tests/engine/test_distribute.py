"""Sharding over devices and processes. Every multi-device run is a subprocess (XLA_FLAGS must be set
before JAX starts, and must not leak into other tests), bounded in time, with no process left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import ASSETS, ROOT, Cli

JAXDIFF = str(Path(sys.executable).parent / "jaxdiff")
FN = ["-f", "jnp.cumsum(jnp.sin(x)) * x[::-1]", "-p", "x={linspace: [0.1, 1.0, 7]}"]


def env(devices: int, tmp: Path) -> dict[str, str]:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAXDIFF_CACHE_DIR=str(tmp / "cache"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_every_sharded_operation_matches_one_device(tmp_path: Path) -> None:
    """3 devices: 7 basis vectors, batches of 7, 5, 6 and 8 -- mostly uneven."""
    out = subprocess.run(
        [sys.executable, str(ASSETS / "sharded_compare.py"), "3"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env(3, tmp_path),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report) == 11
    for name, row in report.items():
        assert "error" not in row, (name, row)
        assert row["devices"] == 3 and row["same_shapes"], (name, row)
        assert row["max_abs_diff"] <= 1e-6, (name, row)  # at most an ulp of float32 from a different fusion


@pytest.mark.slow
def test_run_spreads_cases_over_devices(tmp_path: Path) -> None:
    spec = tmp_path / "cases.yaml"
    spec.write_text(
        "function: jnp.sum(jnp.sin(x) * x)\nrun: [grad]\ncases:\n"
        + "".join(f"  - name: c{i}\n    primals: {{x: [{i}.0, 1.0]}}\n" for i in range(4))
    )
    out = subprocess.run(
        [JAXDIFF, "run", str(spec), "--devices", "all", "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env(2, tmp_path),
    )
    assert out.returncode == 0, out.stderr
    cases = json.loads(out.stdout)["cases"]
    assert [c["device"].split(" ")[0] for c in cases] == ["cpu:0", "cpu:1", "cpu:0", "cpu:1"]
    for i, case in enumerate(cases):
        x = np.array([float(i), 1.0])
        np.testing.assert_allclose(case["results"][0]["outputs"]["grad.x"]["data"], np.sin(x) + x * np.cos(x), rtol=1e-6)


def _two_processes(tmp_path: Path, args: list[str]) -> list[subprocess.CompletedProcess[str]]:
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                JAXDIFF,
                *args,
                "--devices",
                "all",
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env(2, tmp_path), JAXDIFF_CLUSTER_TIMEOUT="60"),
        )
        for i in range(2)
    ]
    results = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=240)
            results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:  # no process left behind, whatever happened
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_two_processes_compute_a_sharded_jacobian(tmp_path: Path, mode: str) -> None:
    single = subprocess.run(
        [JAXDIFF, "jacobian", *FN, "--mode", mode, "--json"], capture_output=True, text=True, timeout=120, env=env(1, tmp_path)
    )
    expected = np.asarray(json.loads(single.stdout)["outputs"]["jacobian.x"]["data"])
    first, second = _two_processes(tmp_path, ["jacobian", *FN, "--mode", mode, "--chunk-size", "1", "--json"])
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-1500:], second.stderr[-1500:])
    doc = json.loads(first.stdout)  # process 0: one JSON document, nothing else on stdout
    assert doc["info"]["devices"] == 4
    np.testing.assert_array_equal(np.asarray(doc["outputs"]["jacobian.x"]["data"]), expected)
    assert second.stdout == ""  # only process 0 prints


@pytest.mark.slow
def test_unreachable_coordinator_is_a_clean_error(tmp_path: Path) -> None:
    cluster = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", "--process-id", "1"]
    out = subprocess.run(
        [JAXDIFF, "jacobian", *FN, "--devices", "all", *cluster],
        capture_output=True, text=True, timeout=60, env=dict(env(1, tmp_path), JAXDIFF_CLUSTER_TIMEOUT="2"),
    )  # fmt: skip
    assert out.returncode == 3
    assert "cannot reach the coordinator 127.0.0.1:" in out.stderr and "within 2 s" in out.stderr
    assert "Traceback" not in out.stderr


def test_device_errors(cli: Cli) -> None:
    ran = cli("jacobian", *FN, "--devices", "9")
    assert ran.exit_code == ExitCode.BAD_INPUT and "9 devices asked for, but JAX sees 1" in ran.stderr
    assert cli("jacobian", *FN, "--devices", "none").exit_code == ExitCode.USAGE
    ran = cli("jacobian", *FN, "--coordinator", "127.0.0.1:1")
    assert ran.exit_code == ExitCode.USAGE and "need --coordinator, --num-processes and --process-id together" in ran.stderr
    ran = cli("eval", *FN[:2], "-p", "x=[1.0]", "--json")
    assert ran.exit_code == ExitCode.OK  # eval has nothing to shard and no --devices


def test_one_device_mesh_and_unbatched_products(cli: Cli) -> None:
    ran = cli("jacobian", *FN, "--devices", "all", "--json")
    assert ran.exit_code == ExitCode.OK and ran.json()["info"]["devices"] == 1
    ran = cli("jvp", *FN, "-t", "x={ones: [7]}", "--devices", "all", "--json")
    assert ran.exit_code == ExitCode.OK and ran.json()["info"]["devices"].startswith("1 (nothing to shard")
