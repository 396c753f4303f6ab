"""Exit codes, the error family that the CLI turns into them, where an error is (``Where`` and the
key-path helpers ``where`` and ``join`` that build it), and whose fault an exception is.

No third-party imports: the CLI maps these to exit codes without importing JAX.
"""

from __future__ import annotations

import difflib
import enum
import traceback
from collections.abc import Sequence
from pathlib import Path

EXPRESSION_FILE = "<jaxdiff expression>"  # the file name of compiled expressions in tracebacks
# Folders of the user's modules and files loaded this run: a traceback through them is the user's.
_USER_ROOTS: set[str] = set()
_PACKAGE_ROOT = str(Path(__file__).resolve().parent)


@enum.unique
class ExitCode(enum.IntEnum):
    """The exit statuses of CLI.md; scripts and CI rely on them."""

    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    BAD_INPUT = 3
    FUNCTION = 4
    NON_FINITE = 5
    INTERNAL = 70  # a bug of jaxdiff itself (sysexits' EX_SOFTWARE), never blamed on the user's function
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2, as shells report it
    TERMINATED = 143  # SIGTERM: 128 + 15
    OUTPUT_CLOSED = 141  # stdout closed before the output was written (| head): 128 + SIGPIPE, as shells report it


class OutputClosed(Exception):
    """stdout's reader went away (``jaxdiff check ... | head -1``): stop writing, say nothing."""


class Where(str):
    """Where an error is, as people read it (``FILE: key.path``), with the file and the key path kept
    apart for machines: GitHub annotations, JUnit reports and ``--json`` errors point at the line.

    A plain ``str`` everywhere else, so every message reads as before. For a case of a spec with
    ``cases:`` the text is ``FILE: cases[0]: primals.x`` and the key ``cases[0].primals.x``.
    """

    file: str
    key: str
    line: int | None  # known without a key: a YAML syntax error's own line

    def __new__(cls, file: str, key: str = "", text: str | None = None, line: int | None = None) -> Where:
        self = super().__new__(cls, text if text is not None else (f"{file}: {key}" if key else file))
        self.file = str(file)
        self.key = key
        self.line = line
        return self


def where(source: str, keypath: str) -> str:
    """Where an error is, as ``file: key.path`` (the key path may be empty).

    A :class:`Where`: the file and the key path stay readable apart, a case's (``cases[0]``) too.
    """
    text = f"{source}: {keypath}" if keypath else str(source)
    if isinstance(source, Where):
        key = ".".join(k for k in (source.key, keypath) if k)
        return Where(source.file, key, text)
    return Where(source, keypath, text)


def join(keypath: str, key: object) -> str:
    """Extend a key path: ``primals`` + ``x`` -> ``primals.x``; + 2 -> ``primals.x[2]``."""
    if isinstance(key, int):
        return f"{keypath}[{key}]"
    return f"{keypath}.{key}" if keypath else str(key)


class JaxdiffError(Exception):
    """Base of every error meant for the user: one line, no traceback."""

    exit_code: ExitCode = ExitCode.BAD_INPUT
    in_json = False  # already inside the --json document printed on stdout: not printed again

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """One line: control characters from the spec (a newline in a key) are escaped."""
        from jaxdiff_cli.safetext import printable

        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return printable(text)


class CacheWarning(UserWarning):
    """A cache jaxdiff will not use this run (the run goes on without it): ``warning:`` on stderr."""


class UsageError(JaxdiffError):
    """Options that do not fit together."""

    exit_code = ExitCode.USAGE


class SpecError(JaxdiffError):
    """A malformed spec or value: names the file and the key path."""

    exit_code = ExitCode.BAD_INPUT


class DeviceError(JaxdiffError):
    """A device that JAX does not see."""

    exit_code = ExitCode.BAD_INPUT


class OutputError(JaxdiffError):
    """An output file that cannot be written."""

    exit_code = ExitCode.BAD_INPUT


class FunctionError(JaxdiffError):
    """The user's function failed to load, trace or run."""

    exit_code = ExitCode.FUNCTION


class NonFiniteError(JaxdiffError):
    """A NaN or Inf in a result where finiteness was asked for."""

    exit_code = ExitCode.NON_FINITE


class InternalError(JaxdiffError):
    """An error of jaxdiff itself: a bug to report, not a problem with the user's input or function."""

    exit_code = ExitCode.INTERNAL


