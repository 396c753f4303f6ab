"""Function references: the four forms, and the expression checker that runs before anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.errors import FunctionError
from jaxdiff_cli.inputs import expressions
from jaxdiff_cli.inputs.functions import classify, load_function

from ..conftest import ASSETS


def load(text: str, names: tuple[str, ...] = ("x",), base: Path = ASSETS) -> Any:
    return load_function(text, names, base, "spec.yaml: function").fn


def test_classify() -> None:
    assert classify("lambda x: x") == "lambda"
    assert classify("x * 2") == "expression"
    assert classify("userpkg.model:loss") == "module"
    assert classify("models/m.py:f") == "file"
    assert classify("lambdax + 1") == "expression"


def test_lambda_and_expression() -> None:
    assert float(load("lambda x, w: (x + w) * x**2", ("x", "w"))(3.0, 1.0)) == 36.0
    assert float(load("(x + w) * x**2", ("x", "w"))(3.0, 1.0)) == 36.0
    assert float(load("sin(x) + exp(0) + pi * 0")(0.0)) == 1.0
    assert float(load("jnp.sum(jnp.tanh(x))", ("x",))(np.zeros(3))) == 0.0
    f = load("sum(v for v in [x, x])", ("x",))
    assert f is not None
    assert float(load("lax.cond(x > 0, lambda y: y, lambda y: -y, x)")(-2.0)) == 2.0


def test_parameters_of_each_form() -> None:
    def params(text: str, names: tuple[str, ...] = ("x",)) -> Any:
        return load_function(text, names, ASSETS, "spec.yaml: function").params

    assert params("lambda x, w: x", ("w", "x")).names == ("x", "w")
    # a bare expression's parameters: the primals it uses, in order of first use
    assert params("w * x + x", ("x", "w")).names == ("w", "x")
    assert params("sum(v for v in [x])", ("x", "v")).names == ("x",)
    p = params("userpkg.model:loss", ("params", "x"))
    assert p.names == ("params", "x") and p.required == {"params", "x"}


def test_module_and_file_functions() -> None:
    f = load("userpkg.model:loss", ("params", "x"))
    assert float(f({"w": 2.0, "b": 1.0}, 1.0)) == 9.0
    assert float(load("funcs.py:cube")(2.0)) == 8.0
    assert float(load(f"{ASSETS / 'funcs.py'}:cube", base=Path("/"))(3.0)) == 27.0


def test_module_import_leaves_sys_path_alone() -> None:
    import sys

    before = list(sys.path)
    load("userpkg.model:loss", ("params", "x"))
    assert sys.path == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nosuchpkg.mod:f", "no module named 'nosuchpkg'"),
        ("userpkg.model:nope", "has no attribute 'nope'"),
        ("userpkg.model:los", "did you mean 'loss'"),
        ("userpkg.model:NOT_CALLABLE", "is a int, not a function"),
        ("missing.py:f", "no such file"),
        ("broken_import.py:f", "failed to import: ImportError: this module cannot be imported"),
        ("funcs.py:nothing", "has no attribute 'nothing'"),
    ],
)
def test_load_errors(text: str, message: str) -> None:
    with pytest.raises(FunctionError, match=message):
        load(text)


ESCAPES = [
    "__import__('os').system('touch CANARY')",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "getattr(x, '__class__')",
    'lambda x: exec(\'open("CANARY", "w")\')',
    "lambda x: eval('1')",
    "open('CANARY', 'w')",
    "jax.config.update('jax_enable_x64', True)",
    "jnp.save('CANARY', x)",
    "jax.debug.callback(print, x)",
    "jax.experimental.io_callback(print, None, x)",
    "'{0.__class__}'.format(x)",
    "'{}'.format(x)",
    "f'{x}'",
    "9**9**9",
    "2**100000",
    "10**(10**10)",
    "1 << 100000000",
    "'a' * 10**9",
    "[c for c in ().__class__.__mro__]",
    "globals()",
    "vars()",
    "x if __debug__ else x",
    "_private",
    "jax.numpy._src",
    "np.sum(x)",
    "os.system('true')",
    "sys.modules",
    "lambda x, *args: x",
    "lambda x, **kw: x",
    "range(10**12)",
    "(x := 3)",
    "await x",
    "b'bytes'",
    "x" + "[0]" * 100,
    "-" * 200 + "x",
    "+".join(["x"] * 500),
    "yield x",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_escapes_are_rejected_before_running(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FunctionError) as info:
        load(text, ("x",), base=tmp_path)
    assert "spec.yaml: function" in str(info.value)
    assert not (tmp_path / "CANARY").exists()
    assert not (tmp_path / "CANARY.npy").exists()


def test_checker_allows_what_differentiation_needs() -> None:
    for text in [
        "jnp.einsum('ij,j->i', W, x)",
        "jnp.linalg.norm(x, ord=2)",
        "jax.nn.softmax(x)",
        "jax.scipy.special.logsumexp(x)",
        "x.T @ x",
        "x[1:, ::2].sum()",
        "jnp.where(x > 0, x, 0.1 * x)",
        "x ** -2",
        "x ** 0.5",
        "{'a': x}['a']",
        "jnp.stack([x[i] for i in range(3)])",
    ]:
        expressions.check(text, ("x", "W"), "f", is_lambda=False)
