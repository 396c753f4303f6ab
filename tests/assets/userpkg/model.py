import jax.numpy as jnp


def loss(params, x):
    return jnp.sum((params["w"] * x + params["b"]) ** 2)


NOT_CALLABLE = 3
