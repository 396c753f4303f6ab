"""derivative and taylor (a spec with ``order: K``) against references that do not share their method.

Along the spec's direction v (its tangents, or 1 for a function of one scalar):

- the K-th derivative the user gets against central differences, in s, of the (K−1)-th derivative
  at x + s·v, computed in 64 bits (float64 / complex128, Richardson extrapolation: ``fd.py``). For
  K = 1 that is differences of f itself;
- Taylor mode (jet) and nested forward mode (jvp of jvp ...) against each other: two different JAX
  transformations, for the derivative and for every Taylor coefficient (skipped, with jet's reason,
  where jet has no rule for a primitive of f, or where nested forward mode would be too large);
- the top Taylor coefficient against the differences divided by K!;
- every result finite.

Rounding: along v the K-th derivative may cancel to about zero (f constant along v) while its terms
are large, and both methods then return rounding noise of the terms' size. Every bound therefore
includes the size of the K-th derivative along a few random directions as long as v (what the
terms' rounding scales with), times eps, 2^K (the error grows with the order: measured 50-280 eps
at K = 2..4 for nested jvp) and sqrt(n).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxdiff_cli.checks import fd
from jaxdiff_cli.checks.findings import ERR_MULTIPLE, ROUNDING_MULTIPLE, Finding, Report, Worst, compare_arrays
from jaxdiff_cli.dtypes import real_dtype
from jaxdiff_cli.errors import FunctionError, SpecError
from jaxdiff_cli.ops import DERIVATIVE
from jaxdiff_cli.prepare import Options, Prepared, directions, run_operation

if TYPE_CHECKING:
    from jaxdiff_cli.engine.problem import Problem

DEFAULT_TOL = {"float32": (1e-4, 1e-6), "float64": (1e-7, 1e-12)}  # (rtol, atol), by the dtype of the parts
MAX_DIRECTIONS = 8  # of a batch of directions, this many are differenced
RANDOM_DIRECTIONS = 3  # for the rounding scale


def _rows(tree: Any, batch: int | None) -> np.ndarray:
    """An output pytree (with a leading batch axis, if any) as (directions, entries), complex kept."""
    import jax

    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]
    k = 1 if batch is None else batch
    return np.concatenate([leaf.reshape(k, -1) for leaf in leaves], axis=1)


def _coords(a: np.ndarray) -> np.ndarray:
    """Rows as real coordinates: (Re, Im) side by side where complex."""
    return np.concatenate([a.real, a.imag], axis=1) if np.iscomplexobj(a) else a.astype(np.float64)


def lower_order_batch(problem: Problem, order: int) -> Callable[[Any], Any] | None:
    """(p, 2·n_real) -> (p, m_real): at each row (r, v), the derivative of order ``order`` along v at
    the point r, in 64 bits, as real coordinates (Re, Im of complex entries). r and v are the
    differentiated arguments raveled, complex ones as (Re, Im); the direction is an argument, so one
    program serves every direction. None where no method can compute it."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from jaxdiff_cli.engine import taylor

    with jax.enable_x64(True):
        primals64 = fd.primals64(problem.primals)
        x64, unravel = ravel_pytree(problem.diff(primals64))
        complex_in = jnp.issubdtype(x64.dtype, jnp.complexfloating)
        n = int(x64.size)
        n_real = 2 * n if complex_in else n

        def vector(r: Any) -> Any:
            return r[:n] + 1j * r[n:] if complex_in else r

        def at(rv: Any, method: str) -> Any:
            point = list(primals64)
            for i, d in zip(problem.argnums, unravel(vector(rv[:n_real]))):
                point[i] = d
            g, xs, _ = taylor.line_function(problem, point)
            vs = jax.tree.leaves(unravel(vector(rv[n_real:])))
            if order == 0:
                out = g(*xs)
            elif method == "jet":
                out = taylor.jet_derivatives(g, xs, vs, order)[1][-1]
            else:
                out = taylor.nested_derivative(g, xs, vs, order)
            y = ravel_pytree(out)[0]
            return jnp.concatenate([jnp.real(y), jnp.imag(y)]) if jnp.iscomplexobj(y) else jnp.asarray(y, jnp.float64)

        rv0 = jnp.zeros(2 * n_real, jnp.float64)

        def traces(method: str) -> bool:
            try:
                jax.eval_shape(lambda rv: at(rv, method), rv0)
            except Exception:  # this method cannot go through f: the other may
                return False
            return True

        candidates = ("jvp", "jet") if order <= taylor.NESTED_MAX_ORDER else ("jet",)
        found = next((m for m in candidates if traces(m)), None)
        if found is None:
            return None
        method = found
        batched = jax.jit(jax.vmap(lambda rv: at(rv, method)))

    def run(points: Any) -> Any:
        with jax.enable_x64(True):
            return np.asarray(batched(jnp.asarray(points, jnp.float64)))

    return run


