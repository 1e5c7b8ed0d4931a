"""Engines against each other and against closed forms (STYLE.md item 10: triangulate).

- ngspice (literal and folded netlists) against the numpy reference engine, in every phase: free,
  nudged with beta = +-1e-6 S, AEP-nudged with beta = +-1e-6 S and x0 = numpy's free state, and
  dyadic with beta = 1e-4 S (node voltages and the adjoint half).
- literal against folded netlists (the folding is exact: DESIGN.md section 2).
- the numpy engine (and ngspice) against closed forms: a resistive divider and a diode clamp
  driven hard, and the stability flag of a stable and an unstable circuit.

Tolerances:

- ``ENGINE_TOL = 1e-6`` V between ngspice and numpy is the project's bar (DESIGN.md section 3).
  ngspice runs with reltol 1e-10, vntol 1e-12 V, abstol 1e-15 A (``compiler.Tolerances``) and numpy
  to 1e-12 V steps; the measured disagreement on these networks is 1e-16 .. 3e-11 V (worst: the
  dyadic adjoint, whose diode conductances ngspice evaluates as behavioural expressions).
- ``FORM_TOL = 1e-9`` V between literal and folded netlists: both are solved to the same ngspice
  tolerances and describe the same equations (measured ~1e-13 V), so 1e-9 V leaves 4 decades of
  room while still catching any folding error (a wrong Norton term moves voltages by > 1e-6 V).
- Closed forms to 1e-9 V (diode clamp) and 1e-12 relative (linear divider): Newton stops at 1e-12 V
  steps and the closed forms are solved to 1e-15 V, so 1e-9 V only allows for ngspice's vntol.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import brentq

from circuitep import builders
from circuitep.costs import CrossEntropy
from circuitep.devices import GMIN, THERMAL_VOLTAGE
from circuitep.engines.base import OperatingPoint, Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.ngspice_engine import UNKNOWN_ITERATIONS, one_operating_point
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.spec import Coupling, DiodeModel, Network, NodeGroup

ENGINE_TOL = 1e-6  # V; see the module docstring
FORM_TOL = 1e-9  # V
CLOSED_FORM_TOL = 1e-9  # V
BATCH = 4
KINDS = ("reciprocal", "nonreciprocal", "feedforward")
SEEDS = (0, 1, 2)
FORMS = ("literal", "folded")
NUMPY = NumpyEngine()
LAYERED = LayeredEngine()


# ---------------------------------------------------------------------------------------- helpers


def make_batch(net: Network, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``BATCH`` random input voltages in [0, 1] V and targets in [0, 0.5] V."""
    rng = np.random.default_rng(10_000 + seed)
    return rng.uniform(0, 1, (BATCH, net.n_inputs)), rng.uniform(0, 0.5, (BATCH, net.n_outputs))


def phase_list(x_free: np.ndarray) -> list[tuple[Phase, np.ndarray | None]]:
    """Every phase with the x0 it needs (numpy's free state for the AEP correction)."""
    return [
        (Phase(), None),
        (Phase("nudged", 1e-6), None),
        (Phase("nudged", -1e-6), None),
        (Phase("nudged", 1e-6, aep=True), x_free),
        (Phase("nudged", -1e-6, aep=True), x_free),
        (Phase("dyadic", 1e-4), None),
    ]


def solve_phases(
    engine, net: Network, u: np.ndarray, y: np.ndarray, x_free: np.ndarray
) -> dict[str, OperatingPoint]:
    """All phases with one engine, in order (so an ngspice engine reuses and alters its circuit)."""
    return {
        phase.label: engine.solve(net, phase, u, None if phase.kind == "free" else y, x0=x0)
        for phase, x0 in phase_list(x_free)
    }


def mismatch(
    what: str, nodes, a: np.ndarray, b: np.ndarray, names: tuple[str, str], tol: float
) -> str | None:
    """``None`` if ``|a - b| <= tol`` everywhere, else a table of both sides (worst ones first)."""
    diff = np.abs(a - b)
    if diff.max() <= tol:
        return None
    lines = [f"{what}: max |{names[0]} - {names[1]}| = {diff.max():.3e} V > {tol:.0e} V"]
    lines.append(f"  {'sample':>6} {'node':>12} {names[0]:>22} {names[1]:>22} {'diff':>10}")
    for flat in np.argsort(diff, axis=None)[::-1][:12]:
        b_, k = np.unravel_index(flat, diff.shape)
        if diff[b_, k] <= tol:
            break
        lines.append(
            f"  {b_:>6} {nodes[k]:>12} {a[b_, k]:>22.15g} {b[b_, k]:>22.15g} {diff[b_, k]:>10.2e}"
        )
    return "\n".join(lines)


