"""OTA coupling: a linear transconductor with finite output conductance and input offset.

Element ``(i, j)`` drives the current ``w_ij (v(src_j) - v_offset_ij)`` (A) into ``dst_i`` and
loads ``dst_i`` with its output conductance ``g_out_ij`` (S) to ground, so that

    i_dst_i = sum_j w_ij (v_src_j - v_offset_ij) - v_dst_i sum_j g_out_ij.

``w`` in S, signed; ``g_out`` (S, >= 0) and ``v_offset`` (V) are settings, a scalar or one value
per element. With both 0 it is :mod:`circuitep.elements.vccs` to the last bit (same currents,
Jacobian, learning rule and netlist elements). Non-reciprocal and linear: the AEP netlist
reverses its transconductance; the output conductance (symmetric) and the offset current
(constant) stay as they are. Learning rule ``dC/dw_ij = -s_i (v_j - v_offset_ij)``. SPICE per
element: ``G`` as a vccs, plus an ``I`` of ``-w v_offset`` and an ``R`` of ``1/g_out`` into
``dst_i`` where they are not 0; its adjoint is the reversed ``G`` plus the same ``R`` between the
adjoint nodes.
"""

from __future__ import annotations

import numpy as np

from circuitep.elements import vccs
from circuitep.elements.params import MAX_SIEMENS, MAX_VOLTS, MIN_SIEMENS, Param, Varies
from circuitep.netlist import Element

NAME = "ota"
LABEL = "ota (linear transconductor with output conductance and input offset)"
PREFIX = "o"
WEIGHT = Param(
    "weight",
    "S",
    "transconductance: current w (v(src_j) - v_offset) into dst_i",
    span=(0.0, MAX_SIEMENS),
    typical=1e-4,
)
SETTINGS: tuple[Param, ...] = (
    Param(
        "g_out",
        "S",
        "output conductance from dst_i to ground, per element",
        default=0.0,
        nonnegative=True,
        span=(MIN_SIEMENS, MAX_SIEMENS),
        per_element=True,
        typical=2e-5,
    ),
    Param(
        "v_offset",
        "V",
        "input offset voltage, per element",
        default=0.0,
        span=(0.0, MAX_VOLTS),
        per_element=True,
        typical=0.05,
    ),
)
RECIPROCAL = False
LINEAR = True
POWER_CLASS = "transconductors"
ADJOINT = "transposed"


VARIES = (
    Varies("weight", True, "", "transconductance mismatch (bias current, W/L) of each OTA"),
    Varies("g_out", True, "", "output conductance mismatch"),
    Varies("v_offset", False, "V", "input offset voltage (threshold mismatch of the pair)"),
)


def _g_out(c) -> np.ndarray:
    return c.settings["g_out"]


def _offset(c) -> np.ndarray:
    return c.settings["v_offset"]


def title(c) -> str:
    """The heading of this kind's netlist section.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.

    Returns
    -------
    str
        The netlist comment heading this kind's section, with the unit.
    """
    extra = []
    if _g_out(c).any():
        extra.append("output conductance (Ohm)")
    if _offset(c).any():
        extra.append("offset currents (A)")
    return "transconductors (S)" + (f" with {' and '.join(extra)}" if extra else "")


def check(c, path: str) -> None:
    """Nothing to refuse: the checks common to every kind cover this one.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    path : str
        Where the coupling sits in the spec, for error messages.
    """
    pass


def loads(c):
    """The output conductances' row sums (S) at dst; none at src.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.

    Returns
    -------
    tuple of (numpy.ndarray or None, numpy.ndarray or None)
        Constant conductances to ground of the destination ``(m,)`` and source ``(n,)`` nodes,
        S; ``None`` where there are none.
    """
    g = _g_out(c)
    return (g.sum(axis=1), None) if g.any() else (None, None)


def drive(c, vs: np.ndarray) -> np.ndarray:
    """``sum_j w_ij (v_src_j - v_offset_ij)`` (A, (batch, m)).

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    vs : numpy.ndarray
        Voltages of the source group's nodes, V, ``(batch, n)``.

    Returns
    -------
    numpy.ndarray
        Current into the destination nodes, A, ``(batch, m)``.
    """
    i = vs @ c.weight.T
    off = _offset(c)
    return i - (c.weight * off).sum(axis=1) if off.any() else i


