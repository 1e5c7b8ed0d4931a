"""Kirchhoff's current law of a network: the assembler of the stamps.

Kirchhoff's current law of a network, its Jacobian and its parameter derivatives: the assembler of
the element stamps (:mod:`circuitep.elements`).

Pure functions of a :class:`~circuitep.spec.Network` and node voltages. With ``x`` the free-node
voltages (V) and ``u`` the input-node voltages (V), ``F_i(x)`` is the sum of currents flowing into
free node ``i`` (A); a DC operating point solves ``F(x) = 0`` (DESIGN.md §1). Shapes: ``u`` is
``(batch, n_in)``, ``x`` is ``(batch, n_free)``, Jacobians are ``(batch, n_free, n_free)`` (S).
Every coupling contributes through its kind's module (:mod:`circuitep.elements.registry`); the
block-tridiagonal Jacobian of :mod:`circuitep.engines.layered` is assembled from the same
:func:`links` and stamps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import ModuleType

import numpy as np

from circuitep.elements import aep, bias, diode_clamp, leak
from circuitep.elements.blocks import dense
from circuitep.elements.registry import kind as kind_of
from circuitep.spec import Coupling, Network


@dataclass(frozen=True)
class Link:
    """A coupling with its kind's module and where its ends sit.

    ``dst`` in ``x``, ``src`` in the flat node vector ``[u, x]`` and, if free, ``src_free`` in
    ``x``; ``dst_pos`` and ``src_pos`` are the positions of its groups among the free groups
    (``src_pos`` None for inputs).
    """

    coupling: Coupling
    kind: ModuleType
    dst: slice
    src: slice
    src_free: slice | None
    dst_pos: int
    src_pos: int | None


def links(net: Network) -> tuple[Link, ...]:
    """One :class:`Link` per coupling, in declaration order.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).

    Returns
    -------
    tuple of Link
        One per coupling.
    """
    flat, free = net.slices(), net.free_slices()
    pos = {g.name: k for k, g in enumerate(net.free_groups)}
    return tuple(
        Link(c, kind_of(c), free[c.dst], flat[c.src], free.get(c.src), pos[c.dst], pos.get(c.src))
        for c in net.couplings
    )


def _flat(u: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.concatenate([u, x], axis=1)


def _node_arrays(net: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per free node: leak (S), bias (A), clamp mask, v_lo, v_hi (V)."""
    groups = net.free_groups
    leak_ = np.concatenate([g.leak for g in groups])
    bias_ = np.concatenate([g.bias for g in groups])
    clamped = np.concatenate([np.full(g.size, g.clamp is not None) for g in groups])
    v_lo = np.concatenate([np.full(g.size, g.clamp[0] if g.clamp else 0.0) for g in groups])
    v_hi = np.concatenate([np.full(g.size, g.clamp[1] if g.clamp else 0.0) for g in groups])
    return leak_, bias_, clamped, v_lo, v_hi