def _point(problem: Problem) -> np.ndarray:
    from jax.flatten_util import ravel_pytree

    x = np.asarray(ravel_pytree(problem.diff(problem.primals))[0])
    return np.concatenate([x.real, x.imag]).astype(np.float64) if x.dtype.kind == "c" else x.astype(np.float64)


def _direction_rows(vectors: tuple[Any, ...], batch: int | None) -> np.ndarray:
    """The directions as real coordinate rows (k, n_real), like the points."""
    rows = _rows(vectors, batch)
    return _coords(rows)


def rounding_scale(problem: Problem, vectors: tuple[Any, ...], batch: int | None, order: int, method: str) -> np.ndarray:
    """Per output entry, the largest |K-th derivative| along RANDOM_DIRECTIONS seeded random directions
    as long as v (the first v, if a batch): the size of the terms whose rounding a result carries."""
    import jax
    import jax.numpy as jnp

    from jaxdiff_cli.engine import taylor
    from jaxdiff_cli.engine.problem import execute

    rng = np.random.default_rng(0)
    leaves = jax.tree.leaves(vectors)
    first = [np.asarray(leaf) if batch is None else np.asarray(leaf)[0] for leaf in leaves]
    length = math.sqrt(sum(float(np.sum(np.abs(a) ** 2)) for a in first)) or 1.0
    draws = []
    for _ in range(RANDOM_DIRECTIONS):
        w = [rng.standard_normal(a.shape) + (1j * rng.standard_normal(a.shape) if np.iscomplexobj(a) else 0.0) for a in first]
        size = math.sqrt(sum(float(np.sum(np.abs(b) ** 2)) for b in w)) or 1.0
        draws.append([b * (length / size) for b in w])
    stacked = [
        jax.device_put(jnp.asarray(np.stack([d[i] for d in draws]), leaves[i].dtype), next(iter(leaves[i].devices())))
        for i in range(len(first))
    ]
    random_vectors = jax.tree.unflatten(jax.tree.structure(vectors), stacked)
    out = execute(taylor.plan_derivative(problem, random_vectors, order, method, RANDOM_DIRECTIONS)).outputs["derivative"]
    return np.asarray(np.max(np.abs(_rows(out, RANDOM_DIRECTIONS)), axis=0), np.float64)  # (m,), complex entries by modulus


