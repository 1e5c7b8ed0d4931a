"""How close is the gradient a circuit computes to the ideal one (DESIGN.md §1).

:func:`gradcheck` runs every estimator on one batch and compares it with the exact adjoint gradient
of the circuit being simulated (and, when that circuit is not the model, the model's gradient
beside them, DESIGN.md §7);
:func:`beta_sweep` measures the bias against beta (one-sided O(beta), centred O(beta^2)) and fits
the slopes; :func:`asymmetry_sweep` interpolates the backward transconductors from symmetric to the
spec's and shows VF's error growing with asymmetry while AEP's does not.
"""

from __future__ import annotations

import time

import numpy as np

from circuitep import kcl
from circuitep.costs import Cost, SquaredError
from circuitep.elements import registry
from circuitep.elements.aep import Correction
from circuitep.elements.registry import kind as kind_of
from circuitep.engines.base import Engine, is_stable
from circuitep.engines.ngspice_engine import NgspiceEngine
from circuitep.estimators import ESTIMATORS, compare, estimate, reference_engine
from circuitep.sens import finite_difference_gradients, where_differenced
from circuitep.spec import Network


def probe_batch(net: Network, n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A batch to probe gradients with: the spec's sample (if any) first, then random ones.

    Parameters
    ----------
    net : Network
        The circuit; its ``sample`` (inputs, and targets if given) becomes row 0.
    n : int
        Batch size.
    seed : int
        Seed of the random inputs and targets.

    Returns
    -------
    inputs : ndarray, shape (n, n_inputs)
        Uniform in [0, 1] V.
    targets : ndarray, shape (n, n_outputs)
        Uniform in [0, 0.5] V.
    """
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 1, (n, net.n_inputs))
    y = rng.uniform(0, 0.5, (n, net.n_outputs))
    if net.sample is not None:
        u[0] = net.sample.inputs
        if net.sample.targets is not None:
            y[0] = net.sample.targets
    return u, y


def gradcheck(
    net: Network,
    engine: Engine,
    inputs,
    targets,
    *,
    beta: float,
    dyadic_beta: float | None = None,
    estimators=("ep", "vf", "aep", "dyadic"),
    cost: Cost | None = None,
    centered: bool = True,
    model: Network | None = None,
    correction: Correction | None = None,
) -> dict:
    """Compare estimators with the exact (adjoint) gradient on one batch (DESIGN.md §1).

    ``net`` is the circuit that is simulated, and the truth is its own exact gradient (the adjoint
    of ``net`` at the free state ``engine`` finds). When the circuit is not the model (DESIGN.md
    §7), ``model`` is the network the controller holds: its own gradient (what a digital twin
    would compute, at its own free state) is compared with the circuit's truth as ``"model"``,
    and ``correction`` is AEP's correction as the controller realises it (from the model, with its
    elements' errors); then ``"aep_own"`` is AEP with the circuit's own exact correction beside it.

    Parameters
    ----------
    net : Network
        The circuit.
    engine : Engine
        Solves every phase.
    inputs : array_like, shape (batch, n_inputs)
        Primary input voltages in V.
    targets : array_like, shape (batch, n_outputs)
        Targets (V for squared error; probabilities for cross-entropy).
    beta : float
        Nudge strength (S for squared error, A V for cross-entropy).
    dyadic_beta : float, optional
        The dyadic circuit has no beta bias, so it runs at ``dyadic_beta`` (default ``1000 beta``)
        where its output voltage is well above the simulator's tolerance.
    estimators : sequence of str
        Names from :data:`circuitep.estimators.ESTIMATORS` other than ``exact``.
    cost : Cost, optional
        Default :class:`~circuitep.costs.SquaredError`.
    centered : bool
        Centred (two nudges, ``+beta`` and ``-beta``) rather than one-sided estimates.
    model : Network, optional
        The model the controller holds (same structure as ``net``); ``None``: the circuit is its
        own model.
    correction : Correction, optional
        AEP's correction (:class:`circuitep.elements.aep.Correction`); ``None``: the circuit's own.

    Returns
    -------
    dict
        ``{"network", "engine", "beta", "cost", "tolerances", "estimators": {name: {"cosine",
        "rel_error", "sign_agreement", "groups": {...}, "beta"}}, "exact": {group: gradient
        list}, "estimated": {name: {group: gradient list}}}``; JSON values throughout. With a
        model or a correction, ``estimators`` also holds ``model`` and ``aep_own``.

    Raises
    ------
    ValueError
        For an unknown estimator name.
    """
    cost = cost or SquaredError()
    exact = estimate("exact", net, engine, inputs, targets, beta=beta, cost=cost)
    result = {
        "network": net.name,
        "engine": engine.name,
        "beta": beta,
        "cost": exact.cost,
        "tolerances": engine.tolerance_dict,
        "estimators": {},
        "exact": {k: np.ravel(v).tolist() for k, v in exact.grads.items()},
        "estimated": {},
    }
    for name in estimators:
        if name not in ESTIMATORS or name == "exact":
            raise ValueError(f"unknown estimator {name!r}: choose from {ESTIMATORS[1:]}")
    runs = [(name, name, correction if name == "aep" else None) for name in estimators]
    if correction is not None and "aep" in estimators:
        runs.append(("aep_own", "aep", None))
    for label, name, fix in runs:
        b = (dyadic_beta or 1e3 * beta) if name == "dyadic" else beta
        est = estimate(
            name,
            net,
            engine,
            inputs,
            targets,
            beta=b,
            cost=cost,
            centered=centered,
            x0=exact.x0,
            correction=fix,
        )
        result["estimators"][label] = compare(est.grads, exact.grads) | {"beta": b}
        result["estimated"][label] = {k: np.ravel(v).tolist() for k, v in est.grads.items()}
    if model is not None:
        twin = estimate(
            "exact", model, reference_engine(model), inputs, targets, beta=beta, cost=cost
        )
        result["estimators"]["model"] = compare(twin.grads, exact.grads)
        result["estimated"]["model"] = {k: np.ravel(v).tolist() for k, v in twin.grads.items()}
        result["model"] = model.name
    return result


def beta_sweep(
    net: Network,
    engine: Engine,
    inputs,
    targets,
    betas,
    *,
    estimators=("vf", "aep"),
    cost: Cost | None = None,
) -> dict:
    """Relative error against the exact gradient for each beta, one-sided and centred.

    For VF on a non-reciprocal circuit the error tends to VF's bias, not to 0; the fitted slope of
    ``log(error)`` against ``log(beta)`` is meaningful for AEP (and EP on reciprocal circuits):
    about 1 one-sided and 2 centred.

    Parameters
    ----------
    net : Network
        The circuit.
    engine : Engine
        Solves every phase.
    inputs : array_like, shape (batch, n_inputs)
        Primary input voltages in V.
    targets : array_like, shape (batch, n_outputs)
        Targets (V for squared error; probabilities for cross-entropy).
    betas : sequence of float
        Nudge strengths (S for squared error).
    estimators : sequence of str
        Estimator names.
    cost : Cost, optional
        Default squared error.

    Returns
    -------
    dict
        ``{"betas": [...], name: {"one_sided": [...], "centered": [...], "slope_one_sided",
        "slope_centered"}}``, errors in the order of ``betas``.
    """
    exact = estimate("exact", net, engine, inputs, targets, beta=1.0, cost=cost)
    out = {"betas": [float(b) for b in betas]}
    for name in estimators:
        row = {}
        for mode, centered in (("one_sided", False), ("centered", True)):
            row[mode] = [
                compare(
                    estimate(
                        name,
                        net,
                        engine,
                        inputs,
                        targets,
                        beta=b,
                        cost=cost,
                        centered=centered,
                        x0=exact.x0,
                    ).grads,
                    exact.grads,
                )["rel_error"]
                for b in betas
            ]
            row[f"slope_{mode}"] = fitted_slope(betas, row[mode])
        out[name] = row
    return out


def fitted_slope(x, y) -> float:
    """Least-squares slope of ``log(y)`` against ``log(x)``.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Positive values; ``y`` is floored at 1e-300 so an exact 0 does not give ``-inf``.

    Returns
    -------
    float
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.maximum(np.asarray(y, float), 1e-300))
    return float(np.polyfit(lx, ly, 1)[0])


