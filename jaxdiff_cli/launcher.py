"""The ``jaxdiff`` command: a call served by the user's worker when one fits, else run in this process. Stdlib only.

This runs before Typer, NumPy or JAX is imported (~1 ms of its own). When a worker for this call's
settings is running (``jaxdiff worker start``), the call goes to it with this process's fds 0, 1 and 2,
argv, working folder, environment and umask; this process then only waits, passes on SIGINT, SIGTERM
and SIGHUP, and exits with the call's status. Otherwise (no worker, a stale socket, an unsafe folder,
a worker of another version, ``JAXDIFF_NO_WORKER=1``, ``jaxdiff worker ...`` itself) the call runs
here, in-process, exactly as it always did. ``JAXDIFF_WORKER=auto`` starts a worker in the background
when none is running (this call still runs in-process); nothing else ever starts one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from jaxdiff_cli.worker import control, place, protocol

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms of the client's start)
if TYPE_CHECKING:
    from typing import Any

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Typer's completion set-up asks which shell is our parent: in a worker's child it would be the worker.
_IN_PROCESS_ONLY = ("--install-completion", "--show-completion")


def main() -> None:
    try:
        code = through_worker(sys.argv[1:])
    except KeyboardInterrupt:  # Ctrl-C before the call was handed over: as jaxdiff ends on it
        os.write(2, b"interrupted\n")
        sys.exit(130)
    if code is None:
        from jaxdiff_cli.cli import main as in_process

        in_process()
        return
    sys.exit(code)


def wanted(argv: list[str]) -> bool:
    """Whether this call may go to a worker at all."""
    if not protocol.SUPPORTED or place.bypassed()[0]:
        return False
    return argv[:1] != ["worker"] and not any(a.startswith(_IN_PROCESS_ONLY) for a in argv)


def through_worker(argv: list[str]) -> int | None:
    """The call's exit status from the worker, or None: run it in-process (nothing of it ran yet)."""
    if not wanted(argv):
        return None
    found = control.find()
    if found.sock is None:
        if os.environ.get("JAXDIFF_WORKER") == "auto" and found.why.startswith(("no worker", "stale")):
            _start_in_background(found)
        return None
    with found.sock as sock:
        return _call(sock, argv)


def _start_in_background(found: control.Found) -> None:
    with contextlib.suppress(OSError, place.Unsafe):
        if found.why.startswith("stale"):
            os.unlink(found.path)
        control.spawn(found.path, float(os.environ.get("JAXDIFF_WORKER_IDLE", "900")))


def _stdio() -> list[tuple[str, str, bool, bool]]:
    """What this interpreter chose for each standard stream; the worker's child rebuilds them alike."""
    out = []
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        if stream is None:
            out.append(("utf-8", "strict", False, False))
        else:
            out.append(
                (
                    stream.encoding,
                    stream.errors or "strict",
                    bool(stream.line_buffering),
                    bool(getattr(stream, "write_through", False)),
                )
            )
    return out


def _call(sock: Any, argv: list[str]) -> int | None:
    request = {
        "op": "run",
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": _umask(),
        "stdio": _stdio(),
        "stamp": place.stamp(),
        "settings": place.settings(),
    }
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        with contextlib.suppress(OSError):
            protocol.send_line(sock, {"signal": signum})

    try:
        protocol.send_request(sock, request, [0, 1, 2])
    except OSError:  # a closed fd 0-2, a worker that just left: in-process
        return None
    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    accepted = False
    lines = protocol.Lines(sock)
    try:
        while True:
            try:
                message = lines.next()
            except (OSError, ValueError):
                message = None
            if message is None:
                if not accepted:
                    return 128 + received[0] if received else None
                os.write(2, b"error: the jaxdiff worker lost this call (it was stopped or killed)\n")
                return 70
            if "exit" in message:
                return int(message["exit"])
            if "accepted" in message:
                accepted = True
            elif "retired" in message:  # jaxdiff or JAX changed: this call runs in-process
                return 128 + received[0] if received else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
