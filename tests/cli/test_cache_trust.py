"""The caches are not an input: no entry a repository, a spec folder or a restored CI cache ships
changes which program runs (compiled programs and sparsity patterns are sealed with the user's key);
a cache moved to another path still hits; ``python -m``/the script do not import a planted module.

The attack of issue 19: a cache built for ``x * 2.0`` (by the attacker, with their own key), planted
under the names of the programs of ``x * 3.0``, made ``eval`` print 2 and ``check --no-code`` pass a
wrong expected value. Each place a user could be told to put the cache gets the planted entries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.engine import runtime, sealed

from .test_smoke import _jaxdiff


def _value(stdout: str) -> Any:
    """The value eval printed with --json (its data, as a list)."""
    return json.loads(stdout)["outputs"]["value"]["data"]


TWO = 'function: "x * 2.0"\nprimals: {x: [1.0, 2.0]}\n'
# expect: the values x * 2.0 gives, a lie for x * 3.0 that only a poisoned cache could make pass
THREE = 'function: "x * 3.0"\nprimals: {x: [1.0, 2.0]}\nexpect:\n  value: [2.0, 4.0]\n'
ATTACKER = "the attacker's own key, not the victim's"


def _run(*args: Any, cache: Path | None, config: Path, cwd: Path, home: Path | None = None, key: str | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if k not in ("JAXDIFF_CACHE_DIR", "JAXDIFF_CACHE_KEY", "XDG_CACHE_HOME")}
    env["XDG_CONFIG_HOME"] = str(config)
    if cache is not None:
        env["JAXDIFF_CACHE_DIR"] = str(cache)
    if home is not None:
        env["XDG_CACHE_HOME"] = str(home)
    if key is not None:
        env["JAXDIFF_CACHE_KEY"] = key
    return subprocess.run([_jaxdiff(), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def _entries(folder: Path) -> dict[str, Path]:
    return {p.name.removesuffix(".sealed"): p for p in folder.glob("*.sealed")}


def _module(name: str) -> str:
    return name.rsplit("-", 1)[0]  # JAX's key: the program's name, then the hash of what it compiles


@pytest.fixture(scope="module")
def poison(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The attacker's cache for x * 2.0 (eval and check), and the names the victim's x * 3.0 programs get."""
    root = tmp_path_factory.mktemp("poison")
    (root / "two.yaml").write_text(TWO)
    (root / "three.yaml").write_text(THREE)
    out: dict[str, Any] = {}
    for command in ("eval", "check"):
        extra = ("--no-code",) if command == "check" else ()
        made = _run(command, "two.yaml", *extra, cache=root / f"attacker-{command}", config=root / "a", cwd=root, key=ATTACKER)
        assert made.returncode == 0, made.stderr
        names = _run(command, "three.yaml", *extra, cache=root / f"names-{command}", config=root / "v", cwd=root)
        assert names.returncode == (0 if command == "eval" else 1), names.stderr
        out[command] = (_entries(root / f"attacker-{command}"), _entries(root / f"names-{command}"))
    return out


def _in_order(entries: dict[str, Path]) -> dict[str, list[str]]:
    """The names of each program, in the order they were compiled (both runs compile the same sequence)."""
    order: dict[str, list[str]] = {}
    for name, path in sorted(entries.items(), key=lambda e: e[1].stat().st_mtime_ns):
        order.setdefault(_module(name), []).append(name)
    return order


def _plant(poison: dict[str, Any], command: str, folder: Path) -> list[Path]:
    """Under each name of the victim's programs, the attacker's program compiled at the same step (x * 2.0).
    (Against the unsealed cache of before, this plant made check pass the lie, exit 0.)"""
    attacker, names = poison[command]
    theirs = _in_order(attacker)
    folder.mkdir(parents=True, exist_ok=True)
    planted = []
    for module, victims in _in_order(names).items():
        for name, source in zip(victims, theirs[module], strict=True):
            shutil.copyfile(attacker[source], folder / f"{name}.sealed")
            planted.append(folder / f"{name}.sealed")
    assert planted
    return planted