def compare_phases(
    label: str,
    got: dict[str, OperatingPoint],
    ref: dict[str, OperatingPoint],
    names: tuple[str, str],
    tol: float,
) -> list[str]:
    problems = []
    for phase, op in got.items():
        r = ref[phase]
        msg = mismatch(f"{label} {phase}: x", r.nodes, op.x, r.x, names, tol)
        if msg:
            problems.append(msg)
        if r.adjoint is not None:
            if op.adjoint is None:
                problems.append(f"{label} {phase}: {names[0]} returned no adjoint")
            else:
                msg = mismatch(
                    f"{label} {phase}: adjoint", r.nodes, op.adjoint, r.adjoint, names, tol
                )
                if msg:
                    problems.append(msg)
    return problems


def numpy_reference(net: Network, u: np.ndarray, y: np.ndarray) -> dict[str, OperatingPoint]:
    x_free = NUMPY.solve(net, Phase(), u).x
    ref = solve_phases(NUMPY, net, u, y, x_free)
    for label, op in ref.items():
        assert op.converged.all(), f"numpy did not converge in {label}"
    return ref


def tanh_network() -> Network:
    """Saturating transconductors both ways plus resistors; v_sat = 0.3 V so that inputs in [0, 1] V
    drive the input-side tanh deep into saturation."""
    return builders.layered(
        (3, 4, 4, 2),
        name="tanhnet",
        forward="tanh",
        backward="tanh",
        resistors=True,
        gain=3.0,
        v_sat=0.3,
        bias_scale=0.2,
        seed=3,
    )


def graph_network() -> Network:
    """From a networkx graph: a recurrent hidden-to-hidden resistor h-k and transconductor k->h,
    mixed kinds from the inputs, a tanh feedback from the output, per-node leak and bias."""
    g = nx.DiGraph()
    g.add_node("a", role="input")
    g.add_node("b", role="input")
    g.add_node("h", role="hidden", clamp=(-0.45, 0.55), bias=1e-6)
    g.add_node("k", role="hidden", clamp=(-0.45, 0.55))
    g.add_node("o", role="output", leak=2e-4)
    g.add_edge("a", "h", kind="resistor", weight=1e-4)
    g.add_edge("b", "k", kind="vccs", weight=-2e-4)
    g.add_edge("h", "k", kind="resistor", weight=5e-5)
    g.add_edge("k", "h", kind="vccs", weight=1.5e-4)
    g.add_edge("h", "o", kind="vccs", weight=2e-4)
    g.add_edge("o", "k", kind="tanh", weight=1e-4)
    g.add_edge("a", "o", kind="tanh", weight=1e-4)
    return builders.from_graph(g, name="graphnet")


SPECIAL = {"tanh": tanh_network, "graph": graph_network}


# -------------------------------------------------------------------- ngspice against numpy


@pytest.mark.ngspice
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("diodes", [True, False], ids=["diodes", "linear"])
@pytest.mark.parametrize("kind", KINDS)
def test_ngspice_matches_numpy_in_every_phase(ngspice_engine_factory, kind, diodes, seed, form):
    net = builders.random_network(kind, diodes=diodes, seed=seed)
    u, y = make_batch(net, seed)
    ref = numpy_reference(net, u, y)
    got = solve_phases(ngspice_engine_factory(form), net, u, y, ref["free"].x)
    problems = compare_phases(
        f"{net.name} {form}", got, ref, (f"ngspice-{form}", "numpy"), ENGINE_TOL
    )
    assert not problems, "\n".join(problems)


@pytest.mark.ngspice
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("diodes", [True, False], ids=["diodes", "linear"])
@pytest.mark.parametrize("kind", KINDS)
def test_literal_matches_folded(ngspice_engine_factory, kind, diodes, seed):
    net = builders.random_network(kind, diodes=diodes, seed=seed)
    u, y = make_batch(net, seed)
    x_free = NUMPY.solve(net, Phase(), u).x
    literal = solve_phases(ngspice_engine_factory("literal"), net, u, y, x_free)
    folded = solve_phases(ngspice_engine_factory("folded"), net, u, y, x_free)
    problems = compare_phases(net.name, literal, folded, ("literal", "folded"), FORM_TOL)
    assert not problems, "\n".join(problems)


