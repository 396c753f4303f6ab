"""Process-wide JAX set-up: x64, the platform, the persistent compilation cache, several hosts.

This must run before any array exists: x64 decides the dtype of every array made after it, and a
process joins a cluster (``jax.distributed.initialize``, gloo collectives on the CPU) before any
JAX backend starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxdiff_cli.dtypes import needs_x64
from jaxdiff_cli.engine import sealed
from jaxdiff_cli.errors import CacheWarning, DeviceError, UsageError


def cache_dir() -> Path:
    """Where compiled programs are kept between runs: $JAXDIFF_CACHE_DIR, else the user cache."""
    if env := os.environ.get("JAXDIFF_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jaxdiff" / "xla"


def pattern_cache_dir() -> Path:
    """Where sparsity patterns and their colorings are kept between runs (``--sparse``), beside the
    compiled programs: ``sparsity/`` in $JAXDIFF_CACHE_DIR (the one folder given), else in the user cache."""
    if os.environ.get("JAXDIFF_CACHE_DIR"):
        return cache_dir() / "sparsity"
    return cache_dir().parent / "sparsity"


@dataclass(frozen=True)
class Runtime:
    device: Any  # a jax.Device
    dtype: str
    cache: Path | None

    @property
    def device_name(self) -> str:
        return f"{self.device.platform}:{self.device.id} ({self.device.device_kind})"


def configure(
    dtype: str,
    device: str,
    use_cache: bool,
    where: str = "device",
    cluster: Cluster | None = None,
    *,
    only_spec: bool = False,
    spec_dir: Path | None = None,
) -> Runtime:
    """Configure JAX for this run and return the device to run on.

    ``only_spec``: this is the process's only spec (one command, one spec, no cases on other
    devices), so a ``device: cpu`` may keep JAX from starting accelerators at all. With several
    specs in one process (check of many files, run of cases, the pytest plugin) it must not: the
    setting is process-wide, and a later ``device: gpu`` spec would find no GPU.
    ``spec_dir``: the spec's folder, where no cache file XLA reads unsealed may lie (see xla_caches).
    """
    import jax

    if only_spec and device == "cpu" and "JAX_PLATFORMS" not in os.environ:
        # Skip probing for accelerators that were not asked for: faster start, no warnings, and on a
        # GPU machine no GPU memory taken. (jax.config, not os.environ: it must not leak into children.)
        jax.config.update("jax_platforms", "cpu")
    if cluster is not None and not jax.distributed.is_initialized():
        initialize(cluster, device)
    jax.config.update("jax_enable_x64", needs_x64(dtype))  # float64, and complex128 (float64 parts)
    picked = pick_device(device, where)
    cache = _use_cache(picked.platform, spec_dir) if use_cache else None
    return Runtime(device=picked, dtype=dtype, cache=cache)


def _use_cache(platform: str, spec_dir: Path | None) -> Path | None:
    """Point JAX's persistent cache at jaxdiff's folder, every entry sealed with the user's key
    (engine/sealed.py); None, and no cache, where that cannot be had."""
    import jax

    secret = sealed.cache_secret()
    cache = cache_dir()
    if (linked := linked_folder(cache, pattern_cache_dir())) is not None:
        _warn_once(
            f"the cache folder {linked} is a symbolic link (or lies under one) to {linked.resolve()}: "
            "running without a persistent cache"
        )
        return None
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home must not stop the run; it only runs slower
    if secret is None or not _seal_jax_cache(cache.resolve(), secret):
        return None
    jax.config.update("jax_compilation_cache_dir", str(cache.resolve()))
    # Cache every program: a CLI pays compile time on each run, however small.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    with contextlib.suppress(AttributeError):  # JAX before 0.4.36 has no such option, nor these caches
        jax.config.update("jax_persistent_cache_enable_xla_caches", xla_caches(platform, cache, spec_dir))
    return cache


def linked_folder(*folders: Path) -> Path | None:
    """The first of ``folders`` (or of their parents) reached through a symbolic link that leads
    elsewhere; None when each is where its plain absolute path says.

    A pull request can commit ``.cache`` (or the cache folder, or its ``sparsity`` folder) as a link
    to any path: jaxdiff would then create folders there and write entries there, and the GPU's
    autotune decision (xla_caches) would judge the link's target, not the checkout the path is in.
    A link is only an inconvenience to an honest user (no cache), never a way out.
    """
    # Only links a checkout can hold count: those inside the git work tree around the current folder
    # (or the current folder). A link above it (/home -> /var/home) is the machine's, not a pull request's.
    here = Path(os.path.abspath(os.getcwd()))
    top = next((p for p in (here, *here.parents) if (p / ".git").exists()), here)
    for folder in folders:
        plain = Path(os.path.abspath(folder))
        if plain != plain.resolve():
            # Name the outermost link, the one a pull request committed.
            for part in (*reversed(plain.parents), plain):
                if part.is_symlink() and part != top and part.is_relative_to(top):
                    return part
    return None


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:  # once per process: `check` configures once per spec
        _WARNED.add(message)
        warnings.warn(message, CacheWarning, stacklevel=2)


def xla_caches(platform: str, cache: Path, spec_dir: Path | None = None) -> str:
    """Which of XLA's own caches JAX may keep in the cache folder: none on the CPU; on a GPU the
    autotuning results, unless the folder lies in a git work tree or a spec's folder.

    JAX puts their folder's absolute path into the compile options, so into every cache key: with
    them on, a cache restored at another path never hits. On the CPU they hold nothing, so they are
    off and the cache moves freely. On a GPU the autotuning results save much of a compile, so they
    stay, at the price of a cache that only hits where it was written; but they are XLA's files,
    read without a seal, so they are used only where no checkout can ship them. Once a spec's folder
    holds the cache, they stay off for the rest of the process (its other specs too).
    """
    # Judged at both the path as written and the path it resolves to: a link (refused in _use_cache,
    # see linked_folder) must not move the folder out of a checkout or a spec's folder unnoticed.
    places = {Path(os.path.abspath(cache)), cache.resolve()}
    if spec_dir is not None:
        specs = {Path(os.path.abspath(spec_dir)), spec_dir.resolve()}
        if any(where.is_relative_to(s) for where in places for s in specs):
            _XLA_CACHES_OFF.update(places)
    if platform == "cpu" or places & _XLA_CACHES_OFF or any(_in_git_work_tree(where) for where in places):
        return ""
    return "xla_gpu_per_fusion_autotune_cache_dir"


_XLA_CACHES_OFF: set[Path] = set()  # cache folders found inside a spec's folder in this process


def _in_git_work_tree(folder: Path) -> bool:
    return any((p / ".git").exists() for p in (folder, *folder.parents))


def _seal_jax_cache(folder: Path, secret: bytes) -> bool:
    """Make JAX's persistent cache in ``folder`` a sealed one: every entry written with a tag of
    ``secret``, every entry read only when its tag verifies. False (no cache) when the installed JAX
    does not have the hook this needs: never an unsealed cache.

    JAX has no public hook for its cache's storage; its cache module builds the storage through
    ``get_file_cache(path)`` when the first program compiles, and ``reset_cache()`` (public, in
    jax.experimental.compilation_cache) makes it build it again. Wrapping that one function keeps
    JAX's own keys, compression and error handling, and JAX's cache elsewhere (another folder) as it was.
    """
    try:
        from jax._src import compilation_cache as jax_cache
        from jax._src.compilation_cache_interface import CacheInterface
    except ImportError:
        return False
    build = getattr(jax_cache, "get_file_cache", None)
    if not callable(build) or not callable(getattr(jax_cache, "reset_cache", None)):
        return False
    original = getattr(build, "jaxdiff_original", build)

    class Sealed(CacheInterface):
        def __init__(self, store: sealed.SealedFolder) -> None:
            self.store = store
            self._path = store.folder

        def get(self, key: str) -> bytes | None:
            return self.store.read(key)

        def put(self, key: str, value: bytes) -> None:
            self.store.write(key, value)

    def get_file_cache(path: str) -> Any:
        if Path(path) == folder:
            return Sealed(sealed.SealedFolder(folder, secret, "xla")), path
        return original(path)

    get_file_cache.jaxdiff_original = original  # type: ignore[attr-defined]
    setattr(jax_cache, "get_file_cache", get_file_cache)  # noqa: B010  # mypy: a module's function, replaced
    # Built again at the next compile, through the hook, on every configure: a cache JAX set up before
    # (another spec's folder or key, or the user's own tests' folder under the pytest plugin) is not kept.
    jax_cache.reset_cache()
    return True


def pick_device(device: str, where: str = "device") -> Any:
    import jax

    # This process's own devices: with several processes, jax.devices() lists every process's.
    if device == "auto":
        return jax.local_devices()[0]
    try:
        found = jax.local_devices(backend="gpu" if device == "gpu" else device)
    except RuntimeError:
        found = []
    if not found:
        try:
            seen = ", ".join(sorted({d.platform for d in jax.devices()}))
        except RuntimeError:
            seen = "none"
        raise DeviceError(
            f"device {device!r} requested but JAX sees only: {seen}",
            where=where,
            hint="use --device auto or cpu, or install jax with support for that device",
        )
    return found[0]


def release_programs() -> None:
    """Drop the programs JAX keeps in memory for the rest of the process (traces, lowerings,
    executables), between specs of one ``check``: each spec's are its own (closures over its function
    and primals), so kept they only grow the process, by about 0.7 MB a spec on the generated CI suite
    (benchmarks/ci_suite.py). The next spec finds its programs in the persistent cache as before;
    measured no slower."""
    import jax

    jax.clear_caches()


def versions() -> dict[str, str]:
    import jax
    import jaxlib.version

    return {"jax": jax.__version__, "jaxlib": jaxlib.version.__version__}


# --------------------------------------------------------------------------- several hosts


@dataclass(frozen=True)
class Cluster:
    """Several processes (hosts): where the coordinator is, how many, which one this is."""

    coordinator: str
    num_processes: int
    process_id: int
    timeout_s: int = field(default_factory=lambda: int(os.environ.get("JAXDIFF_CLUSTER_TIMEOUT", "60")))


def initialize(cluster: Cluster, platform: str) -> None:
    """Join the cluster before any JAX backend starts; a clear error instead of a hang."""
    import jax

    if not 0 <= cluster.process_id < cluster.num_processes:
        raise UsageError(f"process id {cluster.process_id} is not in 0..{cluster.num_processes - 1}", where="--process-id")
    if cluster.process_id != 0:
        _reach(cluster)
    if platform in ("cpu", "auto"):
        # XLA:CPU needs a collectives implementation for cross-process programs.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
            initialization_timeout=cluster.timeout_s,
        )
    except Exception as exc:  # the coordinator is unreachable, or the cluster disagrees
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeviceError(
            f"cannot join the cluster at {cluster.coordinator} as process {cluster.process_id} of "
            f"{cluster.num_processes} within {cluster.timeout_s} s: {first[:200]}",
            where="--coordinator",
            hint="is process 0 running, and the address reachable?",
        ) from None


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for a while.

    Gloo's C++ code prints "[Gloo] Rank 0 is connected ..." straight to fd 1 when its context starts,
    which would corrupt the one JSON document that --json promises on stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _reach(cluster: Cluster) -> None:
    """Wait for the coordinator's port to answer, up to the timeout.

    JAX's client does not raise when it cannot reach the coordinator: it aborts the process from
    C++. Checking the port first turns the usual failure (process 0 not started, wrong address)
    into a clean error. (Process 0 waiting for peers that never come still ends in JAX's own abort,
    after the same timeout: there is no hang either way.)
    """
    import socket
    import time

    host, sep, port = cluster.coordinator.rpartition(":")
    if not sep or not port.isdigit():
        raise UsageError(f"expected HOST:PORT, got {cluster.coordinator!r}", where="--coordinator")
    deadline = time.monotonic() + cluster.timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise DeviceError(
                    f"cannot reach the coordinator {cluster.coordinator} within {cluster.timeout_s} s ({exc.strerror or exc})",
                    where="--coordinator",
                    hint="start process 0 first, or check the address; JAXDIFF_CLUSTER_TIMEOUT sets the wait",
                ) from None
            time.sleep(0.2)


def is_leader() -> bool:
    """Whether this process prints and writes (process 0; the only one without a cluster)."""
    import jax

    return int(jax.process_index()) == 0
