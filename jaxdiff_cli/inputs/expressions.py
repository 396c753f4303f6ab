"""The expression language: lambdas and bare expressions from specs, as an allowlist.

Specs arrive in pull requests, so an expression is data. It is parsed and checked before anything
of it runs, and every name in it must resolve, at check time, to:

- a lambda parameter or a comprehension variable;
- an entry of the tables below: the math names, constants and builtins (``sin``, ``pi``, ``len``),
  or a dotted path rooted at ``jnp``/``jax``/``lax`` that names one allowed function as a whole
  (``jnp.linalg.norm``, ``jax.nn.relu``, ``lax.fori_loop``, ``jax.grad``).

Module objects are never values: ``jnp`` alone, ``jax.nn`` or ``(lambda j: j)(jax)`` is refused.
The checked tree is rewritten so that each allowed path becomes one flat, underscore-prefixed name
bound to its function (``jnp.linalg.norm`` -> ``_t_jnp__linalg__norm``); users cannot write such
names, and ``jax`` itself is never in the namespace. Attributes of values are limited to
:data:`VALUE_ATTRS` (array attributes and methods, ``.at[...]`` updates, dict views): nothing that
returns dtype objects, NumPy scalars, tree definitions or lowered/compiled objects, and nothing
that reaches files. ``tests/inputs/test_expressions.py`` walks every object reachable through these
tables and proves it.

Work is bounded before and while tracing, without running out of memory first:

- literal integer arithmetic (``((9**999)**999)**999``), literal sequence repetition
  (``[0]*10**10``) and literal ranges are sized symbolically and refused up front;
- at run time, ``+``, ``*``, ``**`` and ``%`` check their Python operands (int bits, sequence
  lengths, no ``%`` string formatting), and every lambda call and comprehension step is charged
  for the size of its body against :data:`MAX_WORK`;
- text length and nesting depth are capped;
- a table function's call is charged for the arrays and functions it takes and returns, and may
  return at most :data:`MAX_EMITTED` arrays (refused before it runs where its arguments tell, as for
  ``jnp.split(x, 10**5)``). The engine then bounds the traced program itself (engine/problem.py).

Tables are data (names only): this module imports JAX only when an expression is compiled.
"""

from __future__ import annotations

import ast
import contextvars
import difflib
import functools
import importlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from jaxdiff_cli.errors import FunctionError, SpecError

# --------------------------------------------------------------------------- the tables

# Bare names mapped onto jax.numpy (Python's own sum/min/max/abs/round are jnp's here).
MATH_NAMES = (
    "sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh "
    "exp exp2 expm1 log log2 log10 log1p sqrt cbrt square power abs absolute sign floor ceil "
    "round clip maximum minimum where dot vdot matmul outer inner tensordot einsum sum prod mean "
    "max min norm logaddexp hypot reciprocal sinc deg2rad rad2deg"
).split()
CONSTANTS = ("pi", "e", "inf", "nan")
# Builtins, as bounded wrappers (float and int are the types themselves: they also serve as dtypes).
BUILTIN_NAMES = ("len", "range", "zip", "enumerate", "tuple", "list", "dict", "float", "int")