PLACES = {
    # GitLab's recipe: inside the checkout (a git work tree), where a merge request can commit files
    "checkout": lambda root: {"cache": root / "repo" / ".cache" / "jaxdiff" / "xla"},
    "spec folder": lambda root: {"cache": root / "repo" / "specs" / "cache"},
    # GitHub's recipe: the user cache, restored by actions/cache
    "user cache": lambda root: {"cache": None, "home": root / "home" / ".cache"},
    "elsewhere": lambda root: {"cache": root / "ci-cache"},
}


@pytest.mark.slow
@pytest.mark.parametrize("place", PLACES)
def test_a_planted_program_is_never_run(poison: dict[str, Any], tmp_path: Path, place: str) -> None:
    where = PLACES[place](tmp_path)
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    specs = tmp_path / "repo" / "specs"
    specs.mkdir()
    (specs / "three.yaml").write_text(THREE)
    folder = where["cache"] or where["home"] / "jaxdiff" / "xla"
    config = tmp_path / "victim-config"
    for command in ("eval", "check"):
        planted = _plant(poison, command, folder)
        extra = ("--no-code", "--output-format", "text") if command == "check" else ("--json",)
        ran = _run(
            command,
            specs / "three.yaml",
            *extra,
            cache=where["cache"],
            home=where.get("home"),
            config=config,
            cwd=tmp_path / "repo",
        )
        if command == "eval":
            assert ran.returncode == 0, ran.stderr
            assert _value(ran.stdout) == [3.0, 6.0]  # x * 3.0, not the planted x * 2.0
        else:
            assert ran.returncode == 1, ran.stderr  # the lie in expect: is caught
            assert "expect value" in ran.stdout + ran.stderr
        # and each planted entry was replaced by the victim's own program, sealed with the victim's key
        secret = _secret(config)
        for path in planted:
            assert sealed.unseal(secret, "xla", path.name.removesuffix(".sealed"), path.read_bytes()) is not None


def _secret(config: Path) -> bytes:
    saved = {k: os.environ.pop(k, None) for k in ("XDG_CONFIG_HOME", "JAXDIFF_CACHE_KEY")}
    os.environ["XDG_CONFIG_HOME"] = str(config)
    try:
        secret = sealed.cache_secret()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
    assert secret is not None
    return secret


@pytest.mark.slow
def test_the_plant_works_when_sealed_with_the_victims_key(poison: dict[str, Any], tmp_path: Path) -> None:
    """The control: the same plant, sealed with the victim's key under the victim's names, is run. So the
    test above fails if the seal is not checked, and the key is exactly what the guarantee rests on."""
    (tmp_path / "three.yaml").write_text(THREE)
    victim = "the victim's key, which the attacker has here"
    for command in ("eval", "check"):
        folder = tmp_path / command
        for path in _plant(poison, command, folder):  # unsealed with the attacker's key, sealed with the victim's
            theirs = _source_name(poison, command, path)
            payload = sealed.unseal(sealed.derive(ATTACKER.encode()), "xla", theirs, path.read_bytes())
            assert payload is not None
            name = path.name.removesuffix(".sealed")
            path.write_bytes(sealed.seal(sealed.derive(victim.encode()), "xla", name, payload))
        extra = ("--no-code", "--output-format", "text") if command == "check" else ("--json",)
        ran = _run(command, "three.yaml", *extra, cache=folder, config=tmp_path / "config", cwd=tmp_path, key=victim)
        if command == "eval":
            assert ran.returncode == 0 and _value(ran.stdout) == [2.0, 4.0]  # the planted x * 2.0 ran
        else:
            assert ran.returncode == 0, ran.stdout  # the lie passed


def _source_name(poison: dict[str, Any], command: str, planted: Path) -> str:
    attacker = poison[command][0]
    data = planted.read_bytes()
    (name,) = [n for n, p in attacker.items() if p.read_bytes() == data]
    return name


@pytest.mark.slow
def test_pytest_plugin_never_runs_a_planted_program(
    poison: dict[str, Any], pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = pytester.path
    (root / ".git").mkdir()
    (root / "three.yaml").write_text(THREE)
    folder = root / ".cache" / "jaxdiff" / "xla"
    _plant(poison, "check", folder)
    monkeypatch.setenv("JAXDIFF_CACHE_DIR", str(folder))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(root / "victim-config"))
    monkeypatch.delenv("JAXDIFF_CACHE_KEY", raising=False)
    result = pytester.runpytest_subprocess("--jaxdiff", "-p", "no:cacheprovider", "three.yaml")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*FAILED three.yaml::expect?value?*"])


