"""Structured engine: the numpy reference Newton, exploiting the layer structure of a network.

Same equations, device models, phases and solver (:mod:`circuitep.engines.newton`) as
:class:`~circuitep.engines.numpy_engine.NumpyEngine` (DESIGN.md §3), but the Jacobian ``dF/dx``
is never formed as a dense ``(batch, n_free, n_free)`` array. The free groups, in declaration
order, must form a chain: every coupling between two free groups joins consecutive ones (couplings
from input groups are constant drives and may go anywhere). The Jacobian is then block tridiagonal,

    J = [[D_1, U_2,          ],
         [L_2, D_2, U_3,     ],
         [     L_3, D_3, ... ]]        D_k = J[k, k], L_k = J[k, k-1], U_k = J[k-1, k]   (S),

and each Newton step ``J dx = -F`` is solved by block elimination (the Thomas algorithm) with the
Schur complements ``S_1 = D_1``, ``S_k = D_k - L_k S_{k-1}^-1 U_k``. A group's diagonal block
``D_k`` is diagonal (leak, diode and resistor conductances) unless a coupling joins the group to
itself or a non-diagonal cost Hessian lands on it; a Schur complement is diagonal when ``U_k`` or
``L_k`` is zero. For a 784-500-10 network with diode clamps the only dense solve is the 10 x 10
output Schur complement of each sample; with forward transconductors only and squared error, none
at all (the free phase is then a forward pass with a per-node Newton for the clamps, and the AEP
correction of a linear transconductor only adds the transposed block ``U = W^T``).

Phase terms are block structured too: the nudge's cost Hessian adds ``-beta H`` to the output
block(s), and the AEP correction ``-K = -(A - A^T)``, ``A`` the transconductor part of ``J`` at the
free state ``x0``, subtracts ``A``'s block ``(dst, src)`` of every transconductor between free
groups and adds its transpose to block ``(src, dst)`` (DESIGN.md §1-2). For a saturating
transconductor ``A``'s block is ``W * f'(v_src(x0))[b, None, :]`` for sample ``b``.

Where Newton does not converge (strong feedback: trained non-reciprocal loops make some samples
fold), the shared solver continues by pseudo-transient continuation, with the same block
elimination for each step. Whether a Newton solution is stable is checked only with
``check_stability`` (off by default: it needs the dense Jacobian's eigenvalues), so by default on a
multistable circuit it may settle in another state than a transient from rest would (check with
``circuitep simulate --settle`` or ``check_stability=True``).

Holds no state between calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from circuitep import kcl
from circuitep.costs import SquaredError
from circuitep.devices import DiodeLaw
from circuitep.elements import aep, diode_clamp, nudge
from circuitep.engines.base import OperatingPoint, Phase, check_batch, is_stable
from circuitep.engines.newton import adjoint, check_options, newton, not_converged, solve_rows
from circuitep.spec import Network

# --------------------------------------------------------------------------------------- structure


@dataclass(frozen=True, eq=False)
class _Chain:
    """The static structure of a network's free groups, in declaration order.

    ``conductance`` (S, ``(n_free,)``) is what every node sees to ground and to its resistor
    neighbours: leak, the loads of couplings from inputs (:func:`circuitep.kcl.input_drive`), and
    the loads of couplings between free nodes (a resistor's row and column sums). ``links`` are the
    couplings between free groups (:class:`circuitep.kcl.Link`; a coupling of a group to itself
    makes that group's diagonal block dense); ``outputs`` gives each output group's chain position
    and its slice in the output vector.
    """

    slices: tuple[slice, ...]
    conductance: np.ndarray
    bias: np.ndarray
    clamped: np.ndarray
    v_lo: np.ndarray
    v_hi: np.ndarray
    law: DiodeLaw
    links: tuple[kcl.Link, ...]
    outputs: tuple[tuple[int, slice], ...]


def _not_a_chain(net: Network, what: str) -> ValueError:
    order = ", ".join(g.name for g in net.free_groups)
    return ValueError(
        f"layered engine: network {net.name!r}: {what}, which are not consecutive in the "
        "free-group "
        f"order ({order}). The layered engine needs the free groups, in declaration order, to form "
        "a "
        "chain (couplings only within a group or between consecutive groups); declare the groups "
        "in "
        f"chain order or use NumpyEngine (engine 'numpy') for general graphs"
    )


def chain_structure(net: Network, phase: Phase | None = None) -> _Chain:
    """Analyse ``net`` for the layered engine; raise ``ValueError`` if it is not a chain.

    With a nudged ``phase`` whose cost Hessian is not diagonal (cross-entropy), several output
    groups are coupled to each other by the Hessian and must be consecutive too.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    phase : Phase
        The phase (its nudge adds to the output block); ``None``: the free phase.

    Returns
    -------
    _Chain
        The constant part of the block system.
    """
    groups = net.free_groups
    fs = net.free_slices()
    pos = {g.name: k for k, g in enumerate(groups)}
    slices = tuple(fs[g.name] for g in groups)
    leak = np.concatenate([g.leak for g in groups])
    _, g_in = kcl.input_drive(net, np.zeros((1, sum(g.size for g in net.input_groups))))
    conductance = leak + g_in
    links = []
    for link in kcl.links(net):
        if link.src_pos is None:
            continue  # input-driven: a constant drive, folded into kcl.input_drive
        c, a, b = link.coupling, link.dst_pos, link.src_pos
        if abs(a - b) > 1:
            raise _not_a_chain(
                net, f"coupling {c.name!r} ({c.kind}) joins groups {c.src!r} and {c.dst!r}"
            )
        g_dst, g_src = link.kind.loads(c)
        if g_dst is not None:
            conductance[slices[a]] += g_dst
        if g_src is not None:
            conductance[slices[b]] += g_src
        links.append(link)
    out_pos, k = [], 0
    for g in net.output_groups:
        out_pos.append((pos[g.name], slice(k, k + g.size)))
        k += g.size
    if phase is not None and phase.nudged and not isinstance(phase.cost, SquaredError):
        for p, _ in out_pos:
            for q, _ in out_pos:
                if abs(p - q) > 1:
                    raise _not_a_chain(
                        net,
                        f"the {phase.cost.name} cost's Hessian couples output groups "
                        f"{groups[p].name!r} and {groups[q].name!r}",
                    )
    clamped = np.concatenate([np.full(g.size, g.clamp is not None) for g in groups])
    v_lo = np.concatenate([np.full(g.size, g.clamp[0] if g.clamp else 0.0) for g in groups])
    v_hi = np.concatenate([np.full(g.size, g.clamp[1] if g.clamp else 0.0) for g in groups])
    bias = np.concatenate([g.bias for g in groups])
    return _Chain(
        slices,
        conductance,
        bias,
        clamped,
        v_lo,
        v_hi,
        diode_clamp.net_law(net),
        tuple(links),
        tuple(out_pos),
    )


def _matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``m v`` per sample: ``m`` a constant ``(p, q)`` or batched ``(batch, p, q)`` block.

    ``v`` is ``(batch, q)``; the result ``(batch, p)``.
    """
    if m.ndim == 2:
        return v @ m.T
    return np.einsum("bij,bj->bi", m, v)


def _swap(m: np.ndarray) -> np.ndarray:
    return m.T if m.ndim == 2 else np.swapaxes(m, 1, 2)


# ------------------------------------------------------------------------------ block tridiagonal


class _Blocks:
    """A batched block-tridiagonal Jacobian over the chain's groups (S).

    ``diag[k]`` is either the diagonal ``(batch, n_k)`` of a diagonal block or a dense
    ``(batch, n_k, n_k)`` block; ``off[(a, b)]`` with ``|a - b| = 1`` is block ``J[a, b]``, constant
    ``(n_a, n_b)`` or batched ``(batch, n_a, n_b)``. Built by one call of the system function and
    never kept beyond a solve; the :class:`~circuitep.engines.newton.Jacobian` the shared solver
    asks of an engine.
    """

    def __init__(self, slices: tuple[slice, ...], diag: list[np.ndarray], off: dict | None = None):
        self.slices = slices
        self.diag = diag
        self.off = {} if off is None else off

    # --- assembly ---

    def _dense(self, k: int) -> np.ndarray:
        d = self.diag[k]
        if d.ndim == 3:
            return d
        out = np.zeros(d.shape + (d.shape[1],))
        idx = np.arange(d.shape[1])
        out[:, idx, idx] = d
        return out

    def add(self, a: int, b: int, term: np.ndarray) -> None:
        """Add a constant or batched matrix to block ``J[a, b]``."""
        if a == b:
            self.diag[a] = self._dense(a) + term
        elif (a, b) in self.off:
            self.off[a, b] = self.off[a, b] + term
        else:
            self.off[a, b] = term

    def add_diagonal(self, a: int, values: np.ndarray) -> None:
        """Add ``values`` (broadcast to ``(batch, n_a)``) to the diagonal of block ``J[a, a]``."""
        d = self.diag[a]
        if d.ndim == 2:
            self.diag[a] = d + values
        else:
            idx = np.arange(d.shape[1])
            d = d.copy()
            d[:, idx, idx] += values
            self.diag[a] = d

    # --- views ---

    def take(self, sel: np.ndarray) -> _Blocks:
        """The same Jacobian for a subset of the samples (index or mask over the batch)."""
        return _Blocks(
            self.slices,
            [d[sel] for d in self.diag],
            {k: (m if m.ndim == 2 else m[sel]) for k, m in self.off.items()},
        )

    def update(self, sel: np.ndarray, other: _Blocks) -> _Blocks:
        """A copy whose samples ``sel`` (indices into the batch) are taken from ``other``.

        Both come from the same system function, so their constant blocks are the same matrices.
        """
        diag = []
        for d, o in zip(self.diag, other.diag, strict=True):
            d = d.copy()
            d[sel] = o
            diag.append(d)
        off = {}
        for key, m in self.off.items():
            o = other.off[key]
            if m.ndim == 2 and o.ndim == 2:
                off[key] = m  # a constant block
            else:
                full = np.array(np.broadcast_to(m, (self.diag[0].shape[0],) + m.shape[-2:]))
                full[sel] = o
                off[key] = full
        return _Blocks(self.slices, diag, off)

    def transpose(self) -> _Blocks:
        """``J^T``: dense diagonal blocks and off-diagonal blocks transposed and swapped."""
        return _Blocks(
            self.slices,
            [d if d.ndim == 2 else np.swapaxes(d, 1, 2) for d in self.diag],
            {(b, a): _swap(m) for (a, b), m in self.off.items()},
        )

    def diagonal(self) -> np.ndarray:
        """The diagonal of ``J``, ``(batch, n_free)``."""
        return np.concatenate(
            [d if d.ndim == 2 else np.diagonal(d, axis1=1, axis2=2) for d in self.diag], axis=1
        )

    def dense(self) -> np.ndarray:
        """The full ``(batch, n_free, n_free)`` Jacobian (for stability checks and tests)."""
        batch = self.diag[0].shape[0]
        n = self.slices[-1].stop
        jac = np.zeros((batch, n, n))
        for k, s in enumerate(self.slices):
            jac[:, s, s] = self._dense(k)
        for (a, b), m in self.off.items():
            jac[:, self.slices[a], self.slices[b]] += m
        return jac

    # --- solve ---

    def solve_shifted(self, shift: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``(diag(shift) - J)^-1 rhs`` per sample (a pseudo-transient step, ``shift = C/dt``)."""
        shifted = _Blocks(self.slices, list(self.diag), dict(self.off))
        for k, s in enumerate(self.slices):
            shifted.add_diagonal(k, -shift[:, s])
        return -shifted.solve(rhs)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``J^-1 rhs`` per sample, ``rhs`` of shape ``(batch, n_free)``, by block elimination.

        Forward sweep: ``S_1 = D_1``, ``r_1 = rhs_1``; ``S_k = D_k - L_k X_k`` and
        ``r_k = rhs_k - L_k z_{k-1}`` with ``z_k = S_k^-1 r_k`` and ``X_{k+1} = S_k^-1 U_{k+1}``
        (not formed where ``S_k`` is diagonal and ``L_{k+1}`` absent, as in a feedforward
        chain's AEP phase: the back sweep divides ``U_{k+1} x_{k+1}`` by ``S_k``). Back sweep:
        ``x_m = z_m``, ``x_k = z_k - X_{k+1} x_{k+1}``. Diagonal ``S_k`` are inverted elementwise;
        dense ones by one batched LU solve per block.
        """
        m = len(self.diag)

        def lower_of(k):  # J[k, k-1], None where absent or a constant zero
            lower = self.off.get((k, k - 1))
            if lower is not None and lower.ndim == 2 and not lower.any():
                return None  # e.g. W - W of a linear transconductor under the AEP correction
            return lower

        z: list[np.ndarray] = [None] * m
        x_blocks: list[np.ndarray | None] = [None] * (m + 1)  # X_k = S_{k-1}^-1 U_k
        # where S_{k-1} is diagonal and block k has no lower coupling, X_k is never needed whole:
        # the back sweep applies U_k, then S_{k-1}^-1 (matrix-vector work, not (batch, n, n))
        lazy: list[tuple[np.ndarray, np.ndarray] | None] = [None] * (m + 1)
        for k in range(m):
            r = rhs[:, self.slices[k]]
            s = self.diag[k]
            lower = lower_of(k)
            if lower is not None:
                r = r - _matvec(lower, z[k - 1])
                if x_blocks[k] is not None:
                    s = self._dense(k) - np.matmul(lower, x_blocks[k])
            upper = self.off.get((k, k + 1))
            if s.ndim == 2:
                z[k] = r / s
                if upper is not None:
                    if k + 1 < m and lower_of(k + 1) is None:
                        lazy[k + 1] = (upper, s)
                    else:
                        x_blocks[k + 1] = upper / s[:, :, None]
            elif upper is None:
                z[k] = solve_rows(s, r)
            else:
                both = np.concatenate(
                    [r[..., None], np.broadcast_to(upper, s.shape[:1] + upper.shape[-2:])], axis=2
                )
                sol = solve_rows(s, both)
                z[k], x_blocks[k + 1] = sol[:, :, 0], sol[:, :, 1:]
        x = np.empty_like(rhs)
        x[:, self.slices[-1]] = z[-1]
        for k in range(m - 2, -1, -1):
            xk = z[k]
            after = x[:, self.slices[k + 1]]
            if lazy[k + 1] is not None:
                upper, s = lazy[k + 1]
                xk = xk - _matvec(upper, after) / s
            elif x_blocks[k + 1] is not None:
                xk = xk - np.einsum("bij,bj->bi", x_blocks[k + 1], after)
            x[:, self.slices[k]] = xk
        return x


# ----------------------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class LayeredEngine:
    """Batched damped Newton on the block-tridiagonal Jacobian of a layered network.

    The solver of :class:`~circuitep.engines.numpy_engine.NumpyEngine`
    (:func:`circuitep.engines.newton.newton`: ``x <- x - t J^-1 F`` with backtracking on ``|F|^2``;
    converged when every step is below ``vtol`` (V) or ``|F|`` below ``itol`` (A)), with the Newton
    step solved by block elimination (module docstring), so
    its cost grows like ``batch x (number of weights)`` instead of ``batch x n_free^3``. Raises
    ``ValueError`` for networks whose free groups are not a chain.

    ``check_stability`` forms the dense Jacobian at the solution and computes the eigenvalues of
    ``C^-1 J`` (costly at MNIST scale: off by default, and ``OperatingPoint.stable`` is then
    ``None``).

    Holds state, a memo only: the last network's chain (:func:`chain_structure`) and the last
    batch's input drive, which the phases of one training batch (free, nudged at +-beta) share
    (at 784-500-10 the drive was recomputed 3 times per AEP batch, ~10 % of an epoch). Every
    answer is what solving from scratch gives.
    """

    vtol: float = 1e-12
    itol: float = 1e-15
    max_iter: int = 200
    check_stability: bool = False
    name: str = "layered"
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        check_options(self)

    @property
    def tolerance_dict(self) -> dict:
        """What :attr:`OperatingPoint.tolerances` reports.

        ``vtol`` (V), ``itol`` (A), ``max_iter``.
        """
        return {"vtol": self.vtol, "itol": self.itol, "max_iter": self.max_iter}

    def solve(
        self, net: Network, phase: Phase, inputs, targets=None, x0=None, x_init=None
    ) -> OperatingPoint:
        """Solve one phase; arrays as in :class:`circuitep.engines.base.Engine`.

        ``inputs`` (batch, n_inputs) V; ``targets`` (batch, n_outputs) V; ``x0`` and ``x_init``
        (batch, n_free) V. Returns free-node voltages ``x`` (batch, n_free) and, for a dyadic phase,
        ``adjoint = beta J(x)^-T dC/dx`` (batch, n_free).

        Parameters
        ----------
        net : Network
            The validated network (:class:`circuitep.spec.Network`).
        phase : Phase
            The phase to solve (:class:`circuitep.engines.base.Phase`).
        inputs : numpy.ndarray
            Primary input voltages, V, ``(batch, n_inputs)``.
        targets : numpy.ndarray
            Targets, ``(batch, n_outputs)`` (V for squared error); ``None`` for the free phase.
        x0 : numpy.ndarray
            The free state for the AEP correction, V, ``(batch, n_free)``.
        x_init : numpy.ndarray
            Starting point, V, ``(batch, n_free)``; ``None``: the engine's own.

        Returns
        -------
        OperatingPoint
            The operating point.
        """
        u, y, x0 = check_batch(net, phase, inputs, targets, x0)
        chain, drive = self._chain_and_drive(net, phase, u)
        batch = u.shape[0]
        if x_init is None:
            start = np.zeros((batch, net.n_free))
        else:
            start = np.array(x_init, dtype=float)
            if start.shape != (batch, net.n_free) or not np.isfinite(start).all():
                raise ValueError(
                    f"x_init has shape {start.shape}, expected finite ({batch}, {net.n_free})"
                )
        out = net.output_index()

        if phase.dyadic:
            x, it, ok = self._solve(net, phase, start, lambda rows, x: _kcl(chain, drive[rows], x))
            blocks = _kcl(chain, drive, x)[1]()
            g = np.zeros_like(x)
            g[:, out] = phase.cost.grad(x[:, out], y)
            return self._result(
                net, phase, x, ok, it, blocks, adjoint=adjoint(self.name, net, phase, blocks, g)
            )

        # K = A - A^T at x0: the circuit's own, or the model's with its elements' errors
        terms = kcl.correction_terms(net, u, x0, phase.correction) if phase.aep else []
        diagonal_hessian = isinstance(phase.cost, SquaredError)

        def system(rows, x):
            f, kcl_jacobian = _kcl(chain, drive[rows], x)
            if phase.nudged:
                f[:, out] += nudge.current(phase.beta, phase.cost, x[:, out], y[rows])
            ts = aep.take_rows(terms, rows) if terms else terms
            if ts:
                aep.apply(f, ts, x, x0[rows])

            def jacobian():
                blocks = kcl_jacobian()
                if phase.nudged:
                    _add_hessian(chain, blocks, phase, x[:, out], y[rows], diagonal_hessian)
                aep.add_jacobian(blocks.add, ts)
                return blocks

            return f, jacobian

        x, it, ok = self._solve(net, phase, start, system)
        blocks = system(np.arange(batch), x)[1]() if self.check_stability else None
        return self._result(net, phase, x, ok, it, blocks)

    def _chain_and_drive(
        self, net: Network, phase: Phase, u: np.ndarray
    ) -> tuple[_Chain, np.ndarray]:
        """The chain of ``net`` and its constant drive, memoised.

        The chain of ``net`` and the constant current into each free node (A, ``(batch, n_free)``:
        the input drive of ``u`` plus the bias currents), from the memo where ``net`` is the same
        object and ``u`` the same voltages as last time.
        """
        memo = self._memo
        chain = memo.get("chain")
        if chain is None or chain[0] is not net:
            chain = memo["chain"] = (net, chain_structure(net))
        if phase.nudged and not isinstance(phase.cost, SquaredError):
            chain_structure(net, phase)  # raises where the cost's Hessian couples distant groups
        drive = memo.get("drive")
        if (
            drive is None
            or drive[0] is not net
            or drive[1].shape != u.shape
            or not np.array_equal(drive[1], u)
        ):
            current = kcl.input_drive(net, u)[0] + chain[1].bias
            current.setflags(write=False)
            drive = memo["drive"] = (net, u, current)
        return chain[1], drive[2]

    def _solve(self, net, phase, start, system):
        x, it, ok, singular = newton(
            net,
            start,
            system,
            vtol=self.vtol,
            itol=self.itol,
            max_iter=self.max_iter,
            check_stability=self.check_stability,
        )
        if not ok.all():
            raise not_converged(self.name, net, phase, ok, singular, self.max_iter)
        return x, it, ok

    def _result(self, net, phase, x, ok, it, blocks, adjoint=None):
        stable = is_stable(net, blocks.dense()) if self.check_stability else None
        return OperatingPoint(
            tuple(net.free_nodes),
            x,
            ok,
            it,
            self.name,
            phase,
            self.tolerance_dict,
            adjoint=adjoint,
            stable=stable,
        )


def _kcl(
    chain: _Chain, drive: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, Callable[[], _Blocks]]:
    """KCL residual ``F(x)`` and a builder of its block Jacobian.

    KCL residual ``F(x)`` (A, ``(batch, n_free)``) and a function building its block Jacobian (S).

    ``drive`` (A, ``(batch, n_free)``) is the constant current into each node from the inputs
    (``kcl.input_drive``) plus the bias currents. Same equations as :func:`circuitep.kcl.residual`.
    """
    f = drive - chain.conductance * x
    g_d = None
    cl = chain.clamped
    if cl.any():
        i_d, g_d = diode_clamp.current(x[:, cl], chain.v_lo[cl], chain.v_hi[cl], chain.law)
        f[:, cl] += i_d
    for link in chain.links:
        c, sa, sb = link.coupling, chain.slices[link.dst_pos], chain.slices[link.src_pos]
        f[:, sa] += link.kind.drive(c, x[:, sb])
        i_src = link.kind.back(c, x[:, sa])
        if i_src is not None:
            f[:, sb] += i_src

    def jacobian() -> _Blocks:
        diag = np.broadcast_to(-chain.conductance, x.shape).copy()
        if g_d is not None:
            diag[:, cl] += g_d
        blocks = _Blocks(chain.slices, [diag[:, s] for s in chain.slices])
        for link in chain.links:  # the loads are in chain.conductance
            pos = {"dst": link.dst_pos, "src": link.src_pos}
            for a, b, block in kcl.jacobian_blocks(
                link, x[:, chain.slices[link.src_pos]], loads=False
            ):
                blocks.add(pos[a], pos[b], block)
        return blocks

    return f, jacobian


def _add_hessian(
    chain: _Chain, blocks: _Blocks, phase: Phase, x_out: np.ndarray, y: np.ndarray, diagonal: bool
) -> None:
    """Add the nudge's ``-beta d^2C/dx_out^2`` to the output blocks (``diagonal``: its diagonal)."""
    h = phase.cost.hessian(x_out, y)
    if diagonal:
        hd = np.diagonal(h, axis1=1, axis2=2)
        for p, sp in chain.outputs:
            blocks.add_diagonal(p, -phase.beta * hd[:, sp])
        return
    for p, sp in chain.outputs:
        for q, sq in chain.outputs:
            blocks.add(p, q, -phase.beta * h[:, sp, sq])
