"""jaxdiff specs as pytest tests: one item per spec, case and check. Off unless asked for.

    pytest --jaxdiff specs/                   # the .yaml / .yml specs pytest meets (here: under specs/)

    [tool.pytest.ini_options]                 # or name the specs (globs from the root folder);
    jaxdiff_specs = ["specs/*.yaml"]          # a plain `pytest` then checks them with the tests

Installed with jaxdiff as a ``pytest11`` entry point; ``-p no:jaxdiff`` removes it. Each spec (and
each case of a spec with ``cases:``) gives the items ``spec`` (it can be read and checked at all),
``expect[NAME]`` (one per ``expect:`` entry), ``ad_vs_fd[fwd]``, ``ad_vs_fd[rev]``, ``adjoint``,
``hvp``, ``hessian``, ``holomorphic`` (with ``holomorphic: true``), ``higher_order`` (with
``order:``) and ``finite``: the checks of ``jaxdiff check``, which ``-k`` selects, ``-x`` stops at
and ``--junit-xml`` reports. An item whose check does not apply (``hvp`` of a function that is not
scalar) is skipped, and says why. A spec that cannot be checked (a bad value, a function that fails
to load or trace) fails its ``spec`` item, with jaxdiff's message and exit status, and its other
items are skipped, pointing at it; one that cannot even be read has only the ``spec`` item.

The checks run in the pytest process, so JAX is imported once for the whole run. A spec's (or
case's) checks are computed together, by its first item that runs, and the other items read them;
with pytest-xdist (``-n``) a spec's items are sent to one worker.
A failure shows the finding as ``check`` tells it (the worst entry, AD value and reference) and
points at the spec's line: the ``expect:`` key, the bad value, or the function.
``--jaxdiff-no-code``, the ``jaxdiff_no_code`` ini option or ``JAXDIFF_NO_CODE=1`` refuses module and
file functions (any one of them on turns it on); their values are read as the CLI reads its
variable (1/0, true/false, yes/no, on/off, y/n, t/f, any case), and any other is a usage error.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from jaxdiff_cli.checks.findings import Report
    from jaxdiff_cli.errors import JaxdiffError
    from jaxdiff_cli.inputs.spec import Spec

SUFFIXES = (".yaml", ".yml")
SPEC_ITEM = (
    "spec"  # the item of a spec (or case) as a whole (findings.SPEC_TEST): it fails when the spec cannot be read or checked
)
NO_CODE_INI = "jaxdiff_no_code"
_NO_CODE = pytest.StashKey[bool]()  # whether module and file functions are refused, read once by pytest_configure


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jaxdiff", "jaxdiff specs as tests")
    group.addoption(
        "--jaxdiff",
        action="store_true",
        default=False,
        help="Collect jaxdiff specs (.yaml, .yml) as tests, each case and check an item (see the jaxdiff_specs ini option).",
    )
    group.addoption(
        "--jaxdiff-no-code",
        action="store_true",
        default=False,
        help="Refuse module:function and file.py:function specs (they run their own code), as jaxdiff check"
        " --no-code does; also the jaxdiff_no_code ini option or JAXDIFF_NO_CODE=1.",
    )
    # pytest 9.2 reads a union type: a TOML `true` as a bool, every other value as the text we parse.
    no_code_type: Any = (str | bool) if pytest.version_tuple >= (9, 2) else "string"
    parser.addini(
        NO_CODE_INI,
        type=no_code_type,
        default="",
        help="true: refuse module and file functions in specs, as --jaxdiff-no-code (1/0, true/false, yes/no, on/off, y/n, t/f).",
    )
    parser.addini(
        "jaxdiff_specs",
        type="linelist",
        default=[],
        help="Globs of jaxdiff spec files, from the root folder (specs/*.yaml): only these are specs, and setting it"
        " turns the plugin on without --jaxdiff.",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Read the no-code settings once, before any spec is collected: a bad value stops the run."""
    if _enabled(config):
        config.stash[_NO_CODE] = _read_no_code(config)


