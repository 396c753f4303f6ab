"""What the user gives: the spec (YAML), values, the function and its expression language, binding.

No JAX at import: values become arrays only after the runtime is configured.
"""
