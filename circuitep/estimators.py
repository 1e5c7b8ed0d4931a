"""Gradient estimators: what a circuit computes from its stationary states (DESIGN.md §1).

Every estimator takes a network, an engine, a batch of inputs ``(batch, n_inputs)`` and targets
``(batch, n_outputs)`` and returns an :class:`Estimate`: the free state ``x0``, the adjoint
estimate ``s`` (batch, n_free) and the gradient of the batch-mean cost for every parameter of
:meth:`Network.params`, obtained through the local rules of :func:`circuitep.kcl.param_gradients`.

- ``exact``: ``lambda = J^-T dC/dx`` at the free state (numpy linear algebra on the engine's state).
- ``vf``: the nudged phases only, ``s = (x^+b - x^-b) / 2b`` (or one-sided), used as if it were
  lambda.
- ``ep``: the same phases with EP's symmetric rule for transconductors, ``-(s_i v_j + s_j v_i)``
  (the derivative of ``v_i v_j`` along the nudge, as for a symmetric coupling); resistors, biases
  and leaks use the same rules as every estimator. On a reciprocal circuit EP = VF = AEP = exact.
- ``aep``: nudged phases plus the correction ``-(J - J^T)(x - x0)``; centred by default (O(b^2)
  bias).
- ``dyadic``: the doubled (adjoint) circuit in one operating point, ``s = d / b`` (no b bias).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitep import kcl
from circuitep.costs import Cost, SquaredError
from circuitep.elements.aep import Correction
from circuitep.elements.registry import kind as kind_of
from circuitep.engines.base import Engine, OperatingPoint, Phase, check_batch
from circuitep.engines.layered import LayeredEngine, chain_structure
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.spec import Network

ESTIMATORS = ("exact", "ep", "vf", "aep", "dyadic")


@dataclass(frozen=True)
class Estimate:
    """Result of one estimator on one batch."""

    name: str
    x0: np.ndarray
    s: np.ndarray
    grads: dict[str, np.ndarray]
    cost: float
    beta: float
    centered: bool


def free_state(net: Network, engine: Engine, inputs: np.ndarray) -> OperatingPoint:
    """The free phase's operating point of ``inputs`` on ``engine``.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    engine : Engine
        The engine that solves the phases (:mod:`circuitep.engines`).
    inputs : numpy.ndarray
        Primary input voltages, V, ``(batch, n_inputs)``.

    Returns
    -------
    OperatingPoint
        Its operating point.
    """
    return engine.solve(net, Phase(), inputs)


def reference_engine(net: Network) -> Engine:
    """The numpy solver for ``net``.

    The layered (block-elimination) engine when the free groups form a chain, else the dense one.
    Both solve the dyadic phase exactly (no beta bias).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).

    Returns
    -------
    Engine
        A numpy engine.
    """
    try:
        chain_structure(net)
    except ValueError:
        return NumpyEngine(check_stability=False)
    return LayeredEngine()


def exact_adjoint(
    net: Network, inputs: np.ndarray, targets: np.ndarray, x0: np.ndarray, cost: Cost | None = None
) -> np.ndarray:
    """``lambda = J^-T dC/dx`` at the free state ``x0`` (batch, n_free), by numpy linear algebra.

    Solved as the dyadic phase of :func:`reference_engine` started at ``x0`` (its Newton on the free
    half stops at once when ``x0`` is a solution), whatever engine produced ``x0``.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    inputs : numpy.ndarray
        Primary input voltages, V, ``(batch, n_inputs)``.
    targets : numpy.ndarray
        Targets, ``(batch, n_outputs)`` (V for squared error); ``None`` for the free phase.
    x0 : numpy.ndarray
        The free state, V, ``(batch, n_free)``.
    cost : Cost
        The cost (:mod:`circuitep.costs`); ``None``: squared error.

    Returns
    -------
    numpy.ndarray
        ``lambda``, ``(batch, n_free)``.
    """
    cost = cost or SquaredError()
    solver = reference_engine(net)
    return solver.solve(
        net, Phase("dyadic", beta=1.0, cost=cost), inputs, targets, x_init=x0
    ).adjoint


#: Largest KCL residual (A per S of the network's conductance scale, i.e. volts) a passed free
#: state may have: far above any engine's tolerance (ngspice at reltol 1e-10: ~1e-14 A at 1e-4 S).
X0_RESIDUAL = 1e-6


def estimate(
    name: str,
    net: Network,
    engine: Engine,
    inputs,
    targets,
    *,
    beta: float,
    cost: Cost | None = None,
    centered: bool = True,
    x0: np.ndarray | None = None,
    correction: Correction | None = None,
) -> Estimate:
    """Run estimator ``name`` (one of :data:`ESTIMATORS`) on a batch.

    ``beta`` is the nudge strength (S for squared error). ``x0`` may pass a free state already
    computed by the same engine (it is an explicit warm start, never remembered between calls).
    ``net`` is the circuit that is simulated; ``correction`` says where AEP's correction comes from
    when it is not that circuit's own (the model the controller holds, with its elements' errors:
    DESIGN.md §7).

    Parameters
    ----------
    name : str
        One of :data:`ESTIMATORS`.
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    engine : Engine
        The engine that solves the phases (:mod:`circuitep.engines`).
    inputs : numpy.ndarray
        Primary input voltages, V, ``(batch, n_inputs)``.
    targets : numpy.ndarray
        Targets, ``(batch, n_outputs)`` (V for squared error); ``None`` for the free phase.
    beta : float
        Nudge strength (S for squared error).
    cost : Cost
        The cost (:mod:`circuitep.costs`); ``None``: squared error.
    centered : bool
        Centred (two nudged phases) or one-sided.
    x0 : numpy.ndarray
        The free state, V, ``(batch, n_free)``; ``None``: solved here.
    correction : Correction
        AEP only: the correction's source and errors (:class:`circuitep.elements.aep.Correction`);
        ``None``: the circuit's own, exact.

    Returns
    -------
    Estimate
        ``s`` and the gradients.
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}: choose one of {ESTIMATORS}")
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta = {beta!r} must be a positive finite number")
    cost = cost or SquaredError()
    measured = getattr(engine, "estimate_from_circuit", None)
    if measured is not None:  # a circuit the numpy model cannot describe: all from the circuit
        x0, s, grads, value = measured(
            name,
            net,
            inputs,
            targets,
            beta=beta,
            cost=cost,
            centered=centered,
            correction=correction,
        )
        return Estimate(name, x0, s, grads, value, float(beta), centered)
    u, targets, _ = check_batch(net, Phase("dyadic", beta=1.0), inputs, targets, None)
    inputs = np.asarray(inputs, dtype=float)
    if x0 is None:
        x0 = free_state(net, engine, inputs).x
    else:
        _, _, x0 = check_batch(net, Phase(), inputs, None, x0)
        f, _ = kcl.residual(net, u, x0, jacobian=False)
        tol = X0_RESIDUAL * net.conductance_scale()
        if np.abs(f).max() > tol:  # the estimators' formulas hold at an operating point only
            raise ValueError(
                "x0 is not the free operating point of these inputs: KCL is off by up to "
                f"{np.abs(f).max():.1e} A (at most {tol:.1e} A allowed)"
            )
    out = net.output_index()
    if name == "exact":
        s = exact_adjoint(net, inputs, targets, x0, cost)
    elif name == "dyadic":
        op = engine.solve(
            net, Phase("dyadic", beta=beta, cost=cost), inputs, targets, x0=x0, x_init=x0
        )
        s = op.adjoint / beta
    else:
        kind = "aep" if name == "aep" else "nudged"  # EP and VF: the plain nudge
        fix = correction if name == "aep" else None
        plus = engine.solve(
            net,
            Phase(kind, beta=beta, cost=cost, correction=fix),
            inputs,
            targets,
            x0=x0,
            x_init=x0,
        ).x
        if centered:
            minus = engine.solve(
                net,
                Phase(kind, beta=-beta, cost=cost, correction=fix),
                inputs,
                targets,
                x0=x0,
                x_init=x0,
            ).x
            s = (plus - minus) / (2 * beta)
        else:
            s = (plus - x0) / beta
    grads = kcl.param_gradients(net, u, x0, s)
    if name == "ep":
        grads.update(_ep_transconductor_rule(net, u, x0, s))
    value = float(cost.value(x0[:, out], targets).mean())
    return Estimate(name, x0, s, grads, value, float(beta), centered)


