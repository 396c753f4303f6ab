"""SIGINT and SIGTERM as exceptions that unwind, so temporary files are removed on the way out.

The CLI installs :func:`handled` around everything it does. The first signal raises
:class:`Interrupted` (SIGINT) or :class:`Terminated` (SIGTERM) in the main thread; neither is an
``Exception`` or a ``KeyboardInterrupt``, so no ``except Exception`` in JAX or in user code, and no
``except KeyboardInterrupt`` either, can swallow it. Later signals are only noted: the cleanup the
first one started is not cut short. Within :func:`deferred` a signal waits until the block ends
(creating a temporary file and noting it must not be split). No third-party imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from jaxdiff_cli.errors import ExitCode


class Stopped(BaseException):
    """A signal asked jaxdiff to stop: the message and exit status to end with."""

    exit_code: ExitCode
    message: str


class Interrupted(Stopped):
    """SIGINT (Ctrl-C): exit 130."""

    exit_code = ExitCode.INTERRUPTED
    message = "interrupted"


class Terminated(Stopped):
    """SIGTERM: exit 143."""

    exit_code = ExitCode.TERMINATED
    message = "terminated"


_EXCEPTIONS: dict[int, type[Stopped]] = {signal.SIGINT: Interrupted, signal.SIGTERM: Terminated}


class _State:
    watcher: threading.Thread | None = None  # the thread that starts the grace period (_watch)
    swallowed: Stopped | None = None  # raised where Python ignores exceptions (a gc callback, __del__)
    installed = False
    raised = False  # the one exception has been raised: later signals are ignored
    pending: int | None = None  # a signal that arrived inside deferred()
    defer = 0


_state = _State()


GRACE_S = 5.0  # after a signal, how long the unwinding may take before the process is ended
_TEMPORARY: set[str] = set()  # temporary files being written (atomic.py): removed even by a forced end


def track(path: str) -> None:
    _TEMPORARY.add(path)


def untrack(path: str) -> None:
    _TEMPORARY.discard(path)


def _force_exit(stopped: type[Stopped]) -> None:
    """The signal's exception cannot unwind while XLA compiles or runs (native code, which a Python
    handler does not interrupt), nor can shutdown finish while it waits for XLA's threads: after
    GRACE_S the process ends here instead, its temporary files removed, with the signal's status."""
    for path in list(_TEMPORARY):
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.write(2, f"{stopped.message}\n".encode())
    os._exit(int(stopped.exit_code))


def _watch(read_fd: int) -> None:
    """Sees each signal the moment it arrives: the C-level handler writes its number to the wakeup fd
    even while the main thread is inside XLA, where the Python handler (and its exception) must wait.
    The first SIGINT or SIGTERM starts the grace period; the unwinding usually ends the process first."""
    started = False
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in _EXCEPTIONS and not started:
                started = True
                watchdog = threading.Timer(GRACE_S, _force_exit, args=(_EXCEPTIONS[signal.Signals(signum)],))
                watchdog.daemon = True
                watchdog.start()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.raised:
        return
    if _state.defer:
        _state.pending = _state.pending or signum
        return
    _state.raised = True
    raise _EXCEPTIONS[signum]()


def _unraisable(args: Any) -> None:
    """A signal's exception raised inside a callback that Python runs and ignores (a gc callback of
    XLA's, a __del__) would be printed as "Exception ignored" and lost, and the run would go on to
    exit 0. It is noted instead, and :func:`swallowed` hands it to the caller to end with."""
    if isinstance(args.exc_value, Stopped):
        _state.swallowed = args.exc_value
        return
    _previous_unraisablehook(args)


_previous_unraisablehook = sys.unraisablehook


def swallowed() -> Stopped | None:
    """The signal whose exception a callback swallowed, if one did."""
    return _state.swallowed


def install() -> None:
    """From now on, SIGINT and SIGTERM raise Interrupted / Terminated (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _EXCEPTIONS:
        signal.signal(signum, _handler)
    sys.unraisablehook = _unraisable
    _state.installed, _state.raised, _state.pending, _state.defer, _state.swallowed = True, False, None, 0, None
    if _state.watcher is None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        _state.watcher = threading.Thread(target=_watch, args=(read_fd,), daemon=True, name="jaxdiff-signals")
        _state.watcher.start()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """:func:`install` for the block, the previous handlers restored after it."""
    previous = {signum: signal.getsignal(signum) for signum in _EXCEPTIONS}
    install()
    try:
        yield
    finally:
        _state.installed = False
        if threading.current_thread() is threading.main_thread():
            for signum, old in previous.items():
                signal.signal(signum, old)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A signal arriving inside the block is raised when it ends, not in the middle."""
    _state.defer += 1
    try:
        yield
    finally:
        _state.defer -= 1
        if not _state.defer and _state.pending is not None and not _state.raised and _state.installed:
            signum, _state.pending, _state.raised = _state.pending, None, True
            raise _EXCEPTIONS[signum]()


def ignore_from_now() -> None:
    """The exit status is decided and everything written: let interpreter shutdown (JAX's atexit
    hooks) finish, neither cut short nor turned into a bare -2 by a late signal. SIG_IGN, unlike a
    Python handler, stays in force after Python finalizes its signal module."""
    _state.installed = False
    if threading.current_thread() is threading.main_thread():
        for signum in _EXCEPTIONS:
            signal.signal(signum, signal.SIG_IGN)
