"""The resident worker (`jaxdiff worker start|stop|status`), through the installed `jaxdiff` command.

Every worker here lives in a folder of its own test (JAXDIFF_WORKER_DIR) and is stopped by its
fixture's finalizer, so no test touches a user's worker or leaves one running. A call is known to
have gone through the worker by the count of calls it served (`worker status`); the same call with
JAXDIFF_NO_WORKER=1 is the in-process reference. Nothing here is timed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.worker import place

from ..conftest import ASSETS, CONFIGS

pytestmark = pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="the worker is Linux-only")

JAXDIFF = str(Path(sys.executable).parent / "jaxdiff")
POLY = str(CONFIGS / "seed000_poly.yaml")


class Worker:
    """A worker folder of one test, and the environment that points `jaxdiff` at it."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.env = {**os.environ, "JAXDIFF_WORKER_DIR": folder}
        self.env.pop("JAXDIFF_NO_WORKER", None)
        self.env.pop("JAXDIFF_WORKER", None)

    def jaxdiff(self, *args: str, worker: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **kw.pop("env", {})}
        if not worker:
            env["JAXDIFF_NO_WORKER"] = "1"
        return subprocess.run([JAXDIFF, *args], capture_output=True, text=True, timeout=300, env=env, **kw)

    def start(self, *more: str) -> None:
        ran = self.jaxdiff("worker", "start", *more)
        assert ran.returncode == 0 and "worker started" in ran.stdout, ran.stdout + ran.stderr

    def status(self) -> subprocess.CompletedProcess[str]:
        return self.jaxdiff("worker", "status")

    def served(self) -> int:
        found = re.search(r"(\d+) call\(s\) served", self.status().stdout)
        return int(found.group(1)) if found else -1

    def pids(self) -> list[int]:
        out = []
        for name in os.listdir(self.folder) if os.path.isdir(self.folder) else []:
            if name.endswith(".json"):
                with contextlib.suppress(OSError, ValueError), open(os.path.join(self.folder, name)) as f:
                    out.append(int(json.load(f)["pid"]))
        return out

    def socket(self) -> str:
        return place.socket_path({k: v for k, v in self.env.items()})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone(pid: int, within: float = 60) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def _worker_folder() -> Iterator[Worker]:
    # Short, under /tmp: a Unix socket's path holds at most 107 bytes, pytest's tmp_path can be longer.
    folder = tempfile.mkdtemp(prefix="jdw-")
    w = Worker(folder)
    pids: list[int] = []
    try:
        yield w
    finally:
        pids = w.pids()
        if os.path.isdir(folder):
            os.chmod(folder, 0o700)
            w.jaxdiff("worker", "stop")
        for pid in pids:  # one that a test made unreachable (an unsafe folder) is ended here
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            assert _gone(pid), f"worker {pid} outlived its test"
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def worker() -> Iterator[Worker]:
    """A folder for this test's worker; started by the test; stopped, whatever happens, at the end."""
    with _worker_folder() as w:
        yield w


@pytest.fixture(scope="module")
def running() -> Iterator[Worker]:
    """One started worker shared by the tests that only make calls through it."""
    with _worker_folder() as w:
        w.start()
        yield w


def _same_text(text: str) -> str:
    """Output with the figures that differ between any two runs (timings, temporary paths) blanked."""
    text = re.sub(r"\d+(\.\d+)? ?(ms|µs|s)\b", "T", text)
    text = re.sub(r"(compile|run)(\s+)\d+(\.\d+)?", r"\1\2T", text)  # a narrow table wraps "495.0 ms" after the number
    return re.sub(r'"(compile_s|run_s|[a-z_]*time[a-z_]*)": ?[0-9.e-]+', r'"\1": T', text)


# ---------------------------------------------------------------- start, status, stop


@pytest.mark.slow
def test_start_status_stop_and_nothing_left(worker: Worker) -> None:
    before = worker.status()
    assert before.returncode == 1 and "no worker is running" in before.stdout
    worker.start("--idle", "10m")
    [pid] = worker.pids()
    on = worker.status()
    assert on.returncode == 0 and f"pid {pid}" in on.stdout and "0 call(s) served" in on.stdout
    again = worker.jaxdiff("worker", "start")  # one worker per user and settings
    assert again.returncode == 0 and "already running" in again.stdout and worker.pids() == [pid]
    st = os.stat(worker.socket())
    assert st.st_mode & 0o777 == 0o600 and os.stat(worker.folder).st_mode & 0o777 == 0o700
    stopped = worker.jaxdiff("worker", "stop")
    assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout
    assert _gone(pid, within=5)
    assert not os.path.exists(worker.folder) or os.listdir(worker.folder) == []  # socket, description, log: gone
    assert worker.status().returncode == 1


