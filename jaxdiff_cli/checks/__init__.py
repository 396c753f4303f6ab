"""jaxdiff check: expected values and golden values, AD against finite differences and each other."""