def coupling_currents(
    link: Link, vd: np.ndarray, vs: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Total currents (A) a coupling drives into its nodes.

    Total currents (A) a coupling drives into its dst nodes ``(batch, m)`` and its src nodes
    ``(batch, n)`` (``None`` for a kind that drives none), loads included.

    Parameters
    ----------
    link : Link
        One coupling with its node slices (:func:`links`).
    vd : numpy.ndarray
        Destination-node voltages, V, ``(batch, m)``.
    vs : numpy.ndarray
        Source-node voltages, V, ``(batch, n)``.

    Returns
    -------
    tuple
        Currents into dst, A, ``(batch, m)``, and into src, A, ``(batch, n)`` or ``None``.
    """
    c, k = link.coupling, link.kind
    g_dst, g_src = k.loads(c)
    i_dst = k.drive(c, vs)
    if g_dst is not None:
        i_dst = i_dst - vd * g_dst
    i_src = k.back(c, vd)
    if i_src is not None and g_src is not None:
        i_src = i_src - vs * g_src
    return i_dst, i_src


def jacobian_blocks(link: Link, vs: np.ndarray, loads: bool = True):
    """A coupling's contributions to ``dF/dx`` (S).

    The one place a stamp becomes Jacobian blocks for both assemblers (dense here, block-tridiagonal
    in :mod:`circuitep.engines.layered`).

    Yields ``(a, b, block)`` with ``a``, ``b`` in ``{"dst", "src"}`` and ``block`` a constant ``(p,
    q)`` or batched ``(batch, p, q)`` array to add to rows ``a``, columns ``b``; blocks on src rows
    or columns only if src is free. ``loads=False`` leaves out the kind's constant loads (the
    layered engine sums them into its static diagonal). ``vs`` are the src voltages (V).

    Parameters
    ----------
    link : Link
        One coupling with its node slices (:func:`links`).
    vs : numpy.ndarray
        Source-node voltages, V, ``(batch, n)``.
    loads : bool
        Whether to include the kind's constant loads to ground.

    Returns
    -------
    iterator of tuple
        ``(a, b, block)`` as described.
    """
    c, k = link.coupling, link.kind
    g_dst, g_src = k.loads(c) if loads else (None, None)
    if g_dst is not None:
        yield "dst", "dst", -np.diag(g_dst)
    if link.src_free is not None:
        ds, sd = k.jacobian(c, vs)
        yield "dst", "src", dense(ds)
        if sd is not None:
            yield "src", "dst", dense(sd)
        if g_src is not None:
            yield "src", "src", -np.diag(g_src)


def residual(net: Network, u: np.ndarray, x: np.ndarray, *, jacobian: bool = True):
    """KCL residual ``F(x)`` (A) and, if asked, its Jacobian ``dF/dx`` (S).

    Returns ``F`` of shape ``(batch, n_free)`` and ``J`` of shape ``(batch, n_free, n_free)`` or
    ``None``.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.
    jacobian : bool
        Whether to build the Jacobian ``dF/dx`` too.

    Returns
    -------
    tuple
        ``F``, A, ``(batch, n_free)``, and ``J``, S, ``(batch, n_free, n_free)`` or ``None``.
    """
    v = _flat(u, x)
    batch, n = x.shape
    n_in = u.shape[1]
    f = np.zeros((batch, n))
    jac = np.zeros((batch, n, n)) if jacobian else None
    for link in links(net):
        dst, src = link.dst, link.src_free
        vs, vd = v[:, link.src], v[:, dst.start + n_in : dst.stop + n_in]
        i_dst, i_src = coupling_currents(link, vd, vs)
        f[:, dst] += i_dst
        if src is not None and i_src is not None:
            f[:, src] += i_src
        if jacobian:
            ends = {"dst": dst, "src": src}
            for a, b, block in jacobian_blocks(link, vs):
                jac[:, ends[a], ends[b]] += block
    leak_, bias_, clamped, v_lo, v_hi = _node_arrays(net)
    f += bias_ - leak_ * x
    diag = np.broadcast_to(-leak_, x.shape).copy()
    if clamped.any():
        i_d, g_d = diode_clamp.current(
            x[:, clamped], v_lo[clamped], v_hi[clamped], diode_clamp.net_law(net)
        )
        f[:, clamped] += i_d
        diag[:, clamped] += g_d
    if jacobian:
        idx = np.arange(n)
        jac[:, idx, idx] += diag
    return f, jac


def current_scale(net: Network, u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The size of the currents :func:`residual` sums at each node.

    The size of the currents :func:`residual` sums at each free node (A), ``(batch, n_free)``: the
    sum of their magnitudes, against which a residual is judged (terms of size ``s`` cancel to
    ``~1e-16 s`` in double precision, and a solver's relative tolerance applies to them). Each
    coupling's terms come from its kind's stamp with ``|w|`` and ``|v|``.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.

    Returns
    -------
    numpy.ndarray
        The scale, A, ``(batch, n_free)``.
    """
    v = np.abs(_flat(u, x))
    n_in = u.shape[1]
    s = np.zeros(x.shape)
    for link in links(net):
        c, k = link.coupling, link.kind
        c = replace(c, weight=np.abs(c.weight))
        vs, vd = v[:, link.src], v[:, link.dst.start + n_in : link.dst.stop + n_in]
        g_dst, g_src = k.loads(c)
        s[:, link.dst] += np.abs(k.drive(c, vs)) + (0.0 if g_dst is None else vd * g_dst)
        back = k.back(c, vd) if link.src_free is not None else None
        if back is not None:
            s[:, link.src_free] += np.abs(back) + (0.0 if g_src is None else vs * g_src)
    leak_, bias_, clamped, v_lo, v_hi = _node_arrays(net)
    s += np.abs(bias_) + leak_ * np.abs(x)
    if clamped.any():
        i_d, _ = diode_clamp.current(
            x[:, clamped], v_lo[clamped], v_hi[clamped], diode_clamp.net_law(net)
        )
        s[:, clamped] += np.abs(i_d)
    return s


