"""A spec's keys -> a frozen :class:`Spec`, every error naming the file and the key path.

The mapping comes from ``files.read_source`` (which reads YAML with ``yamlfile.parse_yaml``); a spec
with ``cases:`` is built case by case by ``cases.py``. No JAX here: values stay as parsed YAML
(lists, numbers, constructor mappings) until ``values.py`` turns them into arrays, after the
runtime (x64, device) is configured.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jaxdiff_cli import switches
from jaxdiff_cli.dtypes import DTYPES
from jaxdiff_cli.errors import FunctionError, SpecError, UsageError, join, suggest, where
from jaxdiff_cli.inputs.files import CLI, CommandLinePath, refuse_odd_file, spec_path
from jaxdiff_cli.inputs.yamlfile import parse_yaml

DEVICES = ("cpu", "gpu", "tpu", "auto")

# Top-level keys of a spec, with what each is for (used in "did you mean" and docs).
SPEC_KEYS: dict[str, str] = {
    "function": "the function: a lambda, an expression, module:function or file.py:function",
    "primals": "the inputs, named in the function's argument order",
    "wrt": "names of the arguments to differentiate (default: the function's first parameter)",
    "argnums": "positions of the arguments to differentiate in the function's signature (alternative to wrt)",
    "has_aux": "the function returns (output, auxiliary data): differentiate the output, report the data",
    "tangents": "tangents for jvp / hvp, shaped like the wrt primals",
    "cotangents": "cotangents for vjp, shaped like the output",
    "dtype": "float32, float64, complex64 (float32 parts) or complex128 (float64 parts, enables x64)",
    "device": "cpu, gpu, tpu or auto",
    "mode": "jacobian mode (fwd, rev, auto) or hvp mode (fwd-rev, rev-fwd, rev-rev)",
    "holomorphic": "f is holomorphic (complex in and out): JAX's holomorphic=True for grad, jacobian, hessian;"
    " check also tests the Cauchy-Riemann equations",
    "order": "derivative / taylor: the order K (1 to 32): the K-th derivative, or Taylor coefficients up to K",
    "chunk_size": "jacobian: number of basis vectors pushed or pulled at a time",
    "sparse": "jacobian / hessian: true to detect the sparsity pattern, color it and compute only the nonzeros"
    " (needs jaxdiff[sparse])",
    "expect": "expected results, for `jaxdiff check` and the tests",
    "plot": "jacobian / hessian: true for a terminal heatmap, or {terminal, file, spy, summary}",
    "devices": "spread the work over all devices or the first N (a 1-D mesh); default one device",
    "run": "for `jaxdiff run`: the operations to compute, e.g. [jvp, {jacobian: {mode: rev}}]",
    "cases": "for `jaxdiff run` and `check`: a list of cases, each overriding the keys above",
    "name": "a case's name",
    "description": "free text",
}
MAX_ORDER = 32  # derivative / taylor: Taylor mode costs O(K²); beyond this the numbers mean little in floating point


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Spec:
    """A validated spec. Values are raw YAML, checked for form but not yet arrays."""

    source: str
    base_dir: Path
    function: str
    primals: dict[str, Any]
    wrt: tuple[str, ...]  # as given; empty: argnums, else the function's first parameter (resolved on loading it)
    tangents: Any = None
    cotangents: Any = None
    dtype: str = "float32"
    device: str = "auto"
    mode: str | None = None
    chunk_size: int | str | None = None  # a number, or "auto"
    expect: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the spec file, when there is one (a case's source names the case too)
    plot: dict[str, Any] = field(default_factory=dict)  # {terminal, file, spy, summary}
    devices: str | int | None = None  # "all" or N: shard over a mesh
    argnums: tuple[int, ...] | None = None  # positions in the function's signature, as JAX counts them
    has_aux: bool = False
    sparse: bool = False  # jacobian / hessian: compute the nonzeros of the detected pattern
    cli_primals: frozenset[str] = frozenset()  # primals given (or overridden) with --primal
    cli_tangents: frozenset[str] = frozenset()  # tangents given with --tangent
    case: str | None = None  # the case's name, for a case of a spec with cases:
    holomorphic: bool = False  # f is holomorphic: JAX's holomorphic=True, and check tests Cauchy-Riemann
    order: int | None = None  # derivative / taylor: the order K

    def where(self, keypath: str) -> str:
        return where(self.source, keypath)

    def primal_where(self, name: str) -> str:
        """Where a primal was given: the --primal option or the spec's key."""
        return where(CLI, f"--primal {name}") if name in self.cli_primals else self.where(join("primals", name))

    @property
    def wrt_where(self) -> str:
        return self.where("argnums") if self.argnums is not None and not self.wrt else self.where("wrt")


