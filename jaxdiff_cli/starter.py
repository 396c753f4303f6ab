"""``jaxdiff init``: a commented starter spec from a function and its primals, read back before it is written.

The spec has the function, the primals (by name), what to differentiate, the dtype and an empty
``expect:`` block for ``jaxdiff check --update`` to fill; comments say what each key is for and
what to run next, and the commented keys hold values of the right shape (the output's comes from
``jax.eval_shape``: init imports JAX, ``--help`` does not). Its text is loaded like any spec before
anyone sees it, so a starter spec that the loader would refuse is never written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jaxdiff_cli.encoding import printable, shape_text
from jaxdiff_cli.errors import JaxdiffError, UsageError, Where, where
from jaxdiff_cli.inputs.files import CLI
from jaxdiff_cli.inputs.spec import Overrides, Spec, build_spec
from jaxdiff_cli.inputs.yamlfile import parse_yaml

_NAME_HINT = "give each primal as -p NAME=VALUE, e.g. -p x=[1.0,2.0]"


def _named(texts: tuple[str, ...], option: str) -> dict[str, object]:
    """NAME=VALUE options as a mapping of parsed YAML values, in the order given."""
    out: dict[str, object] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UsageError(f"expected NAME=VALUE, got {text!r}", where=where(CLI, option), hint=_NAME_HINT)
        if name in out:
            raise UsageError(f"{name!r} is given twice", where=where(CLI, f"{option} {name}"))
        out[name] = parse_yaml(value, where(CLI, f"{option} {name}"))
    return out


def _flow(value: object) -> str:
    """A value as one line of YAML: ``[1.0, 2.0]``, ``{random: normal, shape: [3]}``, ``2.5``."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**9, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _mapping(key: str, values: dict[str, object]) -> list[str]:
    """``key:`` and one ``name: value`` line for each entry."""
    return [f"{key}:"] + [f"  {name}: {_flow(value)}" for name, value in values.items()]


def starter_spec(
    function: str,
    primals: tuple[str, ...],
    *,
    wrt: tuple[str, ...] = (),
    tangents: tuple[str, ...] = (),
    dtype: str | None = None,
    name: str = "spec.yaml",
    base_dir: Path | None = None,
) -> Starter:
    """A starter spec (``name`` is the file it will be, for the comments and messages)."""
    if not primals:
        raise UsageError("init needs the function's primals", where="--primal", hint=_NAME_HINT)
    values = _named(primals, "--primal")
    given_tangents = _named(tangents, "--tangent")
    names = [w.strip() for item in wrt for w in item.split(",") if w.strip()]
    lines = [
        "# A jaxdiff spec, written by `jaxdiff init` (README: The spec).",
        f"#   jaxdiff check --update {name}   records the results in expect: (golden values)",
        f"#   jaxdiff check {name}            then checks them, and AD against finite differences",
        "# Editors: `jaxdiff schema > jaxdiff.schema.json`, then make this the first line:",
        "#   # yaml-language-server: $schema=jaxdiff.schema.json",
        f"function: {json.dumps(function.strip(), ensure_ascii=False)}",
        "# The inputs, by parameter name: numbers, nested lists, {random: normal, shape: [3], seed: 0},",
        "# {zeros: [2, 3]}, {file: x.npy} (next to this spec), or a mapping of them (a pytree).",
        *_mapping("primals", values),
    ]
    if names:
        lines.append(f"wrt: {_flow(names)}  # the arguments to differentiate")
    else:
        listed = ", ".join(values)
        lines.append(f"# wrt: [{listed}]  # the arguments to differentiate; default: the function's first parameter")
    if given_tangents:
        lines.append("# For jvp and hvp, shaped like the differentiated primals (one more leading axis: a batch):")
        lines += _mapping("tangents", given_tangents)
    at = len(lines)  # the commented tangents and cotangents go here, once the output's shape is known
    lines.append(f"dtype: {dtype or 'float32'}  # float32, float64, complex64 or complex128 (the 64-bit ones turn on x64)")
    lines.append(f"expect: {{}}  # filled by: jaxdiff check --update {name}")
    _check_function(function, list(values))
    # The loader's verdict before the file exists: a starter spec it would refuse is never written.
    # (The lines still to come are comments: they change nothing the loader reads.)
    source = Where(name)
    overrides = Overrides(wrt=wrt, dtype=dtype)
    spec = build_spec(parse_yaml("\n".join(lines) + "\n", source), source, base_dir or Path.cwd(), overrides)
    comments, failed = _shaped_comments(spec, tangents=not given_tangents)
    lines[at:at] = comments
    text = "\n".join(lines) + "\n"
    build_spec(parse_yaml(text, source), source, base_dir or Path.cwd(), overrides)
    warning = None
    if failed is not None:  # a valid spec of a function that fails here: written, but said at once
        warning = f"the function could not be evaluated at these primals ({failed}); check will say the same"
    return Starter(text, warning)


