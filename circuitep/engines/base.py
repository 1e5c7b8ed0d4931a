"""What every engine shares: the phase description and the operating point it returns.

An engine has one job: solve a phase of a network for a batch of samples and return an
:class:`OperatingPoint` (DESIGN.md §3). The controller never knows which engine it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from circuitep import kcl
from circuitep.checks import is_bool, is_number, plain_float
from circuitep.costs import Cost, CrossEntropy, SquaredError
from circuitep.elements import nudge
from circuitep.elements.aep import Correction
from circuitep.phases import NUDGED, PHASES, PhaseName
from circuitep.spec import MAX_VOLTS, Network, voltage_rows


@dataclass(frozen=True)
class Phase:
    """A learning phase (DESIGN.md §1); ``kind`` is one of :data:`circuitep.phases.PHASES`.

    - ``free``: no nudge.
    - ``nudged``: the current ``-beta dC/dx`` into the outputs (``beta`` may be negative).
    - ``aep``: nudged, plus the correction ``-(J - J^T)(x - x0)``, J frozen at the free state
      ``x0``. ``Phase("nudged", beta, aep=True)`` is another spelling of ``Phase("aep", beta)``:
      both give the same phase (``kind == "aep"``, ``aep`` True).
    - ``dyadic``: the doubled (adjoint) circuit; its second half settles at ``d = beta lambda``.

    Parameters
    ----------
    kind : {"free", "nudged", "aep", "dyadic"}
        The phase.
    beta : float
        Nudge strength (S for squared error); 0 for ``free`` and only there.
    aep : bool
        True for the AEP phase; derived from ``kind`` (and accepted with ``kind="nudged"``).
    cost : Cost
        The cost whose gradient the nudge injects.
    correction : Correction or None
        AEP only: where the correction comes from and how its elements err
        (:class:`circuitep.elements.aep.Correction`: the model the controller holds, gain
        errors); ``None``: the simulated circuit's own correction, exact (DESIGN.md §7).
    """

    kind: PhaseName = "free"
    beta: float = 0.0
    aep: bool = False
    cost: Cost = field(default_factory=SquaredError)
    correction: Correction | None = None

    def __post_init__(self):
        if not isinstance(self.kind, str) or str.__str__(self.kind) not in PHASES:
            raise ValueError(f"phase kind {self.kind!r} is not one of {', '.join(PHASES)}")
        if not is_number(self.beta) or not np.isfinite(plain_float("beta", self.beta)):
            raise ValueError(f"beta = {self.beta!r} must be a finite real number")
        if not is_bool(self.aep):
            raise ValueError(f"aep = {self.aep!r} must be True or False")
        # plain values: the phase is compared, hashed and written into netlists and labels
        kind = str.__str__(self.kind)
        if self.aep and kind not in NUDGED:
            raise ValueError("the AEP correction belongs to a nudged phase")
        kind = "aep" if self.aep else kind  # one vocabulary: the flag is the kind's shorthand
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "beta", plain_float("beta", self.beta))
        object.__setattr__(self, "aep", kind == "aep")
        if not isinstance(self.cost, (SquaredError, CrossEntropy)):
            raise ValueError(
                f"cost = {self.cost!r} must be a cost object "
                "(circuitep.costs.make_cost('mse'|'xent'))"
            )
        if self.kind == "free" and self.beta != 0:
            raise ValueError("a free phase has no nudge (beta = 0, aep = False)")
        if self.kind != "free" and self.beta == 0:
            raise ValueError(f"a {self.kind} phase needs a non-zero beta")
        if self.correction is not None:
            if not isinstance(self.correction, Correction):
                raise TypeError(
                    f"correction = {self.correction!r} must be a "
                    "circuitep.elements.aep.Correction or None"
                )
            if self.kind != "aep":
                raise ValueError("a correction belongs to the AEP phase")

    @property
    def nudged(self) -> bool:
        """Whether the nudge current flows into the outputs of the circuit itself.

        True for ``nudged`` and ``aep``; the dyadic phase nudges its adjoint half instead.
        """
        return self.kind in NUDGED

    @property
    def dyadic(self) -> bool:
        """Whether this is the doubled (adjoint) circuit of Dyadic EP."""
        return self.kind == "dyadic"

    @property
    def label(self) -> str:
        """Short name of the phase for logs and reports.

        ``free``, ``nudged(beta=1e-06)``, ``aep(beta=1e-06)`` or ``dyadic(beta=...)``.
        """
        if self.kind == "free":
            return "free"
        return f"{self.kind}(beta={self.beta:g})"


@dataclass(frozen=True)
class OperatingPoint:
    """Stationary state of one phase for a batch.

    ``x`` holds the free-node voltages ``(batch, n_free)`` in the order of ``nodes``; for a dyadic
    phase ``adjoint`` holds the second half ``d`` (V), else ``None``. ``converged`` and
    ``iterations`` are per sample (``iterations``: the solver's own count of Newton iterations,
    or -1 where it cannot tell, as for samples ngspice solves within one DC sweep); ``stable``
    (per sample, or ``None`` when not checked) says whether the linearised dynamics ``C^-1 J``
    have all eigenvalues in the left half plane.
    ``tolerances`` is the solving engine's :attr:`Engine.tolerance_dict` (a plain dict of JSON
    values, the same type on every engine; its keys are the engine's own settings), where a
    setting is ``auto`` with the value chosen for this circuit (ngspice's matrix ``solver``).
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
        """Node name to voltage for one sample.

        Parameters
        ----------
        sample : int
            Row of the batch.

        Returns
        -------
        dict of str to float
            Free-node voltages in V, in state order.
        """
        return {n: float(v) for n, v in zip(self.nodes, self.x[sample], strict=True)}


class ConvergenceError(RuntimeError):
    """An operating point did not converge; the message names circuit, phase and samples.

    ``samples``: the rows of the batch that did not converge, where the engine knows them (the numpy
    engines do), so that a caller can leave them out without solving the others again one by one.
    """

    def __init__(self, message: str, samples=None):
        super().__init__(message)
        self.samples = None if samples is None else tuple(int(k) for k in samples)


class Engine(Protocol):
    """The engine interface: solve a phase for a batch (DESIGN.md §3).

    ``inputs`` (batch, n_inputs) primary input voltages; ``targets`` (batch, n_outputs) for nudged
    and dyadic phases; ``x0`` (batch, n_free) the free state for the AEP correction and the dyadic
    phase; ``x_init`` an optional warm start.

    ``tolerance_dict``: the settings an operating point was solved with, as a plain dict of JSON
    values (numpy engines: ``vtol`` V, ``itol`` A, ``max_iter``; ngspice: ``reltol``, ``vntol`` V,
    ``abstol`` A, ``gmin`` S, ``form``, ``sweep``, and ``workers`` for the pool), reported as
    :attr:`OperatingPoint.tolerances`. (ngspice's ``tolerances`` is its input, a
    :class:`circuitep.compiler.Tolerances`.)
    """

    name: str

    @property
    def tolerance_dict(self) -> dict:
        """The settings an operating point is solved with, as a plain dict of JSON values.

        See the class docstring; reported as :attr:`OperatingPoint.tolerances`.
        """
        ...

    def solve(
        self,
        net: Network,
        phase: Phase,
        inputs: np.ndarray,
        targets: np.ndarray | None = None,
        x0: np.ndarray | None = None,
        x_init: np.ndarray | None = None,
    ) -> OperatingPoint:
        """Solve one phase of ``net`` for a batch (DESIGN.md §3).

        Parameters
        ----------
        net : Network
            The circuit.
        phase : Phase
            Free, nudged (optionally AEP-corrected) or dyadic.
        inputs : ndarray, shape (batch, n_inputs)
            Primary input voltages in V.
        targets : ndarray, shape (batch, n_outputs), optional
            Target voltages in V (or probabilities, for cross-entropy); needed by nudged and dyadic
            phases.
        x0 : ndarray, shape (batch, n_free), optional
            The free state in V, for the AEP correction and the dyadic phase.
        x_init : ndarray, shape (batch, n_free), optional
            A warm start in V, where the engine can use one.

        Returns
        -------
        OperatingPoint
            Free-node voltages ``x`` of shape ``(batch, n_free)`` in V, with convergence per sample.

        Raises
        ------
        ConvergenceError
            When samples do not converge; ``samples`` names them where the engine knows.
        ValueError
            For a batch that does not fit the network or the phase (:func:`check_batch`).
        """
        ...


def check_batch(
    net: Network, phase: Phase, inputs, targets, x0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validate a batch for a phase, naming what is wrong.

    Parameters
    ----------
    net : Network
        The circuit.
    phase : Phase
        The phase to be solved: nudged and dyadic phases need ``targets``, AEP needs ``x0``.
    inputs : array_like, shape (batch, n_inputs)
        Primary input voltages in V (expanded with the inverted copies by
        :meth:`Network.expand_inputs`).
    targets : array_like, shape (batch, n_outputs), or None
        Targets, checked by the phase's cost; ignored for a free phase.
    x0 : array_like, shape (batch, n_free), or None
        Free state in V; must be finite.

    Returns
    -------
    u : ndarray, shape (batch, n_sources)
        All source voltages in V, inverted copies included.
    y : ndarray, shape (batch, n_outputs), or None
        The targets as floats (None for a free phase).
    x0 : ndarray, shape (batch, n_free), or None
        The free state as floats.

    Raises
    ------
    ValueError
        Naming the argument and the expected shape.
    """
    u = net.expand_inputs(inputs)
    batch = u.shape[0]
    y = None
    if phase.kind != "free":
        if targets is None:
            raise ValueError(
                f"the {phase.kind} phase needs targets of shape ({batch}, {net.n_outputs})"
            )
        y = voltage_rows("targets", targets, net.n_outputs, batch)
        phase.cost.check_targets(y)
    if x0 is not None:
        x0 = np.asarray(x0, dtype=float)
        if x0.shape != (batch, net.n_free) or not np.isfinite(x0).all():
            raise ValueError(f"x0 has shape {x0.shape}, expected finite ({batch}, {net.n_free})")
    if phase.aep and x0 is None:
        raise ValueError("the AEP correction needs the free state x0")
    kcl.check_correction(net, phase.correction)
    return u, y, x0


def capacitance(net: Network) -> np.ndarray:
    """Capacitance to ground of every free node.

    Parameters
    ----------
    net : Network
        The circuit.

    Returns
    -------
    ndarray, shape (n_free,)
        In F, in state order.
    """
    return np.concatenate([g.capacitance for g in net.free_groups])


def is_stable(net: Network, jac: np.ndarray) -> np.ndarray:
    """Whether the linearised dynamics are stable: every eigenvalue of ``C^-1 J`` has Re < 0.

    Both are scaled to at most 1 first (positive factors keep the signs), so huge conductances
    cannot overflow; a Jacobian that is not finite (device equations that overflowed) is not called
    stable.

    Parameters
    ----------
    net : Network
        The circuit (its node capacitances, F).
    jac : ndarray, shape (batch, n_free, n_free)
        The KCL Jacobian ``dF/dx`` in S at each sample's operating point.

    Returns
    -------
    ndarray of bool, shape (batch,)
    """
    finite = np.isfinite(jac).all(axis=(1, 2))
    stable = np.zeros(len(jac), bool)
    if finite.any():
        j = jac[finite]
        j = j / np.maximum(np.abs(j).max(axis=(1, 2)), np.finfo(float).tiny)[:, None, None]
        c = capacitance(net)
        stable[finite] = np.linalg.eigvals(j / (c / c.max())[None, :, None]).real.max(axis=1) < 0
    return stable


#: A solution is accepted when every node's KCL residual is within this fraction of the currents
#: summed there (:func:`circuitep.kcl.current_scale`). ngspice converges each device current to its
#: ``reltol`` (1e-10 by default, :class:`circuitep.compiler.Tolerances`); measured on 15 circuits
#: (random reciprocal, feedforward and non-reciprocal ones, ff:64-32-10, layered:12-8-4,
#: res:8-6-3) its answers reach at most 5.8e-10, three decades inside this bar. On a loop whose gain
#: cancels its leak ngspice answered -7.8 V and -15.6 V at 5e-4 (refused here, within +-1 kV) and
#: 1.2e7 V at 5e-9 (refused by :data:`~circuitep.spec.MAX_VOLTS`): both checks are needed.
KCL_RTOL = 1e-6
#: Plus an absolute floor (A) for nodes where every current is ~0: 1e3 times ngspice's ``abstol``.
KCL_ATOL = 1e-12


def unsolved(
    net: Network,
    phase: Phase,
    u: np.ndarray,
    y: np.ndarray | None,
    x0: np.ndarray | None,
    x: np.ndarray,
    d: np.ndarray | None = None,
    rtol: float = KCL_RTOL,
) -> np.ndarray:
    """Rows of a batch whose free-node voltages are no operating point of ``phase``.

    A row is unsolved when ``x`` is not finite, beyond :data:`~circuitep.spec.MAX_VOLTS`, or has a
    KCL residual ``|F_i| > rtol * s_i + KCL_ATOL`` at some node (``s_i`` the size of the currents
    there, :func:`circuitep.kcl.current_scale`). ``F`` is the free circuit's
    (:func:`circuitep.kcl.residual`) plus the nudge ``-beta dC/dx`` at the outputs and the AEP
    correction ``-K (x - x0)`` (DESIGN.md §1).

    Parameters
    ----------
    net : Network
        The circuit.
    phase : Phase
        The phase ``x`` claims to solve.
    u : ndarray, shape (batch, n_sources)
        Source voltages in V (from :func:`check_batch`).
    y : ndarray, shape (batch, n_outputs), or None
        Targets, for a nudged phase.
    x0 : ndarray, shape (batch, n_free), or None
        Free state in V, for the AEP correction.
    x : ndarray, shape (batch, n_free)
        The voltages to check, in V; for the dyadic phase its free half.
    d : ndarray, shape (batch, n_free), optional
        The dyadic phase's adjoint half (V), checked for range only.
    rtol : float
        Relative KCL tolerance (default :data:`KCL_RTOL`).

    Returns
    -------
    ndarray of int
        Indices of the unsolved rows, ascending.
    """

    def out_of_range(v):
        return ~(np.abs(v) <= MAX_VOLTS).all(axis=1)  # NaN compares False: out of range too

    bad = out_of_range(x) if d is None else out_of_range(x) | out_of_range(d)
    ok = ~bad
    if ok.any():
        xs, us = x[ok], u[ok]
        with np.errstate(over="ignore", invalid="ignore"):
            f, _ = kcl.residual(net, us, xs, jacobian=False)
            scale = kcl.current_scale(net, us, xs)
            if phase.nudged:
                out = net.output_index()
                i_nudge = nudge.current(phase.beta, phase.cost, xs[:, out], y[ok])
                f[:, out] += i_nudge
                scale[:, out] += np.abs(i_nudge)
            if phase.aep:
                term = kcl.correction_current(net, us, x0[ok], xs, phase.correction)
                f -= term
                scale += np.abs(term)
            wrong = ~(np.abs(f) <= rtol * scale + KCL_ATOL).all(axis=1)
        bad[np.flatnonzero(ok)[wrong]] = True
    return np.flatnonzero(bad)
