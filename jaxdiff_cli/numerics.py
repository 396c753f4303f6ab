"""Non-finite values and float32 precision: found in results, reported as where they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxdiff_cli.render import named_leaves

F32 = np.finfo(np.float32)
NEAR_OVERFLOW = 1e30  # float32 overflows at 3.4e38; squaring or summing anything this large will
WIDE_RANGE = 1e12  # float32 keeps ~7 digits: an array this wide cannot be summed or compared in it


def first_nonfinite(outputs: Mapping[str, Any]) -> tuple[str, tuple[int, ...], float] | None:
    """The first NaN/Inf in the outputs: (leaf name, index, value), or None."""
    for name, arr in named_leaves(dict(outputs)):
        a = np.asarray(arr)
        if a.dtype.kind in "fc":
            bad = np.argwhere(~np.isfinite(a))
            if bad.size:
                idx = tuple(int(i) for i in bad[0])
                return name, idx, float(a[idx])
    return None


def precision_warnings(trees: Mapping[str, Any]) -> list[str]:
    """Where float32 is likely to lose the answer: values near overflow, subnormals, huge ranges."""
    notes = []
    for name, arr in named_leaves(dict(trees)):
        a = np.asarray(arr)
        if a.dtype != np.float32:
            continue
        mags = np.abs(a[np.isfinite(a) & (a != 0)]).astype(np.float64)
        if not mags.size:
            continue
        hi, lo = float(mags.max()), float(mags.min())
        if hi > NEAR_OVERFLOW:
            notes.append(f"{name} reaches {hi:.3g}, near float32's largest value {float(F32.max):.3g}")
        elif lo < float(F32.tiny):
            notes.append(f"{name} holds subnormal values ({lo:.3g}), where float32 keeps few digits")
        elif hi / lo > WIDE_RANGE:
            notes.append(f"{name} spans {lo:.3g} to {hi:.3g}, wider than float32's ~7 digits can relate")
    return notes