# --------------------------------------------------------------------------- a cache that moves


@pytest.mark.slow
def test_a_cache_copied_to_another_path_is_hit(tmp_path: Path) -> None:
    """GitLab restores the cache into each runner's own build folder, and a developer's cache can seed
    CI: the copy must hit (JAX 0.10's XLA-caches option put the folder's path into every key)."""
    (tmp_path / "two.yaml").write_text(TWO)
    config = tmp_path / "config"
    first = _run("check", "two.yaml", "--no-code", cache=tmp_path / "here", config=config, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    built = _entries(tmp_path / "here")
    assert len(built) >= 2
    shutil.copytree(tmp_path / "here", tmp_path / "there" / "moved")
    before = {n: p.stat().st_mtime_ns for n, p in _entries(tmp_path / "there" / "moved").items()}
    again = _run("check", "two.yaml", "--no-code", cache=tmp_path / "there" / "moved", config=config, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    after = {n: p.stat().st_mtime_ns for n, p in _entries(tmp_path / "there" / "moved").items()}
    assert after == before  # no new entry, none rewritten: every program came from the copy


def test_the_xla_caches_are_off_on_the_cpu_and_kept_on_a_gpu_only_outside_checkouts(tmp_path: Path) -> None:
    outside, repo = tmp_path / "cache", tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert runtime.xla_caches("cpu", outside) == ""
    assert runtime.xla_caches("gpu", outside) == "xla_gpu_per_fusion_autotune_cache_dir"
    assert runtime.xla_caches("gpu", repo / ".cache" / "xla") == ""  # a checkout could ship XLA's unsealed files
    spec_dir = tmp_path / "specs"
    assert runtime.xla_caches("gpu", spec_dir / "cache", spec_dir) == ""
    assert runtime.xla_caches("gpu", spec_dir / "cache") == ""  # and for the rest of the process


# --------------------------------------------------------------------------- the key


def test_a_key_file_others_can_read_is_refused(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("JAXDIFF_CACHE_KEY", raising=False)
    key = tmp_path / "jaxdiff" / "cache-key"
    assert cli("eval", "-f", "x * 2.0", "-p", "x=[1.0]").exit_code == 0
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text().strip()) == 64  # made private on first use
    key.chmod(0o644)
    ran = cli("eval", "-f", "x * 2.0", "-p", "x=[1.0]")
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert f"the cache key file {key} can be read or written by others (mode 0644)" in ran.stderr and "chmod 600" in ran.stderr
    assert cli("eval", "-f", "x * 2.0", "-p", "x=[1.0]", "--no-cache").exit_code == 0  # no cache, no key needed
    key.unlink()
    elsewhere = tmp_path / "planted-key"
    elsewhere.write_text("0" * 64 + "\n")
    elsewhere.chmod(0o600)
    key.symlink_to(elsewhere)  # a key someone else chose, through a link
    ran = cli("eval", "-f", "x * 2.0", "-p", "x=[1.0]")
    assert ran.exit_code == 2 and "is a symbolic link" in ran.stderr


def test_a_short_ci_key_is_refused_and_an_empty_one_is_unset(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("JAXDIFF_CACHE_KEY", "hunter2")
    ran = cli("eval", "-f", "x * 2.0", "-p", "x=[1.0]")
    assert ran.exit_code == 2 and "JAXDIFF_CACHE_KEY has 7 characters, too few to be a secret" in ran.stderr
    monkeypatch.setenv("JAXDIFF_CACHE_KEY", "")  # GitHub's value for a secret a fork's pull request cannot read
    assert cli("eval", "-f", "x * 2.0", "-p", "x=[1.0]").exit_code == 0
    assert (tmp_path / "jaxdiff" / "cache-key").is_file()


def test_a_seal_holds_only_for_its_key_kind_and_name(tmp_path: Path) -> None:
    a, b = sealed.derive(b"a" * 32), sealed.derive(b"b" * 32)
    blob = sealed.seal(a, "xla", "jit_f-1", b"program")
    assert sealed.unseal(a, "xla", "jit_f-1", blob) == b"program"
    assert sealed.unseal(b, "xla", "jit_f-1", blob) is None  # another key
    assert sealed.unseal(a, "xla", "jit_f-2", blob) is None  # copied under another name
    assert sealed.unseal(a, "sparsity", "jit_f-1", blob) is None  # another kind of entry
    assert sealed.unseal(a, "xla", "jit_f-1", blob[:-1] + b"P") is None  # changed
    assert sealed.unseal(a, "xla", "jit_f-1", b"program") is None  # plain JAX's entry, unsealed
    store = sealed.SealedFolder(tmp_path, a, "xla")
    store.write("../../escape", b"x")
    assert not (tmp_path.parent.parent / "escape.sealed").exists() and len(list(tmp_path.iterdir())) == 1
    (tmp_path / "jit_g-1.sealed").symlink_to(tmp_path / next(tmp_path.iterdir()).name)
    assert store.read("jit_g-1") is None and store.rejected == 1  # a link is not an entry


def test_a_large_entry_is_verified_as_it_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealed, "_STREAM", 10)  # every entry here is "large"
    store = sealed.SealedFolder(tmp_path, sealed.derive(b"k" * 32), "xla")
    store.write("jit_f-1", b"program" * 100)
    assert store.read("jit_f-1") == b"program" * 100
    other = sealed.SealedFolder(tmp_path, sealed.derive(b"o" * 32), "xla")
    assert other.read("jit_f-1") is None and other.rejected == 1
    (tmp_path / "jit_f-2.sealed").write_bytes(sealed.MAGIC + b"\0" * 40)
    assert store.read("jit_f-2") is None and store.rejected == 1


# --------------------------------------------------------------------------- the sparsity-pattern cache

DIAGONAL = "lambda x: x**3 + 2 * x"  # the attacker's: a diagonal pattern
BANDED = "lambda x: 2 * x - jnp.pad(x, 1)[:-2] - jnp.pad(x, 1)[2:] + x**3"  # the victim's: tridiagonal
X8 = "x={linspace: [-1, 2, 8]}"


def test_a_planted_sparsity_pattern_is_never_used(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("asdex")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    args = ("jacobian", "--sparse", "-p", X8, "--dtype", "float64", "--json")
    monkeypatch.setenv("JAXDIFF_CACHE_KEY", ATTACKER)
    monkeypatch.setenv("JAXDIFF_CACHE_DIR", str(tmp_path / "attacker"))
    assert cli(*args, "-f", DIAGONAL).exit_code == 0
    monkeypatch.delenv("JAXDIFF_CACHE_KEY")
    monkeypatch.setenv("JAXDIFF_CACHE_DIR", str(tmp_path / "names"))
    assert cli(*args, "-f", BANDED).exit_code == 0
    theirs, names = _entries(tmp_path / "attacker" / "sparsity"), _entries(tmp_path / "names" / "sparsity")
    planted = tmp_path / "repo" / ".cache" / "sparsity"
    planted.mkdir(parents=True)
    for name in names:  # each of the attacker's files under the name of the victim's of the same kind
        (source,) = [p for n, p in theirs.items() if n.split(".", 1)[1] == name.split(".", 1)[1]]
        shutil.copyfile(source, planted / f"{name}.sealed")
    monkeypatch.setenv("JAXDIFF_CACHE_DIR", str(planted.parent))
    ran = cli(*args, "-f", BANDED)
    assert ran.exit_code == 0 and not ran.json()["info"]["sparse"]["cached"]
    x = np.linspace(-1, 2, 8)
    want = np.diag(2 + 3 * x**2) - np.eye(8, k=1) - np.eye(8, k=-1)
    np.testing.assert_allclose(ran.outputs()["jacobian"], want, rtol=1e-12)
    assert cli(*args, "-f", BANDED).json()["info"]["sparse"]["cached"]  # replaced by the victim's own


# --------------------------------------------------------------------------- python -m and the script

PLANTED_TYPER = "from pathlib import Path\nPath(__file__).with_name('CANARY').write_text('imported')\nraise SystemExit(99)\n"


COMMANDS = {"the jaxdiff script": [], "python -m": ["-m", "jaxdiff_cli"], "python -P -m": ["-P", "-m", "jaxdiff_cli"]}


@pytest.mark.slow  # three fresh processes
@pytest.mark.parametrize("how", COMMANDS)
def test_a_planted_typer_in_the_current_folder_is_not_imported(tmp_path: Path, how: str) -> None:
    if how == "python -P -m" and sys.version_info < (3, 11):
        pytest.skip("-P is Python 3.11's")
    command = [sys.executable, *COMMANDS[how]] if COMMANDS[how] else [_jaxdiff()]
    (tmp_path / "typer.py").write_text(PLANTED_TYPER)
    (tmp_path / "s.yaml").write_text(TWO)
    ran = subprocess.run([*command, "eval", "s.yaml", "--json"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert not (tmp_path / "CANARY").exists()
    assert ran.returncode == 0 and _value(ran.stdout) == [2.0, 4.0], ran.stderr


def test_the_planted_typer_would_be_imported_by_python_itself(tmp_path: Path) -> None:
    """The control: the planted module works (Python does import it from the current folder)."""
    (tmp_path / "typer.py").write_text(PLANTED_TYPER)
    ran = subprocess.run([sys.executable, "-c", "import typer"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ran.returncode == 99 and (tmp_path / "CANARY").exists()


# --------------------------------------------------------------------------- a cache folder that is a link

LINKS = {  # what a pull request commits as a link, relative to the checkout; the cache is .cache/jaxdiff/xla
    ".cache": ".cache",
    "the cache folder": ".cache/jaxdiff/xla",
    "its sparsity folder": ".cache/jaxdiff/xla/sparsity",
}


@pytest.mark.parametrize("link", LINKS, ids=list(LINKS))
def test_a_cache_folder_linked_out_of_the_checkout_is_not_used(tmp_path: Path, link: str) -> None:
    """GitLab's recipe: JAXDIFF_CACHE_DIR=$PWD/.cache/jaxdiff/xla. A link committed at any level must
    not make jaxdiff create folders or write entries where the link points; the run goes on without a
    cache, with one warning naming the folder, and the right answer."""
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / ".git").mkdir(parents=True)
    outside.mkdir()
    placed = repo / LINKS[link]
    placed.parent.mkdir(parents=True, exist_ok=True)
    placed.symlink_to(outside / "chosen", target_is_directory=True)  # a folder that does not exist yet
    if link == "its sparsity folder":
        (outside / "chosen").mkdir()
    (repo / "three.yaml").write_text('function: "x * 3.0"\nprimals: {x: [1.0, 2.0]}\nexpect:\n  value: [3.0, 6.0]\n')
    cache = repo / ".cache" / "jaxdiff" / "xla"
    ran = _run("check", "three.yaml", "--no-code", cache=cache, config=tmp_path / "config", cwd=repo)
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == (
        [Path("chosen")] if link == "its sparsity folder" else []
    )
    warned = [line for line in ran.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and str(repo / LINKS[link]) in warned[0] and "without a persistent cache" in warned[0], ran.stderr
    assert "Traceback" not in ran.stderr
    value = _run("eval", "three.yaml", "--no-code", "--json", cache=cache, config=tmp_path / "config", cwd=repo)
    assert value.returncode == 0, value.stderr
    assert _value(value.stdout) == [3.0, 6.0]
    assert list(outside.rglob("*.sealed")) == []


def test_a_link_moves_no_cache_out_of_a_checkout_for_the_autotune_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """xla_caches judges both the written path and the one it resolves to."""
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    outside.mkdir()
    (repo / ".cache").symlink_to(outside, target_is_directory=True)
    monkeypatch.chdir(repo / "sub")  # a working-directory: step: the checkout is the git tree around it
    assert runtime.xla_caches("gpu", repo / ".cache" / "xla") == ""
    assert runtime.linked_folder(repo / ".cache" / "xla") == repo / ".cache"
    assert runtime.linked_folder(outside / "xla", tmp_path / "plain" / "sparsity") is None
    # A link above the checkout is the machine's (/home -> /var/home), not a pull request's: the cache stays.
    (tmp_path / "home").symlink_to(outside, target_is_directory=True)
    assert runtime.linked_folder(tmp_path / "home" / "cache") is None
