"""Where a user's worker listens, whether that place is safe, and which worker fits this call. Stdlib only.

The ``jaxdiff`` client reads this before anything else is imported, so it stays cheap (well under a
millisecond): no importlib.metadata, no hashing of file contents.

* The folder is ``$JAXDIFF_WORKER_DIR``, else ``$XDG_RUNTIME_DIR/jaxdiff``, else ``/tmp/jaxdiff-UID``.
  It is used only if it is a real folder (not a symlink) owned by this user with no access for
  anyone else (mode 0700), as the Emacs server checks its own: a worker runs the user's code with
  the user's rights, so another user must never reach its socket.
* The socket's name carries the **key**: the interpreter and every setting read once when JAX is
  imported or that changes what a call computes (``JAX_*``, ``XLA_FLAGS``, ``JAXDIFF_*``, the cache
  folder, ``PYTHONPATH``). A call whose settings differ finds no socket and runs in-process.
* The **stamp** travels with each request: the jax, jaxlib, ml_dtypes and jaxdiff versions installed
  now, and the newest modification time of jaxdiff's own files. A worker started before an upgrade or
  an edit sees a different stamp, retires, and the call runs in-process.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import zlib

import jaxdiff_cli

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms of the client's start)
if TYPE_CHECKING:
    from collections.abc import Mapping

# Read by the client or the tests, never by a request: they do not choose what a call computes.
CONTROL = ("JAXDIFF_WORKER", "JAXDIFF_NO_WORKER", "JAXDIFF_WORKER_DIR", "JAXDIFF_TEST_")
KEYED = ("JAX_", "XLA_", "JAXDIFF_", "PJRT_")
KEYED_EXACT = ("PYTHONPATH", "PYTHONHASHSEED", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "HOME")  # the cache and its key
PACKAGES = ("jax", "jaxlib", "ml_dtypes", "numpy")  # their versions, from the installed .dist-info names


class Unsafe(Exception):
    """The folder or the socket could be reached or replaced by someone else: not used."""


def folder(environ: Mapping[str, str] | None = None) -> str:
    """Paths are strings here: pathlib alone would cost the client more than all the rest of its work."""
    env = os.environ if environ is None else environ
    if given := env.get("JAXDIFF_WORKER_DIR"):
        return given
    if runtime := env.get("XDG_RUNTIME_DIR"):
        return os.path.join(runtime, "jaxdiff")
    return f"/tmp/jaxdiff-{os.getuid()}"  # noqa: S108 (checked as safe before any use)


def check_folder(path: str, create: bool = False) -> None:
    """Raise Unsafe unless ``path`` is a folder (not a symlink) of this user, closed to everyone else."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise Unsafe(f"cannot create {path}: {exc.strerror}") from None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise Unsafe(f"{path} does not exist") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise Unsafe(f"{path} is not a folder (a symlink or a file)")
    if st.st_uid != os.getuid():
        raise Unsafe(f"{path} is owned by uid {st.st_uid}, not by you")
    if st.st_mode & 0o077:
        raise Unsafe(f"{path} is open to others (mode {stat.S_IMODE(st.st_mode):o}, needs 700)")


def check_socket(path: str) -> None:
    """Raise Unsafe unless ``path`` is a socket of this user that nobody else may use (0600)."""
    st = os.lstat(path)  # FileNotFoundError: no worker
    if not stat.S_ISSOCK(st.st_mode):
        raise Unsafe(f"{path} is not a socket")
    if st.st_uid != os.getuid():
        raise Unsafe(f"{path} is owned by uid {st.st_uid}, not by you")
    if st.st_mode & 0o077:
        raise Unsafe(f"{path} is open to others (mode {stat.S_IMODE(st.st_mode):o}, needs 600)")


def settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a worker must share with a call: what JAX reads once, and what changes results."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in sorted(env.items()) if (k.startswith(KEYED) or k in KEYED_EXACT) and not k.startswith(CONTROL)}


def key(environ: Mapping[str, str] | None = None) -> str:
    """The worker a call may use: the same interpreter and the same settings."""
    doc = json.dumps({"python": sys.executable, "version": sys.version, "settings": settings(environ)}, sort_keys=True).encode()
    # Two 32-bit checksums, not hashlib (whose OpenSSL start costs the client ~4 ms): a name, not a
    # secret. The worker also compares the settings themselves, so even a collision is never served.
    return f"{zlib.crc32(doc):08x}{zlib.adler32(doc):08x}"


def socket_path(environ: Mapping[str, str] | None = None) -> str:
    return os.path.join(folder(environ), f"worker-{key(environ)}.sock")


def beside(sock: str, suffix: str) -> str:
    """A file beside the socket: ``.json`` (its description: pid, settings, stamp; for ``status``), ``.log``."""
    return sock.removesuffix(".sock") + suffix


def _versions() -> dict[str, str]:
    found = {"jaxdiff": jaxdiff_cli.__version__}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and "-" in name:
                package, version = name[: -len(".dist-info")].split("-", 1)
                if package in PACKAGES and package not in found:
                    found[package] = version
        if len(found) > len(PACKAGES):
            break
    return found


def _newest(root: str) -> int:
    newest = 0
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                newest = max(newest, _newest(entry.path))
            elif entry.name.endswith(".py"):
                newest = max(newest, entry.stat().st_mtime_ns)
    return newest


def stamp() -> dict[str, object]:
    """What the worker must have been started with: versions installed now, jaxdiff's newest file."""
    return {"versions": _versions(), "jaxdiff_mtime_ns": _newest(os.path.dirname(jaxdiff_cli.__file__))}


def fingerprints(settings: Mapping[str, str]) -> dict[str, str]:
    """The settings as written to disk and shown by ``status``: names, and a digest of each value
    (``JAXDIFF_CACHE_KEY`` is a secret: it never leaves the worker's memory)."""
    import hashlib

    return {k: hashlib.sha256(v.encode()).hexdigest()[:12] for k, v in settings.items()}


def bypassed() -> tuple[bool, str]:
    """Whether JAXDIFF_NO_WORKER turns the worker off, and why: switches.py's spellings (an unknown
    value keeps the worker off, the safe side, and ``worker status`` names it; never read as "use it")."""
    from jaxdiff_cli.switches import SwitchError, env_switch

    try:
        return env_switch("JAXDIFF_NO_WORKER"), "JAXDIFF_NO_WORKER is set"
    except SwitchError as exc:
        return True, exc.render()