def test_bad_idle_is_a_usage_error(worker: Worker) -> None:
    ran = worker.jaxdiff("worker", "start", "--idle", "soon")
    assert ran.returncode == 2 and ran.stderr.startswith("error: --idle") and ran.stderr.count("\n") == 1
    assert worker.pids() == []


@pytest.mark.slow
def test_idle_worker_exits_and_removes_its_socket(worker: Worker) -> None:
    worker.start("--idle", "1s")
    [pid] = worker.pids()
    assert _gone(pid, within=60)
    assert not os.path.exists(worker.socket())
    assert worker.status().returncode == 1


def test_never_started_unless_asked(worker: Worker) -> None:
    ran = worker.jaxdiff("eval", "-f", "x * 2", "-p", "x=1.0", "--json")
    assert ran.returncode == 0 and ran.stdout
    assert worker.pids() == [] and not os.path.exists(worker.socket())


@pytest.mark.slow
def test_auto_starts_one_in_the_background(worker: Worker) -> None:
    ran = worker.jaxdiff("eval", "-f", "x * 2", "-p", "x=1.0", "--json", env={"JAXDIFF_WORKER": "auto"})
    assert ran.returncode == 0 and json.loads(ran.stdout)["outputs"]["value"]["data"] == 2.0  # this call: in-process
    deadline = time.monotonic() + 120
    while worker.status().returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.served() == 0
    assert worker.jaxdiff("eval", "-f", "x * 3", "-p", "x=1.0", "--json").returncode == 0
    assert worker.served() == 1


# ---------------------------------------------------------------- the same output as in-process


CALLS = {
    "jvp-json": ["jvp", POLY, "--json"],
    "vjp-text": ["vjp", POLY],
    "grad-expression": ["grad", "-f", "jnp.sum(jnp.sin(x) ** 2)", "-p", "x=[0.1, 0.2, 0.3]"],
    "jacobian-json": ["jacobian", POLY, "--json"],
    "hessian-float64": ["hessian", "-f", "jnp.sum(x ** 3)", "-p", "x=[1.0, 2.0]", "--dtype", "float64", "--json"],
    "check": ["check", POLY],
    "check-json": ["check", POLY, "--json"],
    "run-json": ["run", POLY, "--json"],
    "bad-expression": ["eval", "-f", "x *", "-p", "x=1.0"],
    "bad-expression-json": ["eval", "-f", "x *", "-p", "x=1.0", "--json"],
    "missing-spec": ["jvp", "no-such-spec.yaml"],
    "usage": ["jvp", "--no-such-option"],
    "nonfinite": ["eval", "-f", "jnp.log(x)", "-p", "x=-1.0", "--check-finite"],
    "user-code-fails": ["eval", "-f", f"{ASSETS}/funcs.py:raises", "-p", "x=1.0"],
    "help": ["--help"],
    "jvp-help": ["jvp", "--help"],
    "version": ["--version"],
    "schema": ["schema"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CALLS))
def test_output_is_the_same_as_in_process(running: Worker, name: str, tmp_path: Path) -> None:
    served = running.served()
    via = running.jaxdiff(*CALLS[name], cwd=tmp_path)
    assert running.served() == served + 1, "the call did not go through the worker"
    here = running.jaxdiff(*CALLS[name], cwd=tmp_path, worker=False)
    assert (via.returncode, _same_text(via.stdout), _same_text(via.stderr)) == (
        here.returncode,
        _same_text(here.stdout),
        _same_text(here.stderr),
    )
    assert via.returncode in (0, 1, 2, 3, 4, 5)


@pytest.mark.slow
def test_stdin_spec_and_output_file_through_the_worker(running: Worker, tmp_path: Path) -> None:
    spec = Path(POLY).read_text()
    served = running.served()
    via = running.jaxdiff("jacobian", "-", "-o", "via.npz", "--quiet", input=spec, cwd=tmp_path)
    here = running.jaxdiff("jacobian", "-", "-o", "here.npz", "--quiet", input=spec, cwd=tmp_path, worker=False)
    assert running.served() == served + 1
    assert via.returncode == here.returncode == 0, via.stderr
    with np.load(tmp_path / "via.npz") as a, np.load(tmp_path / "here.npz") as b:
        assert sorted(a.files) == sorted(b.files) and a.files
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k])
    # the child wrote with the client's umask
    assert (tmp_path / "via.npz").stat().st_mode & 0o777 == (tmp_path / "here.npz").stat().st_mode & 0o777


