"""A function reference -> a Python callable.

Four forms: a lambda, a bare expression over the primal names, ``package.module:function``
and ``path/to/file.py:function``. Lambdas and expressions come from spec files that may
arrive in a pull request, so they are parsed and checked *before* anything runs: only a
small allow-listed namespace, no imports, no dunder or private attributes, no I/O helpers,
no literal arithmetic big enough to hang the process. Modules and files are the user's own
code and run as such.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from jaxdiff_cli.errors import EXPRESSION_FILE, FunctionError, describe_user_error, register_user_code

# Names an expression may use besides its own arguments. The math names map onto jax.numpy.
MATH_NAMES = (
    "sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh "
    "exp exp2 expm1 log log2 log10 log1p sqrt cbrt square power abs absolute sign floor ceil "
    "round clip maximum minimum where dot vdot matmul outer inner tensordot einsum sum prod mean "
    "max min norm logaddexp hypot reciprocal sinc deg2rad rad2deg"
).split()
CONSTANTS = ("pi", "e", "inf", "nan")
MODULE_NAMES = ("jnp", "jax", "lax")
BUILTIN_NAMES = ("len", "float", "int", "tuple", "list", "dict", "zip", "enumerate", "range")

# jax.<attr> allowed from an expression: the transformations and the pure numerical modules.
JAX_ATTRS = frozenset(
    "numpy lax nn scipy random tree tree_util grad value_and_grad jvp vjp vmap jacfwd jacrev "
    "hessian jit linearize checkpoint remat custom_jvp custom_vjp stop_gradient eval_shape".split()
)
# Attributes that reach files, callbacks, global configuration or string formatting.
BLOCKED_ATTRS = frozenset(
    "save savez savez_compressed load loadtxt savetxt genfromtxt fromfile tofile fromregex memmap "
    "config debug callback pure_callback io_callback experimental profiler distributed monitoring "
    "extend ffi format format_map mro gi_frame gi_code f_globals f_locals f_builtins".split()
)
_ALLOWED_NODES = (
    ast.Expression, ast.Lambda, ast.arguments, ast.arg, ast.BinOp, ast.UnaryOp, ast.BoolOp,
    ast.Compare, ast.IfExp, ast.Call, ast.keyword, ast.Attribute, ast.Subscript, ast.Slice,
    ast.Name, ast.Load, ast.Store, ast.Constant, ast.Tuple, ast.List, ast.Dict, ast.ListComp,
    ast.GeneratorExp, ast.DictComp, ast.comprehension, ast.Starred,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context,
)  # fmt: skip
_BLOCKED_OPS = (ast.LShift, ast.RShift)  # `1 << 10**9` builds a huge int; no use on floats
MAX_EXPONENT = 1_000
MAX_DEPTH = 60
MAX_LENGTH = 10_000
MAX_STRING = 200
MAX_RANGE = 100_000


@dataclass(frozen=True)
class Params:
    """The parameters a function takes, by name: what primals can bind to."""

    names: tuple[str, ...]  # named parameters in declaration order (positional first, then keyword-only)
    required: frozenset[str]  # those without a default
    positional_only: tuple[str, ...] = ()  # must be passed by position (``def f(x, /)``)
    keyword_only: tuple[str, ...] = ()  # after ``*``: argnums does not count them
    var_keyword: bool = False  # ``**kwargs``: primals that are not parameters go there

    @property
    def positional(self) -> tuple[str, ...]:
        """The parameters that argnums counts (JAX's positions)."""
        return self.names[: len(self.names) - len(self.keyword_only)]


@dataclass(frozen=True)
class LoadedFunction:
    """A callable with what the engine and the output need to know about it."""

    fn: Callable[..., Any]
    source: str  # the text the user gave
    kind: str  # "lambda" | "expression" | "module" | "file"
    params: Params

    def bind(self, order: Sequence[str]) -> Callable[..., Any]:
        """A function of the primals as positional arguments in ``order`` that passes each one to the
        parameter of the same name (by keyword; positional-only parameters by position)."""
        fn, posonly = self.fn, len(self.params.positional_only)
        names = tuple(order)
        if list(names[:posonly]) != list(self.params.positional_only):
            raise FunctionError("positional-only parameters must all be given, in order", where="function")

        def bound(*args: Any) -> Any:
            return fn(*args[:posonly], **dict(zip(names[posonly:], args[posonly:])))

        return bound


_FILE_REF = re.compile(r"^(?P<path>.+\.py):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
_MODULE_REF = re.compile(r"^(?P<mod>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


def classify(text: str) -> str:
    """Which of the four forms ``text`` is."""
    text = text.strip()
    if _FILE_REF.match(text):
        return "file"
    if _MODULE_REF.match(text):
        return "module"
    if re.match(r"^lambda\b", text):
        return "lambda"
    return "expression"


def load_function(text: str, argnames: Sequence[str], base_dir: Path, where: str) -> LoadedFunction:
    """Turn a function reference into a callable and the parameters it takes.

    ``argnames`` are the primals' names: a bare expression's parameters are the primals it uses.
    """
    kind = classify(text)
    if kind in ("file", "module"):
        if kind == "file":
            m = _FILE_REF.match(text.strip())
            assert m is not None
            fn = _load_from_file(m["path"], m["attr"], base_dir, where)
        else:
            m = _MODULE_REF.match(text.strip())
            assert m is not None
            fn = _load_from_module(m["mod"], m["attr"], base_dir, where)
        return LoadedFunction(fn=fn, source=text, kind=kind, params=signature_params(fn, text, where))
    if kind == "lambda":
        tree = check_expression(text, argnames, where, is_lambda=True)
        assert isinstance(tree.body, ast.Lambda)
        lam = tree.body.args
        names = tuple(a.arg for a in lam.args)
        required = frozenset(names[: len(names) - len(lam.defaults)])
        params = Params(names=names, required=required)
    else:
        names = expression_params(text, argnames, where)
        params = Params(names=names, required=frozenset(names))
    fn = compile_expression(text, names, where, is_lambda=kind == "lambda")
    return LoadedFunction(fn=fn, source=text, kind=kind, params=params)


def signature_params(fn: Callable[..., Any], text: str, where: str) -> Params:
    """A Python function's parameters, read with inspect (following functools.wraps)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise FunctionError(
            f"cannot read the parameters of {text}", where=where, hint="primals bind by name: use a Python function"
        ) from None
    kinds = inspect.Parameter
    names, required, posonly, kwonly = [], set(), [], []
    var_keyword = False
    for p in sig.parameters.values():
        if p.kind is kinds.VAR_KEYWORD:
            var_keyword = True
            continue
        if p.kind is kinds.VAR_POSITIONAL:
            continue  # *args: nothing binds to it by name
        names.append(p.name)
        if p.default is kinds.empty:
            required.add(p.name)
        if p.kind is kinds.POSITIONAL_ONLY:
            posonly.append(p.name)
        elif p.kind is kinds.KEYWORD_ONLY:
            kwonly.append(p.name)
    return Params(
        names=tuple(names),
        required=frozenset(required),
        positional_only=tuple(posonly),
        keyword_only=tuple(kwonly),
        var_keyword=var_keyword,
    )


def expression_params(text: str, argnames: Sequence[str], where: str) -> tuple[str, ...]:
    """The primals a bare expression uses, in order of first use (its parameters).

    Free names that are not primals are left to the checker (an unknown name is a rejected
    expression, exit 4). Names bound inside the expression (lambdas, comprehensions) are skipped.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return tuple(argnames)  # the checker reports the syntax error with its position
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


# --------------------------------------------------------------------------- expressions


class _Checker(ast.NodeVisitor):
    def __init__(self, allowed: set[str], where: str) -> None:
        self.scopes: list[set[str]] = [allowed]
        self.where = where
        self.depth = 0

    def fail(self, node: ast.AST, message: str) -> None:
        col = getattr(node, "col_offset", None)
        at = f" (at column {col + 1})" if col is not None else ""
        raise FunctionError(f"expression rejected: {message}{at}", where=self.where)

    def visible(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    def generic_visit(self, node: ast.AST) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            self.fail(node, f"{type(node).__name__} is not allowed")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(node, f"nested deeper than {MAX_DEPTH} levels")
        super().generic_visit(node)
        self.depth -= 1

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            self.fail(node, f"name {node.id!r} starts with an underscore")
        if isinstance(node.ctx, ast.Load) and not self.visible(node.id):
            self.fail(node, f"unknown name {node.id!r}; expressions see their arguments, jnp, jax, lax and math names")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.fail(node, f"attribute {node.attr!r} starts with an underscore")
        if node.attr in BLOCKED_ATTRS:
            self.fail(node, f"attribute {node.attr!r} is not allowed")
        if isinstance(node.value, ast.Name) and node.value.id == "jax" and node.attr not in JAX_ATTRS:
            self.fail(node, f"jax.{node.attr} is not available in expressions")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, (bytes, type(...))):
            self.fail(node, f"{type(value).__name__} constants are not allowed")
        if isinstance(value, str) and (len(value) > MAX_STRING or "{" in value or "__" in value):
            self.fail(node, "string constants must be short and hold no '{' or '__'")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
            self.fail(node, "integer literal is too large")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, _BLOCKED_OPS):
            self.fail(node, "shift operators are not allowed")
        if isinstance(node.op, ast.Pow) and _is_literal(node.right):
            exponent = _literal_value(node.right)
            if not isinstance(exponent, (int, float)) or abs(exponent) > MAX_EXPONENT:
                self.fail(node, f"exponent must be a plain number of at most {MAX_EXPONENT} in size")
        if isinstance(node.op, ast.Mult) and any(
            isinstance(side, ast.Constant) and isinstance(side.value, str) for side in (node.left, node.right)
        ):
            self.fail(node, "repeating strings is not allowed")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "range":
            for arg in node.args:
                if not (_is_literal(arg) and isinstance(_literal_value(arg), int)):
                    self.fail(node, "range() takes literal whole numbers only")
                elif abs(_literal_value(arg)) > MAX_RANGE:
                    self.fail(node, f"range() is limited to {MAX_RANGE}")
        self.generic_visit(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        args = node.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
            self.fail(node, "lambdas take plain positional arguments only")
        for default in args.defaults:
            self.visit(default)
        self.scopes.append({a.arg for a in args.args})
        for a in args.args:
            if a.arg.startswith("_"):
                self.fail(a, f"argument {a.arg!r} starts with an underscore")
        self.visit(node.body)
        self.scopes.pop()

    def _visit_comprehension(self, node: ast.ListComp | ast.GeneratorExp | ast.DictComp) -> None:
        self.scopes.append(set())
        for gen in node.generators:
            self.visit(gen.iter)
            for target in ast.walk(gen.target):
                if isinstance(target, ast.Name):
                    if target.id.startswith("_"):
                        self.fail(target, f"name {target.id!r} starts with an underscore")
                    self.scopes[-1].add(target.id)
                elif not isinstance(target, (ast.Tuple, ast.List, ast.Store)):
                    self.fail(target, "comprehension targets must be names")
            for cond in gen.ifs:
                self.visit(cond)
            if gen.is_async:
                self.fail(node, "async comprehensions are not allowed")
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.scopes.pop()

    visit_ListComp = _visit_comprehension
    visit_GeneratorExp = _visit_comprehension
    visit_DictComp = _visit_comprehension


def _is_literal(node: ast.AST) -> bool:
    """A tree of only constants and arithmetic (no names): Python would evaluate it eagerly."""
    return all(not isinstance(n, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)) for n in ast.walk(node))


def _literal_value(node: ast.AST) -> Any:
    """The value of a literal, without evaluating any arithmetic (which could hang)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    return None  # a compound literal such as 9**9: rejected by the callers


def namespace() -> dict[str, Any]:
    """The names an expression sees. Imports JAX: call only once the runtime is configured."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    ns: dict[str, Any] = {"jnp": jnp, "jax": jax, "lax": lax}
    for name in MATH_NAMES:
        ns[name] = jnp.linalg.norm if name == "norm" else getattr(jnp, name)
    for name in CONSTANTS:
        ns[name] = getattr(jnp, name)
    import builtins

    for name in BUILTIN_NAMES:
        ns[name] = getattr(builtins, name)
    return ns


def check_expression(text: str, argnames: Sequence[str], where: str, *, is_lambda: bool) -> ast.Expression:
    """Parse and check an expression or lambda; raise FunctionError if it is not allowed."""
    if len(text) > MAX_LENGTH:
        raise FunctionError(f"expression rejected: longer than {MAX_LENGTH} characters", where=where)
    if "\x00" in text:
        raise FunctionError("expression rejected: it contains a NUL character", where=where)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset}" if exc.offset else ""
        raise FunctionError(f"not a valid Python expression: {exc.msg}{col}", where=where) from None
    except (ValueError, RecursionError, MemoryError):
        raise FunctionError("expression rejected: it cannot be parsed safely", where=where) from None
    if is_lambda and not isinstance(tree.body, ast.Lambda):
        raise FunctionError("expected a single lambda", where=where)
    allowed = set(MATH_NAMES) | set(CONSTANTS) | set(MODULE_NAMES) | set(BUILTIN_NAMES)
    if not is_lambda:
        allowed |= set(argnames)
    try:
        _Checker(allowed, where).visit(tree)
    except RecursionError:
        raise FunctionError("expression rejected: nested too deeply", where=where) from None
    return tree


def compile_expression(text: str, argnames: Sequence[str], where: str, *, is_lambda: bool) -> Callable[..., Any]:
    """Check, then build the callable. Nothing of the user's text runs before the check passes."""
    tree = check_expression(text, argnames, where, is_lambda=is_lambda)
    if not is_lambda:
        # A bare expression becomes a lambda of the primals, in their order.
        lam = ast.Lambda(
            args=ast.arguments(
                posonlyargs=[], args=[ast.arg(arg=n) for n in argnames], kwonlyargs=[], kw_defaults=[], defaults=[]
            ),
            body=tree.body,
        )
        tree = ast.fix_missing_locations(ast.Expression(body=lam))
    code = compile(tree, EXPRESSION_FILE, "eval")
    # No builtins but __import__: JAX's own lazy imports can resolve through the calling frame's
    # builtins. The checker has already refused every underscore name, so the text cannot reach it.
    scope: dict[str, Any] = {"__builtins__": {"__import__": __import__}, **namespace()}
    fn = eval(code, scope)  # noqa: S307 - the tree passed the checker above
    if is_lambda:
        nargs = len(tree.body.args.args) if isinstance(tree.body, ast.Lambda) else 0
        if nargs != len(argnames):
            raise FunctionError(
                f"the lambda takes {nargs} argument(s) but the spec has {len(argnames)} primal(s) ({', '.join(argnames)})",
                where=where,
            )
    return fn  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- modules and files


@contextlib.contextmanager
def _import_path(*folders: Path) -> Iterator[None]:
    """Put folders on sys.path for one import only (no permanent sys.path edits)."""
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for f in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(f)


def _getattr_path(obj: Any, attr: str, origin: str, where: str) -> Callable[..., Any]:
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            from jaxdiff_cli.spec import suggest

            raise FunctionError(f"{origin} has no attribute {part!r}", where=where, hint=suggest(part, names))
        obj = getattr(obj, part)
    if not callable(obj):
        raise FunctionError(f"{origin}:{attr} is a {type(obj).__name__}, not a function", where=where)
    return obj  # type: ignore[no-any-return]


def _load_from_module(modname: str, attr: str, base_dir: Path, where: str) -> Callable[..., Any]:
    try:
        with _import_path(base_dir, Path.cwd()):
            module = importlib.import_module(modname)
            top = sys.modules.get(modname.split(".")[0])
            for found in (getattr(top, "__file__", None), getattr(module, "__file__", None)):
                if found:
                    register_user_code(Path(found).resolve().parent)
    except ModuleNotFoundError as exc:
        if exc.name and modname.startswith(exc.name):
            raise FunctionError(
                f"no module named {exc.name!r}", where=where, hint="is it installed, or next to the spec?"
            ) from None
        raise FunctionError(f"module {modname!r} failed to import: {describe_user_error(exc)}", where=where) from None
    except Exception as exc:  # the user's module raised while importing
        raise FunctionError(f"module {modname!r} failed to import: {describe_user_error(exc)}", where=where) from None
    return _getattr_path(module, attr, modname, where)


def _load_from_file(path_text: str, attr: str, base_dir: Path, where: str) -> Callable[..., Any]:
    path = Path(path_text)
    if not path.is_absolute():
        path = base_dir / path
    if not path.is_file():
        raise FunctionError(f"no such file: {path}", where=where)
    # A unique module name per file, so two specs with a model.py each do not collide.
    modname = "jaxdiff_user_" + re.sub(r"\W", "_", str(path.resolve()))
    register_user_code(path.resolve().parent)
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise FunctionError(f"cannot load {path} as Python", where=where)
    module: ModuleType = importlib.util.module_from_spec(spec)
    try:
        with _import_path(path.resolve().parent):
            sys.modules[modname] = module
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(modname, None)
        raise FunctionError(f"{path.name} failed to import: {describe_user_error(exc)}", where=where) from None
    return _getattr_path(module, attr, path.name, where)