def suggest(name: str, choices: Sequence[str]) -> str | None:
    """A "did you mean" hint, or None."""
    same_case = [c for c in choices if c.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def register_user_code(folder: Path) -> None:
    """Remember a folder of the user's code: exceptions raised there are the user function's."""
    _USER_ROOTS.add(str(folder))


def blame(exc: BaseException, where: str | None = None) -> JaxdiffError:
    """An unexpected exception as the error it is: the user's function's (exit 4) when the innermost
    frame that is neither JAX's nor the standard library's is the user's code, else jaxdiff's own
    (exit 70, a bug to report)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        name = frame.filename
        if name.startswith(_PACKAGE_ROOT + "/"):
            break
        if name == EXPRESSION_FILE or any(name.startswith(root + "/") for root in _USER_ROOTS):
            return function_failed("", exc, where)
    return InternalError(
        f"internal error: {type(exc).__name__}: {exc}",
        hint="this is a bug in jaxdiff, not in your spec or function: please report it with the output of --debug",
    )


def describe_user_error(exc: BaseException) -> str:
    """The user's exception, with the line of their code it came from when there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if f.filename == EXPRESSION_FILE or any(f.filename.startswith(r + "/") for r in _USER_ROOTS)]
    user = user or [f for f in frames if not f.filename.startswith(_PACKAGE_ROOT + "/") and "importlib" not in f.filename]
    at = f" ({Path(user[-1].filename).name}, line {user[-1].lineno})" if user else ""
    concrete = _concretization(exc)
    if concrete is not None:  # JAX's text is long and about its internals: what the user's code did instead
        return f"{concrete[0]} ({type(exc).__name__}{'; ' + at[2:-1] if at else ''})"
    text = _one_line(str(exc))
    said = f": {text}" if text else ""
    return f"{type(exc).__name__}{said}{at}"


def function_failed(stage: str, exc: BaseException, where: str | None, hint: str | None = None) -> FunctionError:
    """The user's function raised ``exc`` while jaxdiff traced or ran it (``stage``: "trace", "run"
    or "" when unknown): one line, with the remedy for errors whose cause is known (a Python
    ``if`` on a traced value)."""
    said = f"the function failed to {stage}" if stage else "the function failed"
    return FunctionError(f"{said}: {describe_user_error(exc)}", where=where, hint=hint or explain(exc))


# JAX's errors for a Python decision (if, int(), a shape) taken on a traced value, by class name:
# this module imports no JAX. Each: what the user's code did, and what to write instead. JAX's own
# text names jaxdiff's internals (the function it jitted, its argument "args[0]"), not the user's.
_CONCRETIZATION: dict[str, tuple[str, str]] = {
    "TracerBoolConversionError": (
        "a Python if, and, or, not or bool() on a traced value",
        "jaxdiff traces the function with abstract values, so a Python branch on them is not differentiable"
        " here: use jnp.where(x > 0, x**2, 0.0) for values, or lax.cond(pred, f, g, x) for branches",
    ),
    "TracerIntegerConversionError": (
        "a traced value used as a Python integer (range(n), a list index, operator.index)",
        "keep it an array: index arrays with it (v[i], jnp.take(v, i)), loop with lax.fori_loop,"
        " or make the count a constant of the function",
    ),
    "TracerArrayConversionError": (
        "a traced value converted to a NumPy array (numpy functions, np.asarray)",
        "use jax.numpy (jnp) functions on the function's arguments, not numpy",
    ),
    "ConcretizationTypeError": (
        "a concrete Python value (int(), float(), a shape, a loop count) taken from a traced value",
        "jaxdiff traces the function with abstract values: shapes and Python control flow cannot depend"
        " on them; convert with x.astype(jnp.int32), branch with jnp.where or lax.cond, loop with"
        " lax.fori_loop, or make the number a constant of the function",
    ),
}
# Lines of JAX's messages about its own tracing (where it jitted, its docs' address), not the user's code.
# "If using `jit`": jaxdiff jits, not the user.
_JAX_NOISE = ("The error occurred while tracing", "See https://", "For simplicity, JAX has removed", "-----", "If using `jit`")


def _concretization(exc: BaseException) -> tuple[str, str] | None:
    for cls in type(exc).__mro__:  # most specific first: TracerBoolConversionError is a ConcretizationTypeError
        if cls.__name__ in _CONCRETIZATION and cls.__module__.startswith("jax"):
            return _CONCRETIZATION[cls.__name__]
    return None


def explain(exc: BaseException) -> str | None:
    """What to write instead, for an error of the user's function whose cause is known."""
    concrete = _concretization(exc)
    if concrete is None and isinstance(exc, TypeError) and "concrete value" in str(exc):
        concrete = _CONCRETIZATION["ConcretizationTypeError"]  # e.g. jnp.zeros(n) of a traced n
    return concrete[1] if concrete is not None else None


def _one_line(text: str) -> str:
    """An exception's text on one line, without JAX's notes on how it traced (they name jaxdiff's internals)."""
    lines = [line.strip() for line in text.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith(_JAX_NOISE))