@dataclass(frozen=True)
class Overrides:
    """Command-line options that override (or, without a SPEC, make up) the spec."""

    function: str | None = None
    primals: tuple[str, ...] = ()
    wrt: tuple[str, ...] = ()
    tangents: tuple[str, ...] = ()
    cotangent: str | None = None
    dtype: str | None = None
    device: str | None = None
    has_aux: bool = False
    holomorphic: bool = False
    no_code: bool = False  # --no-code / JAXDIFF_NO_CODE=1: expressions only, no module or file functions
    cases: tuple[str, ...] = ()  # --case NAME (globs): the cases of a spec with cases: to use


_T = TypeVar("_T")


@dataclass(frozen=True)
class _Keys:
    """The keys of a spec mapping, each read and checked where its errors name the file and the key
    (as ``values.Context`` reads values)."""

    data: Mapping[str, Any]
    source: str

    def at(self, key: str) -> str:
        return where(self.source, key)

    def error(self, key: str, message: str, hint: str | None = None) -> SpecError:
        return SpecError(message, where=self.at(key), hint=hint)

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def flag(self, key: str, given: bool = False) -> bool:
        """A true/false key, on when ``given`` (its option) is. A YAML boolean: any other value (`y`,
        "on") is an error, even where the option turns the setting on anyway, never read as off."""
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self.error(key, "true or false")
        return given or value

    def choice(self, key: str, given: str | None, default: str, choices: tuple[str, ...], hint: str) -> str:
        """One of ``choices``: the option's value (``given``) over the key's; an unknown one is
        blamed on whichever of the two gave it."""
        value = given or self.data.get(key, default)
        if value not in choices:
            raise SpecError(f"unknown {key} {value!r}", where=where(CLI, key) if given else self.at(key), hint=hint)
        return str(value)

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(key, "must be a string")
        return value

    def parsed(self, key: str, parse: Callable[[Any, str], _T]) -> _T:
        """The key read by one of the ``parse_*`` functions, which the options use too."""
        return parse(self.data.get(key), self.at(key))


def build_spec(data: Mapping[str, Any], source: str, base_dir: Path, ov: Overrides, path: Path | None = None) -> Spec:
    """Check a parsed spec mapping, apply command-line overrides, return a Spec.

    The keys are read in the order written here, which decides the error a spec with several wrong keys gets.
    """
    keys = _Keys(data, source)
    for key in data:
        if not isinstance(key, str) or key not in SPEC_KEYS:
            known = suggest(str(key), list(SPEC_KEYS)) or f"known keys: {', '.join(SPEC_KEYS)}"
            raise keys.error(str(key), f"unknown key {key!r}", known)  # the key itself: its line, for the CI annotation
    if "cases" in data:
        hint = "run them with `jaxdiff run` or `jaxdiff check`, or pick one with --case NAME"
        raise keys.error("cases", "this spec holds several cases", hint)
    function = _function(keys, ov, base_dir)
    primals, cli_primals = _primals(keys, ov)
    wrt, argnums = _resolve_wrt(keys, ov, list(primals))
    has_aux, holomorphic = keys.flag("has_aux", ov.has_aux), keys.flag("holomorphic", ov.holomorphic)
    tangents, cli_tangents = _tangents(keys.get("tangents"), ov, primals)
    return Spec(
        source=source,
        base_dir=base_dir,
        path=path,
        function=function,
        primals=primals,
        cli_primals=cli_primals,
        wrt=wrt,
        argnums=argnums,
        has_aux=has_aux,
        holomorphic=holomorphic,
        tangents=tangents,
        cli_tangents=cli_tangents,
        # Read in this order too: keyword arguments are evaluated left to right.
        cotangents=keys.get("cotangents") if ov.cotangent is None else _command_line_value(ov.cotangent, "--cotangent"),
        dtype=keys.choice("dtype", ov.dtype, "float32", DTYPES, ", ".join(DTYPES)),
        device=keys.choice("device", ov.device, "auto", DEVICES, "cpu, gpu, tpu or auto"),
        mode=keys.text("mode"),
        chunk_size=keys.parsed("chunk_size", parse_chunk_size),
        plot=_plot(keys, base_dir),
        sparse=keys.flag("sparse"),
        expect=_expect(keys),
        devices=keys.parsed("devices", parse_devices),
        order=keys.parsed("order", parse_order),
    )


