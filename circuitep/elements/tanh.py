"""Saturating transconductor coupling: current ``w[i, j] V_s tanh(v(src_j) / V_s)`` (A) into
``dst_i``.

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
from circuitep.elements.params import MAX_SIEMENS, V_SAT_RANGE, Param
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


def title(c) -> str:
    return f"saturating transconductors (v_sat = {c.v_sat:g} V)"


def check(c, path: str) -> None:
    pass


def loads(c):
    return None, None


def drive(c, vs: np.ndarray) -> np.ndarray:
    return tanh_transfer(vs, c.v_sat)[0] @ c.weight.T


def back(c, vd):
    return None


def jacobian(c, vs: np.ndarray):
    return Scaled(c.weight, tanh_transfer(vs, c.v_sat)[1]), None


def weight_grad(c, vd, vs, sd, ss) -> np.ndarray:
    return -(sd.T @ tanh_transfer(vs, c.v_sat)[0])


def symmetric_rule(c, vd, vs, sd, ss):
    return None


def dc_paths(c):
    return None, None


def power(c, vd, vs) -> np.ndarray:
    return -np.einsum("bj,ij,bi->b", tanh_transfer(vs, c.v_sat)[0], c.weight, vd)


def max_current(c, vd, vs) -> float:
    return float(np.abs(c.weight[None] * tanh_transfer(vs, c.v_sat)[0][:, None, :]).max(initial=0))


def sens_name(c, i: int, j: int) -> str | None:
    return None  # a behavioural source: ngspice's .sens does not cover it


def _tanh(c, v: ex.Expr) -> ex.Expr:
    return ex.tanh(v / c.v_sat)


def current_expression(c, i: int, j: int, v: ex.Expr) -> ex.Expr:
    """Current ``w[i, j] V_s tanh(v / V_s)`` (A) into ``dst_i`` at the source voltage ``v`` (V)."""
    return _current(c, i, j, _tanh(c, v))


def slope_expression(c, i: int, j: int, v: ex.Expr) -> ex.Expr:
    """``d i_dst_i / d v_src_j = w[i, j] (1 - tanh(v / V_s)^2)`` (S) at the source voltage ``v``."""
    return _slope(c, i, j, _dtanh(_tanh(c, v)))


# The expressions from a column's shared t = tanh(v_j / V_s) and 1 - t^2 (each written once).
def _dtanh(t: ex.Expr) -> ex.Expr:
    return 1 - t * t


def _current(c, i: int, j: int, t: ex.Expr) -> ex.Expr:
    return float(c.weight[i, j]) * c.v_sat * t


def _slope(c, i: int, j: int, dt: ex.Expr) -> ex.Expr:
    return float(c.weight[i, j]) * dt


def spice(c, src: list[str], dst: list[str]) -> list[Element]:
    ts = [_tanh(c, ex.v(n)) for n in src]
    return [
        Element("B", f"b{c.name}_{i}_{j}", ("0", dst[i]), ex.to_spice(_current(c, i, j, ts[j])))
        for i, j in np.argwhere(c.mask)
    ]


def spice_adjoint(c, src, dst, adj_src, adj_dst):
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
