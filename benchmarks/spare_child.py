"""Would a pre-forked spare child help the worker on 2 cores? (Measured; not adopted: BENCHMARKS.md.)

    .venv/bin/python benchmarks/spare_child.py [ROUNDS] [--back-to-back]

In one process that loaded what the worker loads (``server.preload``), a tiny ``jvp`` is served
alternately (a) by a child forked per call, as the worker does, and (b) by a spare forked ahead
that has started its CPU backend and waits on a pipe; a new spare is forked as soon as one is used.
Prints the median and minimum per call of each. With ``--back-to-back`` the calls follow each other
at once (a shell loop), otherwise with 0.3 s between them.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("JAXDIFF_CACHE_DIR", tempfile.mkdtemp(prefix="jdspare-"))

from jaxdiff_cli.worker import server

ARGV = ["jaxdiff", "jvp", "-f", "jnp.sin(x)*x", "-p", "x=1.0", "-t", "x=1.0", "--json"]


def serve_call() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    sys.argv = ARGV
    try:
        from jaxdiff_cli import cli

        cli.main()
    except SystemExit:
        pass
    os._exit(0)


def fork_per_call() -> float:
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        serve_call()
    os.waitpid(pid, 0)
    return time.perf_counter() - t0


def make_spare() -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        import jax

        jax.devices()  # the backend, started ahead of the call
        os.read(r, 1)
        serve_call()
    os.close(r)
    return pid, w


def main() -> None:
    rounds = int(next((a for a in sys.argv[1:] if a.isdigit()), "9"))
    pause = 0.0 if "--back-to-back" in sys.argv else 0.3
    server.preload()
    import gc

    gc.collect()
    gc.freeze()
    fork_per_call()  # the compilation cache warm
    spare = make_spare()
    time.sleep(2)
    plain, spared = [], []
    for _ in range(rounds):
        plain.append(fork_per_call())
        time.sleep(pause)
        t0 = time.perf_counter()
        pid, w = spare
        os.write(w, b"x")
        spare = make_spare()
        os.waitpid(pid, 0)
        spared.append(time.perf_counter() - t0)
        time.sleep(pause)
    os.kill(spare[0], 9)
    os.waitpid(spare[0], 0)
    for name, xs in (("fork per call", plain), ("pre-forked spare", spared)):
        print(f"{name:18s} median {statistics.median(xs) * 1e3:6.0f} ms  min {min(xs) * 1e3:6.0f} ms")


if __name__ == "__main__":
    main()
