"""How a sparse Jacobian or Hessian is shown and written: the braille spy picture, COO JSON, scipy .npz,
Matrix Market, the spy image, diagnostics. Matrices are built by hand here (no asdex needed), some far
too large to densify, so nothing here may densify them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.engine.diagnostics import first_nonfinite, precision_warnings
from jaxdiff_cli.engine.sparse import Coloring, SparseMatrix
from jaxdiff_cli.errors import ExitCode
from jaxdiff_cli.output.render import coo_json, output_json, sparse_text

from ..conftest import Cli


def matrix(row: Any, col: Any, data: Any, shape: tuple[int, int], **more: Any) -> SparseMatrix:
    coloring = Coloring("column", "fwd", 3, np.zeros(shape[1], np.int32), f"3 JVPs instead of {shape[1]:,}")
    blocks = {"rows": [("f", shape[0])], "cols": [("x", shape[1])], **more}
    return SparseMatrix(
        "jacobian", shape, np.asarray(row, np.int32), np.asarray(col, np.int32),
        None if data is None else np.asarray(data), blocks["rows"], blocks["cols"], coloring,
    )  # fmt: skip


def band(n: int) -> SparseMatrix:
    """The tridiagonal pattern of a 1-D stencil, n x n, in row-major order."""
    i = np.arange(n)
    row = np.concatenate([i, i[1:], i[:-1]])
    col = np.concatenate([i, i[1:] - 1, i[:-1] + 1])
    order = np.lexsort((col, row))
    return matrix(row[order], col[order], np.ones(row.size, np.float32), (n, n))


def text(renderable: Any, width: int = 100) -> str:
    import io

    from rich.console import Console

    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return str(console.export_text())


def test_spy_draws_two_by_four_entries_a_character() -> None:
    from jaxdiff_cli.output.terminal import spy

    eye = matrix([0, 1, 2, 3], [0, 1, 2, 3], np.ones(4, np.float32), (4, 4))
    lines = text(spy(eye)).splitlines()
    # (0,0) and (1,1) in the first character (dots 1 and 5), (2,2) and (3,3) in the second (dots 3 and 8)
    assert lines[1] == "f ⠑⢄" and lines[0].strip() == "x"
    assert lines[2] == "spy: jacobian 4x4, 4 nonzeros (density 25%); each dot one entry (rows: outputs, columns: inputs)"


def test_spy_of_a_matrix_too_large_to_densify_shows_its_band_and_blocks() -> None:
    from jaxdiff_cli.output.terminal import spy

    n = 10**6  # 4 TB dense
    sm = band(n)
    sm = SparseMatrix(sm.kind, sm.shape, sm.row, sm.col, sm.data, [("f[0]", n // 2), ("f[1]", n // 2)],
                      [("u", n // 2), ("v", n // 2)], sm.coloring)  # fmt: skip
    out = text(spy(sm, width=80))
    lines = out.splitlines()
    assert lines[0].split() == ["u", "v"]
    assert lines[1].startswith("f[0]") and any(line.startswith("f[1]") for line in lines)
    assert any("─" in line for line in lines) and any("│" in line for line in lines)  # the blocks' borders
    assert "⠻⣦⡀" in out  # the band
    assert "spy: jacobian 1,000,000x1,000,000, 2,999,998 nonzeros" in " ".join(out.split())
    picture = lines[: next(i for i, line in enumerate(lines) if line.startswith("spy:"))]
    assert max(len(line) for line in picture) <= 80 and len(picture) <= 18


def test_coo_json_reads_back_to_the_same_bits() -> None:
    data = np.array([0.1, 1 / 3, -2.5e-30, float("nan")], np.float32)
    sm = matrix([0, 0, 1, 2], [1, 2, 0, 2], data, (3, 3))
    doc = json.loads(json.dumps(output_json(sm)))
    assert doc == coo_json(sm)
    assert doc["format"] == "coo" and doc["shape"] == [3, 3] and doc["dtype"] == "float32"
    assert doc["row"] == [0, 0, 1, 2] and doc["col"] == [1, 2, 0, 2] and doc["data"][3] == "NaN"
    back = np.asarray([float(v) for v in doc["data"]], np.float32)
    np.testing.assert_array_equal(back[:3].view(np.uint32), data[:3].view(np.uint32))
    pattern = coo_json(matrix([0], [1], None, (2, 2)))
    assert pattern == {"format": "coo", "shape": [2, 2], "row": [0], "col": [1]}


def test_diagnostics_name_a_sparse_entry_by_row_and_column() -> None:
    sm = matrix([0, 1, 2], [0, 2, 1], np.array([1.0, np.inf, 2.0], np.float32), (3, 3))
    assert first_nonfinite({"jacobian": sm}) == ("jacobian", (1, 2), float("inf"))
    wide = matrix([0, 1], [0, 1], np.array([1e-20, 1.0], np.float32), (2, 2))
    assert precision_warnings({"jacobian": wide}) == ["jacobian spans 1e-20 to 1, wider than float32's ~7 digits can relate"]


def test_the_terminal_text_of_a_sparse_result() -> None:
    out = sparse_text(band(5), 100)
    assert out.splitlines()[0] == "nnz 13 of 25 (density 52%) · 3 colors, column coloring: 3 JVPs instead of 5"
    assert "rows: f [5]; columns: x [5]" in out and out.splitlines()[-1].startswith("nonzeros: (0, 0) 1., (0, 1) 1.")


def test_scipy_npz_and_matrix_market_files(tmp_path: Path) -> None:
    import scipy.io
    import scipy.sparse

    from jaxdiff_cli.output.matrixfile import save_dense_matrix, save_matrix

    sm = matrix([0, 1, 2], [2, 0, 1], np.array([0.1, 1 / 3, 7.0], np.float32), (3, 4))
    save_matrix(tmp_path / "J.npz", sm, title="t")
    save_matrix(tmp_path / "J.mtx", sm, title="jacobian of f")
    loaded = scipy.sparse.load_npz(tmp_path / "J.npz")
    assert loaded.dtype == np.float32 and loaded.shape == (3, 4)
    np.testing.assert_array_equal(loaded.toarray(), sm.dense())
    mtx = (tmp_path / "J.mtx").read_text()
    assert mtx.startswith("%%MatrixMarket matrix coordinate real general\n%jacobian of f; rows: f [3]; columns: x [4]")
    np.testing.assert_array_equal(scipy.io.mmread(tmp_path / "J.mtx").toarray().astype(np.float32), sm.dense())
    save_matrix(tmp_path / "P.mtx", matrix([0, 1], [1, 1], None, (2, 2)))
    assert (tmp_path / "P.mtx").read_text().startswith("%%MatrixMarket matrix coordinate pattern general")
    dense = np.array([[0.0, 2.0], [3.0, 0.0]])
    save_dense_matrix(tmp_path / "D.mtx", dense, [("f", 2)], [("x", 1), ("w", 1)], title="jacobian of g")
    np.testing.assert_array_equal(scipy.io.mmread(tmp_path / "D.mtx").toarray(), dense)
    text = (tmp_path / "D.mtx").read_text()
    assert "\n2 2 2\n" in text  # the two nonzeros only
    assert "\n%jacobian of g; rows: f [2]; columns: x [1], w [1]\n" in text  # its blocks, as a sparse one's
    from jaxdiff_cli.errors import OutputError

    with pytest.raises(OutputError, match=r"unknown sparse format '\.npy'"):
        save_matrix(tmp_path / "J.npy", sm)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D.mtx", "J.mtx", "J.npz", "P.mtx"]  # no temporary files


def test_spy_image_of_a_matrix_too_large_to_densify(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from jaxdiff_cli.output.pictures import save_spy_figure

    save_spy_figure(band(10**6), tmp_path / "spy.png", title="a band")
    data = (tmp_path / "spy.png").read_bytes()
    assert data[:4] == b"\x89PNG" and int.from_bytes(data[16:20], "big") == 640


def test_a_dense_jacobian_can_be_saved_as_matrix_market(cli: Cli, tmp_path: Path) -> None:
    import scipy.io

    ran = cli("jacobian", "-f", "x**2", "-p", "x=[1.0, 2.0, 3.0]", "-o", tmp_path / "J.mtx", "-q")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    np.testing.assert_array_equal(scipy.io.mmread(tmp_path / "J.mtx").toarray(), np.diag([2.0, 4.0, 6.0]))
    ran = cli("jvp", "-f", "x**2", "-p", "x=[1.0]", "-t", "x=[1.0]", "-o", tmp_path / "v.mtx")
    assert ran.exit_code == ExitCode.BAD_INPUT and "unknown output format '.mtx'" in ran.stderr
