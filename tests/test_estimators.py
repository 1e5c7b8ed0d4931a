"""Gradient estimators against the exact adjoint, and the adjoint against finite differences
(STYLE.md item 10: triangulate; DESIGN.md section 1).

1. The exact adjoint gradient against central finite differences of the batch-mean cost, re-solving
   the free phase with the numpy engine for perturbed parameters.
2. numpy engine at ``beta = 1e-3 x`` the median leak (1e-7 S here): AEP (centred) and Dyadic EP
   against exact; EP = VF = AEP = exact on reciprocal circuits; VF cannot train the hidden layer of
   a feedforward circuit while AEP can.
3. The same on ngspice (folded and literal netlists), marked ``ngspice``.
4. Bias laws: relative error against beta has slope 1 one-sided and 2 centred (AEP; EP on a
   reciprocal circuit), on networks whose diodes conduct.
5. One contract test over every estimator and engine: keys, shapes, finiteness, masks, free state.
6. Bad input is refused with a ``ValueError`` that names what is wrong.

Every tolerance is stated where it is used, with the measured value it guards. Failures print both
sides (estimate and exact, or finite difference and adjoint) per parameter group.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from circuitep import builders, kcl
from circuitep.costs import CrossEntropy, SquaredError
from circuitep.engines.base import Phase, is_stable
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.estimators import ESTIMATORS, Estimate, compare, estimate
from circuitep.gradcheck import beta_sweep, loop_gain, probe_batch
from circuitep.spec import Network
from circuitep.specio import load_spec

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"
REFERENCE = ("feedforward", "reciprocal", "layered")
KINDS = ("reciprocal", "nonreciprocal", "feedforward")
NUMPY = NumpyEngine()
LAYERED = LayeredEngine()
BATCH = 8
#: 1e-3 x the median leak of every network below (all leaks are 1e-4 S): the CLI's default beta.
BETA = 1e-7  # S
#: Dyadic EP has no beta bias; 1e-4 S puts its adjoint voltages d = beta lambda well above any
#: solver tolerance.
DYADIC_BETA = 1e-4  # S


# ---------------------------------------------------------------------------------------- networks


@functools.cache
def reference(name: str) -> Network:
    return load_spec(NETLISTS / f"{name}.toml")


@functools.cache
def random_net(kind: str, seed: int = 0) -> Network:
    return builders.random_network(kind, seed=seed)


@functools.cache
def biased_reciprocal(seed: int = 0) -> Network:
    """A random resistive (reciprocal) network whose bias currents (3e-4 A x N(0, 1), three leaks'
    worth) push hidden and output nodes past the clamps, so that its diodes conduct. The plain
    random reciprocal networks sit at |v| < 0.16 V, where the diodes carry < 1e-12 A."""
    net = builders.random_network("reciprocal", seed=seed)
    rng = np.random.default_rng(500 + seed)
    return net.with_params(
        {f"{g.name}.bias": 3e-4 * rng.standard_normal(g.size) for g in net.free_groups}
    )


def network(key: str) -> Network:
    """``spec:<name>``, ``random:<kind>:<seed>`` or ``biased:<seed>``."""
    what, *rest = key.split(":")
    if what == "spec":
        return reference(rest[0])
    if what == "random":
        return random_net(rest[0], int(rest[1]))
    if what == "biased":
        return biased_reciprocal(int(rest[0]))
    raise ValueError(f"bad network key {key!r}")


SPECS = [f"spec:{n}" for n in REFERENCE]
RANDOM = [f"random:{k}:{s}" for k in KINDS for s in (0, 1)]


def without_diodes(net: Network) -> Network:
    """The same network with every diode clamp removed."""
    groups = tuple(dataclasses.replace(g, clamp=None) if g.free else g for g in net.groups)
    return dataclasses.replace(net, groups=groups)


def masked_graph_network() -> Network:
    """From a networkx graph, so that every coupling block has missing (masked) elements: inputs to
    hidden nodes by resistors and transconductors, a hidden-hidden resistor and transconductor
    (recurrent, non-reciprocal), a saturating feedback from the outputs, diode clamps."""
    g = nx.DiGraph()
    for k in range(3):
        g.add_node(f"u{k}", role="input")
    for k in range(3):
        g.add_node(f"h{k}", role="hidden", clamp=(-0.45, 0.55), bias=(k - 1) * 1e-5)
    for k in range(2):
        g.add_node(f"o{k}", role="output", clamp=(-0.45, 0.55), leak=1.5e-4)
    g.add_edge("u0", "h0", kind="resistor", weight=1e-4)
    g.add_edge("u1", "h1", kind="resistor", weight=8e-5)
    g.add_edge("u2", "h2", kind="vccs", weight=-1.2e-4)
    g.add_edge("u0", "h2", kind="vccs", weight=9e-5)
    g.add_edge("h0", "h1", kind="resistor", weight=5e-5)
    g.add_edge("h1", "h0", kind="vccs", weight=6e-5)
    g.add_edge("h0", "o0", kind="vccs", weight=1.5e-4)
    g.add_edge("h1", "o0", kind="vccs", weight=-7e-5)
    g.add_edge("h2", "o1", kind="vccs", weight=1.1e-4)
    g.add_edge("o1", "h1", kind="tanh", weight=8e-5)
    g.add_edge("h1", "o1", kind="resistor", weight=4e-5)
    g.add_edge(
        "o1", "h2", kind="resistor", weight=3e-5
    )  # so that the nudge reaches every hidden node
    return builders.from_graph(g, name="maskednet")


# ---------------------------------------------------------------------------------------- reports


def compare_table(
    label: str,
    est: dict[str, np.ndarray],
    exact: dict[str, np.ndarray],
    names=("estimate", "exact"),
    entries: int = 3,
) -> str:
    """Per group: cosine, relative error and the first few entries of both sides."""
    c = compare(est, exact)
    lines = [
        f"{label}: overall cosine {c['cosine']:.10f}, rel error {c['rel_error']:.3e}",
        f"  {'group':<10} {'cosine':>14} {'rel_error':>10}   first entries ({names[0]} | "
        f"{names[1]})",
    ]
    for g, m in c["groups"].items():
        a, b = np.ravel(est[g])[:entries], np.ravel(exact[g])[:entries]
        lines.append(
            f"  {g:<10} {m['cosine']:>14.10f} {m['rel_error']:>10.3e}   "
            f"{' '.join(f'{v:+.8e}' for v in a)} | {' '.join(f'{v:+.8e}' for v in b)}"
        )
    return "\n".join(lines)


def exact_of(net: Network, u, y, cost=None) -> Estimate:
    return estimate("exact", net, NUMPY, u, y, beta=1.0, cost=cost)


# ---------------------------------------------------------- 1. exact gradient vs finite differences

#: Relative finite-difference step: h = FD_STEP x (the group's largest |parameter|), i.e. ~1e-9 S
#: for weights and leaks of ~1e-4 S. The central difference has truncation error ~ (dv / V_T)^2
#: where dv is the voltage change the step causes (<~1e-5 x 1 V) and V_T = 26 mV the diode's thermal
#: voltage: <~1e-7 relative where diodes conduct hard; roundoff is ~ eps C / (h |dC/dtheta|) ~ 1e-16
#: / 1e-5 = 1e-11 relative (Newton solves each free phase to machine precision).
FD_STEP = 1e-5
#: Measured worst group on these networks: 1.6e-8 (random feedforward, diodes deep in conduction);
#: typically 1e-10 .. 1e-8. A wrong sign, a missing J^T or a wrong local rule gives O(1).
FD_TOL = 1e-6
FD_ENTRIES = 4  # entries checked per parameter group, spread over the group


def batch_cost(net: Network, u, y, cost, x_init) -> float:
    x = NUMPY.solve(net, Phase(), u, x_init=x_init).x
    return float(cost.value(x[:, net.output_index()], y).mean())


def checked_entries(net: Network, group: str) -> np.ndarray:
    """Up to ``FD_ENTRIES`` flat indices of existing (unmasked) elements, spread over the group."""
    mask = next((c.mask for c in net.couplings if c.name == group), None)
    exists = (
        np.flatnonzero(np.ravel(mask)) if mask is not None else np.arange(net.params()[group].size)
    )
    return exists[
        np.unique(np.linspace(0, exists.size - 1, min(FD_ENTRIES, exists.size)).astype(int))
    ]


@pytest.mark.parametrize("cost", [SquaredError(), CrossEntropy(0.1)], ids=["mse", "xent0.1"])
@pytest.mark.parametrize("key", SPECS + [f"random:{k}:0" for k in KINDS] + ["biased:0"])
def test_exact_gradient_matches_finite_differences(key, cost):
    net = network(key)
    u, y = probe_batch(net, BATCH)
    exact = exact_of(net, u, y, cost)
    assert exact.cost == pytest.approx(batch_cost(net, u, y, cost, None), rel=1e-12)
    problems = []
    for group, p in net.params().items():
        flat = np.ravel(p)
        scale = np.abs(flat).max() if np.abs(flat).max() > 0 else 1e-4
        h = FD_STEP * scale
        idx = checked_entries(net, group)
        fd = np.empty(idx.size)
        for n, i in enumerate(idx):
            values = []
            for sign in (+1, -1):
                q = flat.copy()
                q[i] += sign * h
                values.append(
                    batch_cost(net.with_params({group: q.reshape(p.shape)}), u, y, cost, exact.x0)
                )
            fd[n] = (values[0] - values[1]) / (2 * h)
        adj = np.ravel(exact.grads[group])[idx]
        rel = np.linalg.norm(fd - adj) / np.linalg.norm(adj)
        if not rel <= FD_TOL:
            rows = "\n".join(
                f"      [{i}] adjoint {a:+.12e}  finite difference {f:+.12e}"
                for i, a, f in zip(idx, adj, fd, strict=True)
            )
            problems.append(f"  {group}: rel error {rel:.3e} > {FD_TOL:.0e} (h = {h:.2e})\n{rows}")
    assert not problems, (
        f"{net.name} ({cost.name}): exact gradient vs central differences\n" + "\n".join(problems)
    )


# ---------------------------------------------------------------- 2. estimators on the numpy engine

#: AEP centred has an O(beta^2) bias: ~(beta / g)^2 x curvature with beta / leak = 1e-3, i.e. ~1e-6.
#: Measured worst group: 4.3e-5 (random feedforward seed 0, outputs clamped by conducting diodes);
#: 5e-7 on the layered spec, 6e-8 on the reciprocal one.
AEP_REL_TOL = 1e-4
AEP_COSINE = 0.99999
#: Dyadic EP has no beta bias: what remains is Newton's convergence and linear-algebra roundoff.
#: Measured worst group: 8e-12.
DYADIC_REL_TOL = 1e-8


def check_groups(
    label: str, est: dict, exact: dict, *, rel_tol: float, cosine: float | None = None, groups=None
) -> None:
    c = compare(est, exact)
    bad = [
        g
        for g, m in c["groups"].items()
        if (groups is None or g in groups)
        and not (m["rel_error"] <= rel_tol and (cosine is None or m["cosine"] >= cosine))
    ]
    overall_ok = groups is not None or (
        c["rel_error"] <= rel_tol and (cosine is None or c["cosine"] >= cosine)
    )
    assert overall_ok and not bad, (
        f"{label}: groups {bad} exceed rel error {rel_tol:g}"
        f"{'' if cosine is None else f' or fall below cosine {cosine}'}\n"
        + compare_table(label, est, exact)
    )


@pytest.mark.parametrize("key", SPECS + RANDOM)
def test_aep_centred_matches_exact_numpy(key):
    net = network(key)
    u, y = probe_batch(net, BATCH)
    exact = exact_of(net, u, y)
    aep = estimate("aep", net, NUMPY, u, y, beta=BETA, x0=exact.x0)
    assert aep.centered
    check_groups(
        f"{net.name}: AEP centred (beta {BETA:g} S) vs exact",
        aep.grads,
        exact.grads,
        rel_tol=AEP_REL_TOL,
        cosine=AEP_COSINE,
    )


@pytest.mark.parametrize("key", SPECS + RANDOM)
def test_dyadic_matches_exact_numpy(key):
    net = network(key)
    u, y = probe_batch(net, BATCH)
    exact = exact_of(net, u, y)
    dyadic = estimate("dyadic", net, NUMPY, u, y, beta=DYADIC_BETA, x0=exact.x0)
    check_groups(
        f"{net.name}: Dyadic EP (beta {DYADIC_BETA:g} S) vs exact",
        dyadic.grads,
        exact.grads,
        rel_tol=DYADIC_REL_TOL,
    )


#: On a reciprocal circuit J = J^T: EP is exact up to its O(beta^2) centred bias (measured 6e-8 ..
#: 4e-7 at beta = 1e-7 S), so the bar is the same as AEP's. The three estimators solve the very same
#: nudged circuits (the AEP correction is zero, there is no transconductor for EP's symmetric rule),
#: so they agree with each other to roundoff; 1e-10 would catch any spurious correction.
MUTUAL_TOL = 1e-10


@pytest.mark.parametrize(
    "key", ["spec:reciprocal", "random:reciprocal:0", "random:reciprocal:1", "biased:0"]
)
def test_ep_vf_aep_agree_on_reciprocal_circuits(key):
    net = network(key)
    assert kcl.is_reciprocal(net)
    u, y = probe_batch(net, BATCH)
    exact = exact_of(net, u, y)
    ests = {
        name: estimate(name, net, NUMPY, u, y, beta=BETA, x0=exact.x0)
        for name in ("ep", "vf", "aep")
    }
    for name, est in ests.items():
        check_groups(
            f"{net.name}: {name.upper()} vs exact",
            est.grads,
            exact.grads,
            rel_tol=AEP_REL_TOL,
            cosine=AEP_COSINE,
        )
    for a, b in (("ep", "vf"), ("vf", "aep"), ("ep", "aep")):
        check_groups(
            f"{net.name}: {a.upper()} vs {b.upper()}",
            ests[a].grads,
            ests[b].grads,
            rel_tol=MUTUAL_TOL,
        )


def hidden_parameters(net: Network) -> list[str]:
    """Parameters that act on hidden nodes: couplings into them, their biases and leaks."""
    hidden = {g.name for g in net.groups if g.role == "hidden"}
    return [c.name for c in net.couplings if c.dst in hidden] + [
        f"{h}.{p}" for h in sorted(hidden) for p in ("bias", "leak")
    ]


@pytest.mark.parametrize("key", ["spec:feedforward", "random:feedforward:0"])
def test_vf_cannot_train_feedforward_hidden_layer(key):
    """In a feedforward circuit the nudge cannot reach hidden nodes (DESIGN.md section 1): VF's and
    EP's hidden-layer gradients are exactly zero (both nudged phases leave the hidden voltages where
    they were, so the centred difference is 0.0), while AEP's correction carries the error back."""
    net = network(key)
    hidden = hidden_parameters(net)
    assert {"fwd1", "h1.bias", "h1.leak"} <= set(hidden)
    u, y = probe_batch(net, BATCH)
    exact = exact_of(net, u, y)
    for g in hidden:
        assert np.abs(exact.grads[g]).max() > 0, (
            f"exact gradient of {g} is zero: the test would prove nothing"
        )
    for name in ("vf", "ep"):
        est = estimate(name, net, NUMPY, u, y, beta=BETA, x0=exact.x0)
        nonzero = {
            g: float(np.abs(est.grads[g]).max()) for g in hidden if not np.all(est.grads[g] == 0)
        }
        assert not nonzero, (
            f"{net.name}: {name.upper()} hidden gradients not exactly zero: {nonzero}"
        )
        outside = [g for g in est.grads if g not in hidden]
        assert all(np.abs(est.grads[g]).max() > 0 for g in outside), (
            f"{name.upper()} output-layer gradient is zero"
        )
    aep = estimate("aep", net, NUMPY, u, y, beta=BETA, x0=exact.x0)
    check_groups(
        f"{net.name}: AEP hidden layer vs exact",
        aep.grads,
        exact.grads,
        rel_tol=AEP_REL_TOL,
        cosine=AEP_COSINE,
        groups=hidden,
    )


