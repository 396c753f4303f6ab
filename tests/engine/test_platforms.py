"""device: cpu may keep JAX off the accelerators, but only for a process's only spec: the setting
is process-wide, and a later spec in the same check (or run, or pytest session) may ask for a GPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jaxdiff_cli import operations
from jaxdiff_cli.checks.check import Settings

CPU = "function: jnp.sin(x)\nprimals: {x: [1.0, 2.0]}\ndevice: cpu\n"
AUTO = "function: jnp.cos(x)\nprimals: {x: [1.0, 2.0]}\n"


@pytest.fixture
def platform_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every jax_platforms setting asked for (not applied: the test process keeps its platforms)."""
    import jax

    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    calls: list[Any] = []
    real = jax.config.update

    def update(name: str, value: Any) -> None:
        if name == "jax_platforms":
            calls.append(value)
        else:
            real(name, value)

    monkeypatch.setattr(jax.config, "update", update)
    return calls


def _specs(tmp_path: Path, *texts: str) -> list[str]:
    paths = []
    for number, text in enumerate(texts):
        path = tmp_path / f"s{number}.yaml"
        path.write_text(text)
        paths.append(str(path))
    return paths


def test_several_specs_leave_the_platforms_alone(tmp_path: Path, platform_calls: list[Any]) -> None:
    reports = operations.check(_specs(tmp_path, CPU, AUTO), Settings(no_cache=True))
    assert all(r.passed for r in reports) and platform_calls == []


def test_cases_on_several_devices_leave_them_alone(tmp_path: Path, platform_calls: list[Any]) -> None:
    text = CPU + "run: [eval]\ncases: [{name: a}, {name: b, device: auto}]\n"
    reports = operations.check(_specs(tmp_path, text), Settings(no_cache=True))
    assert len(reports) == 2 and all(r.passed for r in reports) and platform_calls == []


def test_the_only_spec_on_the_cpu_skips_the_accelerators(tmp_path: Path, platform_calls: list[Any]) -> None:
    reports = operations.check(_specs(tmp_path, CPU), Settings(no_cache=True))
    assert reports[0].passed and platform_calls == ["cpu"]
