"""Kirchhoff's current law of a network, its Jacobian and its parameter derivatives.

Pure functions of a :class:`~circuitep.spec.Network` and node voltages. With ``x`` the free-node
voltages (V) and ``u`` the input-node voltages (V), ``F_i(x)`` is the sum of currents flowing into
free node ``i`` (A); a DC operating point solves ``F(x) = 0`` (DESIGN.md §1). Shapes: ``u`` is
``(batch, n_in)``, ``x`` is ``(batch, n_free)``, Jacobians are ``(batch, n_free, n_free)`` (S).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitep.devices import diode_clamp_current, tanh_transfer
from circuitep.spec import Coupling, Network


@dataclass(frozen=True)
class _Ends:
    """Where a coupling's ends sit: ``dst`` in x, ``src`` in the flat node vector and, if free, in x."""

    dst: slice
    src: slice
    src_free: slice | None


def _ends(net: Network, c: Coupling) -> _Ends:
    flat, free = net.slices(), net.free_slices()
    return _Ends(free[c.dst], flat[c.src], free.get(c.src))


def _flat(u: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.concatenate([u, x], axis=1)


def _transfer(c: Coupling, vs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a transconductor sees of its controlling voltage: ``(f(v), f'(v))``."""
    if c.kind == "tanh":
        return tanh_transfer(vs, c.v_sat)
    return vs, np.ones_like(vs)


def _node_arrays(net: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per free node: leak (S), bias (A), clamp mask, v_lo, v_hi (V)."""
    groups = net.free_groups
    leak = np.concatenate([g.leak for g in groups])
    bias = np.concatenate([g.bias for g in groups])
    clamped = np.concatenate([np.full(g.size, g.clamp is not None) for g in groups])
    v_lo = np.concatenate([np.full(g.size, g.clamp[0] if g.clamp else 0.0) for g in groups])
    v_hi = np.concatenate([np.full(g.size, g.clamp[1] if g.clamp else 0.0) for g in groups])
    return leak, bias, clamped, v_lo, v_hi


def residual(net: Network, u: np.ndarray, x: np.ndarray, *, jacobian: bool = True):
    """KCL residual ``F(x)`` (A) and, if asked, its Jacobian ``dF/dx`` (S).

    Returns ``F`` of shape ``(batch, n_free)`` and ``J`` of shape ``(batch, n_free, n_free)`` or
    ``None``.
    """
    v = _flat(u, x)
    batch, n = x.shape
    f = np.zeros((batch, n))
    jac = np.zeros((batch, n, n)) if jacobian else None
    for c in net.couplings:
        e = _ends(net, c)
        w = c.weight
        vs, vd = v[:, e.src], v[:, e.dst.start + u.shape[1]:e.dst.stop + u.shape[1]]
        if c.kind == "resistor":
            f[:, e.dst] += vs @ w.T - vd * w.sum(axis=1)
            if jacobian:
                jac[:, e.dst, e.dst] -= np.diag(w.sum(axis=1))
            if e.src_free is not None:
                f[:, e.src_free] += vd @ w - vs * w.sum(axis=0)
                if jacobian:
                    jac[:, e.dst, e.src_free] += w
                    jac[:, e.src_free, e.dst] += w.T
                    jac[:, e.src_free, e.src_free] -= np.diag(w.sum(axis=0))
        else:
            fv, dfv = _transfer(c, vs)
            f[:, e.dst] += fv @ w.T
            if jacobian and e.src_free is not None:
                jac[:, e.dst, e.src_free] += w[None, :, :] * dfv[:, None, :]
    leak, bias, clamped, v_lo, v_hi = _node_arrays(net)
    f += bias - leak * x
    diag = np.broadcast_to(-leak, x.shape).copy()
    if clamped.any():
        i_d, g_d = diode_clamp_current(x[:, clamped], v_lo[clamped], v_hi[clamped], net.diode.i_sat, net.diode.n)
        f[:, clamped] += i_d
        diag[:, clamped] += g_d
    if jacobian:
        idx = np.arange(n)
        jac[:, idx, idx] += diag
    return f, jac


def current_scale(net: Network, u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The size of the currents :func:`residual` sums at each free node (A), ``(batch, n_free)``:
    the sum of their magnitudes, against which a residual is judged (terms of size ``s`` cancel
    to ``~1e-16 s`` in double precision, and a solver's relative tolerance applies to them)."""
    v = _flat(u, x)
    s = np.zeros(x.shape)
    for c in net.couplings:
        e = _ends(net, c)
        w = np.abs(c.weight)
        vs, vd = np.abs(v[:, e.src]), np.abs(v[:, e.dst.start + u.shape[1]:e.dst.stop + u.shape[1]])
        if c.kind == "resistor":
            s[:, e.dst] += vs @ w.T + vd * w.sum(axis=1)
            if e.src_free is not None:
                s[:, e.src_free] += vd @ w + vs * w.sum(axis=0)
        else:
            s[:, e.dst] += np.abs(_transfer(c, v[:, e.src])[0]) @ w.T
    leak, bias, clamped, v_lo, v_hi = _node_arrays(net)
    s += np.abs(bias) + leak * np.abs(x)
    if clamped.any():
        i_d, _ = diode_clamp_current(x[:, clamped], v_lo[clamped], v_hi[clamped], net.diode.i_sat,
                                     net.diode.n)
        s[:, clamped] += np.abs(i_d)
    return s


def nonreciprocal_jacobian(net: Network, u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The transconductor part ``A`` of ``dF/dx`` (S), ``(batch, n_free, n_free)``.

    Resistors, leaks and diodes give a symmetric Jacobian; only transconductors between free
    nodes make ``J != J^T``, and ``J - J^T = A - A^T`` (the AEP correction, DESIGN.md §1).
    """
    v = _flat(u, x)
    n = x.shape[1]
    a = np.zeros((x.shape[0], n, n))
    for c in net.couplings:
        e = _ends(net, c)
        if c.kind != "resistor" and e.src_free is not None:
            _, dfv = _transfer(c, v[:, e.src])
            a[:, e.dst, e.src_free] += c.weight[None] * dfv[:, None, :]
    return a


def correction_matrix(net: Network, u: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """``K = J - J^T`` at the free state ``x0`` (S): AEP injects ``-K (x - x0)`` while nudged."""
    a = nonreciprocal_jacobian(net, u, x0)
    return a - np.swapaxes(a, 1, 2)


def correction_current(net: Network, u: np.ndarray, x0: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``K (x - x0)`` (A), ``(batch, n_free)``, ``K`` the :func:`correction_matrix` at ``x0``,
    without forming ``K`` (``(batch, n_free, n_free)``: 208 MB for 100 samples of 784-500-10)."""
    v0 = _flat(u, x0)
    z = x - x0
    out = np.zeros_like(x)
    for c in net.couplings:
        e = _ends(net, c)
        if c.kind != "resistor" and e.src_free is not None:
            _, slope = _transfer(c, v0[:, e.src])
            out[:, e.dst] += (z[:, e.src_free] * slope) @ c.weight.T  # A z
            out[:, e.src_free] -= (z[:, e.dst] @ c.weight) * slope  # -A^T z
    return out


def is_reciprocal(net: Network) -> bool:
    """True when no transconductor couples two free nodes (then ``J = J^T`` everywhere)."""
    free = {g.name for g in net.free_groups}
    return not any(c.kind != "resistor" and c.src in free and c.weight.any() for c in net.couplings)


def param_gradients(net: Network, u: np.ndarray, x: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
    """Local learning rules: ``dC/dtheta = -(dF/dtheta)^T s``, averaged over the batch.

    ``s`` (batch, n_free) is the adjoint ``lambda`` or an estimate of it (``s`` of inputs is 0).
    Per element (DESIGN.md §1 table): resistor ``(s_i - s_j)(v_i - v_j)``; transconductor
    ``-s_i f(v_j)``; bias ``-s_i``; leak ``s_i v_i``. Returns one array per entry of
    :meth:`Network.params`, with its shape; masked-out elements get 0.
    """
    v = _flat(u, x)
    sv = _flat(np.zeros_like(u), s)
    batch = x.shape[0]
    n_in = u.shape[1]
    out = {}
    for c in net.couplings:
        e = _ends(net, c)
        dst = slice(e.dst.start + n_in, e.dst.stop + n_in)
        vd, sd, vs, ss = v[:, dst], sv[:, dst], v[:, e.src], sv[:, e.src]
        if c.kind == "resistor":
            g = ((sd * vd).sum(0)[:, None] + (ss * vs).sum(0)[None, :] - sd.T @ vs - vd.T @ ss)
        else:
            fv, _ = _transfer(c, vs)
            g = -(sd.T @ fv)
        out[c.name] = np.where(c.mask, g / batch, 0.0)
    fs = net.free_slices()
    for grp in net.free_groups:
        sl = fs[grp.name]
        out[f"{grp.name}.bias"] = -s[:, sl].mean(0)
        out[f"{grp.name}.leak"] = (s[:, sl] * x[:, sl]).mean(0)
    return out


def input_drive(net: Network, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Norton equivalent of everything the inputs drive into the free nodes.

    Returns the current ``sum_j (g_ij u_j + w_ij f(u_j))`` into each free node (A,
    ``(batch, n_free)``) and the conductance ``sum_j g_ij`` to ground (S, ``(n_free,)``). The folded
    netlist replaces input-driven elements by these; the free-node voltages are unchanged.
    """
    free = {g.name for g in net.free_groups}
    current = np.zeros((u.shape[0], net.n_free))
    conductance = np.zeros(net.n_free)
    for c in net.couplings:
        if c.src in free:
            continue
        e = _ends(net, c)
        us = u[:, e.src]
        if c.kind == "resistor":
            current[:, e.dst] += us @ c.weight.T
            conductance[e.dst] += c.weight.sum(axis=1)
        else:
            current[:, e.dst] += _transfer(c, us)[0] @ c.weight.T
    return current, conductance


def input_driven(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Which free nodes receive an input-driven current, and which a resistor to an input."""
    free = {g.name for g in net.free_groups}
    fs = net.free_slices()
    current = np.zeros(net.n_free, bool)
    resistive = np.zeros(net.n_free, bool)
    for c in net.couplings:
        if c.src not in free:
            current[fs[c.dst]] |= c.mask.any(axis=1)
            if c.kind == "resistor":
                resistive[fs[c.dst]] |= c.mask.any(axis=1)
    return current, resistive