# ------------------------------------------------------------------------------ 3. on ngspice

#: ngspice solves to reltol 1e-10, vntol 1e-12 V, abstol 1e-15 A (compiler.Tolerances) and agrees
#: with numpy to ~1e-12 V; the nudged differences x^+b - x^-b are ~ beta lambda ~ 1e-4 V, so
#: ngspice's own error is ~1e-8 relative and the AEP error is numpy's beta^2 bias (measured: cosine
#: 1 - 1e-12, rel error 1e-5 feedforward, 6e-8 reciprocal, 5e-7 layered, 8e-5 layered cross-entropy;
#: Dyadic 2e-11). The bar 0.9999 is the project's ngspice bar; the relative-error bar 1e-3 leaves a
#: decade.
NGSPICE_COSINE = 0.9999
NGSPICE_REL_TOL = 1e-3


@pytest.mark.ngspice
@pytest.mark.parametrize("form", ["folded", "literal"])
@pytest.mark.parametrize(
    "spec, cost",
    [
        ("feedforward", SquaredError()),
        ("reciprocal", SquaredError()),
        ("layered", SquaredError()),
        ("layered", CrossEntropy(0.1)),
    ],
    ids=["feedforward", "reciprocal", "layered", "layered-xent"],
)
def test_aep_and_dyadic_match_exact_on_ngspice(ngspice_engine_factory, form, spec, cost):
    net = reference(spec)
    engine = ngspice_engine_factory(form)
    u, y = probe_batch(net, BATCH)
    exact = exact_of(net, u, y, cost)  # the numpy engine's adjoint: an independent reference
    for name, beta in (("aep", BETA), ("dyadic", DYADIC_BETA)):
        est = estimate(name, net, engine, u, y, beta=beta, cost=cost)
        assert np.abs(est.x0 - exact.x0).max() <= 1e-6, (
            "ngspice free state differs from numpy's by > 1e-6 V"
        )
        check_groups(
            f"{net.name} ({form}, {cost.name}): {name.upper()} on ngspice (beta {beta:g}) vs numpy "
            "exact",
            est.grads,
            exact.grads,
            rel_tol=NGSPICE_REL_TOL,
            cosine=NGSPICE_COSINE,
        )