def _ep_transconductor_rule(
    net: Network, u: np.ndarray, x: np.ndarray, s: np.ndarray
) -> dict[str, np.ndarray]:
    """EP's symmetric rule ``-(s_i v_j + s_j v_i)`` for linear transconductors (batch mean)."""
    flat = net.slices()
    v = np.concatenate([u, x], axis=1)
    sv = np.concatenate([np.zeros_like(u), s], axis=1)
    out = {}
    for c in net.couplings:
        vd, sd, vs, ss = (
            v[:, flat[c.dst]],
            sv[:, flat[c.dst]],
            v[:, flat[c.src]],
            sv[:, flat[c.src]],
        )
        g = kind_of(c).symmetric_rule(c, vd, vs, sd, ss)
        if g is not None:
            out[c.name] = np.where(c.mask, g / x.shape[0], 0.0)
    return out


def flatten(grads: dict[str, np.ndarray]) -> np.ndarray:
    """Every gradient array, flattened and concatenated in the dict's order.

    Parameters
    ----------
    grads : dict of str to numpy.ndarray
        Gradients by parameter name.

    Returns
    -------
    numpy.ndarray
        One vector.
    """
    return np.concatenate([np.ravel(g) for g in grads.values()])


def compare(estimated: dict[str, np.ndarray], exact: dict[str, np.ndarray]) -> dict:
    """Cosine, relative error and sign agreement with the exact gradient.

    Cosine similarity, relative error and sign agreement against the exact gradient, overall and per
    parameter group: ``{"cosine", "rel_error", "sign_agreement", "groups": {name: {...}}}``.

    Parameters
    ----------
    estimated : dict of str to numpy.ndarray
        Estimated gradients.
    exact : dict of str to numpy.ndarray
        Exact gradients, same keys.

    Returns
    -------
    dict
        The metrics.
    """

    def metrics(a, b):
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else (1.0 if na == nb == 0 else 0.0)
        rel = float(np.linalg.norm(a - b) / nb) if nb > 0 else float(np.linalg.norm(a - b))
        nz = b != 0
        sign = float(np.mean(np.sign(a[nz]) == np.sign(b[nz]))) if nz.any() else 1.0
        return {"cosine": cos, "rel_error": rel, "sign_agreement": sign}

    result = metrics(flatten(estimated), flatten(exact))
    result["groups"] = {k: metrics(np.ravel(estimated[k]), np.ravel(exact[k])) for k in exact}
    return result
