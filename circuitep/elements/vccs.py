"""Linear transconductor coupling (VCCS): current ``w[i, j] v(src_j)`` (A) into ``dst_i``.

``w`` in S, signed. Non-reciprocal: its Jacobian block ``d i_dst / d v_src = w`` has no
transpose, which the AEP correction adds (:mod:`circuitep.elements.aep`). Linear: that block does
not depend on the state, so the AEP netlist reverses the element instead of adding correction
sources. Learning rule ``dC/dw_ij = -s_i v_j``. SPICE: ``G`` from ground into ``dst_i``
controlled by ``v(src_j)``; its adjoint is the reversed ``G`` between the adjoint nodes.
"""

from __future__ import annotations

import numpy as np

from circuitep.elements.params import MAX_SIEMENS, Param, Varies
from circuitep.netlist import Element

NAME = "vccs"
LABEL = "linear transconductor (vccs)"
PREFIX = "v"
WEIGHT = Param(
    "weight",
    "S",
    "transconductance: current w v(src_j) into dst_i",
    span=(0.0, MAX_SIEMENS),
    typical=1e-4,
)
SETTINGS: tuple[Param, ...] = ()
RECIPROCAL = False
LINEAR = True
POWER_CLASS = "transconductors"
ADJOINT = "transposed"


VARIES = (Varies("weight", True, "", "gain (transconductance) mismatch of each transconductor"),)


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
    return "transconductors (S)"


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
    """Current into dst (A, (batch, m)) from the src voltages ``vs`` (V, (batch, n)).

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
    return vs @ c.weight.T


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
    """``-(dF/dw)^T s`` summed over the batch, (m, n): ``-sum_b s_i v_j``.

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
    return -(sd.T @ vs)


def symmetric_rule(c, vd, vs, sd, ss) -> np.ndarray:
    """EP's symmetric rule ``-(s_i v_j + s_j v_i)`` summed over the batch.

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
    return -(sd.T @ vs + vd.T @ ss)


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
    """Power absorbed (W, (batch,)): minus the power it delivers into dst.

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
    return -np.einsum("bj,ij,bi->b", vs, c.weight, vd)


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
    return float(np.abs(c.weight[None] * vs[:, None, :]).max(initial=0))


def sens_name(c, i: int, j: int) -> str | None:
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
    return f"g{c.name}_{i}_{j}"


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
    return [
        Element("G", f"g{c.name}_{i}_{j}", ("0", dst[i], src[j], "0"), float(c.weight[i, j]))
        for i, j in np.argwhere(c.mask)
    ]


def spice_reversed(c, src: list[str], dst: list[str]) -> list[Element]:
    """The AEP phase's element: current ``w v(dst_i)`` into ``src_j``.

    The AEP phase's element: current ``w v(dst_i)`` into ``src_j`` (the correction cancels the
    forward drive and adds its transpose; the constants ``K x0`` come separately).

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
    return [
        Element("G", f"g{c.name}_{i}_{j}", ("0", src[j], dst[i], "0"), float(c.weight[i, j]))
        for i, j in np.argwhere(c.mask)
    ]


def spice_adjoint(c, src, dst, adj_src, adj_dst):
    """Adjoint: ``w v(adj dst_i)`` into ``adj src_j``; none from inputs (no adjoint node).

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
    return [
        Element(
            "G", f"gadj_{c.name}_{i}_{j}", ("0", adj_src[j], adj_dst[i], "0"), float(c.weight[i, j])
        )
        for i, j in np.argwhere(c.mask)
    ]
