"""Reference engine: Newton's method on the KCL equations, batched over samples.

Same device models as the netlists ngspice reads (:mod:`circuitep.devices`), so it verifies every
number ngspice produces and gives the exact adjoint. Holds no state between calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitep import kcl
from circuitep.engines.base import (ConvergenceError, OperatingPoint, Phase, backtrack, capacitance, check_batch,
                                   is_stable, settle)
from circuitep.spec import Network


@dataclass(frozen=True)
class NumpyEngine:
    """Batched damped Newton: ``x <- x - t J^-1 F`` with backtracking on ``|F|^2``.

    A sample has converged when its Newton step is below ``vtol`` (V) or ``|F|`` below ``itol`` (A).
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
        if start.shape != (u.shape[0], net.n_free) or not np.isfinite(start).all():
            raise ValueError(f"x_init has shape {start.shape}, expected finite ({u.shape[0]}, {net.n_free})")
        if phase.kind == "dyadic":
            x, it, ok, jac = self._newton(net, start, lambda rows, x, jac: kcl.residual(net, u[rows], x, jacobian=jac),
                                          capacitance(net))
            g = np.zeros_like(x)
            g[:, out] = phase.cost.grad(x[:, out], y)
            d = phase.beta * solve_rows(np.swapaxes(jac, 1, 2), g)
            ok &= np.isfinite(d).all(axis=1)  # a singular Jacobian at the free state has no adjoint
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

        x, it, ok, jac = self._newton(net, start, system, capacitance(net))
        return self._result(net, phase, x, ok, it, jac)

    def _newton(self, net, x, system, cap):
        """Damped Newton over the rows not yet converged; rows where it stalls (a singular Jacobian
        near a fold, as in circuits with strong feedback) continue by pseudo-transient continuation.
        Returns ``x, iterations, converged, J``."""
        start = x
        x, it, done, jac = self._damped_newton(x, system)
        retry = ~done
        if self.check_stability:  # Newton may land on an equilibrium the circuit cannot settle into
            retry |= done & ~is_stable(net, jac)
        if retry.any():
            rows = np.flatnonzero(retry)
            from_ = np.where(done[rows, None], start[rows], x[rows])
            jr = np.empty((rows.size,) + jac.shape[1:])

            def evaluate(r, xx):
                f, j = system(rows[r], xx, True)
                jr[r] = j
                return f, lambda shift, sel: solve_rows(_shifted(-j[sel], shift), f[sel]), np.diagonal(j, axis1=1, axis2=2)

            xr, itr, okr = settle(from_, evaluate, cap, vtol=self.vtol, itol=self.itol)
            take = rows[okr]  # where the transient runs away, an unstable Newton solution is kept (and reported)
            x[take], it[take], done[take], jac[take] = xr[okr], it[take] + itr[okr], True, jr[okr]
        return x, it, done, jac

    def _damped_newton(self, x, system):
        """Damped Newton over the rows not yet converged; returns ``x, iterations, converged, J``."""
        batch = x.shape[0]
        x = x.copy()
        it = np.zeros(batch, int)
        done = np.zeros(batch, bool)
        rows = np.arange(batch)
        f, jac = system(rows, x, True)
        stalled = np.zeros(batch, bool)
        for _ in range(self.max_iter):
            rows = np.flatnonzero(~done & ~stalled)
            if rows.size == 0:
                break
            fa, ja = f[rows], jac[rows]
            step = -solve_rows(ja, fa)
            singular = ~np.isfinite(step).all(axis=1)
            if singular.any():  # left to pseudo-transient continuation, whose matrix C/dt - J is regular
                stalled[rows[singular]] = True
                keep = ~singular
                rows, fa, ja, step = rows[keep], fa[keep], ja[keep], step[keep]
                if rows.size == 0:
                    break
            merit = (fa**2).sum(1)
            t, gave_up = backtrack(lambda r, points: system(rows[r], points, False)[0], x[rows], step, merit,
                                   system(rows, x[rows] + step, False)[0])
            t[gave_up] /= 2  # no decrease even at t = 2^-59: take the tiny step and go on
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
                f"numpy engine: network {net.name!r}, phase {phase.label}: neither Newton nor pseudo-transient "
                f"continuation converged for sample(s) {bad[:10].tolist()}; check for "
                f"negative conductances or a circuit with no DC path to ground", samples=bad)
        stable = is_stable(net, jac) if self.check_stability else None
        return OperatingPoint(tuple(net.free_nodes), x, ok, it, self.name, phase, self.tolerances,
                              adjoint=adjoint, stable=stable)


def solve_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[k]^-1 b[k]`` for a batch; rows whose matrix is singular come back as NaN."""
    try:
        return np.linalg.solve(a, b[..., None])[..., 0]
    except np.linalg.LinAlgError:
        out = np.full(b.shape, np.nan)
        for k in range(len(a)):
            try:
                out[k] = np.linalg.solve(a[k], b[k])
            except np.linalg.LinAlgError:
                pass
        return out


def _shifted(m: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``m + diag(shift)`` per sample (``m`` is not modified)."""
    out = m.copy()
    idx = np.arange(m.shape[1])
    out[:, idx, idx] += shift
    return out