def _read_no_code(config: pytest.Config) -> bool:
    from jaxdiff_cli.errors import JaxdiffError
    from jaxdiff_cli.switches import no_code, switch

    try:
        ini = switch(config.getini(NO_CODE_INI), f"the {NO_CODE_INI} ini option")
        return no_code(bool(config.getoption("jaxdiff_no_code", False)) or ini)
    except JaxdiffError as exc:
        raise pytest.UsageError(f"jaxdiff: {exc.render()}") from None


def _globs(config: pytest.Config) -> list[str]:
    return [str(g) for g in config.getini("jaxdiff_specs") or []]


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("jaxdiff", False) or _globs(config))


def _is_spec(path: Path, config: pytest.Config) -> bool:
    if path.suffix.lower() not in SUFFIXES:
        return False
    globs = _globs(config)
    if not globs:
        return True  # --jaxdiff alone: every YAML file pytest meets is a spec
    try:
        relative = path.resolve().relative_to(config.rootpath.resolve()).as_posix()
    except ValueError:
        return False
    return any(fnmatch.fnmatchcase(relative, g) for g in globs)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    config = parent.config
    if not _enabled(config) or not _is_spec(file_path, config):
        return None
    # --jaxdiff alone meets every YAML file of a project (.gitlab-ci.yml, docker-compose.yml): those without
    # a spec's top-level key are left out and counted. A file named on the command line, or matched by the
    # jaxdiff_specs globs, is a spec: if it is a bad one, it fails and says why.
    if not _globs(config) and not parent.session.isinitpath(file_path) and not _has_spec_key(file_path):
        return NotSpec.from_parent(parent, path=file_path)
    return SpecFile.from_parent(parent, path=file_path)


class NotSpec(pytest.File):
    """A YAML file that is no spec: no items. Counted when pytest collects it, not when it is met: pytest
    also meets the files beside one named on the command line, and drops them."""

    def collect(self) -> list[pytest.Item]:
        self.config.stash.setdefault(_NOT_SPECS, set()).add(_shown(self.path))
        return []


_NOT_SPECS = pytest.StashKey[set[str]]()  # the YAML files left out as no specs
# A top-level function: key (or cases:, whose entries may each name their function), as block-style YAML
# writes it: at the start of a line. Found without parsing the file, which may be large and is not ours.
_SPEC_KEY = re.compile(rb"""^(?:function|cases|"function"|'function'|"cases"|'cases')[ \t]*:""")


def _has_spec_key(path: Path) -> bool:
    """Whether a YAML file has a spec's top-level key (function: or cases:), read line by line up to it."""
    from jaxdiff_cli.inputs.files import MAX_SPEC_BYTES

    try:
        with path.open("rb") as f:
            first = b""  # the first line that is not blank, a comment or a document marker
            for line in f:
                if _SPEC_KEY.match(line):
                    return True
                stripped = line.strip()
                if not first and stripped and not stripped.startswith((b"#", b"---", b"%")):
                    first = stripped
                if f.tell() > MAX_SPEC_BYTES:
                    return True  # too large to be read as a spec: the spec item says so
    except OSError:
        return True  # unreadable: the spec item says why
    if first.startswith(b"{"):  # a flow mapping ({function: ..., primals: ...}): parsed by the bounded reader
        from jaxdiff_cli.errors import SpecError
        from jaxdiff_cli.inputs.yamlfile import parse_yaml

        try:
            data = parse_yaml(path.read_text(encoding="utf-8", errors="replace"), str(path))
        except SpecError:  # too deep, too large, malformed: no spec (plain PyYAML recursed or took seconds)
            return False
        return isinstance(data, dict) and ("function" in data or "cases" in data)
    return False


def _not_specs(config: pytest.Config) -> list[str]:
    names: set[str] = config.stash[_NOT_SPECS] if _NOT_SPECS in config.stash else set()
    return sorted(names)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    names = _not_specs(config)
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        files = "YAML file" if len(names) == 1 else "YAML files"
        from jaxdiff_cli.safetext import printable  # file names are the project's: shown, never acted on by the terminal

        line = f"jaxdiff: {len(names)} {files} without a top-level function: key, not specs: {shown}"
        terminalreporter.write_line(printable(line))