def back(c, vd):
    """Current this kind drives back into its source nodes.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    vd : numpy.ndarray
        Voltages of the destination group's nodes, V, ``(batch, m)``.

    Returns
    -------
    numpy.ndarray or None
        Current into the source nodes, A, ``(batch, n)``; ``None`` if the kind drives none.
    """
    return None


def jacobian(c, vs: np.ndarray):
    """Derivatives of the drive and back currents with respect to the voltages.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    vs : numpy.ndarray
        Voltages of the source group's nodes, V, ``(batch, n)``.

    Returns
    -------
    tuple
        ``d drive / d vs`` (S, a block ``(m, n)`` or ``(batch, m, n)``,
        :mod:`circuitep.elements.blocks`) and ``d back / d vd`` (S, ``(n, m)`` or batched;
        ``None`` if there is no back current).
    """
    return c.weight, None


def weight_grad(c, vd, vs, sd, ss) -> np.ndarray:
    """``-sum_b s_i (v_j - v_offset_ij)``, (m, n).

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    vd : numpy.ndarray
        Voltages of the destination group's nodes, V, ``(batch, m)``.
    vs : numpy.ndarray
        Voltages of the source group's nodes, V, ``(batch, n)``.
    sd : numpy.ndarray
        Adjoint state ``s`` (DESIGN.md §1) at the destination nodes, ``(batch, m)``.
    ss : numpy.ndarray
        Adjoint state ``s`` at the source nodes, ``(batch, n)`` (zeros for input nodes).

    Returns
    -------
    numpy.ndarray
        The learning rule ``-(dF/dw)^T s`` summed over the batch, ``(m, n)``, in the cost's
        units per S (DESIGN.md §1).
    """
    g = -(sd.T @ vs)
    off = _offset(c)
    return g + off * sd.sum(axis=0)[:, None] if off.any() else g


def symmetric_rule(c, vd, vs, sd, ss) -> np.ndarray:
    """EP's symmetric rule of a vccs, with the offset of the controlling voltage.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    vd : numpy.ndarray
        Voltages of the destination group's nodes, V, ``(batch, m)``.
    vs : numpy.ndarray
        Voltages of the source group's nodes, V, ``(batch, n)``.
    sd : numpy.ndarray
        Adjoint state ``s`` (DESIGN.md §1) at the destination nodes, ``(batch, m)``.
    ss : numpy.ndarray
        Adjoint state ``s`` at the source nodes, ``(batch, n)`` (zeros for input nodes).

    Returns
    -------
    numpy.ndarray or None
        EP's symmetric rule summed over the batch, ``(m, n)``; ``None`` where EP uses
        :func:`weight_grad` for this kind.
    """
    g = vccs.symmetric_rule(c, vd, vs, sd, ss)
    off = _offset(c)
    return g + off * sd.sum(axis=0)[:, None] if off.any() else g


def dc_paths(c):
    """The output conductance grounds the dst nodes it loads.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.

    Returns
    -------
    tuple
        A boolean ``(m, n)`` mask of the elements that join ``dst_i`` and ``src_j`` at DC, and a
        boolean ``(m,)`` mask of the destination nodes the coupling grounds; ``None`` for either
        where there are none.
    """
    g = _g_out(c)
    return (None, (g > 0).any(axis=1)) if g.any() else (None, None)


def power(c, vd, vs) -> np.ndarray:
    """Power absorbed (W, (batch,)): the vccs part, offset current and output conductance.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    vd : numpy.ndarray
        Voltages of the destination group's nodes, V, ``(batch, m)``.
    vs : numpy.ndarray
        Voltages of the source group's nodes, V, ``(batch, n)``.

    Returns
    -------
    numpy.ndarray
        Power absorbed by the coupling's elements, W, ``(batch,)``.
    """
    p = vccs.power(c, vd, vs)
    off, g = _offset(c), _g_out(c)
    if off.any():
        p = p + vd @ (c.weight * off).sum(axis=1)
    if g.any():
        p = p + (vd * vd) @ g.sum(axis=1)
    return p


