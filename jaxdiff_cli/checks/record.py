"""``check --update``: record the current results in a spec's ``expect:`` block (golden values).

The file is edited with ruamel.yaml's round-trip mode, so its comments, quoting, key order and layout
stay as they were, apart from the values that change. An entry that still matches its value (within
its tolerance) is left as it is; one that does not gets the new value (the ``value:`` of a
``{value, index, einsum, rtol, atol}`` entry, selected as the entry selects it); a result with no entry
is added. A spec with ``cases:`` records each case in its own ``expect:`` (a case that shares the
top-level one gets its own, with the shared tolerances). Arrays of more than ``INLINE_MAX`` entries go
to a sidecar ``<spec>.golden.npz`` (``<spec>.golden.case<N>.npz`` for case N), a large sparse result to
``<spec>.golden[.case<N>].<name>.npz``; a value kept in a file of the user's own is not rewritten: it is
reported as not recorded. The block's ``recorded:`` notes jax/jaxlib, device and dtype.

ruamel.yaml is imported here only: the other commands never pay for it.
"""

from __future__ import annotations

import copy
import io
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jaxdiff_cli.atomic import atomic_open
from jaxdiff_cli.checks.expectations import INLINE_MAX, Expectation, save_sparse
from jaxdiff_cli.checks.findings import Finding
from jaxdiff_cli.errors import SpecError, join, where
from jaxdiff_cli.inputs.files import refuse_odd_file

_TOLERANCES = ("rtol", "atol", "recorded")  # keys of the block that are not entries
_CASE_KEY = re.compile(r"^cases\[(\d+)\]$")


@dataclass
class Recorded:
    """What ``record`` did: the lines that say what changed, the files written, what it could not record."""

    changes: list[str] = field(default_factory=list)
    unchanged: int = 0
    written: list[str] = field(default_factory=list)
    failures: list[Finding] = field(default_factory=list)


def record(
    path: Path,
    case_key: str,
    expectations: Sequence[Expectation],
    actual: Mapping[str, Any],
    findings: Sequence[Finding],
    results: Mapping[str, Any],
    environment: Mapping[str, str],
) -> Recorded:
    """Record ``results`` in the expect block of ``path`` (of its case ``cases[N]`` where ``case_key`` says)."""
    from ruamel.yaml.comments import CommentedMap

    out = Recorded()
    text = path.read_text(encoding="utf-8")
    yaml = _round_trip(text)
    root = yaml.load(text)
    case = _CASE_KEY.match(case_key)
    holder = root["cases"][int(case.group(1))] if case else root
    tag = f".case{case.group(1)}" if case else ""
    block = holder.get("expect")
    if not isinstance(block, CommentedMap):
        shared = root.get("expect") if case else None
        block = CommentedMap()
        # A case's own block replaces the shared one: it starts as a copy of it (entries and tolerances),
        # so a shared entry that is wrong is updated there, and one that holds stays as it was.
        for key, value in shared.items() if isinstance(shared, Mapping) else ():
            if key != "recorded":
                block[key] = copy.deepcopy(value)
        holder["expect"] = block
    if not block:
        block.fa.set_block_style()  # `expect: {}` (jaxdiff init) grows one entry a line
    at = where(str(path), join(case_key, "expect"))
    files = _Files(path, tag, at)
    by_name = {f.name.removeprefix("expect "): f for f in findings if f.name.startswith("expect ")}
    for e in expectations:
        finding = by_name.get(e.name)
        if finding is None or finding.passed:
            out.unchanged += 1
            continue
        _update_entry(block, e, actual[e.name], finding, files, out)
    for name, value in results.items():
        if name not in block:
            block.fa.set_block_style()  # a flow block that grows would be one long line
            new = files.value(name, value)
            _insert(block, name, new)
            out.changes.append(f"expect {name}: added {_shown(new, value)}")
    if not out.changes:
        return out  # nothing changed: the file (and its recorded: note) stay as they were
    if isinstance(block.get("recorded"), CommentedMap):
        block["recorded"].update(environment)
    else:
        _append(block, "recorded", _flow_map(dict(environment)))
    # A folder (or FIFO) named like a golden file is a bad spec folder, refused before anything is written.
    for target in files.targets():
        refuse_odd_file(target, at)
    stream = io.StringIO()
    yaml.dump(root, stream)
    kept = files.kept()  # read before anything is written
    try:
        out.written = files.write(kept)
        with atomic_open(path, "w") as f:
            f.write(stream.getvalue())
    except OSError as exc:  # a read-only folder, a full disk: the spec's folder, not a bug
        raise SpecError(f"cannot record golden values: {exc.strerror or exc}", where=at) from None
    out.written.append(str(path))
    return out


