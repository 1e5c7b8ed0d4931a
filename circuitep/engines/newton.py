"""Damped Newton with a pseudo-transient fallback: the solver of both numpy engines.

An engine supplies the equations as ``system(rows, x) -> (F, jacobian)``: the residual ``F(x)``
(A, ``(len(rows), n_free)``) of the samples ``rows`` at the points ``x``, and a function that builds
their Jacobian ``dF/dx`` (S) in the engine's own form (:class:`Jacobian`: dense matrices, or the
block-tridiagonal form of a layered network). Everything else is here, written once: Newton's
iteration with backtracking on ``|F|^2``, the hand-over of samples where it stalls or lands on an
unstable equilibrium, and the pseudo-transient continuation that lets those settle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from circuitep.checks import is_integer, is_number
from circuitep.engines.base import ConvergenceError, Phase, capacitance, is_stable
from circuitep.spec import Network


class Jacobian(Protocol):
    """A batch of Jacobians ``dF/dx`` (S), one per sample, in an engine's own representation."""

    def take(self, sel: np.ndarray) -> Jacobian:
        """The Jacobians of a subset of the samples (index or mask over the batch).

        Parameters
        ----------
        sel : numpy.ndarray
            Indices or a boolean mask over the batch.

        Returns
        -------
        Jacobian
            A subset.
        """

    def update(self, sel: np.ndarray, other: Jacobian) -> Jacobian:
        """A copy whose samples ``sel`` (indices) are replaced by those of ``other``.

        Parameters
        ----------
        sel : numpy.ndarray
            Indices over the batch.
        other : Jacobian
            Jacobians of the same representation for the samples ``sel``.

        Returns
        -------
        Jacobian
            The copy.
        """

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``J^-1 rhs`` per sample; a singular sample's row is not finite.

        Parameters
        ----------
        rhs : numpy.ndarray
            Right-hand sides, ``(batch, n_free)``.

        Returns
        -------
        numpy.ndarray
            ``(batch, n_free)``.
        """

    def transpose(self) -> Jacobian:
        """``J^T`` per sample."""

    def solve_shifted(self, shift: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``(diag(shift) - J)^-1 rhs`` per sample (a pseudo-transient step, ``shift = C/dt``).

        Parameters
        ----------
        shift : numpy.ndarray
            ``C / dt`` per node, S, ``(batch, n_free)``.
        rhs : numpy.ndarray
            Right-hand sides, ``(batch, n_free)``.

        Returns
        -------
        numpy.ndarray
            ``(batch, n_free)``.
        """

    def diagonal(self) -> np.ndarray:
        """The diagonal of ``J``, ``(batch, n_free)``."""

    def dense(self) -> np.ndarray:
        """``J`` as a ``(batch, n_free, n_free)`` array."""


System = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Callable[[], Jacobian]]]


def check_options(engine) -> None:
    """An engine's Newton options.

    ``vtol`` (V) and ``itol`` (A) small enough to mean an operating point (vtol 1 V stopped 0.94 V
    off), ``max_iter`` a positive whole number.

    Parameters
    ----------
    engine : Engine
        A numpy engine (its ``name``, ``vtol``, ``itol``, ``max_iter``).
    """
    for key, top in (("vtol", 1e-6), ("itol", 1e-9)):
        v = getattr(engine, key)
        if not is_number(v) or not 0 < v <= top:
            raise ValueError(f"{engine.name} engine: {key} = {v!r} must be in (0, {top:g}]")
    if not is_integer(engine.max_iter) or engine.max_iter < 1:
        raise ValueError(
            f"{engine.name} engine: max_iter = {engine.max_iter!r} must be a positive whole number"
        )