@pytest.mark.ngspice
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("which", sorted(SPECIAL))
def test_special_networks_match_numpy(ngspice_engine_factory, which, form):
    net = SPECIAL[which]()
    u, y = make_batch(net, 7)
    ref = numpy_reference(net, u, y)
    assert ref["free"].stable.all(), f"{which}: the test network should be stable"
    got = solve_phases(ngspice_engine_factory(form), net, u, y, ref["free"].x)
    problems = compare_phases(
        f"{net.name} {form}", got, ref, (f"ngspice-{form}", "numpy"), ENGINE_TOL
    )
    assert not problems, "\n".join(problems)


@pytest.mark.ngspice
@pytest.mark.parametrize("which", sorted(SPECIAL))
def test_special_networks_literal_matches_folded(ngspice_engine_factory, which):
    net = SPECIAL[which]()
    u, y = make_batch(net, 7)
    x_free = NUMPY.solve(net, Phase(), u).x
    literal = solve_phases(ngspice_engine_factory("literal"), net, u, y, x_free)
    folded = solve_phases(ngspice_engine_factory("folded"), net, u, y, x_free)
    problems = compare_phases(net.name, literal, folded, ("literal", "folded"), FORM_TOL)
    assert not problems, "\n".join(problems)


def test_special_networks_are_what_they_claim():
    tanh = tanh_network()
    assert {c.kind for c in tanh.couplings} == {"tanh", "resistor"}
    assert any(c.kind == "tanh" and c.src != "in" for c in tanh.couplings), (
        "no tanh between free nodes"
    )
    u, _ = make_batch(tanh, 7)
    assert (u / 0.3).max() > 2.0, "inputs should saturate the input-side tanh transconductors"
    graph = graph_network()
    kinds = {(c.kind, c.src, c.dst) for c in graph.couplings}
    assert ("resistor", "hid", "hid") in kinds and ("vccs", "hid", "hid") in kinds


@pytest.mark.ngspice
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "phase", [Phase(), Phase("nudged", 1e-6), Phase("dyadic", 1e-4)], ids=lambda p: p.label
)
def test_ngspice_follows_parameter_updates(ngspice_engine_factory, form, phase):
    """One engine, one phase, new parameter values each call: the engine alters element values in
    the loaded circuit instead of reloading it, and must still agree with numpy."""
    base = builders.random_network("nonreciprocal", diodes=True, seed=0)
    u, y = make_batch(base, 3)
    rng = np.random.default_rng(4)
    engine = ngspice_engine_factory(form)
    problems = []
    for step in range(3):
        params = {
            name: w * rng.uniform(0.5, 1.5, w.shape)
            + (1e-6 * rng.standard_normal(w.shape) if name.endswith(".bias") else 0.0)
            for name, w in base.params().items()
        }
        net = base.with_params(params)
        targets = None if phase.kind == "free" else y
        got = {phase.label: engine.solve(net, phase, u, targets)}
        ref = {phase.label: NUMPY.solve(net, phase, u, targets)}
        problems += compare_phases(
            f"update {step}", got, ref, (f"ngspice-{form}", "numpy"), ENGINE_TOL
        )
    assert not problems, "\n".join(problems)


@pytest.mark.ngspice
def test_two_engines_share_one_ngspice(ngspice_engine_factory):
    net1 = builders.random_network("nonreciprocal", diodes=False, seed=0)
    net2 = net1.with_params({c.name: 2 * c.weight for c in net1.couplings})  # same structure
    u = np.full((1, net1.n_inputs), 0.5)
    a, b = ngspice_engine_factory("folded"), ngspice_engine_factory("folded")
    a.solve(net1, Phase(), u)
    b.solve(net2, Phase(), u)
    again = a.solve(net1, Phase(), u).x
    ref = NUMPY.solve(net1, Phase(), u).x
    msg = mismatch(
        "engine a after engine b loaded its circuit",
        net1.free_nodes,
        again,
        ref,
        ("ngspice-a", "numpy"),
        ENGINE_TOL,
    )
    assert msg is None, msg