def check_correction(net: Network, correction: aep.Correction | None) -> None:
    """Refuse a correction that does not fit the circuit ``net`` it corrects.

    Its source must have ``net``'s structure (the same groups and couplings: names, kinds, shapes
    and masks; the model and the circuit differ in values only) and its factors must name
    non-reciprocal couplings between free groups with their weights' shapes.

    Parameters
    ----------
    net : Network
        The simulated circuit.
    correction : Correction or None
        The correction (:class:`circuitep.elements.aep.Correction`); ``None`` passes.
    """
    if correction is None:
        return
    if not isinstance(correction, aep.Correction):
        raise TypeError(
            f"correction must be a circuitep.elements.aep.Correction, got "
            f"{type(correction).__name__}"
        )
    src = correction.source
    if src is not None:
        if not isinstance(src, Network):
            raise TypeError(f"correction.source must be a Network, got {type(src).__name__}")
        same = [(g.name, g.role, g.size) for g in src.groups] == [
            (g.name, g.role, g.size) for g in net.groups
        ] and len(src.couplings) == len(net.couplings)
        same = same and all(
            (a.name, a.kind, a.src, a.dst) == (b.name, b.kind, b.src, b.dst)
            and a.weight.shape == b.weight.shape
            and (a.mask == b.mask).all()
            for a, b in zip(src.couplings, net.couplings, strict=True)
        )
        if not same:
            raise ValueError(
                f"the correction's source network {src.name!r} does not have the structure of the "
                f"circuit {net.name!r} it corrects (groups, couplings, shapes and masks must match)"
            )
    free = {g.name for g in net.free_groups}
    by_name = {c.name: c for c in net.couplings}
    for half in ("forward", "back"):
        for name, f in getattr(correction, half).items():
            c = by_name.get(name)
            if c is None or kind_of(c).RECIPROCAL or c.src not in free:
                raise ValueError(
                    f"correction.{half} names {name!r}, not a non-reciprocal coupling between "
                    f"free groups of {net.name!r} (only those have AEP correction elements)"
                )
            if f.shape != c.weight.shape:
                raise ValueError(
                    f"correction.{half}[{name!r}] has shape {f.shape}, expected {c.weight.shape}"
                )


def correction_terms(
    net: Network, u: np.ndarray, x0: np.ndarray, correction: aep.Correction | None = None
) -> list[aep.Term]:
    """The AEP correction's blocks at the free state ``x0``.

    The AEP correction's blocks at the free state ``x0`` (V, (batch, n_free)), from
    :func:`circuitep.elements.aep.terms`: of ``net`` itself, or of ``correction``'s source (the
    model) with its elements' gain factors (:func:`circuitep.elements.aep.scaled`).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x0 : numpy.ndarray
        The free state, V, ``(batch, n_free)``.
    correction : Correction or None
        Where ``K`` comes from and its elements' errors; ``None``: ``net``'s own, exact.

    Returns
    -------
    list of Term
        One per non-reciprocal coupling from a free group.
    """
    source = net if correction is None or correction.source is None else correction.source
    return aep.scaled(aep.terms(links(source), x0), correction)


