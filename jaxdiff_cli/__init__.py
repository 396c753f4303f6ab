"""jaxdiff: derivatives of user functions with JAX, from the command line.

This module holds the version only, so that ``jaxdiff --help`` never pays for importing JAX.
"""

__version__ = "0.1.0"
