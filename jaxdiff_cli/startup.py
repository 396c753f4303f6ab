"""Python's cyclic garbage collector, paused while the ``jaxdiff`` process starts.

Start-up imports JAX and jaxdiff: hundreds of thousands of objects that all live until the
process ends. The collector does not know that, and as the heap grows it keeps scanning all of them
(full collections of ~50 ms each with JAX loaded: most of what jaxdiff's own start-up costs
beyond ``import jax``). So ``jaxdiff`` (``cli.main``, never an embedding program or the tests)
pauses it at start, and once JAX is set up (``settled``, from ``prepare``) freezes what exists
into the permanent generation and turns it back on: later collections scan only what the command
itself makes. Commands that never set up JAX (``--help``, ``schema``) end before it matters.
"""

from __future__ import annotations

import gc

_paused = False


def pause_gc() -> None:
    """At the start of the ``jaxdiff`` process: no collections while modules are imported."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def settled() -> None:
    """JAX and jaxdiff are loaded: keep them out of the collector's sight and turn it back on."""
    global _paused
    if _paused:
        gc.freeze()
        gc.enable()
        _paused = False
