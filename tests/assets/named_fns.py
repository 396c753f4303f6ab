"""Functions whose parameters bind by name: keyword-only, positional-only, defaults, **kwargs, aux."""

import jax.numpy as jnp


def f3(x, y, z):
    return jnp.sum(x * y**2 + 3 * z * x)


def f3_kw(x, *, y, z):
    return jnp.sum(x * y**2 + 3 * z * x)


def f3_pos(x, y, /, z):
    return jnp.sum(x * y**2 + 3 * z * x)


def f3_default(x, y, z=2.0):
    return jnp.sum(x * y**2 + 3 * z * x)


def f3_kwargs(x, **rest):
    return jnp.sum(x * rest["y"] ** 2 + 3 * rest["z"] * x)


def loss_and_stats(x):
    return jnp.sum(x**2), {"norm": jnp.sqrt(jnp.sum(x**2)), "twice": 2 * x}


def curve_and_aux(t):
    return jnp.stack([jnp.sin(t), t**3]), t * 10
