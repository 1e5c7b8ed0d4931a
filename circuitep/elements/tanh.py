"""Saturating transconductor coupling (tanh).

Saturating transconductor coupling: current ``w[i, j] V_s tanh(v(src_j) / V_s)`` (A) into ``dst_i``.

``w`` in S, signed; ``v_sat`` (``V_s``, V) one per coupling. Non-reciprocal and non-linear: its
Jacobian block ``w f'(v_src)``, ``f'(v) = 1 - tanh(v / V_s)^2``, depends on the state, so the AEP
netlist keeps explicit correction sources against reference nodes holding ``x0``
(:func:`slope_expression`). Learning rule ``dC/dw_ij = -s_i f(v_j)``. SPICE: a ``B`` source; its
adjoint is ``w f'(v(src_j)) v(adj dst_i)`` into ``adj src_j``.
"""

from __future__ import annotations

import numpy as np

from circuitep.devices import tanh_transfer
from circuitep.elements import expr as ex
from circuitep.elements.blocks import Scaled
from circuitep.elements.params import MAX_SIEMENS, V_SAT_RANGE, Param, Varies
from circuitep.netlist import Element

NAME = "tanh"
LABEL = "saturating (tanh)"
PREFIX = "t"
WEIGHT = Param(
    "weight", "S", "small-signal transconductance at 0 V", span=(0.0, MAX_SIEMENS), typical=1e-4
)
#: A field of :class:`circuitep.spec.Coupling` itself (its default is this one).
V_SAT = Param(
    "v_sat",
    "V",
    "saturation voltage V_s (one per coupling)",
    default=1.0,
    positive=True,
    span=V_SAT_RANGE,
    field=True,
    typical=0.3,
)
SETTINGS: tuple[Param, ...] = (V_SAT,)
RECIPROCAL = False
LINEAR = False
POWER_CLASS = "transconductors"
ADJOINT = "transposed"


VARIES = (Varies("weight", True, "", "gain mismatch of each saturating transconductor"),)


def title(c) -> str:
    """The heading of the saturating transconductors' netlist section, with ``v_sat``.

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
    return f"saturating transconductors (v_sat = {c.v_sat:g} V)"


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
    """Constant conductances to ground this kind adds to its nodes.

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
    return None, None


def drive(c, vs: np.ndarray) -> np.ndarray:
    """Current ``w v_sat tanh(v_src / v_sat)`` into the destination nodes.

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
    return tanh_transfer(vs, c.v_sat)[0] @ c.weight.T


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
    """``d drive / d vs = w (1 - tanh^2(v_src / v_sat))``, a scaled block; no back current.

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
    return Scaled(c.weight, tanh_transfer(vs, c.v_sat)[1]), None


def weight_grad(c, vd, vs, sd, ss) -> np.ndarray:
    """The learning rule ``-sum_b s_i v_sat tanh(v_j / v_sat)``, summed over the batch.

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
    return -(sd.T @ tanh_transfer(vs, c.v_sat)[0])


def symmetric_rule(c, vd, vs, sd, ss):
    """EP's symmetric rule, for the ``ep`` estimator.

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
    return None


def dc_paths(c):
    """The nodes that this coupling connects to ground at DC.

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
    return None, None


def power(c, vd, vs) -> np.ndarray:
    """Power absorbed: minus the power ``v_dst i`` delivered into dst.

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
    return -np.einsum("bj,ij,bi->b", tanh_transfer(vs, c.v_sat)[0], c.weight, vd)


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
    return float(np.abs(c.weight[None] * tanh_transfer(vs, c.v_sat)[0][:, None, :]).max(initial=0))


def sens_name(c, i: int, j: int) -> str | None:
    """``None``: a behavioural source, which ngspice's ``.sens`` does not cover.

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
    return None  # a behavioural source: ngspice's .sens does not cover it


def _tanh(c, v: ex.Expr) -> ex.Expr:
    return ex.tanh(v / c.v_sat)


def current_expression(c, i: int, j: int, v: ex.Expr) -> ex.Expr:
    """Current ``w[i, j] V_s tanh(v / V_s)`` (A) into ``dst_i``.

    Parameters
    ----------
    c : Coupling
        A coupling of this kind, weight ``(m, n)`` (S) and ``v_sat`` (V).
    i, j : int
        Destination node ``i`` (``0 <= i < m``), source node ``j`` (``0 <= j < n``).
    v : Expr
        The source voltage ``v(src_j)`` (V).

    Returns
    -------
    Expr
        The current (A).
    """
    return _current(c, i, j, _tanh(c, v))


def slope_expression(c, i: int, j: int, v: ex.Expr) -> ex.Expr:
    """Slope ``d i_dst_i / d v_src_j = w[i, j] (1 - tanh(v / V_s)^2)`` (S).

    Parameters
    ----------
    c : Coupling
        A coupling of this kind, weight ``(m, n)`` (S) and ``v_sat`` (V).
    i, j : int
        Destination node ``i`` (``0 <= i < m``), source node ``j`` (``0 <= j < n``).
    v : Expr
        The source voltage ``v(src_j)`` (V) at which the slope is taken.

    Returns
    -------
    Expr
        The slope (S).
    """
    return _slope(c, i, j, _dtanh(_tanh(c, v)))


# The expressions from a column's shared t = tanh(v_j / V_s) and 1 - t^2 (each written once).
def _dtanh(t: ex.Expr) -> ex.Expr:
    return 1 - t * t


def _current(c, i: int, j: int, t: ex.Expr) -> ex.Expr:
    return float(c.weight[i, j]) * c.v_sat * t


def _slope(c, i: int, j: int, dt: ex.Expr) -> ex.Expr:
    return float(c.weight[i, j]) * dt


def spice(c, src: list[str], dst: list[str]) -> list[Element]:
    """One ``B`` source per weight: ``w v_sat tanh(v(src_j)/v_sat)`` into ``dst_i``.

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
    ts = [_tanh(c, ex.v(n)) for n in src]
    return [
        Element("B", f"b{c.name}_{i}_{j}", ("0", dst[i]), ex.to_spice(_current(c, i, j, ts[j])))
        for i, j in np.argwhere(c.mask)
    ]


def spice_adjoint(c, src, dst, adj_src, adj_dst):
    """Adjoint.

    ``B`` sources ``slope * v(adj dst_i)`` into ``adj src_j``, with the slope of :func:`spice_slope`
    at the free state.

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
    if adj_src is None:
        return None
    dts, adj = [_dtanh(_tanh(c, ex.v(n))) for n in src], [ex.v(n) for n in adj_dst]
    return [
        Element(
            "B",
            f"badj_{c.name}_{i}_{j}",
            ("0", adj_src[j]),
            ex.to_spice(_slope(c, i, j, dts[j]) * adj[i]),
        )
        for i, j in np.argwhere(c.mask)
    ]
