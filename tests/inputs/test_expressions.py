"""The expression language: escapes refused, legitimate use kept, and a proof by walking the namespace.

A spec is data: every escape below is refused with exit 4 (CLI.md: a rejected expression) and its
canary file never appears. The walk goes through every object an expression can reach (table
entries, values, what the allowed functions return, tracers inside jit/grad/vmap) by the allowed
attribute names and shows none of them is a module, a file writer, a host callback, a registry
mutator, a dtype / NumPy scalar / tree definition / lowered or compiled object, or eval and friends.
"""

from __future__ import annotations

import builtins
import collections
import io
import math
import os
import re
import signal
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from jaxdiff_cli.errors import ExitCode, FunctionError
from jaxdiff_cli.inputs import expressions
from jaxdiff_cli.inputs.expressions import runtime, tables
from jaxdiff_cli.inputs.functions import load_function

from ..conftest import ASSETS, CONFIGS, Cli

REJECTED = "expression rejected"

# (text, what the one-line error says). Each runs as `jaxdiff eval -f TEXT -p x=[1.0, 2.0]` in a
# temporary folder; 'CANARY' is the file an escape would create there.
ESCAPES: list[tuple[str, str]] = [
    # --- the issue's own
    ("lambda x: x + 0*(lambda j: j.interpreters.os.system('touch CANARY'))(jax)", REJECTED),
    ("jnp.sum(x) + 0*len([j.version.subprocess.run(['touch','CANARY']) for j in [jax]])", REJECTED),
    ("lambda x, y=[open('CANARY', 'w')]: x", "lambdas take plain parameters only"),
    ("jnp.dtype('float32').type(1.0).dump('CANARY')", "jnp.dtype is not available"),
    ("x + 0*len(jax.tree_util.register_dataclass(x, ['_'+'_dict_'+'_'], []))", "pytree registry"),
    # --- modules renamed through parameters, comprehensions, defaults, conditionals, containers
    ("(lambda m: m.save('CANARY', x))(jnp)", "attribute 'save' is not allowed on a value"),
    ("(lambda l: l.stop_gradient(x))(lax)", "attribute 'stop_gradient' is not allowed on a value"),
    ("(lambda m: m)(jnp).sum(x)", "jnp is a module, and modules are not values"),
    ("(lambda j: j.sum(x))(jax.numpy)", "jax.numpy is a module"),
    ("[m.save('CANARY', x) for m in [jnp]][0]", REJECTED),
    ("[m for m in (jnp, lax)]", "jnp is a module"),
    ("{k: jax for k in 'ab'}", "jax is a module"),
    ("sum(m.save('CANARY', x) for m in [jnp])", REJECTED),
    ("lambda x, m=jnp: m.save('CANARY', x)", "lambdas take plain parameters only"),
    ("(lambda m=jnp: m.save('CANARY', x))()", "lambdas take plain parameters only"),
    ("(jnp if x else lax).save('CANARY', x)", "jnp is a module"),
    ("(jnp or jax).numpy", "jnp is a module"),
    ("[jnp][0].save('CANARY', x)", "jnp is a module"),
    ("{'m': jnp}['m']", "jnp is a module"),
    ("lambda jnp: jnp.save('CANARY', x)", "would hide the module jnp"),
    ("[os.system('touch CANARY') for os in [x]]", "attribute 'system'"),
    # --- other parameter forms (by-name binding must never meet these)
    ("lambda x, *args: x", "lambdas take plain parameters only"),
    ("lambda x, **kw: x", "lambdas take plain parameters only"),
    ("lambda x, *, y: x", "lambdas take plain parameters only"),
    ("lambda x, /: x", "lambdas take plain parameters only"),
    ("lambda _x: _x", "starts with an underscore"),
    # --- getattr-like tools and Python's own escape hatches
    ("getattr(x, '__class__')", "unknown name 'getattr'"),
    ("vars(x)", "unknown name 'vars'"),
    ("globals()", "unknown name 'globals'"),
    ("type(x)", "unknown name 'type'"),
    ("x.__class__.__mro__", "attribute '__class__' is not allowed on a value"),
    ("().__class__.__bases__[0].__subclasses__()", "attribute '__class__'"),
    ("__import__('os').system('touch CANARY')", "name '__import__' starts with an underscore"),
    ("eval('1')", "unknown name 'eval'"),
    ("exec('open(1)')", "unknown name 'exec'"),
    ("open('CANARY', 'w')", "unknown name 'open'"),
    ("compile('1', 'f', 'eval')", "unknown name 'compile'"),
    ("breakpoint()", "unknown name 'breakpoint'"),
    ("np.sum(x)", "unknown name 'np'"),
    ("os.system('touch CANARY')", "unknown name 'os'"),
    ("sys.modules", "unknown name 'sys'"),
    ("builtins", "unknown name 'builtins'"),
    ("jnp.vectorize(sin).__wrapped__", "jnp.vectorize is not available"),
    ("jax.numpy._src", "jax.numpy._src is not available"),
    ("jax._src", "jax._src is not available"),
    ("jax.extend", "jax.extend is not available"),
    # --- names built at run time
    ("getattr(jnp, 'sa' + 've')('CANARY', x)", "unknown name 'getattr'"),
    ("jnp.sum(x, **{'where': x})", "** unpacking in a call is not allowed"),
    ("jnp.einsum('i->', x, _dot_general=jnp.dot)", "keyword argument '_dot_general'"),
    ("'{0.__class__}'", "strings must be short"),
    ("'%(a)s' % {'a': x}", "'%' formatting of strings is not allowed"),
    ("f'{x}'", "f-strings not allowed"),
    ("b'CANARY'", "bytes constants are not allowed"),
    ("(y := x)", "assignment expressions"),
    # --- dtypes, NumPy scalars, machine limits, host values
    ("x.dtype", "attribute 'dtype' is not allowed on a value"),
    ("x.dtype.type(1).dump('CANARY')", "attribute 'dtype'"),
    ("jnp.float32.dtype", "attribute 'dtype'"),
    ("x.item()", "attribute 'item'"),
    ("x.tolist()", "attribute 'tolist'"),
    ("x.sum().item().__class__", "attribute 'item'"),
    ("jnp.finfo(jnp.float32).max", "jnp.finfo is not available"),
    ("jnp.iinfo('int32')", "jnp.iinfo is not available"),
    ("jnp.result_type(x)", "jnp.result_type is not available"),
    ("x.dump('CANARY')", "expressions cannot read or write files"),
    ("x.tofile('CANARY')", "attribute 'tofile'"),
    ("x.T.dump('CANARY')", "attribute 'dump'"),
    ("x.at[0].set(1.0).dump('CANARY')", "attribute 'dump'"),
    ("x.devices()", "attribute 'devices'"),
    ("x.sharding", "attribute 'sharding'"),
    ("x.addressable_data(0)", "attribute 'addressable_data'"),
    ("x.unsafe_buffer_pointer()", "attribute 'unsafe_buffer_pointer'"),
    ("x.__array__()", "attribute '__array__'"),
    ("x.__reduce__()", "attribute '__reduce__'"),
    # --- custom_jvp objects
    ("jax.nn.relu.defjvps(lambda g, ans, y: g)", "attribute 'defjvps'"),
    ("jax.nn.relu.fun(x)", "attribute 'fun'"),
    ("jax.custom_jvp(sin)", "jax.custom_jvp is not available"),
    ("jax.custom_vjp(sin)", "jax.custom_vjp is not available"),
    # --- jit, lower, compile, jaxprs
    ("jax.jit(sin).lower(x).compile()", "attribute 'lower'"),
    ("jax.jit(sin).trace(x)", "'function' object has no attribute 'trace'"),
    ("jax.jit(sin).eval_shape(x)", "attribute 'eval_shape'"),
    ("jax.jit(sin, compiler_options={'xla_dump_to': 'CANARY'})(x)", "unexpected keyword argument 'compiler_options'"),
    ("jax.checkpoint(sin, policy=lambda p, *a, **k: True)(x)", "lambdas take plain parameters only"),
    ("jax.make_jaxpr(sin)(x)", "jax.make_jaxpr is not available"),
    ("jax.eval_shape(sin, x)", "jax.eval_shape is not available"),
    # --- tree_util registries and tree definitions
    ("jax.tree_util.register_pytree_node(dict, len, len)", "pytree registry"),
    ("jax.tree_util.tree_structure(x)", "jax.tree_util.tree_structure is not available"),
    ("jax.tree.flatten(x)[1]", "tree definitions are not values"),
    ("jax.tree.structure(x).unflatten", "jax.tree.structure is not available"),
    ("jax.tree_util.Partial(sin)", "jax.tree_util.Partial is not available"),
    ("jax.vjp(sin, x)[1].func", "attribute 'func'"),
    ("jax.linearize(sin, x)[1].args", "attribute 'args'"),
    # --- host callbacks, configuration, devices, files
    ("jax.pure_callback(len, x, x)", "jax.pure_callback is not available"),
    ("jax.debug.callback(len, x)", "jax.debug is not available"),
    ("jax.experimental.io_callback(len, None, x)", "jax.experimental is not available"),
    ("jax.config.update('jax_enable_x64', True)", "cannot change JAX's configuration"),
    ("jax.device_put(x)", "jax.device_put is not available"),
    ("jax.devices()", "jax.devices is not available"),
    ("jnp.save('CANARY', x)", "expressions cannot read or write files"),
    ("jnp.load('CANARY')", "jnp.load is not available"),
    ("jax.numpy.fromfile('CANARY')", "jax.numpy.fromfile is not available"),
    # --- modules as values, function internals
    ("jnp", "jnp is a module"),
    ("jax.nn", "jax.nn is a module"),
    ("jax.scipy", "jax.scipy is a module"),
    ("jnp.linalg", "jnp.linalg is a module"),
    ("lax.linalg", "lax.linalg is not available"),
    ("sin.__globals__", "attribute '__globals__'"),
    ("(lambda: 0).__code__", "attribute '__code__'"),
    ("[v for v in (y for y in [x]).gi_frame.f_globals]", "attribute 'gi_frame'"),
    ("lax.stop_gradient.__self__", "attribute '__self__'"),
    ("jnp.add.reduce(x)", "attribute 'reduce'"),
]


