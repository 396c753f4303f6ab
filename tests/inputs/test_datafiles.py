"""jaxdiff reads .npy and .npz files itself (the member whose header it checked, never through np.load):
every layout NumPy writes comes back exactly as np.load gives it."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jaxdiff_cli.inputs import datafiles

A = np.arange(6.0).reshape(2, 3) * 1.5
ARRAYS = {
    "float64": A,
    "fortran order": np.asfortranarray(A),
    "big-endian": A.astype(">f8"),
    "bool": A > 3,
    "int16": A.astype(np.int16),
    "uint64": A.astype(np.uint64),
    "complex64": (A + 1j * A).astype(np.complex64),
    "float16": A.astype(np.float16),
    "scalar": np.float32(2.5).reshape(()),
    "empty": np.zeros((0, 3)),
    "fortran 3-d": np.asfortranarray(np.arange(24.0).reshape(2, 3, 4)),
}


@pytest.mark.parametrize("version", [None, (1, 0), (2, 0), (3, 0)])
@pytest.mark.parametrize("kind", list(ARRAYS))
def test_every_layout_numpy_writes_reads_back_as_np_load_gives_it(
    tmp_path: Path, kind: str, version: tuple[int, int] | None
) -> None:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, ARRAYS[kind], version=version)
    (tmp_path / "x.npy").write_bytes(buffer.getvalue())
    want = np.load(tmp_path / "x.npy", allow_pickle=False)
    got = datafiles.read_npy(tmp_path / "x.npy")
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    got[...] = 0  # writable, as np.load's arrays are
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        with zipfile.ZipFile(tmp_path / "x.npz", "w", method) as archive:
            archive.writestr("x.npy", buffer.getvalue())
            archive.writestr("y.npy", buffer.getvalue())
        arrays = datafiles.read_npz(tmp_path / "x.npz", None)
        assert list(arrays) == ["x", "y"]
        np.testing.assert_array_equal(arrays["x"], want)
        assert arrays["x"].dtype == want.dtype
        assert list(datafiles.read_npz(tmp_path / "x.npz", "y")) == ["y"]


def test_savez_and_scipy_form_read_back(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "a.npz", w=A, b=np.ones(2, np.int32))
    arrays = datafiles.read_npz(tmp_path / "a.npz", None)
    np.testing.assert_array_equal(arrays["w"], A)
    np.testing.assert_array_equal(arrays["b"], np.ones(2, np.int32))
    np.savez(tmp_path / "s.npz", format=np.bytes_(b"csr"), shape=np.array([2, 2]), data=np.ones(1), indices=[1], indptr=[0, 1, 1])
    assert datafiles.read_npz(tmp_path / "s.npz", None)["format"].item() == b"csr"


def test_sizes_add_up_over_the_members_of_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each member below the byte limit, together above it: refused before any is read."""
    monkeypatch.setattr(datafiles, "MAX_BYTES", 100)
    np.savez(tmp_path / "a.npz", x=np.zeros(10), y=np.zeros(10))
    with pytest.raises(datafiles.Refused, match="holds more than 100 bytes of arrays") as refused:
        datafiles.read_npz(tmp_path / "a.npz", None)
    assert refused.value.member == "y"
    assert datafiles.read_npz(tmp_path / "a.npz", "y")["y"].shape == (10,)


def test_a_budget_refuses_a_file_from_its_header_before_its_data(tmp_path: Path) -> None:
    """A spec's budget is charged from each header: the file that would pass it is refused before a
    byte of its data is read (this one's data is missing: its refusal would say 'truncated')."""
    np.save(tmp_path / "a.npy", np.zeros(60))
    full = io.BytesIO()
    np.save(full, np.zeros(60))
    (tmp_path / "b.npy").write_bytes(full.getvalue()[: -8 * 60])  # the header alone
    budget = datafiles.Budget(elements=100)
    assert datafiles.read_npy(tmp_path / "a.npy", budget).shape == (60,)
    assert budget.elements == 40 and budget.nbytes == datafiles.MAX_BYTES - 480
    with pytest.raises(datafiles.Refused, match=r"b\.npy takes the data files of this spec past"):
        datafiles.read_npy(tmp_path / "b.npy", budget)
    np.savez(tmp_path / "c.npz", x=np.zeros(30), y=np.zeros(30))
    with pytest.raises(datafiles.Refused, match=r"c\.npz\[y\] takes"):
        datafiles.read_npz(tmp_path / "c.npz", None, datafiles.Budget(elements=50))
    assert datafiles.read_npz(tmp_path / "c.npz", "x", datafiles.Budget(elements=50))["x"].shape == (30,)
    (tmp_path / "d.csv").write_text("1,2,3\n4,5,6\n")
    with pytest.raises(datafiles.Refused, match=r"d\.csv takes"):
        datafiles.read_csv(tmp_path / "d.csv", datafiles.Budget(elements=5))
    np.testing.assert_array_equal(datafiles.read_csv(tmp_path / "d.csv", datafiles.Budget(elements=6)), [[1, 2, 3], [4, 5, 6]])
