"""Bias: a constant current ``b`` (A) into each free node.

Learning rule ``dC/db = -s``. SPICE: an ``I`` source from ground into the node (absent from the
adjoint network: a constant).
"""

from __future__ import annotations

import numpy as np

from circuitep.elements.params import MAX_AMPS, Param, Varies
from circuitep.netlist import Element

PARAM = Param("bias", "A", "constant current into the node", default=0.0, span=(0.0, MAX_AMPS))


VARIES = (Varies("bias", False, "A", "offset current into each node"),)


def grad(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``-(dF/db)^T s`` averaged over the batch: ``-s``.

    Parameters
    ----------
    x : numpy.ndarray
        Node voltages, V, ``(batch, n_free)``.
    s : numpy.ndarray
        Adjoint state ``s`` (DESIGN.md §1), ``(batch, n_free)``.

    Returns
    -------
    numpy.ndarray
        ``-s`` averaged over the batch, ``(n_free,)``, in the cost's units per A.
    """
    return -s.mean(0)


def spice(node: str, b: float) -> list[Element]:
    """The current source ``b`` (A) from ground into ``node``.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    b : float
        Bias current into the node, A.

    Returns
    -------
    list of Element
        One ``I`` element.
    """
    return [Element("I", f"ibias_{node}", ("0", node), float(b))]