def transconductor_pairs(net: Network) -> list[tuple[str, str]]:
    """Linear transconductor couplings that join the same groups both ways.

    Parameters
    ----------
    net : Network
        The circuit.

    Returns
    -------
    list of (str, str)
        ``(forward, backward)`` coupling names, the alphabetically first of each pair first.
    """
    pairs = []
    for c in net.couplings:
        for d in net.couplings:
            if (
                c.kind == d.kind
                and kind_of(c).LINEAR
                and registry.is_transconductor(c)
                and c.src == d.dst
                and c.dst == d.src
                and c.name < d.name
            ):
                pairs.append((c.name, d.name))
    return pairs


def with_asymmetry(net: Network, alpha: float) -> Network:
    """Scale the antisymmetric part of every transconductor pair by ``alpha``.

    With ``S = (W_bwd + W_fwd^T) / 2`` and ``A = (W_bwd - W_fwd^T) / 2`` the pair becomes
    ``W_bwd = S + alpha A``, ``W_fwd^T = S - alpha A``: 0 is reciprocal, 1 the spec's own circuit,
    and the symmetric part (hence the loop gain) stays the same throughout.

    Parameters
    ----------
    net : Network
        The circuit.
    alpha : float
        Asymmetry factor (dimensionless).

    Returns
    -------
    Network
        A copy with the pairs' weights (S) replaced.

    Raises
    ------
    ValueError
        When ``net`` has no forward/backward transconductor pairs.
    """
    pairs = transconductor_pairs(net)
    if not pairs:
        raise ValueError(
            f"network {net.name!r} has no forward/backward transconductor pairs to make asymmetric"
        )
    params = {}
    for fwd, bwd in pairs:
        wf, wb = net.params()[fwd], net.params()[bwd]
        sym, anti = (wb + wf.T) / 2, (wb - wf.T) / 2
        params[bwd], params[fwd] = sym + alpha * anti, (sym - alpha * anti).T
    return net.with_params(params)


