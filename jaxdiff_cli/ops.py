"""The nine operations, as one table: what each takes, its modes, whether it makes a matrix, its result.

Data only, stdlib only (layer 0, beside ``dtypes.py``): ``--help`` (helptext.py) reads its choices
from here without importing YAML or JAX, and the loader, the schema, ``prepare``, the engine and
the output read the same rows. Adding an operation is a row here and its plan in the engine; no
other module lists operation names (tests/test_structure.py keeps it so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Vectors = Literal["tangents", "cotangents", "directions"]


@dataclass(frozen=True)
class Op:
    """One operation: a computing command, a step of ``run:``, a row of ``bench --op``."""

    name: str
    vectors: Vectors | None = None  # what it pushes or pulls: tangents (-t), a cotangent (-c), a line's direction
    modes: tuple[str, ...] = ()  # as --help and the hints list them
    default: str | None = None  # the mode when neither --mode nor mode: says one
    matrix: bool = False  # a Jacobian or Hessian: pictures, -o FILE.mtx, --sparse, chunks, `jaxdiff sparsity --op`
    primary: str = ""  # the result -o FILE.npy saves ("": the operation's name)
    ordered: bool = False  # takes an order K (--order, order:)
    timed: tuple[str, ...] = ()  # the modes `jaxdiff bench` compares (none: one timing)

    @property
    def result(self) -> str:
        """The name of its main result in Result.outputs and the JSON document."""
        return self.primary or self.name


_HVP_MODES = ("fwd-rev", "rev-fwd", "rev-rev")  # forward over reverse, reverse over forward, reverse over reverse
_TAYLOR_MODES = ("auto", "jet", "jvp")  # auto: Taylor mode (jet) where it has rules, else nested forward mode

EVAL = Op("eval", primary="value")
JVP = Op("jvp", "tangents")
VJP = Op("vjp", "cotangents")
GRAD = Op("grad")
JACOBIAN = Op("jacobian", modes=("fwd", "rev", "auto"), default="auto", matrix=True, timed=("fwd", "rev"))
HESSIAN = Op("hessian", matrix=True)
HVP = Op("hvp", "tangents", modes=_HVP_MODES, default="fwd-rev", timed=_HVP_MODES)
DERIVATIVE = Op("derivative", "directions", modes=_TAYLOR_MODES, default="auto", ordered=True, timed=("jet", "jvp"))
TAYLOR = Op("taylor", "directions", modes=_TAYLOR_MODES, default="auto", ordered=True, timed=("jet", "jvp"))

OPS: dict[str, Op] = {op.name: op for op in (EVAL, JVP, VJP, GRAD, JACOBIAN, HESSIAN, HVP, DERIVATIVE, TAYLOR)}
OPERATIONS = tuple(OPS)  # in the order the README and the hints list them
MATRICES = tuple(op.name for op in OPS.values() if op.matrix)  # jacobian, hessian
