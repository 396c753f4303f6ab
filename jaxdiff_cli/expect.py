"""The spec's ``expect:`` block: expected results by output name, compared with a tolerance.

    expect:
      jvp: [65.353714, 35.943752, 80.87344]        # a whole output, by its name in --json
      vjp.x1: {index: [0], value: [...]}            # part of it: result[0]
      jacobian.x: {einsum: "ijij->ij", value: ...}  # part of it: np.einsum("ijij->ij", result)
      rtol: 1.0e-6                                  # optional; atol too
      jacobian.w: {value: ..., rtol: 1.0e-3}        # a tolerance for one entry
      hessian.x.x: {file: s.golden.npz, key: hessian.x.x}   # a value from a file
      recorded: {jax: 0.10.2, ...}                  # written by `check --update`; not compared

Default tolerances follow the dtype: rtol 1e-5 / atol 1e-6 for float32, 1e-12 / 1e-14 for float64.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jaxdiff_cli.arrays import Context, construct, is_constructor, to_array
from jaxdiff_cli.spec import join

DEFAULT_TOL = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)}
_ENTRY_KEYS = {"value", "index", "einsum", "rtol", "atol"}
_EINSUM = re.compile(r"^[a-zA-Z]+->[a-zA-Z]*$")


@dataclass(frozen=True)
class Expectation:
    name: str  # output name, as in --json ("vjp.x")
    value: np.ndarray
    rtol: float
    atol: float
    index: tuple[int, ...] | None = None
    einsum: str | None = None

    def select(self, actual: Any) -> np.ndarray:
        a = np.asarray(actual, dtype=np.float64)
        if self.index is not None:
            a = a[self.index]
        if self.einsum is not None:
            a = np.einsum(self.einsum, a)
        return np.asarray(a)


@dataclass(frozen=True)
class Mismatch:
    name: str
    message: str


def _tol(raw: Any, ctx: Context, keypath: str) -> float:
    # A spec arrives in a pull request: rtol: .inf (or 1e300, or rtol >= 1, which accepts any value
    # of the right sign) would switch its own check off.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or raw < 0:
        raise ctx.error(keypath, "a tolerance is a finite number >= 0")
    if keypath.endswith("rtol") and raw >= 1:
        raise ctx.error(keypath, f"rtol {raw:g} would accept anything within 100% of the expected value", hint="rtol is below 1")
    return float(raw)


def parse(expect: Mapping[str, Any], ctx: Context) -> list[Expectation]:
    """Check the expect block's form and read its values (in float64, to compare precisely)."""
    rtol0, atol0 = DEFAULT_TOL[ctx.dtype]
    rtol = _tol(expect["rtol"], ctx, "expect.rtol") if "rtol" in expect else rtol0
    atol = _tol(expect["atol"], ctx, "expect.atol") if "atol" in expect else atol0
    wide = Context("float64", ctx.base_dir, ctx.source)
    out = []
    for name, raw in expect.items():
        if name in ("rtol", "atol", "recorded"):
            continue
        kp = join("expect", name)
        # {value: ..., index/einsum/rtol/atol: ...} is an entry; {value: ..., dtype: ...} a value.
        entry = raw if isinstance(raw, dict) and "value" in raw and set(raw) <= _ENTRY_KEYS else {"value": raw}
        extra = set(entry) - _ENTRY_KEYS
        if extra:
            raise ctx.error(join(kp, sorted(extra)[0]), "unknown key", hint=f"an entry takes {', '.join(sorted(_ENTRY_KEYS))}")
        index = entry.get("index")
        if index is not None and (not isinstance(index, list) or not all(isinstance(i, int) for i in index)):
            raise ctx.error(join(kp, "index"), "a list of whole numbers")
        einsum = entry.get("einsum")
        if einsum is not None and (not isinstance(einsum, str) or not _EINSUM.match(einsum)):
            raise ctx.error(join(kp, "einsum"), "an einsum selection such as 'ijij->ij'")
        value_path = join(kp, "value") if entry is raw else kp
        value = entry["value"]
        # A recorded golden value may live in a sidecar file: {file: spec.golden.npz, key: name}.
        array = (
            np.asarray(construct(value, wide, value_path), np.float64)
            if is_constructor(value)
            else to_array(value, wide, value_path)
        )
        out.append(
            Expectation(
                name=str(name),
                value=array,
                rtol=_tol(entry["rtol"], ctx, join(kp, "rtol")) if "rtol" in entry else rtol,
                atol=_tol(entry["atol"], ctx, join(kp, "atol")) if "atol" in entry else atol,
                index=tuple(index) if index is not None else None,
                einsum=einsum,
            )
        )
    return out


def compare(outputs: Mapping[str, Any], expectations: list[Expectation]) -> list[Mismatch]:
    """The expectations that an operation's named outputs break (absent names are skipped)."""
    bad = []
    for e in expectations:
        if e.name not in outputs:
            continue
        try:
            actual = e.select(outputs[e.name])
        except (IndexError, ValueError) as exc:
            bad.append(Mismatch(e.name, f"cannot select: {exc}"))
            continue
        if actual.shape != e.value.shape:
            bad.append(Mismatch(e.name, f"shape {actual.shape} but expected {e.value.shape}"))
            continue
        close = np.isclose(actual, e.value, rtol=e.rtol, atol=e.atol, equal_nan=True)
        if not close.all():
            idx = tuple(int(i) for i in np.argwhere(~close)[0])
            bad.append(
                Mismatch(
                    e.name, f"at {list(idx)}: got {actual[idx]!r}, expected {e.value[idx]!r} (rtol {e.rtol:g}, atol {e.atol:g})"
                )
            )
    return bad
