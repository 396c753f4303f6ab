"""The engine: problems, jit-compiled plans of every operation, their layouts, chunks, shards and runtime.

Imports nothing here: ``jaxdiff --help`` must not pay for JAX.
"""
