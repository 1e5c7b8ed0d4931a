"""What every engine shares: the phase description and the operating point it returns.

An engine has one job: solve a phase of a network for a batch of samples and return an
:class:`OperatingPoint` (DESIGN.md §3). The controller never knows which engine it talks to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from circuitep.costs import Cost, CrossEntropy, SquaredError
from circuitep.spec import Network

PhaseKind = Literal["free", "nudged", "dyadic"]


@dataclass(frozen=True)
class Phase:
    """A learning phase (DESIGN.md §1).

    - ``free``: no nudge.
    - ``nudged``: the current ``-beta dC/dx`` into the outputs (``beta`` may be negative); with
      ``aep=True`` also the correction ``-(J - J^T)(x - x0)``, J frozen at the free state ``x0``.
    - ``dyadic``: the doubled (adjoint) circuit; its second half settles at ``d = beta lambda``.
    """

    kind: PhaseKind = "free"
    beta: float = 0.0
    aep: bool = False
    cost: Cost = field(default_factory=SquaredError)

    def __post_init__(self):
        if self.kind not in ("free", "nudged", "dyadic"):
            raise ValueError(f"phase kind {self.kind!r} is not one of free, nudged, dyadic")
        if not np.isfinite(self.beta):
            raise ValueError(f"beta = {self.beta!r} is not finite")
        if self.kind == "free" and (self.beta != 0 or self.aep):
            raise ValueError("a free phase has no nudge (beta = 0, aep = False)")
        if self.kind != "free" and self.beta == 0:
            raise ValueError(f"a {self.kind} phase needs a non-zero beta")
        if self.aep and self.kind != "nudged":
            raise ValueError("the AEP correction belongs to a nudged phase")

    @property
    def label(self) -> str:
        if self.kind == "free":
            return "free"
        return f"{'aep' if self.aep else self.kind}(beta={self.beta:g})"


@dataclass(frozen=True)
class OperatingPoint:
    """Stationary state of one phase for a batch.

    ``x`` holds the free-node voltages ``(batch, n_free)`` in the order of ``nodes``; for a dyadic
    phase ``adjoint`` holds the second half ``d`` (V), else ``None``. ``converged`` and
    ``iterations`` are per sample; ``stable`` (per sample, or ``None`` when not checked) says
    whether the linearised dynamics ``C^-1 J`` have all eigenvalues in the left half plane.
    """

    nodes: tuple[str, ...]
    x: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    engine: str
    phase: Phase
    tolerances: dict
    adjoint: np.ndarray | None = None
    stable: np.ndarray | None = None

    def voltages(self, sample: int = 0) -> dict[str, float]:
        """Node name to voltage (V) for one sample."""
        return {n: float(v) for n, v in zip(self.nodes, self.x[sample])}


class ConvergenceError(RuntimeError):
    """An operating point did not converge; the message names circuit, phase and samples.

    ``samples``: the rows of the batch that did not converge, where the engine knows them (the numpy
    engines do), so that a caller can leave them out without solving the others again one by one.
    """

    def __init__(self, message: str, samples=None):
        super().__init__(message)
        self.samples = None if samples is None else tuple(int(k) for k in samples)


class Engine(Protocol):
    """Solve a phase for a batch. ``inputs`` (batch, n_inputs) primary input voltages; ``targets``
    (batch, n_outputs) for nudged and dyadic phases; ``x0`` (batch, n_free) the free state for the
    AEP correction and the dyadic phase; ``x_init`` an optional warm start."""

    name: str

    def solve(self, net: Network, phase: Phase, inputs: np.ndarray, targets: np.ndarray | None = None,
              x0: np.ndarray | None = None, x_init: np.ndarray | None = None) -> OperatingPoint: ...


def check_batch(net: Network, phase: Phase, inputs, targets, x0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validate a batch for a phase, naming what is wrong; return float arrays."""
    u = net.expand_inputs(inputs)
    batch = u.shape[0]
    y = None
    if phase.kind != "free":
        if targets is None:
            raise ValueError(f"the {phase.kind} phase needs targets of shape ({batch}, {net.n_outputs})")
        y = np.asarray(targets, dtype=float)
        if y.shape != (batch, net.n_outputs) or not np.isfinite(y).all():
            raise ValueError(f"targets have shape {y.shape}, expected finite ({batch}, {net.n_outputs})")
        if isinstance(phase.cost, CrossEntropy) and ((y < 0).any() or (y.sum(axis=1) <= 0).any()):
            raise ValueError("cross-entropy targets are probabilities: every row must be >= 0 with a positive sum")
    if x0 is not None:
        x0 = np.asarray(x0, dtype=float)
        if x0.shape != (batch, net.n_free) or not np.isfinite(x0).all():
            raise ValueError(f"x0 has shape {x0.shape}, expected finite ({batch}, {net.n_free})")
    if phase.aep and x0 is None:
        raise ValueError("the AEP correction needs the free state x0")
    return u, y, x0