@pytest.mark.ngspice
@pytest.mark.parametrize("form", FORMS)
def test_cross_entropy_phases_match_numpy(ngspice_engine_factory, form):
    net = builders.random_network("nonreciprocal", seed=0)
    u, _ = make_batch(net, 5)
    y = np.eye(net.n_outputs)[np.random.default_rng(5).integers(0, net.n_outputs, BATCH)]  # one-hot
    cost = CrossEntropy(0.1)
    engine = ngspice_engine_factory(form)
    got, ref = {}, {}
    for phase in (
        Phase("nudged", 1e-6, cost=cost),
        Phase("nudged", -1e-6, cost=cost),
        Phase("dyadic", 1e-4, cost=cost),
    ):
        ref[phase.label] = NUMPY.solve(net, phase, u, y)
        got[phase.label] = engine.solve(net, phase, u, y)
    problems = compare_phases(
        f"{net.name} {form} xent", got, ref, (f"ngspice-{form}", "numpy"), ENGINE_TOL
    )
    assert not problems, "\n".join(problems)


@pytest.mark.ngspice
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", ["feedforward", "reciprocal"])
def test_a_sweep_solves_what_one_op_per_sample_does(ngspice_engine_factory, kind, form):
    """Groups of samples in one DC sweep (sources read from tables) against one ``op`` per sample,
    in every phase, with groups that do not divide the batch (3 + 3 swept, the last sample alone by
    ``op``), on the circuits that have one operating point. Both are ngspice at reltol 1e-10 from
    different starting points, so they agree far inside ENGINE_TOL."""
    net = builders.random_network(kind, diodes=True, seed=1)
    rng = np.random.default_rng(3)
    u, y = rng.uniform(0, 1, (7, net.n_inputs)), rng.uniform(0, 0.5, (7, net.n_outputs))
    x_free = NUMPY.solve(net, Phase(), u).x
    swept = ngspice_engine_factory(form, sweep=3)
    got = solve_phases(swept, net, u, y, x_free)
    assert swept.sweeps == 2 * len(got)
    one_by_one = solve_phases(ngspice_engine_factory(form, sweep=1), net, u, y, x_free)
    problems = compare_phases(f"{net.name} {form}", got, one_by_one, ("sweep", "op"), 1e-9)
    assert not problems, "\n".join(problems)


@pytest.mark.ngspice
def test_a_multistable_circuit_is_solved_sample_by_sample(ngspice_engine_factory):
    """A sweep starts each sample from the previous one's solution, so on layered:12-8-4 at gain 1
    (several operating points for some inputs) its answers depended on the order of the batch
    (measured: 43 of 100 samples changed when shuffled, by up to 3.2 V). Circuits with a loop are
    therefore solved one ``op`` per sample, each from scratch: a shuffled batch gives the same
    answers, exactly."""
    net = builders.from_shorthand("layered:12-8-4", seed=2, gain=1.0)
    assert not one_operating_point(net, Phase())
    u = np.random.default_rng(0).uniform(0, 1, (40, 12))
    engine = ngspice_engine_factory("folded")
    order = np.random.default_rng(1).permutation(40)
    x = engine.solve(net, Phase(), u).x
    assert np.array_equal(engine.solve(net, Phase(), u[order]).x, x[order])
    assert engine.sweeps == 0


@pytest.mark.ngspice
def test_a_phase_without_per_sample_sources_is_solved(ngspice_engine_factory):
    """No input reaches a free node (every input coupling masked out): the folded free phase has no
    source to tabulate, and every sample is the same circuit."""
    base = builders.layered((3, 2, 2), seed=0)
    net = Network(
        base.name,
        base.groups,
        tuple(
            replace(c, mask=np.zeros_like(c.mask)) if c.src == "in" else c for c in base.couplings
        ),
        base.diode,
    )
    u = np.random.default_rng(0).uniform(0, 1, (5, 3))
    msg = mismatch(
        "no per-sample source",
        net.free_nodes,
        ngspice_engine_factory("folded").solve(net, Phase(), u).x,
        NUMPY.solve(net, Phase(), u).x,
        ("ngspice", "numpy"),
        ENGINE_TOL,
    )
    assert msg is None, msg