# ------------------------------------------------------------------------------ 4. bias laws

#: Betas spanning 1.5 decades where truncation dominates roundoff: the centred error at the smallest
#: beta (1e-7 S) is ~1e-7 .. 1e-5, far above roundoff (~1e-12: Newton's states are exact to ~1e-16 V
#: against differences x^b - x0 ~ beta lambda ~ 1e-4 V). Above ~3e-6 S (3 % of the leak) the nudge
#: starts to move diodes across their knees and higher-order terms bend the curve (at 1e-6 .. 3e-5 S
#: the fitted slopes on the feedforward networks drop to 0.7 and 1.6).
BIAS_BETAS = np.logspace(-7, np.log10(3e-6), 5)  # S
SLOPE_ONE_SIDED = (0.9, 1.1)  # measured 0.95 .. 1.02
SLOPE_CENTRED = (1.8, 2.2)  # measured 1.98 .. 2.00
#: Diodes "matter" when removing them moves some node by more than this (measured 0.7 .. 7 V).
DIODE_EFFECT = 0.1  # V


def check_bias_law(net: Network, name: str) -> None:
    u, y = probe_batch(net, BATCH)
    x = NUMPY.solve(net, Phase(), u).x
    x_lin = NUMPY.solve(without_diodes(net), Phase(), u).x
    effect = float(np.abs(x - x_lin).max())
    assert effect > DIODE_EFFECT, (
        f"{net.name}: diodes move the free state by only {effect:.2e} V: not nonlinear"
    )
    sweep = beta_sweep(net, NUMPY, u, y, BIAS_BETAS, estimators=(name,))[name]
    table = "\n".join(
        f"  beta {b:.3e} S: one-sided {o:.4e}, centred {c:.4e}"
        for b, o, c in zip(BIAS_BETAS, sweep["one_sided"], sweep["centered"], strict=True)
    )
    msg = (
        f"{net.name}: {name.upper()} bias law: slopes one-sided {sweep['slope_one_sided']:.3f} "
        f"(want {SLOPE_ONE_SIDED}), centred {sweep['slope_centered']:.3f} (want "
        f"{SLOPE_CENTRED})\n{table}"
    )
    for mode in ("one_sided", "centered"):
        assert np.all(np.diff(sweep[mode]) > 0), (
            f"{mode} error not increasing with beta (roundoff?)\n{msg}"
        )
    assert SLOPE_ONE_SIDED[0] <= sweep["slope_one_sided"] <= SLOPE_ONE_SIDED[1], msg
    assert SLOPE_CENTRED[0] <= sweep["slope_centered"] <= SLOPE_CENTRED[1], msg
    assert sweep["centered"][0] < sweep["one_sided"][0], msg


