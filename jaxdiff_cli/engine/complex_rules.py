"""Which derivatives a function of complex values has, and which of JAX's conventions gives each.

JAX differentiates a function of z = x + iy as a map between real vector spaces:

- jvp pushes a tangent t forward, for any function: ∂f/∂x·Re t + ∂f/∂y·Im t;
- vjp is that map's transpose under the bilinear pairing Re Σ a·b (no conjugate), so
  Re⟨u, J t⟩ = Re⟨vjp(u), t⟩ for every u and t;
- grad of a real-valued f is vjp(1): ∂f/∂x − i·∂f/∂y = 2·∂f/∂z, the conjugate of the
  steepest-ascent direction 2·∂f/∂z̄ (PyTorch's .grad is that direction itself);
- holomorphic=True (grad, jacfwd, jacrev, hessian) gives the complex derivative f'(z), which
  exists only when f is holomorphic: JAX does not check that, ``jaxdiff check`` does
  (the Cauchy-Riemann equations, by finite differences).

A Jacobian is a complex matrix only where it is one: with --holomorphic; for complex inputs and
real outputs its rows are JAX's gradients (reverse mode); for real inputs and complex outputs its
columns are ∂f/∂x (forward mode). A non-holomorphic map of complex to complex values has no
complex Jacobian (it is real-linear, not complex-linear), so jaxdiff refuses one.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxdiff_cli.engine.problem import Problem, output_shape
from jaxdiff_cli.errors import SpecError
from jaxdiff_cli.ops import EVAL, HESSIAN, HVP

HOLOMORPHIC_HINT = "pass --holomorphic (holomorphic: true) if f is holomorphic"


def is_complex_tree(tree: Any) -> bool:
    """Whether any leaf (array or ShapeDtypeStruct) holds complex values."""
    return any(np.dtype(leaf.dtype).kind == "c" for leaf in jax.tree.leaves(tree))


def complex_sides(problem: Problem) -> tuple[bool, bool]:
    """(some differentiated input is complex, some output is complex)."""
    return is_complex_tree(problem.diff(problem.primals)), is_complex_tree(output_shape(problem))


def validate(problem: Problem, op: str) -> None:
    """Refuse, before tracing, what has no meaning (or no JAX rule) for complex values, with the remedy.

    --holomorphic needs complex inputs and outputs (holomorphic=True in JAX needs both); a second
    derivative of a function of complex inputs is defined here only for a holomorphic one.
    """
    if op == EVAL.name:
        return
    complex_in = is_complex_tree(problem.diff(problem.primals))  # no trace of f unless --holomorphic needs one
    if problem.holomorphic:
        real_in = [name for name, arg in zip(problem.wrt, problem.diff(problem.primals)) if not is_complex_tree(arg)]
        if real_in:
            raise SpecError(
                f"--holomorphic needs complex inputs, but {real_in[0]} is real",
                where=problem.where,
                hint="set --dtype complex64 or complex128 (dtype: in the spec)",
            )
        real_out = [leaf.dtype for leaf in jax.tree.leaves(output_shape(problem)) if np.dtype(leaf.dtype).kind != "c"]
        if real_out:
            raise SpecError(
                f"--holomorphic needs complex outputs, but the function returns {real_out[0]} values",
                where=problem.where,
                hint="a real-valued function of complex inputs is never holomorphic (unless constant): drop --holomorphic"
                " for JAX's gradient convention",
            )
        return
    if complex_in and op in (HESSIAN.name, HVP.name):  # second derivatives
        raise SpecError(
            f"{op} of a function of complex inputs is computed for a holomorphic function only",
            where=problem.where,
            hint=f"{HOLOMORPHIC_HINT}; otherwise pass the real and imaginary parts as real arguments",
        )


def forced_jacobian_mode(problem: Problem) -> tuple[str, str] | None:
    """The one Jacobian mode that complex values allow, and why; None when both modes work."""
    if problem.holomorphic:
        return None
    complex_in, complex_out = complex_sides(problem)
    if complex_in and complex_out:
        raise SpecError(
            "a function of complex inputs with complex outputs has a complex Jacobian only if it is holomorphic",
            where=problem.where,
            hint=f"{HOLOMORPHIC_HINT}; otherwise use jvp or vjp, which take any function",
        )
    if complex_in:
        return "rev", "complex inputs, real outputs: reverse mode, each row the gradient ∂f/∂x − i·∂f/∂y (JAX's convention)"
    if complex_out:
        return "fwd", "real inputs, complex outputs: forward mode, each column ∂f/∂x"
    return None