def nonreciprocal_jacobian(net: Network, u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The transconductor part ``A`` of ``dF/dx`` (S), ``(batch, n_free, n_free)``.

    Resistors, leaks and diodes give a symmetric Jacobian; only transconductors between free nodes
    make ``J != J^T``, and ``J - J^T = A - A^T`` (the AEP correction, DESIGN.md §1).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.

    Returns
    -------
    numpy.ndarray
        ``A``, S, ``(batch, n_free, n_free)``.
    """
    return aep.nonreciprocal(correction_terms(net, u, x), x.shape[0], x.shape[1])


def correction_matrix(
    net: Network, u: np.ndarray, x0: np.ndarray, correction: aep.Correction | None = None
) -> np.ndarray:
    """``K = J - J^T`` at the free state ``x0`` (S): AEP injects ``-K (x - x0)`` while nudged.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x0 : numpy.ndarray
        The free state, V, ``(batch, n_free)``.
    correction : Correction or None
        Where ``K`` comes from and its elements' errors; ``None``: ``net``'s own, exact.

    Returns
    -------
    numpy.ndarray
        ``K``, S, ``(batch, n_free, n_free)``.
    """
    return aep.matrix(correction_terms(net, u, x0, correction), x0.shape[0], x0.shape[1])


def correction_current(
    net: Network,
    u: np.ndarray,
    x0: np.ndarray,
    x: np.ndarray,
    correction: aep.Correction | None = None,
) -> np.ndarray:
    """``K (x - x0)`` (A), without forming ``K``.

    ``K (x - x0)`` (A), ``(batch, n_free)``, ``K`` the :func:`correction_matrix` at ``x0``, without
    forming ``K`` (``(batch, n_free, n_free)``: 208 MB for 100 samples of 784-500-10).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x0 : numpy.ndarray
        The free state, V, ``(batch, n_free)``.
    x : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.
    correction : Correction or None
        Where ``K`` comes from and its elements' errors; ``None``: ``net``'s own, exact.

    Returns
    -------
    numpy.ndarray
        ``K (x - x0)``, A, ``(batch, n_free)``.
    """
    f = np.zeros_like(x)
    aep.apply(f, correction_terms(net, u, x0, correction), x, x0)  # f = -K (x - x0)
    return -f


def is_reciprocal(net: Network) -> bool:
    """True when no transconductor couples two free nodes (then ``J = J^T`` everywhere).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).

    Returns
    -------
    bool
        Whether ``J = J^T`` for every state.
    """
    free = {g.name for g in net.free_groups}
    return not any(
        not kind_of(c).RECIPROCAL and c.src in free and c.weight.any() for c in net.couplings
    )


def param_gradients(
    net: Network, u: np.ndarray, x: np.ndarray, s: np.ndarray
) -> dict[str, np.ndarray]:
    """Local learning rules: ``dC/dtheta = -(dF/dtheta)^T s``, averaged over the batch.

    ``s`` (batch, n_free) is the adjoint ``lambda`` or an estimate of it (``s`` of inputs is 0). Per
    element (DESIGN.md §1 table, each kind's ``weight_grad``): resistor ``(s_i - s_j)(v_i - v_j)``;
    transconductor ``-s_i f(v_j)``; bias ``-s_i``; leak ``s_i v_i``. Returns one array per entry of
    :meth:`Network.params`, with its shape; masked-out elements get 0.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.
    s : numpy.ndarray
        Adjoint ``lambda`` or an estimate of it (DESIGN.md §1), ``(batch, n_free)``.

    Returns
    -------
    dict of str to numpy.ndarray
        Gradients by parameter name, shaped as :meth:`Network.params`.
    """
    v = _flat(u, x)
    sv = _flat(np.zeros_like(u), s)
    batch = x.shape[0]
    n_in = u.shape[1]
    out = {}
    for link in links(net):
        c = link.coupling
        dst = slice(link.dst.start + n_in, link.dst.stop + n_in)
        vd, sd, vs, ss = v[:, dst], sv[:, dst], v[:, link.src], sv[:, link.src]
        g = link.kind.weight_grad(c, vd, vs, sd, ss)
        out[c.name] = np.where(c.mask, g / batch, 0.0)
    fs = net.free_slices()
    for grp in net.free_groups:
        sl = fs[grp.name]
        out[f"{grp.name}.bias"] = bias.grad(x[:, sl], s[:, sl])
        out[f"{grp.name}.leak"] = leak.grad(x[:, sl], s[:, sl])
    return out


def input_drive(net: Network, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Norton equivalent of everything the inputs drive into the free nodes.

    Returns the current ``sum_j (g_ij u_j + w_ij f(u_j))`` into each free node (A, ``(batch,
    n_free)``) and the conductance ``sum_j g_ij`` to ground (S, ``(n_free,)``). The folded netlist
    replaces input-driven elements by these; the free-node voltages are unchanged.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).

    Returns
    -------
    tuple of numpy.ndarray
        Current, A, ``(batch, n_free)``, and conductance, S, ``(n_free,)``.
    """
    current = np.zeros((u.shape[0], net.n_free))
    conductance = np.zeros(net.n_free)
    for link in links(net):
        if link.src_free is not None:
            continue
        c = link.coupling
        current[:, link.dst] += link.kind.drive(c, u[:, link.src])
        g_dst, _ = link.kind.loads(c)
        if g_dst is not None:
            conductance[link.dst] += g_dst
    return current, conductance


def input_driven(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Which free nodes the inputs drive, and which they load.

    Which free nodes receive an input-driven current, and which a conductance from it (a resistor to
    an input, or a coupling's load).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).

    Returns
    -------
    tuple of numpy.ndarray
        Two boolean masks ``(n_free,)``: current-driven nodes and conductance-loaded nodes.
    """
    current = np.zeros(net.n_free, bool)
    resistive = np.zeros(net.n_free, bool)
    for link in links(net):
        if link.src_free is None:
            c = link.coupling
            current[link.dst] |= c.mask.any(axis=1)
            if link.kind.loads(c)[0] is not None:
                resistive[link.dst] |= c.mask.any(axis=1)
    return current, resistive