@pytest.mark.ngspice
def test_samples_a_sweep_leaves_unsolved_are_solved_one_by_one(ngspice_engine_factory, monkeypatch):
    """Where a sweep does not converge (injected here: ngspice's error line for the ``dc``
    command), its samples are solved with ``op`` and its retries, and agree with numpy."""
    net = builders.random_network("feedforward", diodes=True, seed=0)
    u, _ = make_batch(net, 0)
    engine = ngspice_engine_factory("folded")
    engine.solve(net, Phase(), u)
    assert engine.sweeps == 1  # this circuit is swept when nothing fails
    run = engine._session.run  # analyses run in ngspice's background thread, with a time limit

    def failing_dc(text, timeout):
        failed = ["doAnalyses: iteration limit reached"]
        return failed if text.startswith("dc ") else run(text, timeout)

    monkeypatch.setattr(engine._session, "run", failing_dc)
    got = engine.solve(net, Phase(), u)
    assert engine.sweeps == 1
    msg = mismatch(
        "after a failed sweep",
        net.free_nodes,
        got.x,
        NUMPY.solve(net, Phase(), u).x,
        ("ngspice", "numpy"),
        ENGINE_TOL,
    )
    assert msg is None, msg


@pytest.mark.ngspice
def test_ngspice_reports_its_own_iteration_counts(ngspice_engine_factory):
    """Per sample, the Newton iterations ngspice counted for its op (``rusage totiter``; ngspice 39
    measured: 3 on a linear divider, 11 .. 16 on a diode clamp), not a fixed 0; samples solved
    within one DC sweep, which ngspice counts only as a whole, say UNKNOWN_ITERATIONS (-1)."""
    one = ngspice_engine_factory("folded", sweep=1)
    linear = one.solve(divider(3e-4, 1e-4), Phase(), np.array([[0.0], [0.25], [0.8]])).iterations
    clamp = one.solve(clamp_network(1e-3, DiodeModel()), Phase(), np.zeros((2, 1))).iterations
    assert (linear >= 1).all() and len(set(linear)) == 1, linear  # linear: the same for every input
    assert clamp.min() > linear.max(), (clamp, linear)  # a diode takes Newton more steps
    net = builders.random_network("feedforward", seed=0)
    u, _ = make_batch(net, 0)
    swept = ngspice_engine_factory("folded").solve(net, Phase(), u).iterations
    assert (swept == UNKNOWN_ITERATIONS).all(), swept
    assert (ngspice_engine_factory("folded", sweep=1).solve(net, Phase(), u).iterations >= 1).all()


def test_sweep_size_is_checked():
    from circuitep.engines.ngspice_engine import NgspiceEngine

    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="sweep = .* must be a positive integer"):
            NgspiceEngine(sweep=bad)


@pytest.mark.ngspice
def test_ngspice_operating_point_metadata(ngspice_folded):
    net = builders.random_network("nonreciprocal", seed=0)
    u, _ = make_batch(net, 0)
    op = ngspice_folded.solve(net, Phase(), u)
    assert op.engine == "ngspice" and op.phase == Phase()
    assert op.nodes == tuple(net.free_nodes) and op.x.shape == (BATCH, net.n_free)
    assert op.converged.shape == (BATCH,) and op.converged.all()
    assert op.adjoint is None
    assert op.tolerances["reltol"] == 1e-10 and op.tolerances["vntol"] == 1e-12
    assert op.tolerances["form"] == "folded"


# ------------------------------------------------------------------------------- closed forms


def engine_params():
    """Every engine, for contract tests: numpy, layered, ngspice in both forms, the ngspice pool."""
    return [
        pytest.param("numpy", id="numpy"),
        pytest.param("layered", id="layered"),
        pytest.param("literal", id="ngspice-literal", marks=pytest.mark.ngspice),
        pytest.param("folded", id="ngspice-folded", marks=pytest.mark.ngspice),
        pytest.param("pool", id="ngspice-pool", marks=pytest.mark.ngspice),
    ]


@pytest.fixture
def engine(request):
    if request.param == "numpy":
        return NUMPY
    if request.param == "layered":
        return LAYERED
    if request.param == "pool":
        return request.getfixturevalue("ngspice_pool")
    return request.getfixturevalue("ngspice_engine_factory")(request.param)


#: Between the layered and the dense numpy engine: the same Newton to 1e-12 V steps on the same
#: equations, other linear algebra (block elimination); measured <= 1e-15 V on these networks.
LAYERED_TOL = 1e-12  # V


