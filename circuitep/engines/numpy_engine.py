"""Reference engine: Newton's method on the KCL equations, batched over samples.

Same device models as the netlists ngspice reads (:mod:`circuitep.devices`), so it verifies every
number ngspice produces and gives the exact adjoint. Holds no state between calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitep import kcl
from circuitep.engines.base import ConvergenceError, OperatingPoint, Phase, check_batch, is_stable
from circuitep.spec import Network


@dataclass(frozen=True)
class NumpyEngine:
    """Batched damped Newton: ``x <- x - t J^-1 F`` with backtracking on ``|F|^2``.

    Converged when every Newton step is below ``vtol`` (V) and ``|F|`` below ``itol`` (A).
    ``check_stability`` computes the eigenvalues of ``C^-1 J`` at the solution.
    """

    vtol: float = 1e-12
    itol: float = 1e-15
    max_iter: int = 200
    check_stability: bool = True
    name: str = "numpy"

    @property
    def tolerances(self) -> dict:
        return {"vtol": self.vtol, "itol": self.itol, "max_iter": self.max_iter}

    def solve(self, net: Network, phase: Phase, inputs, targets=None, x0=None, x_init=None) -> OperatingPoint:
        """Solve one phase; arrays as in :class:`circuitep.engines.base.Engine`."""
        u, y, x0 = check_batch(net, phase, inputs, targets, x0)
        out = net.output_index()
        start = np.zeros((u.shape[0], net.n_free)) if x_init is None else np.array(x_init, dtype=float)
        if phase.kind == "dyadic":
            x, it, ok, jac = self._newton(start, lambda rows, x, jac: kcl.residual(net, u[rows], x, jacobian=jac))
            g = np.zeros_like(x)
            g[:, out] = phase.cost.grad(x[:, out], y)
            d = phase.beta * np.linalg.solve(np.swapaxes(jac, 1, 2), g[..., None])[..., 0]
            return self._result(net, phase, x, ok, it, jac, adjoint=d)

        k = kcl.correction_matrix(net, u, x0) if phase.aep else None

        def system(rows, x, jacobian):
            f, jac = kcl.residual(net, u[rows], x, jacobian=jacobian)
            if phase.kind == "nudged":
                f[:, out] -= phase.beta * phase.cost.grad(x[:, out], y[rows])
                if jacobian:
                    jac[:, out[:, None], out[None, :]] -= phase.beta * phase.cost.hessian(x[:, out], y[rows])
            if k is not None:
                f -= np.einsum("bij,bj->bi", k[rows], x - x0[rows])
                if jacobian:
                    jac -= k[rows]
            return f, jac

        x, it, ok, jac = self._newton(start, system)
        return self._result(net, phase, x, ok, it, jac)

    def _newton(self, x, system):
        """Damped Newton over the rows not yet converged; returns ``x, iterations, converged, J``."""
        batch = x.shape[0]
        x = x.copy()
        it = np.zeros(batch, int)
        done = np.zeros(batch, bool)
        rows = np.arange(batch)
        f, jac = system(rows, x, True)
        for _ in range(self.max_iter):
            rows = np.flatnonzero(~done)
            if rows.size == 0:
                break
            fa, ja = f[rows], jac[rows]
            step = -np.linalg.solve(ja, fa[..., None])[..., 0]
            merit = (fa**2).sum(1)
            t = np.ones(rows.size)
            for _ in range(60):  # backtracking: accept a step that does not increase |F|^2
                ft, _ = system(rows, x[rows] + t[:, None] * step, False)
                worse = (ft**2).sum(1) > merit * (1 - 1e-4 * t)
                if not worse.any():
                    break
                t = np.where(worse, t / 2, t)
            x[rows] += t[:, None] * step
            it[rows] += 1
            f[rows], jac[rows] = system(rows, x[rows], True)
            small = (np.abs(step).max(1) <= self.vtol) | (np.abs(f[rows]).max(1) <= self.itol)
            done[rows[small]] = True
        return x, it, done, jac

    def _result(self, net, phase, x, ok, it, jac, adjoint=None):
        if not ok.all():
            bad = np.flatnonzero(~ok)
            raise ConvergenceError(
                f"numpy engine: network {net.name!r}, phase {phase.label}: Newton did not converge for "
                f"sample(s) {bad[:10].tolist()} within {self.max_iter} iterations; check for "
                f"negative conductances or a circuit with no DC path to ground")
        stable = is_stable(net, jac) if self.check_stability else None
        return OperatingPoint(tuple(net.free_nodes), x, ok, it, self.name, phase, self.tolerances,
                              adjoint=adjoint, stable=stable)
