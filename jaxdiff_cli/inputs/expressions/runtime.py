"""The run time of expressions: the namespace a checked tree is evaluated in, and bounded work.

Each table entry (tables.py) resolves to a plain function calling JAX's: the value an expression
gets carries none of the original's attributes. Functions whose keyword arguments reach files,
callbacks or unbounded trace-time work are offered through wrappers with their safe arguments only.

Work is bounded while tracing, without running out of memory first:

- ``+``, ``*``, ``**`` and ``%`` check their Python operands (int bits, sequence lengths, no ``%``
  string formatting), and every lambda call and comprehension step is charged for the size of its
  body against :data:`MAX_WORK`;
- a table function's call is charged for the arrays and functions it takes and returns, and may
  return at most :data:`MAX_EMITTED` arrays (refused before it runs where its arguments tell, as for
  ``jnp.split(x, 10**5)``). The engine then bounds the traced program itself (engine/problem.py).

JAX is imported when an expression is built, not when this module is.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NoReturn

from jaxdiff_cli.errors import FunctionError, SpecError
from jaxdiff_cli.inputs.expressions.checker import (
    MAX_EMITTED,
    MAX_INT_BITS,
    MAX_NESTED_TRANSFORMS,
    MAX_SEQUENCE,
    MAX_WORK,
    Checked,
)
from jaxdiff_cli.inputs.expressions.tables import DOTTED, FLAT, JNP_DTYPES, TRANSFORMS

# --------------------------------------------------------------------------- build


def build(checked: Checked, where: str) -> Callable[..., Any]:
    """The callable of a checked expression. Nothing of the user's text ran before the check passed."""
    scope: dict[str, Any] = {
        # No builtins but __import__: C code (jaxlib) that imports while the expression's frame is
        # the current one looks it up there. No name in the checked tree can reach it.
        "__builtins__": {"__import__": __import__},
        **_GUARDS,
        **{name: resolve(module, attr, where) for name, (module, attr) in checked.used.items()},
    }
    with warnings.catch_warnings():  # "str indices must be integers": the run says so, once, as an error
        warnings.simplefilter("ignore", SyntaxWarning)
        code = compile(checked.tree, "<jaxdiff expression>", "eval")
    lam = eval(code, scope)  # noqa: S307 - the tree passed the checker and names only table entries
    return _entry(lam, where)


def _entry(lam: Callable[..., Any], where: str) -> Callable[..., Any]:
    """The function the engine calls: each call gets a fresh work budget (the lambda charges it)."""

    @functools.wraps(lam)
    def call(*args: Any, **kwargs: Any) -> Any:
        token = _BUDGET.set(_Budget(where))
        try:
            return lam(*args, **kwargs)
        finally:
            _BUDGET.reset(token)

    return call


# --------------------------------------------------------------------------- the namespace


class DTypeName(str):
    """A dtype name that converts when called: ``jnp.float32(2.0)`` is an array, ``x.astype(jnp.float32)`` works.

    A string, so no dtype object, NumPy scalar type or finfo is ever a value.
    """

    def __call__(self, value: Any) -> Any:
        import jax.numpy as jnp

        return jnp.asarray(value, dtype=str(self))


def resolve(module: str, attr: str, where: str = "function") -> Any:
    """The object a table entry names, as the expression sees it. Imports JAX."""
    if module == "builtins":
        return _BUILTINS[attr]
    if module == "python":
        return plain(_FLAT_WRAPPERS[attr], attr)
    if module == "jax.numpy" and attr in JNP_DTYPES:
        return DTypeName("bool" if attr == "bool_" else attr)
    wrapped = _WRAPPERS.get((module, attr))
    if wrapped is not None:
        return plain(wrapped, attr)
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):  # jax.scipy.stats's "norm.logpdf": the function of a distribution
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise FunctionError(f"{module}.{attr} is not in this version of JAX", where=where) from None
    if obj is None or isinstance(obj, (int, float)):  # pi, e, inf, nan, newaxis
        return obj
    return plain(obj, attr)


