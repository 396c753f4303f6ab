"""Jacobian and Hessian pictures: terminal heatmap (golden text), image files, summary numbers."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_cli.engine.layout import Matrix, hessian_matrix, jacobian_matrix
from jaxdiff_cli.engine.plans import hessian, jacobian
from jaxdiff_cli.engine.problem import Problem, output_shape
from jaxdiff_cli.engine.summary import definiteness, lanczos_extremes, summary
from jaxdiff_cli.errors import ExitCode
from jaxdiff_cli.output.terminal import downsample, heatmap

from ..conftest import CONFIGS, Cli
from ..oracles import fd_hessian, fd_jacobian

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def render(renderable: Any, width: int = 80, color: bool = False) -> str:
    from rich.console import Console

    console = Console(
        width=width, record=True, color_system="truecolor" if color else None, force_terminal=color, file=open("/dev/null", "w")
    )
    console.print(renderable)
    return console.export_text(styles=color)


def test_terminal_heatmap_matches_golden_text(cli: Cli) -> None:
    ran = cli("jacobian", CONFIGS / "seed001_simplefun_vector.yaml", "--plot", "--mode", "fwd")
    assert ran.exit_code == ExitCode.OK
    start = ran.stdout.index("  x      w")
    text = ran.stdout[start:]
    golden = GOLDEN / "heatmap_simplefun_vector.txt"
    if not golden.exists():  # first run writes it; review it and commit it
        golden.write_text(text)
    assert text == golden.read_text()


def test_heatmap_colours_diverge_around_zero() -> None:
    m = Matrix("jacobian", np.array([[1.0, -1.0, 0.0]]), [("f", 1)], [("x", 3)])
    text = render(heatmap(m, 40), color=True)
    assert "\x1b[38;2;192;57;43m▓▓" in text  # +1: red, top level
    assert "\x1b[38;2;46;111;216m▓▓" in text  # -1: blue
    plain = render(heatmap(m, 40))
    assert "x ▓▓▓▓  \n" in plain.replace("f ", "x ", 1) or "▓▓▓▓  " in plain  # the exact zero is blank


def test_large_matrices_are_downsampled_with_a_note() -> None:
    d = np.zeros((300, 500))
    d[np.arange(300), np.arange(300)] = np.linspace(-1, 1, 300)
    text = render(heatmap(Matrix("jacobian", d, [("f", 300)], [("x", 500)]), 80, max_rows=20))
    assert "downsampled from 300x500" in text
    grid = [line for line in text.splitlines() if line.startswith("f ") or (line.startswith("  ") and "▓" in line)]
    assert 1 <= len(grid) <= 20
    assert max(len(line) for line in text.splitlines()) <= 80


def test_downsample_keeps_the_largest_magnitude_with_its_sign() -> None:
    d = np.array([[0.1, -5.0, 0.0, 0.0], [2.0, 0.0, 0.0, 3.0]])
    small, fr, fc = downsample(d, 1, 2)
    assert (fr, fc) == (2, 2) and small.tolist() == [[-5.0, 3.0]]


def test_jacobian_matrix_blocks_match_finite_differences() -> None:
    def f(p: Any, x: Any) -> Any:
        return {"a": jnp.tanh(p["W"] @ x), "s": jnp.sum(x**2) * p["b"][0]}

    params = {"W": jnp.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]]), "b": jnp.array([2.0])}
    x = jnp.array([0.3, -0.2])
    p = Problem(fn=f, names=("p", "x"), primals=(params, x), argnums=(0, 1))
    result = jacobian(p, "rev")
    m = jacobian_matrix(result.outputs["jacobian"], output_shape(p), p.diff(p.primals), p.wrt)
    assert [n for n, _ in m.rows] == ["f.a", "f.s"] and [n for n, _ in m.cols] == ["p.W", "p.b", "x"]

    def flat(v: np.ndarray) -> np.ndarray:
        W, b, xx = v[:6].reshape(3, 2), v[6:7], v[7:]
        return np.concatenate([np.tanh(W @ xx), [np.sum(xx**2) * b[0]]])

    v0 = np.concatenate([np.asarray(params["W"]).ravel(), [2.0], np.asarray(x)])
    np.testing.assert_allclose(m.data, fd_jacobian(flat, v0), rtol=1e-5, atol=1e-6)


def test_hessian_matrix_and_summary_match_numpy() -> None:
    def f(x: Any, y: Any) -> Any:
        return jnp.sum(x**3) * y[0] + x[0] * y[1] - jnp.sum(y**2)

    x, y = jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0])
    with jax.enable_x64(True):
        p = Problem(fn=f, names=("x", "y"), primals=(x.astype(jnp.float64), y.astype(jnp.float64)), argnums=(0, 1))
        m = hessian_matrix(hessian(p).outputs["hessian"], p.diff(p.primals), p.wrt)

    def flat(v: np.ndarray) -> float:
        return float(np.sum(v[:2] ** 3) * v[2] + v[0] * v[3] - np.sum(v[2:] ** 2))

    h = fd_hessian(flat, np.array([1.0, -2.0, 0.5, 3.0]))
    np.testing.assert_allclose(m.data, h, atol=1e-5)
    s = summary(m)
    eig = np.linalg.eigvalsh(h)
    assert s["zeros"] == 6 / 16  # d2f/dx0dx1, dx1dy1, dy0dy1 and their transposes are exactly 0
    assert s["frobenius_norm"] == pytest.approx(np.linalg.norm(h), rel=1e-6)
    assert s["symmetry_defect"] < 1e-12
    assert s["eigenvalues"]["min"] == pytest.approx(eig[0], rel=1e-5) and s["eigenvalues"]["max"] == pytest.approx(
        eig[-1], rel=1e-5
    )
    assert s["definiteness"] == "indefinite"


def test_lanczos_finds_the_extreme_eigenvalues_without_the_matrix() -> None:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((600, 600)))
    eig = np.concatenate([[-3.0], np.linspace(0.1, 1.0, 598), [7.5]])
    a = (q * eig) @ q.T
    lo, hi, r_lo, r_hi = lanczos_extremes(lambda v: a @ v, 600, steps=80)
    assert lo == pytest.approx(-3.0, rel=1e-6) and hi == pytest.approx(7.5, rel=1e-6)
    assert abs(lo + 3.0) <= r_lo + 1e-9 and abs(hi - 7.5) <= r_hi + 1e-9  # the bounds hold
    assert definiteness(0.1, 7.5, 7.5) == "positive definite"
    assert definiteness(-7.5, -0.1, 7.5) == "negative definite"
    assert definiteness(0.0, 2.0, 2.0) == "positive semidefinite"


def test_large_hessian_summary_uses_hvps(cli: Cli) -> None:
    ran = cli("hessian", "-f", "jnp.sum(jnp.tanh(x) ** 2) + 0.5 * jnp.sum(x**2)", "-p", "x={linspace: [-2, 2, 600]}",
              "--summary", "--json", "--dtype", "float64")  # fmt: skip
    assert ran.exit_code == ExitCode.OK, ran.stderr
    s = ran.json()["summary"]
    assert s["eigenvalues"]["method"].startswith("Lanczos")
    x = np.linspace(-2, 2, 600)
    t = np.tanh(x)
    diag = 2 * (1 - t**2) * (1 - 3 * t**2) + 1.0  # separable: the Hessian is diagonal
    e = s["eigenvalues"]
    assert abs(e["min"] - diag.min()) <= e["residual_min"] + 1e-9 and e["min"] == pytest.approx(diag.min(), rel=1e-3)
    assert abs(e["max"] - diag.max()) <= e["residual_max"] + 1e-9 and e["max"] == pytest.approx(diag.max(), rel=1e-6)
    assert s["zeros"] == pytest.approx(1 - 600 / 600**2)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_and_svg_files(cli: Cli, tmp_path: Path) -> None:
    ran = cli("jacobian", CONFIGS / "seed004_mlp.yaml", "--plot-file", tmp_path / "j.png", "-q")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert _png_size(tmp_path / "j.png") == (640, 480)
    assert (
        cli("hessian", "-f", "jnp.sum(x**4)", "-p", "x=[1,2,3]", "--plot-file", tmp_path / "h.svg", "--spy", "-q").exit_code
        == ExitCode.OK
    )
    assert (tmp_path / "h.svg").read_text().lstrip().startswith("<?xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.svg", "j.png"]


def test_plot_errors(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = cli("jacobian", "-f", "x * 2", "-p", "x=[1,2]", "--plot-file", tmp_path / "j.gif")
    assert ran.exit_code == ExitCode.BAD_INPUT and "unknown image format '.gif'" in ran.stderr
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    ran = cli("jacobian", "-f", "x * 2", "-p", "x=[1,2]", "--plot-file", tmp_path / "j.png")
    assert ran.exit_code == ExitCode.USAGE and "--plot-file needs matplotlib" in ran.stderr and "jaxdiff[plot]" in ran.stderr


def test_plot_with_json_keeps_stdout_one_document(cli: Cli) -> None:
    ran = cli("jacobian", CONFIGS / "seed001_simplefun_vector.yaml", "--plot", "--json")
    assert ran.exit_code == ExitCode.OK
    doc = ran.json()  # parses: the heatmap went to stderr
    assert doc["summary"]["zeros"] == pytest.approx(12 / 18)
    assert "legend:" in ran.stderr


def test_plot_key_in_the_spec(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("function: x**2\nprimals: {x: [1.0, 2.0]}\nplot: {terminal: true, file: pic.png}\n")
    ran = cli("jacobian", spec)
    assert ran.exit_code == ExitCode.OK and "legend:" in ran.stdout
    assert _png_size(tmp_path / "pic.png") == (640, 480)
    spec.write_text("function: x**2\nprimals: {x: [1.0]}\nplot: {colour: true}\n")
    ran = cli("jacobian", spec)
    assert ran.exit_code == ExitCode.BAD_INPUT and "plot.colour: unknown key" in ran.stderr


def test_index_ticks_count_within_each_block() -> None:
    from jaxdiff_cli.output.pictures import index_ticks

    assert index_ticks([("x", 3)]) == ([0.0, 1.0, 2.0], ["0", "1", "2"])
    positions, labels = index_ticks([("W", 40), ("b", 8)])
    assert positions == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]  # every 5: 48 entries, about 12 ticks
    assert labels == ["0", "5", "10", "15", "20", "25", "30", "35", "0", "5"]  # b's entries count from its own 0
    positions, labels = index_ticks([(f"b{i}", 1) for i in range(100)])  # 100 blocks of one: an even sample
    assert len(positions) <= 12 and set(labels) == {"0"}


def test_the_picture_carries_index_ticks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib.pyplot as plt

    from jaxdiff_cli.engine.layout import Matrix
    from jaxdiff_cli.output.pictures import save_figure

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    m = Matrix("jacobian", np.arange(12.0).reshape(3, 4) - 5, rows=[("f", 3)], cols=[("x", 2), ("w", 2)])
    save_figure(m, tmp_path / "j.png")
    (ax,) = [a for a in figures[0].axes if a.get_label() != "<colorbar>" and a.get_xlabel()]
    top, right = ax.child_axes
    assert [t.get_text() for t in top.get_xticklabels()] == ["0", "1", "0", "1"]
    assert [t.get_text() for t in right.get_yticklabels()] == ["0", "1", "2"]
    assert (tmp_path / "j.png").stat().st_size > 1000