def check_higher(prep: Prepared, report: Report, rtol: float | None, atol: float | None) -> None:
    """derivative and taylor at the spec's order, against differences and against the other method."""
    from jaxdiff_cli.engine import taylor
    from jaxdiff_cli.engine.problem import execute

    spec, problem = prep.spec, prep.problem
    order = spec.order
    assert order is not None
    dtype = real_dtype(spec.dtype)
    rtol0, atol0 = DEFAULT_TOL[dtype]
    tol = (rtol if rtol is not None else rtol0, atol if atol is not None else atol0)
    from jaxdiff_cli.engine.diagnostics import nonfinite_note
    from jaxdiff_cli.engine.plans import evaluate

    if nonfinite_note({}, evaluate(problem).value) is not None:
        return  # the derivatives' checks said so: nothing is compared where f is not finite
    # The spec's mode: when it is one of these commands' (a jacobian's mode: is not), else auto.
    mode = spec.mode if spec.mode in ("auto", "jet", "jvp") else "auto"
    user: dict[str, Any] = {}
    results: list[tuple[str, Any]] = []
    for op in ("derivative", "taylor"):
        result = run_operation(prep, op, Options(mode=mode, order=order))
        user[op] = result
        results.append((op, result.outputs[op]))
    vectors, batch, _ = directions(prep, DERIVATIVE.name)
    used = "jet" if user["derivative"].info.get("method") == taylor.METHOD_NAMES["jet"] else "jvp"
    other = "jvp" if used == "jet" else "jet"
    n_real = _point(problem).size
    sizes = rounding_scale(problem, vectors, batch, order, used)
    rounding = ROUNDING_MULTIPLE * float(np.finfo(dtype).eps) * 2**order * math.sqrt(n_real) * sizes  # (m,)
    err_d = rounding / ERR_MULTIPLE  # as an error estimate of the reference, per output entry
    err_t = float(np.max(err_d, initial=0.0)) / math.factorial(order)  # the top coefficient's; lower ones are smaller

    # The other method, where it can go.
    try:
        if other == "jvp" and order > taylor.NESTED_MAX_ORDER:
            raise SpecError(f"nested forward mode stops at order {taylor.NESTED_MAX_ORDER}")
        alt_d = execute(taylor.plan_derivative(problem, vectors, order, other, batch)).outputs["derivative"]
        alt_t = execute(taylor.plan_taylor(problem, vectors, order, other, batch)).outputs["taylor"]
    except (FunctionError, SpecError) as exc:
        why = user["derivative"].info.get("fallback") or exc.message
        report.findings.append(Finding(f"derivative: {used} vs {other}", True, f"not compared: {why}", skipped=True))
    else:
        names = {"jet": "jet", "jvp": "nested jvp"}
        pair = f"{names[used]} vs {names[other]}"
        ad_d, ref_d = _rows(user["derivative"].outputs["derivative"], batch), _rows(alt_d, batch)
        report.findings.append(compare_arrays(f"derivative: {pair}", "derivative", ad_d, ref_d, err_d, dtype, tol))
        ad_t, ref_t = _rows(user["taylor"].outputs["taylor"], batch), _rows(alt_t, batch)
        report.findings.append(compare_arrays(f"taylor: {pair}", "taylor", ad_t, ref_t, np.asarray(err_t), dtype, tol))

    # Differences of the order below, in 64 bits, along each direction (s moves x + s·v).
    below = lower_order_batch(problem, order - 1)
    if below is None:
        report.findings.append(
            Finding(f"derivative vs FD of order {order - 1}", True, "not compared: no method reaches that order", skipped=True)
        )
    else:
        dirs = _direction_rows(vectors, batch)[:MAX_DIRECTIONS]
        r0 = _point(problem)
        each = [fd.directional(below, np.concatenate([r0, d]), np.concatenate([d, np.zeros_like(d)])[None]) for d in dirs]
        ref = fd.Estimate(np.concatenate([e.value for e in each]), np.concatenate([e.error for e in each]))  # (k, m_real)
        k = len(dirs)
        ad = _coords(_rows(user["derivative"].outputs["derivative"], batch))[:k]
        # The reference is float64; the result carries its own dtype's rounding: both bound the gap.
        err = ref.error + (np.concatenate([err_d, err_d]) if ad.shape[1] == 2 * err_d.size else err_d)
        report.findings.append(
            compare_arrays(f"derivative vs FD of order {order - 1}", "derivative", ad, ref.value, err, dtype, tol)
        )
        coefficients = user["taylor"].outputs["taylor"]
        top = _coords(_rows(_top(coefficients, batch), batch))[:k]
        scale = math.factorial(order)
        report.findings.append(
            compare_arrays(
                f"taylor[{order}] vs FD of order {order - 1} / {order}!",
                "taylor",
                top,
                ref.value / scale,
                err / scale,
                dtype,
                tol,
            )
        )
    report.findings.append(_finite(results))


def _top(coefficients: Any, batch: int | None) -> Any:
    """The coefficient of the highest order, from each leaf's (batch,) K + 1 axis."""
    import jax

    return jax.tree.map(lambda c: np.asarray(c)[-1] if batch is None else np.asarray(c)[:, -1], coefficients)


def _finite(results: list[tuple[str, Any]]) -> Finding:
    from jaxdiff_cli.engine.diagnostics import first_nonfinite

    bad = first_nonfinite(dict(results))
    if bad is None:
        return Finding("finite (derivative, taylor)", True, "all results finite")
    name, idx, value = bad
    return Finding(
        "finite (derivative, taylor)", False, f"{name} is {value} at {list(idx)}", Worst(name, idx, value, math.nan, 0.0, 0.0)
    )