def plain(obj: Callable[..., Any], name: str, transformed: bool = False) -> Callable[..., Any]:
    """A plain function calling ``obj``: the value an expression gets carries none of ``obj``'s
    attributes (a custom_jvp's defjvp, a ufunc's reduce). The functions it returns are plain too:
    jax.jit(f) without .lower and .trace, the pullback of jax.vjp without its jaxpr and tree.

    Each call is charged to the work budget: JAX calls table functions back (jax.tree.map(jnp.sin,
    ...) per leaf, lax.switch per branch), which no lambda body counts. A function a transformation
    returns counts how deeply such calls nest: nested jax.grad traces in time exponential in depth.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        # What the call takes and will emit is charged before it runs (lax.switch's branches, einsum's
        # operands, jnp.split's pieces): one call must not buy a program of 10^5 pieces for one unit.
        predicted = _g_emits(name, args, kwargs) if getattr(obj, "__module__", None) == "jax.numpy" else 0
        _g_tick(1 + _arrays((args, kwargs)) + predicted)
        depth = _TRANSFORM_DEPTH.get() + transformed
        if depth > MAX_NESTED_TRANSFORMS:
            raise FunctionError(
                f"transformations nested more than {MAX_NESTED_TRANSFORMS} deep (jax.grad of jax.grad of ...)",
                where=_where(),
                hint="higher derivatives of one variable: jaxdiff derivative --order K",
            )
        token = _TRANSFORM_DEPTH.set(depth)
        try:
            out = obj(*args, **kwargs)
        finally:
            _TRANSFORM_DEPTH.reset(token)
        emitted = _arrays(out)
        if emitted > 1 and not predicted:  # a list or tuple of arrays: charged (and capped) now it is known
            _g_emitted(name, emitted)
        if callable(out):
            return plain(out, name, transformed or name in TRANSFORMS)
        if type(out) is tuple:  # jax.vjp, jax.linearize: (value, function)
            return tuple(plain(v, name, transformed or name in TRANSFORMS) if callable(v) else v for v in out)
        return out

    call.__name__ = call.__qualname__ = name
    call.__doc__ = None
    return call


# Functions whose keyword arguments reach files, callbacks or unbounded trace-time work are
# offered through these, with only their safe arguments.


def _jit(fun: Callable[..., Any], *, static_argnums: Any = None, static_argnames: Any = None) -> Any:
    import jax

    # Not compiler_options (xla_dump_to writes files), donate, shardings or devices.
    return jax.jit(fun, static_argnums=static_argnums, static_argnames=static_argnames)


def _checkpoint(fun: Callable[..., Any], *, prevent_cse: bool = True, static_argnums: Any = ()) -> Any:
    import jax

    # Not policy: it is called with JAX's primitives and their parameters.
    return jax.checkpoint(fun, prevent_cse=prevent_cse, static_argnums=static_argnums)


def _scan(f: Callable[..., Any], init: Any, xs: Any = None, length: Any = None, reverse: bool = False) -> Any:
    from jax import lax

    # Not unroll: unroll=True copies the body `length` times when lowering.
    return lax.scan(f, init, xs, length, reverse)


def _fori_loop(lower: Any, upper: Any, body_fun: Callable[..., Any], init_val: Any) -> Any:
    from jax import lax

    return lax.fori_loop(lower, upper, body_fun, init_val)  # not unroll (see _scan)


def _einsum(
    subscripts: Any, *operands: Any, optimize: Any = "auto", precision: Any = None, preferred_element_type: Any = None
) -> Any:
    import jax.numpy as jnp

    if len(operands) > MAX_EMITTED:  # finding a contraction order is quadratic or worse in their number
        raise SpecError(
            f"einsum of {len(operands):,} operands; at most {MAX_EMITTED:,}",
            where=_where(),
            hint="stack the operands into one array and contract that",
        )
    if optimize not in ("auto", "greedy", True, False):
        # 'optimal' searches every contraction order: exponential in the number of operands.
        raise FunctionError(f"einsum(optimize={optimize!r}) is not available", where=_where(), hint="auto, greedy, True, False")
    return jnp.einsum(
        subscripts, *operands, optimize=optimize, precision=precision, preferred_element_type=preferred_element_type
    )


def _polyval(p: Any, x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.polyval(p, x)  # not unroll: unroll=True copies the loop's body once per coefficient when lowering


def _sum(a: Any, *args: Any, **kwargs: Any) -> Any:
    import jax.numpy as jnp

    # sum(jnp.sum(v**2) for v in params.values()): Python's sum of a list, tuple or generator (which
    # jnp.sum refuses), jnp.sum of anything else.
    if isinstance(a, (list, tuple, Iterator)):
        total = args[0] if args else kwargs.get("start", 0)
        for item in _g_iter(a, 1):
            total = _g_add(total, item)
        return total
    return jnp.sum(a, *args, **kwargs)


def _diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Any:
    import jax.numpy as jnp

    if not isinstance(n, int) or n > 64:  # jnp.diff loops n times while tracing
        raise FunctionError(f"jnp.diff(n={n!r}): n is a whole number up to 64", where=_where())
    return jnp.diff(a, n=n, axis=axis, prepend=prepend, append=append)


_WRAPPERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("jax", "jit"): _jit,
    ("jax", "checkpoint"): _checkpoint,
    ("jax", "remat"): _checkpoint,
    ("jax.lax", "scan"): _scan,
    ("jax.lax", "fori_loop"): _fori_loop,
    ("jax.numpy", "einsum"): _einsum,
    ("jax.numpy", "diff"): _diff,
    ("jax.numpy", "polyval"): _polyval,
}
_FLAT_WRAPPERS: dict[str, Callable[..., Any]] = {"sum": _sum}  # bare names that differ from jnp.<name>
for _key, _fn in _WRAPPERS.items():
    _fn.__name__ = _fn.__qualname__ = _key[1]


# --------------------------------------------------------------------------- bounded work at run time


class _Budget:
    """Syntax nodes one evaluation may still evaluate; ``where`` names the spec's function key."""

    __slots__ = ("left", "where")

    def __init__(self, where: str | None) -> None:
        self.left = MAX_WORK
        self.where = where


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("jaxdiff_budget", default=None)
_TRANSFORM_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("jaxdiff_transform_depth", default=0)
_SHARED = _Budget(None)  # outside any call (never, in practice) one shared budget applies: it still runs out