def _function(keys: _Keys, ov: Overrides, base_dir: Path) -> str:
    function = ov.function if ov.function is not None else keys.get("function")
    if function is None:
        raise keys.error("function", "no function: give 'function:' in the spec or --fn")
    if not isinstance(function, str) or not function.strip():
        raise keys.error("function", "must be a string (a lambda, an expression or module:function)")
    # JAXDIFF_NO_CODE is read here, where every spec is built (CLI, pytest plugin, init), not only by the CLI.
    no_code = switches.no_code(ov.no_code)
    _function_form(function.strip(), keys.at("function"), base_dir, no_code=no_code, trusted=ov.function is not None)
    return function.strip()


def _primals(keys: _Keys, ov: Overrides) -> tuple[dict[str, Any], frozenset[str]]:
    """The spec's primals with --primal's added or replacing them, and the names --primal gave."""
    primals = keys.get("primals")
    if primals is None:
        primals = {}
    if not isinstance(primals, dict):
        raise keys.error("primals", "must be a mapping of argument names to values")
    primals = dict(primals)
    for name in primals:
        if not isinstance(name, str) or not name.isidentifier():
            raise keys.error("primals", f"{name!r} is not a valid argument name")
    cli_primals = _named_options(ov.primals, "--primal", "primal")
    primals.update(cli_primals)
    if not primals:
        raise keys.error("primals", "no primals: give 'primals:' in the spec or --primal NAME=VALUE")
    return primals, frozenset(cli_primals)


def _tangents(tangents: Any, ov: Overrides, primals: Mapping[str, Any]) -> tuple[Any, frozenset[str]]:
    """The spec's tangents, or with --tangent: the spec's keyed by argument, which --tangent adds to or
    replaces; and the names --tangent gave."""
    if not ov.tangents:
        return tangents, frozenset()
    given = dict(tangents) if isinstance(tangents, dict) and set(tangents) <= set(primals) else {}
    cli_tangents = _named_options(ov.tangents, "--tangent", "tangent")
    return {**given, **cli_tangents}, frozenset(cli_tangents)


def _expect(keys: _Keys) -> dict[str, Any]:
    expect = keys.get("expect") or {}  # `expect:` with nothing after it expects nothing
    if not isinstance(expect, dict):
        raise keys.error("expect", "must be a mapping of operation names to values")
    return expect


