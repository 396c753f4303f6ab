"""The checker: an expression's syntax tree, refused or rewritten, before anything of it runs.

Every name must resolve, at check time, to a lambda parameter, a comprehension variable or an entry
of the tables (tables.py). Module objects are never values. The checked tree is rewritten so that
each allowed path becomes one flat, underscore-prefixed name bound to its function
(``jnp.linalg.norm`` -> ``_t_jnp__linalg__norm``), users cannot write such names, and ``+``, ``*``,
``**``, ``%``, lambda calls and comprehension steps go through the run-time guards (runtime.py).
Literal integer arithmetic, repetition and ranges are sized here, symbolically, and refused up front.

Evaluates nothing and imports no JAX.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from jaxdiff_cli.errors import FunctionError
from jaxdiff_cli.inputs.expressions.tables import (
    DOTTED,
    FLAT,
    FOREIGN_MODULES,
    MODULE_ROOTS,
    NAME_WHY,
    PREFIXES,
    TABLE_ROOTS,
    VALUE_ATTRS,
    WHY,
    refusal,
)

# Limits (README: Expressions). Each is far above what a derivative spec needs.
MAX_LENGTH = 10_000  # characters of text
MAX_DEPTH = 60  # nesting of the syntax tree
MAX_STRING = 100  # characters of a string constant
MAX_INT_BITS = 1_024  # a Python integer, literal or computed (2**1000 fits; 9**999 does not)
MAX_SEQUENCE = 10_000  # items of a list, tuple, string or range built by +, * or range()
MAX_WORK = 100_000  # syntax nodes evaluated, counting each lambda call's and comprehension step's body
MAX_NESTED_TRANSFORMS = 6  # jax.grad(jax.grad(...)) deep: tracing grows exponentially with depth
MAX_EMITTED = 256  # as MAX_OUTPUT_LEAVES (engine): arrays one call may return (jnp.split's pieces, jnp.unstack's slices, ...)

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
_GUARDED_OPS = {ast.Add: "_g_add", ast.Mult: "_g_mul", ast.Pow: "_g_pow", ast.Mod: "_g_mod"}
_PLAIN_OPS = (ast.Sub, ast.Div, ast.FloorDiv, ast.MatMult, ast.BitAnd, ast.BitOr, ast.BitXor)


def _qualified(name: str) -> str | None:
    """The table entry a bare or misplaced name is, by its full path (isnan -> jnp.isnan, relu -> jax.nn.relu)."""
    for root in ("jnp", "jax.nn", "jax.scipy.special", "lax", "jnp.linalg", "jax"):
        if f"{root}.{name}" in DOTTED:
            return f"{root}.{name}"
    return None


def _translate(module: str, chain: Sequence[str]) -> str | None:
    """``math.pi``, ``np.linalg.norm``, ``scipy.special.erf`` as the table entry of that name, if there is one."""
    for n in range(len(chain), 0, -1):  # np.pi.real: the longest path that names an entry
        tail = ".".join(chain[:n])
        for path in (f"jnp.{tail}", f"jax.{tail}", f"jax.scipy.{tail}"):
            if path in DOTTED:
                return path + "".join(f".{a}" for a in chain[n:])
    return _qualified(chain[-1]) if len(chain) == 1 else None


def _not_in_jax(path: str) -> str | None:
    """The NumPy or SciPy function a path that JAX lacks names (jax.scipy.special.rgamma -> scipy.special.rgamma),
    if there is one: a different function of JAX is then never offered as a "did you mean". Only on
    the way to an error (it imports NumPy or SciPy)."""
    for alias, module in (("jax.scipy.", "scipy."), ("jax.numpy.", "numpy."), ("jnp.", "numpy.")):
        if path.startswith(alias):
            parent, name = (module + path[len(alias) :]).rsplit(".", 1)
            try:
                found = getattr(importlib.import_module(parent), name, None)
            except ImportError:
                return None
            return f"{parent}.{name}" if callable(found) else None
    return None


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
    """A checked, rewritten expression: always ``ast.Expression(body=ast.Lambda)``, parsed once."""

    tree: ast.Expression
    used: dict[str, tuple[str, str]]  # mangled name -> (module, attribute) of each table entry used
    params: tuple[str, ...]  # the lambda's parameters: what the primals bind to, by name


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
        if name in FLAT:
            return self.use(name, FLAT[name])
        if name in MODULE_ROOTS:
            self.fail(
                node,
                f"{name} is a module, and modules are not values",
                hint=f"call one of its functions, e.g. {name}.{'sum' if name != 'jax' else 'grad'}(...)",
            )
        if name.startswith("_"):
            self.fail(node, f"name {name!r} starts with an underscore", hint=_UNDERSCORE)
        visible = sorted({n for scope in self.scopes for n in scope})
        if name in FOREIGN_MODULES:
            self.fail(node, f"unknown name {name!r}", hint=f"{TABLE_ROOTS}: e.g. jnp.sin, jnp.pi, jax.scipy.special.erf")
        qualified = _qualified(name)
        close = _close(name, [*visible, *FLAT, *MODULE_ROOTS])
        if name in NAME_WHY:
            hint = NAME_WHY[name]
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
        if isinstance(base, ast.Name) and base.id in FOREIGN_MODULES and not self.visible(base.id):
            here = _translate(base.id, chain)
            what = f"write {here}: " if here is not None else f"{base.id}.{'.'.join(chain)} has no counterpart in the tables; "
            self.fail(base, f"unknown name {base.id!r}", hint=f"{what}{TABLE_ROOTS} (see README: Expressions)")
        value = self.visit(node.value)  # errors in reading order: the value's own first
        self.value_attr(node, node.attr)
        return ast.Attribute(value=value, attr=node.attr, ctx=ast.Load())

    def value_attr(self, node: ast.Attribute, attr: str) -> None:
        if attr not in VALUE_ATTRS:
            close = difflib.get_close_matches(attr, VALUE_ATTRS, n=1, cutoff=0.8)
            at = _Located(node.end_col_offset - len(node.attr)) if node.end_col_offset is not None else node
            why = WHY.get(attr, f"did you mean '{close[0]}'? " if close else "")
            self.fail(
                at,
                f"attribute {attr!r} is not allowed on a value",
                hint=f"{why}allowed: {', '.join(VALUE_ATTRS)} (see README: Expressions)",
            )

    def _module_path(self, node: ast.Attribute, root: str, chain: list[str]) -> ast.expr:
        path = root
        for i, part in enumerate(chain):
            path = f"{path}.{part}"
            if path in DOTTED:
                out: ast.expr = self.use(path, DOTTED[path])
                for attr in chain[i + 1 :]:  # e.g. jnp.sum.T: attributes of the function, as a value
                    self.value_attr(node, attr)
                    out = ast.Attribute(value=out, attr=attr, ctx=ast.Load())
                return out
            if path not in PREFIXES:
                reason = refusal(path)
                if reason is not None:  # a real JAX name: say so and why, never "did you mean" another one
                    self.fail(
                        node,
                        f"{path} is not available in expressions: it is not allowed because {reason}",
                        hint=f"{WHY.get(part, '')}use a module function (file.py:function), or see README: Expressions",
                    )
                parent = path.rsplit(".", 1)[0]
                offered = sorted({p[len(parent) + 1 :].split(".")[0] for p in DOTTED if p.startswith(parent + ".")})
                close = difflib.get_close_matches(part, offered, n=1, cutoff=0.75)
                elsewhere = _qualified(part)
                original = _not_in_jax(path)
                if part in WHY:
                    why = WHY[part]
                elif original is not None:  # SciPy's rgamma is not jax.scipy.special.gamma: no "did you mean"
                    owner = "SciPy" if original.startswith("scipy.") else "NumPy"
                    why = f"JAX has no {part}: {original} is {owner}'s; "
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
            hint=f"call one of its functions, e.g. {next(p for p in DOTTED if p.startswith(path + '.'))}(...)",
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


# --------------------------------------------------------------------------- parse and check


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


def check(text: str, argnames: Sequence[str], where: str, *, is_lambda: bool) -> Checked:
    """Parse and check once; return the rewritten tree and its parameters. Raises FunctionError;
    evaluates nothing.

    A lambda's parameters are its own (the checker refuses defaults, ``*args``, ``**kwargs``,
    keyword- and positional-only ones). A bare expression becomes a lambda of the primals among
    ``argnames`` that it uses, in order of first use.
    """
    tree = _parse(text, where)
    if is_lambda and not isinstance(tree.body, ast.Lambda):
        raise FunctionError("expected a single lambda", where=where)
    checker = _Checker(where)
    if is_lambda:
        assert isinstance(tree.body, ast.Lambda)
        names = tuple(a.arg for a in tree.body.args.args)
    else:
        names = _used_primals(tree, argnames)
        for name in names:
            if name.startswith("_") or name in MODULE_ROOTS:
                raise FunctionError(
                    f"a primal named {name!r} cannot be used in an expression",
                    where=where,
                    hint="rename it: names starting with _ and jnp, jax, lax are reserved",
                )
        params = ast.arguments(posonlyargs=[], args=[ast.arg(arg=n) for n in names], kwonlyargs=[], kw_defaults=[], defaults=[])
        tree = ast.Expression(body=ast.copy_location(ast.Lambda(args=params, body=tree.body), tree.body))
    try:
        rewritten: ast.expr = checker.visit(tree.body)
    except RecursionError:
        raise FunctionError("expression rejected: nested too deeply", where=where) from None
    return Checked(tree=ast.fix_missing_locations(ast.Expression(body=rewritten)), used=checker.used, params=names)


def _used_primals(tree: ast.Expression, argnames: Sequence[str]) -> tuple[str, ...]:
    """The primals a bare expression uses, in order of first use (its parameters).

    Free names that are not primals are left to the checker (an unknown name is a rejected
    expression, exit 4). Names bound inside the expression (lambdas, comprehensions) are skipped.
    """
    primals = set(argnames)
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    used: list[str] = []
    for node in sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)),
        key=lambda n: (n.lineno, n.col_offset),
    ):
        if node.id in primals and node.id not in bound and node.id not in used:
            used.append(node.id)
    return tuple(used)