@pytest.mark.parametrize(
    "key", ["random:nonreciprocal:2", "random:feedforward:0", "random:feedforward:1"]
)
def test_aep_bias_law_on_nonlinear_networks(key):
    net = network(key)
    assert not kcl.is_reciprocal(net)
    check_bias_law(net, "aep")


@pytest.mark.parametrize("key", ["biased:0", "biased:2"])
def test_ep_bias_law_on_nonlinear_reciprocal_network(key):
    net = network(key)
    assert kcl.is_reciprocal(net)
    check_bias_law(net, "ep")


# ----------------------------------------------------------------- 5. contract over every estimator


@pytest.fixture(
    params=[
        "numpy",
        "layered",
        pytest.param("ngspice-folded", marks=pytest.mark.ngspice),
        pytest.param("ngspice-pool", marks=pytest.mark.ngspice),
    ]
)
def engine(request):
    """Every engine: numpy, layered, ngspice (folded) and the 2-worker ngspice pool."""
    if request.param == "numpy":
        return NUMPY
    if request.param == "layered":
        return LAYERED
    if request.param == "ngspice-pool":
        return request.getfixturevalue("ngspice_pool")
    return request.getfixturevalue("ngspice_engine_factory")("folded")


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimator_contract(engine, name):
    net = masked_graph_network()
    masks = {c.name: c.mask for c in net.couplings}
    assert any(not m.all() for m in masks.values()), "the test network must have masked elements"
    u, y = probe_batch(net, 4, seed=3)
    beta = DYADIC_BETA if name == "dyadic" else BETA
    est = estimate(name, net, engine, u, y, beta=beta)
    assert isinstance(est, Estimate)
    assert est.name == name and est.beta == beta and est.centered is True
    params = net.params()
    assert list(est.grads) == list(params), f"keys {list(est.grads)} != params {list(params)}"
    for g, p in params.items():
        assert est.grads[g].shape == p.shape, f"{g}: shape {est.grads[g].shape} != {p.shape}"
        assert np.isfinite(est.grads[g]).all(), f"{g}: non-finite gradient {est.grads[g]}"
        if g in masks:
            assert np.all(est.grads[g][~masks[g]] == 0), (
                f"{g}: masked entries not zero:\n{est.grads[g]}\n{masks[g]}"
            )
            assert np.abs(est.grads[g][masks[g]]).max() > 0, (
                f"{g}: every existing element has zero gradient"
            )
    assert est.s.shape == est.x0.shape == (4, net.n_free)
    assert np.isfinite(est.s).all() and np.isfinite(est.cost)
    free = engine.solve(net, Phase(), u).x
    # the numpy engines are deterministic (same Newton iterations, bit for bit); ngspice re-solves
    # from its previous solution to reltol 1e-10 / vntol 1e-12 V, so 1e-9 V.
    tol = 0.0 if engine in (NUMPY, LAYERED) else 1e-9
    assert np.abs(est.x0 - free).max() <= tol, (
        f"estimate's free state:\n{est.x0}\nengine.solve:\n{free}"
    )


