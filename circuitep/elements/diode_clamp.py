"""Diode clamp of a free group (DESIGN.md §2).

Diode clamp of a free group: one diode from each node up to the rail ``v_hi``, one from the rail
``v_lo`` up to the node (a soft hard-sigmoid between the rails, DESIGN.md §2), both of the network's
diode card (:data:`PARAMS`: IS, N, RS, capacitances, breakdown, temperature parameters) at the
network's temperature.

Current into the node and its derivative: :func:`current` (ngspice's DC diode model with its
exponent cap, :mod:`circuitep.devices`). No trainable parameter. SPICE: rail sources and two ``D``
per node; in the adjoint network the diodes' small-signal conductance as a behavioural source
(:func:`adjoint_expression`, the same cap, written from one
:mod:`circuitep.elements.expr` expression that numpy also evaluates).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from circuitep.devices import (
    DiodeLaw,
    diode_clamp_current,
    diode_law,
    law_current,
)
from circuitep.elements import expr as ex
from circuitep.elements.params import FARAD_RANGE, I_SAT_RANGE, N_RANGE, TEMPERATURE_RANGE, Param
from circuitep.netlist import Element

#: The diode card's parameters, in the order the ``.model`` line writes them. ``i_sat`` and ``n``
#: are always written; the optional ones only when given (ngspice's default, named in ``doc``,
#: applies otherwise). Bounds: ngspice limits M to 0.9, FC to 0.95 and EG to at least 0.1 eV with a
#: warning, so those are the bounds here; the others are physical magnitudes of junction diodes
#: with generous margins (each one's ``doc`` says which).
PARAMS = (
    Param(
        "i_sat",
        "A",
        "saturation current IS at TNOM",
        default=1e-12,
        positive=True,
        span=I_SAT_RANGE,
        spice="is",
    ),
    Param("n", "", "emission coefficient N", default=1.0, positive=True, span=N_RANGE, spice="n"),
    Param(
        "rs",
        "Ohm",
        "series (ohmic) resistance RS (default 0: none); 1 uOhm .. 1 TOhm",
        nonnegative=True,
        span=(1e-6, 1e12),
        spice="rs",
        optional=True,
    ),
    Param(
        "cjo",
        "F",
        "zero-bias junction capacitance CJO (default 0; transients only)",
        nonnegative=True,
        span=FARAD_RANGE,
        spice="cjo",
        optional=True,
    ),
    Param(
        "vj",
        "V",
        "junction potential VJ (default 1 V; transients only), 10 mV .. 10 V",
        positive=True,
        span=(0.01, 10.0),
        spice="vj",
        optional=True,
    ),
    Param(
        "m",
        "",
        "grading coefficient M (default 0.5; transients only), 0.01 .. 0.9 (ngspice's limit)",
        positive=True,
        span=(0.01, 0.9),
        spice="m",
        optional=True,
    ),
    Param(
        "fc",
        "",
        "forward-bias depletion capacitance coefficient FC (default 0.5; transients only), "
        "at most 0.95 (ngspice's limit)",
        nonnegative=True,
        span=(0.0, 0.95),
        spice="fc",
        optional=True,
    ),
    Param(
        "tt",
        "s",
        "transit time TT (default 0; transients only), up to 1 s",
        nonnegative=True,
        span=(1e-18, 1.0),
        spice="tt",
        optional=True,
    ),
    Param(
        "bv",
        "V",
        "reverse breakdown voltage BV (default: no breakdown), 0.1 .. 1e4 V",
        positive=True,
        span=(0.1, 1e4),
        spice="bv",
        optional=True,
    ),
    Param(
        "ibv",
        "A",
        "current at the breakdown voltage IBV (default 1e-3 A), 1 fA .. 1 kA",
        positive=True,
        span=(1e-15, 1e3),
        spice="ibv",
        optional=True,
    ),
    Param(
        "nbv",
        "",
        "breakdown emission coefficient NBV (default 1)",
        positive=True,
        span=N_RANGE,
        spice="nbv",
        optional=True,
    ),
    Param(
        "eg",
        "eV",
        "activation energy EG (default 1.11 eV: silicon; 0.69 Schottky), 0.1 (ngspice's limit) "
        ".. 10 eV",
        positive=True,
        span=(0.1, 10.0),
        spice="eg",
        optional=True,
    ),
    Param(
        "xti",
        "",
        "saturation-current temperature exponent XTI (default 3: pn junction; 2 Schottky), "
        "|XTI| <= 50",
        span=(0.0, 50.0),
        spice="xti",
        optional=True,
    ),
    Param(
        "tnom",
        "degC",
        "temperature the card's parameters were measured at, TNOM (default 27 degC, ngspice's "
        "option tnom)",
        spice="tnom",
        optional=True,
        interval=TEMPERATURE_RANGE,
    ),
    Param(
        "trs1",
        "1/K",
        "linear temperature coefficient of RS, TRS1 (default 0), |TRS1| <= 0.1 /K",
        span=(0.0, 0.1),
        spice="trs1",
        optional=True,
    ),
    Param(
        "trs2",
        "1/K^2",
        "quadratic temperature coefficient of RS, TRS2 (default 0), |TRS2| <= 1e-3 /K^2",
        span=(0.0, 1e-3),
        spice="trs2",
        optional=True,
    ),
)
#: The card key of each parameter, by spec key.
DIODE_CARD_KEYS = {p.name: p.spice for p in PARAMS}
#: Parameters that only ngspice's transients see (junction and diffusion charge): the numpy engines'
#: transients (:func:`circuitep.report.transient`) integrate the node capacitances alone.
CHARGE_PARAMS = ("cjo", "vj", "m", "fc", "tt")


def law(diode, temperature: float) -> DiodeLaw:
    """The DC law of ``diode`` (a :class:`circuitep.spec.DiodeModel`) at ``temperature`` (degC).

    Parameters
    ----------
    diode : DiodeModel
        The validated card.
    temperature : float
        Circuit temperature, degC.

    Returns
    -------
    DiodeLaw
        Its effective parameters (:func:`circuitep.devices.diode_law`).
    """
    return diode_law(
        diode.i_sat,
        diode.n,
        temperature,
        rs=diode.rs or 0.0,
        tnom=diode.tnom,
        eg=diode.eg,
        xti=diode.xti,
        bv=diode.bv,
        ibv=diode.ibv,
        nbv=diode.nbv,
        trs1=diode.trs1,
        trs2=diode.trs2,
    )


def net_law(net) -> DiodeLaw:
    """The DC law of ``net``'s clamp diodes at ``net.temperature`` (:func:`law`).

    Parameters
    ----------
    net : Network
        The validated network.

    Returns
    -------
    DiodeLaw
        The effective parameters.
    """
    return law(net.diode, net.temperature)


current = diode_clamp_current


def power(x, v_lo, v_hi, law: DiodeLaw) -> tuple[np.ndarray, np.ndarray]:
    """Power absorbed by the diodes and by the rails (W, (batch,) each) at node voltages ``x``.

    Parameters
    ----------
    x : numpy.ndarray
        Free node voltages, V, ``(batch, n_free)``.
    v_lo : float or numpy.ndarray
        Lower clamp rail, V (scalar or ``(n_free,)``).
    v_hi : float or numpy.ndarray
        Upper clamp rail, V (scalar or ``(n_free,)``).
    law : DiodeLaw
        The diodes' effective parameters (:func:`net_law`).

    Returns
    -------
    tuple of numpy.ndarray
        Power into the diodes (their series resistance included) and into the rails, W,
        ``(batch,)`` each.
    """
    i_up, _ = law_current(x - v_hi, law)
    i_dn, _ = law_current(v_lo - x, law)
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


def junction_expression(vd: ex.Expr, law: DiodeLaw) -> ex.Expr:
    """Small-signal conductance (S) of ngspice's junction without ``gmin``.

    At the junction voltage ``vd`` (V), with the exponent cap of
    :func:`circuitep.devices.junction_current` (``vte = N k T / q``, ``IS`` at the temperature)::

        IS / vte exp(min(vd, 80 vte) / vte)                    for vd >= -3 vte
        3 IS (3 vte / (e vd))^3 / vd                            down to -BV
        IS / vtebrk exp(min(-(BV + vd), 80 vtebrk) / vtebrk)    below (breakdown, with BV only)

    Parameters
    ----------
    vd : Expr
        The junction voltage (V).
    law : DiodeLaw
        The effective parameters (:func:`net_law`); its ``rs`` must be 0 (no expression can solve
        for the junction voltage behind a series resistance).

    Returns
    -------
    Expr
        The conductance (S).
    """
    if law.rs:
        raise ValueError(
            "the adjoint clamp's conductance needs the junction voltage behind RS, which a "
            "behavioural expression of the node voltages cannot give"
        )
    i_sat, vte = law.i_sat, law.vte
    low = ex.minimum(vd, -3 * ex.Const(vte))
    q = 3 * ex.Const(vte) / (np.e * low)
    reverse = i_sat * ex.Const(3) * q * q * q / low
    if law.bv < np.inf:
        b = -(ex.Const(law.bv) + vd)
        breakdown = (
            law.i_sat
            / ex.Const(law.vtebrk)
            * ex.exp(ex.minimum(b, 80 * ex.Const(law.vtebrk)) / law.vtebrk)
        )
        reverse = ex.where(ex.ge(vd, -1 * ex.Const(law.bv)), reverse, breakdown)
    forward = i_sat / ex.Const(vte) * ex.exp(ex.minimum(vd, 80 * ex.Const(vte)) / vte)
    return ex.where(ex.ge(vd, -3 * ex.Const(vte)), forward, reverse)


def conductance_expression(vd: ex.Expr, law: DiodeLaw) -> ex.Expr:
    """Small-signal conductance (S) of ngspice's diode, ``gmin`` included.

    :func:`junction_expression` plus ``gmin``: :func:`circuitep.devices.junction_current`'s
    conductance.

    Parameters
    ----------
    vd : Expr
        The junction voltage (V).
    law : DiodeLaw
        The effective parameters (``rs`` 0).

    Returns
    -------
    Expr
        The conductance (S).
    """
    return junction_expression(vd, law) + law.gmin


def adjoint_expression(node: str, adj: str, group: str, law: DiodeLaw) -> ex.Expr:
    """Current (A) of the adjoint clamp into ``adj`` from ground.

    The conductance of both diodes at the voltage of ``node`` times ``v(adj)``:
    ``(g_up + g_dn) v(adj)`` (DESIGN.md §1, Dyadic EP).

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    adj : str
        SPICE name of its adjoint node.
    group : str
        Name of the node group the clamp belongs to (its rail nodes).
    law : DiodeLaw
        The diodes' effective parameters (``rs`` 0).

    Returns
    -------
    Expr
        The current (A).
    """
    lo, hi = (ex.v(r) for r in rail_nodes(group))
    g_up = conductance_expression(ex.v(node) - hi, law)
    g_dn = junction_expression(lo - ex.v(node), law)
    return (g_up + g_dn + law.gmin) * ex.v(adj)  # summed left to right, as always written


def spice_adjoint(node: str, adj: str, group: str, law: DiodeLaw) -> list[Element]:
    """Adjoint of the clamp: a ``B`` source of :func:`adjoint_expression`.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    adj : str
        SPICE name of its adjoint node.
    group : str
        Name of the node group the clamp belongs to.
    law : DiodeLaw
        The diodes' effective parameters (``rs`` 0).

    Returns
    -------
    list of Element
        One ``B`` element.
    """
    expression = ex.to_spice(adjoint_expression(node, adj, group, law))
    return [Element("B", f"badj_clamp_{node}", (adj, "0"), expression)]


#: Spec keys of the series resistance and its temperature coefficients: in the dyadic netlist they
#: leave the card and RS becomes explicit resistors (:func:`spice_with_rs`).
RS_PARAMS = ("rs", "trs1", "trs2")


def junction_nodes(node: str) -> tuple[str, str]:
    """The internal (junction-side) nodes of ``node``'s upper and lower clamp diode behind RS.

    Parameters
    ----------
    node : str
        SPICE name of the free node.

    Returns
    -------
    tuple of str
        ``(jhi_<node>, jlo_<node>)`` (two underscores: no user node can be named so).
    """
    return f"jhi_{node}", f"jlo_{node}"


def spice_with_rs(node: str, group: str, model: str, rs: float) -> list[Element]:
    """The clamp diodes of ``node`` with their series resistance as explicit resistors.

    What ngspice builds inside a diode with ``RS`` (a resistor from the anode to an internal node,
    the junction from there to the cathode), written out so that the junction voltages are node
    voltages the adjoint network can read (:func:`spice_adjoint_with_rs`). ``model`` is a card
    without RS; ``rs`` (Ohm) is RS at the circuit temperature (:attr:`DiodeLaw.rs`).

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    group : str
        Name of the node group the clamp belongs to.
    model : str
        Name of the junction's model card (no RS).
    rs : float
        Series resistance at the circuit temperature, Ohm.

    Returns
    -------
    list of Element
        Two ``R`` and two ``D`` elements.
    """
    lo, hi = rail_nodes(group)
    j_hi, j_lo = junction_nodes(node)
    return [
        Element("R", f"rs_dhi_{node}", (node, j_hi), rs, "RS of dhi (at the circuit temperature)"),
        Element("D", f"dhi_{node}", (j_hi, hi), model),
        Element("R", f"rs_dlo_{node}", (lo, j_lo), rs, "RS of dlo (at the circuit temperature)"),
        Element("D", f"dlo_{node}", (j_lo, node), model),
    ]


def spice_adjoint_with_rs(node: str, adj: str, group: str, law: DiodeLaw) -> list[Element]:
    """Adjoint of a clamp with explicit series resistance (:func:`spice_with_rs`).

    Each diode's resistor is copied between the adjoint nodes, and its junction becomes its
    small-signal conductance at the junction voltage (``B`` sources of
    :func:`conductance_expression`): the upper junction from ``adj_jhi`` to ground (its rail is a
    source, ground in the adjoint network), the lower one between ``adj_jlo`` and ``adj``. Series
    RS and ``g_j`` reduce to the ``g_j / (1 + RS g_j)`` that the numpy engines' Jacobian holds.

    Parameters
    ----------
    node : str
        SPICE name of the free node.
    adj : str
        SPICE name of its adjoint node.
    group : str
        Name of the node group the clamp belongs to.
    law : DiodeLaw
        The diodes' effective parameters (``rs`` > 0).

    Returns
    -------
    list of Element
        Two ``R`` and two ``B`` elements.
    """
    lo, hi = (ex.v(r) for r in rail_nodes(group))
    j_hi, j_lo = junction_nodes(node)
    a_hi, a_lo = f"adj_{j_hi}", f"adj_{j_lo}"
    junction = replace(law, rs=0.0)
    g_up = conductance_expression(ex.v(j_hi) - hi, junction)
    g_dn = conductance_expression(ex.v(j_lo) - ex.v(node), junction)
    return [
        Element("R", f"radj_rs_dhi_{node}", (adj, a_hi), law.rs),
        Element("B", f"badj_dhi_{node}", (a_hi, "0"), ex.to_spice(g_up * ex.v(a_hi))),
        Element("R", f"radj_rs_dlo_{node}", ("0", a_lo), law.rs),
        Element("B", f"badj_dlo_{node}", (a_lo, adj), ex.to_spice(g_dn * (ex.v(a_lo) - ex.v(adj)))),
    ]
