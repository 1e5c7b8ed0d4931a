"""Capacitance ``C`` (F) from each free node to ground.

No DC current; transients, stability (``C^-1 J``) and the pseudo-transient continuation of the
solvers read it. SPICE: ``C``, also in the adjoint network.
"""

from __future__ import annotations

from circuitep.elements.params import FARAD_RANGE, Param
from circuitep.netlist import Element

PARAM = Param(
    "capacitance",
    "F",
    "capacitance from the node to ground",
    default=1e-12,
    positive=True,
    span=FARAD_RANGE,
)


def spice(node: str, c: float) -> list[Element]:
    """The capacitor ``c`` (F) from ``node`` to ground (transients only).

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    c : float
        Capacitance to ground, F.

    Returns
    -------
    list of Element
        One ``C``.
    """
    return [Element("C", f"c{node}", (node, "0"), float(c))]


def spice_adjoint(node: str, adj: str, c: float) -> list[Element]:
    """The same capacitor on the adjoint node.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    adj : str
        SPICE name of its adjoint node.
    c : float
        Capacitance to ground, F.

    Returns
    -------
    list of Element
        One ``C``.
    """
    return [Element("C", f"cadj_{node}", (adj, "0"), float(c))]