def asymmetry(net: Network) -> float:
    """Asymmetry of the transconductor pairs: ``||W_bwd - W_fwd^T|| / ||W_fwd||`` over all pairs.

    Parameters
    ----------
    net : Network
        The circuit.

    Returns
    -------
    float
        Dimensionless; 0 without pairs (or all-zero forward weights).
    """
    num = den = 0.0
    for fwd, bwd in transconductor_pairs(net):
        wf, wb = net.params()[fwd], net.params()[bwd]
        num += float(np.sum((wb - wf.T) ** 2))
        den += float(np.sum(wf**2))
    return float(np.sqrt(num / den)) if den > 0 else 0.0


def loop_gain(net: Network) -> float:
    """Largest gain around a forward/backward transconductor loop with every clamp off.

    The spectral radius of ``G_a^-1 W_ab G_b^-1 W_ba`` for a pair between groups ``a`` and ``b``,
    ``G`` their leak conductances (the least a node sees, so the largest gain). Above 1 the
    linearised loop amplifies some pattern of voltages all the way round: where the clamps are off
    a state can run away, and the circuit may hold several operating points or no stable one.

    Parameters
    ----------
    net : Network
        The circuit.

    Returns
    -------
    float
        Dimensionless; 0 without pairs; ``inf`` where a node of a loop has no leak (only its clamp
        holds it).
    """
    gains = [0.0]
    couplings = {c.name: c for c in net.couplings}
    for p, q in transconductor_pairs(net):
        wp, wq = net.params()[p], net.params()[q]  # p: from a to b, q: from b to a
        g_a, g_b = net.group(couplings[p].src).leak, net.group(couplings[p].dst).leak
        if (
            not (g_a > 0).all() or not (g_b > 0).all()
        ):  # the gain with only diodes to hold a node is unbounded
            return float("inf")
        first, second = wq / g_a[:, None], wp / g_b[:, None]
        # AB and BA have the same nonzero eigenvalues: take the smaller product
        loop = first @ second if first.shape[0] <= second.shape[0] else second @ first
        gains.append(float(np.abs(np.linalg.eigvals(loop)).max()))
    return max(gains)