@pytest.mark.slow
def test_the_callers_environment_and_folder_decide(running: Worker, tmp_path: Path) -> None:
    # COLUMNS is read when Rich makes its console, in the call: the worker's child must see the caller's
    shutil.copy(POLY, tmp_path / "poly.yaml")
    served = running.served()
    narrow = running.jaxdiff("jacobian", "poly.yaml", cwd=tmp_path, env={"COLUMNS": "60"})
    here = running.jaxdiff("jacobian", "poly.yaml", cwd=tmp_path, env={"COLUMNS": "60"}, worker=False)
    wide = running.jaxdiff("jacobian", "poly.yaml", cwd=tmp_path, env={"COLUMNS": "100"})
    assert running.served() == served + 2
    assert narrow.returncode == 0 and _same_text(narrow.stdout) == _same_text(here.stdout)
    assert max(map(len, narrow.stdout.splitlines())) <= 60 < max(map(len, wide.stdout.splitlines()))


@pytest.mark.slow
def test_a_user_module_edited_between_two_calls_is_read_again(running: Worker, tmp_path: Path) -> None:
    module = tmp_path / "mymod.py"
    module.write_text("def f(x):\n    return x * 2.0\n")
    served = running.served()
    first = running.jaxdiff("eval", "-f", "mymod:f", "-p", "x=1.0", "--json", cwd=tmp_path)
    module.write_text("def f(x):\n    return x * 3.0  # edited\n")
    second = running.jaxdiff("eval", "-f", "mymod:f", "-p", "x=1.0", "--json", cwd=tmp_path)
    assert running.served() == served + 2
    assert json.loads(first.stdout)["outputs"]["value"]["data"] == 2.0
    assert json.loads(second.stdout)["outputs"]["value"]["data"] == 3.0


# ---------------------------------------------------------------- signals


HOLD = {"JAXDIFF_TEST_HOLD_WRITE": "60"}  # the write waits with its temporary file in place (atomic.py)


def _write_then_signal(w: Worker, tmp_path: Path, sig: int) -> subprocess.Popen[str]:
    target = tmp_path / "out.npz"
    proc = subprocess.Popen(
        [JAXDIFF, "eval", "-f", "x * 2", "-p", "x={ones: [100, 100]}", "-q", "-o", str(target)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**w.env, **HOLD},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(".out.npz.") for p in tmp_path.iterdir()):
            proc.send_signal(sig)
            break
        time.sleep(0.01)
    else:
        proc.kill()
        pytest.fail("the write finished or never started before the signal")
    proc.wait(timeout=60)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_mid_call_reaches_the_call(running: Worker, tmp_path: Path, sig: int, code: int, word: str) -> None:
    served = running.served()
    proc = _write_then_signal(running, tmp_path, sig)
    assert running.served() == served + 1
    assert proc.returncode == code
    assert proc.stderr is not None and proc.stderr.read() == f"{word}\n"
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary half


