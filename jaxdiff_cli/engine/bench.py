"""Timing a plan for ``jaxdiff bench``: compile time, steady-state time and memory of an operation in each of its modes.

Each mode is compiled once (AOT); the compiled program is then called until ``min_time`` seconds or
``max_runs`` calls have passed, after one warm-up call, so the figures are steady state: no tracing,
no compiling and no retracing inside the timed loop.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from jaxdiff_cli.engine.problem import Plan, call, compile_plan


@dataclass(frozen=True)
class Timing:
    mode: str | None
    compile_s: float
    median_s: float
    min_s: float
    runs: int
    temp_bytes: int | None  # XLA's estimate of the program's working memory

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "compile_s": round(self.compile_s, 6),
            "median_s": self.median_s,
            "min_s": self.min_s,
            "runs": self.runs,
            "temp_bytes": self.temp_bytes,
        }


def time_plan(plan: Plan, min_time: float = 0.5, max_runs: int = 1000, min_runs: int = 5) -> Timing:
    compiled, compile_s = compile_plan(plan)
    call(compiled, plan)  # warm-up: first-call allocations and transfers stay out of the figures
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or (len(times) < max_runs and time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        call(compiled, plan)
        times.append(time.perf_counter() - t0)
    try:
        temp = int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # not every backend reports it
        temp = None
    return Timing(plan.info.get("mode"), compile_s, statistics.median(times), min(times), len(times), temp)


TIE_RATIO = 1.05  # medians closer than 5% are not a difference a user should act on


def recommend(timings: list[Timing]) -> str | None:
    """Which mode to use, and by how much it wins in steady state; a tie where the difference is noise.

    A difference is noise when the medians are within ``TIE_RATIO`` of each other, or when the slower
    mode's fastest run was as fast as the faster mode's typical (median) run.
    """
    moded = [t for t in timings if t.mode is not None]
    if len(moded) < 2:
        return None
    ranked = sorted(moded, key=lambda t: t.median_s)
    best, second = ranked[0], ranked[1]
    ratio = second.median_s / best.median_s if best.median_s > 0 else float("inf")
    if ratio < TIE_RATIO or second.min_s <= best.median_s:
        return f"{best.mode}: a tie with {second.mode} in steady state ({ratio:.2f}x, within noise); either will do"
    return f"{best.mode}: {ratio:.2f}x faster than {second.mode} in steady state"
