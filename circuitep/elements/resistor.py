"""Resistor coupling: conductance ``w[i, j]`` (S, >= 0) between ``dst_i`` and ``src_j``.

Currents into the nodes (A): ``i_dst_i = sum_j w_ij (v_src_j - v_dst_i)`` and
``i_src_j = sum_i w_ij (v_dst_i - v_src_j)``. The row and column sums of ``w`` are constant loads
(:func:`loads`); the rest is :func:`drive` and :func:`back`. Reciprocal: its Jacobian is symmetric,
so the AEP correction has nothing to add (DESIGN.md §1). Learning rule
``dC/dw_ij = (s_i - s_j)(v_i - v_j)``. SPICE: ``R`` of ``1/w`` Ohm; its adjoint is a copy.
"""

from __future__ import annotations

import numpy as np

from circuitep.elements.params import MAX_SIEMENS, MIN_SIEMENS, Param, Varies
from circuitep.netlist import Element

NAME = "resistor"
LABEL = "resistor"
PREFIX = "r"  # coupling names from graphs: r_<src group>_<dst group>
WEIGHT = Param(
    "weight",
    "S",
    "conductance between dst_i and src_j",
    nonnegative=True,
    span=(MIN_SIEMENS, MAX_SIEMENS),
    typical=1e-4,
)
SETTINGS: tuple[Param, ...] = ()
RECIPROCAL = True
LINEAR = True
POWER_CLASS = "resistors"
ADJOINT = "copied"


VARIES = (Varies("weight", True, "", "conductance mismatch of each resistor"),)


def title(c) -> str:
    """The heading of the resistors' netlist section, in Ohm.

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
    return "resistors (Ohm)"


def check(c, path: str) -> None:
    """Refuse a resistor from a node to itself (ValueError naming ``path``).

    Parameters
    ----------
    c : Coupling
        A coupling of this kind (:class:`circuitep.spec.Coupling`): its ``weight`` ``(m, n)``,
        ``mask`` and settings.
    path : str
        Where the coupling sits in the spec, for error messages.
    """
    if c.src == c.dst and np.any(np.diag(c.weight)):
        raise ValueError(
            f"{path}: a resistor from a node to itself does nothing; mask the diagonal"
        )


def loads(c) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Constant conductances to ground seen by the dst and src nodes (S): row and column sums.

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
    return c.weight.sum(axis=1), c.weight.sum(axis=0)


def drive(c, vs: np.ndarray) -> np.ndarray:
    """Current into dst (A, (batch, m)) from the src voltages ``vs`` (V, (batch, n)), no loads.

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


def back(c, vd: np.ndarray) -> np.ndarray:
    """Current into src (A, (batch, n)) from the dst voltages ``vd`` (V, (batch, m)), no loads.

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
    return vd @ c.weight


def jacobian(c, vs: np.ndarray):
    """``(d drive / d vs, d back / d vd)`` (S): ``w`` and ``w^T``, constant.

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
    return c.weight, c.weight.T


def weight_grad(c, vd, vs, sd, ss) -> np.ndarray:
    """``-(dF/dw)^T s`` summed over the batch, (m, n): ``sum_b (s_i - s_j)(v_i - v_j)``.

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
    return (sd * vd).sum(0)[:, None] + (ss * vs).sum(0)[None, :] - sd.T @ vs - vd.T @ ss


def symmetric_rule(c, vd, vs, sd, ss):
    """``None``: for a resistor EP's rule is the exact one.

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
    return None  # EP's rule is the exact one already


def dc_paths(c) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Elements that join dst_i and src_j at DC (m, n), and dst nodes grounded by the coupling.

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
    return c.mask & (c.weight > 0), None


def power(c, vd, vs) -> np.ndarray:
    """Power absorbed (W, (batch,)): ``sum w (v_i - v_j)^2``.

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
    drop = vd[:, :, None] - vs[:, None, :]
    return np.einsum("ij,bij->b", c.weight, drop * drop)


def max_current(c, vd, vs) -> float:
    """The largest current ``|w (v_i - v_j)|`` through one resistor.

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
    return float(np.abs(c.weight[None] * (vd[:, :, None] - vs[:, None, :])).max(initial=0))


def sens_name(c, i: int, j: int) -> str | None:
    """The netlist element whose value ngspice's ``.sens`` reports for weight (i, j).

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
    return f"r{c.name}_{i}_{j}"


def spice(c, src: list[str], dst: list[str]) -> list[Element]:
    """One ``R`` of ``1 / w`` Ohm per unmasked positive weight.

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
        Element("R", f"r{c.name}_{i}_{j}", (dst[i], src[j]), 1.0 / float(c.weight[i, j]))
        for i, j in np.argwhere(c.mask)
        if c.weight[i, j] > 0
    ]


spice_reversed = spice  # reciprocal: the AEP phase keeps it as it is


def spice_adjoint(c, src, dst, adj_src, adj_dst) -> list[Element]:
    """Adjoint elements: the same resistors between the adjoint nodes (ground for inputs).

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
    return [
        Element(
            "R",
            f"radj_{c.name}_{i}_{j}",
            (adj_dst[i], adj_src[j] if adj_src is not None else "0"),
            1.0 / float(c.weight[i, j]),
        )
        for i, j in np.argwhere(c.mask)
        if c.weight[i, j] > 0
    ]
