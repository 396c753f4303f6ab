"""``jaxdiff check`` of one spec: its expected values, then its derivatives against independent references.

Errors (a bad spec, a failing function) are kept in the report, so the other specs are still checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from jaxdiff_cli.checks.derivatives import check_derivatives
from jaxdiff_cli.checks.expectations import check_expectations, collect_results, environment, note_environment
from jaxdiff_cli.checks.findings import Finding, Report, Worst, tests_of
from jaxdiff_cli.checks.higher import check_higher
from jaxdiff_cli.errors import JaxdiffError, UsageError, blame
from jaxdiff_cli.inputs.files import STDIN
from jaxdiff_cli.inputs.spec import Spec
from jaxdiff_cli.ops import JVP
from jaxdiff_cli.prepare import Options, Prepared, cotangents, prepare, refuse_complex_sparse, tangents

__all__ = ["Finding", "Report", "Settings", "Worst", "check_spec"]


@dataclass(frozen=True)
class Settings:
    rtol: float | None = None
    atol: float | None = None
    seed: int = 0
    no_cache: bool = False
    update: bool = False  # record the current results in the spec's expect block, instead of checking


def check_spec(spec: Spec, settings: Settings, *, only_spec: bool = False) -> Report:
    """Every check of one spec; errors (bad spec, failing function) are kept in the report.

    ``only_spec``: no spec on another device runs in this process (see runtime.configure).
    """
    source = spec.source
    report = Report(spec=source, file=getattr(source, "file", None), key=getattr(source, "key", ""), case=spec.case)
    report.tests = tests_of(spec.expect, holomorphic=spec.holomorphic, order=spec.order is not None)
    start = time.perf_counter()
    try:
        prep = prepare(spec, no_cache=settings.no_cache, only_spec=only_spec)
        from jaxdiff_cli.engine.problem import traced_once

        prep = replace(prep, problem=traced_once(prep.problem))  # f traced once for all its checks
        if spec.sparse:  # refused as jacobian refuses it, not passed with no sparse row
            refuse_complex_sparse(prep, Options())
        # tangents: and cotangents: read as jvp and vjp read them, even where no check uses them: a
        # spec that jvp or vjp refuses is not one that check passes.
        if spec.tangents is not None:
            tangents(prep, JVP.name)
        if spec.cotangents is not None:
            cotangents(prep)
        if settings.update:
            _record(prep, report)
            return report
        check_expectations(prep, report)
        note_environment(prep, report)
        check_derivatives(prep, report, settings.rtol, settings.atol, settings.seed)
        if spec.order is not None:  # derivative / taylor at that order
            check_higher(prep, report, settings.rtol, settings.atol)
    except JaxdiffError as exc:
        report.error = exc
    except Exception as exc:  # the user's function raised where no call wraps it; the other specs still run
        report.error = blame(exc, where=spec.where("function"))
    finally:
        report.seconds = time.perf_counter() - start
    return report


def _record(prep: Prepared, report: Report) -> None:
    """--update: record the results in the spec's expect block (checks/record.py). Only what could not be
    recorded stays in the report as a failed finding: the comparisons with the old values become the
    changes it reports (old → new), and the derivative checks are left to a `check` without --update."""
    from jaxdiff_cli.checks.record import record

    if report.file is None or report.file == STDIN:
        raise UsageError("--update rewrites spec files: give the spec as a file, not on stdin", where="--update")
    expectations, actual = check_expectations(prep, report)
    collect_results(prep, report)
    done = record(Path(report.file), report.key, expectations, actual, report.findings, report.results, environment(prep))
    report.findings = done.failures
    report.changes, report.unchanged, report.updated = done.changes, done.unchanged, done.written