def _budget() -> _Budget:
    return _BUDGET.get() or _SHARED


def _where() -> str | None:
    return _budget().where


def _g_tick(work: int) -> bool:
    budget = _budget()
    budget.left -= work
    if budget.left < 0:
        raise FunctionError(
            f"the expression evaluated more than {MAX_WORK} syntax nodes (lambda calls and comprehension steps"
            " count their bodies)",
            where=budget.where,
            hint="vectorise with jnp, or loop with lax.fori_loop / lax.scan, which trace their body once",
        )
    return True


def _g_iter(iterable: Any, work: int) -> Iterator[Any]:
    for item in iterable:
        _g_tick(work)
        yield item


def _too_long(n: int) -> NoReturn:
    raise FunctionError(f"a sequence of {n} items (the limit is {MAX_SEQUENCE})", where=_where(), hint="use jnp arrays")


def _is_int(v: Any) -> bool:
    return isinstance(v, int)  # Python ints only: NumPy and JAX integers have a fixed width


def _is_seq(v: Any) -> bool:
    return isinstance(v, (list, tuple, str))


def _bits(n: int) -> NoReturn:
    raise FunctionError(
        f"an integer of about {n} bits (the limit is {MAX_INT_BITS})", where=_where(), hint="use floats or smaller numbers"
    )


def _items(seq: Any, seen: dict[int, int] | None = None) -> int:
    """Items of a sequence counting those of the lists and tuples inside it: ``[[0]*100]*100`` holds
    10,000 though each list is 100 long (the inner one shared: counted once per id, not walked again)."""
    seen = {} if seen is None else seen
    if isinstance(seq, str) or not isinstance(seq, (list, tuple)):
        return 1 if not isinstance(seq, str) else max(len(seq), 1)
    if id(seq) not in seen:
        seen[id(seq)] = sum(_items(v, seen) if isinstance(v, (list, tuple)) else 1 for v in seq) or 1
    return seen[id(seq)]


def _g_add(a: Any, b: Any) -> Any:
    if _is_seq(a) and _is_seq(b) and _items(a) + _items(b) > MAX_SEQUENCE:
        _too_long(_items(a) + _items(b))
    return a + b


def _g_mul(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b):
        if a.bit_length() + b.bit_length() > MAX_INT_BITS:
            _bits(a.bit_length() + b.bit_length())
    elif (_is_seq(a) and _is_int(b)) or (_is_int(a) and _is_seq(b)):
        seq, n = (a, b) if _is_seq(a) else (b, a)
        if _items(seq) * max(n, 0) > MAX_SEQUENCE:
            _too_long(_items(seq) * n)
    return a * b


def _g_pow(a: Any, b: Any) -> Any:
    if _is_int(a) and _is_int(b) and b > 0 and abs(a) > 1:
        if b.bit_length() > 32 or math.log2(abs(a)) * b + 1 > MAX_INT_BITS:
            _bits(math.floor(math.log2(abs(a)) * b) + 1)
    return a**b


def _g_mod(a: Any, b: Any) -> Any:
    if isinstance(a, (str, bytes)):
        raise FunctionError("'%' formatting of strings is not allowed", where=_where(), hint="strings are constants here")
    return a % b


