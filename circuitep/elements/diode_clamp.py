"""Diode clamp of a free group (DESIGN.md §2).

Diode clamp of a free group: one diode from each node up to the rail ``v_hi``, one from the rail
``v_lo`` up to the node (a soft hard-sigmoid between the rails, DESIGN.md §2), both of the network's
Shockley model ``D(is=i_sat n=n)``.

Current into the node and its derivative: :func:`current` (ngspice's DC diode model with its
exponent cap, :mod:`circuitep.devices`). No trainable parameter. SPICE: rail sources and two ``D``
per node; in the adjoint network the diodes' small-signal conductance as a behavioural source
(:func:`conductance_expression`, the same cap).
"""

from __future__ import annotations

import numpy as np

from circuitep.devices import GMIN, THERMAL_VOLTAGE, diode_clamp_current, diode_current
from circuitep.elements.params import I_SAT_RANGE, N_RANGE, Param
from circuitep.netlist import Element, spice_number

PARAMS = (
    Param(
        "i_sat", "A", "diode saturation current IS", default=1e-12, positive=True, span=I_SAT_RANGE
    ),
    Param("n", "", "diode emission coefficient N", default=1.0, positive=True, span=N_RANGE),
)

current = diode_clamp_current


def power(x, v_lo, v_hi, i_sat, n) -> tuple[np.ndarray, np.ndarray]:
    """Power absorbed by the diodes and by the rails (W, (batch,) each) at node voltages ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        Free node voltages, V, ``(batch, n_free)``.
    v_lo : float or numpy.ndarray
        Lower clamp rail, V (scalar or ``(n_free,)``).
    v_hi : float or numpy.ndarray
        Upper clamp rail, V (scalar or ``(n_free,)``).
    i_sat : float
        Diode saturation current, A.
    n : float
        Diode emission coefficient (dimensionless).

    Returns
    -------
    tuple of numpy.ndarray
        Power into the diodes and into the rails, W, ``(batch,)`` each.
    """
    i_up, _ = diode_current(x - v_hi, i_sat, n)
    i_dn, _ = diode_current(v_lo - x, i_sat, n)
    return (i_up * (x - v_hi) + i_dn * (v_lo - x)).sum(1), (i_up * v_hi - i_dn * v_lo).sum(1)


def rail_nodes(group: str) -> tuple[str, str]:
    """The names of group ``group``'s lower and upper rail nodes.

    Parameters
    ----------
    group : str
        Name of the node group the clamp belongs to.

    Returns
    -------
    tuple of str
        ``(vlo_<group>, vhi_<group>)``.
    """
    return f"vlo_{group}", f"vhi_{group}"


def spice_rails(group: str, clamp: tuple[float, float]) -> list[Element]:
    """The voltage sources holding group ``group``'s rails.

    Parameters
    ----------
    group : str
        Name of the node group the clamp belongs to.
    clamp : tuple of float
        ``(v_lo, v_hi)``, the rails in V.

    Returns
    -------
    list of Element
        Two ``V`` elements.
    """
    lo, hi = rail_nodes(group)
    return [
        Element("V", f"vhi_{group}", (hi, "0"), clamp[1]),
        Element("V", f"vlo_{group}", (lo, "0"), clamp[0]),
    ]


def spice(node: str, group: str, model: str) -> list[Element]:
    """The two clamp diodes of ``node``: node to upper rail, lower rail to node.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    group : str
        Name of the node group the clamp belongs to.
    model : str
        Name of the diode model card.

    Returns
    -------
    list of Element
        Two ``D`` elements.
    """
    lo, hi = rail_nodes(group)
    return [
        Element("D", f"dhi_{node}", (node, hi), model),
        Element("D", f"dlo_{node}", (lo, node), model),
    ]


def conductance_expression(vd: str, i_sat: float, n: float, gmin: float = GMIN) -> str:
    """Behavioural expression of ngspice's diode conductance (S).

    Behavioural expression of ngspice's diode small-signal conductance (S) at the junction voltage
    expression ``vd``.

    Parameters
    ----------
    vd : str
        SPICE expression of the junction voltage (V).
    i_sat : float
        Diode saturation current, A.
    n : float
        Diode emission coefficient (dimensionless).
    gmin : float
        Conductance in parallel with each junction, S (ngspice's gmin).

    Returns
    -------
    str
        The expression, S.
    """
    vte = spice_number(n * THERMAL_VOLTAGE)
    is_ = spice_number(i_sat)
    q = f"(3*{vte}/({spice_number(np.e)}*min({vd},-3*{vte})))"
    reverse = f"{is_}*3*{q}*{q}*{q}/min({vd},-3*{vte})"
    forward = (
        f"{is_}/{vte}*exp(min({vd},80*{vte})/{vte})"  # the exponent cap of devices.diode_current
    )
    return f"((({vd})>=-3*{vte})?({forward}):({reverse}))+{spice_number(gmin)}"


def spice_adjoint(node: str, adj: str, group: str, i_sat: float, n: float) -> list[Element]:
    """Adjoint of the clamp: its small-signal conductance.

    Adjoint of the clamp: a ``B`` source ``(g_up + g_dn) v(adj)``, the diodes' small-signal
    conductance at the free state.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    adj : str
        SPICE name of its adjoint node.
    group : str
        Name of the node group the clamp belongs to.
    i_sat : float
        Diode saturation current, A.
    n : float
        Diode emission coefficient (dimensionless).

    Returns
    -------
    list of Element
        One ``B`` element.
    """
    lo, hi = rail_nodes(group)
    g_up = conductance_expression(f"v({node})-v({hi})", i_sat, n)
    g_dn = conductance_expression(f"v({lo})-v({node})", i_sat, n)
    return [Element("B", f"badj_clamp_{node}", (adj, "0"), f"({g_up}+{g_dn})*v({adj})")]