def test_catalogue_is_big_enough() -> None:
    assert len(ESCAPES) >= 50
    assert len({text for text, _ in ESCAPES}) == len(ESCAPES)


@pytest.mark.parametrize(("text", "message"), ESCAPES, ids=[e[0][:60] for e in ESCAPES])
def test_escape_is_refused(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    ran = cli("eval", "-f", text, "-p", "x=[1.0, 2.0]")
    assert ran.exit_code == ExitCode.FUNCTION, ran.stderr
    assert message in ran.stderr, ran.stderr
    assert ran.stderr.startswith("error: <command line>: function: ") and ran.stderr.count("\n") == 1, ran.stderr
    assert "Traceback" not in ran.stderr and ran.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no CANARY, nothing at all


def test_escapes_in_a_spec_are_refused_by_check(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`jaxdiff check` on specs from a pull request: each escape is exit 4, the others still checked."""
    monkeypatch.chdir(tmp_path)
    for i, (text, _) in enumerate(ESCAPES[:20]):
        (tmp_path / f"s{i:02}.yaml").write_text(yaml.safe_dump({"function": text, "primals": {"x": [1.0, 2.0]}}))
    ran = cli("check", "s*.yaml", "--json")
    assert ran.exit_code == ExitCode.FUNCTION, ran.stderr
    specs = ran.json()["specs"]
    assert len(specs) == 20 and all(s["error"]["exit_code"] == 4 for s in specs)
    assert not (tmp_path / "CANARY").exists()


def _jaxdiff() -> str:
    return str(Path(sys.executable).parent / "jaxdiff")


@pytest.mark.slow
def test_the_issues_escapes_through_the_real_command(tmp_path: Path) -> None:
    """As the issue tried them: a real process each (all at once), a canary that must not appear."""
    canary = tmp_path / "owned"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "function": f"jnp.sum(x) + 0*len([j.version.subprocess.run(['touch','{canary}']) for j in [jax]])",
                "primals": {"x": [1.0]},
            }
        )
    )
    commands = [
        ["eval", "-f", f"lambda x: x + 0*(lambda j: j.interpreters.os.system('id > {canary}'))(jax)", "-p", "x=1.0"],
        ["check", str(spec)],
        ["eval", "-f", f"jnp.dtype('float32').type(1.0).dump('{canary}')", "-p", "x=1.0"],
        ["eval", "-f", "x + 0*len(jax.tree_util.register_dataclass(x, ['_'+'_dict_'+'_'], []))", "-p", "x=1.0"],
    ]
    procs = [subprocess.Popen([_jaxdiff(), *c], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 4, err
        assert b"Traceback" not in err
    assert not canary.exists()


# --------------------------------------------------------------------------- legitimate use


LEGITIMATE = [
    ("lambda x, w: (x + w) * x**2", ("x", "w")),
    ("jnp.einsum('ij,j->i', W, x)", ("x", "W")),
    ("jnp.linalg.norm(x, ord=2) + norm(x)", ("x",)),
    ("jax.nn.softmax(x) + jax.nn.relu(x) + jax.numpy.tanh(x)", ("x",)),
    ("jax.scipy.special.logsumexp(x) + jax.scipy.special.erf(x)", ("x",)),
    ("x.T @ x + x.sum() + x[1:].mean() + x.reshape(-1, 1).squeeze().max()", ("x",)),
    ("x.at[0].set(2.0).at[1].add(1.0) * x.at[0].get()", ("x",)),
    ("jnp.where(x > 0, x, 0.1 * x)", ("x",)),
    ("x ** -2 + x ** 0.5 + 2 ** 10 + 10**8 + (2**1000 // 2**999)", ("x",)),
    ("{'a': x}['a'] + p['W'].sum() + sum([jnp.sum(v) for v in p.values()])", ("x", "p")),
    ("jnp.stack([x[i] for i in range(3)])", ("x",)),
    ("jnp.stack([x[i] * x[j] for i in range(len(x)) for j in range(len(x))])", ("x",)),
    ("jnp.array([v * i for i, v in enumerate(x)]) + jnp.array(list(zip(x, x)))[:, 0]", ("x",)),
    ("lax.fori_loop(0, 3, lambda i, c: c * x, x) + lax.cond(True, lambda v: v, lambda v: -v, x)", ("x",)),
    ("lax.scan(lambda c, v: (c + v, c * v), 0.0, x)[1] + lax.stop_gradient(x)", ("x",)),
    ("jax.grad(lambda v: jnp.sum(sin(v) ** 2))(x) + jax.vmap(jnp.dot, (0, None))(jnp.outer(x, x), x)", ("x",)),
    ("jax.jit(lambda v: v * 2)(x) + jax.hessian(lambda v: jnp.sum(v**3))(x) @ x + jax.jacfwd(sin)(x).sum(0)", ("x",)),
    ("jax.jvp(sin, (x,), (x,))[1] + jax.vjp(cos, x)[1](x)[0] + jax.checkpoint(exp)(x)", ("x",)),
    ("jax.tree.map(lambda a: a * 2, {'a': x})['a'] + jax.tree_util.tree_leaves([x])[0]", ("x",)),
    ("x.astype(jnp.float32) + jnp.float32(2.0) + jnp.zeros(3, jnp.float32) + jnp.asarray(1, 'float32')", ("x",)),
    ("x[..., None][:, 0] + x[jnp.newaxis][0] + pi + e - x * inf * 0 + 0 * nan * 0", ("x",)),
    ("jnp.pad(x, 1, mode='edge')[1:-1] + jnp.diff(jnp.concatenate([x, x]))[:3]", ("x",)),
    ("jax.random.normal(jax.random.PRNGKey(0), (3,)) * x + abs(x) + round(x) + max(x) + min(x)", ("x",)),
    ("x if True else -x", ("x",)),
    ("(lambda f: f(f(x)))(lambda v: v * 2)", ("x",)),
    ("dict(a=x)['a'] + tuple(x)[0] + list(x)[1] + float(1) + int(2)", ("x",)),
]


@pytest.mark.parametrize(("text", "names"), LEGITIMATE, ids=[t for t, _ in LEGITIMATE])
def test_legitimate_expressions_load_and_trace(text: str, names: tuple[str, ...]) -> None:
    import jax
    import jax.numpy as jnp

    loaded = load_function(text, names, ASSETS, "spec.yaml: function")
    order = loaded.params.names  # primals bind by name: call in the function's own order
    values = {"x": jnp.arange(1.0, 4.0), "w": jnp.ones(3), "W": jnp.eye(3), "p": {"W": jnp.eye(2)}}
    out = jax.eval_shape(loaded.bind(order), *(values[n] for n in order))
    assert jax.tree.leaves(out)


def test_every_config_function_still_loads() -> None:
    """Every function in configs/ passes the new checker (test_configs and test_check run them all)."""
    from jaxdiff_cli.inputs.cases import load_cases
    from jaxdiff_cli.inputs.spec import Overrides

    for path in sorted(CONFIGS.glob("*.yaml")):
        for case in load_cases(str(path), Overrides(no_code=False), need_steps=False):
            assert load_function(case.spec.function, tuple(case.spec.primals), case.spec.base_dir, "f").fn


def test_the_tables_resolve_in_this_jax() -> None:
    names = expressions.namespace()
    assert len(names) == len(expressions.FLAT_NAMES) + len(expressions.DOTTED_NAMES)
    for key, value in names.items():
        assert value is None or isinstance(value, (float, str)) or callable(value), key


def test_lambda_parameters_are_checked_before_anything_runs(cli: Cli) -> None:
    # Primals bind by name: a lambda parameter without a primal is bad input (exit 3), found before any call.
    ran = cli("eval", "-f", "lambda x, w: jnp.save('CANARY', x)", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and "expression rejected" in ran.stderr  # the checker runs first of all
    ran = cli("eval", "-f", "lambda x, w: x", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.BAD_INPUT and "parameter 'w' has no primal" in ran.stderr
    with pytest.raises(FunctionError, match="lambdas take plain parameters only"):
        load_function("lambda x, y=jnp.save('CANARY', 1): x", ("x", "y"), ASSETS, "f")


def test_shadowing_and_scopes_follow_python() -> None:
    import jax.numpy as jnp

    # A parameter hides a table name; a comprehension variable is not seen outside it.
    assert float(load_function("lambda sin: sin * 2", ("sin",), ASSETS, "f").fn(jnp.float32(3.0))) == 6.0
    with pytest.raises(FunctionError, match="unknown name 'i'"):
        load_function("[i for i in range(3)][0] + i", ("x",), ASSETS, "f")
    with pytest.raises(FunctionError, match="a primal named '_x' cannot be used"):
        load_function("_x * 2", ("_x",), ASSETS, "f")


# --------------------------------------------------------------------------- bounded work

BOUNDED = [
    ("((9**999)**999)**999", REJECTED),
    ("9**9**9", REJECTED),
    ("2**100000", REJECTED),
    ("10**(10**10)", REJECTED),
    ("1 << 100000000", "shift operators are not allowed"),
    ("[0]*10**10", "repeating a sequence"),
    ("'a'*10**9", "repeating a sequence"),
    ("[x]*10**6", "repeating a sequence"),
    ("(0,) * (10**40)", "repeating a sequence"),
    ("[0 for i in range(10**4) for j in range(10**4)]", "this comprehension evaluates"),
    ("[[0 for j in range(1000)] for i in range(1000)]", "this comprehension evaluates"),
    ("list(range(10**9))", "range() of 1000000000 items"),
    ("'%0999999999d' % 0", "'%' formatting of strings is not allowed"),
    ("x" + "[0]" * 100, "nested deeper than 60 levels"),
    ("-" * 200 + "x", "nested deeper than 60 levels"),
    ("+".join(["x"] * 500), "nested deeper than 60 levels"),
    ("(" * 300 + "x" + ")" * 300, "not a valid Python expression"),
    ("x + " + "1 + " * 5000 + "1", "longer than 10000 characters"),
]
# Known only at run time: guarded at each operation and charged against the work budget.
BOUNDED_AT_RUN_TIME = [
    ("len(x)**len(x)**len(x) + x", "an integer of about"),
    ("jnp.sum(jnp.stack([v for v in x for w in x for u in x]))", "evaluated more than 100000 syntax nodes"),
    ("(lambda t: t(t)(t)(t)(lambda z: z + 1))(lambda f: lambda y: f(f(y)))(x)", "evaluated more than 100000"),
    ("(lambda d: " + "d(" * 14 + "[x]" + ")" * 14 + ")(lambda l: l + l)", "a sequence of 16384 items"),
    ("x + (lambda f: f(f))(lambda f: f(f))", "RecursionError"),  # uses x: an unused primal is exit 3
    ("'%s' * len(x) % tuple(x)", "'%' formatting of strings"),
    ("list(range(len(x) * 10**6))", "a sequence of"),
    ("jnp.diff(x, n=10**9)", "n is a whole number up to 64"),
    ("jnp.einsum('i,i,i->', x, x, x, optimize='optimal')", "einsum(optimize='optimal') is not available"),
    ("x + lax.scan(lambda c, v: (c, v), 0.0, None, length=10**9, unroll=True)[0]", "unexpected keyword argument 'unroll'"),
]
BOUNDED += BOUNDED_AT_RUN_TIME


@pytest.fixture
def budgets(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every work budget an expression's evaluation gets (one per call of the function), kept to be read."""
    made: list[Any] = []

    class Kept(runtime._Budget):
        __slots__ = ()

        def __init__(self, where: str | None) -> None:
            super().__init__(where)
            made.append(self)

    monkeypatch.setattr(runtime, "_Budget", Kept)
    return made


@pytest.mark.parametrize(("text", "message"), BOUNDED, ids=[b[0][:50] for b in BOUNDED])
def test_unbounded_work_is_refused_fast(cli: Cli, budgets: list[Any], xla_compiles: list[Any], text: str, message: str) -> None:
    # Fast without a clock: nothing is compiled, and what ran stayed within the work budget (a
    # refusal at check time runs nothing at all; one at run time stops within one charge of the
    # limit, and no charge is larger than the limit itself).
    ran = cli("eval", "-f", text, "-p", "x={zeros: [1000]}")
    assert ran.exit_code == ExitCode.FUNCTION, ran.stderr
    assert message in ran.stderr, ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
    assert xla_compiles == []
    if BOUNDED.index((text, message)) < BOUNDED.index(BOUNDED_AT_RUN_TIME[0]):
        assert budgets == [], "refused by the checker: nothing of it may run"
    else:
        assert budgets and all(expressions.MAX_WORK - b.left <= 2 * expressions.MAX_WORK for b in budgets)


# --------------------------------------------------------------------------- module and file functions


def test_no_code_refuses_module_and_file_functions(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.py").write_text("import pathlib\n\ndef f(x):\n    pathlib.Path('CANARY').touch()\n    return x\n")
    (tmp_path / "spec.yaml").write_text("function: f.py:f\nprimals: {x: 1.0}\nrun: [eval]\n")
    for args in (["eval", "spec.yaml", "--no-code"], ["eval", "-f", "f.py:f", "-p", "x=1", "--no-code"]):
        ran = cli(*args)
        assert ran.exit_code == ExitCode.FUNCTION and "is a file function and --no-code is on" in ran.stderr, ran.stderr
    ran = cli("eval", "-f", "userpkg.model:loss", "-p", "x=1", "--no-code")
    assert ran.exit_code == ExitCode.FUNCTION and "is a module function and --no-code is on" in ran.stderr
    monkeypatch.setenv("JAXDIFF_NO_CODE", "1")
    for args in (["check", "spec.yaml"], ["run", "spec.yaml"], ["bench", "spec.yaml"], ["jacobian", "spec.yaml"]):
        ran = cli(*args)
        assert ran.exit_code == ExitCode.FUNCTION and "--no-code" in ran.stderr + ran.stdout, (args, ran.stderr)
    assert not (tmp_path / "CANARY").exists()
    assert cli("eval", "-f", "x * 2", "-p", "x=1").exit_code == ExitCode.OK  # expressions still run
    monkeypatch.setenv("JAXDIFF_NO_CODE", "0")
    assert cli("eval", "spec.yaml").exit_code == ExitCode.OK and (tmp_path / "CANARY").exists()  # trusted: runs


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        ("exits", "the function raised SystemExit: 3 (exits.py, line 10)"),
        ("interrupts", "the function raised KeyboardInterrupt (exits.py, line 14)"),
        ("generator_exit", "the function raised GeneratorExit (exits.py, line 18)"),
        ("booms", "the function raised Boom: its own BaseException (exits.py, line 33)"),
    ],
)
def test_a_function_ending_the_process_is_its_error(cli: Cli, fn: str, message: str) -> None:
    ran = cli("eval", "-f", f"{ASSETS}/exits.py:{fn}", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION, ran.stderr
    assert message in ran.stderr and ran.stderr.count("\n") == 1, ran.stderr


def test_a_module_exiting_on_import_is_its_error(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = cli("eval", "-f", f"{ASSETS}/exits_on_import.py:f", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and "exits_on_import.py failed to import: SystemExit: 7" in ran.stderr, ran.stderr
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exits.py").write_text((ASSETS / "exits.py").read_text())
    (tmp_path / "a.yaml").write_text("function: exits.py:exits\nprimals: {x: 1.0}\n")
    (tmp_path / "b.yaml").write_text("function: x * 2\nprimals: {x: 1.0}\n")
    ran = cli("check", "a.yaml", "b.yaml", "--json")
    assert ran.exit_code == ExitCode.FUNCTION  # reported for a.yaml; b.yaml still checked
    a, b = ran.json()["specs"]
    assert "SystemExit" in a["error"]["message"] and b["passed"] is True


def test_ctrl_c_inside_a_user_function_is_an_interruption(tmp_path: Path) -> None:
    """A real SIGINT while the user's code runs: 'interrupted', 130 (not the function's error)."""
    marker = tmp_path / "ready"
    env = {**os.environ, "JAXDIFF_TEST_MARKER": str(marker)}
    for sig, code, word in ((signal.SIGINT, 130, b"interrupted"), (signal.SIGTERM, 143, b"terminated")):
        marker.unlink(missing_ok=True)
        proc = subprocess.Popen(
            [_jaxdiff(), "eval", "-f", f"{ASSETS}/exits.py:waits", "-p", "x=1.0"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        assert err.strip() == word


# --------------------------------------------------------------------------- the walk

# What no expression may ever hold.
_BAD_NAMES = frozenset(
    "dump dumps tofile save savez savez_compressed savetxt load loadtxt fromfile system popen spawnv execv "
    "open eval exec compile __import__ getattr setattr delattr globals vars locals breakpoint input exit quit print "
    "lower defjvp defjvps defvjp def_impl def_abstract_eval register_pytree_node register_dataclass register_static "
    "register_pytree_with_keys register_pytree_node_class pure_callback io_callback callback update "
    "copy_to_host_async unsafe_buffer_pointer addressable_data delete".split()
)


def _forbidden() -> tuple[dict[int, str], tuple[type, ...]]:
    import jax
    import jax.numpy as jnp
    import jax.stages
    import jax.tree_util
    from jax import lax
    from jax.experimental import io_callback

    objects: dict[str, Any] = {
        "os.system": os.system, "os.popen": os.popen, "subprocess.run": subprocess.run, "subprocess.Popen": subprocess.Popen,
        "io.open": io.open, "np.save": np.save, "np.load": np.load, "np.ndarray.dump": np.ndarray.dump,
        "np.ndarray.tofile": np.ndarray.tofile, "jnp.save": jnp.save, "jnp.load": jnp.load, "jax.config": jax.config,
        "jax.config.update": jax.config.update, "jax.pure_callback": jax.pure_callback, "jax.debug.callback": jax.debug.callback,
        "jax.debug.print": jax.debug.print, "io_callback": io_callback, "jax.make_jaxpr": jax.make_jaxpr,
        "jax.device_put": jax.device_put, "jax.jit (raw: compiler_options)": jax.jit,
        "jax.checkpoint (raw: policy)": jax.checkpoint, "lax.scan (raw: unroll)": lax.scan, "jnp.einsum (raw)": jnp.einsum,
        "register_pytree_node": jax.tree_util.register_pytree_node, "register_dataclass": jax.tree_util.register_dataclass,
        "jnp.dtype": jnp.dtype, "jnp.finfo": jnp.finfo, "jnp.iinfo": jnp.iinfo, "type": type, "object": object,
        **{f"builtins.{n}": getattr(builtins, n) for n in (
            "open", "eval", "exec", "compile", "__import__", "getattr", "setattr", "delattr", "globals", "vars", "locals",
            "breakpoint", "input", "print", "memoryview", "super", "classmethod", "staticmethod", "property",
        )},
    }  # fmt: skip
    types_: tuple[type, ...] = (
        types.ModuleType, types.FrameType, types.CodeType, types.TracebackType, np.dtype, np.generic, np.finfo, np.iinfo,
        np.ndarray, jax.tree_util.PyTreeDef, jax.stages.Lowered, jax.stages.Compiled, jax.stages.Traced,
        jax.custom_jvp, jax.custom_vjp, io.IOBase, jax.sharding.Sharding, type(jax.devices()[0]),
    )  # fmt: skip
    return {id(v): k for k, v in objects.items()}, types_


def _dangerous(obj: Any, forbidden: dict[int, str], bad_types: tuple[type, ...]) -> str | None:
    if id(obj) in forbidden:
        return forbidden[id(obj)]
    if isinstance(obj, bad_types):
        return f"a {type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, type) and issubclass(obj, (np.generic, np.dtype, BaseException, types.ModuleType)):
        return f"the class {obj.__qualname__}"
    name = getattr(obj, "__name__", None) if callable(obj) else None
    if isinstance(name, str) and name in _BAD_NAMES:
        return f"a callable named {name}"
    return None


def _walk(roots: dict[str, Any], x: Any = None, depth: int = 6, called: frozenset[int] = frozenset()) -> dict[str, Any]:
    """Every object reachable from the roots through VALUE_ATTRS, items of containers, x.at[i], and
    what calling a reachable callable gives (methods, the functions transformations return).

    Objects of the same type expose the same attributes, so a value type is walked once (its
    attributes do not depend on the instance); functions, classes and containers each once. The
    table's own functions (``called``: their ids) are called by _call_everything instead.
    """
    patterns: list[tuple[Any, ...]] = [(), (x,), (0,), (x, x), ((0,),)]
    found: dict[str, Any] = {}
    seen: set[Any] = set()
    keep: list[Any] = []  # ids stay unique while the objects live
    queue = collections.deque((path, obj, 0) for path, obj in roots.items())
    while queue:
        path, obj, d = queue.popleft()
        keep.append(obj)
        by_id = isinstance(obj, (type, types.ModuleType, types.FunctionType, tuple, list, dict, str))
        key = id(obj) if by_id else (type(obj), getattr(obj, "__qualname__", None) if callable(obj) else None)
        if key in seen:
            continue
        seen.add(key)
        found[path] = obj
        if d >= depth:
            continue
        for attr in expressions.VALUE_ATTRS:
            try:
                child = getattr(obj, attr)
            except Exception:
                continue
            queue.append((f"{path}.{attr}", child, d + 1))
        if isinstance(obj, (tuple, list)):
            queue.extend((f"{path}[{i}]", v, d + 1) for i, v in enumerate(obj))
        elif isinstance(obj, dict):
            queue.extend((f"{path}[{k!r}]", v, d + 1) for k, v in obj.items())
        if type(obj).__name__ == "_IndexUpdateHelper":
            queue.append((f"{path}[0]", obj[0], d + 1))
        if callable(obj) and not isinstance(obj, type) and id(obj) not in called:
            for args in patterns:
                try:
                    out = obj(*args)
                except Exception:
                    continue
                queue.append((f"{path}(...)", out, d + 1))
                break
    return found


def _f(v: Any) -> Any:
    import jax.numpy as jnp

    return jnp.sum(v**2)


def _special_calls(x: Any, m: Any, key: Any) -> dict[str, tuple[Any, ...]]:
    """Arguments for the allowed functions the generic patterns do not fit."""
    import jax.numpy as jnp

    c = m.reshape(1, 1, 3, 3)
    return {
        "dict": ([("a", x)],), "jnp.broadcast_to": (x, (2, 3)), "jnp.dsplit": (x.reshape(1, 1, 3), 3),
        "jnp.full": ((3,), 1.0), "jnp.moveaxis": (m, 0, 1), "jnp.swapaxes": (m, 0, 1),
        "jnp.take_along_axis": (x, jnp.arange(3), 0), "jnp.linalg.matrix_power": (m, 3),
        "lax.scan": (lambda cc, v: (cc + v, v), 0.0, x), "lax.while_loop": (lambda cc: cc < 3, lambda cc: cc + 1, 0),
        "lax.cond": (True, lambda v: v, lambda v: -v, x), "lax.switch": (1, [lambda v: v, lambda v: -v], x),
        "lax.associative_scan": (lambda a, b: a + b, x), "lax.dynamic_slice": (x, (0,), (2,)),
        "lax.dynamic_update_slice": (x, x[:1], (0,)), "lax.dynamic_update_slice_in_dim": (x, x[:1], 0, 0),
        "lax.slice": (x, (0,), (2,)), "lax.concatenate": ([x, x], 0), "lax.pad": (x, 0.0, [(1, 1, 0)]),
        "lax.dot_general": (m, m, (((1,), (0,)), ((), ()))), "lax.conv": (c, c, (1, 1), "SAME"),
        "lax.conv_general_dilated": (c, c, (1, 1), "SAME"), "lax.broadcast_in_dim": (x, (2, 3), (1,)),
        "lax.transpose": (m, (1, 0)), "lax.rev": (x, (0,)), "lax.squeeze": (x.reshape(1, 3), (0,)),
        "lax.expand_dims": (x, (0,)), "lax.clamp": (0.0, x, 1.0), "lax.iota": ("int32", 3), "lax.full": ((3,), 1.0),
        "lax.real": (x * (1 + 1j),), "lax.imag": (x * (1 + 1j),), "lax.betainc": (x, x, x / 4),
        "lax.reduce_sum": (x, (0,)), "lax.reduce_prod": (x, (0,)), "lax.reduce_max": (x, (0,)), "lax.reduce_min": (x, (0,)),
        "jax.nn.glu": (jnp.ones(4),), "jax.scipy.special.polygamma": (1, x), "jax.random.fold_in": (key, 1),
        "jax.random.categorical": (key, x), "jax.random.randint": (key, (3,), 0, 5), "jax.random.permutation": (key, 5),
        "jax.random.truncated_normal": (key, -1.0, 1.0, (3,)),
    }  # fmt: skip


def _call_everything(x: Any, m: Any) -> tuple[dict[str, Any], list[str]]:
    """Call every allowed function (once per target, aliases share one) on small arguments.

    Returns what each call gave, and the functions no pattern fitted.
    """
    import jax

    key = jax.random.PRNGKey(0)
    generic: list[tuple[Any, ...]] = [
        (x,), (x, x), (x, 1), (m,), (m, m), (m, x), (_f,), (_f, x), (_f, (x,), (x,)), (0, 3, lambda i, c: c + x, x),
        (key,), (key, (3,)), (x > 0, x, x), ("i->", x), (3,), ((3,),), (x, (3, 1)), ([x, x],), (x, "float32"),
        (m, 1, 2), (x, 0, 1), (x, x, x), (x, 0.5, 2.0), (m, m, m), (x, 3),
    ]  # fmt: skip
    special = _special_calls(x, m, key)
    results: dict[str, Any] = {}
    unfitted = []
    targets: dict[tuple[str, str], str] = {}
    for name, target in {**tables.FLAT, **tables.DOTTED}.items():
        targets.setdefault(target, name)
    for target, name in targets.items():
        fn = expressions.resolve(*target)
        if not callable(fn):
            continue
        for args in [special[name]] if name in special else generic:
            try:
                results[name] = fn(*args)
            except Exception:
                continue
            break
        else:
            unfitted.append(name)
    return results, unfitted


def _values(x: Any) -> dict[str, Any]:
    """Values an expression can make from an array x (concrete or a tracer), besides calls."""
    d = {"a": x}
    return {
        "x": x, "x > 1": x > 1, "x * 1j": x * 1j, "1": 1, "1.5": 1.5, "1j": 1j, "True": True, "None": None,
        "'ij'": "ij", "...": ..., "[x, 1]": [x, 1], "(x, 1.0)": (x, 1.0), "{'a': x}": d, "d.items()": d.items(),
        "d.keys()": d.keys(), "d.values()": d.values(), "slice": slice(1, 2),
        "a lambda": load_function("lambda v: v * 2", ("v",), ASSETS, "f").fn,
        "a lambda an expression returns": expressions.compile(
            expressions.check("lambda v: lambda w: w", ("v",), "f", is_lambda=True), "f"
        )(1),
        "range(3)": runtime._range(3), "zip(x, x)": runtime._zip(x, x), "enumerate(x)": runtime._enumerate(x),
        "a comprehension's iterator": runtime._g_iter(x, 1),
    }  # fmt: skip


def test_walk_reaches_nothing_dangerous() -> None:
    import jax
    import jax.numpy as jnp

    forbidden, bad_types = _forbidden()
    namespace = expressions.namespace()
    table = frozenset(id(v) for v in namespace.values())
    reached: dict[str, Any] = {}

    # Concrete values, attributes only (calling their methods would compile each one): the table
    # itself, arrays of every kind an expression meets, and the Python values it can build.
    x = jnp.arange(1.0, 4.0)
    concrete = {"int array": jnp.arange(3), "PRNGKey": jax.random.PRNGKey(0), "typed key": jax.random.key(0), **_values(x)}
    reached.update({f"concrete: {k}": o for k, o in _walk({**namespace, **concrete}, x, called=_EVERYTHING).items()})
    unfitted: list[str] = []

    def traced(v: Any) -> Any:
        # Inside a trace nothing compiles: call every allowed function, then walk the tracer, the
        # values made from it and every result, calling whatever callable the walk reaches.
        results, missing = _call_everything(v, jnp.outer(v, v) + jnp.eye(3))
        if type(v).__name__ == "DynamicJaxprTracer":  # some have no derivative rules: under jit, all fit
            unfitted.extend(missing)
        roots = {**_values(v), **{f"{k}(...)": r for k, r in results.items()}}
        reached.update({f"{type(v).__name__}: {k}": o for k, o in _walk(roots, v, called=table).items()})
        return jnp.sum(v)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float64 names without x64, invalid casts of the probe
        jax.eval_shape(traced, x)  # jit
        jax.eval_shape(jax.grad(traced), x)  # reverse mode
        jax.eval_shape(lambda v: jax.jvp(traced, (v,), (v,)), x)  # forward mode
        jax.eval_shape(jax.vmap(traced), jnp.stack([x, x]))  # batching
    assert unfitted == [], f"add a call for these to _special_calls: {sorted(set(unfitted))}"
    bad = {path: why for path, obj in reached.items() if (why := _dangerous(obj, forbidden, bad_types))}
    assert bad == {}, bad
    # Not vacuous: the walk saw the tracers of each transformation and hundreds of functions.
    kinds = collections.Counter(type(o).__name__ for o in reached.values())
    tracers = {"DynamicJaxprTracer", "LinearizeTracer", "JVPTracer", "BatchTracer"}
    assert tracers | {"ArrayImpl", "_IndexUpdateRef", "DTypeName"} <= set(kinds), kinds
    assert kinds["function"] > 500


class _Everything(frozenset[int]):
    """``called=`` for a walk that calls nothing."""

    def __contains__(self, item: object) -> bool:
        return True


_EVERYTHING = _Everything()


def test_the_walk_would_catch_a_leak() -> None:
    """The predicate is not toothless: the objects the old blocklist let through are caught."""
    import jax.numpy as jnp

    forbidden, bad_types = _forbidden()
    leaks = {
        "jax": __import__("jax"), "np.float32(1)": np.float32(1), "dtype": jnp.dtype("float32"), "finfo": jnp.finfo("float32"),
        "x.dump": np.ones(1).dump, "register": __import__("jax").tree_util.register_dataclass, "os": os,
    }  # fmt: skip
    assert all(_dangerous(obj, forbidden, bad_types) for obj in leaks.values())
    found = _walk({"namespace with a leak": {"sin": jnp.sin, "leak": os}})
    assert any(_dangerous(o, forbidden, bad_types) for o in found.values())
    # What calling a reachable method returns is walked too: a raw jax.jit would be caught by .trace.
    found = _walk({"raw jit": __import__("jax").jit(jnp.sin)}, jnp.ones(2), depth=2)
    assert any(_dangerous(o, forbidden, bad_types) for o in found.values())


def test_table_sizes() -> None:
    sizes = expressions.table_sizes()
    assert sizes["value attributes"] == len(expressions.VALUE_ATTRS) < 60
    assert all(n > 0 for n in sizes.values())


# --------------------------------------------------------------------------- hints for honest users

# (text, what to write instead, the value of x=1.0 through Python's own math, an oracle that shares
# nothing with JAX). The suggested rewrite must load and give that value: a hint never names a
# table entry that is not there.
HABITS = [
    ("math.pi * x", "jnp.pi", math.pi),
    ("numpy.sin(x)", "jnp.sin", math.sin(1.0)),
    ("np.sin(x)", "jnp.sin", math.sin(1.0)),
    ("np.linalg.norm(x)", "jnp.linalg.norm", 1.0),
    ("scipy.special.erf(x)", "jax.scipy.special.erf", math.erf(1.0)),
    ("math.erf(x)", "jax.scipy.special.erf", math.erf(1.0)),
    ("cmath.exp(x)", "jnp.exp", math.e),
    ("jnp.relu(x)", "jax.nn.relu", 1.0),
    ("isnan(x)", "jnp.isnan", False),
]


@pytest.mark.parametrize(("text", "instead", "value"), HABITS, ids=[h[0] for h in HABITS])
def test_modules_from_habit_get_the_table_entry_of_that_name(cli: Cli, text: str, instead: str, value: object) -> None:
    ran = cli("eval", "-f", text, "-p", "x=1.0", "--json")
    assert ran.exit_code == ExitCode.FUNCTION
    message = ran.json()["error"]["message"]
    assert f"write {instead}:" in message or f"did you mean '{instead}'?" in message, message
    if text.split(".")[0] in ("math", "numpy", "np", "scipy", "cmath"):
        assert "expressions see jnp (jax.numpy), jax and lax, not math, numpy or scipy" in message
    root = text.split("(")[0].split(" ")[0]
    fixed = cli("eval", "-f", text.replace(root, instead, 1), "-p", "x=1.0", "--json")
    assert fixed.exit_code == ExitCode.OK, fixed.stderr
    assert fixed.outputs()["value"] == pytest.approx(value, rel=1e-6)


def test_sorted_of_a_dicts_keys(cli: Cli) -> None:
    # Issue 20.1: a pytree's leaves in a fixed order; sorted items are charged like list().
    fn = "lambda p: jnp.stack([p[k] for k in sorted(p.keys(), reverse=True)]) * jnp.arange(1.0, 3.0)"
    ran = cli("eval", "-f", fn, "-p", "p={a: 1.0, b: 2.0}", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.outputs()["value"].tolist() == [2.0, 2.0]  # [p['b'], p['a']] * [1, 2]
    ran = cli("eval", "-f", "x + len(sorted(range(10**6)))", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and "range() of 1000000 items" in ran.stderr, ran.stderr


def test_a_module_path_without_a_counterpart_says_so(cli: Cli) -> None:
    # (math.factorial was the example until jax.scipy.special.factorial joined the tables, issue 20.)
    ran = cli("eval", "-f", "math.isqrt(3) * x", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION
    assert "unknown name 'math'" in ran.stderr and "math.isqrt has no counterpart in the tables" in ran.stderr
    ran = cli("eval", "-f", "math.factorial(3) * x", "-p", "x=1.0")
    assert "write jax.scipy.special.factorial" in ran.stderr, ran.stderr


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("import numpy", "statements are not allowed, imports neither: jnp, jax and lax are there already"),
        ("from math import pi", "imports neither"),
        ("def f(x): return x", "statements (def, import, assignments, return) are not allowed: write a lambda"),
        ("y = x ** 2", "put the code in a file.py:function"),
    ],
)
def test_statements_get_a_hint(cli: Cli, text: str, hint: str) -> None:
    ran = cli("eval", "-f", text, "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and ran.stderr.count("\n") == 1
    assert "not a valid Python expression: invalid syntax" in ran.stderr and hint in ran.stderr, ran.stderr


def test_a_syntax_error_that_is_no_statement_gets_no_statement_hint(cli: Cli) -> None:
    ran = cli("eval", "-f", "x +* 2", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and "statements" not in ran.stderr


def test_print_is_explained_not_matched_to_int(cli: Cli) -> None:
    ran = cli("eval", "-f", "print(x)", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION
    assert "unknown name 'print'" in ran.stderr and "nothing is printed" in ran.stderr
    assert "did you mean" not in ran.stderr


def test_a_typo_still_gets_its_did_you_mean(cli: Cli) -> None:
    assert "did you mean 'sin'?" in cli("eval", "-f", "sine(x)", "-p", "x=1.0").stderr
    assert "did you mean 'jnp.sin'?" in cli("eval", "-f", "jnp.sinn(x)", "-p", "x=1.0").stderr


@pytest.mark.parametrize(
    ("text", "rewrite"),
    [
        # jnp.polyval, jax.scipy.stats and jax.scipy.linalg were here: allowed since issue 20.
        ("jnp.vectorize(sin)(x)", "use jax.vmap"),
        ("jax.custom_jvp(sin)", "custom derivative rules need a module function"),
        ("jnp.frobnicate(x)", "outside the tables: write the formula out, use jax.vmap, or put the code in a file.py:function"),
    ],
)
def test_refused_names_get_the_readmes_rewrite(cli: Cli, text: str, rewrite: str) -> None:
    ran = cli("eval", "-f", text, "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and "is not available in expressions" in ran.stderr, ran.stderr
    assert rewrite in ran.stderr, ran.stderr


def test_every_name_a_hint_suggests_is_in_the_tables() -> None:
    """Hints name only what an expression may use (a module path like jnp.linalg as a family)."""
    from jaxdiff_cli import errors

    texts = [*tables.WHY.values(), *tables.NAME_WHY.values(), tables.TABLE_ROOTS]
    texts += [hint for _, hint in errors._CONCRETIZATION.values()]
    named = {m.rstrip(".") for text in texts for m in re.findall(r"\b(?:jnp|jax|lax)(?:\.\w+)+", text)}
    assert {"jnp.where", "lax.cond", "jax.vmap", "jnp.linalg"} <= named
    prefixes = {p.rsplit(".", i)[0] for p in expressions.DOTTED_NAMES for i in range(1, p.count(".") + 1)}
    assert not named - set(expressions.DOTTED_NAMES) - prefixes
