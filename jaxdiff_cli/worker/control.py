"""``jaxdiff worker start|stop|status``, and finding a worker that fits this call. Stdlib only.

Each returns the lines to show and an exit status: ``status`` is 0 when calls of this user, with
these settings, are served by a worker, and 1 (with the reason) when they run in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

from jaxdiff_cli.worker import place, protocol

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms of the client's start)
if TYPE_CHECKING:
    import subprocess
    from typing import Any

START_TIMEOUT_S = 120.0  # importing JAX on a busy 2-core machine takes seconds


class Found:
    """The worker for this call's settings (a connected ``sock``), or why there is none (``why``).

    Not a dataclass: the client imports this, and dataclasses (with inspect) costs it milliseconds."""

    def __init__(self, path: str, sock: socket.socket | None = None, why: str = "") -> None:
        self.path, self.sock, self.why = path, sock, why


def find(path: str | None = None) -> Found:
    """Connect to the worker for these settings, after the Emacs-style checks of its folder and socket."""
    if not protocol.SUPPORTED:
        return Found(path or "", why="no worker on this platform (it needs fork, SCM_RIGHTS and SO_PEERCRED)")
    path = path or place.socket_path()
    try:
        place.check_folder(os.path.dirname(path))
        place.check_socket(path)
    except FileNotFoundError:
        return Found(path, why="no worker is running for these settings")
    except place.Unsafe as exc:
        if not os.path.lexists(os.path.dirname(path)):
            return Found(path, why="no worker is running for these settings")
        return Found(path, why=f"unsafe, not used: {exc}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        return Found(path, why=f"stale socket: the worker is gone ({exc.strerror})")
    if protocol.peer_uid(sock) != os.getuid():  # someone else answers on our socket
        sock.close()
        return Found(path, why="unsafe, not used: the worker runs as another user")
    return Found(path, sock=sock)


def ask(path: str, op: str) -> dict[str, Any] | None:
    found = find(path)
    if found.sock is None:
        return None
    with found.sock:
        protocol.send_request(found.sock, {"op": op})
        return protocol.Lines(found.sock).next()


def spawn(path: str, idle_s: float) -> subprocess.Popen[bytes]:
    """The worker, in its own session (no terminal: Ctrl-C in this shell does not reach it), logging beside its socket."""
    import subprocess

    place.check_folder(os.path.dirname(path), create=True)
    log = os.open(place.beside(path, ".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        return subprocess.Popen(  # noqa: S603 (this interpreter, our own module, a path we chose)
            # -P: no folder of anyone's on the module path (3.11+); the cwd is the worker's own 0700 folder
            [
                sys.executable,
                *(["-P"] if sys.version_info >= (3, 11) else []),
                "-m",
                "jaxdiff_cli.worker.server",
                "--socket",
                path,
                "--idle",
                str(idle_s),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            cwd=os.path.dirname(path),
        )
    finally:
        os.close(log)


def _clear_stale(path: str) -> None:
    """A socket nobody answers on (its worker was killed) is removed, with its description."""
    found = find(path)
    if found.sock is not None:
        found.sock.close()
        return
    if found.why.startswith("stale"):
        for leftover in (path, place.beside(path, ".json"), place.beside(path, ".log")):
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def start(idle: str) -> tuple[list[str], int]:
    idle_s = parse_duration(idle)
    path = place.socket_path()
    if not protocol.SUPPORTED:
        return [find(path).why], 1
    try:
        place.check_folder(os.path.dirname(path), create=True)
    except place.Unsafe as exc:
        return [f"cannot start a worker: {exc}"], 1
    _clear_stale(path)
    running = ask(path, "status")
    if running is not None:
        return [f"a worker is already running (pid {running['pid']}): {path}"], 0
    proc = spawn(path, idle_s)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        answer = ask(path, "status") if os.path.exists(path) else None
        if answer is not None and answer["pid"] == proc.pid:
            return [f"worker started (pid {proc.pid}, exits after {_duration(idle_s)} without a call): {path}"], 0
        if proc.poll() is not None:
            return [f"the worker failed to start (exit {proc.returncode}):", *_log_tail(path)], 1
        time.sleep(0.05)
    proc.terminate()
    return [f"the worker did not start within {START_TIMEOUT_S:.0f} s"], 1


def stop() -> tuple[list[str], int]:
    path = place.socket_path()
    answer = ask(path, "stop")
    if answer is None:
        why = find(path).why
        _clear_stale(path)
        return [f"no worker to stop ({why})"], 0
    pid = int(answer["stopped"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)
    _remove_empty(os.path.dirname(path))
    still = f"; {answer['running_calls']} call(s) under way finish first" if _alive(pid) else ""
    return [f"worker stopped (pid {pid}){still}"], 0


def status() -> tuple[list[str], int]:
    path = place.socket_path()
    off, why_off = place.bypassed()
    answer = ask(path, "status")
    if answer is None:
        lines = [f"no worker: {find(path).why}", f"socket: {path}"]
        lines += _others(path)
        return lines, 1
    stale = answer["stamp"] != place.stamp()
    since = time.strftime("%H:%M:%S", time.localtime(answer["started"]))
    lines = [
        f"worker running (pid {answer['pid']}, since {since}, {answer['served']} call(s) served, "
        f"exits after {_duration(answer['idle_s'])} idle, in {_duration(answer['idle_left_s'])})",
        f"socket: {path}",
    ]
    if stale:
        lines.append("not used: jaxdiff or JAX changed since it started; it retires at the next call, which runs in-process")
    if off:
        lines.append(f"not used: {why_off}")
    return lines, 1 if stale or off else 0


def _others(path: str) -> list[str]:
    """Workers of this user for other settings: which settings differ (the Gradle daemon's 'does not match')."""
    mine = place.fingerprints(place.settings())
    out = []
    folder = os.path.dirname(path)
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(folder)):
            info = os.path.join(folder, name)
            if not (name.startswith("worker-") and name.endswith(".json")) or place.beside(path, ".json") == info:
                continue
            with contextlib.suppress(OSError, ValueError, KeyError), open(info) as f:
                theirs = json.load(f)["settings"]
                differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                out.append(f"a worker for other settings is running (differ: {', '.join(differ) or 'interpreter'})")
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (our own child, in the tests) counts as gone
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    return True


def _remove_empty(folder: str) -> None:
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _log_tail(path: str) -> list[str]:
    try:
        with open(place.beside(path, ".log"), errors="replace") as f:
            return f.read().splitlines()[-10:]
    except OSError:
        return []


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def parse_duration(text: str) -> float:
    """``900``, ``90s``, ``15m``, ``2h``: seconds (a usage error, exit 2, for anything else)."""
    from jaxdiff_cli.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600}
    factor = units.get(text.strip().lower()[-1:], 0)
    try:
        number = float(text.strip()[:-1] if factor else text)
    except ValueError:
        number = 0.0
    if not number > 0 or number == float("inf"):
        raise UsageError(f"--idle: {text!r} is not a duration (900, 90s, 15m, 2h)")
    return number * (factor or 1)