def _mark_command_line(value: Any) -> Any:
    """A value typed on the command line, with its ``file:`` paths marked as trusted."""
    if isinstance(value, dict):
        return {k: CommandLinePath(v) if k == "file" and isinstance(v, str) else _mark_command_line(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_command_line(v) for v in value]
    return value


def _command_line_value(text: str, option: str) -> Any:
    """A value typed after an option (``--cotangent``, ``-p x=``), read as YAML."""
    return _mark_command_line(parse_yaml(text, where(CLI, option)))


def _named_options(texts: tuple[str, ...], option: str, what: str) -> dict[str, Any]:
    """``-p NAME=VALUE`` (or ``-t``) options by name, in order; a name given twice is an error."""
    out: dict[str, Any] = {}
    for text in texts:
        name, value = _name_value(text, option)
        if name in out:
            raise SpecError(f"{what} {name!r} is given twice", where=where(CLI, f"{option} {name}"))
        out[name] = value
    return out


def _name_value(text: str, option: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise SpecError(f"expected NAME=VALUE, got {text!r}", where=where(CLI, option))
    return name, _command_line_value(value, f"{option} {name}")


def _string_list(value: Any, at: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError("must be a list of argument names", where=at)
    return value


NO_CODE_HINT = (
    "module and file functions run their own code, which --no-code (JAXDIFF_NO_CODE=1) refuses for specs that"
    " are not trusted; write the function as a lambda or an expression"
)


def _function_form(text: str, at: str, base_dir: Path, *, no_code: bool, trusted: bool) -> None:
    """Refuse module / file functions under --no-code, and a spec's file.py outside its folder."""
    from jaxdiff_cli.inputs.functions import classify, file_reference

    kind = classify(text)
    if no_code and kind in ("module", "file"):
        raise FunctionError(f"{text!r} is a {kind} function and --no-code is on", where=at, hint=NO_CODE_HINT)
    reference = file_reference(text)
    if reference is not None:
        refuse_odd_file(spec_path(reference, base_dir, at, trusted=trusted), at)


def _count_or_word(raw: Any, word: str, where_: str, wanted: str) -> int | str | None:
    """A positive whole number (text from the command line too), the one word, or None; else an
    error: a usage error (exit 2) for an option, a spec error (exit 3) for a key."""
    if raw is None or raw == word:
        return word if raw is not None else None
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        return raw
    error = UsageError if where_.startswith("--") else SpecError
    raise error(f"{raw!r} is not {wanted}", where=where_)


def parse_chunk_size(raw: Any, where_: str) -> int | str | None:
    """chunk_size: / --chunk-size: a positive whole number, or auto (text from the command line too)."""
    return _count_or_word(raw, "auto", where_, "a positive whole number or auto")


def parse_order(raw: Any, where_: str) -> int | None:
    """order: / --order: the order K of derivative and taylor, a whole number from 1 to MAX_ORDER.

    A bad --order is a usage error (exit 2), a bad order: key a spec error (exit 3).
    """
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= MAX_ORDER:
        return raw
    error = UsageError if where_.startswith("--") else SpecError
    raise error(f"{raw!r} is not an order from 1 to {MAX_ORDER}", where=where_)


def parse_devices(raw: Any, where_: str) -> str | int | None:
    """devices: / --devices: all, or a positive number of devices (text from the command line too).

    A bad --devices is a usage error (exit 2), a bad devices: key a spec error (exit 3).
    """
    return _count_or_word(raw, "all", where_, "all or a positive number of devices")


PLOT_KEYS = ("terminal", "file", "spy", "summary")


def _plot(keys: _Keys, base_dir: Path) -> dict[str, Any]:
    raw = keys.get("plot")
    if raw is None or raw is False:
        return {}
    if raw is True:
        return {"terminal": True}
    if not isinstance(raw, dict):
        raise keys.error("plot", "true, or a mapping with terminal, file, spy, summary")
    for key, value in raw.items():
        if key not in PLOT_KEYS:
            raise keys.error(join("plot", key), f"unknown key {key!r}", suggest(str(key), PLOT_KEYS))
        if key == "file" and not isinstance(value, str):
            raise keys.error("plot.file", "an image file name (.png or .svg)")
        if key != "file" and not isinstance(value, bool):
            raise keys.error(join("plot", key), "true or false")
    out = dict(raw)
    if "file" in out:  # relative to the spec's folder and inside it, like its data files
        target = spec_path(out["file"], base_dir, keys.at("plot.file"))
        # Refused here, before any work, as --plot-file is (not after a long Jacobian).
        if target.suffix.lower() not in (".png", ".svg"):
            shown = target.suffix or "(none)"
            raise keys.error("plot.file", f"unknown image format {shown!r}", ".png, .svg")
        refuse_odd_file(target, keys.at("plot.file"))  # written over only after the Jacobian
        if not os.path.isdir(target.parent):
            raise keys.error("plot.file", f"folder {target.parent} does not exist")
        out["file"] = str(target)
    return out


def _resolve_wrt(keys: _Keys, ov: Overrides, names: list[str]) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """The names given to differentiate, or the argnums given (checked against the function's
    signature once it is loaded), or neither (then the function's first parameter)."""
    if ov.wrt:
        at = where(CLI, "--wrt")
        wrt = [w for item in ov.wrt for w in _string_list(item, at)]
    elif "wrt" in keys.data and "argnums" in keys.data:
        raise keys.error("wrt", "give 'wrt' or 'argnums', not both")
    elif "argnums" in keys.data:
        return (), _argnums(keys)
    elif "wrt" in keys.data:
        at = keys.at("wrt")
        wrt = _string_list(keys.get("wrt"), at)
    else:
        return (), None
    if not wrt:
        raise SpecError("names no argument", where=at)
    for name in wrt:
        if name not in names:
            raise SpecError(f"{name!r} is not a primal; primals are {', '.join(names)}", where=at, hint=suggest(name, names))
    if len(set(wrt)) != len(wrt):
        raise SpecError("names an argument twice", where=at)
    return tuple(wrt), None


def _argnums(keys: _Keys) -> tuple[int, ...]:
    nums = keys.get("argnums")
    nums = [nums] if isinstance(nums, int) and not isinstance(nums, bool) else nums
    if nums == []:
        raise keys.error("argnums", "names no argument", "leave argnums out for the first parameter")
    if not isinstance(nums, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
        raise keys.error("argnums", "must be a whole number or a list of them")
    if len(set(nums)) != len(nums):
        raise keys.error("argnums", "names an argument twice")
    return tuple(nums)
