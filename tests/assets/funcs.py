import jax.numpy as jnp


def cube(x):
    return x**3


def raises(x):
    raise RuntimeError("user code failed here")


def returns_text(x):
    return "not an array"


def returns_tuple(x):
    return (jnp.sin(x), jnp.cos(x))


def float32_only(x):
    # Fails only when jaxdiff check evaluates it in float64 for its finite differences.
    if x.dtype == jnp.float64:
        raise ValueError("float64 is not supported here")
    return x**2
