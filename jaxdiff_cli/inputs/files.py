"""The files a spec comes from and names: reading a spec (a file or stdin), confining the paths it
names to its folder, and expanding the spec patterns of ``jaxdiff check``.

Specs come from pull requests: a spec's paths stay in its folder (no absolute paths, ``..`` or links
that lead out), FIFOs, devices and folders are refused before they are opened for good, and a spec
is read to a bounded size. Paths typed on the command line are trusted.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

from jaxdiff_cli.errors import SpecError, Where
from jaxdiff_cli.inputs.yamlfile import CONTROL, parse_yaml

MAX_SPEC_BYTES = 16 * 2**20  # a spec file (or stdin); large arrays belong in .npy / .npz files

# The sources that are no file: options typed on the command line, and a spec read from stdin.
CLI = "<command line>"
STDIN = "<stdin>"
_STDIN_TEXT: list[str] = []  # the spec read from stdin this run, if any


class CommandLinePath(str):
    """A file path typed on the command line (a ``file:`` in -p, -t or -c): trusted, so not
    confined to the spec's folder as the paths a spec names are."""


_OUTSIDE = "a file elsewhere can be given on the command line: -p x='{file: /path/x.npy}', --fn, --plot-file"


def spec_path(text: str, base_dir: Path, at: str, *, trusted: bool = False) -> Path:
    """A file a spec names, relative to the spec's folder and inside it.

    A spec from a pull request must not read (or, for plot files, write) outside its folder:
    absolute paths, ``..`` and symbolic links that lead out are refused. ``trusted`` paths (typed
    on the command line) may be anywhere, and ``~`` is expanded for them.
    """
    if "\x00" in text:  # no file has one; os calls would raise ValueError deep inside a command
        raise SpecError(f"{text!a} holds a NUL byte, which no file name can", where=at)
    if not trusted and CONTROL.search(text):
        raise SpecError(f"{text!a} holds a control character: a spec names its files in plain text", where=at)
    path = Path(text)
    if trusted:
        path = path.expanduser()
        return path if path.is_absolute() else base_dir / path
    if path.is_absolute() or text.startswith("~"):
        raise SpecError(f"{text!r} is an absolute path: a spec names files inside its own folder", where=at, hint=_OUTSIDE)
    if ".." in path.parts:
        raise SpecError(f"{text!r} goes up with '..': a spec names files inside its own folder", where=at, hint=_OUTSIDE)
    full = base_dir / path
    try:
        inside = full.resolve().is_relative_to(base_dir.resolve())
    except (OSError, RuntimeError):  # a symbolic link loop
        inside = False
    except ValueError:  # a path the system cannot take at all
        raise SpecError(f"{text!a} is not a usable path", where=at) from None
    if not inside:
        raise SpecError(f"{text!r} leads outside the spec's folder through a symbolic link", where=at, hint=_OUTSIDE)
    return full


