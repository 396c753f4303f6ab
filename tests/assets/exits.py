"""User functions that try to end the process, or wait for a signal (tests/inputs/test_expressions.py)."""

import os
import sys
import time
from pathlib import Path


def exits(x):
    sys.exit(3)


def interrupts(x):
    raise KeyboardInterrupt


def generator_exit(x):
    raise GeneratorExit


def waits(x):
    """Touch $JAXDIFF_TEST_MARKER, then sleep: a signal sent once the marker exists lands in user code."""
    Path(os.environ["JAXDIFF_TEST_MARKER"]).touch()
    time.sleep(60)
    return x


class Boom(BaseException):
    """Not an Exception: an `except Exception` would let it through."""


def booms(x):
    raise Boom("its own BaseException")