def _update_entry(block: Any, e: Expectation, found: Any, finding: Finding, files: _Files, out: Recorded) -> None:
    from jaxdiff_cli.checks import matrices
    from jaxdiff_cli.engine.sparse import SparseMatrix

    raw = block[e.name]
    entry = isinstance(raw, Mapping) and "value" in raw and set(raw) <= {"value", "index", "einsum", "rtol", "atol"}
    old = raw["value"] if entry else raw
    if isinstance(old, Mapping) and "file" in old and not files.ours(str(old["file"])):
        why = f"its value is kept in {old['file']}, which --update does not rewrite (only the spec's .golden files)"
        out.failures.append(Finding(f"expect {e.name}", False, f"not recorded: {why}"))
        return
    if isinstance(found, SparseMatrix) and (e.sparse is not None or _size(found) > INLINE_MAX):
        new: Any = files.sparse(e.name, found)
    else:
        if isinstance(found, SparseMatrix):
            found = matrices.SparseActual(found, found.shape)
        dense = matrices.dense_or_finding(f"expect {e.name}", found) if isinstance(found, matrices.SparseActual) else found
        if isinstance(dense, Finding):
            out.failures.append(Finding(dense.name, False, f"not recorded: {dense.detail}"))
            return
        try:
            a = np.asarray(dense)
            a = a[e.index] if e.index is not None else a
            a = np.einsum(e.einsum, a) if e.einsum is not None else a
        except (IndexError, ValueError) as exc:
            out.failures.append(Finding(f"expect {e.name}", False, f"not recorded: cannot select: {exc}"))
            return
        new = files.value(e.name, np.asarray(a))
    if entry:
        raw["value"] = new
    else:
        block[e.name] = new
    out.changes.append(f"expect {e.name}: {_change(finding)}")


def _change(f: Finding) -> str:
    """Old → new, as the comparison found it: the entry that changed most, both values."""
    w = f.worst
    if w is None:
        return f"{f.detail} → recorded"
    old, new = _pair(w.reference, w.ad)
    where = f"{w.output}{list(w.index)}" if w.index else w.output
    return f"{where} {old} → {new} ({f.detail.replace('outside tolerance', 'changed')})"


def _pair(a: float, b: float) -> tuple[str, str]:
    """Two numbers with as many digits as it takes to tell them apart."""
    for digits in (7, 10, 17):
        x, y = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if x != y:
            break
    return x, y


class _Files:
    """The golden files of one spec (or case): a sidecar .npz for large dense arrays, one file per sparse result."""

    def __init__(self, spec: Path, tag: str, at: str) -> None:
        self.spec, self.at = spec, at  # at: the expect block, where an error about its files points
        self.sidecar = spec.with_name(f"{spec.stem}.golden{tag}.npz")
        self.arrays: dict[str, np.ndarray] = {}
        self.sparse_files: dict[str, Any] = {}

    def ours(self, name: str) -> bool:
        return name == self.sidecar.name or (name.startswith(self.sidecar.name.removesuffix("npz")) and name.endswith(".npz"))

    def value(self, name: str, value: Any) -> Any:
        from jaxdiff_cli.engine.sparse import SparseMatrix

        if isinstance(value, SparseMatrix):
            if _size(value) > INLINE_MAX:
                return self.sparse(name, value)
            value = value.dense()
        a = np.asarray(value)
        if a.size > INLINE_MAX:
            self.arrays[name] = a
            return _flow_map({"file": self.sidecar.name, "key": name})
        if a.dtype.kind == "c":  # the {re, im} constructor reads it back
            return _flow_map({"re": _flow(_plain(a.real)), "im": _flow(_plain(a.imag))})
        return _flow(_plain(a))

    def sparse(self, name: str, matrix: Any) -> Any:
        file = self.sidecar.name.removesuffix(".npz") + f".{name}.npz"
        self.sparse_files[file] = matrix
        return _flow_map({"file": file})

    def kept(self) -> dict[str, np.ndarray]:
        """The sidecar's arrays recorded before: those of entries unchanged now stay in it. Read as any
        data file a spec names is (bounded, numbers only): it comes with the spec."""
        from jaxdiff_cli.inputs.datafiles import Refused, read_npz

        if not self.arrays or not self.sidecar.exists():
            return {}
        try:
            return read_npz(self.sidecar, None)
        except Refused as exc:
            raise SpecError(f"{self.sidecar.name}: {exc.message}", where=self.at) from None

    def targets(self) -> list[Path]:
        return ([self.sidecar] if self.arrays else []) + [self.spec.with_name(file) for file in self.sparse_files]

    def write(self, kept: dict[str, np.ndarray]) -> list[str]:
        written = []
        if self.arrays:
            with atomic_open(self.sidecar) as f:
                np.savez(f, **{**kept, **self.arrays})  # type: ignore[arg-type]
            written.append(str(self.sidecar))
        for file, matrix in self.sparse_files.items():
            target = self.spec.with_name(file)
            with atomic_open(target) as f:
                save_sparse(f, matrix)
            written.append(str(target))
        return written


