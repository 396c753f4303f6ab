"""The worker: a fork server (a zygote) that has imported JAX and jaxdiff, and forks a fresh child per call.

The zygote imports JAX, NumPy, YAML, Rich and every jaxdiff module, and builds Typer's Click command
once; it never starts a JAX backend. Forking after a backend started deadlocks the child (XLA's
thread pools do not survive ``fork``), so the zygote refuses to serve if one did. Each call is a
child forked from it: it takes over the client's fds 0, 1 and 2 (passed over the socket), its
working folder, environment, umask and argv, runs ``cli.main`` exactly as the ``jaxdiff`` command
does, reports the exit status and ends with ``os._exit``. Nothing a call does (a user module
imported, JAX's cache settings, ``XLA_FLAGS``, the collector frozen) outlives it.

Signals the client receives arrive as lines on the socket and are sent to the child; the client
going away (killed) reaches the child as SIGTERM. The zygote reports a child's death by a signal as
128+N. It exits after ``idle`` seconds without a call, on ``stop``, or when a call carries another
stamp (jaxdiff or JAX changed since it started), removing its socket; calls under way finish first.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

from jaxdiff_cli.worker import place, protocol

IDLE_S = 15 * 60.0
REQUEST_TIMEOUT_S = 10.0  # a connection that sends no request in this time is dropped


class BackendStarted(RuntimeError):
    """A JAX backend started in the zygote: children forked from it would deadlock."""


# Not loaded ahead: entry points of their own, and modules that pull in pytest or matplotlib.
_NOT_PRELOADED = ("jaxdiff_cli.__main__", "jaxdiff_cli.launcher", "jaxdiff_cli.pytest_plugin", "jaxdiff_cli.worker.server")
# What JAX imports lazily at a call's first lowering (~100 ms of MLIR dialects), and Rich's pieces.
_ALSO = (
    "jaxlib.mlir.dialects.mhlo",
    "jaxlib.mlir.dialects.builtin",
    "jax.experimental.multihost_utils",
    "rich.panel",
    "rich.table",
    "rich.console",
    "rich.text",
    "rich.progress",
    "yaml",
    "orjson",
)


def preload() -> None:
    """Everything a call would import, imported once here; Typer's command built once. No backend."""
    import importlib
    import pkgutil

    import jax.numpy  # noqa: F401 (the first of all: JAX_* are read here, from the worker's environment)

    import jaxdiff_cli
    from jaxdiff_cli import cli

    for name in _ALSO:
        importlib.import_module(name)
    for module in pkgutil.walk_packages(jaxdiff_cli.__path__, "jaxdiff_cli."):
        if module.name not in _NOT_PRELOADED:
            with contextlib.suppress(ImportError):  # an optional extra a module imports at its top
                importlib.import_module(module.name)
    cli.build_command_once()
    _find_no_plugins()
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise BackendStarted("a JAX backend started while the worker loaded: it cannot fork safely")


def _find_no_plugins() -> None:
    """JAX looks for PJRT plugins (an entry-point scan of every installed package, ~15 ms) when a
    backend first starts. With none installed, that look is done here once: marked done, it is not
    repeated in each child. A plugin found is left alone: registering it loads its library, whose
    threads must not be forked; each child then registers it itself."""
    import importlib.metadata
    import importlib.util

    from jax._src import xla_bridge

    if importlib.metadata.entry_points(group="jax_plugins") or importlib.util.find_spec("jax_plugins") is not None:
        return
    if os.environ.get("PJRT_NAMES_AND_LIBRARY_PATHS"):
        return
    with contextlib.suppress(AttributeError):  # a private step of JAX's; without it, each child looks
        xla_bridge._discover_and_register_pjrt_plugins()  # type: ignore[no-untyped-call]


