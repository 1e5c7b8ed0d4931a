"""Leak: conductance ``g`` (S) from each free node to ground, current ``-g v`` (A) into the node.

Learning rule ``dC/dg = s v``. SPICE: ``R`` of ``1/g`` Ohm (none for ``g = 0``), copied into the
adjoint network.
"""

from __future__ import annotations

import numpy as np

from circuitep.elements.params import MIN_SIEMENS, Param, Varies
from circuitep.netlist import Element

PARAM = Param(
    "leak",
    "S",
    "conductance from the node to ground",
    default=1e-4,
    nonnegative=True,
    span=(MIN_SIEMENS, np.inf),
)


VARIES = (Varies("leak", True, "", "mismatch of each node's leak conductance"),)


def grad(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``-(dF/dg)^T s`` averaged over the batch: ``s v`` (x, s: (batch, n) V and adjoint).

    Parameters
    ----------
    x : numpy.ndarray
        Node voltages, V, ``(batch, n_free)``.
    s : numpy.ndarray
        Adjoint state ``s`` (DESIGN.md §1), ``(batch, n_free)``.

    Returns
    -------
    numpy.ndarray
        ``s v`` averaged over the batch, ``(n_free,)``, in the cost's units per S.
    """
    return (s * x).mean(0)


def spice(node: str, g: float) -> list[Element]:
    """The leak resistor ``1 / g`` (Ohm) from ``node`` to ground.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    g : float
        Leak conductance to ground, S (0: no element).

    Returns
    -------
    list of Element
        One ``R``, or none if ``g`` is 0.
    """
    return [Element("R", f"rleak_{node}", (node, "0"), 1.0 / g)] if g > 0 else []


def spice_adjoint(node: str, adj: str, g: float) -> list[Element]:
    """The same leak on the adjoint node.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    adj : str
        SPICE name of its adjoint node.
    g : float
        Leak conductance to ground, S (0: no element).

    Returns
    -------
    list of Element
        One ``R``, or none if ``g`` is 0.
    """
    return [Element("R", f"radj_leak_{node}", (adj, "0"), 1.0 / g)] if g > 0 else []
