"""Linear transconductor coupling (VCCS): current ``w[i, j] v(src_j)`` (A) into ``dst_i``.

``w`` in S, signed. Non-reciprocal: its Jacobian block ``d i_dst / d v_src = w`` has no
transpose, which the AEP correction adds (:mod:`circuitep.elements.aep`). Linear: that block does
not depend on the state, so the AEP netlist reverses the element instead of adding correction
sources. Learning rule ``dC/dw_ij = -s_i v_j``. SPICE: ``G`` from ground into ``dst_i``
controlled by ``v(src_j)``; its adjoint is the reversed ``G`` between the adjoint nodes.
"""

from __future__ import annotations

import numpy as np

from circuitep.elements.params import MAX_SIEMENS, Param
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


def title(c) -> str:
    return "transconductors (S)"


def check(c, path: str) -> None:
    pass


def loads(c):
    return None, None


def drive(c, vs: np.ndarray) -> np.ndarray:
    """Current into dst (A, (batch, m)) from the src voltages ``vs`` (V, (batch, n))."""
    return vs @ c.weight.T


def back(c, vd):
    return None


def jacobian(c, vs: np.ndarray):
    return c.weight, None


def weight_grad(c, vd, vs, sd, ss) -> np.ndarray:
    """``-(dF/dw)^T s`` summed over the batch, (m, n): ``-sum_b s_i v_j``."""
    return -(sd.T @ vs)


def symmetric_rule(c, vd, vs, sd, ss) -> np.ndarray:
    """EP's symmetric rule ``-(s_i v_j + s_j v_i)`` summed over the batch."""
    return -(sd.T @ vs + vd.T @ ss)


def dc_paths(c):
    return None, None


def power(c, vd, vs) -> np.ndarray:
    """Power absorbed (W, (batch,)): minus the power it delivers into dst."""
    return -np.einsum("bj,ij,bi->b", vs, c.weight, vd)


def max_current(c, vd, vs) -> float:
    return float(np.abs(c.weight[None] * vs[:, None, :]).max(initial=0))


def sens_name(c, i: int, j: int) -> str | None:
    return f"g{c.name}_{i}_{j}"


def spice(c, src: list[str], dst: list[str]) -> list[Element]:
    return [
        Element("G", f"g{c.name}_{i}_{j}", ("0", dst[i], src[j], "0"), float(c.weight[i, j]))
        for i, j in np.argwhere(c.mask)
    ]


def spice_reversed(c, src: list[str], dst: list[str]) -> list[Element]:
    """The AEP phase's element: current ``w v(dst_i)`` into ``src_j`` (the correction cancels
    the forward drive and adds its transpose; the constants ``K x0`` come separately)."""
    return [
        Element("G", f"g{c.name}_{i}_{j}", ("0", src[j], dst[i], "0"), float(c.weight[i, j]))
        for i, j in np.argwhere(c.mask)
    ]


def spice_adjoint(c, src, dst, adj_src, adj_dst):
    """Adjoint: ``w v(adj dst_i)`` into ``adj src_j``; none from inputs (no adjoint node)."""
    if adj_src is None:
        return None
    return [
        Element(
            "G", f"gadj_{c.name}_{i}_{j}", ("0", adj_src[j], adj_dst[i], "0"), float(c.weight[i, j])
        )
        for i, j in np.argwhere(c.mask)
    ]
