"""Process-wide JAX set-up: x64, the platform, the persistent compilation cache.

This must run before any array exists: x64 decides the dtype of every array made after it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxdiff_cli.errors import DeviceError


def cache_dir() -> Path:
    """Where compiled programs are kept between runs: $JAXDIFF_CACHE_DIR, else the user cache."""
    if env := os.environ.get("JAXDIFF_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jaxdiff" / "xla"


@dataclass(frozen=True)
class Runtime:
    device: Any  # a jax.Device
    dtype: str
    cache: Path | None

    @property
    def device_name(self) -> str:
        return f"{self.device.platform}:{self.device.id} ({self.device.device_kind})"


def configure(dtype: str, device: str, use_cache: bool, where: str = "device", cluster: Any = None) -> Runtime:
    """Configure JAX for this run and return the device to run on."""
    import jax

    if device == "cpu" and "JAX_PLATFORMS" not in os.environ:
        # Skip probing for accelerators that were not asked for: faster start, no warnings.
        # (jax.config, not os.environ: the setting must not leak into child processes.)
        jax.config.update("jax_platforms", "cpu")
    if cluster is not None and not _joined():
        from jaxdiff_cli.distribute import initialize

        initialize(cluster, device)
    jax.config.update("jax_enable_x64", dtype == "float64")
    cache: Path | None = None
    if use_cache:
        cache = cache_dir()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            cache = None  # a read-only home must not stop the run; it only runs slower
        if cache is not None:
            jax.config.update("jax_compilation_cache_dir", str(cache))
            # Cache every program: a CLI pays compile time on each run, however small.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return Runtime(device=pick_device(device, where), dtype=dtype, cache=cache)


def _joined() -> bool:
    """Whether this process already joined a cluster (the CLI runs once, tests many times)."""
    from jax._src import distributed

    return distributed.global_state.client is not None


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


def versions() -> dict[str, str]:
    import jax
    import jaxlib.version

    return {"jax": jax.__version__, "jaxlib": jaxlib.version.__version__}