@pytest.mark.parametrize("engine", engine_params(), indirect=True)
@pytest.mark.parametrize("kind", ["nonreciprocal", "feedforward"])
def test_engine_contract_in_every_phase(engine, kind):
    """One body over every engine (STYLE.md item 10): every phase against the numpy reference, and
    the operating point's data: nodes, shapes, per-sample convergence and iterations, the engine's
    name, the phase, and the tolerances as the engine's ``tolerance_dict`` (a plain JSON dict;
    where that says ``auto``, the value chosen for the circuit)."""
    net = builders.random_network(kind, seed=0, diodes=True)
    u, y = make_batch(net, 0)
    ref = numpy_reference(net, u, y)
    x_free = ref["free"].x
    got = solve_phases(engine, net, u, y, x_free)
    tol = 0.0 if engine is NUMPY else LAYERED_TOL if engine is LAYERED else ENGINE_TOL
    problems = compare_phases(kind, got, ref, (engine.name, "numpy"), tol)
    assert not problems, "\n".join(problems)
    for (phase, _), op in zip(phase_list(x_free), got.values(), strict=True):
        assert op.engine == engine.name and op.phase == phase, (op.engine, op.phase)
        assert op.nodes == tuple(net.free_nodes) and op.x.shape == (BATCH, net.n_free)
        assert op.converged.shape == (BATCH,) and op.converged.dtype == bool and op.converged.all()
        assert op.iterations.shape == (BATCH,) and np.issubdtype(op.iterations.dtype, np.integer)
        # a count, or ngspice's "cannot tell" for samples solved within one DC sweep
        assert ((op.iterations >= 1) | (op.iterations == UNKNOWN_ITERATIONS)).all(), op.iterations
        assert (op.adjoint is not None) == (phase.kind == "dyadic")
        # a setting the engine resolves per circuit holds the resolved value (ngspice's solver)
        resolved = {k: v for k, v in op.tolerances.items() if engine.tolerance_dict[k] != "auto"}
        assert op.tolerances.keys() == engine.tolerance_dict.keys()
        assert resolved == {k: engine.tolerance_dict[k] for k in resolved}
        assert op.tolerances.get("solver", "sparse") in ("klu", "sparse")
        assert json.loads(json.dumps(op.tolerances)) == op.tolerances  # plain JSON values


def divider(g1: float, g2: float) -> Network:
    """One input, one free output node: conductance g1 to the input, leak g2 to ground, no clamp."""
    return Network(
        "divider",
        (NodeGroup("in", "input", 1), NodeGroup("out", "output", 1, leak=g2)),
        (Coupling("r", "resistor", "in", "out", [[g1]]),),
    )


@pytest.mark.parametrize("engine", engine_params(), indirect=True)
def test_resistive_divider_closed_form(engine):
    g1, g2 = 3e-4, 1e-4
    u = np.array([[0.0], [0.25], [0.8], [-1.3]])
    op = engine.solve(divider(g1, g2), Phase(), u)
    expected = g1 * u / (g1 + g2)
    # linear circuit: Newton is exact after one step, ngspice to reltol 1e-10
    np.testing.assert_allclose(
        op.x, expected, rtol=1e-9, atol=1e-12, err_msg=f"{engine.name}: v = g1 u / (g1 + g2)"
    )
    if engine is NUMPY:
        assert op.stable.all() and op.converged.all()


V_LO, V_HI = -0.45, 0.55
CLAMP_LEAK = 1e-6  # S


def clamp_network(drive: float, diode: DiodeModel) -> Network:
    """One clamped output node with only a bias current ``drive`` (A) and a small leak."""
    return Network(
        "clamp",
        (
            NodeGroup("in", "input", 1),
            NodeGroup("out", "output", 1, leak=CLAMP_LEAK, bias=drive, clamp=(V_LO, V_HI)),
        ),
        (),
        diode,
    )


