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
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from jaxdiff_cli import signals
from jaxdiff_cli.errors import FunctionError
from jaxdiff_cli.expressions import check_expression, check_lambda_params, compile_expression

__all__ = [
    "LoadedFunction", "check_expression", "check_lambda_params", "classify", "compile_expression", "file_reference",
    "load_function",
]  # fmt: skip

# What user code raises is an error of the function, never a request to stop jaxdiff: a function
# calling sys.exit() must not end `jaxdiff check` silently with its status, nor a BaseException of
# its own escape as a traceback. Only a real Ctrl-C or SIGTERM (signals.Stopped) passes through.


@dataclass(frozen=True)
class LoadedFunction:
    """A callable with what the engine and the output need to know about it."""

    fn: Callable[..., Any]
    source: str  # the text the user gave
    kind: str  # "lambda" | "expression" | "module" | "file"


_FILE_REF = re.compile(r"^(?P<path>.+\.py):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
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
    """Turn a function reference into a callable of the primals, in order."""
    kind = classify(text)
    if kind == "file":
        m = _FILE_REF.match(text.strip())
        assert m is not None
        fn = _load_from_file(m["path"], m["attr"], base_dir, where)
    elif kind == "module":
        m = _MODULE_REF.match(text.strip())
        assert m is not None
        fn = _load_from_module(m["mod"], m["attr"], base_dir, where)
    else:
        fn = compile_expression(text, argnames, where, is_lambda=kind == "lambda")
    return LoadedFunction(fn=_guard_user_code(fn, where), source=text, kind=kind)


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


def describe_user_error(exc: BaseException) -> str:
    """The user's exception, with the line of their code it came from when there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if "jaxdiff_cli" not in f.filename and "importlib" not in f.filename]
    at = f" ({Path(user[-1].filename).name}, line {user[-1].lineno})" if user else ""
    said = f": {exc}" if str(exc) else ""
    return f"{type(exc).__name__}{said}{at}"


def _getattr_path(obj: Any, attr: str, origin: str, where: str) -> Callable[..., Any]:
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            from jaxdiff_cli.spec import suggest

            raise FunctionError(f"{origin} has no attribute {part!r}", where=where, hint=suggest(part, names))
        obj = getattr(obj, part)
    if not callable(obj):
        raise FunctionError(f"{origin}:{attr} is a {type(obj).__name__}, not a function", where=where)
    return obj  # type: ignore[no-any-return]


def _load_from_module(modname: str, attr: str, base_dir: Path, where: str) -> Callable[..., Any]:
    try:
        with _import_path(base_dir, Path.cwd()):
            module = importlib.import_module(modname)
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