# jnp.<name> (also jax.numpy.<name>): numerical functions only. Left out on purpose: file I/O
# (save, load, fromfile, ...), dtype and machine objects (dtype, finfo, iinfo, result_type), index
# helpers that are objects (r_, s_, ix_, mgrid), data-dependent shapes (nonzero, unique, argwhere),
# and functions with a trace-time loop steered by an argument (polyval's unroll, vectorize).
JNP = (
    "abs absolute acos acosh add all allclose amax amin angle any append arange arccos arccosh arcsin "
    "arcsinh arctan arctan2 arctanh argmax argmin argsort around array array_equal asarray asin asinh astype atan "
    "atan2 atanh atleast_1d atleast_2d atleast_3d average broadcast_arrays broadcast_to cbrt ceil clip "
    "column_stack concatenate conj conjugate convolve copysign corrcoef correlate cos cosh count_nonzero cov cross "
    "cumprod cumsum deg2rad degrees diag diagflat diagonal diff divide dot dsplit dstack einsum equal exp exp2 "
    "expand_dims expm1 eye fabs flip fliplr flipud float_power floor floor_divide fmax fmin fmod full full_like "
    "gradient greater greater_equal heaviside hsplit hstack hypot i0 identity imag inner interp isclose isfinite "
    "isinf isnan kron ldexp less less_equal linspace log log10 log1p log2 logaddexp logaddexp2 logical_and "
    "logical_not logical_or logical_xor logspace matmul max maximum mean median meshgrid min minimum mod moveaxis "
    "multiply nan_to_num nanmax nanmean nanmin nanprod nanstd nansum nanvar ndim negative nextafter not_equal ones "
    "ones_like outer pad percentile piecewise positive pow power prod ptp quantile rad2deg radians ravel real "
    "reciprocal remainder repeat reshape rint roll rot90 round select shape sign signbit sin sinc sinh size sort "
    "split sqrt square squeeze stack std subtract sum swapaxes take take_along_axis tan tanh tensordot tile trace "
    "transpose trapezoid tri tril triu true_divide trunc unstack var vdot vecdot vsplit vstack where zeros zeros_like"
).split()
# jnp.<name> constants. The dtype names are strings that also convert (jnp.float32(2) is an array):
# the scalar type objects would hand out np.dtype objects, and from them NumPy scalars.
JNP_CONSTANTS = ("pi", "e", "inf", "nan", "euler_gamma", "newaxis")
JNP_DTYPES = (
    "float16 bfloat16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool_ complex64 complex128"
).split()
JNP_LINALG = (
    "cholesky cond det eigh eigvalsh inv lstsq matrix_norm matrix_power multi_dot norm pinv qr slogdet solve svd "
    "svdvals tensorsolve trace vector_norm"
).split()
JNP_FFT = "fft ifft rfft irfft fft2 ifft2 rfft2 irfft2 fftn ifftn rfftn irfftn fftshift ifftshift fftfreq rfftfreq".split()
# lax.<name> (also jax.lax.<name>): control flow and numerical primitives; no collectives, no
# callbacks, no sharding, no custom_root / custom_linear_solve.
LAX = (
    "fori_loop scan while_loop cond switch map associative_scan select select_n stop_gradient dynamic_slice "
    "dynamic_update_slice dynamic_slice_in_dim dynamic_update_slice_in_dim dynamic_index_in_dim index_in_dim slice "
    "slice_in_dim concatenate pad dot dot_general batch_matmul conv conv_general_dilated reshape broadcast "
    "broadcast_in_dim transpose rev squeeze expand_dims convert_element_type clamp iota full full_like complex conj "
    "real imag abs neg sign floor ceil round add sub mul div rem pow integer_pow square sqrt rsqrt cbrt reciprocal "
    "exp exp2 expm1 log log1p logistic sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh erf erfc "
    "erf_inv lgamma digamma igamma igammac polygamma zeta bessel_i0e bessel_i1e betainc nextafter is_finite max min "
    "eq ne lt le gt ge cumsum cumprod cummax cummin cumlogsumexp reduce_sum reduce_prod reduce_max reduce_min sort "
    "top_k"
).split()
NN = (
    "celu elu gelu glu hard_sigmoid hard_silu hard_swish hard_tanh identity leaky_relu log_sigmoid log_softmax "
    "logsumexp mish one_hot relu relu6 selu sigmoid silu soft_sign softmax softplus sparse_plus sparse_sigmoid "
    "squareplus standardize swish tanh"
).split()
SPECIAL = (
    "beta betainc betaln digamma entr erf erfc erfcx erfinv expit gamma gammainc gammaincc gammaln i0 i0e i1 i1e "
    "kl_div log_ndtr log_softmax loggamma logit logsumexp multigammaln ndtr ndtri polygamma rel_entr softmax "
    "xlog1py xlogy zeta"
).split()
RANDOM = (
    "PRNGKey key split fold_in normal uniform bernoulli categorical randint permutation truncated_normal gumbel "
    "laplace exponential"
).split()
# jax.<name>: the transformations. Left out: custom_jvp/custom_vjp (objects with registries),
# make_jaxpr, eval_shape, device_put, pure_callback, debug, config, tree_util's registries.
TRANSFORMS = "grad value_and_grad jvp vjp linearize vmap jacfwd jacrev hessian jit checkpoint remat".split()
TREE = "map leaves reduce all".split()  # jax.tree.<name>: never flatten/structure (tree definitions)
TREE_UTIL = "tree_map tree_leaves tree_reduce tree_all".split()


@dataclass(frozen=True)
class Family:
    """One table of dotted names: ``<alias>.<name>`` for each alias resolves to ``<module>.<name>``."""

    title: str
    aliases: tuple[str, ...]
    module: str
    names: tuple[str, ...]


FAMILIES: tuple[Family, ...] = (
    Family("numerical functions", ("jnp", "jax.numpy"), "jax.numpy", tuple(JNP)),
    Family("constants", ("jnp", "jax.numpy"), "jax.numpy", JNP_CONSTANTS),
    Family("dtype names (strings; jnp.float32(v) converts)", ("jnp", "jax.numpy"), "jax.numpy", tuple(JNP_DTYPES)),
    Family("linear algebra", ("jnp.linalg", "jax.numpy.linalg"), "jax.numpy.linalg", tuple(JNP_LINALG)),
    Family("Fourier transforms", ("jnp.fft", "jax.numpy.fft"), "jax.numpy.fft", tuple(JNP_FFT)),
    Family("lax", ("lax", "jax.lax"), "jax.lax", tuple(LAX)),
    Family("activations", ("jax.nn",), "jax.nn", tuple(NN)),
    Family("special functions", ("jax.scipy.special",), "jax.scipy.special", tuple(SPECIAL)),
    Family("random numbers (from an explicit key)", ("jax.random",), "jax.random", tuple(RANDOM)),
    Family("transformations", ("jax",), "jax", tuple(TRANSFORMS)),
    Family("pytrees", ("jax.tree",), "jax.tree", tuple(TREE)),
    Family("pytrees (old names)", ("jax.tree_util",), "jax.tree_util", tuple(TREE_UTIL)),
)

# Attributes and methods of values: arrays (and .at[...] updates) and dicts. Never dtype, item,
# tolist, dump, tofile, devices, sharding, lower, compile, defjvp, ...
VALUE_ATTRS = (
    "T mT shape ndim size real imag at "
    "all any argmax argmin argsort astype clip conj conjugate cumprod cumsum diagonal dot flatten max mean min prod "
    "ravel repeat reshape round sort squeeze std sum swapaxes take trace transpose var "
    "set add multiply divide power get apply "
    "keys values items"
).split()
MODULE_ROOTS = ("jnp", "jax", "lax")