def refuse_odd_file(path: Path, at: str) -> None:
    """Refuse a path a spec names that is there but is no regular file: a folder, a FIFO, a device,
    a socket, or a symbolic link to nothing. A missing file is left to the caller (a file to write,
    or "no such file" when it is read): reading a FIFO would hang, writing over a folder would fail
    only after all the work."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.lexists(path):
            raise SpecError(f"{path.name} is a symbolic link to a missing file", where=at) from None
        return
    except (OSError, ValueError) as exc:  # a name too long, a loop of links, no permission
        raise SpecError(f"cannot use {path.name}: {getattr(exc, 'strerror', None) or exc}", where=at) from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise SpecError(f"not a regular file: {path} is {kind}", where=at)


def _folder_hint(folder: str) -> str:
    pattern = f"{folder.rstrip('/')}/**/*.yaml"
    return f"every spec in it: jaxdiff check '{pattern}'"


def _read_file(path: Path, source: str) -> str:
    """A spec file's text. Only a regular file of at most MAX_SPEC_BYTES: /dev/zero or a FIFO would
    never end. Opened non-blocking, so opening a FIFO does not wait for a writer either."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SpecError("no such file", where=source) from None
    except IsADirectoryError:
        raise SpecError("is a folder, not a spec file", where=source, hint=_folder_hint(source)) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc}", where=source) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise SpecError("is a folder, not a spec file", where=source, hint=_folder_hint(source))
        raise SpecError("is not a regular file (a device, FIFO or socket)", where=source, hint="a spec is a YAML file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise SpecError(f"cannot read: {exc.strerror or exc}", where=source) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"larger than {MAX_SPEC_BYTES // 2**20} MiB", where=source, hint=_BIG)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read: {exc}", where=source) from None


_BIG = "put large arrays in .npy/.npz files next to the spec and refer to them with {file: ...}"


def read_source(spec_path: str | None) -> tuple[dict[str, Any], str, Path]:
    """Read a spec file (or stdin for ``-``) into a mapping; no spec gives an empty one."""
    if spec_path is None:
        return {}, CLI, Path.cwd()
    source: str
    if spec_path == "-":
        text, source, base = sys.stdin.read(MAX_SPEC_BYTES + 1), Where(STDIN), Path.cwd()
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError(f"larger than {MAX_SPEC_BYTES // 2**20} MiB", where=source, hint=_BIG)
        _STDIN_TEXT[:] = [text]  # stdin cannot be read twice: kept to find the line of an error
    else:
        path = Path(spec_path)
        source = Where(str(path))
        text = _read_file(path, source)
        base = path.resolve().parent
    data = parse_yaml(text, source)
    if data is None:
        raise SpecError("the spec is empty; it needs at least 'function' and 'primals'", where=source)
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise SpecError(f"the spec must be a mapping of keys (function, primals, ...), not {kind}", where=source)
    return data, source, base


MAX_SPEC_BYTES = 16 * 2**20  # a spec file (or stdin); large arrays belong in .npy / .npz files


def source_text(file: str) -> str | None:
    """A spec's text again, to find the line of a key: the file, or stdin as it was read this run."""
    if file == STDIN:
        return _STDIN_TEXT[0] if _STDIN_TEXT else None
    if file.startswith("<"):
        return None
    try:
        return _read_file(Path(file), file)
    except SpecError:
        return None


# --------------------------------------------------------------------------- spec patterns (jaxdiff check)


def expand(patterns: list[str]) -> list[str]:
    """Spec paths, with glob patterns expanded here too (a shell that did not, or quoted ones).

    The files a pattern matches come from a pull request: ``**`` does not descend into links to
    folders (two links to ``.`` would make the walk endless), and a match that is a link to a file
    outside the pattern's folder is refused (it would read any YAML on the machine as a spec).
    """
    paths: list[str] = []
    for p in patterns:
        if any(ch in p for ch in "*?[") and not Path(p).exists():
            found = _glob(p)
            if not found:
                raise SpecError("no file matches this pattern", where=p)
            paths.extend(found)
        else:
            paths.append(p)
    return paths


def _glob(pattern: str) -> list[str]:
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if any(ch in part for ch in "*?[")), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    rest = str(Path(*parts[fixed:]))
    inside = root.resolve()
    here = Path.cwd().resolve()
    if not root.is_absolute() and Path(os.path.abspath(root)).is_relative_to(here) and not inside.is_relative_to(here):
        # The pattern's own folder is in this checkout as written, but a link in it leads out: the pull
        # request made specs/sub a link, and its specs would come from anywhere (red team, issue 19).
        raise SpecError(f"is a link to {inside}, outside {here}", where=str(root), hint="specs stay in their folder")
    found = []
    for match in sorted(root.glob(rest)):  # pathlib's ** skips links to folders
        if not match.is_file():
            continue
        if not match.resolve().is_relative_to(inside):
            raise SpecError(
                f"is a link to {match.resolve()}, outside {root}", where=str(match), hint="specs stay in their folder"
            )
        found.append(str(match))
    return found