def asymmetry_sweep(
    net: Network,
    engine: Engine,
    inputs,
    targets,
    alphas,
    *,
    beta: float,
    estimators=("vf", "aep"),
    cost: Cost | None = None,
) -> dict:
    """Relative error of each estimator as the backward couplings move from symmetric to the spec's.

    Parameters
    ----------
    net : Network
        The circuit.
    engine : Engine
        Solves every phase.
    inputs : array_like, shape (batch, n_inputs)
        Primary input voltages in V.
    targets : array_like, shape (batch, n_outputs)
        Targets (V for squared error; probabilities for cross-entropy).
    alphas : sequence of float
        Asymmetry factors (see :func:`with_asymmetry`).
    beta : float
        Nudge strength (S for squared error).
    estimators : sequence of str
        Estimator names.
    cost : Cost, optional
        Default squared error.

    Returns
    -------
    dict
        ``{"alphas", "asymmetry", "stable", name: [...]}``, one entry per alpha: the measured
        :func:`asymmetry`, whether every sample's free state is stable (:func:`is_stable`), and each
        estimator's relative error.
    """
    out = {
        "alphas": [float(a) for a in alphas],
        "asymmetry": [],
        "stable": [],
        **{name: [] for name in estimators},
    }
    for a in alphas:
        n = with_asymmetry(net, a)
        out["asymmetry"].append(asymmetry(n))
        exact = estimate("exact", n, engine, inputs, targets, beta=beta, cost=cost)
        _, jac = kcl.residual(n, n.expand_inputs(np.asarray(inputs, float)), exact.x0)
        out["stable"].append(bool(is_stable(n, jac).all()))
        for name in estimators:
            est = estimate(name, n, engine, inputs, targets, beta=beta, cost=cost, x0=exact.x0)
            out[name].append(compare(est.grads, exact.grads)["rel_error"])
    return out


def circuit_gradcheck(
    net: Network,
    engine,
    inputs,
    targets,
    *,
    beta: float,
    cost: Cost | None = None,
    elements: dict | None = None,
) -> dict:
    """Gradients of a circuit the numpy model cannot describe, against its own truth (DESIGN.md §7).

    The engine (:class:`circuitep.engines.measured.CircuitEngine`: transistor OTAs, Verilog-A
    devices) computes AEP and VF from the circuit; the truth is ngspice's central finite
    differences of that circuit's cost (:func:`circuitep.sens.finite_difference_gradients`, over
    ``elements`` only where given); ``model`` is the numpy model's exact gradient with ideal
    devices (what a digital twin computes), solved by ngspice on the ideal literal netlist.

    Parameters
    ----------
    net : Network
        The model; the circuit is the engine's realisation of it.
    engine : CircuitEngine
        The device engine.
    inputs : numpy.ndarray
        Primary input voltages, V, ``(batch, n_inputs)``.
    targets : numpy.ndarray
        Targets, ``(batch, n_outputs)``.
    beta : float
        Nudge strength (S for squared error).
    cost : Cost
        The cost; ``None``: squared error.
    elements : dict of str to numpy.ndarray, optional
        Boolean masks of the parameters' elements to difference (a sample of a large circuit).

    Returns
    -------
    dict
        ``estimators`` (``aep``, ``vf``, ``model``: :func:`circuitep.estimators.compare` against
        the truth, over the differenced elements), ``truth`` (the finite differences, NaN where
        not differenced), ``differenced`` (how many), ``seconds`` (wall time of the truth and of
        each estimate), ``tolerances`` and ``engine``.
    """
    cost = cost or SquaredError()
    start = time.perf_counter()
    truth = finite_difference_gradients(net, engine, inputs, targets, cost=cost, elements=elements)
    seconds = {"truth": time.perf_counter() - start}
    ideal = NgspiceEngine(form="literal", tolerances=engine.tolerances)
    runs = {"aep": ("aep", engine), "vf": ("vf", engine), "model": ("exact", ideal)}
    out = {}
    for label, (name, eng) in runs.items():
        start = time.perf_counter()
        est = estimate(name, net, eng, inputs, targets, beta=beta, cost=cost)
        seconds[label] = time.perf_counter() - start
        out[label] = compare(*where_differenced(est.grads, truth))
    return {
        "engine": engine.name,
        "tolerances": engine.tolerance_dict,
        "estimators": out,
        "truth": {k: np.asarray(v).tolist() for k, v in truth.items()},
        "differenced": int(sum(np.isfinite(np.asarray(v)).sum() for v in truth.values())),
        "seconds": seconds,
    }
