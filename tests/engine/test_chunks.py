"""Chunked Jacobians: in memory, automatic, and streamed into a memory-mapped .npy file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_cli.engine import bench
from jaxdiff_cli.engine.chunking import auto_chunk, block_starts, free_bytes
from jaxdiff_cli.engine.plans import plan_jacobian
from jaxdiff_cli.engine.problem import Problem, call, compile_plan
from jaxdiff_cli.errors import ExitCode

from ..conftest import Cli
from ..oracles import fd_jacobian

FN = "jnp.cumsum(jnp.sin(x)) * x[::-1]"


def closed_form(x: np.ndarray) -> np.ndarray:
    """d/dx_j of cumsum(sin x)_i * x_{n-1-i}."""
    n = x.size
    c = np.cumsum(np.sin(x))
    jac = np.tril(np.ones((n, n))) * np.cos(x)[None, :] * x[::-1][:, None]
    jac[np.arange(n), n - 1 - np.arange(n)] += c
    return jac


def test_closed_form_is_right() -> None:
    x = np.linspace(0.1, 1.0, 7)
    np.testing.assert_allclose(closed_form(x), fd_jacobian(lambda v: np.cumsum(np.sin(v)) * v[::-1], x), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("total,chunk", [(10, 3), (10, 5), (10, 10), (10, 32), (1, 1), (7, 1)])
def test_block_starts_cover_everything_once_without_padding(total: int, chunk: int) -> None:
    chunk = min(chunk, total)
    starts = block_starts(total, chunk)
    covered = np.zeros(total, int)
    for s in starts:
        assert 0 <= s <= total - chunk
        covered[s : s + chunk] += 1
    assert covered.min() >= 1 and len(starts) == -(-total // chunk)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
@pytest.mark.parametrize("chunk", ["7", "auto"])
def test_streamed_npy_matches_the_closed_form(cli: Cli, tmp_path: Path, mode: str, chunk: str) -> None:
    out = tmp_path / "jac.npy"
    ran = cli("jacobian", "-f", FN, "-p", "x={linspace: [0.1, 1.0, 50]}", "--dtype", "float64", "--mode", mode,
              "--chunk-size", chunk, "-o", out, "--json")  # fmt: skip
    assert ran.exit_code == ExitCode.OK, ran.stderr
    info = ran.json()["info"]
    assert info["streamed_to"] == str(out) and info["mode"] == mode
    if chunk == "auto":
        assert str(info["chunk_size"]).startswith("auto: ")
    saved = np.load(out)
    assert saved.shape == (50, 50)
    np.testing.assert_allclose(saved, closed_form(np.linspace(0.1, 1.0, 50)), rtol=1e-12, atol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jac.npy"]


def test_streamed_pytree_jacobian_is_flat_in_leaf_order(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "j.npy"
    ran = cli("jacobian", "-f", "lambda p: {'s': jnp.sum(p['a']) * jnp.sum(p['b']), 'v': p['a'] ** 2}",
              "-p", "p={a: [1.0, 2.0], b: [3.0, 4.0, 5.0]}", "--chunk-size", "2", "-o", out, "--json")  # fmt: skip
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.json()["info"]["layout"].startswith("flat (outputs, inputs)")
    # outputs in leaf order: s (1), v (2); inputs: a (2), b (3)
    expected = np.array([[12, 12, 3, 3, 3], [2, 0, 0, 0, 0], [0, 4, 0, 0, 0]], float)
    np.testing.assert_allclose(np.load(out), expected)


def test_chunk_size_auto_in_memory(cli: Cli) -> None:
    ran = cli("jacobian", "-f", FN, "-p", "x={linspace: [0.1, 1.0, 20]}", "--chunk-size", "auto", "--mode", "fwd", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    np.testing.assert_allclose(ran.outputs()["jacobian.x"], closed_form(np.linspace(0.1, 1.0, 20)), rtol=2e-5, atol=1e-5)
    assert ran.json()["info"]["chunk_size"].startswith("auto: 20 of 20 basis vectors")


def test_auto_chunk_shrinks_when_memory_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    x = jnp.linspace(0.1, 1.0, 400)
    p = Problem(fn=lambda v: jnp.cumsum(jnp.sin(v)) * v[::-1], names=("x",), primals=(x,), argnums=(0,))
    big, _ = auto_chunk(p, "fwd", streamed=True)
    monkeypatch.setattr("jaxdiff_cli.engine.chunking.free_bytes", lambda device: 2**20)
    small, why = auto_chunk(p, "fwd", streamed=True)
    assert big == 400 and 1 <= small < big, (big, small, why)
    assert free_bytes(jax.devices()[0]) > 0


def test_bad_chunk_size(cli: Cli) -> None:
    ran = cli("jacobian", "-f", FN, "-p", "x=[1.0, 2.0]", "--chunk-size", "lots")
    assert ran.exit_code == ExitCode.USAGE and "not a positive whole number or auto" in ran.stderr


def test_bench_times_each_mode_without_retracing() -> None:
    traces = []

    def f(x: Any) -> Any:
        traces.append(1)
        return jnp.sin(x) * x

    p = Problem(fn=f, names=("x",), primals=(jnp.ones(5),), argnums=(0,))
    plan = plan_jacobian(p, "fwd")
    compiled, _ = compile_plan(plan)
    before = len(traces)
    for _ in range(20):
        call(compiled, plan)
    assert len(traces) == before  # calls of the compiled program never trace again
    timings = [bench.time_plan(plan_jacobian(p, m), min_time=0.01) for m in ("fwd", "rev")]
    assert all(t.runs >= 5 and t.median_s > 0 for t in timings)
    assert bench.recommend(timings) is not None


def test_bench_command(cli: Cli) -> None:
    ran = cli("bench", "-f", "jnp.sum(jnp.tanh(x)**2)", "-p", "x={ones: [10]}", "-t", "x={ones: [10]}",
              "--op", "hvp", "--min-time", "0.01", "--json")  # fmt: skip
    assert ran.exit_code == ExitCode.OK, ran.stderr
    doc = ran.json()
    assert [t["mode"] for t in doc["timings"]] == ["fwd-rev", "rev-fwd", "rev-rev"]
    assert doc["recommendation"].split(":")[0] in ("fwd-rev", "rev-fwd", "rev-rev")
    ran = cli("bench", "-f", FN, "-p", "x={ones: [10]}", "--chunk-size", "4", "--min-time", "0.01", "--json")
    assert [t["mode"] for t in ran.json()["timings"]] == ["fwd", "rev", "fwd chunk 4", "rev chunk 4"]
    assert ran.json()["auto"].startswith("auto would choose fwd")


@pytest.mark.parametrize("command", ["jvp", "vjp", "jacobian"])
def test_baked_primals_give_the_same_numbers(cli: Cli, command: str) -> None:
    from ..conftest import CONFIGS

    plain = cli(command, CONFIGS / "seed004_mlp.yaml", "--json", "--dtype", "float64")
    baked = cli(command, CONFIGS / "seed004_mlp.yaml", "--json", "--dtype", "float64", "--bake-primals")
    assert baked.exit_code == ExitCode.OK, baked.stderr
    assert baked.json()["info"]["baked_primals"] is True
    for name, value in plain.outputs().items():
        np.testing.assert_allclose(baked.outputs()[name], value, rtol=1e-12, atol=1e-14)


def test_streamed_npy_replaces_a_file_keeping_its_permissions(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "jac.npy"
    np.save(out, np.zeros(1))
    out.chmod(0o640)
    ran = cli("jacobian", "-f", FN, "-p", "x={linspace: [0.1, 1.0, 9]}", "--chunk-size", "4", "-o", out, "-q")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert out.stat().st_mode & 0o777 == 0o640
    assert np.load(out).shape == (9, 9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jac.npy"]


def test_bench_calls_a_difference_within_noise_a_tie() -> None:
    def t(mode: str, median: float, least: float) -> bench.Timing:
        return bench.Timing(mode, 0.1, median, least, 100, None)

    assert bench.recommend([t("fwd", 1.00e-3, 0.90e-3), t("rev", 1.30e-3, 1.20e-3)]) == (
        "fwd: 1.30x faster than rev in steady state"
    )
    assert bench.recommend([t("fwd", 1.00e-3, 0.99e-3), t("rev", 1.02e-3, 1.01e-3)]).startswith(  # type: ignore[union-attr]
        "fwd: a tie with rev in steady state (1.02x, within noise)"
    )
    # 20% apart in the medians, but the slower one's best run beat the faster one's median: noise
    assert "a tie" in str(bench.recommend([t("rev", 1.0e-3, 0.8e-3), t("fwd", 1.2e-3, 0.95e-3)]))
    assert bench.recommend([t("fwd", 1.0e-3, 1.0e-3)]) is None
