"""Shared fixtures: a fixed terminal width, a private compilation cache, and an in-process CLI runner."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]  # the jaxdiff pytest plugin's tests run pytest inside pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ASSETS = Path(__file__).resolve().parent / "assets"

# Rich reads these when the console is created: pin them so output is the same everywhere.
os.environ["COLUMNS"] = "100"
os.environ["TERM"] = "dumb"
os.environ.pop("FORCE_COLOR", None)
os.environ["NO_COLOR"] = "1"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ["JAXDIFF_CACHE_DIR"] = str(tmp_path_factory.mktemp("xla-cache"))
    # `jaxdiff` in a subprocess never reaches a worker the developer started: workers live in a
    # folder of this session's (tests/cli/test_worker.py starts its own in folders of its own).
    os.environ["JAXDIFF_WORKER_DIR"] = str(tmp_path_factory.mktemp("no-workers"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))  # the cache key file: not the real one


@pytest.fixture
def xla_compiles(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every XLA compilation from here on (jax.stages.Lowered.compile, which every plan goes through):
    a refusal that must come before the expensive step asserts this stays empty, instead of a time."""
    import jax.stages

    compiled: list[Any] = []
    original = jax.stages.Lowered.compile

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        compiled.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", counting)
    return compiled


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def outputs(self) -> dict[str, Any]:
        import numpy as np

        outputs = self.json()["outputs"]
        dense = {k: np.asarray(_decode(v["data"]), dtype=v["dtype"]) for k, v in outputs.items() if "format" not in v}
        return {**dense, **{k: _coo_dense(v) for k, v in outputs.items() if v.get("format") == "coo"}}


def _coo_dense(doc: dict[str, Any]) -> Any:
    """A sparse result's COO document ({"format": "coo", "shape", "row", "col", "data"}) as its dense matrix."""
    import numpy as np

    out = np.zeros(doc["shape"], dtype=doc["dtype"])
    out[np.asarray(doc["row"], int), np.asarray(doc["col"], int)] = np.asarray(_decode(doc["data"]), dtype=doc["dtype"])
    return out


def _decode(data: Any) -> Any:
    if isinstance(data, list):
        return [_decode(d) for d in data]
    return (
        {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.get(data, data)
        if isinstance(data, str)
        else data
    )


Cli = Callable[..., Ran]  # cli("jvp", spec, "--json", input=...) -> Ran
SpecFile = Callable[..., Path]  # spec_file(text, name="spec.yaml", folder=tmp_path) -> the path written


def app_commands() -> list[str]:
    """Every command the app registers, by name: a new command is in every test parametrized by it."""
    from jaxdiff_cli.cli import app

    return sorted(c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None)


@pytest.fixture
def spec_file(tmp_path: Path) -> SpecFile:
    """Write a file (a spec, by default spec.yaml) into the test's folder, or ``folder``: its path."""

    def write(text: str, name: str = "spec.yaml", folder: Path | None = None) -> Path:
        path = (folder or tmp_path) / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def cli() -> Cli:
    """Run the CLI in-process: cli("jvp", "spec.yaml", "--json", input=...)."""
    from typer.testing import CliRunner

    from jaxdiff_cli.cli import app

    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Ran:
        result = runner.invoke(app, [str(a) for a in args], input=input)
        return Ran(result.exit_code, result.stdout, result.stderr)

    return run
