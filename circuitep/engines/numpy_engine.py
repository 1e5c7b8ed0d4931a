"""Reference engine: Newton's method on the KCL equations, batched over samples.

Same device models as the netlists ngspice reads (:mod:`circuitep.devices`), so it verifies every
number ngspice produces and gives the exact adjoint. The Jacobian is a dense
``(batch, n_free, n_free)`` array, so any network works, at a cost that grows like ``n_free^3``
(:class:`~circuitep.engines.layered.LayeredEngine` is the fast one for layered networks). Holds no
state between calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitep import kcl
from circuitep.elements import aep, nudge
from circuitep.engines.base import OperatingPoint, Phase, check_batch, is_stable
from circuitep.engines.newton import adjoint, check_options, newton, not_converged, solve_rows
from circuitep.spec import Network


@dataclass(frozen=True)
class NumpyEngine:
    """Dense batched damped Newton: the reference numpy engine.

    Batched damped Newton (:func:`circuitep.engines.newton.newton`): ``x <- x - t J^-1 F`` with
    backtracking on ``|F|^2``, and pseudo-transient continuation where Newton stalls.

    A sample has converged when its Newton step is below ``vtol`` (V) or ``|F|`` below ``itol`` (A).
    ``check_stability`` computes the eigenvalues of ``C^-1 J`` at the solution; a sample where
    Newton lands on an unstable equilibrium is then solved again by letting the circuit settle.
    """

    vtol: float = 1e-12
    itol: float = 1e-15
    max_iter: int = 200
    check_stability: bool = True
    name: str = "numpy"

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
        out = net.output_index()
        start = (
            np.zeros((u.shape[0], net.n_free)) if x_init is None else np.array(x_init, dtype=float)
        )
        if start.shape != (u.shape[0], net.n_free) or not np.isfinite(start).all():
            raise ValueError(
                f"x_init has shape {start.shape}, expected finite ({u.shape[0]}, {net.n_free})"
            )
        k = kcl.correction_matrix(net, u, x0, phase.correction) if phase.aep else None

        def system(rows, x):
            f, _ = phase_residual(
                net,
                phase,
                u[rows],
                x,
                None if y is None else y[rows],
                None if x0 is None else x0[rows],
                None if k is None else k[rows],
                jacobian=False,
            )
            return f, lambda: DenseJacobian(
                phase_residual(
                    net,
                    phase,
                    u[rows],
                    x,
                    None if y is None else y[rows],
                    None if x0 is None else x0[rows],
                    None if k is None else k[rows],
                )[1]
            )

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
        dyadic = phase.dyadic
        jac = system(np.arange(len(x)), x)[1]() if dyadic or self.check_stability else None
        d = None
        if dyadic:  # system is the free circuit; its adjoint network settles at d = beta J^-T dC/dx
            g = np.zeros_like(x)
            g[:, out] = phase.cost.grad(x[:, out], y)
            d = adjoint(self.name, net, phase, jac, g)
        return OperatingPoint(
            tuple(net.free_nodes),
            x,
            ok,
            it,
            self.name,
            phase,
            self.tolerance_dict,
            adjoint=d,
            stable=is_stable(net, jac.matrices) if self.check_stability else None,
        )


def phase_residual(
    net: Network,
    phase: Phase,
    u: np.ndarray,
    x: np.ndarray,
    y: np.ndarray | None = None,
    x0: np.ndarray | None = None,
    k: np.ndarray | None = None,
    *,
    jacobian: bool = True,
):
    """KCL of one phase: residual ``F`` (A) and Jacobian (S).

    KCL of one phase: the free circuit's residual (:func:`circuitep.kcl.residual`, A), plus the
    nudge ``-beta dC/dx`` into the outputs (nudged phase, targets ``y``) and the AEP correction ``-K
    (x - x0)`` (``k``: ``K`` per sample, S, from :func:`circuitep.kcl.correction_matrix`). Shapes as
    in :mod:`circuitep.kcl`; returns ``(F, J or None)``.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    phase : Phase
        The phase to solve (:class:`circuitep.engines.base.Phase`).
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    x : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.
    y : numpy.ndarray
        Targets, ``(batch, n_outputs)``, or ``None``.
    x0 : numpy.ndarray
        The free state, V, ``(batch, n_free)``, or ``None``.
    k : numpy.ndarray
        ``K`` per sample, S, ``(batch, n_free, n_free)``, or ``None``.
    jacobian : bool
        Whether to build the Jacobian ``dF/dx`` too.

    Returns
    -------
    tuple
        ``F``, A, ``(batch, n_free)``, and ``J``, S, ``(batch, n_free, n_free)`` or ``None``.
    """
    f, jac = kcl.residual(net, u, x, jacobian=jacobian)
    out = net.output_index()
    if phase.nudged:
        f[:, out] += nudge.current(phase.beta, phase.cost, x[:, out], y)
        if jacobian:
            jac[:, out[:, None], out[None, :]] += nudge.jacobian(
                phase.beta, phase.cost, x[:, out], y
            )
    if k is not None:
        aep.apply_dense(f, jac, k, x, x0)
    return f, jac


class DenseJacobian:
    """A batch of dense Jacobians ``(batch, n_free, n_free)`` (S).

    In the form :func:`circuitep.engines.newton.newton` asks of an engine.
    """

    def __init__(self, matrices: np.ndarray):
        self.matrices = matrices

    def take(self, sel: np.ndarray) -> DenseJacobian:
        """The Jacobians of the samples ``sel``.

        Parameters
        ----------
        sel : numpy.ndarray
            Indices or a boolean mask over the batch.

        Returns
        -------
        DenseJacobian
            A subset.
        """
        return DenseJacobian(self.matrices[sel])

    def update(self, sel: np.ndarray, other: DenseJacobian) -> DenseJacobian:
        """A copy whose samples ``sel`` are those of ``other``.

        Parameters
        ----------
        sel : numpy.ndarray
            Indices or a boolean mask over the batch.
        other : Jacobian
            Jacobians of the same representation for the samples ``sel``.

        Returns
        -------
        DenseJacobian
            The copy.
        """
        matrices = self.matrices.copy()
        matrices[sel] = other.matrices
        return DenseJacobian(matrices)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``J^-1 rhs`` per sample; a singular sample gives NaN.

        Parameters
        ----------
        rhs : numpy.ndarray
            Right-hand sides, ``(batch, n_free)``.

        Returns
        -------
        numpy.ndarray
            ``(batch, n_free)``.
        """
        return solve_rows(self.matrices, rhs)

    def transpose(self) -> DenseJacobian:
        """``J^T`` per sample.

        Returns
        -------
        DenseJacobian
            The transposes.
        """
        return DenseJacobian(np.swapaxes(self.matrices, 1, 2))

    def solve_shifted(self, shift: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``(diag(shift) - J)^-1 rhs`` per sample.

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
        m = -self.matrices
        idx = np.arange(m.shape[1])
        m[:, idx, idx] += shift
        return solve_rows(m, rhs)

    def diagonal(self) -> np.ndarray:
        """The diagonal of ``J``.

        Returns
        -------
        numpy.ndarray
            S, ``(batch, n_free)``.
        """
        return np.diagonal(self.matrices, axis1=1, axis2=2)

    def dense(self) -> np.ndarray:
        """``J`` itself.

        Returns
        -------
        numpy.ndarray
            S, ``(batch, n_free, n_free)``.
        """
        return self.matrices