@pytest.mark.slow
def test_a_killed_client_ends_its_call_and_leaves_nothing(running: Worker, tmp_path: Path) -> None:
    proc = _write_then_signal(running, tmp_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # the call's child sees the client go, and unwinds as on SIGTERM
    while list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []
    assert running.status().returncode == 0  # the worker itself goes on


# ---------------------------------------------------------------- falling back


@pytest.mark.slow
def test_a_dead_worker_is_a_stale_socket_and_the_call_runs_in_process(worker: Worker) -> None:
    worker.start()
    [pid] = worker.pids()
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    ran = worker.jaxdiff("eval", "-f", "x * 2", "-p", "x=1.0", "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout)["outputs"]["value"]["data"] == 2.0
    status = worker.status()
    assert status.returncode == 1 and "stale socket" in status.stdout
    worker.start()  # clears the stale socket and starts afresh
    assert worker.status().returncode == 0


@pytest.mark.slow
def test_a_changed_jaxdiff_retires_the_worker_and_the_call_runs_in_process(worker: Worker) -> None:
    worker.start()
    [pid] = worker.pids()
    source = Path(place.__file__)
    times = source.stat()
    try:
        newest = max(p.stat().st_mtime_ns for p in source.parents[1].rglob("*.py"))
        os.utime(source, ns=(times.st_atime_ns, newest + 10**10))  # jaxdiff "edited": its newest file now
        assert "changed since it started" in worker.status().stdout
        ran = worker.jaxdiff("eval", "-f", "x * 2", "-p", "x=1.0", "--json")
        assert ran.returncode == 0 and json.loads(ran.stdout)["outputs"]["value"]["data"] == 2.0
        assert _gone(pid)  # retired at that call
        assert worker.status().returncode == 1
    finally:
        os.utime(source, ns=(times.st_atime_ns, times.st_mtime_ns))


@pytest.mark.slow
def test_other_settings_get_no_worker(running: Worker) -> None:
    served = running.served()
    ran = running.jaxdiff("eval", "-f", "x * 2", "-p", "x=1.0", "--json", env={"JAX_ENABLE_X64": "1"})
    assert ran.returncode == 0
    assert running.served() == served
    status = running.jaxdiff("worker", "status", env={"JAX_ENABLE_X64": "1"})
    assert status.returncode == 1 and "differ: JAX_ENABLE_X64" in status.stdout


# ---------------------------------------------------------------- another user


@pytest.mark.slow
@pytest.mark.parametrize("what", ["folder", "socket"])
def test_a_folder_or_socket_open_to_others_is_not_used(worker: Worker, what: str) -> None:
    worker.start()
    os.chmod(worker.folder if what == "folder" else worker.socket(), 0o777)
    status = worker.status()
    assert status.returncode == 1 and "open to others" in status.stdout
    ran = worker.jaxdiff("eval", "-f", "x * 2", "-p", "x=1.0", "--json")  # in-process, and right
    assert ran.returncode == 0 and json.loads(ran.stdout)["outputs"]["value"]["data"] == 2.0
    os.chmod(worker.folder, 0o700)
    os.chmod(worker.socket(), 0o600)
    assert worker.served() == 0


def test_a_symlinked_folder_is_not_used(worker: Worker, tmp_path: Path) -> None:
    real = tempfile.mkdtemp(prefix="jdw-real-")
    link = worker.folder + "-link"
    try:
        os.symlink(real, link)
        ran = worker.jaxdiff("worker", "status", env={"JAXDIFF_WORKER_DIR": link})
        assert ran.returncode == 1 and "symlink" in ran.stdout
        start = worker.jaxdiff("worker", "start", env={"JAXDIFF_WORKER_DIR": link})
        assert start.returncode == 1 and "cannot start" in start.stdout and os.listdir(real) == []
    finally:
        os.unlink(link)
        os.rmdir(real)


NOBODY = 65534


def _as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    prelude = f"import json, os, socket, struct\nos.setgroups([])\nos.setgid({NOBODY})\nos.setuid({NOBODY})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.skipif(os.getuid() != 0, reason="becoming another user needs root")
def test_another_user_cannot_connect(worker: Worker) -> None:
    worker.start()
    path = worker.socket()
    connect = f"s = socket.socket(socket.AF_UNIX)\ns.connect({path!r})\n"
    blocked = _as_nobody(connect)
    assert blocked.returncode != 0 and "PermissionError" in blocked.stderr  # the 0700 folder
    # Even with the folder and socket opened up, the worker hangs up on another uid (SO_PEERCRED).
    os.chmod(worker.folder, 0o777)
    os.chmod(path, 0o777)
    try:
        ask = connect + (
            "body = json.dumps({'op': 'status'}).encode()\n"
            "try:\n    s.sendall(struct.pack('!I', len(body)) + body)\n    print(repr(s.recv(100)))\n"
            "except (BrokenPipeError, ConnectionResetError):\n    print('hung up')\n"
        )
        refused = _as_nobody(ask)
        assert refused.returncode == 0 and refused.stdout.strip() in ("b''", "hung up"), refused.stderr
        mine = subprocess.run([sys.executable, "-c", "import json, os, socket, struct\n" + ask], capture_output=True, text=True)
        assert '"pid"' in mine.stdout  # the same request from the owner is answered
    finally:
        os.chmod(worker.folder, 0o700)
        os.chmod(path, 0o600)


@pytest.mark.slow
@pytest.mark.skipif(os.getuid() != 0, reason="changing a folder's owner needs root")
def test_a_folder_of_another_owner_is_not_used(worker: Worker) -> None:
    os.chown(worker.folder, NOBODY, NOBODY)
    try:
        status = worker.status()
        assert status.returncode == 1 and f"owned by uid {NOBODY}" in status.stdout
        assert worker.jaxdiff("worker", "start").returncode == 1
    finally:
        os.chown(worker.folder, 0, 0)
