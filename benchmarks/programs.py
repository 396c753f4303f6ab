"""Programs per spec of ``jaxdiff check``: how many programs JAX traces and lowers for each spec
(issue 25), and where a warm run's time goes (cProfile's top entries).

    .venv/bin/python benchmarks/programs.py SPEC.yaml ...           # programs per spec
    .venv/bin/python benchmarks/programs.py --profile 15 SPEC.yaml  # and the profile's top entries

Counted with JAX's own monitoring events: one lowering to an MLIR module is one program.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--profile", type=int, default=0, help="print this many of cProfile's top entries (cumulative)")
    args = parser.parse_args()

    import jax.monitoring

    from jaxdiff_cli import operations
    from jaxdiff_cli.checks.check import Settings

    events: Counter[str] = Counter()

    def listen(event: str, _seconds: float, **_kw: object) -> None:
        events[event] += 1

    jax.monitoring.register_event_duration_secs_listener(listen)
    lowered = "/jax/core/compile/jaxpr_to_mlir_module_duration"
    per_spec = []
    profiler = cProfile.Profile()
    for spec in args.specs:
        before = events[lowered]
        profiler.enable()
        reports = operations.check([spec], Settings())
        profiler.disable()
        per_spec.append((spec, events[lowered] - before, len(reports)))
    for spec, n, cases in per_spec:
        print(f"{n:4d} programs  {spec}" + (f" ({cases} cases)" if cases > 1 else ""))
    total = sum(n for _, n, _ in per_spec)
    specs = sum(c for _, _, c in per_spec)
    print(f"{total} programs for {specs} checked specs and cases: {total / specs:.1f} each")
    if args.profile:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
        sys.stdout.write(out.getvalue())


if __name__ == "__main__":
    main()
