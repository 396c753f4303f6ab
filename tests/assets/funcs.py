import jax.numpy as jnp


def cube(x):
    return x**3


def raises(x):
    raise RuntimeError("user code failed here")


def returns_text(x):
    return "not an array"


def returns_tuple(x):
    return (jnp.sin(x), jnp.cos(x))
