"""Cost functions of the output voltages, with the derivatives the nudge and the solvers need.

A cost ``C(x_out, y)`` is averaged over
the batch. The nudged phase injects the current ``-beta dC/dx`` into each output node
(DESIGN.md §1), so ``beta`` turns the cost's slope into a current: for squared error (``C`` in
V^2, slope in V) ``beta`` is a conductance in S, the transconductance of the nudge toward the
target; for cross-entropy (slope in 1/V) it is in A V. All functions take ``x_out`` and ``y`` of
shape ``(batch, n_out)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitep.checks import is_number, plain_float


@dataclass(frozen=True)
class SquaredError:
    """``C = 1/2 sum_o (x_o - y_o)^2``; the nudge is a transconductance beta toward the target."""

    name: str = "mse"

    def check_targets(self, y: np.ndarray) -> None:
        """Check target voltages for this cost: any finite target voltages will do.

        Parameters
        ----------
        y : ndarray, shape (batch, n_out)
            Target voltages in V (the caller checks finiteness and shape).
        """

    def value(self, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-sample cost ``C = 1/2 sum_o (x_o - y_o)^2``.

        Parameters
        ----------
        x_out : ndarray, shape (batch, n_out)
            Output node voltages in V.
        y : ndarray, shape (batch, n_out)
            Target voltages in V.

        Returns
        -------
        ndarray, shape (batch,)
            The cost in V^2.
        """
        return 0.5 * ((x_out - y) ** 2).sum(axis=1)

    def grad(self, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The slope ``dC/dx_out = x_out - y``.

        Parameters
        ----------
        x_out : ndarray, shape (batch, n_out)
            Output node voltages in V.
        y : ndarray, shape (batch, n_out)
            Target voltages in V.

        Returns
        -------
        ndarray, shape (batch, n_out)
            In V; times beta (S) it is the nudge current (A) drawn from each output.
        """
        return x_out - y

    def hessian(self, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The curvature ``d^2C/dx_out^2``: the identity for every sample.

        Parameters
        ----------
        x_out : ndarray, shape (batch, n_out)
            Output node voltages in V.
        y : ndarray, shape (batch, n_out)
            Target voltages in V (unused).

        Returns
        -------
        ndarray, shape (batch, n_out, n_out)
            Dimensionless (a read-only broadcast view).
        """
        return np.broadcast_to(np.eye(x_out.shape[1]), (x_out.shape[0],) + (x_out.shape[1],) * 2)


@dataclass(frozen=True)
class CrossEntropy:
    """Softmax cross-entropy of the output voltages at temperature ``tau`` (V).

    ``p = softmax(x_out / tau)``, ``C = -sum_o y_o log p_o`` with ``y`` a probability vector
    (one-hot targets are rescaled to sum to 1); ``dC/dx = (p - y) / tau``. In ngspice the nudge
    is a behavioural current source per output evaluating the softmax.
    """

    tau: float = 0.1
    name: str = "xent"

    def __post_init__(self):
        if not is_number(self.tau) or not 0 < plain_float("tau", self.tau) < np.inf:  # not True
            raise ValueError(
                f"cross-entropy temperature tau = {self.tau!r} must be a positive number of volts"
            )
        object.__setattr__(self, "tau", plain_float("tau", self.tau))  # what the netlist holds

    def check_targets(self, y: np.ndarray) -> None:
        """Check targets for this cost: they are (unnormalised) probabilities.

        Parameters
        ----------
        y : ndarray, shape (batch, n_out) or (n_out,)
            Targets; one-hot voltages are fine, rows are rescaled to sum to 1.

        Raises
        ------
        ValueError
            When an entry is negative or a row does not have a positive sum.
        """
        y = np.atleast_2d(y)
        if (y < 0).any() or (y.sum(axis=1) <= 0).any():
            raise ValueError(
                "cross-entropy targets are probabilities: every row must be >= 0 with a positive "
                "sum"
            )

    def _p(self, x_out):
        z = x_out / self.tau
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @staticmethod
    def _prob(y):
        y = np.asarray(y, dtype=float)
        total = y.sum(axis=1, keepdims=True)
        return y / np.where(total > 0, total, 1.0)

    def value(self, x_out, y):
        """Per-sample cost ``C = -sum_o y_o log p_o`` with ``p = softmax(x_out / tau)``.

        Parameters
        ----------
        x_out : ndarray, shape (batch, n_out)
            Output node voltages in V.
        y : ndarray, shape (batch, n_out)
            Targets; each row is rescaled to sum to 1.

        Returns
        -------
        ndarray, shape (batch,)
            The cost in nats (dimensionless), computed with a stable log-sum-exp.
        """
        z = x_out / self.tau
        zmax = z.max(axis=1, keepdims=True)
        logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
        return -(self._prob(y) * logp).sum(axis=1)

    def grad(self, x_out, y):
        """The slope ``dC/dx_out = (p - y) / tau``.

        Parameters
        ----------
        x_out : ndarray, shape (batch, n_out)
            Output node voltages in V.
        y : ndarray, shape (batch, n_out)
            Targets; each row is rescaled to sum to 1.

        Returns
        -------
        ndarray, shape (batch, n_out)
            In 1/V; times beta (A V) it is the nudge current (A) drawn from each output.
        """
        return (self._p(x_out) - self._prob(y)) / self.tau

    def hessian(self, x_out, y):
        """The curvature ``d^2C/dx_out^2 = (diag(p) - p p^T) / tau^2``.

        Parameters
        ----------
        x_out : ndarray, shape (batch, n_out)
            Output node voltages in V.
        y : ndarray, shape (batch, n_out)
            Targets (unused: the curvature does not depend on them).

        Returns
        -------
        ndarray, shape (batch, n_out, n_out)
            In 1/V^2.
        """
        p = self._p(x_out)
        return (
            np.einsum("bi,ij->bij", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :]
        ) / self.tau**2


Cost = SquaredError | CrossEntropy


def make_cost(name: str, tau: float = 0.1) -> Cost:
    """A cost by name.

    Parameters
    ----------
    name : {"mse", "xent"}
        Squared error (:class:`SquaredError`) or softmax cross-entropy (:class:`CrossEntropy`).
    tau : float
        Softmax temperature in V, for ``xent`` only.

    Returns
    -------
    SquaredError or CrossEntropy

    Raises
    ------
    ValueError
        For another name, or (``xent``) a temperature that is not a positive number.
    """
    if name == "mse":
        return SquaredError()
    if name == "xent":
        return CrossEntropy(tau)
    raise ValueError(f"unknown cost {name!r}: choose 'mse' or 'xent'")
