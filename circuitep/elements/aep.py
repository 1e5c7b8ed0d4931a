"""The AEP correction, computed in one place for every engine and the compiler (DESIGN.md §1).

While nudged, AEP injects ``-K (x - x0)`` with ``K = J - J^T`` at the free state ``x0``. Only
non-reciprocal couplings between free nodes make ``J != J^T``: with ``A`` their part of ``J``,
``K = A - A^T``, and a coupling from group ``src`` into group ``dst`` contributes its block
``A0 = d i_dst / d v_src - (d i_src / d v_dst)^T`` at ``x0`` (:func:`terms`). The numpy engines
apply it (:func:`apply`, :func:`add_jacobian`, :func:`matrix`); the compiler writes it
(:func:`spice`): a linear kind is reversed in the AEP netlist (its own ``spice_reversed``) and
leaves one constant current ``(K x0)_i`` per node; a non-linear one keeps explicit sources
``-A0 (v - x0)`` against reference nodes holding ``x0``, from its ``slope_expression``.

``links`` are :class:`circuitep.kcl.Link` rows (coupling, kind module, slices, chain positions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from circuitep.elements import expr as ex
from circuitep.elements.blocks import Block, dense, matvec, rmatvec, take, transpose
from circuitep.netlist import Element


@dataclass(frozen=True)
class Term:
    """One coupling's block of the AEP correction.

    One coupling's block ``A0`` (S, :mod:`circuitep.elements.blocks`) of the correction, with the
    slices of its dst and src nodes in the free-node vector and their chain positions.
    """

    dst: slice
    src: slice
    dst_pos: int
    src_pos: int
    a0: Block


def terms(links, x0: np.ndarray) -> list[Term]:
    """The correction's blocks at the free state ``x0`` (V, (batch, n_free)).

    Parameters
    ----------
    links : list of Link
        The network's couplings with their node slices (:func:`circuitep.kcl.links`).
    x0 : numpy.ndarray
        Free state, V: ``(batch, n_free)``, or ``(n_free,)`` for :func:`spice`.

    Returns
    -------
    list of Term
        One term per non-reciprocal coupling from a free group.
    """
    out = []
    for link in links:
        if link.src_free is None or link.kind.RECIPROCAL:
            continue
        ds, sd = link.kind.jacobian(link.coupling, x0[:, link.src_free])
        a0 = ds if sd is None else dense(ds) - transpose(sd)
        out.append(Term(link.dst, link.src_free, link.dst_pos, link.src_pos, a0))
    return out


def take_rows(ts: list[Term], rows: np.ndarray) -> list[Term]:
    """The terms for a subset of the samples.

    Parameters
    ----------
    ts : list of Term
        Correction terms from :func:`terms`.
    rows : numpy.ndarray
        Indices of the samples to keep.

    Returns
    -------
    list of Term
        The same terms restricted to ``rows``.
    """
    return [Term(t.dst, t.src, t.dst_pos, t.src_pos, take(t.a0, rows)) for t in ts]


def apply(f: np.ndarray, ts: list[Term], x: np.ndarray, x0: np.ndarray) -> None:
    """``f -= K (x - x0)`` in place (A; x, x0 in V, (batch, n_free)).

    Parameters
    ----------
    f : numpy.ndarray
        KCL residual, A, ``(batch, n_free)``; modified in place.
    ts : list of Term
        Correction terms from :func:`terms`.
    x : numpy.ndarray
        Node voltages, V, ``(batch, n_free)``.
    x0 : numpy.ndarray
        Free state, V: ``(batch, n_free)``, or ``(n_free,)`` for :func:`spice`.
    """
    for t in ts:
        z_dst, z_src = x[:, t.dst] - x0[:, t.dst], x[:, t.src] - x0[:, t.src]
        f[:, t.dst] -= matvec(t.a0, z_src)
        f[:, t.src] += rmatvec(t.a0, z_dst)


def add_jacobian(add: Callable[[int, int, np.ndarray], None], ts: list[Term]) -> None:
    """Add ``-K`` to a block Jacobian.

    ``add(a, b, term)`` adds to block ``(a, b)`` (chain positions).

    Parameters
    ----------
    add : callable
        ``add(a, b, block)`` adds ``block`` (S) to Jacobian block ``(a, b)`` (chain positions).
    ts : list of Term
        Correction terms from :func:`terms`.
    """
    for t in ts:
        a0 = dense(t.a0)
        add(t.dst_pos, t.src_pos, -a0)
        add(t.src_pos, t.dst_pos, a0.T if a0.ndim == 2 else np.swapaxes(a0, 1, 2))


def apply_dense(
    f: np.ndarray, jac: np.ndarray | None, k: np.ndarray, x: np.ndarray, x0: np.ndarray
) -> None:
    """``f -= K (x - x0)`` and ``jac -= K`` in place, ``K`` dense.

    ``f -= K (x - x0)`` and ``jac -= K`` in place, with ``K`` dense (S, (batch, n, n), from
    :func:`matrix`); ``jac`` may be ``None``.

    Parameters
    ----------
    f : numpy.ndarray
        KCL residual, A, ``(batch, n_free)``; modified in place.
    jac : numpy.ndarray or None
        Dense Jacobian, S, ``(batch, n_free, n_free)``; modified in place; ``None`` for none.
    k : numpy.ndarray
        The correction matrix ``K``, S, ``(batch, n_free, n_free)``.
    x : numpy.ndarray
        Node voltages, V, ``(batch, n_free)``.
    x0 : numpy.ndarray
        Free state, V: ``(batch, n_free)``, or ``(n_free,)`` for :func:`spice`.
    """
    f -= np.einsum("bij,bj->bi", k, x - x0)
    if jac is not None:
        jac -= k


def nonreciprocal(ts: list[Term], batch: int, n: int) -> np.ndarray:
    """``A`` as a dense ``(batch, n, n)`` array (S).

    Parameters
    ----------
    ts : list of Term
        Correction terms from :func:`terms`.
    batch : int
        Number of samples.
    n : int
        Number of free nodes.

    Returns
    -------
    numpy.ndarray
        ``A``, S, ``(batch, n, n)``.
    """
    a = np.zeros((batch, n, n))
    for t in ts:
        a[:, t.dst, t.src] += dense(t.a0)
    return a


def matrix(ts: list[Term], batch: int, n: int) -> np.ndarray:
    """``K = A - A^T`` as a dense ``(batch, n, n)`` array (S).

    Parameters
    ----------
    ts : list of Term
        Correction terms from :func:`terms`.
    batch : int
        Number of samples.
    n : int
        Number of free nodes.

    Returns
    -------
    numpy.ndarray
        ``K``, S, ``(batch, n, n)``.
    """
    a = nonreciprocal(ts, batch, n)
    return a - np.swapaxes(a, 1, 2)


def spice(
    links, nodes: list[str], x0: np.ndarray, k_lin: np.ndarray, ref_node: Callable[[str], str]
) -> tuple[list[Element], list[tuple[str, str, int, str]]]:
    """The AEP netlist's correction elements beside the reversed linear couplings.

    ``nodes`` are the free nodes, ``x0`` (n_free,) V the free state, ``k_lin`` (n_free, n_free) S
    the correction of the linear couplings (constant). Returns the elements and the per-sample
    sources as ``(name, role, index, letter)``: ``aep`` currents ``(K x0)_i`` and ``ref`` voltages.

    Parameters
    ----------
    links : list of Link
        The network's couplings with their node slices (:func:`circuitep.kcl.links`).
    nodes : list of str
        The free nodes' SPICE names, ``n_free`` of them.
    x0 : numpy.ndarray
        Free state, V: ``(batch, n_free)``, or ``(n_free,)`` for :func:`spice`.
    k_lin : numpy.ndarray
        Constant correction of the linear couplings, S, ``(n_free, n_free)``.
    ref_node : callable
        Name of the reference node holding ``x0`` for a free node.
    """
    els, sources = [], []
    if k_lin.any():
        current = k_lin @ x0
        for k, node in enumerate(nodes):
            if k_lin[k].any():
                els.append(Element("I", f"iaep_{node}", ("0", node), float(current[k])))
                sources.append((f"iaep_{node}", "aep", k, "I"))
    explicit = [
        link
        for link in links
        if link.src_free is not None and not link.kind.RECIPROCAL and not link.kind.LINEAR
    ]
    if explicit:
        for k, node in enumerate(nodes):
            els.append(Element("V", f"v{ref_node(node)}", (ref_node(node), "0"), float(x0[k])))
            sources.append((f"v{ref_node(node)}", "ref", k, "V"))
    for link in explicit:
        c = link.coupling
        for i, j in np.argwhere(c.mask):
            a, b = nodes[link.dst.start + i], nodes[link.src_free.start + j]
            into_a, into_b = correction_expressions(link.kind, c, i, j, a, b, ref_node)
            els.append(Element("B", f"baep_{c.name}_{i}_{j}_a", ("0", a), ex.to_spice(into_a)))
            els.append(Element("B", f"baep_{c.name}_{i}_{j}_b", ("0", b), ex.to_spice(into_b)))
    return els, sources


def correction_expressions(
    kind, c, i: int, j: int, a: str, b: str, ref_node: Callable[[str], str]
) -> tuple[ex.Expr, ex.Expr]:
    """The AEP correction currents (A) of one entry of a non-linear coupling (DESIGN.md §1).

    ``-A0 (v(b) - x0_b)`` into ``a`` and ``A0 (v(a) - x0_a)`` into ``b``, with ``A0`` the kind's
    ``slope_expression`` at ``x0_b`` and ``x0`` held by the reference nodes ``ref_node(a)``,
    ``ref_node(b)``.

    Parameters
    ----------
    kind : module
        The coupling's kind (:mod:`circuitep.elements.registry`), with ``slope_expression``.
    c : Coupling
        The coupling, weight ``(m, n)``.
    i, j : int
        The entry: destination node ``i`` (``0 <= i < m``), source node ``j`` (``0 <= j < n``).
    a, b : str
        SPICE names of the destination and the source node.
    ref_node : callable
        Maps a node's name to the name of the node that holds its free-state voltage ``x0`` (V).

    Returns
    -------
    tuple of Expr
        The currents into ``a`` and into ``b`` (A).
    """
    ra, rb = ex.v(ref_node(a)), ex.v(ref_node(b))
    slope = kind.slope_expression(c, i, j, rb)
    return -slope * (ex.v(b) - rb), slope * (ex.v(a) - ra)