# Limits (README: Expressions). Each is far above what a derivative spec needs.
MAX_LENGTH = 10_000  # characters of text
MAX_DEPTH = 60  # nesting of the syntax tree
MAX_STRING = 100  # characters of a string constant
MAX_INT_BITS = 1_024  # a Python integer, literal or computed (2**1000 fits; 9**999 does not)
MAX_SEQUENCE = 10_000  # items of a list, tuple, string or range built by +, * or range()
MAX_WORK = 100_000  # syntax nodes evaluated, counting each lambda call's and comprehension step's body
MAX_NESTED_TRANSFORMS = 6  # jax.grad(jax.grad(...)) deep: tracing grows exponentially with depth

_DOTTED: dict[str, tuple[str, str]] = {}  # "jnp.linalg.norm" -> ("jax.numpy.linalg", "norm")
for _family in FAMILIES:
    for _alias in _family.aliases:
        for _name in _family.names:
            _DOTTED[f"{_alias}.{_name}"] = (_family.module, _name)
_PREFIXES = frozenset(path.rsplit(".", i)[0] for path in _DOTTED for i in range(1, path.count(".") + 1))
_FLAT: dict[str, tuple[str, str]] = {
    **{n: ("jax.numpy.linalg" if n == "norm" else "python" if n == "sum" else "jax.numpy", n) for n in MATH_NAMES},
    **{n: ("jax.numpy", n) for n in CONSTANTS},
    **{n: ("builtins", n) for n in BUILTIN_NAMES},
}
DOTTED_NAMES = tuple(_DOTTED)
FLAT_NAMES = tuple(_FLAT)


def table_sizes() -> dict[str, int]:
    """How many entries each table has (README, the issue's note)."""
    sizes = {"bare names": len(_FLAT), "value attributes": len(VALUE_ATTRS)}
    for family in FAMILIES:
        sizes[f"{family.aliases[0]}.* {family.title}"] = len(family.names)
    sizes["dotted paths (with aliases)"] = len(_DOTTED)
    return sizes


