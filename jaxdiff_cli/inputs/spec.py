"""YAML spec -> a frozen :class:`Spec`, every error naming the file and the key path.

No JAX here: values stay as parsed YAML (lists, numbers, constructor mappings) until
``arrays.py`` turns them into arrays, after the runtime (x64, device) is configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _mark_command_line(value: Any) -> Any:
    """A value typed on the command line, with its ``file:`` paths marked as trusted."""
    if isinstance(value, dict):
        return {k: CommandLinePath(v) if k == "file" and isinstance(v, str) else _mark_command_line(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_command_line(v) for v in value]
    return value


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
    return name, _mark_command_line(parse_yaml(value, where(CLI, f"{option} {name}")))


def _string_list(value: Any, source: str, key: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError("must be a list of argument names", where=where(source, key))
    return value


def build_spec(data: Mapping[str, Any], source: str, base_dir: Path, ov: Overrides, path: Path | None = None) -> Spec:
    """Check a parsed spec mapping, apply command-line overrides, return a Spec."""
    for key in data:
        if not isinstance(key, str) or key not in SPEC_KEYS:
            raise SpecError(
                f"unknown key {key!r}",
                where=where(source, str(key)),  # the key itself: its line, for the CI annotation
                hint=suggest(str(key), list(SPEC_KEYS)) or f"known keys: {', '.join(SPEC_KEYS)}",
            )

    if "cases" in data:
        raise SpecError(
            "this spec holds several cases",
            where=where(source, "cases"),
            hint="run them with `jaxdiff run` or `jaxdiff check`, or pick one with --case NAME",
        )
    function = ov.function if ov.function is not None else data.get("function")
    if function is None:
        raise SpecError("no function: give 'function:' in the spec or --fn", where=where(source, "function"))
    if not isinstance(function, str) or not function.strip():
        raise SpecError("must be a string (a lambda, an expression or module:function)", where=where(source, "function"))
    # JAXDIFF_NO_CODE is read here, where every spec is built (CLI, pytest plugin, init), not only by the CLI.
    no_code = switches.no_code(ov.no_code)
    _function_form(function.strip(), where(source, "function"), base_dir, no_code=no_code, trusted=ov.function is not None)

    primals = data.get("primals", {})
    if primals is None:
        primals = {}
    if not isinstance(primals, dict):
        raise SpecError("must be a mapping of argument names to values", where=where(source, "primals"))
    primals = dict(primals)
    for name in primals:
        if not isinstance(name, str) or not name.isidentifier():
            raise SpecError(f"{name!r} is not a valid argument name", where=where(source, "primals"))
    cli_primals = _named_options(ov.primals, "--primal", "primal")
    primals.update(cli_primals)
    if not primals:
        raise SpecError("no primals: give 'primals:' in the spec or --primal NAME=VALUE", where=where(source, "primals"))

    wrt, argnums = _resolve_wrt(data, source, ov, list(primals))
    # A spec's true/false keys are YAML booleans: any other value (`y`, "on") is an error, even where an
    # option turns the setting on anyway, never read as off.
    has_aux, holomorphic = data.get("has_aux", False), data.get("holomorphic", False)
    if not isinstance(has_aux, bool):
        raise SpecError("true or false", where=where(source, "has_aux"))
    if not isinstance(holomorphic, bool):
        raise SpecError("true or false", where=where(source, "holomorphic"))
    has_aux, holomorphic = ov.has_aux or has_aux, ov.holomorphic or holomorphic

    tangents = data.get("tangents")
    if ov.tangents:
        # Spec tangents keyed by argument stay, and --tangent adds or replaces entries.
        given = dict(tangents) if isinstance(tangents, dict) and set(tangents) <= set(primals) else {}
        cli_tangents = _named_options(ov.tangents, "--tangent", "tangent")
        tangents = {**given, **cli_tangents}
        tangent_options = frozenset(cli_tangents)
    else:
        tangent_options = frozenset()
    cotangents = (
        _mark_command_line(parse_yaml(ov.cotangent, where(CLI, "--cotangent")))
        if ov.cotangent is not None
        else data.get("cotangents")
    )

    dtype = ov.dtype or data.get("dtype", "float32")
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype {dtype!r}", where=where(source if not ov.dtype else CLI, "dtype"), hint=", ".join(DTYPES))
    device = ov.device or data.get("device", "auto")
    if device not in DEVICES:
        raise SpecError(
            f"unknown device {device!r}", where=where(source if not ov.device else CLI, "device"), hint="cpu, gpu, tpu or auto"
        )

    mode = data.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise SpecError("must be a string", where=where(source, "mode"))
    chunk = parse_chunk_size(data.get("chunk_size"), where(source, "chunk_size"))
    plot = _plot(data.get("plot"), source, base_dir)
    sparse = data.get("sparse", False)
    if not isinstance(sparse, bool):
        raise SpecError("true or false", where=where(source, "sparse"))
    expect = data.get("expect") or {}
    if not isinstance(expect, dict):
        raise SpecError("must be a mapping of operation names to values", where=where(source, "expect"))

    return Spec(
        source=source,
        base_dir=base_dir,
        function=function.strip(),
        primals=primals,
        wrt=wrt,
        tangents=tangents,
        cotangents=cotangents,
        dtype=dtype,
        device=device,
        mode=mode,
        chunk_size=chunk,
        expect=expect,
        path=path,
        plot=plot,
        devices=parse_devices(data.get("devices"), where(source, "devices")),
        argnums=argnums,
        has_aux=has_aux,
        sparse=sparse,
        cli_primals=frozenset(cli_primals),
        cli_tangents=tangent_options,
        holomorphic=holomorphic,
        order=parse_order(data.get("order"), where(source, "order")),
    )


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


def _plot(raw: Any, source: str, base_dir: Path) -> dict[str, Any]:
    if raw is None or raw is False:
        return {}
    if raw is True:
        return {"terminal": True}
    if not isinstance(raw, dict):
        raise SpecError("true, or a mapping with terminal, file, spy, summary", where=where(source, "plot"))
    for key, value in raw.items():
        if key not in PLOT_KEYS:
            raise SpecError(f"unknown key {key!r}", where=where(source, join("plot", key)), hint=suggest(str(key), PLOT_KEYS))
        if key == "file" and not isinstance(value, str):
            raise SpecError("an image file name (.png or .svg)", where=where(source, "plot.file"))
        if key != "file" and not isinstance(value, bool):
            raise SpecError("true or false", where=where(source, join("plot", key)))
    out = dict(raw)
    if "file" in out:  # relative to the spec's folder and inside it, like its data files
        target = spec_path(out["file"], base_dir, where(source, "plot.file"))
        # Refused here, before any work, as --plot-file is (not after a long Jacobian).
        if target.suffix.lower() not in (".png", ".svg"):
            shown = target.suffix or "(none)"
            raise SpecError(f"unknown image format {shown!r}", where=where(source, "plot.file"), hint=".png, .svg")
        refuse_odd_file(target, where(source, "plot.file"))  # written over only after the Jacobian
        if not os.path.isdir(target.parent):
            raise SpecError(f"folder {target.parent} does not exist", where=where(source, "plot.file"))
        out["file"] = str(target)
    return out


def _resolve_wrt(
    data: Mapping[str, Any], source: str, ov: Overrides, names: list[str]
) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """The names given to differentiate, or the argnums given (checked against the function's
    signature once it is loaded), or neither (then the function's first parameter)."""
    if ov.wrt:
        wrt, key, src = [w for item in ov.wrt for w in _string_list(item, CLI, "--wrt")], "--wrt", CLI
    elif "wrt" in data and "argnums" in data:
        raise SpecError("give 'wrt' or 'argnums', not both", where=where(source, "wrt"))
    elif "argnums" in data:
        nums = data["argnums"]
        nums = [nums] if isinstance(nums, int) and not isinstance(nums, bool) else nums
        if nums == []:
            raise SpecError("names no argument", where=where(source, "argnums"), hint="leave argnums out for the first parameter")
        if not isinstance(nums, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in nums):
            raise SpecError("must be a whole number or a list of them", where=where(source, "argnums"))
        if len(set(nums)) != len(nums):
            raise SpecError("names an argument twice", where=where(source, "argnums"))
        return (), tuple(nums)
    elif "wrt" in data:
        wrt, key, src = _string_list(data["wrt"], source, "wrt"), "wrt", source
    else:
        return (), None
    if not wrt:
        raise SpecError("names no argument", where=where(src, key))
    for name in wrt:
        if name not in names:
            raise SpecError(
                f"{name!r} is not a primal; primals are {', '.join(names)}",
                where=where(src, key),
                hint=suggest(name, names),
            )
    if len(set(wrt)) != len(wrt):
        raise SpecError("names an argument twice", where=where(src, key))
    return tuple(wrt), None