# ------------------------------------------------------------------------------ 6. bad input


def test_unknown_estimator_names_the_choices():
    net = reference("layered")
    u, y = probe_batch(net, 2)
    with pytest.raises(ValueError, match="nope") as info:
        estimate("nope", net, NUMPY, u, y, beta=BETA)
    for choice in ESTIMATORS:
        assert repr(choice) in str(info.value), f"{choice!r} missing from: {info.value}"


@pytest.mark.parametrize("beta", [0.0, -1e-7, float("nan"), float("inf")])
def test_bad_beta_refused(beta):
    net = reference("layered")
    u, y = probe_batch(net, 2)
    for name in ESTIMATORS:
        with pytest.raises(ValueError, match="beta"):
            estimate(name, net, NUMPY, u, y, beta=beta)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_bad_targets_refused(name):
    net = reference("layered")
    u, y = probe_batch(net, 4)
    bad = {
        "one row": y[:1],
        "1-D": y[0],
        "one output short": y[:, :-1],
        "3-D": y[:, :, None],
        "NaN": np.where(np.arange(y.size).reshape(y.shape) == 1, np.nan, y),
    }
    for what, targets in bad.items():
        try:
            estimate(name, net, NUMPY, u, targets, beta=BETA)
        except ValueError as exc:
            assert re.search("target", str(exc)), (
                f"{what}: message does not name the targets: {exc}"
            )
        else:
            pytest.fail(f"{name}: targets {what} of shape {np.shape(targets)} accepted")


