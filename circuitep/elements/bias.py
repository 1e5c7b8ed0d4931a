"""Bias: a constant current ``b`` (A) into each free node.

Learning rule ``dC/db = -s``. SPICE: an ``I`` source from ground into the node (absent from the
adjoint network: a constant).
"""

from __future__ import annotations

import numpy as np

from circuitep.elements.params import MAX_AMPS, Param
from circuitep.netlist import Element

PARAM = Param("bias", "A", "constant current into the node", default=0.0, span=(0.0, MAX_AMPS))


def grad(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``-(dF/db)^T s`` averaged over the batch: ``-s``."""
    return -s.mean(0)


def spice(node: str, b: float) -> list[Element]:
    return [Element("I", f"ibias_{node}", ("0", node), float(b))]
