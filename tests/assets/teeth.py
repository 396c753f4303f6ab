"""Functions with wrong (and right) derivative rules, for `jaxdiff check`'s tests."""

import jax
import jax.numpy as jnp

A = jnp.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0], [0.0, 4.0, 1.0]])


# ---------------------------------------------------------------- wrong rules: check must flag these


@jax.custom_jvp
def sin_factor(x):
    return jnp.sin(x)


@sin_factor.defjvp
def _sin_factor_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.sin(x), 2.0 * jnp.cos(x) * t  # off by a factor of 2


@jax.custom_jvp
def exp_sign(x):
    return jnp.exp(x)


@exp_sign.defjvp
def _exp_sign_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.exp(x), -jnp.exp(x) * t  # wrong sign


@jax.custom_jvp
def matvec_transposed(x):
    return A @ x


@matvec_transposed.defjvp
def _matvec_transposed_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return A @ x, A.T @ t  # transposed


@jax.custom_jvp
def square_one_entry(x):
    return x**2


@square_one_entry.defjvp
def _square_one_entry_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    scale = jnp.array([2.0, 2.0, 2.02, 2.0])  # entry 2 is 1% off
    return x**2, scale * x * t


@jax.custom_vjp
def tanh_bad_reverse(x):
    return jnp.tanh(x)


def _tanh_fwd(x):
    y = jnp.tanh(x)
    return y, y


def _tanh_bad_bwd(y, g):
    return ((1 - y) * g,)  # should be (1 - y**2) * g


tanh_bad_reverse.defvjp(_tanh_fwd, _tanh_bad_bwd)


@jax.custom_vjp
def scale_bad_reverse_one_entry(x):
    return 3.0 * x


def _scale_fwd(x):
    return 3.0 * x, None


def _scale_bad_bwd(_, g):
    return (g * jnp.array([3.0, 3.0, 3.0, -3.0, 3.0]),)  # one entry has the wrong sign


scale_bad_reverse_one_entry.defvjp(_scale_fwd, _scale_bad_bwd)


@jax.custom_jvp
def big_sum_wrong(x):
    return jnp.sum(jnp.tanh(x) ** 2)


@big_sum_wrong.defjvp
def _big_sum_wrong_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    g = 2 * jnp.tanh(x) * (1 - jnp.tanh(x) ** 2)
    return big_sum_wrong(x), jnp.sum(1.1 * g * t)  # 10% off, on an input too big for column-wise FD


# ---------------------------------------------------------------- right rules: check must pass these


@jax.custom_jvp
def softplus(x):
    return jnp.logaddexp(x, 0.0)


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), jax.nn.sigmoid(x) * t


@jax.custom_vjp
def tanh_good(x):
    return jnp.tanh(x)


tanh_good.defvjp(_tanh_fwd, lambda y, g: ((1 - y**2) * g,))


def ill_scaled(x):
    """Values from 1e-20 to 1e14."""
    return jnp.stack([1e-20 * x[0] * x[1], 1e14 * jnp.exp(x[1] / 10), x[0] ** 2 * 1e-10, jnp.sin(x[1]) * 1e-3])


def near_kink(x):
    """|x - 1e-3| and relu, evaluated 1e-3 and 1e-4 away from their kinks."""
    return jnp.stack([jnp.abs(x[0] - 1e-3), jax.nn.relu(x[1]) * 2.0, jnp.maximum(x[0], x[1])])