def test_bad_inputs_refused():
    net = reference("layered")
    u, y = probe_batch(net, 4)
    for name in ESTIMATORS:
        with pytest.raises(ValueError, match="inputs"):
            estimate(name, net, NUMPY, u[:, :2], y, beta=BETA)


@pytest.mark.parametrize("target", [0.9, 1.1])
def test_loop_gain_is_where_the_rest_state_loses_stability(target):
    """``loop_gain`` against the circuit's own linearisation: a 1-1 hidden/output pair with positive
    feedback, its backward gain scaled to a loop gain of 0.9 or 1.1; with every clamp off (clamped
    nodes mid-rail) the Jacobian's eigenvalues (engines.base.is_stable) say stable below 1 and
    unstable above. The closed form for one pair is ``w_fwd w_bwd / (g_h g_out)``."""
    net = builders.from_shorthand("layered:3-1-1", seed=0)
    wf, g = float(net.params()["fwd2"][0, 0]), float(net.group("h1").leak[0])
    assert loop_gain(net) == pytest.approx(wf * wf / g**2, rel=1e-12)
    scaled = net.with_params({"bwd2": np.array([[target * g * g / wf]])})
    assert loop_gain(scaled) == pytest.approx(target, rel=1e-12)
    mid = np.array(
        [[np.mean(grp.clamp) if grp.clamp else 0.0 for grp in scaled.free_groups]]
    )  # diodes off
    _, jac = kcl.residual(scaled, np.zeros((1, scaled.n_inputs)), mid)
    assert bool(is_stable(scaled, jac)[0]) == (target < 1)
