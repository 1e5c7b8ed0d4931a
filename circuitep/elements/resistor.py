"""Resistor coupling: conductance ``w[i, j]`` (S, >= 0) between ``dst_i`` and ``src_j``.

Currents into the nodes (A): ``i_dst_i = sum_j w_ij (v_src_j - v_dst_i)`` and
``i_src_j = sum_i w_ij (v_dst_i - v_src_j)``. The row and column sums of ``w`` are constant loads
(:func:`loads`); the rest is :func:`drive` and :func:`back`. Reciprocal: its Jacobian is symmetric,
so the AEP correction has nothing to add (DESIGN.md §1). Learning rule
``dC/dw_ij = (s_i - s_j)(v_i - v_j)``. SPICE: ``R`` of ``1/w`` Ohm; its adjoint is a copy.
"""

from __future__ import annotations

import numpy as np

from circuitep.elements.params import MAX_SIEMENS, MIN_SIEMENS, Param
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


def title(c) -> str:
    return "resistors (Ohm)"


def check(c, path: str) -> None:
    if c.src == c.dst and np.any(np.diag(c.weight)):
        raise ValueError(
            f"{path}: a resistor from a node to itself does nothing; mask the diagonal"
        )


def loads(c) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Constant conductances to ground seen by the dst and src nodes (S): row and column sums."""
    return c.weight.sum(axis=1), c.weight.sum(axis=0)


def drive(c, vs: np.ndarray) -> np.ndarray:
    """Current into dst (A, (batch, m)) from the src voltages ``vs`` (V, (batch, n)), no loads."""
    return vs @ c.weight.T


def back(c, vd: np.ndarray) -> np.ndarray:
    """Current into src (A, (batch, n)) from the dst voltages ``vd`` (V, (batch, m)), no loads."""
    return vd @ c.weight


def jacobian(c, vs: np.ndarray):
    """``(d drive / d vs, d back / d vd)`` (S): ``w`` and ``w^T``, constant."""
    return c.weight, c.weight.T


def weight_grad(c, vd, vs, sd, ss) -> np.ndarray:
    """``-(dF/dw)^T s`` summed over the batch, (m, n): ``sum_b (s_i - s_j)(v_i - v_j)``."""
    return (sd * vd).sum(0)[:, None] + (ss * vs).sum(0)[None, :] - sd.T @ vs - vd.T @ ss


def symmetric_rule(c, vd, vs, sd, ss):
    return None  # EP's rule is the exact one already


def dc_paths(c) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Elements that join dst_i and src_j at DC (m, n), and dst nodes grounded by the coupling."""
    return c.mask & (c.weight > 0), None


def power(c, vd, vs) -> np.ndarray:
    """Power absorbed (W, (batch,)): ``sum w (v_i - v_j)^2``."""
    drop = vd[:, :, None] - vs[:, None, :]
    return np.einsum("ij,bij->b", c.weight, drop * drop)


def max_current(c, vd, vs) -> float:
    return float(np.abs(c.weight[None] * (vd[:, :, None] - vs[:, None, :])).max(initial=0))


def sens_name(c, i: int, j: int) -> str | None:
    """The netlist element whose value ngspice's ``.sens`` reports for weight (i, j)."""
    return f"r{c.name}_{i}_{j}"


def spice(c, src: list[str], dst: list[str]) -> list[Element]:
    return [
        Element("R", f"r{c.name}_{i}_{j}", (dst[i], src[j]), 1.0 / float(c.weight[i, j]))
        for i, j in np.argwhere(c.mask)
        if c.weight[i, j] > 0
    ]


spice_reversed = spice  # reciprocal: the AEP phase keeps it as it is


def spice_adjoint(c, src, dst, adj_src, adj_dst) -> list[Element]:
    """Adjoint elements: the same resistors between the adjoint nodes (ground for inputs)."""
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
