"""The run's dtypes by name: real and complex, which pairs with which, and which needs x64. Stdlib only.

A run computes in one float dtype (``float32``, ``float64``) or one complex dtype (``complex64``,
``complex128``). complex64 is a pair of float32 and needs no x64, complex128 a pair of float64 and
needs x64, so each complex dtype pairs with the real dtype of its parts.
"""

from __future__ import annotations

DTYPES = ("float32", "float64", "complex64", "complex128")
REAL_OF = {"float32": "float32", "float64": "float64", "complex64": "float32", "complex128": "float64"}
COMPLEX_OF = {"float32": "complex64", "float64": "complex128", "complex64": "complex64", "complex128": "complex128"}


def is_complex(dtype: str) -> bool:
    return dtype.startswith("complex")


def real_dtype(dtype: str) -> str:
    """The dtype of the real and imaginary parts (a real dtype is its own)."""
    return REAL_OF[dtype]


def complex_dtype(dtype: str) -> str:
    """The complex dtype whose parts are ``dtype`` (a complex dtype is its own)."""
    return COMPLEX_OF[dtype]


def needs_x64(dtype: str) -> bool:
    """Whether JAX must run with 64-bit values enabled to hold this dtype."""
    return real_dtype(dtype) == "float64"
