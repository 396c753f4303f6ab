"""The import floor: what every ``jaxdiff`` process pays before any work, as ratios to ``import numpy``.

ml_dtypes 0.7.0 (a dependency of jax) spends ~1.3 s of CPU registering ufunc promoters on every
import, 0.6.0 ~0.02 s (pyproject.toml pins it below 0.7 and says why). These tests fail if such a
floor comes back, through ml_dtypes or anything else under ``import jax``. CPU time, measured in
fresh subprocesses of this venv, medians of interleaved rounds: a busy machine slows both sides of
a ratio alike, and the bounds are several times what is measured (BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest

ROUNDS = 3

# Each prints the CPU seconds of its import only (not Python's start), the base imported first.
_COST = "import time{base}\nt = time.process_time()\nimport {module}\nprint(time.process_time() - t)"


def import_cpu(module: str, base: str = "") -> float:
    code = _COST.format(module=module, base=f"\nimport {base}" if base else "")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def medians(*cases: tuple[str, str]) -> list[float]:
    """Median CPU seconds of each (module, base) case, the cases interleaved round by round."""
    rounds = [[import_cpu(module, base) for module, base in cases] for _ in range(ROUNDS)]
    return [statistics.median(r[i] for r in rounds) for i in range(len(cases))]


@pytest.mark.slow
def test_ml_dtypes_costs_less_than_numpy_itself() -> None:
    # 0.6.0: ~0.1x numpy; 0.7.0: ~6x. The bound sits between with room on both sides.
    numpy_s, ml_dtypes_s = medians(("numpy", ""), ("ml_dtypes", "numpy"))
    assert ml_dtypes_s <= 1.0 * numpy_s, f"import ml_dtypes {ml_dtypes_s:.3f} s of CPU after numpy's {numpy_s:.3f} s"


@pytest.mark.slow
def test_import_jax_stays_within_a_few_numpys() -> None:
    # ~4-5x with ml_dtypes 0.6.0, ~10x with 0.7.0.
    numpy_s, jax_s = medians(("numpy", ""), ("jax", ""))
    assert jax_s <= 8.0 * numpy_s, f"import jax {jax_s:.3f} s of CPU against import numpy {numpy_s:.3f} s"


def test_the_measure_sees_an_import() -> None:
    """The ratio tests are only as good as the measure: an import that does work must cost more than none."""
    assert import_cpu("numpy") > import_cpu("math")
