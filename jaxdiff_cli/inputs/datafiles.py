"""Data files a spec names (``.npy``, ``.npz``, ``.csv``) read into arrays, bounded before any data is read.

A file from a pull request is an attacker's input: a 4 MB ``.npz`` can declare 17 strings of 256 MiB
each, or inflate a member to gigabytes. So every array is sized in bytes from its ``.npy`` header
(``prod(shape) * itemsize``) and refused unless it holds numbers, before a byte of its data is read;
then exactly those bytes are read from the very stream whose header was checked (an ``.npz`` is
opened here with ``zipfile``, never through ``np.load``, so a second member of the same name cannot
be loaded in place of the one checked). Nothing is unpickled. A file is opened once, non-blocking,
and must be a regular file: a FIFO or ``/dev/zero`` is refused, not waited on or read forever.

Errors are :class:`Refused`, which the caller turns into a spec error at the right key.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import math
import os
import re
import stat
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from jaxdiff_cli.errors import suggest

MAX_RANK = 64  # NumPy's limit on dimensions (and so JAX's, which builds arrays through NumPy)
MAX_ELEMENTS = 2**28  # entries of one array: 1 GiB of float32
MAX_BYTES = 2**31  # bytes of the arrays read from one file (2^28 float64 entries)
MAX_ARRAYS = 10_000  # arrays in one .npz (and in all the primals of a spec)
# NumPy's loadtxt needs about 17 bytes per byte of a CSV that is one long row (its field offsets), so
# 64 MiB of CSV peaks near 1.1 GB while it is parsed: larger arrays belong in .npy or .npz.
MAX_CSV_BYTES = 64 * 2**20
MAX_HEADER_BYTES = 10_000  # NumPy's own limit on an .npy header (np.save writes about 128 bytes)
NUMBER_KINDS = "biufc"  # bool, integers, floats, complex
# The one text member allowed: scipy's sparse .npz names its format (b'coo') in a member of its own.
TEXT_MEMBER, MAX_TEXT_BYTES = "format", 64
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What reading a broken file can raise (a bad CRC, an encrypted or oddly compressed member, a bad header).
# zlib.error and LZMAError: a corrupt compressed member (found by fuzzing: it was exit 70).
READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    struct.error,
    zlib.error,
    lzma.LZMAError,
)


@dataclass
class Budget:
    """What the data files of one spec may still bring into memory, charged from each file's header
    before its data is read (a CSV: as it is parsed), and the files already read, by (path, key).

    One file's limits are not the spec's: five primals bound by YAML aliases to one 64 MiB array
    would be five arrays. A second read of the same (path, key) reuses the first, but is charged
    again, as each primal is an array of its own in every program.
    """

    elements: int = MAX_ELEMENTS
    nbytes: int = MAX_BYTES
    loaded: dict[tuple[str, str | None], Any] = field(default_factory=dict)

    def charge(self, count: int, nbytes: int, name: str, member: str | None = None) -> None:
        if count > self.elements or nbytes > self.nbytes:
            raise Refused(
                f"{name} takes the data files of this spec past {MAX_ELEMENTS:,} entries or {MAX_BYTES:,} bytes in all",
                member=member,
                hint="use fewer or smaller files",
            )
        self.elements -= count
        self.nbytes -= nbytes


class Refused(Exception):
    """A data file refused. ``member``: the .npz member it is about; ``at_key``: the error is the ``key:``'s."""

    def __init__(self, message: str, *, member: str | None = None, at_key: bool = False, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.member, self.at_key, self.hint = message, member, at_key, hint


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for reading if it is a regular file. Opened non-blocking, so a FIFO with no
    writer does not hang the open, and checked on the open file, so it cannot be swapped after the check."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        if os.path.lexists(path):
            raise Refused(f"{path.name} is a symbolic link to a missing file") from None
        raise Refused(f"no such file: {path}") from None
    except (OSError, ValueError) as exc:  # a name too long, a loop of links, no permission
        raise Refused(f"cannot open {path.name}: {getattr(exc, 'strerror', None) or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise Refused(f"not a regular file: {path} is {kind}", hint=".npy, .npz or .csv files")
    with os.fdopen(fd, "rb") as handle:
        yield handle


# --------------------------------------------------------------------------- .npy


def _header(stream: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The shape, order and dtype an .npy stream declares, reading at most MAX_HEADER_BYTES of it.

    NumPy's own reader would first read as many bytes as a version 2 header claims (up to 4 GiB)."""
    version = np.lib.format.read_magic(stream)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise Refused(f"{name} is an .npy file of version {version[0]}.{version[1]}; NumPy writes 1.0 to 3.0")
    size_format = "<H" if version == (1, 0) else "<I"
    size_bytes = stream.read(struct.calcsize(size_format))
    (length,) = struct.unpack(size_format, size_bytes)
    if length > MAX_HEADER_BYTES:
        raise Refused(f"{name} has a header of {length:,} bytes; at most {MAX_HEADER_BYTES:,}")
    text = stream.read(length)
    if len(text) != length:
        raise Refused(f"{name} ends inside its header")
    if not text.isascii():  # the header of an array of numbers is ASCII in every version (3.0 allows UTF-8)
        raise Refused(f"{name} has a header that is not ASCII: it holds no plain array of numbers")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a header written by Python 2 is read all the same
            shape, fortran, dtype = reader(io.BytesIO(size_bytes + text))
    except Exception as exc:
        raise Refused(f"{name} has a malformed header ({type(exc).__name__}: {str(exc)[:80]})") from None
    return tuple(shape), bool(fortran), dtype


def _size(shape: tuple[int, ...], dtype: np.dtype[Any], name: str, member: str | None, *, text: bool = False) -> int:
    """The bytes an array of ``shape`` and ``dtype`` holds, refused if it is not numbers or too large."""
    if len(shape) > MAX_RANK:
        raise Refused(f"{name} has {len(shape)} dimensions; at most {MAX_RANK}", member=member)
    if any(n < 0 for n in shape):
        raise Refused(f"{name} has a negative dimension in its shape {shape}", member=member)
    count = math.prod(shape)
    if text and dtype.kind in "SU" and not dtype.hasobject and count * dtype.itemsize <= MAX_TEXT_BYTES:
        return count * dtype.itemsize
    if dtype.hasobject:  # a pickle: never loaded
        raise Refused(f"{name} holds Python objects, not numbers", member=member)
    if dtype.kind not in NUMBER_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise Refused(f"{name} holds {_dtype_text(dtype)} data, not numbers", member=member)
    if count > MAX_ELEMENTS:
        raise Refused(f"{name} holds {count:,} elements; at most {MAX_ELEMENTS:,}", member=member, hint="split it up")
    if count * dtype.itemsize > MAX_BYTES:
        raise Refused(f"{name} holds {count * dtype.itemsize:,} bytes; at most {MAX_BYTES:,}", member=member, hint="split it up")
    return count * dtype.itemsize


def _dtype_text(dtype: np.dtype[Any]) -> str:
    names = {"S": "byte string", "U": "text", "V": "structured (void)", "M": "datetime", "m": "timedelta"}
    return f"{names.get(dtype.kind, 'non-numeric')} ({dtype.str[:40]})"


_PIECE = 1 << 20  # bytes read at a time into an array


def _data(stream: IO[bytes], shape: tuple[int, ...], fortran: bool, dtype: np.dtype[Any], nbytes: int, name: str) -> np.ndarray:
    """Exactly ``nbytes`` from ``stream`` as the array its header declared; a stream that is shorter,
    or longer (data after the array, which np.save never writes), is refused."""
    buffer = bytearray(nbytes)
    view, got = memoryview(buffer), 0
    while got < nbytes:
        # In pieces: a zip member's readinto reads (and inflates) all it is asked for into a bytes
        # first, so one call for the whole array held it three times over.
        n = stream.readinto(view[got : got + _PIECE])  # type: ignore[attr-defined]
        if not n:
            raise Refused(f"{name} is truncated: {got:,} of its {nbytes:,} bytes of data")
        got += n
    if stream.read(1):  # at a zip member's end this also checks its CRC
        raise Refused(f"{name} has data after its array")
    array = np.frombuffer(buffer, dtype)  # writable: it shares the bytearray
    return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


def read_npy(path: Path, budget: Budget | None = None) -> np.ndarray:
    with open_regular(path) as stream:
        shape, fortran, dtype = _header(stream, path.name)
        nbytes = _size(shape, dtype, path.name, None)
        if budget is not None:
            budget.charge(math.prod(shape), nbytes, path.name)
        return _data(stream, shape, fortran, dtype, nbytes, path.name)


# --------------------------------------------------------------------------- .npz


MAX_DIRECTORY_BYTES = MAX_ARRAYS * 1024  # an archive's central directory (np.savez: about 100 bytes an array)


def _directory_fits(handle: IO[bytes], name: str) -> None:
    """Refuse an archive whose central directory is too large before zipfile parses all of it: a
    100 MB .npz of empty members is a million entries, a minute and gigabytes to list. The sizes are
    read from the end record, and from the zip64 one where there is one (zipfile would use that)."""
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - 22 - 65535))
    tail = handle.read()
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        return  # no end record: zipfile says it is no zip file
    _, _, _, _, entries, directory, _, _ = struct.unpack("<4s4H2LH", tail[end : end + 22])
    locator = end - 20
    if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07":
        record = tail[locator - 56 : locator] if locator >= 56 else b""
        if len(record) != 56 or record[:4] != b"PK\x06\x06":
            raise Refused(f"{name} has a broken zip64 end record")
        entries, directory = struct.unpack("<Q", record[32:40])[0], struct.unpack("<Q", record[40:48])[0]
    if entries > MAX_ARRAYS:
        raise Refused(f"{name} holds {entries:,} arrays; at most {MAX_ARRAYS:,}")
    if directory > MAX_DIRECTORY_BYTES:
        raise Refused(f"{name} has a directory of {directory:,} bytes; at most {MAX_DIRECTORY_BYTES:,}")
    handle.seek(0)


def _members(archive: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """An archive's arrays by name: each member an ``X.npy``, every name once (np.load would give
    ``a`` for both ``a`` and ``a.npy``, checking one and loading the other)."""
    infos = archive.infolist()
    if len(infos) > MAX_ARRAYS:
        raise Refused(f"{name} holds {len(infos):,} arrays; at most {MAX_ARRAYS:,}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        key = info.filename.removesuffix(".npy")
        shown = ascii(info.filename)  # quoted, its control characters escaped
        if not info.filename.endswith(".npy") or not key or info.is_dir():
            raise Refused(f"{name} holds {shown}, which is not an .npy array", hint="write it with np.savez")
        if _CONTROL.search(info.filename):
            raise Refused(f"{name} holds a member whose name has a control character: {shown}")
        if key in members:
            raise Refused(f"{name} holds two members named {shown}", hint="write it with np.savez")
        members[key] = info
    if not members:
        raise Refused(f"{name} holds no arrays")
    return members


def read_npz(path: Path, key: str | None, budget: Budget | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz (only the one named ``key``, if given), by name.

    Every member's header is checked (sizes added up over the members read) before any data is
    read; a member named ``format`` may hold a short text (scipy's sparse form)."""
    with open_regular(path) as handle:
        _directory_fits(handle, path.name)
        with zipfile.ZipFile(handle) as archive:
            return _read_members(archive, _members(archive, path.name), path, key, budget)


def _read_members(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], path: Path, key: str | None, budget: Budget | None
) -> dict[str, np.ndarray]:
    """The arrays of ``members`` (only ``key``, if given): every header checked, sizes added up, before any data is read."""
    if key is not None and key not in members:
        raise Refused(
            f"{path.name} has no array {key!r}; it has {', '.join(members)}", at_key=True, hint=suggest(key, list(members))
        )
    chosen = [key] if key is not None else list(members)
    headers = {}
    total = 0
    for member in chosen:
        label = f"{path.name}[{member}]"
        info = members[member]
        if info.file_size > MAX_BYTES + MAX_HEADER_BYTES + 16:  # a zip bomb says so in its directory
            raise Refused(f"{label} inflates to {info.file_size:,} bytes; at most {MAX_BYTES:,}", member=member)
        with archive.open(info) as stream:
            shape, fortran, dtype = _header(stream, label)
        nbytes = _size(shape, dtype, label, member, text=member == TEXT_MEMBER)
        total += nbytes
        if total > MAX_BYTES:
            raise Refused(f"{path.name} holds more than {MAX_BYTES:,} bytes of arrays", member=member, hint="split it up")
        headers[member] = (shape, fortran, dtype, nbytes)
        if budget is not None:
            budget.charge(math.prod(shape), nbytes, label, member)
    out = {}
    for member, (shape, fortran, dtype, nbytes) in headers.items():
        label = f"{path.name}[{member}]"
        with archive.open(members[member]) as stream:  # the same member, read again from its start
            if _header(stream, label) != (shape, fortran, dtype):
                raise Refused(f"{label} changed while it was read")
            out[member] = _data(stream, shape, fortran, dtype, nbytes, label)
    return out


# --------------------------------------------------------------------------- .csv


def read_csv(path: Path, budget: Budget | None = None) -> np.ndarray:
    """A CSV of numbers (``#`` starts a comment) as float64, its size bounded before it is parsed.

    A number too large for float64 (1e400) is an error, as it is in a spec, not infinity; an
    infinity written as ``inf`` stays one."""
    with open_regular(path) as stream:
        size = os.fstat(stream.fileno()).st_size  # read(MAX + 1) would allocate the 256 MiB up front
        data = stream.read(min(size, MAX_CSV_BYTES) + 1)
    if size > MAX_CSV_BYTES or len(data) > MAX_CSV_BYTES:
        raise Refused(f"{path.name} is larger than {MAX_CSV_BYTES // 2**20} MiB", hint="use .npy or .npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty file is an empty array, not a line on stderr
        # From the bytes: a decoded str in a StringIO doubles what the parse needs.
        value = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.float64, ndmin=1, comments="#", encoding="utf-8")
    if budget is not None:
        budget.charge(value.size, value.nbytes, path.name)
    if np.isinf(value).any():
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for cell in line.split("#")[0].split(","):
                cell = cell.strip()
                try:
                    big = math.isinf(float(cell)) and "inf" not in cell.lower()
                except ValueError:
                    continue
                if big:
                    raise Refused(f"{path.name}, line {number}: {cell[:40]} is too large for float64")
    return value
