"""Primals to parameters, by name: the order in which primals are given never changes a result.

Also which arguments are differentiated (wrt, argnums against the function's signature, or its
first parameter), and dtypes that say what is computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxdiff_cli.dtypes import is_complex, needs_x64
from jaxdiff_cli.errors import SpecError, suggest
from jaxdiff_cli.inputs.files import CLI
from jaxdiff_cli.inputs.functions import LoadedFunction
from jaxdiff_cli.inputs.spec import Spec


def bind_primals(spec: Spec, loaded: LoadedFunction) -> tuple[str, ...]:
    """The primals' names in the function's parameter order: each binds to the parameter of its name.

    A primal that is no parameter, or a parameter without a primal or a default, is bad input
    (exit 3): the order in which primals are given never matters.
    """
    params = loaded.params
    for name in spec.primals:
        if name in params.names or params.var_keyword:
            continue
        if loaded.kind == "expression":
            used = ", ".join(params.names) or "none of the primals"
            message = f"primal {name!r} is not used by the expression (it uses {used})"
        else:
            message = f"primal {name!r} is not a parameter of the function, which takes ({', '.join(params.names)})"
            if params.var_positional:
                message += f"; primals bind by name and cannot fill *{params.var_positional}"
        raise SpecError(message, where=spec.primal_where(name), hint=suggest(name, params.names))
    missing = [n for n in params.names if n in params.required and n not in spec.primals]
    if missing:
        given = ", ".join(spec.primals)
        raise SpecError(
            f"the function's parameter {missing[0]!r} has no primal (primals given: {given})",
            where=spec.where("--primal" if spec.source == CLI else "primals"),
            hint=suggest(missing[0], list(spec.primals)) or f"add primals.{missing[0]} or --primal {missing[0]}=VALUE",
        )
    return tuple(n for n in params.names if n in spec.primals) + tuple(n for n in spec.primals if n not in params.names)


def resolve_wrt(spec: Spec, loaded: LoadedFunction, names: tuple[str, ...]) -> tuple[str, ...]:
    """The arguments to differentiate: as named; or argnums, counted in the function's signature as
    JAX counts them; or the function's first parameter."""
    if spec.wrt:
        return spec.wrt
    positional = [n for n in loaded.params.positional] if loaded.kind != "expression" else list(names)
    if spec.argnums is None:
        return names[:1]
    out = []
    for n in spec.argnums:
        if not -len(positional) <= n < len(positional):
            raise SpecError(
                f"argument {n} is out of range: the function takes {len(positional)} positional parameters"
                f" ({', '.join(positional)})",
                where=spec.where("argnums"),
            )
        name = positional[n]
        if name not in spec.primals:
            raise SpecError(f"argument {n} is {name!r}, which has no primal", where=spec.where("argnums"))
        out.append(name)
    if len(set(out)) != len(out):
        raise SpecError("names an argument twice", where=spec.where("argnums"))
    return tuple(out)


def fit_dtypes(value: Any, spec: Spec, name: str, *, differentiated: bool) -> Any:
    """Refuse what JAX would silently change: dtypes never lie about what was computed.

    A differentiated argument is computed in the spec's float (or complex) dtype, so a leaf of another
    dtype is refused. Without x64 (float32 and complex64 specs) JAX holds no 64-bit values: an
    explicit float64 or complex128 is refused, and 64-bit integers (from a file) become int32 only when
    every value fits.
    """
    return _fit(value, spec, spec.primal_where(name), differentiated)


def _set_dtype(spec: Spec, dtype: str) -> str:
    """How to ask for a dtype where this spec came from: the option, or the spec's key."""
    return f"--dtype {dtype}" if spec.source == CLI else f"dtype: {dtype}"


def _fit(value: Any, spec: Spec, here: str, differentiated: bool) -> Any:
    if isinstance(value, dict):
        return {k: _fit(v, spec, f"{here}.{k}", differentiated) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_fit(v, spec, f"{here}[{i}]", differentiated) for i, v in enumerate(value))
    arr = np.asarray(value)
    dtype = arr.dtype
    if differentiated and dtype.kind not in "fc":
        raise SpecError(
            f"{dtype} values cannot be differentiated",
            where=here,
            hint="derivatives need floats: write 3.0, or give the constructor dtype: " + spec.dtype,
        )
    if differentiated and dtype != np.dtype(spec.dtype):
        raise SpecError(
            f"a {dtype} value in a {spec.dtype} run: differentiated arguments are computed in the spec's dtype",
            where=here,
            hint=f"drop its dtype:, or set {_set_dtype(spec, str(dtype))} for the whole run",
        )
    if spec.dtype == "float32" and dtype.itemsize == 8 and dtype.kind == "f":
        raise SpecError(
            "a float64 value in a float32 run, where JAX computes in 32 bits", where=here, hint=_set_dtype(spec, "float64")
        )
    wide = "complex128" if is_complex(spec.dtype) or dtype.kind == "c" else "float64"  # the 64-bit run to suggest
    wide_value = (dtype.kind == "c" and dtype.itemsize == 16) or (dtype.kind == "f" and dtype.itemsize == 8)
    if not needs_x64(spec.dtype) and wide_value:
        # JAX without x64 would silently compute this in complex64 (or float32).
        raise SpecError(
            f"a {dtype} value in a {spec.dtype} run, where JAX computes in 32-bit parts", where=here, hint=_set_dtype(spec, wide)
        )
    if not needs_x64(spec.dtype) and dtype.itemsize == 8 and dtype.kind in "iu":
        info = np.iinfo(np.int32)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise SpecError(
                f"64-bit integers that int32 cannot hold, in a {spec.dtype} run", where=here, hint=_set_dtype(spec, wide)
            )
        return arr.astype(np.int32)
    return arr


def check_sizes(values: dict[str, Any], spec: Spec) -> None:
    """All the primals together: at most MAX_LEAVES arrays and MAX_ELEMENTS entries (each constructor
    is bounded alone, but a spec could name many: twenty zeros of 2**28 are 20 GB)."""
    from jaxdiff_cli.inputs.values import MAX_ELEMENTS, MAX_LEAVES

    leaves: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
        else:
            leaves.append(v)

    for v in values.values():
        walk(v)
    where = spec.where("--primal" if spec.source == CLI else "primals")
    if len(leaves) > MAX_LEAVES:
        raise SpecError(f"the primals hold {len(leaves):,} arrays; at most {MAX_LEAVES:,}", where=where)
    total = sum(int(np.asarray(leaf).size) for leaf in leaves)
    if total > MAX_ELEMENTS:
        raise SpecError(
            f"the primals hold {total:,} entries; at most {MAX_ELEMENTS:,} in all", where=where, hint="use fewer or smaller"
        )
