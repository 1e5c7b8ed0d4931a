"""Cost functions of the output voltages, with the derivatives the nudge and the solvers need.

A cost ``C(x_out, y)`` is averaged over
the batch. The nudged phase injects the current ``-beta dC/dx`` into each output node
(DESIGN.md §1), so ``beta`` turns the cost's slope into a current: for squared error (``C`` in
V^2, slope in V) ``beta`` is a conductance in S, the transconductance of the nudge toward the
target; for cross-entropy (slope in 1/V) it is in A V. All functions take ``x_out`` and ``y`` of shape ``(batch, n_out)``.
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
        """Any finite target voltages will do (the caller checks finiteness and shape)."""

    def value(self, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-sample cost, ``(batch,)``."""
        return 0.5 * ((x_out - y) ** 2).sum(axis=1)

    def grad(self, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``dC/dx_out``, ``(batch, n_out)``."""
        return x_out - y

    def hessian(self, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``d^2C/dx_out^2``, ``(batch, n_out, n_out)``."""
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
            raise ValueError(f"cross-entropy temperature tau = {self.tau!r} must be a positive "
                             "number of volts")
        object.__setattr__(self, "tau", plain_float("tau", self.tau))  # what the netlist holds

    def check_targets(self, y: np.ndarray) -> None:
        """Targets are (unnormalised) probabilities: every row >= 0 with a positive sum."""
        y = np.atleast_2d(y)
        if (y < 0).any() or (y.sum(axis=1) <= 0).any():
            raise ValueError("cross-entropy targets are probabilities: every row must be >= 0 with a positive sum")

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
        z = x_out / self.tau
        zmax = z.max(axis=1, keepdims=True)
        logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=1, keepdims=True))
        return -(self._prob(y) * logp).sum(axis=1)

    def grad(self, x_out, y):
        return (self._p(x_out) - self._prob(y)) / self.tau

    def hessian(self, x_out, y):
        p = self._p(x_out)
        return (np.einsum("bi,ij->bij", p, np.eye(p.shape[1])) - p[:, :, None] * p[:, None, :]) / self.tau**2


Cost = SquaredError | CrossEntropy


def make_cost(name: str, tau: float = 0.1) -> Cost:
    """Cost by name: ``mse`` or ``xent``."""
    if name == "mse":
        return SquaredError()
    if name == "xent":
        return CrossEntropy(tau)
    raise ValueError(f"unknown cost {name!r}: choose 'mse' or 'xent'")
