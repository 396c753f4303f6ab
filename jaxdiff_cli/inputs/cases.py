"""A spec's cases and the operations each runs: ``cases:`` over the shared top-level keys, ``run:``'s
steps, ``--case`` picking cases by name; ``load_spec`` and ``load_cases``, the loader's entry points.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jaxdiff_cli.errors import SpecError, UsageError, join, suggest, where
from jaxdiff_cli.inputs.files import read_source
from jaxdiff_cli.inputs.spec import Overrides, Spec, build_spec, parse_chunk_size, parse_order
from jaxdiff_cli.inputs.yamlfile import CONTROL
from jaxdiff_cli.ops import OPERATIONS

STEP_OPTIONS = ("mode", "chunk_size", "order", "sparse")  # what a step of run: may set: {jacobian: {mode: rev}}


def load_spec(spec_path: str | None, ov: Overrides) -> Spec:
    """Read, check and override a spec: what a command that computes one spec loads.

    With ``--case`` (``ov.cases``), the one case of a spec with ``cases:`` that it picks.
    """
    data, source, base = read_source(spec_path)
    if not ov.cases:
        return build_spec(data, source, base, ov, _file(spec_path))
    if "cases" not in data:
        raise UsageError("this spec has no cases: to pick from", where="--case", hint=f"{source} is one spec")
    chosen = cases_of(data, source, base, ov, spec_path, need_steps=False)
    if len(chosen) != 1:
        picked = f" ({', '.join(c.name for c in chosen)})" if chosen else ""
        raise UsageError(
            f"{' '.join(ov.cases)} picks {len(chosen)} cases{picked}; this command computes one",
            where="--case",
            hint=None if chosen else f"cases: {', '.join(case_names(data))}",
        )
    return chosen[0].spec


def _file(spec_path: str | None) -> Path | None:
    return Path(spec_path) if spec_path not in (None, "-") else None


@dataclass(frozen=True)
class Step:
    """One operation of a case, with its own mode / chunk size."""

    op: str
    mode: str | None = None
    chunk_size: int | str | None = None
    order: int | None = None  # derivative / taylor
    sparse: bool | None = None  # None: the spec's sparse:
    key: str = field(default="", compare=False)  # the step's key path (run[0]), for errors about its options

    @property
    def label(self) -> str:
        """The step's name in `run`'s results and files: unique within a case (``jacobian[mode=fwd]``)."""
        options = [
            f"{k}={v}" for k, v in (("mode", self.mode), ("chunk_size", self.chunk_size), ("order", self.order)) if v is not None
        ]
        options += [f"sparse={str(self.sparse).lower()}"] if self.sparse is not None else []
        return f"{self.op}[{','.join(options)}]" if options else self.op


@dataclass(frozen=True)
class Case:
    name: str
    spec: Spec
    steps: tuple[Step, ...]


def _steps(raw: Any, source: str, keypath: str) -> tuple[Step, ...]:
    if raw is None:
        raise SpecError(
            "which operations to run?", where=where(source, keypath), hint="e.g. run: [jvp, vjp, {jacobian: {mode: rev}}]"
        )
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise SpecError("must be a list of operations", where=where(source, keypath))
    steps: list[Step] = []
    for i, item in enumerate(raw):
        kp = join(keypath, i)
        options: Any = {}
        if isinstance(item, dict) and len(item) == 1:
            item, options = next(iter(item.items()))
            options = options or {}
        if not isinstance(item, str) or item not in OPERATIONS:
            raise SpecError(
                f"unknown operation {item!r}",
                where=where(source, kp),
                hint=suggest(str(item), OPERATIONS) or ", ".join(OPERATIONS),
            )
        if not isinstance(options, dict) or set(options) - set(STEP_OPTIONS):
            raise SpecError(f"options of {item} are {', '.join(STEP_OPTIONS)}", where=where(source, kp))
        chunk = parse_chunk_size(options.get("chunk_size"), where(source, join(join(kp, item), "chunk_size")))
        order = parse_order(options.get("order"), where(source, join(join(kp, item), "order")))
        sparse = options.get("sparse")
        if sparse is not None and not isinstance(sparse, bool):
            raise SpecError("true or false", where=where(source, join(join(kp, item), "sparse")))
        step = Step(item, options.get("mode"), chunk, order=order, sparse=sparse, key=join(kp, item))
        if any(s.label == step.label for s in steps):
            raise SpecError(f"{step.label} is listed twice", where=where(source, kp), hint="give each step other options")
        steps.append(step)
    return tuple(steps)


def load_cases(spec_path: str | None, ov: Overrides, *, need_steps: bool = True) -> list[Case]:
    """The cases of a spec: its ``cases:`` list over the shared top-level keys, or the spec itself.

    With ``--case`` (``ov.cases``), only the cases whose names match one of its globs: none for a
    spec without ``cases:``. The cases left out are not built, so their errors do not count.
    """
    data, source, base = read_source(spec_path)
    return cases_of(data, source, base, ov, spec_path, need_steps=need_steps)


def case_names(data: Mapping[str, Any]) -> list[str]:
    """The names of a spec's cases, as ``load_cases`` gives them (for messages)."""
    raw = data.get("cases")
    if not isinstance(raw, list):
        return []
    return [str(c.get("name", f"case {i}")) if isinstance(c, dict) else f"case {i}" for i, c in enumerate(raw)]


def picked(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether --case picks a case: its name matches one of the globs (``fast*``, ``vec?``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def cases_of(
    data: dict[str, Any], source: str, base: Path, ov: Overrides, spec_path: str | None, *, need_steps: bool
) -> list[Case]:
    """The cases of a spec already read (``read_source``): see ``load_cases``."""
    if ov.cases and "cases" not in data:
        return []
    shared = {k: v for k, v in data.items() if k != "cases"}
    raw_cases = data.get("cases")
    if raw_cases is None:
        cases_in: list[Any] = [{}]
    elif not isinstance(raw_cases, list) or not raw_cases:
        raise SpecError("must be a non-empty list of cases", where=where(source, "cases"))
    else:
        cases_in = raw_cases
    out = []
    names: set[str] = set()
    for i, case in enumerate(cases_in):
        kp = f"cases[{i}]" if raw_cases is not None else ""
        if not isinstance(case, dict):
            raise SpecError("a case must be a mapping", where=where(source, kp))
        merged = {**shared, **case}
        name = str(merged.pop("name", f"case {i}" if raw_cases is not None else Path(source).stem))
        if CONTROL.search(name):
            raise SpecError(f"the case name {name!r} holds a control character", where=where(source, join(kp, "name")))
        if name in names:
            raise SpecError(f"two cases are named {name!r}", where=where(source, kp))
        names.add(name)
        if ov.cases and not picked(name, ov.cases):
            continue
        run = merged.pop("run", None)
        case_source = where(source, kp) if kp else source
        steps = _steps(run, case_source, "run") if need_steps or run is not None else ()
        path = _file(spec_path) if raw_cases is None else None  # --update rewrites whole-file specs only
        spec = build_spec(merged, case_source, base, ov, path)
        out.append(Case(name=name, spec=replace(spec, case=name) if raw_cases is not None else spec, steps=steps))
    return out