def newton(
    net: Network,
    start: np.ndarray,
    system: System,
    *,
    vtol: float,
    itol: float,
    max_iter: int,
    check_stability: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Solve ``F(x) = 0`` for every sample from ``start`` (batch, n_free) V.

    Damped Newton first (:func:`damped_newton`); samples where it does not converge (a singular
    Jacobian, a line search that gives up near a fold, ``max_iter`` iterations) settle by
    :func:`settle` from ``start``, and so do those where it lands on an unstable equilibrium when
    ``check_stability`` is on (where the transient runs away, the unstable solution is kept, and the
    engine reports it). Returns ``x, iterations, converged, singular`` (``singular``: Newton's
    Jacobian was singular and the transient did not settle either).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    start : numpy.ndarray
        Starting points, V, ``(batch, n_free)``.
    system : System
        ``system(rows, x) -> (F, jacobian)`` (module docstring).
    vtol : float
        Convergence on the step, V.
    itol : float
        Convergence on ``|F|``, A.
    max_iter : int
        Newton iterations at most.
    check_stability : bool
        Hand unstable equilibria to the transient.

    Returns
    -------
    tuple of numpy.ndarray
        ``x`` (V), iterations, converged and singular (Newton's step), per sample.
    """
    x, it, ok, singular = damped_newton(start, system, vtol=vtol, itol=itol, max_iter=max_iter)
    retry = ~ok
    if check_stability and ok.any():
        retry |= ok & ~is_stable(net, system(np.arange(len(x)), x)[1]().dense())
    rows = np.flatnonzero(retry)
    if rows.size:

        def evaluate(r, xx):
            f, jacobian = system(rows[r], xx)
            jac = jacobian()
            return f, lambda shift, sel: jac.take(sel).solve_shifted(shift, f[sel]), jac.diagonal()

        xr, itr, okr = settle(start[rows], evaluate, capacitance(net), vtol=vtol, itol=itol)
        take = rows[okr]
        x[take], it[take], ok[take], singular[take] = xr[okr], it[take] + itr[okr], True, False
    return x, it, ok, singular


def damped_newton(
    x: np.ndarray, system: System, *, vtol: float, itol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Damped Newton over the samples not yet converged.

    Damped Newton ``x <- x - t J^-1 F`` over the samples not yet converged, ``t`` by
    :func:`backtrack`; a sample has converged when its step is below ``vtol`` (V) or ``|F|`` below
    ``itol`` (A).

    The accepted line-search point is not evaluated twice: ``system`` returns ``F`` and a function
    that builds the Jacobian only when asked. A sample stops unconverged where its Newton step is
    not finite (a singular Jacobian) or its line search gives up (no decrease of ``|F|^2`` after
    :data:`MAX_HALVINGS` halvings): :func:`newton` hands it to pseudo-transient continuation rather
    than let Newton crawl on. Returns ``x, iterations, converged, singular``; ``x`` is not modified.

    Parameters
    ----------
    x : numpy.ndarray
        Starting points, V, ``(batch, n_free)``.
    system : System
        ``system(rows, x) -> (F, jacobian)`` (module docstring).
    vtol : float
        Convergence on the step, V.
    itol : float
        Convergence on ``|F|``, A.
    max_iter : int
        Newton iterations at most.

    Returns
    -------
    tuple of numpy.ndarray
        ``x``, iterations, converged, singular.
    """
    batch = x.shape[0]
    x = x.copy()
    it = np.zeros(batch, int)
    done = np.zeros(batch, bool)
    singular = np.zeros(batch, bool)
    stalled = np.zeros(batch, bool)
    rows = np.arange(batch)
    f, jacobian = system(rows, x)
    jac = jacobian()
    for _ in range(max_iter):
        active = ~done[rows] & ~singular[rows] & ~stalled[rows]
        if not active.all():
            jac = jac.take(active)
            rows = rows[active]
        if rows.size == 0:
            break
        fa = f[rows]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = -jac.solve(fa)
        bad = ~np.isfinite(step).all(axis=1)
        if bad.any():  # left to pseudo-transient continuation, whose matrix C/dt - J is regular
            singular[rows[bad]] = True
            step[bad] = 0.0
        ft, jacobian = system(rows, x[rows] + step)
        t, gave_up = backtrack(
            _residual_of(system, rows),
            x[rows],
            step,
            (fa**2).sum(1),
            np.where(bad[:, None], 0.0, ft),
        )
        stalled[rows[gave_up]] = True
        back = np.flatnonzero(t < 1)
        x[rows] += t[:, None] * step
        it[rows] += 1
        f[rows], jac = ft, jacobian()
        if back.size:  # F and J where the backtracking samples ended up
            fb, jacobian_b = system(rows[back], x[rows[back]])
            f[rows[back]] = fb
            jac = jac.update(back, jacobian_b())
        small = (np.abs(step).max(1) <= vtol) | (np.abs(f[rows]).max(1) <= itol)
        done[rows[small & ~bad]] = True
    return x, it, done, singular


def adjoint(engine: str, net: Network, phase: Phase, jac: Jacobian, grad: np.ndarray) -> np.ndarray:
    """The dyadic phase's second half ``d = beta J^-T dC/dx``.

    The dyadic phase's second half ``d = beta J^-T dC/dx`` (V) at the free state, ``jac`` being
    ``J`` there and ``grad`` ``dC/dx`` (batch, n_free). Where ``J`` is singular the adjoint circuit
    has no operating point: raises, naming those samples.

    Parameters
    ----------
    engine : str
        The engine's name, for messages.
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    phase : Phase
        The phase to solve (:class:`circuitep.engines.base.Phase`).
    jac : Jacobian
        ``J`` at the free state.
    grad : numpy.ndarray
        ``dC/dx``, ``(batch, n_free)``.

    Returns
    -------
    numpy.ndarray
        ``d``, V, ``(batch, n_free)``.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = phase.beta * jac.transpose().solve(grad)
    bad = np.flatnonzero(~np.isfinite(d).all(axis=1))
    if bad.size:
        raise ConvergenceError(
            f"{engine} engine: network {net.name!r}, phase {phase.label}: the Jacobian at the free "
            "state is "
            f"singular for sample(s) {bad[:10].tolist()}, so the adjoint circuit has no operating "
            "point there; "
            f"check that every node has a DC path to ground",
            samples=bad,
        )
    return d


def solve_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[k]^-1 b[k]`` for a batch; a singular sample comes back as NaN.

    ``a[k]^-1 b[k]`` for a batch of matrices ``a`` (batch, n, n) and right-hand sides ``b`` (batch,
    n) or (batch, n, m); a sample whose matrix is singular comes back as NaN, so that the solver
    hands it on instead of the whole batch failing.

    Parameters
    ----------
    a : numpy.ndarray
        Matrices ``(batch, n, n)``.
    b : numpy.ndarray
        Right-hand sides.

    Returns
    -------
    numpy.ndarray
        Solutions, shaped as ``b``.
    """
    vector = b.ndim == a.ndim - 1
    rhs = b[..., None] if vector else b
    try:
        out = np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError:
        out = np.full(np.broadcast_shapes(rhs.shape, a.shape[:-1] + rhs.shape[-1:]), np.nan)
        for k in range(len(a)):
            try:
                out[k] = np.linalg.solve(a[k], rhs[k])
            except np.linalg.LinAlgError:
                pass
    return out[..., 0] if vector else out


def not_converged(
    engine: str, net: Network, phase: Phase, ok: np.ndarray, singular: np.ndarray, max_iter: int
) -> ConvergenceError:
    """The error for samples that neither Newton nor the transient solved, naming them.

    Parameters
    ----------
    engine : str
        The engine's name.
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    phase : Phase
        The phase to solve (:class:`circuitep.engines.base.Phase`).
    ok : numpy.ndarray
        Converged, per sample (bool).
    singular : numpy.ndarray
        Singular Jacobian, per sample (bool).
    max_iter : int
        Newton iterations at most.

    Returns
    -------
    ConvergenceError
        The error, to raise.
    """
    bad = np.flatnonzero(~ok)
    why = (
        f"; the Jacobian was singular for sample(s) {np.flatnonzero(singular)[:10].tolist()}"
        if singular.any()
        else ""
    )
    return ConvergenceError(
        f"{engine} engine: network {net.name!r}, phase {phase.label}: neither Newton ({max_iter} "
        "iterations) "
        f"nor pseudo-transient continuation converged for sample(s) {bad[:10].tolist()}{why}; "
        "check for "
        f"negative conductances or a circuit with no DC path to ground",
        samples=bad,
    )


#: Halvings after which a Newton line search gives up and the sample goes on by pseudo-transient
#: continuation. A step that must shrink below 2^-20 to lower ``|F|`` comes from a near-singular
#: Jacobian (a fold, as in loops with gain above 1): there Newton crawls, accepting moves of a
#: millionth of its step, for up to ``max_iter`` line searches of ~35 evaluations each, where the
#: transient settles in tens of steps. Measured on 1,000 MNIST samples through a trained layered
#: 784-500-10 circuit (bp seed 0, epoch 20): the free phase 2.1x faster than with 59 halvings, the
#: same operating points to 2e-13 V; at 2^-10 one sample settled on another operating point.
MAX_HALVINGS = 20


def _residual_of(system: System, rows: np.ndarray) -> Callable:
    """``F`` of the samples ``rows``, for :func:`backtrack`.

    ``F`` of the samples ``rows`` for :func:`backtrack`: ``(r, points) -> F``, ``r`` indexing
    ``rows``; ``rows`` is bound now, not read when it is called.
    """
    return lambda r, points: system(rows[r], points)[0]


def backtrack(
    residual: Callable,
    x: np.ndarray,
    step: np.ndarray,
    merit: np.ndarray,
    f_full: np.ndarray,
    halvings: int = MAX_HALVINGS,
) -> tuple[np.ndarray, np.ndarray]:
    """Armijo backtracking of damped Newton, for a batch of samples.

    Accepts for each row the first of ``t = 1, 1/2, 1/4, ...`` with ``|F(x + t step)|^2 <= (1 - 1e-4
    t) |F(x)|^2``; ``merit`` is ``|F(x)|^2`` and ``f_full`` is ``F(x + step)``, already evaluated by
    the caller. ``residual(rows, points)`` evaluates ``F`` for the rows (indices into ``x``) still
    searching, so a row that accepted costs nothing more. A trial point where ``F`` is not finite is
    rejected. Returns ``t`` and the rows that gave up after ``halvings`` halvings (their ``t`` is
    ``2^-halvings``).

    Parameters
    ----------
    residual : callable
        ``residual(rows, points) -> F``.
    x : numpy.ndarray
        Points, V, ``(batch, n_free)``.
    step : numpy.ndarray
        Newton steps, V, same shape.
    merit : numpy.ndarray
        ``|F(x)|^2``, ``(batch,)``.
    f_full : numpy.ndarray
        ``F(x + step)``, A.
    halvings : int
        Halvings at most.

    Returns
    -------
    tuple of numpy.ndarray
        ``t`` ``(batch,)`` and the indices that gave up.
    """
    t = np.ones(len(x))
    pending = np.flatnonzero(~((f_full**2).sum(1) <= merit * (1 - 1e-4)))
    for _ in range(halvings):
        if pending.size == 0:
            break
        t[pending] /= 2
        with np.errstate(over="ignore", invalid="ignore"):
            fp = residual(pending, x[pending] + t[pending, None] * step[pending])
            pending = pending[~((fp**2).sum(1) <= merit[pending] * (1 - 1e-4 * t[pending]))]
    return t, pending


#: Node voltage (V) beyond which a pseudo-transient is taken to run away (no state to settle in).
RUNAWAY_VOLTAGE = 1e3
#: Most pseudo-transient steps per sample: a circuit that has not settled by then oscillates or
#: drifts (measured on trained MNIST circuits: those that settle do so within about 150 steps).
TRANSIENT_STEPS = 1000


#: Largest voltage change (V) of one pseudo-transient step in the first attempt of :func:`settle`:
#: four thermal voltages, so a diode's current changes by at most e^4 per step.
TRANSIENT_MAX_STEP = 0.1


def settle(
    x: np.ndarray, evaluate: Callable, cap: np.ndarray, *, vtol: float, itol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where Newton fails, let the circuit settle.

    :func:`pseudo_transient` from ``x`` with each step held to :data:`TRANSIENT_MAX_STEP`, then, for
    the samples still unsettled, again from ``x`` with free steps.

    Free steps grow without bound as ``|F|`` falls, so that the transient soon is Newton's method;
    near exponential diodes that can cycle for good, overshooting and creeping back one thermal
    voltage per step. Measured on a trained layered 784-500-10 MNIST circuit: 12 of 12 samples that
    free steps never settled had a stable operating point, reached with held steps in 37-153 steps
    and confirmed by ngspice's transient from rest (to 1e-11 V); held steps first made the fallback
    3x cheaper there. The free-step retry remains for the rare sample where held steps wander (1 in
    3,000 there; ngspice's transient settles where the free steps end).

    Arguments and returns as :func:`pseudo_transient`; ``x`` is not modified.

    Parameters
    ----------
    x : numpy.ndarray
        Starting points, V, ``(batch, n_free)``.
    evaluate : callable
        ``evaluate(rows, x_rows) -> (F, solve, diagonal)`` (see :func:`pseudo_transient`).
    cap : numpy.ndarray
        Node capacitances, F, ``(n_free,)`` (:func:`circuitep.engines.base.capacitance`).
    vtol : float
        Convergence on the step, V.
    itol : float
        Convergence on ``|F|``, A.

    Returns
    -------
    tuple of numpy.ndarray
        ``x``, iterations, converged.
    """
    start = x
    x, it, ok = pseudo_transient(
        start.copy(), evaluate, cap, vtol=vtol, itol=itol, max_step=TRANSIENT_MAX_STEP
    )
    again = np.flatnonzero(~ok)
    if again.size:
        xr, itr, okr = pseudo_transient(
            start[again].copy(), lambda r, xx: evaluate(again[r], xx), cap, vtol=vtol, itol=itol
        )
        x[again[okr]], it[again], ok[again] = xr[okr], it[again] + itr, okr
    return x, it, ok


#: ``dt`` in units of the slowest node time constant beyond which a transient step is Newton's
#: (the shift C/dt is 1e-6 of the conductances): only then does a step below ``vtol`` mean the
#: state is an operating point. Without it, nodes of 0.05 F beside others of 1 pF ended 11 of 50
#: samples (layered:10-8-4, gain 1) with KCL residuals up to 5e-5 A, reported converged.
NEWTON_REGIME = 1e6


def pseudo_transient(
    x: np.ndarray,
    evaluate: Callable,
    cap: np.ndarray,
    *,
    vtol: float,
    itol: float,
    max_steps: int = TRANSIENT_STEPS,
    max_step: float = np.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward-Euler steps of ``C dx/dt = F(x)``, batched over samples.

    Backward-Euler steps of ``C dx/dt = F(x)`` with a step that grows as ``|F|`` falls (switched
    evolution relaxation), batched over samples; :func:`settle` uses it where Newton fails. It
    follows the circuit's own dynamics, so it ends in a state the circuit can settle into, and turns
    into Newton's method near it.

    ``evaluate(rows, x_rows)`` returns ``F`` at those rows (A), a function ``solve(shift, sel)``
    that solves ``(diag(shift) - J) step = F`` for the subset ``sel`` (a mask over ``rows``) with
    ``shift = C / dt`` (S), and the diagonal of ``J`` (S). ``x`` (batch, n_free) V is updated in
    place. Returns ``x, iterations, converged`` (converged: step below ``vtol`` or ``|F|`` below
    ``itol``; a singular step, a run-away transient or one still moving after ``max_steps`` is not
    converged).

    A step longer than ``max_step`` (V, largest node change) is shortened to it, and the next ``dt``
    is half the last but at most the slowest node time constant ``C_i / |J_ii|``. Once ``dt`` has
    grown into Newton's regime, halving alone leaves a Newton cycle only after dozens of steps:
    measured on layered:30-20-10 at gain 1, 2 of 200 samples cycled for all 1,000 steps (two states,
    ``dt`` growing to 1e15 time constants); with the bound each of the 200 transients from rest
    settles within 87 steps, where ngspice's transient from rest ends (to 1e-10 V).

    Parameters
    ----------
    x : numpy.ndarray
        Starting points, V, ``(batch, n_free)``; updated in place.
    evaluate : callable
        ``evaluate(rows, x_rows) -> (F, solve, diagonal)`` (see :func:`pseudo_transient`).
    cap : numpy.ndarray
        Node capacitances, F, ``(n_free,)`` (:func:`circuitep.engines.base.capacitance`).
    vtol : float
        Convergence on the step, V.
    itol : float
        Convergence on ``|F|``, A.
    max_steps : int
        Steps at most.
    max_step : float
        Largest node change per step, V.

    Returns
    -------
    tuple of numpy.ndarray
        ``x``, iterations, converged.
    """
    batch = x.shape[0]
    it = np.zeros(batch, int)
    done = np.zeros(batch, bool)
    failed = np.zeros(batch, bool)
    rows = np.arange(batch)
    f = np.zeros_like(x)
    f[rows], solve, diag = evaluate(rows, x)
    # first step: a tenth of the sample's fastest time constant (per sample, so that a sample's
    # transient does not depend on the others in its batch)
    dt = 0.1 * np.min(cap[None, :] / np.maximum(np.abs(diag), 1e-30), axis=1)
    for _ in range(max_steps):
        sel = ~done[rows]
        rows = rows[sel]
        if rows.size == 0:
            break
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = solve(cap[None, :] / dt[rows, None], sel)
        bad = ~np.isfinite(step).all(axis=1)
        failed[rows[bad]], done[rows[bad]] = True, True
        step[bad] = 0.0
        old = np.abs(f[rows]).max(1)
        longest = np.abs(step).max(1)
        held = longest > max_step
        step[held] *= (max_step / longest[held])[:, None]
        x[rows] += step
        runaway = np.abs(x[rows]).max(1) > RUNAWAY_VOLTAGE
        if runaway.any():
            x[rows[runaway]] = 0.0
            done[rows[runaway]] = True
            failed[rows[runaway]] = True
        f[rows], solve, diag = evaluate(rows, x[rows])
        new = np.abs(f[rows]).max(1)
        growth = np.clip(1.5 * old / np.maximum(new, 1e-300), 0.5, 10.0)
        slowest = np.max(cap[None, :] / np.maximum(np.abs(diag), 1e-30), axis=1)
        # a short step is convergence only once it is a Newton step (C/dt negligible beside J):
        # earlier, slow nodes (large C) move little per step wherever they are
        newton_like = dt[rows] >= NEWTON_REGIME * slowest
        with np.errstate(
            over="ignore"
        ):  # dt may grow to inf near the solution: C/dt = 0 is a Newton step
            dt[rows] = np.where(held, np.minimum(dt[rows] / 2, slowest), dt[rows] * growth)
        it[rows] += 1
        done[rows[((np.abs(step).max(1) <= vtol) & newton_like) | (new <= itol)]] = True
    return x, it, done & ~failed
