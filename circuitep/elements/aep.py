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

The circuit and the model (DESIGN.md §7): a :class:`Correction` says where ``K`` comes from (the
simulated circuit itself, exact, or the model the controller holds) and how the elements that
realise it err (a gain factor per element of each half, :func:`scaled`). Two forms realise it in a
netlist: ``reversed`` (each linear transconductor switched to drive the other way, plus ``K x0``
currents: hardware that reverses its own devices, so the correction carries their mismatch and is
exact by construction) and ``explicit`` (correction transconductors of their own, driven by each
node's deviation from its free state held on a reference node: hardware with a separate correction
array programmed by the controller, whose gains can be wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from circuitep.elements import expr as ex
from circuitep.elements.blocks import Block, dense, matvec, rmatvec, scale, take, transpose
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
    coupling: str = ""
    back: Block | None = None

    @property
    def a0_back(self) -> Block:
        """The block whose transpose drives the src nodes (``a0`` unless the halves differ)."""
        return self.a0 if self.back is None else self.back


#: The ways a netlist realises the AEP correction (see the module docstring).
FORMS = ("reversed", "explicit")


@dataclass(frozen=True, eq=False)
class Correction:
    """Where an AEP phase's correction comes from and how its elements err (DESIGN.md §7).

    ``source`` is the network whose Jacobian at the free state gives ``K`` (the model the
    controller holds); ``None``: the simulated circuit itself (exact). ``forward`` and ``back``
    map a coupling's name to the gain factors ``(m, n)`` of the correction elements into its dst
    nodes (``-A0 (x_src - x0_src)``) and into its src nodes (``A0^T (x_dst - x0_dst)``); a
    coupling not named has factors 1. ``form`` is how a netlist realises it (:data:`FORMS`): the
    ``reversed`` form is only the circuit's own, error-free correction. Validated against the
    circuit it corrects by :func:`circuitep.kcl.check_correction`.

    Parameters
    ----------
    source : Network or None
        The network ``K`` is computed from; ``None``: the simulated circuit.
    forward : dict of str to numpy.ndarray
        Gain factors of the halves into each coupling's dst nodes, ``(m, n)`` each.
    back : dict of str to numpy.ndarray
        Gain factors of the halves into each coupling's src nodes, ``(m, n)`` each.
    form : {"explicit", "reversed"}
        How a netlist realises the correction.
    """

    source: object | None = None
    forward: Mapping[str, np.ndarray] = field(default_factory=dict)
    back: Mapping[str, np.ndarray] = field(default_factory=dict)
    form: str = "explicit"

    def __post_init__(self):
        if not isinstance(self.form, str) or str.__str__(self.form) not in FORMS:
            raise ValueError(f"correction form {self.form!r} is not one of {FORMS}")
        object.__setattr__(self, "form", str.__str__(self.form))
        for half in ("forward", "back"):
            given = getattr(self, half)
            if not isinstance(given, Mapping):
                raise TypeError(f"correction.{half} must be a dict of coupling name to factors")
            factors = {}
            for name, f in given.items():
                arr = np.array(f, dtype=float)
                if arr.ndim != 2 or not np.isfinite(arr).all():
                    raise ValueError(
                        f"correction.{half}[{name!r}] must be a finite (m, n) matrix of gain "
                        f"factors, got shape {arr.shape}"
                    )
                arr.setflags(write=False)
                factors[str(name)] = arr
            object.__setattr__(self, half, factors)
        if self.form == "reversed" and not self.exact:
            raise ValueError(
                "the reversed form realises the circuit's own correction exactly (each "
                "transconductor driven the other way): a correction from the model or with gain "
                "errors needs form='explicit'"
            )

    @property
    def exact(self) -> bool:
        """Whether this is the circuit's own correction with every gain 1."""
        ones = all((f == 1).all() for h in (self.forward, self.back) for f in h.values())
        return self.source is None and ones

    def scaled_by(self, forward: Mapping, back: Mapping) -> Correction:
        """The correction with its factors multiplied by more (noise redrawn per phase).

        Parameters
        ----------
        forward, back : dict of str to numpy.ndarray
            Further factors ``(m, n)`` per coupling, multiplied into :attr:`forward`/:attr:`back`.

        Returns
        -------
        Correction
            The product (same source and form).
        """

        def times(a, b):
            return {k: a.get(k, 1.0) * b.get(k, 1.0) for k in set(a) | set(b)}

        return Correction(
            self.source, times(self.forward, forward), times(self.back, back), self.form
        )


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
        out.append(
            Term(link.dst, link.src_free, link.dst_pos, link.src_pos, a0, link.coupling.name)
        )
    return out


def scaled(ts: list[Term], correction: Correction | None) -> list[Term]:
    """The terms with the gain factors of ``correction``'s elements.

    Parameters
    ----------
    ts : list of Term
        Correction terms from :func:`terms`.
    correction : Correction or None
        The factors per coupling; ``None``: all 1.

    Returns
    -------
    list of Term
        The terms, each half multiplied elementwise by its factors.
    """
    if correction is None or not (correction.forward or correction.back):
        return ts
    out = []
    for t in ts:
        fwd, back = correction.forward.get(t.coupling), correction.back.get(t.coupling)
        a0 = t.a0 if fwd is None else scale(t.a0, fwd)
        b0 = t.a0_back if back is None else scale(t.a0_back, back)
        out.append(Term(t.dst, t.src, t.dst_pos, t.src_pos, a0, t.coupling, b0))
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
    return [
        Term(
            t.dst,
            t.src,
            t.dst_pos,
            t.src_pos,
            take(t.a0, rows),
            t.coupling,
            None if t.back is None else take(t.back, rows),
        )
        for t in ts
    ]


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
        f[:, t.src] += rmatvec(t.a0_back, z_dst)


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
        add(t.dst_pos, t.src_pos, -dense(t.a0))
        add(t.src_pos, t.dst_pos, transpose(t.a0_back))


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
    if all(t.back is None for t in ts):
        return a - np.swapaxes(a, 1, 2)
    b = nonreciprocal([Term(t.dst, t.src, 0, 0, t.a0_back) for t in ts], batch, n)
    return a - np.swapaxes(b, 1, 2)


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


def spice_explicit(
    links,
    nodes: list[str],
    x0: np.ndarray,
    ref_node: Callable[[str], str],
    correction: Correction | None = None,
) -> tuple[list[Element], list[tuple[str, str, int, str]]]:
    """The AEP correction as elements of its own (the ``explicit`` form).

    Per entry ``(i, j)`` of every non-reciprocal coupling between free groups, one element into the
    dst node ``a``, ``-f A0 (v(b) - x0_b)``, and one into the src node ``b``, ``g A0 (v(a) -
    x0_a)``, with ``A0`` the entry of the correction's source network (``links`` are its links:
    the model's, or the circuit's own) and ``f``, ``g`` the gain factors of ``correction``. Linear
    kinds give ``G`` elements driven by the deviation ``v(b) - v(ref_b)``; non-linear ones
    behavioural sources with their ``slope_expression`` at the reference node. Every free node
    ``k`` gets a reference node ``ref_node(k)`` held at ``x0_k`` by a per-sample source.

    Parameters
    ----------
    links : list of Link
        The correction source's couplings with their node slices (:func:`circuitep.kcl.links`).
    nodes : list of str
        The free nodes' SPICE names, ``n_free`` of them.
    x0 : numpy.ndarray
        The free state, V, ``(n_free,)`` (the reference sources' initial values).
    ref_node : callable
        Name of the reference node holding ``x0`` for a free node.
    correction : Correction or None
        The elements' gain factors; ``None``: all 1.

    Returns
    -------
    tuple
        The elements and the per-sample sources as ``(name, role, index, letter)`` (``ref``).
    """
    forward = {} if correction is None else correction.forward
    back = {} if correction is None else correction.back
    corrected = [link for link in links if link.src_free is not None and not link.kind.RECIPROCAL]
    els, sources = [], []
    if not corrected:
        return els, sources
    for k, node in enumerate(nodes):
        els.append(Element("V", f"v{ref_node(node)}", (ref_node(node), "0"), float(x0[k])))
        sources.append((f"v{ref_node(node)}", "ref", k, "V"))
    for link in corrected:
        c = link.coupling
        f = forward.get(c.name, np.ones(c.weight.shape))
        g = back.get(c.name, np.ones(c.weight.shape))
        if link.kind.LINEAR:
            (t,) = terms([link], np.zeros((1, len(nodes))))
            a0 = dense(t.a0)
            a0 = a0[0] if a0.ndim == 3 else a0
        for i, j in np.argwhere(c.mask):
            a, b = nodes[link.dst.start + i], nodes[link.src_free.start + j]
            tag = f"{c.name}_{i}_{j}"
            if link.kind.LINEAR:
                els.append(
                    Element("G", f"gaep_{tag}_a", ("0", a, b, ref_node(b)), -a0[i, j] * f[i, j])
                )
                els.append(
                    Element("G", f"gaep_{tag}_b", ("0", b, a, ref_node(a)), a0[i, j] * g[i, j])
                )
                continue
            into_a, into_b = correction_expressions(link.kind, c, i, j, a, b, ref_node)
            into_a = into_a if f[i, j] == 1 else float(f[i, j]) * into_a
            into_b = into_b if g[i, j] == 1 else float(g[i, j]) * into_b
            els.append(Element("B", f"baep_{tag}_a", ("0", a), ex.to_spice(into_a)))
            els.append(Element("B", f"baep_{tag}_b", ("0", b), ex.to_spice(into_b)))
    return els, sources
