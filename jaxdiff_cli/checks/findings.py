"""What a check found, and the one comparator every check uses (expected values and AD vs FD alike).

An entry fails only when |AD − reference| > atol + rtol·|reference| + 10·(error estimate of the
reference) + 32·eps(dtype)·(largest |reference| in its output row): the last term is the rounding
that computing the AD value in the spec's dtype can carry. Against a value a spec wrote
(``per_entry``) nothing scales with other entries: the rounding term is the entry's own
|reference|, and atol counts up to ATOL_SHARE of that (at least ATOL_FLOOR), so one large expected
entry cannot make a wrong small one pass (``[1e20, 0]`` against ``[1e20, 9]``). A reference without a usable estimate
(every finite-difference step left the function's domain) is reported, never convicts. Complex
entries are compared part by part (real, imaginary), and a failure names the part.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxdiff_cli.errors import JaxdiffError

ERR_MULTIPLE = 10.0
ROUNDING_MULTIPLE = 32.0
# An atol counts on an expected entry up to this share of the entry's own magnitude, and at least
# ATOL_FLOOR (where the expected value is zero): more would accept values far from it.
ATOL_SHARE = 0.01
ATOL_FLOOR = 1e-6


@dataclass(frozen=True)
class Worst:
    """The entry furthest outside its bound."""

    output: str
    index: tuple[int, ...]
    ad: float
    reference: float
    error: float  # error estimate of the reference (0 for exact references)
    bound: float


@dataclass(frozen=True)
class Finding:
    name: str
    passed: bool
    detail: str = ""
    worst: Worst | None = None
    skipped: bool = False


@dataclass
class Report:
    spec: str
    findings: list[Finding] = field(default_factory=list)
    error: JaxdiffError | None = None
    # what the operations computed, by output name (for --update)
    results: dict[str, Any] = field(default_factory=dict)
    updated: list[str] = field(default_factory=list)  # the files --update wrote
    changes: list[str] = field(default_factory=list)  # what --update changed: one line per entry, old → new
    unchanged: int = 0  # entries --update left as they were (they still match)
    unrecorded: list[str] = field(default_factory=list)  # results --update left out, each with why
    # Where the spec is, for reports that point at its lines (JUnit, GitHub annotations, pytest):
    file: str | None = None  # the spec file, or <stdin>
    key: str = ""  # the case's key path in the file (cases[1]); empty for a spec without cases:
    case: str | None = None  # the case's name
    seconds: float = 0.0  # how long checking it took
    # Its tests after SPEC_TEST (tests_of): the pytest plugin's items and check's JUnit testcases. Empty
    # for a spec that could not be read, which has only SPEC_TEST.
    tests: tuple[str, ...] = ()
    # Checks (DERIVATIVE_GROUPS) that do not apply to this spec, and why: the pytest plugin's skip reasons.
    inapplicable: dict[str, str] = field(default_factory=dict)

    def not_applied(self, groups: tuple[str, ...], why: str) -> None:
        """Say why these checks do not apply (the first reason given for each stands)."""
        for group in groups:
            self.inapplicable.setdefault(group, why)

    @property
    def passed(self) -> bool:
        return self.error is None and all(f.passed for f in self.findings)


def real_view(a: Any) -> np.ndarray:
    """A complex array as its (real, imaginary) parts along a new last axis; a real array as it is."""
    a = np.asarray(a)
    return np.stack([a.real, a.imag], axis=-1) if a.dtype.kind == "c" else a


# The checks of a spec as tests (the pytest plugin's items, after one per expect: entry), and the
# finding names each one gathers (the names check_derivatives gives its findings).
DERIVATIVE_GROUPS = ("ad_vs_fd[fwd]", "ad_vs_fd[rev]", "adjoint", "hvp", "hessian", "holomorphic", "higher_order", "finite")
_GROUP_PREFIXES = (
    (("jacobian fwd vs FD", "jvp vs FD"), ("ad_vs_fd[fwd]",)),
    (("jacobian rev vs FD", "vjp vs FD", "grad vs FD"), ("ad_vs_fd[rev]",)),
    (("Cauchy", "holomorphic"), ("holomorphic",)),
    (("derivative", "taylor"), ("higher_order",)),
    (("second derivatives",), ("hessian", "hvp")),
    (("AD vs FD", "jacobian vs FD"), ("ad_vs_fd[fwd]", "ad_vs_fd[rev]")),  # not compared: both modes
    (("adjoint",), ("adjoint",)),
    (("hvp ",), ("hvp",)),
    (("hessian ",), ("hessian",)),
    (("finite", "value finite"), ("finite",)),
)


SPEC_TEST = "spec"  # the test of a spec (or case) as a whole: it fails when the spec cannot be read or checked
EXPECT_SETTINGS = ("rtol", "atol", "recorded")  # keys of expect: that are no expected value


def tests_of(expect: Iterable[str], *, holomorphic: bool, order: bool) -> tuple[str, ...]:
    """The tests of a spec (or case) after SPEC_TEST, named as pytest names the plugin's items and
    check's JUnit report names its testcases: ``expect[NAME]`` per expected value, then the derivative
    checks. Those only some specs have (``holomorphic``, ``higher_order``) are there only for them."""
    only_if = {"holomorphic": holomorphic, "higher_order": order}
    expected = tuple(f"expect[{name}]" for name in expect if name not in EXPECT_SETTINGS)
    return expected + tuple(g for g in DERIVATIVE_GROUPS if only_if.get(g, True))


def groups_of(name: str) -> tuple[str, ...]:
    """The tests a finding belongs to: ``expect[NAME]`` or some of DERIVATIVE_GROUPS (none if unknown)."""
    if name.startswith("expect "):
        return (f"expect[{name.removeprefix('expect ')}]",)
    return next((groups for prefixes, groups in _GROUP_PREFIXES if name.startswith(prefixes)), ())


def compare_arrays(
    name: str,
    output: str,
    ad: np.ndarray,
    ref: np.ndarray,
    err: np.ndarray,
    dtype: str,
    tol: tuple[float, float],
    *,
    per_entry: bool = False,
) -> Finding:
    """Entry-wise AD vs reference; a failure names the worst entry.

    ``per_entry``: the reference is a value a spec wrote (expect:), so each entry's allowance
    scales with that entry alone (and each part of a complex entry with that part): see the
    module's note.
    """
    parts = np.iscomplexobj(ad) or np.iscomplexobj(ref)
    if parts:  # each part its own entry; the error estimate bounds both
        err = np.broadcast_to(np.asarray(err, dtype=np.float64), np.shape(ref))[..., None]
        ad, ref = real_view(np.asarray(ad, np.complex128)), real_view(np.asarray(ref, np.complex128))
    ad = np.asarray(ad, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    err = np.broadcast_to(np.asarray(err, dtype=np.float64), ref.shape)
    rtol, atol = tol
    eps = float(np.finfo(dtype).eps)
    finite_ref = np.where(np.isfinite(ref), np.abs(ref), 0.0)
    atol_at: Any = atol
    if per_entry:
        row = finite_ref
        atol_at = np.minimum(atol, np.maximum(ATOL_FLOOR, ATOL_SHARE * finite_ref))
    elif ref.ndim > 1:
        row = np.max(finite_ref, axis=tuple(range(1, ref.ndim)), keepdims=True)
    else:
        row = np.max(finite_ref, initial=0.0)
    bound = atol_at + rtol * np.abs(ref) + ERR_MULTIPLE * err + ROUNDING_MULTIPLE * eps * row
    # An infinite reference is matched exactly: its tolerance (rtol * inf) would be infinite, and
    # |x - inf| <= inf let any finite value pass `expect: value: [.inf]` (red team, issue 19).
    infinite = np.isinf(ref)
    bound = np.where(infinite, 0.0, bound)
    with np.errstate(invalid="ignore"):
        gap = np.where(infinite & (ad == ref), 0.0, np.abs(ad - ref))
        bad = ~(gap <= bound)  # NaN anywhere fails
        bad &= np.isfinite(err)  # an unusable reference (every step left the domain: inf error) cannot convict
        ratio = np.where(bound > 0, gap / np.where(bound > 0, bound, 1), np.where(gap > 0, np.inf, 0))
    unusable = int(np.sum(~np.isfinite(err)))
    if ad.size and unusable == ad.size:
        # Nothing was compared: a derivative checked against no reference must not pass (a spec could
        # make f NaN around its point on purpose, and pass any derivative).
        return Finding(name, False, "no entry has a usable reference: f is not finite at the finite-difference steps")
    note = entries(ad.size) + (f", {unusable} without a usable reference" if unusable else "")
    if not bad.any():
        return Finding(name, True, note)
    ratio = np.where(bad, np.nan_to_num(ratio, nan=np.inf), -1)
    idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ad.shape))
    worst = Worst(output, idx, float(ad[idx]), float(ref[idx]), float(err[idx]), float(bound[idx]))
    if parts:  # the last axis is the part: name it instead of indexing it
        worst = Worst(
            f"{output} ({('real', 'imag')[idx[-1]]} part)", idx[:-1], worst.ad, worst.reference, worst.error, worst.bound
        )
    return Finding(name, False, f"{int(bad.sum())} of {entries(ad.size)} outside tolerance", worst)


def adjoint_finding(
    name: str, output: str, u: np.ndarray, jv: np.ndarray, jtu: np.ndarray, v: np.ndarray, dtype: str, tol: tuple[float, float]
) -> Finding:
    """Re⟨u, J v⟩ against Re⟨Jᵀu, v⟩ for k pairs of directions, u (k, m) and v (k, n): forward and
    reverse mode against each other, with no reference of either's making."""
    lhs = np.real(np.einsum("km,km->k", u, jv))
    rhs = np.real(np.einsum("kn,kn->k", jtu, v))
    # The sums' own rounding scales with the sum of absolute products, not with the result.
    scale = np.einsum("km,km->k", np.abs(u), np.abs(jv)) + np.einsum("kn,kn->k", np.abs(jtu), np.abs(v))
    rounding = ROUNDING_MULTIPLE * float(np.finfo(dtype).eps) * scale * math.sqrt(max(u.shape[1], v.shape[1], 1))
    # atol on each entry of J allows atol·Σ|u_i|·|v_j| in each product, and both sides carry their
    # own: without it a J that is zero (f constant) convicts the rounding noise of Jv and Jᵀu,
    # whatever --atol says.
    slack = 2 * tol[1] * np.sum(np.abs(u), axis=1) * np.sum(np.abs(v), axis=1)
    return compare_arrays(name, output, rhs, lhs, (rounding + slack) / ERR_MULTIPLE, dtype, (tol[0], 0.0))


def entries(n: int) -> str:
    """``1 entry``, ``4 entries``."""
    return f"{n} entry" if n == 1 else f"{n} entries"


def finite_results(results: list[tuple[str, Any]]) -> Finding:
    """The "finite" finding: passes when no result holds a NaN or Inf, else names the first one."""
    from jaxdiff_cli.engine.diagnostics import first_nonfinite

    bad = first_nonfinite(dict(results))
    if bad is None:
        return Finding("finite", True, "all results finite")
    name, idx, value = bad
    return Finding("finite", False, f"{name} is {value} at {list(idx)}", Worst(name, idx, value, math.nan, 0.0, 0.0))
