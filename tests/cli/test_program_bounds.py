"""Trace-time and compile-time work of an expression is bounded (issue 19.4).

A call that returns many arrays (jnp.split into single pieces, unstack, meshgrid of many arrays, ...)
is charged for what it takes and returns, and refused before it runs when it would return more than
MAX_EMITTED arrays. Whatever the expression traced is measured before lowering: a program larger than
MAX_PROGRAM (jaxpr equations with their operands and results, into every sub-jaxpr) is exit 3, in every
operation, check's included. Each input below compiled for minutes before (XLA's compile time grows
faster than the program); no wall-clock is asserted here (BRIEF: speed is measured, not asserted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.engine.problem import MAX_PROGRAM
from jaxdiff_cli.errors import ExitCode
from jaxdiff_cli.inputs.expressions import MAX_EMITTED

TOO_MANY = f"one call may return at most {MAX_EMITTED}"
TOO_BIG = f"an expression's is at most {MAX_PROGRAM:,}"

MANY_OUTPUTS = [
    # Each returns 100,000 (or 1,000) arrays: refused before the call runs.
    ("jnp.sum(jnp.stack(jnp.split(x, 100000)))", "split(...) returns 100,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.split(x, list(range(1, 1000)))))", "split(...) returns 1,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.hsplit(x, 100000)))", "hsplit(...) returns 100,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.vsplit(x.reshape(100000, 1), 100000)))", "vsplit(...) returns 100,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.dsplit(x.reshape(1, 1, 100000), 100000)))", "dsplit(...) returns 100,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.unstack(x)))", "unstack(...) returns 100,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.unstack(x.reshape(10, 10000), axis=1)))", "unstack(...) returns 10,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.meshgrid(*[x[:1]] * 1000)))", "meshgrid(...) returns 1,000 arrays"),
    ("jnp.sum(jnp.stack(jnp.broadcast_arrays(*[x] * 1000)))", "broadcast_arrays(...) returns 1,000 arrays"),
    # Known only once it returned: anything that returns a list or tuple of arrays.
    ("jnp.sum(jnp.stack(jax.tree.map(jnp.sin, [x[:1]] * 1000)))", "map(...) returns 1,000 arrays"),
]


@pytest.mark.parametrize(("fn", "message"), MANY_OUTPUTS, ids=[m[1].split("(")[0] + str(i) for i, m in enumerate(MANY_OUTPUTS)])
def test_a_call_returning_many_arrays_is_refused(cli: Any, fn: str, message: str) -> None:
    ran = cli("eval", "-f", fn, "-p", "x={zeros: [100000]}")
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr
    assert message in ran.stderr and TOO_MANY in ran.stderr, ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr


def test_einsum_of_many_operands_is_refused_before_its_path_search(cli: Any) -> None:
    ran = cli("eval", "-f", "jnp.einsum('i,' * 3000 + 'i->i', *[x] * 3001)", "-p", "x={zeros: [3]}")
    assert ran.exit_code == ExitCode.BAD_INPUT and "einsum of 3,001 operands; at most 256" in ran.stderr, ran.stderr


LARGE_PROGRAMS = [
    # Each call is within what one call may do; together they trace a program too large to compile.
    "lax.switch(0, [jnp.sin] * 5000, x)",
    pytest.param("jnp.piecewise(x, [x > i for i in range(3400)], [jnp.sin] * 3401)", marks=pytest.mark.slow),
    "jnp.sum(jnp.stack([x[i] for i in range(5000)]))",
    "jnp.sum(jnp.stack([jnp.sum(v) for v in jnp.split(x, 200)] * 50))",
    "lax.fori_loop(0, 3, lambda i, c: c + jnp.sum(jnp.stack([c * j for j in range(4000)])), x[0])",
]


@pytest.mark.parametrize("fn", LARGE_PROGRAMS, ids=["switch", "piecewise", "comprehension", "split-stack", "fori_loop"])
def test_a_large_traced_program_is_refused_before_lowering(cli: Any, fn: str) -> None:
    ran = cli("eval", "-f", fn, "-p", "x={zeros: [10000]}")
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr
    assert "the traced program of eval has size" in ran.stderr and TOO_BIG in ran.stderr, ran.stderr
    assert "module function (file.py:function), which is not bounded" in ran.stderr


@pytest.mark.slow
def test_a_derivative_program_is_bounded_too(cli: Any) -> None:
    # The function itself fits; its Hessian (forward over reverse) is eight times as large (3,005 and 24,070).
    fn = "jnp.sum(jnp.stack([jnp.sin(x[i]) * x[i + 1] for i in range(150)]))"
    assert cli("eval", "-f", fn, "-p", "x={zeros: [1000]}").exit_code == ExitCode.OK
    ran = cli("hessian", "-f", fn, "-p", "x={zeros: [1000]}")
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr
    assert "the traced program of hessian has size" in ran.stderr and TOO_BIG in ran.stderr


def test_check_refuses_a_large_program_and_goes_on_to_the_next_spec(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(
        "function: 'jnp.sum(jnp.stack([x[i] for i in range(5000)]))'\nprimals: {x: {zeros: [5000]}}\n"
    )
    (tmp_path / "many.yaml").write_text("function: 'jnp.sum(jnp.stack(jnp.split(x, 5000)))'\nprimals: {x: {zeros: [5000]}}\n")
    (tmp_path / "fine.yaml").write_text("function: 'jnp.sum(x**2)'\nprimals: {x: [1.0, 2.0]}\nexpect: {grad.x: [2.0, 4.0]}\n")
    ran = cli("check", tmp_path / "big.yaml", tmp_path / "many.yaml", tmp_path / "fine.yaml", "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stdout + ran.stderr
    big, many, fine = ran.json()["specs"]
    assert TOO_BIG in big["error"]["message"]
    assert "split(...) returns 5,000 arrays" in many["error"]["message"]
    assert fine["passed"]


def test_moderate_programs_still_run(cli: Any) -> None:
    # A small network's Hessian and calls that return a few arrays: well inside both limits.
    mlp = "jnp.sum(jnp.tanh(w[2] @ jnp.tanh(w[1] @ jnp.tanh(w[0] @ jnp.ones(8))))**2)"
    ran = cli("hessian", "-f", mlp, "-p", "w={ones: [3, 8, 8]}", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    (hessian,) = [v for k, v in ran.outputs().items() if k.startswith("hessian")]
    assert hessian.shape == (3, 8, 8, 3, 8, 8)
    pieces = "jnp.sum(jnp.stack(jnp.split(x, 4)) ** 2) + lax.switch(1, [jnp.sin, jnp.cos], x[0])"
    ran = cli("eval", "-f", pieces, "-p", "x=[1.0, 2.0, 3.0, 4.0]", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
    np.testing.assert_allclose(ran.outputs()["value"], 30.0 + np.cos(1.0), rtol=1e-6)
    ran = cli("jacobian", "-f", f"jnp.stack(jnp.split(x, {MAX_EMITTED}))", "-p", f"x={{zeros: [{MAX_EMITTED}]}}", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr


def test_random_split_returns_one_array_and_is_not_refused(cli: Any) -> None:
    # jax.random.split shares jnp.split's name but returns one array of keys: not a call of many arrays.
    fn = "x * jnp.sum(jax.random.normal(jax.random.split(jax.random.key(0), 1000)[0], (3,)))"
    ran = cli("eval", "-f", fn, "-p", "x=1.0", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr


@pytest.mark.slow
def test_a_module_function_is_not_bounded(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's own code (it could loop in Python anyway): a program over the expression limit runs.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "long.py").write_text("def f(x):\n    for i in range(1400):\n        x = x * 1.0001 + 1.0\n    return x\n")
    ran = cli("eval", "-f", "long.py:f", "-p", "x=0.0", "--json")
    assert ran.exit_code == ExitCode.OK, ran.stderr
