"""The public names of the installed JAX that expressions are decided for, and the rule that proposes each decision.

``python -m tests.inputs.jax_names`` prints, for review, every public name of the surveyed namespaces
that ``tables.py`` does not classify yet, with the reason the rule proposes (or ``ALLOW`` where the
rule finds a function of arrays). A reviewer copies the lines into ``tables.REFUSED`` or a family's
names; ``tests/inputs/test_expression_names.py`` fails until every public name is classified, so a
newer JAX shows up as a failing test that lists its new names.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

# The namespaces expressions draw from; every distribution of jax.scipy.stats is one too.
SURVEYED = (
    "jax.numpy",
    "jax.numpy.linalg",
    "jax.numpy.fft",
    "jax.scipy.special",
    "jax.scipy.stats",
    "jax.scipy.linalg",
    "jax.scipy.signal",
    "jax.nn",
    "jax.lax",
)


def namespaces() -> list[str]:
    """SURVEYED, with each distribution module of jax.scipy.stats (jax.scipy.stats.norm, ...)."""
    import jax.scipy.stats as stats

    dists = [
        f"jax.scipy.stats.{n}" for n in dir(stats) if not n.startswith("_") and isinstance(getattr(stats, n), types.ModuleType)
    ]
    return [*SURVEYED, *sorted(dists)]


def public_names() -> dict[str, Any]:
    """Every public name of the surveyed namespaces, by its full path (jax.numpy.sin), with its object.
    The surveyed namespaces themselves (jax.numpy.linalg, jax.scipy.stats.norm) are not names."""
    out: dict[str, Any] = {}
    surveyed = namespaces()
    for module in surveyed:
        mod = importlib.import_module(module)
        for name in dir(mod):
            if not name.startswith("_") and f"{module}.{name}" not in surveyed:
                out[f"{module}.{name}"] = getattr(mod, name)
    return out


def proposed(path: str, obj: Any) -> str | None:
    """The rule's proposal for one name: the key of its reason in tables.REASONS, or None (a function
    of arrays: allow, once the reachability walk has a call of it)."""
    from jaxdiff_cli.inputs.expressions import tables

    name = path.rsplit(".", 1)[1]
    if name in tables.REASON_BY_NAME:
        return tables.REASON_BY_NAME[name]
    if isinstance(obj, types.ModuleType):
        return "module"
    if type(obj).__name__ == "Primitive":
        return "primitive"
    if isinstance(obj, type):  # jnp.float32 and friends are offered as dtype names (strings), not as the type
        return None if name in tables.JNP_DTYPES and path.startswith("jax.numpy.") else "type"
    if obj is None or isinstance(obj, (int, float)):  # pi, e, inf, nan, euler_gamma, newaxis: numbers
        return None
    if not callable(obj):
        return "index object"
    return None


def main() -> None:
    from jaxdiff_cli.inputs.expressions import tables

    allowed = tables.allowed_paths()
    for path, obj in sorted(public_names().items()):
        if path in allowed or path in tables.REFUSED:
            continue
        reason = proposed(path, obj)
        # A function of arrays the walk has no call of yet: refused until it has one (then: a family's names).
        print(f'    "{path}": "{reason or "not reviewed"}",')


if __name__ == "__main__":
    main()