def readme_tables() -> str:
    """The tables as the README lists them (tests/cli/test_docs.py checks the README says exactly this)."""

    def names(items: Iterable[str]) -> str:
        return ", ".join(f"`{n}`" for n in items)

    lines = [
        f"- **bare names** ({len(MATH_NAMES)}, mapped onto `jnp`; `norm` is `jnp.linalg.norm`; `sum` of a list, tuple or"
        f" generator adds its items, as Python's does): {names(MATH_NAMES)}",
        f"- **constants**: {names(CONSTANTS)}",
        f"- **builtins** (bounded): {names(BUILTIN_NAMES)}",
    ]
    for family in FAMILIES:
        also = f" (also {', '.join(f'`{a}.`' for a in family.aliases[1:])})" if len(family.aliases) > 1 else ""
        lines.append(f"- **`{family.aliases[0]}.`** {family.title}{also} ({len(family.names)}): {names(family.names)}")
    lines.append(f"- **attributes and methods of values** ({len(VALUE_ATTRS)}): {names(VALUE_ATTRS)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the checker

_REFUSED_NODES = {
    "NamedExpr": "':=' (assignment expressions)",
    "JoinedStr": "f-strings",
    "FormattedValue": "f-strings",
    "Set": "sets",
    "SetComp": "set comprehensions",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield",
}
_GRAMMAR = (
    "allowed: lambdas, arithmetic, comparisons, and/or/not, x if c else y, calls, indexing and slicing, "
    "list/tuple/dict literals and comprehensions (see README: Expressions)"
)
_UNDERSCORE = "names starting with _ are not allowed"
# Why some names people reach for are not in the tables, and what to write instead.
_NO_FILES = "expressions cannot read or write files; "
_WHY = {
    **dict.fromkeys(("save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "fromfile", "dump", "tofile"), _NO_FILES),
    "dtype": "dtype objects are not values: use a dtype name (jnp.float32) or jnp.zeros_like(x), jnp.full_like(x, v); ",
    "finfo": "machine limits are not values: write the number (float32 eps is 1.1920929e-07); ",
    "iinfo": "machine limits are not values: write the number; ",
    "item": "Python scalars of arrays are not values (and fail under jit): keep the array; ",
    "tolist": "keep the array (index it, or use jnp functions); ",
    "config": "expressions cannot change JAX's configuration; ",
    "debug": "no printing or host callbacks from an expression; ",
    "pure_callback": "no host callbacks from an expression; ",
    "lower": "compiled and lowered objects are not values: call the jitted function; ",
    "compile": "compiled and lowered objects are not values: call the jitted function; ",
    "custom_jvp": "custom derivative rules need a module function (file.py:function); ",
    "custom_vjp": "custom derivative rules need a module function (file.py:function); ",
    "make_jaxpr": "jaxprs are not values; ",
    "eval_shape": "use x.shape; ",
    "device_put": "device placement is the spec's device: key; ",
    # README: Functions, "Rewrites for what earlier versions accepted".
    "polyval": "write the polynomial out, e.g. c[0] + x * (c[1] + x * c[2]) (Horner), or use a file.py:function; ",
    "vectorize": "use jax.vmap; ",
    "stats": "write the density out (jax.scipy.special has erf, ndtr, log_ndtr, gammaln, xlogy, ...) or use a file.py:function; ",
    "linalg": "use jnp.linalg (solve, cholesky, eigh, qr, svd, ...); ",
    **dict.fromkeys(
        ("register_pytree_node", "register_dataclass", "register_static", "register_pytree_with_keys"),
        "expressions cannot change JAX's pytree registry; ",
    ),
    **dict.fromkeys(
        ("flatten", "structure", "unflatten", "tree_flatten", "tree_structure"),
        "tree definitions are not values: use jax.tree.map or jax.tree.leaves; ",
    ),
}
# Bare names that are not in the tables, with why (a "did you mean" to a table name would mislead).
_NAME_WHY = {
    "print": "functions return a value and nothing is printed (jaxdiff eval shows the result); ",
    "input": "expressions cannot read input; ",
    "open": _NO_FILES,
    **dict.fromkeys(("eval", "exec", "compile"), "expressions cannot run code from strings; "),
    **dict.fromkeys(
        ("getattr", "setattr", "delattr", "hasattr", "vars", "globals", "locals", "dir"),
        "attributes are written out (x.T, x.shape), never looked up by name; ",
    ),
    **dict.fromkeys(("type", "isinstance"), "types are not values: use x.ndim or x.shape; "),
    "breakpoint": "to debug, put the code in a file.py:function; ",
    **dict.fromkeys(("map", "filter"), "use a comprehension or jax.vmap; "),
    "sorted": "use jnp.sort; ",
    "bool": "a bool() of a traced value fails: compare arrays (x > 0) and use jnp.where; ",
}
# Modules people write from habit. Expressions see jnp, jax and lax only: each path is offered under
# the name it has there (math.pi -> jnp.pi, scipy.special.erf -> jax.scipy.special.erf).
_FOREIGN_MODULES = ("math", "cmath", "numpy", "np", "onp", "scipy")
_TABLE_ROOTS = "expressions see jnp (jax.numpy), jax and lax, not math, numpy or scipy"
_GUARDED_OPS = {ast.Add: "_g_add", ast.Mult: "_g_mul", ast.Pow: "_g_pow", ast.Mod: "_g_mod"}
_PLAIN_OPS = (ast.Sub, ast.Div, ast.FloorDiv, ast.MatMult, ast.BitAnd, ast.BitOr, ast.BitXor)


def _qualified(name: str) -> str | None:
    """The table entry a bare or misplaced name is, by its full path (isnan -> jnp.isnan, relu -> jax.nn.relu)."""
    for root in ("jnp", "jax.nn", "jax.scipy.special", "lax", "jnp.linalg", "jax"):
        if f"{root}.{name}" in _DOTTED:
            return f"{root}.{name}"
    return None


def _translate(module: str, chain: Sequence[str]) -> str | None:
    """``math.pi``, ``np.linalg.norm``, ``scipy.special.erf`` as the table entry of that name, if there is one."""
    for n in range(len(chain), 0, -1):  # np.pi.real: the longest path that names an entry
        tail = ".".join(chain[:n])
        for path in (f"jnp.{tail}", f"jax.{tail}", f"jax.scipy.{tail}"):
            if path in _DOTTED:
                return path + "".join(f".{a}" for a in chain[n:])
    return _qualified(chain[-1]) if len(chain) == 1 else None


def _close(name: str, choices: Sequence[str]) -> str | None:
    """A "did you mean" only for a likely typo: print is not int, though difflib rates them 0.75."""
    for close in difflib.get_close_matches(name, list(choices), n=3, cutoff=0.75):
        if close[0] == name[0] or difflib.SequenceMatcher(None, name, close).ratio() >= 0.85:
            return close
    return None


def mangle(table_key: str) -> str:
    """The flat name an allowed table entry is bound to (users cannot write names starting with _)."""
    return "_t_" + table_key.replace(".", "__")


@dataclass(frozen=True)
class Checked:
    """A checked, rewritten expression: always ``ast.Expression(body=ast.Lambda)``."""

    tree: ast.Expression
    used: dict[str, tuple[str, str]]  # mangled name -> (module, attribute) of each table entry used


@dataclass(frozen=True)
class _Located:
    col_offset: int  # where an error points when it is not a node's start (an attribute's name)


def _size(node: ast.AST) -> int:
    return sum(1 for _ in ast.walk(node))


class _Checker:
    """Walk the tree with scopes; refuse, or return the rewritten node."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.scopes: list[set[str]] = []
        self.used: dict[str, tuple[str, str]] = {}
        self.depth = 0
        self.loops = 1.0  # literal iterations of the comprehensions around the current node

    # ----------------------------------------------------------------- plumbing

    def fail(self, node: ast.AST | _Located | None, message: str, hint: str | None = None) -> NoReturn:
        col = getattr(node, "col_offset", None)
        at = f" (at column {col + 1})" if col is not None else ""
        raise FunctionError(f"expression rejected: {message}{at}", where=self.where, hint=hint)

    def visible(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            what = _REFUSED_NODES.get(type(node).__name__, type(node).__name__)
            self.fail(node, f"{what} not allowed", hint=_GRAMMAR)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(node, f"nested deeper than {MAX_DEPTH} levels", hint="split it into smaller lambdas")
        new = method(node)
        self.depth -= 1
        return ast.copy_location(new, node) if isinstance(new, ast.AST) and hasattr(node, "lineno") else new

    def visits(self, nodes: Sequence[ast.AST]) -> list[Any]:
        return [self.visit(n) for n in nodes]

    def bind(self, node: ast.AST, name: str, what: str) -> None:
        if name.startswith("_"):
            self.fail(node, f"{what} {name!r} starts with an underscore", hint=_UNDERSCORE)
        if name in MODULE_ROOTS:
            self.fail(node, f"{what} {name!r} would hide the module {name}", hint="pick another name")

    def use(self, key: str, target: tuple[str, str]) -> ast.Name:
        name = mangle(key)
        self.used[name] = target
        return ast.Name(id=name, ctx=ast.Load())

    @staticmethod
    def guard(name: str, *args: ast.expr) -> ast.Call:
        return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])

    # ----------------------------------------------------------------- names and attributes

    def visit_Name(self, node: ast.Name) -> ast.expr:
        name = node.id
        if self.visible(name):
            return ast.Name(id=name, ctx=ast.Load())
        if name in _FLAT:
            return self.use(name, _FLAT[name])
        if name in MODULE_ROOTS:
            self.fail(
                node,
                f"{name} is a module, and modules are not values",
                hint=f"call one of its functions, e.g. {name}.{'sum' if name != 'jax' else 'grad'}(...)",
            )
        if name.startswith("_"):
            self.fail(node, f"name {name!r} starts with an underscore", hint=_UNDERSCORE)
        visible = sorted({n for scope in self.scopes for n in scope})
        if name in _FOREIGN_MODULES:
            self.fail(node, f"unknown name {name!r}", hint=f"{_TABLE_ROOTS}: e.g. jnp.sin, jnp.pi, jax.scipy.special.erf")
        qualified = _qualified(name)
        close = _close(name, [*visible, *_FLAT, *MODULE_ROOTS])
        if name in _NAME_WHY:
            hint = _NAME_WHY[name]
        elif qualified is not None:
            hint = f"did you mean '{qualified}'? "
        else:
            hint = f"did you mean '{close}'? " if close else ""
        arguments = f"its arguments ({', '.join(visible)})" if visible else "its arguments"
        self.fail(
            node,
            f"unknown name {name!r}",
            hint=f"{hint}an expression sees {arguments}, comprehension variables, the bare names (sin, exp, pi, len, ...)"
            " and jnp.*, lax.*, jax.* functions listed in README: Expressions",
        )

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        chain: list[str] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        chain.reverse()
        if isinstance(base, ast.Name) and base.id in MODULE_ROOTS and not self.visible(base.id):
            return self._module_path(node, base.id, chain)
        if isinstance(base, ast.Name) and base.id in _FOREIGN_MODULES and not self.visible(base.id):
            here = _translate(base.id, chain)
            what = f"write {here}: " if here is not None else f"{base.id}.{'.'.join(chain)} has no counterpart in the tables; "
            self.fail(base, f"unknown name {base.id!r}", hint=f"{what}{_TABLE_ROOTS} (see README: Expressions)")
        value = self.visit(node.value)  # errors in reading order: the value's own first
        self.value_attr(node, node.attr)
        return ast.Attribute(value=value, attr=node.attr, ctx=ast.Load())

    def value_attr(self, node: ast.Attribute, attr: str) -> None:
        if attr not in VALUE_ATTRS:
            close = difflib.get_close_matches(attr, VALUE_ATTRS, n=1, cutoff=0.8)
            at = _Located(node.end_col_offset - len(node.attr)) if node.end_col_offset is not None else node
            why = _WHY.get(attr, f"did you mean '{close[0]}'? " if close else "")
            self.fail(
                at,
                f"attribute {attr!r} is not allowed on a value",
                hint=f"{why}allowed: {', '.join(VALUE_ATTRS)} (see README: Expressions)",
            )

    def _module_path(self, node: ast.Attribute, root: str, chain: list[str]) -> ast.expr:
        path = root
        for i, part in enumerate(chain):
            path = f"{path}.{part}"
            if path in _DOTTED:
                out: ast.expr = self.use(path, _DOTTED[path])
                for attr in chain[i + 1 :]:  # e.g. jnp.sum.T: attributes of the function, as a value
                    self.value_attr(node, attr)
                    out = ast.Attribute(value=out, attr=attr, ctx=ast.Load())
                return out
            if path not in _PREFIXES:
                parent = path.rsplit(".", 1)[0]
                offered = sorted({p[len(parent) + 1 :].split(".")[0] for p in _DOTTED if p.startswith(parent + ".")})
                close = difflib.get_close_matches(part, offered, n=1, cutoff=0.75)
                elsewhere = _qualified(part)
                if part in _WHY:
                    why = _WHY[part]
                elif elsewhere is not None and elsewhere != path:  # jnp.relu: jax.nn.relu, not jnp.real
                    why = f"did you mean '{elsewhere}'? "
                elif close:
                    why = f"did you mean '{parent}.{close[0]}'? "
                else:  # README: names outside the tables
                    why = "outside the tables: write the formula out, use jax.vmap, or put the code in a file.py:function; "
                listed = ", ".join(offered) if len(offered) <= 40 else f"{len(offered)} names"
                self.fail(
                    node,
                    f"{path} is not available in expressions",
                    hint=f"{why}{parent} offers: {listed} (see README: Expressions)",
                )
        self.fail(
            node,
            f"{path} is a module, and modules are not values",
            hint=f"call one of its functions, e.g. {next(p for p in _DOTTED if p.startswith(path + '.'))}(...)",
        )

    # ----------------------------------------------------------------- constants and operators

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        value = node.value
        if isinstance(value, bytes):
            self.fail(node, "bytes constants are not allowed", hint="use numbers, short strings, True/False/None or ...")
        if isinstance(value, str):
            if len(value) > MAX_STRING or "__" in value or "{" in value or not value.isprintable():
                self.fail(
                    node,
                    f"strings must be short (at most {MAX_STRING} characters), printable, without '__' or '{{'",
                    hint="strings are for einsum specs, dict keys and mode names",
                )
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            self.fail(node, f"integer literal larger than {MAX_INT_BITS} bits")
        return ast.Constant(value=value)

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        if isinstance(node.op, (ast.LShift, ast.RShift)):
            self.fail(node, "shift operators are not allowed", hint="write x * 2**k or x // 2**k")
        bits = _int_bits(node)
        if bits is not None and bits > MAX_INT_BITS:
            size = f"about {bits:.3g}" if math.isfinite(bits) else "astronomically many"
            self.fail(
                node,
                f"this integer arithmetic makes a number of {size} bits (the limit is {MAX_INT_BITS})",
                hint="use floats (9.0**999 is inf) or smaller numbers",
            )
        if isinstance(node.op, ast.Mult):
            self._repetition(node)
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            self.fail(node, "'%' formatting of strings is not allowed", hint="strings are constants here")
        left, right = self.visit(node.left), self.visit(node.right)
        for op, guard in _GUARDED_OPS.items():
            if isinstance(node.op, op):
                return self.guard(guard, left, right)
        if not isinstance(node.op, _PLAIN_OPS):
            self.fail(node, f"operator {type(node.op).__name__} is not allowed", hint=_GRAMMAR)
        return ast.BinOp(left=left, op=node.op, right=right)

    def _repetition(self, node: ast.BinOp) -> None:
        """`[0] * 10**10`, `'a' * 10**9`: refused before anything runs."""
        for seq, count in ((node.left, node.right), (node.right, node.left)):
            length = _literal_length(seq)
            if length is None:
                continue
            n = _small_int(count)
            bits = _int_bits(count)
            if (n is None and bits is not None) or (n is not None and length * n > MAX_SEQUENCE):
                self.fail(
                    node,
                    f"repeating a sequence makes more than {MAX_SEQUENCE} items",
                    hint="build arrays with jnp.zeros, jnp.full or jnp.tile instead",
                )

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        return ast.UnaryOp(op=node.op, operand=self.visit(node.operand))

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.expr:
        return ast.BoolOp(op=node.op, values=self.visits(node.values))

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        return ast.Compare(left=self.visit(node.left), ops=node.ops, comparators=self.visits(node.comparators))

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        return ast.IfExp(test=self.visit(node.test), body=self.visit(node.body), orelse=self.visit(node.orelse))

    # ----------------------------------------------------------------- containers, indexing, calls

    def visit_Tuple(self, node: ast.Tuple) -> ast.expr:
        return ast.Tuple(elts=self.visits(node.elts), ctx=ast.Load())

    def visit_List(self, node: ast.List) -> ast.expr:
        return ast.List(elts=self.visits(node.elts), ctx=ast.Load())

    def visit_Dict(self, node: ast.Dict) -> ast.expr:
        keys = [None if k is None else self.visit(k) for k in node.keys]  # None: a {**d} merge
        return ast.Dict(keys=keys, values=self.visits(node.values))

    def visit_Starred(self, node: ast.Starred) -> ast.expr:
        # f(*x) and [*x] iterate x: each item is charged, like a comprehension step.
        return ast.Starred(value=self.guard("_g_iter", self.visit(node.value), ast.Constant(value=1)), ctx=ast.Load())

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        return ast.Subscript(value=self.visit(node.value), slice=self.visit(node.slice), ctx=ast.Load())

    def visit_Slice(self, node: ast.Slice) -> ast.expr:
        parts = [None if p is None else self.visit(p) for p in (node.lower, node.upper, node.step)]
        return ast.Slice(lower=parts[0], upper=parts[1], step=parts[2])

    def visit_Call(self, node: ast.Call) -> ast.expr:
        keywords = []
        for kw in node.keywords:
            if kw.arg is None:
                self.fail(kw, "** unpacking in a call is not allowed", hint="write keyword arguments out: f(x, axis=0)")
            if kw.arg.startswith("_"):
                self.fail(kw, f"keyword argument {kw.arg!r} starts with an underscore", hint=_UNDERSCORE)
            keywords.append(ast.keyword(arg=kw.arg, value=self.visit(kw.value)))
        if isinstance(node.func, ast.Name) and node.func.id == "range" and not self.visible("range"):
            self._range(node)
        return ast.Call(func=self.visit(node.func), args=self.visits(node.args), keywords=keywords)

    def _range(self, node: ast.Call) -> None:
        values = [_small_int(a) for a in node.args]
        if node.args and not node.keywords and all(v is not None for v in values) and len(values) <= 3:
            try:
                n = len(range(*values))  # type: ignore[arg-type]
            except (ValueError, OverflowError):
                return  # range(0, 5, 0) and friends fail at run time with Python's own message
            if n > MAX_SEQUENCE:
                self.fail(node, f"range() of {n} items (the limit is {MAX_SEQUENCE})", hint="use jnp.arange or lax.fori_loop")

    # ----------------------------------------------------------------- scopes: lambdas, comprehensions

    def visit_Lambda(self, node: ast.Lambda) -> ast.expr:
        args = node.args
        if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg or args.defaults or args.kw_defaults:
            self.fail(
                node,
                "lambdas take plain parameters only",
                hint="write lambda x, w: ... (no defaults, *args, **kwargs, keyword-only or positional-only parameters)",
            )
        for a in args.args:
            self.bind(a, a.arg, "parameter")
        self.scopes.append({a.arg for a in args.args})
        loops, self.loops = self.loops, 1.0  # a lambda's calls are charged at run time, not here
        body = self.visit(node.body)
        self.loops = loops
        self.scopes.pop()
        # Every call is charged for the size of the body it evaluates.
        tick = self.guard("_g_tick", ast.Constant(value=_size(node.body)))
        charged = ast.IfExp(test=tick, body=body, orelse=ast.Constant(None))
        new_args = ast.arguments(
            posonlyargs=[], args=[ast.arg(arg=a.arg) for a in args.args], kwonlyargs=[], kw_defaults=[], defaults=[]
        )
        return ast.Lambda(args=new_args, body=charged)

    def _comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.DictComp) -> ast.expr:
        work = _size(node)
        known = math.prod(_literal_length(g.iter) or 1 for g in node.generators)
        if self.loops * known * work > MAX_WORK:
            self.fail(
                node,
                f"this comprehension evaluates about {self.loops * known * work:.3g} syntax nodes (the limit is {MAX_WORK})",
                hint="vectorise with jnp, or loop with lax.fori_loop / lax.scan",
            )
        generators = []
        self.scopes.append(set())
        loops, self.loops = self.loops, self.loops * known
        for i, gen in enumerate(node.generators):
            if gen.is_async:
                self.fail(node, "async comprehensions are not allowed")
            if i == 0:  # Python evaluates the first iterable outside the comprehension's scope
                self.scopes.pop()
                iterable = self.visit(gen.iter)
                self.scopes.append(set())
            else:
                iterable = self.visit(gen.iter)
            target = self._target(gen.target)
            ifs = self.visits(gen.ifs)
            generators.append(
                ast.comprehension(target=target, iter=self.guard("_g_iter", iterable, ast.Constant(work)), ifs=ifs, is_async=0)
            )
        if isinstance(node, ast.DictComp):
            out: ast.expr = ast.DictComp(key=self.visit(node.key), value=self.visit(node.value), generators=generators)
        elif isinstance(node, ast.ListComp):
            out = ast.ListComp(elt=self.visit(node.elt), generators=generators)
        else:
            out = ast.GeneratorExp(elt=self.visit(node.elt), generators=generators)
        self.loops = loops
        self.scopes.pop()
        return out

    visit_ListComp = _comprehension
    visit_GeneratorExp = _comprehension
    visit_DictComp = _comprehension

    def _target(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Name):
            self.bind(node, node.id, "variable")
            self.scopes[-1].add(node.id)
            return ast.copy_location(ast.Name(id=node.id, ctx=ast.Store()), node)
        if isinstance(node, (ast.Tuple, ast.List)):
            elts = [self._target(e) for e in node.elts]
            return ast.copy_location(ast.Tuple(elts=elts, ctx=ast.Store()), node)
        self.fail(node, "a comprehension assigns to names only", hint="for i, v in enumerate(x)")


# --------------------------------------------------------------------------- literal sizes


def _int_bits(node: ast.AST) -> float | None:
    """An upper bound on the bits of every integer a literal-only integer expression builds, or None.

    Nothing is evaluated except exponents already known to be small, so `9**9**9` costs nothing.
    """
    if isinstance(node, ast.Constant):
        v = node.value
        return float(max(int(v).bit_length(), 1)) if isinstance(v, int) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
        b = _int_bits(node.operand)
        return None if b is None else b + 1
    if isinstance(node, ast.BinOp):
        left, right = _int_bits(node.left), _int_bits(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, (ast.Add, ast.Sub, ast.BitOr, ast.BitXor, ast.BitAnd)):
            return max(left, right) + 1
        if isinstance(node.op, ast.Mult):
            return left + right
        if isinstance(node.op, (ast.FloorDiv, ast.Mod)):
            return left
        if isinstance(node.op, ast.Pow):
            if left <= 1:  # 0, 1, -1 to any power
                return 2.0
            exponent = _small_int(node.right)
            if exponent is None:
                return math.inf
            if exponent < 0:
                return None  # a negative power is a float
            base = _small_int(node.left)  # exact when known: 2**1000 has 1001 bits, not 2 * 1000
            per = math.log2(abs(base)) if base is not None else left
            return max(math.floor(per * exponent) + 1.0, 1.0)
        if isinstance(node.op, (ast.LShift, ast.RShift)):
            return math.inf
    return None


_INT_OPS: dict[type[ast.operator], Callable[[int, int], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
    ast.BitAnd: lambda a, b: a & b,
    ast.BitOr: lambda a, b: a | b,
    ast.BitXor: lambda a, b: a ^ b,
}


def _small_int(node: ast.AST) -> int | None:
    """The value of a literal integer expression whose every step fits in 64 bits, else None."""
    bits = _int_bits(node)
    if bits is None or bits > 64:
        return None
    try:
        value = _int_value(node)
    except (ArithmeticError, KeyError):
        return None
    return value if isinstance(value, int) else None


def _int_value(node: ast.AST) -> Any:
    """Evaluate what _int_bits bounded: only integer constants, unary and binary operators."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        v = _int_value(node.operand)
        return -v if isinstance(node.op, ast.USub) else ~v if isinstance(node.op, ast.Invert) else v
    assert isinstance(node, ast.BinOp)
    return _INT_OPS[type(node.op)](_int_value(node.left), _int_value(node.right))


def _literal_length(node: ast.AST) -> int | None:
    """How many items iterating a literal gives (range with literal bounds, list/tuple/str literals)."""
    if isinstance(node, (ast.List, ast.Tuple)) and not any(isinstance(e, ast.Starred) for e in node.elts):
        return len(node.elts)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return len(node.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" and not node.keywords:
        values = [_small_int(a) for a in node.args]
        if values and len(values) <= 3 and all(v is not None for v in values):
            try:
                return len(range(*values))  # type: ignore[arg-type]
            except (ValueError, OverflowError):
                return None
    return None


# --------------------------------------------------------------------------- check and compile


def _parse(text: str, where: str) -> ast.Expression:
    if len(text) > MAX_LENGTH:
        raise FunctionError(f"expression rejected: longer than {MAX_LENGTH} characters", where=where, hint="use file.py:function")
    if "\x00" in text:
        raise FunctionError("expression rejected: it contains a NUL character", where=where)
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset}" if exc.offset else ""
        raise FunctionError(f"not a valid Python expression: {exc.msg}{col}", where=where, hint=_statements(text)) from None
    except (ValueError, RecursionError, MemoryError):
        raise FunctionError("expression rejected: it cannot be parsed safely (nested too deeply?)", where=where) from None


def _statements(text: str) -> str | None:
    """The hint for Python statements (import numpy, def f(x): ...), which parse as a module but not
    as an expression. Parsing runs nothing."""
    try:
        body = ast.parse(text.strip(), mode="exec").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not body:
        return None
    instead = "write a lambda (lambda x: ...) or an expression, or put the code in a file.py:function"
    if isinstance(body[0], (ast.Import, ast.ImportFrom)):
        return f"statements are not allowed, imports neither: jnp, jax and lax are there already; {instead}"
    return f"statements (def, import, assignments, return) are not allowed: {instead}"


def check_lambda_params(tree: ast.Expression, argnames: Sequence[str], where: str) -> None:
    """The lambda's parameters, before anything is evaluated: each must be a plain name.

    Primals bind to parameters by name (binding.bind_primals, exit 3 for a missing or unknown
    one); defaults, ``*args``, ``**kwargs``, keyword-only and positional-only parameters are
    refused by the checker. (One function on purpose: what a lambda may take is decided here.)
    """
    if not isinstance(tree.body, ast.Lambda):
        raise FunctionError("expected a single lambda", where=where)


def check(text: str, argnames: Sequence[str], where: str, *, is_lambda: bool) -> Checked:
    """Parse and check; return the rewritten tree. Raises FunctionError; evaluates nothing."""
    tree = _parse(text, where)
    if is_lambda and not isinstance(tree.body, ast.Lambda):
        raise FunctionError("expected a single lambda", where=where)
    checker = _Checker(where)
    if not is_lambda:
        # A bare expression becomes a lambda of the primals, in their order.
        for name in argnames:
            if name.startswith("_") or name in MODULE_ROOTS:
                raise FunctionError(
                    f"a primal named {name!r} cannot be used in an expression",
                    where=where,
                    hint="rename it: names starting with _ and jnp, jax, lax are reserved",
                )
        params = ast.arguments(
            posonlyargs=[], args=[ast.arg(arg=n) for n in argnames], kwonlyargs=[], kw_defaults=[], defaults=[]
        )
        tree = ast.Expression(body=ast.copy_location(ast.Lambda(args=params, body=tree.body), tree.body))
    try:
        rewritten: ast.expr = checker.visit(tree.body)
    except RecursionError:
        raise FunctionError("expression rejected: nested too deeply", where=where) from None
    check_lambda_params(tree, argnames, where)
    return Checked(tree=ast.fix_missing_locations(ast.Expression(body=rewritten)), used=checker.used)


def check_expression(text: str, argnames: Sequence[str], where: str, *, is_lambda: bool) -> ast.Expression:
    """Parse and check an expression or lambda; raise FunctionError if it is not allowed."""
    return check(text, argnames, where, is_lambda=is_lambda).tree


def compile_expression(text: str, argnames: Sequence[str], where: str, *, is_lambda: bool) -> Callable[..., Any]:
    """Check, then build the callable. Nothing of the user's text runs before the check passes."""
    checked = check(text, argnames, where, is_lambda=is_lambda)
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
        obj = getattr(importlib.import_module(module), attr)
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


# --- calls that emit many arrays (issue 19.4): charged for what they take and return


MAX_EMITTED = 256  # as MAX_OUTPUT_LEAVES (engine): arrays one call may return (jnp.split's pieces, jnp.unstack's slices, ...)
_SPLITS = frozenset(("split", "hsplit", "vsplit", "dsplit"))
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


def _len(obj: Any) -> int:
    return len(obj)


_BUILTINS: dict[str, Any] = {
    "len": _len, "range": _range, "zip": _zip, "enumerate": _enumerate, "tuple": _tuple, "list": _list,
    "dict": _dict, "float": float, "int": int,
}  # fmt: skip
for _key2, _fn2 in _BUILTINS.items():
    if _key2 not in ("float", "int"):
        _fn2.__name__ = _fn2.__qualname__ = _key2
_GUARDS: dict[str, Any] = {
    "_g_tick": _g_tick, "_g_iter": _g_iter, "_g_add": _g_add, "_g_mul": _g_mul, "_g_pow": _g_pow, "_g_mod": _g_mod,
}  # fmt: skip


def namespace() -> dict[str, Any]:
    """Every table entry as an expression sees it, by its table key (the walk test's roots). Imports JAX."""
    out: dict[str, Any] = {key: resolve(*target) for key, target in _FLAT.items()}
    out.update({key: resolve(*target) for key, target in _DOTTED.items()})
    return out


if __name__ == "__main__":  # python -m jaxdiff_cli.inputs.expressions: the README's list of the tables
    print(readme_tables(), end="")