@pytest.hookimpl(tryfirst=True)  # before -k, -m and --deselect choose among the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """With jaxdiff_specs set and no paths on the command line, the specs its globs name are collected
    too where pytest's walk (testpaths) did not reach them."""
    globs = _globs(config)
    if not globs or _paths_given(config):
        return
    seen = {item.path.resolve() for item in items}
    for pattern in globs:
        for path in sorted(config.rootpath.glob(pattern)):
            if path.is_file() and path.resolve() not in seen and _is_spec(path, config):
                seen.add(path.resolve())
                items.extend(session.genitems(SpecFile.from_parent(session, path=path)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Which item of each spec fails for an error of the spec: its spec item, or where -k or --deselect left
    that out, its first selected item. Chosen from the selected items, not by which runs first, so that
    with pytest-xdist every worker (each collects all items) picks the same one and the error counts once."""
    for item in session.items:
        if isinstance(item, SpecCheck) and item.holder is not None:
            if item.holder.error_item is None or item.name == SPEC_ITEM:
                item.holder.error_item = item.nodeid
    workeroutput = getattr(session.config, "workeroutput", None)  # an xdist worker: the controller prints the summary
    if workeroutput is not None:
        workeroutput["jaxdiff_not_specs"] = _not_specs(session.config)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist, in the controller: the YAML files a worker left out
def pytest_testnodedown(node: Any, error: object) -> None:
    names = getattr(node, "workeroutput", {}).get("jaxdiff_not_specs")
    if names:
        node.config.stash.setdefault(_NOT_SPECS, set()).update(names)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: called only where it is installed
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n`` (xdist's default ``--dist load``), a spec's items go to one worker, which checks the spec
    once; spread over workers, each would compute it again. Other items are scheduled one by one, as
    ``load`` does. Another ``--dist`` is left to xdist. (Not ``xdist_group`` and ``--dist loadgroup``: they
    rename the items, and on pytest 9.2 they no longer group them.)"""
    if not _enabled(config) or config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    known: dict[str, bool] = {}

    def scope(nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        if path not in known:
            known[path] = _is_spec(config.rootpath / path, config)
        return path if known[path] else nodeid

    class SpecScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope(nodeid)

    return SpecScheduling(config, log)


def _paths_given(config: pytest.Config) -> bool:
    """Whether the command line named what to test (then the globs only say which YAML files are specs)."""
    source = getattr(config, "args_source", None)
    return source is not None and source == pytest.Config.ArgsSource.ARGS


# --------------------------------------------------------------------------- collectors and items


class SpecFile(pytest.File):
    """A spec file: its checks, or one collector per case of a spec with ``cases:``."""

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        from jaxdiff_cli.errors import JaxdiffError
        from jaxdiff_cli.inputs.cases import cases_of
        from jaxdiff_cli.inputs.files import read_source
        from jaxdiff_cli.inputs.spec import Overrides

        name = _shown(self.path)
        try:
            data, source, base = read_source(name)
            no_code = self.config.stash.get(_NO_CODE, True)  # never read: refuse, as the safe side
            cases = cases_of(data, source, base, Overrides(no_code=no_code), name, need_steps=False)
        except JaxdiffError as exc:
            yield SpecCheck.from_parent(self, name="spec", error=exc)
            return
        if "cases" not in data:
            yield from _checks(self, cases[0].spec)
            return
        for case in cases:
            yield SpecCase.from_parent(self, name=case.name, spec=case.spec)


class SpecCase(pytest.Collector):
    """One case of a spec with ``cases:``: its checks."""

    def __init__(self, *, spec: Spec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self) -> Iterator[pytest.Item]:
        yield from _checks(self, self.spec)


def _checks(parent: pytest.Collector, spec: Spec) -> Iterator[pytest.Item]:
    """The items of one spec or case: its expect: entries, then the derivative checks (the tests
    check's JUnit report has too: findings.tests_of)."""
    from jaxdiff_cli.checks.findings import tests_of

    holder = _Holder(spec)
    # First: whether the spec can be checked at all (its values build, its function loads and traces).
    # A spec that cannot fails here, as one that cannot be read does, not as a derivative check.
    yield SpecCheck.from_parent(parent, name=SPEC_ITEM, holder=holder, key="")
    for name in tests_of(spec.expect, holomorphic=spec.holomorphic, order=spec.order is not None):
        key = f"expect.{name.removeprefix('expect[').removesuffix(']')}" if name.startswith("expect[") else "function"
        yield SpecCheck.from_parent(parent, name=name, holder=holder, key=key)


class _Holder:
    """A spec's (or case's) report, computed once by the first of its items that runs."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.report: Report | None = None
        # The item that fails for the report's error, the others skip pointing at it: chosen when collection
        # ends (pytest_collection_finish), or else the first of them that runs.
        self.error_item: str | None = None

    def get(self) -> Report:
        if self.report is None:
            from jaxdiff_cli.checks.check import Settings, check_spec

            self.report = check_spec(self.spec, Settings())
        return self.report


class CheckFailed(Exception):
    """Findings of one item that failed."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class SpecCheck(pytest.Item):
    """One check of one spec or case (or a spec that could not be read: its error)."""

    def __init__(self, *, holder: _Holder | None = None, key: str = "", error: JaxdiffError | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.holder = holder
        self.key = key
        self.error = error

    @classmethod
    def from_parent(cls, parent: pytest.Collector, **kwargs: Any) -> SpecCheck:
        # The id given as a string: pytest >= 9.2 reads the ids it cached for --lf/--ff back as path, names
        # and a parameter (`expect[grad.x]` is `expect` with `grad.x`, pytest-dev/pytest#15045), while the id
        # it builds from a name is that whole name. Given as the same string, the item's id is read the same
        # way as the cached one, so --lf and --ff find it again; the name pytest shows stays the same.
        return super().from_parent(parent, nodeid=f"{parent.nodeid}::{kwargs['name']}", **kwargs)

    def runtest(self) -> None:
        from jaxdiff_cli.output.reports import verdict
        from jaxdiff_cli.safetext import printable

        if self.error is not None:
            raise self.error
        assert self.holder is not None
        report = self.holder.get()
        if report.error is not None:
            # A spec that could not be checked fails once, by its spec item, not six times over: its other
            # items are skipped and say where the error is. One of them shows the error where the spec item
            # was deselected (-k hvp): a broken spec never passes.
            if self.holder.error_item is None:
                self.holder.error_item = self.nodeid
            if self.nodeid == self.holder.error_item:
                raise report.error
            pytest.skip(printable(f"the spec could not be checked: see {self.holder.error_item}"))
        outcome = verdict(report, self.name)  # as check's JUnit report judges the same test
        if outcome.kind == "failed":
            raise CheckFailed(outcome.text.split("\n"))
        if outcome.kind == "skipped":
            pytest.skip(outcome.text)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from jaxdiff_cli.errors import JaxdiffError
        from jaxdiff_cli.output.reports import error_text

        exc = excinfo.value
        if isinstance(exc, CheckFailed):
            return "\n".join(exc.lines)
        if isinstance(exc, JaxdiffError):
            return error_text(exc)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self._line()  # pytest counts lines from 0; the name as the domain, as pytest's own items give theirs
        return self.path, None if line is None else line - 1, self.name

    def _line(self) -> int | None:
        from jaxdiff_cli.output.reports import error_place, place

        if self.error is not None:
            return error_place(self.error).line
        if self.holder is None:
            return None
        source = self.holder.spec.source
        key = ".".join(k for k in (getattr(source, "key", ""), self.key) if k)
        return place(getattr(source, "file", None), key).line


def _shown(path: Path) -> str:
    """A spec's path as messages name it: relative to the folder pytest runs in, when it is inside."""
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)