@dataclass(frozen=True)
class Starter:
    text: str
    warning: str | None  # the function failed to load or trace at the primals: the spec is still valid


_LITERAL_MAX = 8  # entries of a 1-D leaf written out as a list; larger leaves as {ones: shape}


def _shaped_comments(spec: Spec, *, tangents: bool) -> tuple[list[str], str | None]:
    """The commented ``tangents:`` and ``cotangents:`` lines, each a value of the right shape (ones), so
    that uncommenting one gives a spec that checks: the tangents shaped like the differentiated primals,
    the cotangents like the output, which takes evaluating the function's shape (``jax.eval_shape``).
    Where the function cannot be loaded or traced here, a comment says what they must be instead, and
    the error comes back beside the lines."""
    from jaxdiff_cli.engine.problem import output_shape
    from jaxdiff_cli.prepare import prepare

    try:
        prep = prepare(spec, no_cache=True)
        out = output_shape(prep.problem)
    except JaxdiffError as exc:
        why = printable(exc.message)
        why = why if len(why) <= 120 else why[:117] + "..."
        return [
            "# For jvp and hvp add tangents: shaped like the differentiated primals (keyed by name), and for vjp",
            f"# cotangents: shaped like the output. The function could not be evaluated here ({why}).",
        ], exc.render()
    problem = prep.problem
    lines = []
    if tangents:
        like = dict(zip(problem.wrt, problem.diff(problem.primals)))
        shown = ", ".join(f"{n} {_shape_of(v)}" for n, v in like.items())
        value = {n: _ones_like(v, spec.dtype) for n, v in like.items()}
        lines.append(f"# tangents: {_flow(value)}  # for jvp and hvp, shaped like the differentiated primals ({shown})")
    lines.append(f"# cotangents: {_flow(_ones_like(out, spec.dtype))}  # for vjp, shaped like the output ({_shape_of(out)})")
    return lines, None


def _ones_like(tree: Any, dtype: str) -> Any:
    """Ones with the structure and shapes of ``tree`` (arrays or ShapeDtypeStructs), as YAML values."""
    if isinstance(tree, Mapping):
        return {str(k): _ones_like(v, dtype) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_ones_like(v, dtype) for v in tree]
    shape = [int(n) for n in tree.shape]
    if not shape:
        return 1.0
    if len(shape) == 1 and shape[0] <= _LITERAL_MAX:
        return [1.0] * shape[0]
    leaf = str(np.dtype(tree.dtype))
    # A constructor makes the run's dtype: a real leaf in a complex run says its own.
    return {"ones": shape, **({"dtype": leaf} if leaf != dtype and np.dtype(leaf).kind in "fc" else {})}


def _shape_of(tree: Any) -> str:
    """``a scalar``, ``shape (2,)``, or the shapes of a pytree's leaves."""
    if isinstance(tree, (Mapping, list, tuple)):
        return "a pytree: " + ", ".join(f"{k} {_shape_of(v)}" for k, v in _items(tree))
    return "a scalar" if not tree.shape else f"shape {shape_text(tree.shape)}"


def _items(tree: Mapping[Any, Any] | list[Any] | tuple[Any, ...]) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in tree.items()] if isinstance(tree, Mapping) else [(f"[{i}]", v) for i, v in enumerate(tree)]


def _check_function(text: str, primals: list[str]) -> None:
    """A lambda or an expression through the expression checker now (no JAX needed): a rejected one
    is refused here, not at the first check. Module and file functions are loaded when checked."""
    from jaxdiff_cli.inputs import expressions
    from jaxdiff_cli.inputs.functions import classify

    kind = classify(text)
    if kind in ("lambda", "expression"):
        expressions.check(text, primals, where(CLI, "function"), is_lambda=kind == "lambda")