def capacitance(net: Network) -> np.ndarray:
    """Capacitance to ground of every free node (F), in state order."""
    return np.concatenate([g.capacitance for g in net.free_groups])


def is_stable(net: Network, jac: np.ndarray) -> np.ndarray:
    """Per sample: all eigenvalues of ``C^-1 J`` have negative real part."""
    eig = np.linalg.eigvals(jac / capacitance(net)[None, :, None])
    return eig.real.max(axis=1) < 0


#: Most halvings of a Newton step in one line search before it gives up (t = 2^-59).
MAX_HALVINGS = 59


def backtrack(residual: Callable, x: np.ndarray, step: np.ndarray, merit: np.ndarray,
              f_full: np.ndarray, halvings: int = MAX_HALVINGS) -> tuple[np.ndarray, np.ndarray]:
    """Armijo backtracking of damped Newton, for a batch of samples (both numpy engines use it).

    Accepts for each row the first of ``t = 1, 1/2, 1/4, ...`` with
    ``|F(x + t step)|^2 <= (1 - 1e-4 t) |F(x)|^2``; ``merit`` is ``|F(x)|^2`` and ``f_full`` is
    ``F(x + step)``, already evaluated by the caller. ``residual(rows, points)`` evaluates ``F`` for
    the rows (indices into ``x``) still searching, so a row that accepted costs nothing more. A
    trial point where ``F`` is not finite is rejected. Returns ``t`` and the rows that gave up after
    ``halvings`` halvings (their ``t`` is ``2^-halvings``).
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


def settle(x: np.ndarray, evaluate: Callable, cap: np.ndarray, *, vtol: float, itol: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where Newton fails, let the circuit settle: :func:`pseudo_transient` from ``x`` with each
    step held to :data:`TRANSIENT_MAX_STEP`, then, for the samples still unsettled, again from
    ``x`` with free steps.

    Free steps grow without bound as ``|F|`` falls, so that the transient soon is Newton's method;
    near exponential diodes that can cycle for good, overshooting and creeping back one thermal
    voltage per step. Measured on a trained layered 784-500-10 MNIST circuit: 12 of 12 samples
    that free steps never settled had a stable operating point, reached with held steps in 37-153
    steps and confirmed by ngspice's transient from rest (to 1e-11 V); held steps first made the
    fallback 3x cheaper there. The free-step retry remains for the rare sample where held steps
    wander (1 in 3,000 there; ngspice's transient settles where the free steps end).

    Arguments and returns as :func:`pseudo_transient`; ``x`` is not modified.
    """
    start = x
    x, it, ok = pseudo_transient(start.copy(), evaluate, cap, vtol=vtol, itol=itol, max_step=TRANSIENT_MAX_STEP)
    again = np.flatnonzero(~ok)
    if again.size:
        xr, itr, okr = pseudo_transient(start[again].copy(), lambda r, xx: evaluate(again[r], xx), cap, vtol=vtol,
                                        itol=itol)
        x[again[okr]], it[again], ok[again] = xr[okr], it[again] + itr, okr
    return x, it, ok


def pseudo_transient(x: np.ndarray, evaluate: Callable, cap: np.ndarray, *, vtol: float, itol: float,
                     max_steps: int = TRANSIENT_STEPS, max_step: float = np.inf
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward-Euler steps of ``C dx/dt = F(x)`` with a step that grows as ``|F|`` falls
    (switched evolution relaxation), batched over samples; both numpy engines use it (through
    :func:`settle`) where Newton fails. It follows the circuit's own dynamics, so it ends in a
    state the circuit can settle into, and turns into Newton's method near it.

    ``evaluate(rows, x_rows)`` returns ``F`` at those rows (A), a function ``solve(shift, sel)``
    that solves ``(diag(shift) - J) step = F`` for the subset ``sel`` (a mask over ``rows``) with
    ``shift = C / dt`` (S), and the diagonal of ``J`` (S). ``x`` (batch, n_free) V is updated in
    place. A step longer than ``max_step`` (V, largest node change) is shortened to it and the next
    ``dt`` is half the last. Returns ``x, iterations, converged`` (converged: step below ``vtol`` or
    ``|F|`` below ``itol``; a singular step, a run-away transient or one still moving after
    ``max_steps`` is not converged).
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
        f[rows], solve, _ = evaluate(rows, x[rows])
        new = np.abs(f[rows]).max(1)
        with np.errstate(over="ignore"):  # dt may grow to inf near the solution: C/dt = 0 is a Newton step
            dt[rows] *= np.where(held, 0.5, np.clip(1.5 * old / np.maximum(new, 1e-300), 0.5, 10.0))
        it[rows] += 1
        done[rows[(np.abs(step).max(1) <= vtol) | (new <= itol)]] = True
    return x, it, done & ~failed