class Zygote:
    def __init__(self, path: str, idle_s: float, settings: dict[str, str], set_by_imports: dict[str, str]) -> None:
        self.path = path
        self.idle_s = idle_s
        self.stamp = place.stamp()
        self.settings = settings
        self.set_by_imports = set_by_imports  # e.g. TF_CPP_MIN_LOG_LEVEL, which importing JAX sets if unset
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.served = 0
        self.children: dict[int, socket.socket] = {}
        self.stopping = ""
        self.wake_r, self.wake_w = os.pipe()
        self.listener = self._bind()
        self.inode = os.stat(path).st_ino

    def _bind(self) -> socket.socket:
        """Bind under a temporary name with umask 0177 (the socket is 0600 from birth), then rename into place."""
        folder, name = os.path.split(self.path)
        place.check_folder(folder, create=True)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(tmp)
        finally:
            os.umask(old)
        listener.listen(64)
        os.replace(tmp, self.path)
        info = {
            "pid": os.getpid(),
            "started": self.started,
            "idle_s": self.idle_s,
            "python": sys.executable,
            "settings": place.fingerprints(self.settings),
            "stamp": self.stamp,
        }
        with open(os.open(place.beside(self.path, ".json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(info, f)
        return listener

    # ------------------------------------------------------------ the loop

    def serve(self) -> None:
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select (set_wakeup_fd); reaped below
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._stop_signal)
        gc.collect()
        gc.freeze()  # children share these pages and their collector never walks them
        try:
            while not self.stopping:
                self._reap()
                timeout = None if self.children else max(0.0, self.last_activity + self.idle_s - time.monotonic())
                if timeout == 0.0:
                    self.stopping = "idle"
                    break
                waiting: list[Any] = [self.listener, self.wake_r]
                ready, _, _ = select.select(waiting, [], [], timeout)
                if self.wake_r in ready:
                    os.read(self.wake_r, 512)
                if self.listener in ready:
                    self._accept()
        finally:
            self._leave()

    def _stop_signal(self, signum: int, frame: Any) -> None:
        self.stopping = signal.Signals(signum).name

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = self.children.pop(pid, None)
            self.last_activity = time.monotonic()
            if conn is None:
                continue
            if os.WIFSIGNALED(status):  # the child could not say it: 128+N, as a shell reports it
                with contextlib.suppress(OSError):
                    protocol.send_line(conn, {"exit": 128 + os.WTERMSIG(status)})
            conn.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.last_activity = time.monotonic()
        fds: list[int] = []
        try:
            if protocol.peer_uid(conn) != os.getuid():  # the folder's 0700 already stops them; twice is cheap
                conn.close()
                return
            conn.settimeout(REQUEST_TIMEOUT_S)
            request, fds = protocol.recv_request(conn)
            conn.settimeout(None)
            self._answer(conn, request, fds)
        except (OSError, ValueError, KeyError, TypeError):
            conn.close()
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _answer(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        op = request.get("op")
        if op == "status":
            protocol.send_line(conn, self._status())
            conn.close()
        elif op == "stop":
            self.stopping = "stop"
            self._remove_socket()  # no new calls from this moment
            protocol.send_line(conn, {"stopped": os.getpid(), "running_calls": len(self.children)})
            conn.close()
        elif op == "run" and request.get("stamp") != self.stamp:  # jaxdiff or JAX changed: this worker is done
            self.stopping = "retired"
            self._remove_socket()
            why = _what_changed(self.stamp, request.get("stamp"))
            protocol.send_line(conn, {"retired": why})
            conn.close()
        elif op == "run" and request.get("settings") != self.settings:  # two keys' names collided: not ours
            protocol.send_line(conn, {"retired": "the worker's settings differ from this call's"})
            conn.close()
        elif op == "run" and len(fds) == 3:
            self._fork(conn, request, fds)
        else:
            conn.close()

    def _status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "started": self.started,
            "served": self.served,
            "running_calls": len(self.children),
            "idle_s": self.idle_s,
            "idle_left_s": max(0.0, self.last_activity + self.idle_s - time.monotonic()),
            "stamp": self.stamp,
            "settings": place.fingerprints(self.settings),
        }

    def _fork(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = self._child(conn, request, fds)
            finally:
                os._exit(code)
        self.served += 1
        self.children[pid] = conn
        with contextlib.suppress(OSError):
            protocol.send_line(conn, {"accepted": pid})

    # ------------------------------------------------------------ one call, in the child

    def _child(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> int:
        self.listener.close()
        signal.set_wakeup_fd(-1)
        os.close(self.wake_r)
        os.close(self.wake_w)
        for other in self.children.values():
            other.close()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            _take_over(request, fds, self.set_by_imports)
        except Exception as exc:  # the call's folder is gone, a fd is bad: say so as jaxdiff would
            with contextlib.suppress(OSError):
                os.write(2, f"error: the jaxdiff worker could not take this call: {exc}\n".encode())
            protocol.send_line(conn, {"exit": 70})
            return 70
        finished = threading.Event()
        threading.Thread(target=_relay, args=(conn, finished), daemon=True, name="jaxdiff-worker-relay").start()
        code = _run_cli()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        finished.set()  # from here the client's EOF is the end of the call, not the client dying
        with contextlib.suppress(OSError):
            protocol.send_line(conn, {"exit": code})
        return code

    # ------------------------------------------------------------ the end

    def _remove_socket(self) -> None:
        """Remove the socket (and its description) if it is still ours: a newer worker may have taken the name."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
                with contextlib.suppress(OSError):
                    os.unlink(place.beside(self.path, ".json"))

    def _leave(self) -> None:
        self._remove_socket()
        self.listener.close()
        while self.children:  # calls under way finish; their clients get their status
            with contextlib.suppress(ChildProcessError, InterruptedError):
                pid, _ = os.waitpid(-1, 0)
                self.children.pop(pid, socket.socket()).close()
        with contextlib.suppress(OSError):
            os.unlink(place.beside(self.path, ".log"))


def _what_changed(mine: dict[str, Any], theirs: Any) -> str:
    if not isinstance(theirs, dict):
        return "the client is of another version"
    if mine.get("versions") != theirs.get("versions"):
        return f"installed versions changed since the worker started ({mine.get('versions')} -> {theirs.get('versions')})"
    return "jaxdiff's files changed since the worker started"


def _take_over(request: dict[str, Any], fds: list[int], set_by_imports: dict[str, str]) -> None:
    """Become the client's process: its fds 0-2, folder, environment, umask, argv and standard streams."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.umask(int(request["umask"]))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for name, value in set_by_imports.items():  # as the imports would have set them in-process
        os.environ.setdefault(name, value)
    sys.argv = ["jaxdiff", *request["argv"]]
    # Python chose each stream's encoding and buffering when the zygote started, for its own (null)
    # stdio; the client sent what its interpreter chose for the real ones.
    streams = []
    for fd, (mode, (encoding, errors, line_buffering, write_through)) in enumerate(zip("rww", request["stdio"])):
        binary = open(fd, mode + "b", closefd=False)
        streams.append(
            io.TextIOWrapper(binary, encoding=encoding, errors=errors, line_buffering=line_buffering, write_through=write_through)
        )
    sys.stdin, sys.stdout, sys.stderr = streams
    for name, stream in zip(("__stdin__", "__stdout__", "__stderr__"), streams):  # what Python restores at exit
        setattr(sys, name, stream)


def _relay(conn: socket.socket, finished: threading.Event) -> None:
    """The client's signals, sent on to this child; the client gone before the end is a SIGTERM."""
    lines = protocol.Lines(conn)
    while True:
        try:
            message = lines.next()
        except (OSError, ValueError):
            message = None
        if finished.is_set():
            return
        if message is None:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if isinstance(message.get("signal"), int):
            os.kill(os.getpid(), message["signal"])


def _run_cli() -> int:
    """``cli.main`` as the ``jaxdiff`` script runs it; what escapes it is shown as the interpreter would."""
    from jaxdiff_cli import cli

    try:
        cli.main()
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException as exc:  # --debug: the traceback, through Typer's hook, then 1 as Python exits
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jaxdiff_cli.worker.server")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--idle", type=float, default=IDLE_S, help="seconds without a call before the worker exits")
    args = parser.parse_args(argv)
    before = dict(os.environ)
    settings = place.settings()  # as the user set them: importing JAX sets some of its own
    preload()
    Zygote(args.socket, args.idle, settings, {k: v for k, v in os.environ.items() if before.get(k) != v}).serve()


if __name__ == "__main__":
    main()
