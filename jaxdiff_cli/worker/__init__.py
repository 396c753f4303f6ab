"""A resident per-user worker: a fork server that has imported JAX and jaxdiff and serves each call in a fresh child.

``place`` (where and which worker), ``protocol`` (the conversation) and ``control`` (start, stop,
status) are stdlib only: the ``jaxdiff`` client uses them before anything else is imported.
``server`` is the worker itself.
"""
