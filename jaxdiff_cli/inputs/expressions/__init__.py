"""The expression language: lambdas and bare expressions from specs, as an allowlist.

Specs arrive in pull requests, so an expression is data. It is parsed and checked once, before
anything of it runs, and every name in it must resolve, at check time, to:

- a lambda parameter or a comprehension variable;
- an entry of the tables: the math names, constants and builtins (``sin``, ``pi``, ``len``),
  or a dotted path rooted at ``jnp``/``jax``/``lax`` that names one allowed function as a whole
  (``jnp.linalg.norm``, ``jax.nn.relu``, ``lax.fori_loop``, ``jax.grad``).

Module objects are never values: ``jnp`` alone, ``jax.nn`` or ``(lambda j: j)(jax)`` is refused.
Attributes of values are limited to :data:`VALUE_ATTRS` (array attributes and methods, ``.at[...]``
updates, dict views): nothing that returns dtype objects, NumPy scalars, tree definitions or
lowered/compiled objects, and nothing that reaches files. ``tests/inputs/test_expressions.py`` walks
every object reachable through the tables and proves it.

Work is bounded before and while tracing, without running out of memory first: literal sizes and
text length and depth at check time, Python operations, calls and comprehension steps against a
work budget at run time. Three rooms:

- ``tables.py``: the data (allowed names, families, reasons, the README's rendering);
- ``checker.py``: the syntax tree, refused or rewritten, and the limits;
- ``runtime.py``: the namespace a checked tree runs in, the guards and the work budget.

Checking imports no JAX; :func:`compile` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxdiff_cli.inputs.expressions.checker import MAX_EMITTED, MAX_WORK, Checked, check
from jaxdiff_cli.inputs.expressions.runtime import build, namespace, plain, resolve
from jaxdiff_cli.inputs.expressions.tables import DOTTED_NAMES, FLAT_NAMES, VALUE_ATTRS, readme_tables, table_sizes

__all__ = [
    "DOTTED_NAMES",
    "FLAT_NAMES",
    "MAX_EMITTED",
    "MAX_WORK",
    "VALUE_ATTRS",
    "Checked",
    "check",
    "compile",
    "namespace",
    "plain",
    "readme_tables",
    "resolve",
    "table_sizes",
]


def compile(checked: Checked, where: str) -> Callable[..., Any]:
    """The callable of a checked expression; each call gets a fresh work budget. Imports JAX."""
    return build(checked, where)