def _size(matrix: Any) -> int:
    return int(matrix.shape[0] * matrix.shape[1])


def _plain(a: np.ndarray) -> Any:
    """Nested Python numbers that read back to the same bits (a float32's shortest form)."""
    if a.dtype.kind == "f":
        narrow = a.dtype.itemsize < 8  # str() of a float32 is its shortest round-trip form
        flat = [float(str(v)) if narrow else float(v) for v in a.ravel()]
        return np.array(flat, dtype=object).reshape(a.shape).tolist()
    return a.tolist()


def _flow(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    if not isinstance(value, list):
        return value
    seq = CommentedSeq(_flow(v) for v in value)
    seq.fa.set_flow_style()
    return seq


def _flow_map(value: dict[str, Any]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    m = CommentedMap(value)
    m.fa.set_flow_style()
    return m


def _insert(block: Any, name: str, value: Any) -> None:
    """A new entry before the block's tolerances and recorded: note, where it has them."""
    keys = list(block)
    at = next((i for i, k in enumerate(keys) if k in _TOLERANCES), len(keys))
    if at < len(keys):
        block.insert(at, name, value)
    else:
        _append(block, name, value)


def _append(block: Any, name: str, value: Any) -> None:
    """A new last entry. ruamel keeps the comment lines that follow a block (those above the next
    top-level key) with its last entry: they move to the new last one, so they stay where they were."""
    from ruamel.yaml.error import CommentMark
    from ruamel.yaml.tokens import CommentToken

    last = list(block)[-1] if block else None
    block[name] = value
    token = block.ca.items.get(last) if last is not None else None
    if not token or len(token) < 3 or token[2] is None:
        return
    eol, newline, rest = token[2].value.partition("\n")
    if rest:
        if eol:
            token[2].value = eol + newline  # the comment on the entry's own line stays with it
        else:
            token[2] = None
        block.ca.items[name] = [None, None, CommentToken("\n" + rest, CommentMark(0), None), None]


def _shown(value: Any, result: Any) -> str:
    """A value added, as the spec now reads (shortened), or the file it went to."""
    if isinstance(value, Mapping) and "file" in value:
        return f"shape {tuple(getattr(result, 'shape', ()))} in {value['file']}"
    text = _text(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, float) else str(value)


def _round_trip(text: str) -> Any:
    """A round-trip YAML reader and writer that writes this file's indentation, and floats PyYAML reads."""
    from ruamel.yaml import YAML
    from ruamel.yaml.util import load_yaml_guess_indent

    try:  # the indentation of block sequences (ruamel guesses it: dash offset, and the item's content)
        _, sequence, offset = load_yaml_guess_indent(text)
    except Exception as exc:  # the spec was read before: this is ruamel failing where PyYAML did not
        raise SpecError(f"--update cannot edit this file: {exc}") from None
    mapping = _mapping_indent(text)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # long values stay on one line, as written
    yaml.indent(mapping=mapping, sequence=sequence if offset is not None else mapping, offset=offset or 0)
    yaml.representer.add_representer(float, _float)
    return yaml


def _mapping_indent(text: str) -> int:
    """How far this file indents a block mapping under a top-level key (2 where it has none)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for above, line in itertools.pairwise(lines):
        if above[0] not in " -" and above.rstrip().endswith(":") and line.startswith(" ") and not line.lstrip().startswith("-"):
            return len(line) - len(line.lstrip())
    return 2


def _float(representer: Any, value: float) -> Any:
    """A float as YAML 1.1 (PyYAML, which reads specs) reads it back: 1.0e-05, not 1e-05 (a string there)."""
    if math.isnan(value):
        text = ".nan"
    elif math.isinf(value):
        text = ".inf" if value > 0 else "-.inf"
    else:
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)
