"""Functions for the check-output regression suite (tests/checks/test_check_output.py): right ones,
and ones with every kind of deliberate failure (a wrong custom rule, a kink, a NaN)."""

import jax
import jax.numpy as jnp


@jax.custom_jvp
def sin_twice(x):
    return jnp.sin(x)


@sin_twice.defjvp
def _sin_twice_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.sin(x), 2.0 * jnp.cos(x) * t  # off by a factor of 2


@jax.custom_vjp
def tanh_bad(x):
    return jnp.tanh(x)


def _tanh_fwd(x):
    y = jnp.tanh(x)
    return y, y


def _tanh_bad_bwd(y, g):
    return ((1 + y**2) * g,)  # the sign of y**2 is wrong


tanh_bad.defvjp(_tanh_fwd, _tanh_bad_bwd)


@jax.custom_jvp
def softplus(x):
    return jnp.logaddexp(x, 0.0)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), jax.nn.sigmoid(x) * t


def kink(x):
    """relu at its kink: AD says 0, central differences 0.5."""
    return jax.nn.relu(x) * 2.0


def mlp(params, x):
    h = jnp.tanh(params["w1"] @ x + params["b1"])
    return jnp.sum((params["w2"] @ h) ** 2)


def with_aux(x):
    return jnp.sum(x**3), {"norm": jnp.linalg.norm(x)}