def shockley_clamp_voltage(drive: float, i_sat: float, n: float) -> float:
    """Solve KCL at the clamped node with brentq, written out independently of circuitep.devices.

    ``drive = leak v + Is (exp((v - v_hi)/(n Vt)) - 1) + gmin (v - v_hi) - i_dn``, where the lower
    diode (v_lo -> node) is reverse biased by about 1 V: SPICE3's reverse model gives
    ``i_dn = -Is (1 + (3 n Vt / (e (v_lo - v)))^3) + gmin (v_lo - v)``. ``Vt`` is kT/q at 27 degC
    with the CODATA 2014 constants ngspice uses.
    """
    vt = 1.38064852e-23 * 300.15 / 1.6021766208e-19
    vte = n * vt

    def kcl(v):
        up = i_sat * math.expm1((v - V_HI) / vte) + GMIN * (v - V_HI)
        vd = V_LO - v
        assert vd < -3 * vte
        down = -i_sat * (1 + (3 * vte / (math.e * vd)) ** 3) + GMIN * vd
        return drive - CLAMP_LEAK * v - up + down

    return brentq(kcl, V_HI, V_HI + 2.0, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)


@pytest.mark.parametrize("engine", engine_params(), indirect=True)
@pytest.mark.parametrize(
    "drive, i_sat, n", [(1e-3, 1e-12, 1.0), (2e-4, 1e-14, 1.0), (5e-3, 1e-12, 1.7)]
)
def test_diode_clamp_closed_form(engine, drive, i_sat, n):
    assert abs(1.38064852e-23 * 300.15 / 1.6021766208e-19 - THERMAL_VOLTAGE) < 1e-15
    net = clamp_network(drive, DiodeModel(i_sat=i_sat, n=n))
    op = engine.solve(net, Phase(), np.zeros((1, 1)))
    v = op.x[0, 0]
    exact = shockley_clamp_voltage(drive, i_sat, n)
    assert abs(v - exact) <= CLOSED_FORM_TOL, (
        f"{engine.name}: v = {v!r}, Shockley solution {exact!r}"
    )
    # the textbook estimate ignores the leak (1e-6 S * 1 V, a 1e-3 relative current) and gmin
    estimate = V_HI + n * THERMAL_VOLTAGE * math.log(drive / i_sat)
    assert abs(v - estimate) < 2e-4 * n, f"v = {v!r} far from v_hi + n Vt ln(I/Is) = {estimate!r}"
    if engine is NUMPY:
        assert op.stable.all() and op.converged.all()


def test_clamp_is_symmetric_for_negative_drive():
    """Driven down hard, the node sits below v_lo by the same diode drop (upper diode reverse)."""
    up = NUMPY.solve(clamp_network(1e-3, DiodeModel()), Phase(), np.zeros((1, 1))).x[0, 0]
    down = NUMPY.solve(clamp_network(-1e-3, DiodeModel()), Phase(), np.zeros((1, 1))).x[0, 0]
    # the leak current differs (v ~ +1.09 V vs -0.99 V): 2e-6 A * (Vt / 1e-3 A) ~ 5e-5 V
    assert abs((up - V_HI) - (V_LO - down)) < 1e-4, (up, down)


def test_stable_random_networks_report_stable():
    for kind in KINDS:
        net = builders.random_network(kind, seed=0)
        u, _ = make_batch(net, 0)
        op = NUMPY.solve(net, Phase(), u)
        assert op.stable is not None and op.stable.shape == (BATCH,) and op.stable.all(), kind


def test_positive_feedback_loop_is_unstable():
    """Two free nodes driving each other with w12 = w21 = 3 g_leak: J = g_leak [[-1, 3], [3, -1]]
    has the eigenvalue +2 g_leak, so the (unique, x = 0 for zero input) operating point is
    unstable."""
    leak = 1e-4
    net = Network(
        "loop",
        (
            NodeGroup("in", "input", 1),
            NodeGroup("hid", "hidden", 1, leak=leak),
            NodeGroup("out", "output", 1, leak=leak),
        ),
        (
            Coupling("w21", "vccs", "hid", "out", [[3 * leak]]),
            Coupling("w12", "vccs", "out", "hid", [[3 * leak]]),
            Coupling("r", "resistor", "in", "hid", [[1e-6]]),
        ),
    )
    u = np.array([[0.0], [0.3]])
    op = NUMPY.solve(net, Phase(), u)
    assert op.converged.all()
    assert op.stable is not None and not op.stable.any(), op.stable
    # and the solution is still the operating point: F(x) = 0 for the linear system
    g = leak + 1e-6
    a = np.array([[-g, 3 * leak], [3 * leak, -leak]])
    expected = np.linalg.solve(a, -np.stack([1e-6 * u[:, 0], np.zeros(2)]))
    np.testing.assert_allclose(op.x, expected.T, rtol=1e-9, atol=1e-12)