def max_current(c, vd, vs) -> float:
    """The largest current through any one of its elements.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    vd : numpy.ndarray
        Voltages of the destination group's nodes, V, ``(batch, m)``.
    vs : numpy.ndarray
        Voltages of the source group's nodes, V, ``(batch, n)``.

    Returns
    -------
    float
        The largest current through one element, A.
    """
    i = float(np.abs(c.weight[None] * (vs[:, None, :] - _offset(c)[None])).max(initial=0))
    return max(i, float(np.abs(_g_out(c)[None] * vd[:, :, None]).max(initial=0)))


def sens_name(c, i: int, j: int) -> str | None:
    # with an offset, dC/dw also moves the offset source: .sens of the gain alone is not dC/dw
    """The SPICE element whose value is weight ``(i, j)``.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    i : int
        Destination node index, ``0 <= i < m``.
    j : int
        Source node index, ``0 <= j < n``.

    Returns
    -------
    str or None
        The SPICE name of the element whose value is weight ``(i, j)``, for ngspice's
        sensitivity analysis; ``None`` if no single element value is that weight.
    """
    return None if _offset(c).any() else vccs.sens_name(c, i, j)


def _loads(c, dst: list[str]) -> list[Element]:
    """The offset current sources and output conductances, per element, into ``dst``."""
    els = []
    off, g = _offset(c), _g_out(c)
    for i, j in np.argwhere(c.mask):
        w = float(c.weight[i, j])
        if off[i, j] != 0 and w != 0:
            els.append(Element("I", f"i{c.name}_{i}_{j}_ofs", ("0", dst[i]), -w * float(off[i, j])))
        if g[i, j] > 0:
            els.append(Element("R", f"r{c.name}_{i}_{j}_out", (dst[i], "0"), 1.0 / float(g[i, j])))
    return els


def spice(c, src: list[str], dst: list[str]) -> list[Element]:
    """The elements of the free and nudged phases.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    src : list of str
        SPICE names of the source group's nodes, ``n`` of them.
    dst : list of str
        SPICE names of the destination group's nodes, ``m`` of them.

    Returns
    -------
    list of Element
        The free and nudged phases' elements.
    """
    return vccs.spice(c, src, dst) + _loads(c, dst)


def spice_reversed(c, src: list[str], dst: list[str]) -> list[Element]:
    """AEP phase: the reversed transconductance (:func:`circuitep.elements.vccs.spice_reversed`).

    offset and output conductance unchanged (the correction is ``K = W - W^T`` alone).

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    src : list of str
        SPICE names of the source group's nodes, ``n`` of them.
    dst : list of str
        SPICE names of the destination group's nodes, ``m`` of them.

    Returns
    -------
    list of Element
        The AEP phase's reversed elements.
    """
    return vccs.spice_reversed(c, src, dst) + _loads(c, dst)


def spice_adjoint(c, src, dst, adj_src, adj_dst):
    """The adjoint network's elements (dyadic phase).

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    src : list of str
        SPICE names of the source group's nodes, ``n`` of them.
    dst : list of str
        SPICE names of the destination group's nodes, ``m`` of them.
    adj_src : list of str or None
        The source nodes' adjoint nodes; ``None`` for an input group, which has none.
    adj_dst : list of str
        The destination nodes' adjoint nodes, ``m`` of them.

    Returns
    -------
    list of Element or None
        The adjoint network's elements; ``None`` when there are none (no adjoint nodes on an
        input group).
    """
    g = _g_out(c)
    outs = [
        Element("R", f"radj_{c.name}_{i}_{j}_out", (adj_dst[i], "0"), 1.0 / float(g[i, j]))
        for i, j in np.argwhere(c.mask)
        if g[i, j] > 0
    ]
    trans = vccs.spice_adjoint(c, src, dst, adj_src, adj_dst)
    if trans is None and not outs:
        return None
    return (trans or []) + outs
