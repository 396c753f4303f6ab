"""A function reference -> a Python callable.

Four forms: a lambda, a bare expression over the primal names, ``package.module:function``
and ``path/to/file.py:function``. Lambdas and expressions come from spec files that may
arrive in a pull request: they are an allowlisted language, checked before anything runs
(``expressions.py``). Modules and files are the user's own code and run as such; ``--no-code``
refuses them (``spec.build_spec``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from jaxdiff_cli import signals
from jaxdiff_cli.errors import FunctionError, describe_user_error, register_user_code, suggest
from jaxdiff_cli.inputs import expressions

__all__ = ["LoadedFunction", "Params", "classify", "file_reference", "load_function"]

# What user code raises is an error of the function, never a request to stop jaxdiff: a function
# calling sys.exit() must not end `jaxdiff check` silently with its status, nor a BaseException of
# its own escape as a traceback. Only a real Ctrl-C or SIGTERM (signals.Stopped) passes through.


@dataclass(frozen=True)
class Params:
    """The parameters a function takes, by name: what primals can bind to."""

    names: tuple[str, ...]  # named parameters in declaration order (positional first, then keyword-only)
    required: frozenset[str]  # those without a default
    positional_only: tuple[str, ...] = ()  # must be passed by position (``def f(x, /)``)
    keyword_only: tuple[str, ...] = ()  # after ``*``: argnums does not count them
    var_keyword: bool = False  # ``**kwargs``: primals that are not parameters go there
    var_positional: str | None = None  # ``*args``: no primal can bind to it by name

    @property
    def positional(self) -> tuple[str, ...]:
        """The parameters that argnums counts (JAX's positions)."""
        return self.names[: len(self.names) - len(self.keyword_only)]


@dataclass(frozen=True)
class LoadedFunction:
    """A callable with what the engine and the output need to know about it."""

    fn: Callable[..., Any]
    source: str  # the text the user gave
    kind: str  # "lambda" | "expression" | "module" | "file"
    params: Params

    def bind(self, order: Sequence[str]) -> Callable[..., Any]:
        """A function of the primals as positional arguments in ``order`` that passes each one to the
        parameter of the same name (by keyword; positional-only parameters by position)."""
        fn, posonly = self.fn, len(self.params.positional_only)
        names = tuple(order)
        if list(names[:posonly]) != list(self.params.positional_only):
            raise FunctionError("positional-only parameters must all be given, in order", where="function")

        def bound(*args: Any) -> Any:
            return fn(*args[:posonly], **dict(zip(names[posonly:], args[posonly:])))

        return bound


# DOTALL: a path with a newline in it is still a path (refused as one, exit 3), not an expression.
_FILE_REF = re.compile(r"^(?P<path>.+\.py):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$", re.DOTALL)
_MODULE_REF = re.compile(r"^(?P<mod>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


def classify(text: str) -> str:
    """Which of the four forms ``text`` is."""
    text = text.strip()
    if _FILE_REF.match(text):
        return "file"
    if _MODULE_REF.match(text):
        return "module"
    if re.match(r"^lambda\b", text):
        return "lambda"
    return "expression"


def file_reference(text: str) -> str | None:
    """The path of a ``path/to/file.py:function`` reference, or None for the other forms."""
    m = _FILE_REF.match(text.strip())
    return m["path"] if m else None


def load_function(text: str, argnames: Sequence[str], base_dir: Path, where: str) -> LoadedFunction:
    """Turn a function reference into a callable and the parameters it takes.

    ``argnames`` are the primals' names: a bare expression's parameters are the primals it uses.
    """
    kind = classify(text)
    if kind in ("file", "module"):
        if kind == "file":
            m = _FILE_REF.match(text.strip())
            assert m is not None
            fn = _load_from_file(m["path"], m["attr"], base_dir, where)
        else:
            m = _MODULE_REF.match(text.strip())
            assert m is not None
            fn = _load_from_module(m["mod"], m["attr"], base_dir, where)
        return LoadedFunction(fn=_guard_user_code(fn, where), source=text, kind=kind, params=signature_params(fn, text, where))
    checked = expressions.check(text, argnames, where, is_lambda=kind == "lambda")  # parsed and checked once
    fn = expressions.compile(checked, where)
    params = Params(names=checked.params, required=frozenset(checked.params))
    return LoadedFunction(fn=_guard_user_code(fn, where), source=text, kind=kind, params=params)


def signature_params(fn: Callable[..., Any], text: str, where: str) -> Params:
    """A Python function's parameters, read with inspect (following functools.wraps)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise FunctionError(
            f"cannot read the parameters of {text}", where=where, hint="primals bind by name: use a Python function"
        ) from None
    kinds = inspect.Parameter
    names, required, posonly, kwonly = [], set(), [], []
    var_keyword = False
    var_positional = None
    for p in sig.parameters.values():
        if p.kind is kinds.VAR_KEYWORD:
            var_keyword = True
            continue
        if p.kind is kinds.VAR_POSITIONAL:
            var_positional = p.name  # *args: nothing binds to it by name
            continue
        names.append(p.name)
        if p.default is kinds.empty:
            required.add(p.name)
        if p.kind is kinds.POSITIONAL_ONLY:
            posonly.append(p.name)
        elif p.kind is kinds.KEYWORD_ONLY:
            kwonly.append(p.name)
    return Params(
        names=tuple(names),
        required=frozenset(required),
        positional_only=tuple(posonly),
        keyword_only=tuple(kwonly),
        var_keyword=var_keyword,
        var_positional=var_positional,
    )


def _guard_user_code(fn: Callable[..., Any], where: str) -> Callable[..., Any]:
    """``fn``, with SystemExit, KeyboardInterrupt, GeneratorExit (any BaseException) from it reported
    as its error. Exceptions pass as they are: the engine reports them, with the user's line."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (Exception, signals.Stopped):
            raise
        except BaseException as exc:
            raise FunctionError(f"the function raised {describe_user_error(exc)}", where=where) from None

    return call


# --------------------------------------------------------------------------- modules and files


@contextlib.contextmanager
def _import_path(*folders: Path) -> Iterator[None]:
    """Put folders on sys.path for one import only (no permanent sys.path edits)."""
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for f in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(f)


def _getattr_path(obj: Any, attr: str, origin: str, where: str) -> Callable[..., Any]:
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise FunctionError(f"{origin} has no attribute {part!r}", where=where, hint=suggest(part, names))
        obj = getattr(obj, part)
    if not callable(obj):
        raise FunctionError(f"{origin}:{attr} is a {type(obj).__name__}, not a function", where=where)
    return obj  # type: ignore[no-any-return]


def _forget_a_stale_import(modname: str, folders: Sequence[Path]) -> None:
    """Drop a cached module of this name that this spec would not import (found in another spec's folder).

    `jaxdiff check a/s.yaml b/s.yaml` runs both in one process: each spec's `mymod:f` is the mymod
    next to it, not the one Python imported for the spec before (sys.modules caches by name).
    """
    import importlib.machinery

    top = modname.split(".")[0]
    cached = sys.modules.get(top)
    cached_file = getattr(cached, "__file__", None)
    if cached is None or not cached_file:
        return
    found = importlib.machinery.PathFinder.find_spec(top, [str(f) for f in folders] + sys.path)
    if found is not None and found.origin and Path(found.origin).resolve() == Path(cached_file).resolve():
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def _load_from_module(modname: str, attr: str, base_dir: Path, where: str) -> Callable[..., Any]:
    try:
        with _import_path(base_dir, Path.cwd()):
            _forget_a_stale_import(modname, (base_dir, Path.cwd()))
            module = importlib.import_module(modname)
            top = sys.modules.get(modname.split(".")[0])
            for found in (getattr(top, "__file__", None), getattr(module, "__file__", None)):
                if found:
                    register_user_code(Path(found).resolve().parent)
    except ModuleNotFoundError as exc:
        if exc.name and modname.startswith(exc.name):
            raise FunctionError(
                f"no module named {exc.name!r}", where=where, hint="is it installed, or next to the spec?"
            ) from None
        raise FunctionError(f"module {modname!r} failed to import: {describe_user_error(exc)}", where=where) from None
    except signals.Stopped:
        raise
    except BaseException as exc:  # the user's module raised (or called sys.exit) while importing
        raise FunctionError(f"module {modname!r} failed to import: {describe_user_error(exc)}", where=where) from None
    return _getattr_path(module, attr, modname, where)


def _load_from_file(path_text: str, attr: str, base_dir: Path, where: str) -> Callable[..., Any]:
    path = Path(path_text)
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise FunctionError(f"no such file: {path}", where=where)
    # A unique module name per file, so two specs with a model.py each do not collide.
    modname = "jaxdiff_user_" + re.sub(r"\W", "_", str(path.resolve()))
    register_user_code(path.resolve().parent)
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise FunctionError(f"cannot load {path} as Python", where=where)
    module: ModuleType = importlib.util.module_from_spec(spec)
    try:
        with _import_path(path.resolve().parent):
            sys.modules[modname] = module
            spec.loader.exec_module(module)
    except signals.Stopped:
        sys.modules.pop(modname, None)
        raise
    except BaseException as exc:
        sys.modules.pop(modname, None)
        raise FunctionError(f"{path.name} failed to import: {describe_user_error(exc)}", where=where) from None
    return _getattr_path(module, attr, path.name, where)
