"""The spec's JSON Schema, generated from the tables the loader itself checks against.

The top-level keys come from ``inputs.spec.SPEC_KEYS`` (with their descriptions), the value
constructors and their options from ``inputs.values.CONSTRUCTORS``, dtypes, devices, operations and
modes from the loader's and the planner's tables, the ``expect:`` entries from the check's own. So
the schema cannot drift from the loader: a key or constructor added to a table is in the next schema,
and ``KEY_SCHEMAS`` / ``OPTION_SCHEMAS`` must say what its values are (a test fails until they do;
until then the schema accepts any value there rather than refusing a valid spec).

The schema is necessarily looser than the loader (shapes that must agree, files that must exist,
functions that must trace are not JSON Schema's business), but what it refuses, the loader refuses.
Editors use it for completion and checking (README: `# yaml-language-server: $schema=`);
``jaxdiff schema`` prints it, and the package ships it as ``spec.schema.json``.

    python -m jaxdiff_cli.schema     # rewrites jaxdiff_cli/spec.schema.json
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxdiff_cli.checks.expectations import EINSUM_PATTERN, ENTRY_KEYS, MAX_RTOL, PRODUCER
from jaxdiff_cli.dtypes import DTYPES
from jaxdiff_cli.inputs.cases import STEP_OPTIONS
from jaxdiff_cli.inputs.spec import DEVICES, MAX_ORDER, PLOT_KEYS, SPEC_KEYS
from jaxdiff_cli.inputs.values import CONSTRUCTORS, MAX_ELEMENTS, MAX_RANK, MAX_SPLIT, VALUE_DTYPES
from jaxdiff_cli.ops import OPERATIONS, OPS

SHIPPED = Path(__file__).resolve().parent / "spec.schema.json"
# Draft-07: SchemaStore takes it without registering a newer meta-schema, and editors' YAML language
# server and ajv read it as they are. Its $ref ignores keywords beside it, so none is written there
# (spec_schema moves them out, beside an allOf).
DRAFT = "http://json-schema.org/draft-07/schema#"
# Where SchemaStore serves the schemas it holds; its catalog entry matches FILE_PATTERNS.
SCHEMA_ID = "https://json.schemastore.org/jaxdiff.json"
FILE_PATTERNS = ("*.jaxdiff.yaml", "*.jaxdiff.yml")
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/definitions/{name}"}


# A number as the loader reads it in a list: a YAML number, or text such as "nan", "-inf", "1e-3".
_NUMBER_TEXT = (
    r"^\s*[-+]?(([0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)([eE][-+]?[0-9]+)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])\s*$"
)
# A complex number as Python writes one (1+2j, -0.5j, (1-2j)), which the loader reads too.
_REAL = r"([0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)([eE][-+]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN]"
_COMPLEX_TEXT = rf"^\s*\(?\s*[-+]?(({_REAL})\s*[-+]\s*)?({_REAL})?[jJ]\s*\)?\s*$"
_NAME = r"^[^\W\d]\w*$"  # a Python name (str.isidentifier), as primals and parameters are
_WHOLE = r"^0*[1-9][0-9]*$"  # a positive whole number written as text (the command line's form)
_SHAPE: Schema = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_ELEMENTS},  # n: n elements (a list: their product)
        {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": MAX_RANK},
    ],
    "description": "a shape: a whole number or a list of them",
}
_FINITE = 1.7976931348623157e308  # the largest float64: a tolerance above it (.inf) is refused

# The options of the value constructors (every key of CONSTRUCTORS' sets).
OPTION_SCHEMAS: dict[str, Schema] = {
    "dtype": {"enum": list(VALUE_DTYPES), "description": "the value's dtype, for arguments that are not differentiated"},
    "shape": _SHAPE,
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "description": "PRNGKey(seed)"},
    "split": {
        "type": "array",
        "items": {
            "type": "array",
            "items": [
                {"type": "integer", "minimum": 1, "maximum": MAX_SPLIT},
                {"type": "integer", "minimum": 0, "maximum": MAX_SPLIT - 1},  # and below num: the loader's to say
            ],
            "additionalItems": False,
            "minItems": 2,
            "maxItems": 2,
        },
        "description": "[num, index] steps: key = split(key, num)[index], in order",
    },
    "partitionable": {"type": "boolean", "description": "false: JAX < 0.5's threefry stream"},
    "low": {**_ref("number"), "description": "uniform: the lowest value"},
    "high": {**_ref("number"), "description": "uniform: the highest value (excluded)"},
    "key": {"type": "string", "description": "the array of an .npz file"},
}

# What each constructor's own key takes.
CONSTRUCTOR_SCHEMAS: dict[str, Schema] = {
    "value": {**_ref("array"), "description": "a literal, with an explicit dtype"},
    "random": {"enum": ["normal", "uniform"], "description": "jax.random draws from PRNGKey(seed)"},
    "zeros": {**_SHAPE, "description": "zeros of this shape"},
    "ones": {**_SHAPE, "description": "ones of this shape"},
    "eye": {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_ELEMENTS},
            {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 2},
        ],
        "description": "n or [n, m]",
    },
    "linspace": {
        "type": "array",
        "items": [
            _ref("number"),
            _ref("number"),
            {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_ELEMENTS}, {"type": "string", "pattern": _NUMBER_TEXT}]},
        ],
        "additionalItems": False,
        "minItems": 3,
        "maxItems": 3,
        "description": "[start, stop, num]",
    },
    "arange": {
        "anyOf": [_ref("number"), {"type": "array", "items": _ref("number"), "minItems": 1, "maxItems": 3}],
        "description": "stop, [start, stop] or [start, stop, step]",
    },
    "file": {"type": "string", "minLength": 1, "description": ".npy, .npz or .csv, relative to the spec's folder"},
    # A part is a real value: a number, a nested list or a constructor of real values (not a pytree).
    "re": {"anyOf": [_ref("array"), _ref("real_constructor")], "description": "the real part of a complex value"},
    "im": {"anyOf": [_ref("array"), _ref("real_constructor")], "description": "the imaginary part of a complex value"},
}
OPTION_SCHEMAS["re"] = CONSTRUCTOR_SCHEMAS["re"]  # {re, im}: each names the constructor and is the other's option
OPTION_SCHEMAS["im"] = CONSTRUCTOR_SCHEMAS["im"]
# Constructors that name each other as options are one constructor of several parts ({re, im}, as the
# loader reads them): one oneOf branch, which needs any of them. Two branches would both match
# {re: .., im: ..}, and oneOf refuses a value that matches two.
PARTS = ("re", "im")
COMPLEX_DTYPES = ("complex64", "complex128")


def _constructor(name: str) -> Schema:
    options = sorted(CONSTRUCTORS[name])
    return {
        "type": "object",
        "required": [name],
        "properties": {name: CONSTRUCTOR_SCHEMAS[name], **{o: OPTION_SCHEMAS[o] for o in options}},
        "additionalProperties": False,
    }


def _parts() -> Schema:
    options = sorted(set().union(*(CONSTRUCTORS[p] for p in PARTS)) - set(PARTS))
    properties = {**{p: CONSTRUCTOR_SCHEMAS[p] for p in PARTS}, **{o: OPTION_SCHEMAS[o] for o in options}}
    if "dtype" in properties:  # {re, im} makes a complex value: the loader refuses a real dtype
        properties["dtype"] = {**properties["dtype"], "enum": [d for d in VALUE_DTYPES if d in COMPLEX_DTYPES]}
    return {
        "type": "object",
        "anyOf": [_has(p) for p in PARTS],
        "properties": properties,
        "additionalProperties": False,
        "description": "a complex value from its real and imaginary parts (a missing one is 0)",
    }


def _constructors(real_only: bool = False) -> Schema:
    branches = [_constructor(name) for name in CONSTRUCTORS if name not in PARTS]
    if not real_only:
        branches.append(_parts())
    return {"oneOf": branches}


def _step() -> Schema:
    options = {"mode": _ref("mode"), "chunk_size": _ref("chunk_size"), "order": _ref("order"), "sparse": {"type": "boolean"}}
    assert set(options) == set(STEP_OPTIONS)
    return {
        "anyOf": [
            {"enum": list(OPERATIONS)},
            {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,
                "propertyNames": {"enum": list(OPERATIONS)},
                "additionalProperties": {
                    "anyOf": [{"type": "null"}, {"type": "object", "properties": options, "additionalProperties": False}]
                },
            },
        ]
    }


def _tolerance(relative: bool) -> Schema:
    return {"type": "number", "minimum": 0, "maximum": MAX_RTOL if relative else _FINITE}


def _expect() -> Schema:
    entry_keys: dict[str, Schema] = {
        "value": _ref("expected"),
        "index": {"type": "array", "items": {"type": "integer"}, "description": "compare result[index]"},
        "einsum": {"type": "string", "pattern": EINSUM_PATTERN, "description": "compare np.einsum(einsum, result)"},
        "rtol": _tolerance(True),
        "atol": _tolerance(False),
    }
    assert set(entry_keys) == set(ENTRY_KEYS)
    entry = {"type": "object", "required": ["value"], "properties": entry_keys, "additionalProperties": False}
    names = "|".join(sorted(PRODUCER))
    return _or_null(
        {
            "type": "object",
            "properties": {
                "rtol": {**_tolerance(True), "description": f"relative tolerance of every entry (at most {MAX_RTOL:g})"},
                "atol": {**_tolerance(False), "description": "absolute tolerance of every entry"},
                "recorded": {"type": "object", "description": "jax, jaxlib, device and dtype the values were recorded with"},
            },
            "patternProperties": {rf"^({names})([.\[].*)?$": {"anyOf": [_ref("expected"), entry]}},
            "additionalProperties": False,
        }
    )


def _or_null(schema: Schema) -> Schema:
    """``schema`` or null (an empty key). Not ``"type": [..., "null"]``: ajv's strict mode refuses a
    list of types (strictTypes)."""
    return {"anyOf": [{"type": "null"}, schema]}


def _plot() -> Schema:
    keys: dict[str, Schema] = {k: {"type": "boolean"} for k in PLOT_KEYS}
    keys["file"] = {"type": "string", "description": "an image file (.png or .svg) in the spec's folder"}
    return {"anyOf": [{"type": "boolean"}, {"type": "object", "properties": keys, "additionalProperties": False}]}


def _names() -> Schema:
    return {
        "anyOf": [
            {"type": "string", "description": "names, commas between"},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
        ]
    }


# What each top-level key of the spec takes; every key of SPEC_KEYS needs an entry (a test says so).
KEY_SCHEMAS: dict[str, Callable[[], Schema]] = {
    "function": lambda: {"type": "string", "pattern": r"\S"},
    "primals": lambda: _or_null({"type": "object", "propertyNames": {"pattern": _NAME}, "additionalProperties": _ref("value")}),
    "wrt": _names,
    "argnums": lambda: {
        "anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}, "minItems": 1, "uniqueItems": True}]
    },
    "has_aux": lambda: {"type": "boolean"},
    "holomorphic": lambda: {"type": "boolean"},
    "sparse": lambda: {"type": "boolean"},
    "order": lambda: _ref("order"),
    "tangents": lambda: _ref("value"),
    "cotangents": lambda: _ref("value"),
    "dtype": lambda: {"enum": list(DTYPES)},
    "device": lambda: {"enum": list(DEVICES)},
    "mode": lambda: _ref("mode"),
    "chunk_size": lambda: _ref("chunk_size"),
    "expect": _expect,
    "plot": _plot,
    "devices": lambda: {"anyOf": [{"const": "all"}, {"type": "integer", "minimum": 1}, {"type": "string", "pattern": _WHOLE}]},
    "run": lambda: {"anyOf": [{"enum": list(OPERATIONS)}, {"type": "array", "items": _step(), "minItems": 1}]},
    "cases": lambda: {"type": "array", "items": _ref("case"), "minItems": 1},
    "name": lambda: {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
    "description": lambda: {},
}


def _key(name: str) -> Schema:
    """A top-level key's schema with the loader's description; any value for a key the table does not know yet."""
    make = KEY_SCHEMAS.get(name)
    return {**(make() if make is not None else {}), "description": SPEC_KEYS[name]}


def _has(*keys: str) -> Schema:
    """An object with these keys. Each is among the properties too, with any value: ajv's strict mode
    (strictRequired) wants a required key defined in the same schema."""
    return {"properties": dict.fromkeys(keys, True), "required": list(keys)}


def _alone(node: Any) -> Any:
    """``node`` with every ``$ref`` alone in its object: draft-07 ignores the keywords beside one (a
    description, a bound), so they stay beside an ``allOf`` that holds it."""
    if isinstance(node, list):
        return [_alone(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _alone(value) for key, value in node.items()}
    if "$ref" in node and len(node) > 1:
        ref = node.pop("$ref")
        return {"allOf": [{"$ref": ref}], **node}
    return node


def spec_schema() -> Schema:
    """The JSON Schema (draft-07) of a jaxdiff spec."""
    return dict(_alone(_spec_schema()))


def _spec_schema() -> Schema:
    keys = {name: _key(name) for name in SPEC_KEYS}
    case_keys = {name: schema for name, schema in keys.items() if name != "cases"}
    both = {"not": _has("wrt", "argnums")}  # the loader takes one of them
    modes = sorted({m for op in OPS.values() for m in op.modes})
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "jaxdiff spec",
        "description": "A spec for jaxdiff: a function, its primals and what to compute and check (README: The spec).",
        "type": "object",
        "properties": keys,
        "additionalProperties": False,
        **both,
        "definitions": {
            "number": {
                "anyOf": [
                    {"type": "number"},
                    {"type": "string", "pattern": _NUMBER_TEXT},
                    {"type": "string", "pattern": _COMPLEX_TEXT, "description": "a complex number: 1+2j"},
                ]
            },
            "array": {
                "anyOf": [_ref("number"), {"type": "boolean"}, {"type": "array", "items": _ref("array")}],
                "description": "a number or a nested list of numbers (or of true/false)",
            },
            "constructor": _constructors(),
            "real_constructor": _constructors(real_only=True),
            "value": {
                "anyOf": [
                    _ref("number"),
                    {"type": "boolean"},
                    _ref("constructor"),
                    {
                        "type": "object",
                        "minProperties": 1,
                        "not": {"anyOf": [_has(name) for name in CONSTRUCTORS]},
                        "additionalProperties": _ref("value"),
                        "description": "a pytree: a mapping of values",
                    },
                    {"type": "array", "items": _ref("value"), "description": "a nested list, or a pytree list"},
                ],
                "description": "a number, a nested list, a constructor (random, zeros, ones, eye, linspace, arange, file,"
                " value) or a pytree of them",
            },
            "expected": {"anyOf": [_ref("array"), _ref("constructor")]},
            "mode": {"enum": modes, "description": SPEC_KEYS["mode"]},
            "chunk_size": {
                "anyOf": [{"type": "integer", "minimum": 1}, {"const": "auto"}, {"type": "string", "pattern": _WHOLE}],
                "description": SPEC_KEYS["chunk_size"],
            },
            "order": {"type": "integer", "minimum": 1, "maximum": MAX_ORDER, "description": SPEC_KEYS["order"]},
            "case": {"type": "object", "properties": case_keys, "additionalProperties": False, **both},
        },
    }


def schema_text() -> str:
    """The schema as the shipped file holds it (and ``jaxdiff schema`` prints it)."""
    return json.dumps(spec_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    SHIPPED.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SHIPPED}")
