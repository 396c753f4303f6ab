"""The bounded YAML 1.2 reader of specs, and the line of a key path in a spec's text.

PyYAML's SafeLoader (no Python tags), reading numbers as YAML 1.2 does (``1e-5`` is a float,
``1:30`` a string), refusing duplicate keys and keys with control characters, and bounding what a
document may make jaxdiff build: nesting, alias expansion, integer digits (README: Hard inputs).
``locate`` finds a key path's line and column for CI annotations.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from jaxdiff_cli.errors import SpecError, Where, join, where

# Bounds on what a spec may make jaxdiff do before anything is computed (README: Hard inputs).
MAX_YAML_DEPTH = 100  # nesting of mappings and lists, after expanding aliases
MAX_YAML_NODES = 1_000_000  # values, lists and mappings in a document, after expanding aliases


class _Refused(yaml.YAMLError):
    """A document refused while composing (too deep, too large once aliases expand)."""

    def __init__(self, message: str, keypath: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.keypath, self.hint = message, keypath, hint


class _Loader(yaml.SafeLoader):
    """SafeLoader (no python tags) that reads YAML 1.2 floats, rejects duplicate keys, and bounds
    nesting and alias expansion while composing: a billion laughs, a recursive alias or a list 5,000
    deep is refused at the key where it starts, before any of it is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[Any] = []  # labels of the nodes being composed: keys, indices (None for keys)
        self._stats: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded
        self._total = 0

    def _keypath(self) -> str:
        keypath = ""
        indices = 0
        for label in self._path:
            if isinstance(label, int):
                indices += 1
                if indices > 3:
                    if indices == 4:
                        keypath += "[…]"
                    continue
                keypath = join(keypath, label)
            elif label is not None:
                indices = 0
                keypath = join(keypath, label)
        return keypath

    def _count(self, nodes: int) -> None:
        self._total += nodes
        if self._total > MAX_YAML_NODES:
            raise _Refused(
                f"the document holds more than {MAX_YAML_NODES:,} values once its aliases (*name) are expanded",
                self._keypath(),
                hint="write large arrays to .npy/.npz files; a spec refers to them with {file: ...}",
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            stats = self._stats.get(id(node))
            if stats is None:  # the anchored collection is still being composed: it contains itself
                raise _Refused("a recursive alias (a collection that contains itself)", self._keypath())
            self._count(stats[0])
            return node
        label = index.value if isinstance(index, yaml.ScalarNode) else index if isinstance(index, int) else None
        self._path.append(label if index is not None else None)
        if sum(1 for p in self._path if p is not None) > MAX_YAML_DEPTH:
            raise _Refused(f"nested more than {MAX_YAML_DEPTH} levels deep", self._keypath())
        node = super().compose_node(parent, index)
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        nodes = 1 + sum(self._stats[id(c)][0] for c in children)
        depth = 1 + max(self._stats[id(c)][1] for c in children) if children else 0
        if depth > MAX_YAML_DEPTH:  # only aliases can get here: nesting itself was checked above
            raise _Refused(f"nested more than {MAX_YAML_DEPTH} levels deep once its aliases are expanded", self._keypath())
        self._stats[id(node)] = (nodes, depth)
        self._count(1)
        self._path.pop()
        return node


# PyYAML follows YAML 1.1, where `1e-5` (no dot) is a string; users mean a number.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
# YAML 1.1's integers include base 60 (`1:30` is 90), which converting takes time quadratic in the
# length (a 2 MB `description: 1:0:0:...` took a minute): YAML 1.2's decimal, octal and hex instead.
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
MAX_INT_DIGITS = 400  # far more than any float64 can hold (1.8e308 has 309 digits)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))


class _Overflow(yaml.YAMLError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if len(text) > MAX_INT_DIGITS:
        mark = node.start_mark
        raise _Overflow(f"line {mark.line + 1}: an integer of {len(text):,} digits; at most {MAX_INT_DIGITS}", mark.line + 1)
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text)


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node))
    value = float(yaml.SafeLoader.construct_yaml_float(loader, node))
    # float('1e400') is inf without a word; a finite literal that overflows is a typo.
    if math.isinf(value) and "inf" not in text.lower():
        mark = node.start_mark
        raise _Overflow(
            f"line {mark.line + 1}: {text} overflows float64 (largest is about 1.8e308); write .inf if you mean infinity",
            mark.line + 1,
        )
    return value


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:  # e.g. `{[1]: 2}`: a list as a key (found by fuzzing)
            raise yaml.constructor.ConstructorError(
                None, None, f"a {type(key).__name__} cannot be a key", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        if isinstance(key, str) and CONTROL.search(key):
            # A newline in a key would start a line of its own wherever the key is printed (a CI log).
            raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} holds a control character", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


# Control characters (C0, C1, line and paragraph separators): refused in a spec's keys, case names
# and file names, which are printed in messages and CI logs.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _at_line(source: str, line: int | None) -> str:
    """``source`` as the place of an error found at a line of the text rather than at a key."""
    if line is None:
        return source
    return Where(source.file, source.key, str(source), line) if isinstance(source, Where) else Where(source, "", None, line)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; any problem is a one-line SpecError naming ``source``."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else loader.construct_document(node)
        finally:
            loader.dispose()
    except _Refused as exc:
        raise SpecError(exc.message, where=where(source, exc.keypath), hint=exc.hint) from None
    except RecursionError:  # not reached within MAX_YAML_DEPTH; a last line of defence
        raise SpecError("nested too deeply", where=source) from None
    except _Overflow as exc:
        raise SpecError(str(exc), where=_at_line(source, exc.line)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if "tag:yaml.org,2002:merge" in str(exc):
            # Merge keys are YAML 1.1 only, and expand aliases where the value counter cannot see them.
            problem = "merge keys (<<:) are not supported in a spec"
            hint: str | None = "write the keys out, or use cases: for variations of one spec"
        elif "could not determine a constructor" in str(exc):
            problem = f"{problem}; YAML tags such as !!python/... are not allowed in a spec"
            hint = None
        else:
            hint = None
        raise SpecError(f"{line}{problem}", where=_at_line(source, mark.line + 1 if mark else None), hint=hint) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", where=source) from None


# --------------------------------------------------------------------------- lines of keys

_CASE = re.compile(r"^cases\[\d+\]\.?")


def locate(text: str, keypath: str) -> tuple[int, int] | None:
    """The line and column (from 1) of ``keypath`` in a spec's YAML text.

    A mapping key is found at the key itself, a list item at the item; where the whole path is not
    in the text, the deepest part of it that is. A key of a case (``cases[1].function``) that the
    case does not set is looked up among the shared top-level keys, where it comes from.
    """
    try:
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError):
        return None
    if root is None:
        return None
    found, exact = _descend(root, keypath)
    case = _CASE.match(keypath)
    if case and not exact and keypath[case.end() :]:
        shared, shared_exact = _descend(root, keypath[case.end() :])
        if shared_exact:
            found = shared
    return None if found is None else (found.line + 1, found.column + 1)


def _descend(node: Any, target: str) -> tuple[Any, bool]:
    """The mark of the deepest node along ``target`` (a key path as ``join`` builds it), and whether it is all of it."""
    best, prefix = None, ""
    while True:
        if isinstance(node, yaml.MappingNode):
            children = [(join(prefix, k.value), k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            children = [(join(prefix, i), v, v) for i, v in enumerate(node.value)]
        else:
            return best, False
        for path, at, inner in children:
            if path == target:
                return at.start_mark, True
            if target.startswith((path + ".", path + "[")):
                best, prefix, node = at.start_mark, path, inner
                break
        else:
            return best, False
