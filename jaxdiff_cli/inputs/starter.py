"""``jaxdiff init``: a commented starter spec from a function and its primals, read back before it is written.

The spec has the function, the primals (by name), what to differentiate, the dtype and an empty
``expect:`` block for ``jaxdiff check --update`` to fill; comments say what each key is for and
what to run next. Its text is loaded like any spec before anyone sees it, so a starter spec that
the loader would refuse is never written.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from jaxdiff_cli.errors import UsageError, Where
from jaxdiff_cli.inputs.spec import CLI, Overrides, build_spec, parse_yaml, where

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
) -> str:
    """The text of a starter spec (``name`` is the file it will be, for the comments and messages)."""
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
    else:
        first = names[0] if names else next(iter(values))
        lines.append(f"# tangents: {{{first}: ...}}  # for jvp and hvp, shaped like the differentiated primal {first}")
    lines.append("# cotangents: [1.0, 1.0]  # for vjp, shaped like the output")
    lines.append(f"dtype: {dtype or 'float32'}  # float32 or float64 (float64 turns on x64)")
    lines.append(f"expect: {{}}  # filled by: jaxdiff check --update {name}")
    _check_function(function, list(values))
    text = "\n".join(lines) + "\n"
    # The loader's verdict before the file exists: a starter spec it would refuse is never written.
    source = Where(name)
    data = parse_yaml(text, source)
    build_spec(data, source, base_dir or Path.cwd(), Overrides(wrt=wrt, dtype=dtype))
    return text


def _check_function(text: str, primals: list[str]) -> None:
    """A lambda or an expression through the expression checker now (no JAX needed): a rejected one
    is refused here, not at the first check. Module and file functions are loaded when checked."""
    from jaxdiff_cli.inputs.expressions import check_expression
    from jaxdiff_cli.inputs.functions import classify, expression_params

    kind = classify(text)
    at = where(CLI, "function")
    if kind == "lambda":
        check_expression(text, primals, at, is_lambda=True)
    elif kind == "expression":
        check_expression(text, expression_params(text, primals, at), at, is_lambda=False)