_SPLITS = frozenset(("split", "array_split", "hsplit", "vsplit", "dsplit"))
_ONE_PER_ARGUMENT = frozenset(("meshgrid", "broadcast_arrays", "atleast_1d", "atleast_2d", "atleast_3d"))


def _arrays(obj: Any, seen: set[int] | None = None) -> int:
    """Leaves of a structure of lists, tuples and dicts (each array, function or number is one): what
    a call takes (lax.switch's branches, einsum's operands) or returns (jnp.split's pieces). The
    structure was built by charged work, so walking it is bounded; a shared one is walked once."""
    if not isinstance(obj, (list, tuple, dict)):
        return 1
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 1
    seen.add(id(obj))
    items = obj.values() if isinstance(obj, dict) else obj
    return sum(_arrays(item, seen) for item in items)


def _g_emits(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> int:
    """The arrays a jnp function (jnp.split, not jax.random.split) will return, known from its
    arguments before it runs; 0 where they are not (the call is then charged once it returned)."""
    if name in _SPLITS:
        sections = args[1] if len(args) > 1 else kwargs.get("indices_or_sections", 1)
        count = (len(sections) + 1) if isinstance(sections, (list, tuple)) else sections
    elif name == "unstack" and args:
        axis = kwargs.get("axis", args[1] if len(args) > 1 else 0)
        shape = getattr(args[0], "shape", ())
        count = shape[axis] if isinstance(axis, int) and -len(shape) <= axis < len(shape) else 0
    elif name in _ONE_PER_ARGUMENT:
        count = len(args)
    else:
        return 0
    count = count if isinstance(count, int) and not isinstance(count, bool) else 0
    _g_emitted(name, count)
    return max(count, 0)


def _g_emitted(name: str, count: int) -> None:
    if count > MAX_EMITTED:
        raise SpecError(
            f"{name}(...) returns {count:,} arrays; one call may return at most {MAX_EMITTED:,}",
            where=_where(),
            hint="keep one array and index or reshape it; each returned array is a piece of the traced program",
        )
    if count > 0:
        _g_tick(count)


def _range(*args: Any) -> range:
    r = range(*args)
    if len(r) > MAX_SEQUENCE:
        _too_long(len(r))
    return r


def _list(iterable: Iterable[Any] = ()) -> list[Any]:
    return list(_g_iter(iterable, 1))


def _tuple(iterable: Iterable[Any] = ()) -> tuple[Any, ...]:
    return tuple(_g_iter(iterable, 1))


def _dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    if not args:
        return dict(**kwargs)
    (source,) = args
    if isinstance(source, dict):
        _g_tick(len(source))
        return dict(source, **kwargs)
    return dict(_g_iter(source, 1), **kwargs)


def _zip(*iterables: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
    return zip(*(_g_iter(i, 1) for i in iterables), **kwargs)


def _enumerate(iterable: Any, start: int = 0) -> Iterator[tuple[int, Any]]:
    return enumerate(_g_iter(iterable, 1), start)


def _sorted(iterable: Iterable[Any] = (), *, key: Callable[..., Any] | None = None, reverse: bool = False) -> list[Any]:
    # sorted(params.keys()): each item is charged as it is read (a key function, a lambda, charges its own calls).
    return sorted(_g_iter(iterable, 1), key=key, reverse=reverse)


def _len(obj: Any) -> int:
    return len(obj)


_BUILTINS: dict[str, Any] = {
    "len": _len,
    "range": _range,
    "zip": _zip,
    "enumerate": _enumerate,
    "tuple": _tuple,
    "list": _list,
    "dict": _dict,
    "sorted": _sorted,
    "float": float,
    "int": int,
}
for _key2, _fn2 in _BUILTINS.items():
    if _key2 not in ("float", "int"):
        _fn2.__name__ = _fn2.__qualname__ = _key2
_GUARDS: dict[str, Any] = {
    "_g_tick": _g_tick,
    "_g_iter": _g_iter,
    "_g_add": _g_add,
    "_g_mul": _g_mul,
    "_g_pow": _g_pow,
    "_g_mod": _g_mod,
}


def namespace() -> dict[str, Any]:
    """Every table entry as an expression sees it, by its table key (the walk test's roots). Imports JAX."""
    out: dict[str, Any] = {key: resolve(*target) for key, target in FLAT.items()}
    out.update({key: resolve(*target) for key, target in DOTTED.items()})
    return out
