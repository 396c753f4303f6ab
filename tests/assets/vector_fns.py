"""Functions with outputs that the scalar-only commands must refuse, for the bad-input catalogue."""

import jax.numpy as jnp


def pair(x):
    return jnp.sin(x), jnp.cos(x)


def nothing(x):
    return None
