"""Every public name of JAX's array namespaces is decided for expressions, and a refusal says why.

The decisions are data (``jaxdiff_cli/inputs/expressions/tables.py``): each family's allowed names and
``REFUSED``, each refused path with the key of its reason. ``python -m tests.inputs.jax_names``
lists what the installed JAX has that the tables do not decide yet, with the rule's proposal.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

from jaxdiff_cli.errors import ExitCode
from jaxdiff_cli.inputs.expressions import tables
from tests.inputs import jax_names


def _allowed_in_surveyed() -> frozenset[str]:
    """The allowed paths of the surveyed namespaces (jax.grad, jax.random.* and jax.tree.* are decided by hand)."""
    surveyed = set(jax_names.namespaces())
    return frozenset(p for p in tables.allowed_paths() if p.rsplit(".", 1)[0] in surveyed)


def test_every_public_name_of_this_jax_is_allowed_or_refused_with_a_reason() -> None:
    names = jax_names.public_names()
    allowed = _allowed_in_surveyed()
    new = sorted(set(names) - allowed - set(tables.REFUSED))
    assert not new, f"this JAX has {len(new)} public names the tables do not decide (python -m tests.inputs.jax_names): {new}"
    assert not allowed & set(tables.REFUSED), "a name is both allowed and refused"
    gone = sorted((allowed | set(tables.REFUSED)) - set(names))
    assert not gone, f"the tables decide names this JAX does not have: {gone}"


def test_the_refused_names_by_reason() -> None:
    # The list the issue asks for: every refused public name with its reason, grouped (and printed with -s).
    by_reason: dict[str, list[str]] = collections.defaultdict(list)
    for path, code in sorted(tables.REFUSED.items()):
        by_reason[code].append(path)
    for code, paths in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        print(f"{len(paths):4} {code}: {tables.REASONS[code]} (e.g. {', '.join(paths[:3])})")
    assert set(by_reason) == set(tables.REASONS), "a reason nothing uses, or a code without its words"
    assert all(tables.REASONS[code].strip() for code in by_reason)


def test_the_rule_decided_each_name() -> None:
    # Committed decisions agree with the reviewed rule: a refusal by name keeps its reason, and no
    # allowed function is one the rule refuses (a module, a type, a primitive, I/O, ...).
    names = jax_names.public_names()
    for path, code in tables.REFUSED.items():
        proposal = jax_names.proposed(path, names[path])
        assert proposal in (code, None), (path, code, proposal)
        if code != "not reviewed":
            assert proposal == code, (path, code, proposal)
    assert {p: r for p in _allowed_in_surveyed() if (r := jax_names.proposed(p, names[p]))} == {}


def _one_per_reason() -> list[tuple[str, str]]:
    first: dict[str, str] = {}
    for path, code in sorted(tables.REFUSED.items()):
        first.setdefault(code, path)
    return sorted((path, code) for code, path in first.items())


@pytest.mark.parametrize(("path", "code"), _one_per_reason(), ids=[c for _, c in _one_per_reason()])
def test_a_refused_jax_name_says_so_and_why(cli: Any, path: str, code: str) -> None:
    for written in {path, path.replace("jax.numpy.", "jnp.", 1).replace("jax.lax.", "lax.", 1)}:
        ran = cli("eval", "-f", f"{written}(x)", "-p", "x=1.0")
        assert ran.exit_code == ExitCode.FUNCTION, ran.stderr
        assert f"{written} is not available in expressions: it is not allowed because {tables.REASONS[code]}" in ran.stderr
        assert "did you mean" not in ran.stderr and "module function" in ran.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # SciPy has these and JAX does not: no "did you mean" to a different function.
        ("jax.scipy.special.rgamma(x)", "JAX has no rgamma: scipy.special.rgamma is SciPy's"),
        ("jax.scipy.special.erfcinv(x)", "JAX has no erfcinv: scipy.special.erfcinv is SciPy's"),
        ("jnp.asanyarray(x)", "JAX has no asanyarray: numpy.asanyarray is NumPy's"),
    ],
)
def test_a_name_jax_lacks_is_never_matched_to_another_function(cli: Any, text: str, says: str) -> None:
    ran = cli("eval", "-f", text, "-p", "x=0.5")
    assert ran.exit_code == ExitCode.FUNCTION and "did you mean" not in ran.stderr, ran.stderr
    assert says in ran.stderr, ran.stderr


def test_gammasgn_is_allowed_and_typos_keep_their_did_you_mean(cli: Any) -> None:
    import scipy.special

    ran = cli("eval", "-f", "jax.scipy.special.gammasgn(x)", "-p", "x=-0.5", "--json", "--dtype", "float64")
    assert ran.exit_code == 0 and ran.outputs()["value"] == scipy.special.gammasgn(-0.5), ran.stderr
    assert "did you mean 'jax.scipy.special.gammaln'?" in cli("eval", "-f", "jax.scipy.special.gammaLn(x)", "-p", "x=1.0").stderr
