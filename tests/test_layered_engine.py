"""The layered (block-tridiagonal) engine against the numpy reference engine (STYLE.md item 10).

- Agreement in every phase: free, nudged with beta = +-1e-6 S, AEP-nudged with beta = +-1e-6 S and
  x0 = the reference free state, dyadic with beta = 1e-4 S (node voltages and the adjoint half),
  the same with the cross-entropy cost, and a warm start; on the random test networks of every
  kind (with and without diodes, several seeds), on deeper layered networks with saturating
  transconductors both ways and resistors, and on a network with couplings inside a group (dense
  diagonal blocks). The stability flag, when asked for, agrees too.
- A network whose free groups are not a chain is refused with a message that names the coupling and
  points to NumpyEngine; where Newton stops short, pseudo-transient continuation goes on (as in
  NumpyEngine) and ends at the same operating point; a circuit with no operating point raises
  ConvergenceError naming network, phase and samples.
- At MNIST scale (784-500-10, diode clamps) the free phase is much faster than NumpyEngine and
  agrees with it.

Tolerances:

- ``TOL = 1e-10`` V between the engines on small networks. Both run the same damped Newton to
  1e-12 V steps on the same equations; only the linear solve differs (block elimination against
  a dense LU), so they differ by rounding: measured <= 6e-15 V. 1e-10 V leaves 4 decades while any
  wrong Jacobian block or phase term moves voltages by far more than that (the nudge alone moves
  the outputs by ~1e-6 V at beta = 1e-6 S). The adjoint half of the dyadic phase (V) is held to
  the same bound.
- ``BIG_TOL = 1e-9`` V at 784-500-10: the same argument with 510 nodes and 784-input sums
  (measured ~1e-15 V).
- ``SPEEDUP = 10``: the measured ratio of time per sample is ~40-100 (the reference solves a dense
  510 x 510 system per sample and Newton step); 10 keeps the test from being flaky on a busy
  machine while still catching a fall-back to dense linear algebra.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from circuitep import builders
from circuitep.builders import from_shorthand
from circuitep.costs import CrossEntropy
from circuitep.engines.base import ConvergenceError, OperatingPoint, Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.newton import MAX_HALVINGS, backtrack, pseudo_transient
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.spec import Coupling, Network

TOL = 1e-10  # V; see the module docstring
BIG_TOL = 1e-9  # V
SPEEDUP = 10
BATCH = 4
KINDS = ("reciprocal", "nonreciprocal", "feedforward")
SEEDS = (0, 1, 2)
NUMPY = NumpyEngine()
LAYERED = LayeredEngine(check_stability=True)


# ---------------------------------------------------------------------------------------- helpers


def make_batch(net: Network, seed: int, batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Random input voltages in [0, 1] V and targets in [0, 0.5] V."""
    rng = np.random.default_rng(20_000 + seed)
    return rng.uniform(0, 1, (batch, net.n_inputs)), rng.uniform(0, 0.5, (batch, net.n_outputs))


def phase_list(x_free: np.ndarray) -> list[tuple[Phase, np.ndarray | None, np.ndarray | None]]:
    """Every phase with the x0 it needs (the reference free state) and a warm start or None."""
    xent = CrossEntropy(tau=0.1)
    return [
        (Phase(), None, None),
        (Phase("nudged", 1e-6), None, None),
        (Phase("nudged", -1e-6), None, None),
        (Phase("nudged", 1e-6, aep=True), x_free, None),
        (Phase("nudged", -1e-6, aep=True), x_free, None),
        (Phase("dyadic", 1e-4), None, None),
        (Phase("nudged", 1e-6, cost=xent), None, None),
        (Phase("nudged", -1e-6, aep=True, cost=xent), x_free, None),
        (Phase("dyadic", 1e-4, cost=xent), None, None),
        (Phase("nudged", 1e-6, aep=True), x_free, x_free),  # warm start at the free state
    ]


def compare(what: str, a: np.ndarray, b: np.ndarray, tol: float) -> None:
    """Fail with both sides (worst entries first) if ``|a - b| > tol`` anywhere."""
    diff = np.abs(a - b)
    if diff.max() <= tol:
        return
    worst = np.argsort(diff, axis=None)[::-1][:8]
    rows = [
        f"  sample {i}, node {j}: numpy {a[i, j]:+.15f}  layered {b[i, j]:+.15f}  |diff| "
        f"{diff[i, j]:.3e}"
        for i, j in (np.unravel_index(k, diff.shape) for k in worst)
    ]
    pytest.fail(
        f"{what}: max |numpy - layered| = {diff.max():.3e} V > {tol:.0e} V\n" + "\n".join(rows)
    )


def check_agreement(net: Network, seed: int) -> None:
    u, y = make_batch(net, seed)
    x_free = NUMPY.solve(net, Phase(), u).x
    for phase, x0, x_init in phase_list(x_free):
        targets = None if phase.kind == "free" else y
        ref = NUMPY.solve(net, phase, u, targets, x0=x0, x_init=x_init)
        got = LAYERED.solve(net, phase, u, targets, x0=x0, x_init=x_init)
        what = f"{net.name}, {phase.label}{', ' + phase.cost.name if phase.kind != 'free' else ''}"
        assert (
            isinstance(got, OperatingPoint) and got.engine == "layered" and got.nodes == ref.nodes
        )
        assert got.converged.all()
        compare(what, ref.x, got.x, TOL)
        if phase.kind == "dyadic":
            compare(f"{what}, adjoint", ref.adjoint, got.adjoint, TOL)
        else:
            assert got.adjoint is None
        np.testing.assert_array_equal(
            got.stable, ref.stable, err_msg=f"{what}: stability flags differ"
        )


def lateral(net: Network, group: str, seed: int) -> Network:
    """``net`` plus couplings inside ``group`` (a VCCS and a resistor, diagonals masked out)."""
    n = net.group(group).size
    rng = np.random.default_rng(seed)
    off = ~np.eye(n, dtype=bool)
    extra = (
        Coupling(f"lat{group}", "vccs", group, group, rng.normal(0, 3e-5, (n, n)), off),
        Coupling(
            f"latr{group}", "resistor", group, group, rng.uniform(0, 3e-5, (n, n)), np.triu(off)
        ),
    )
    return replace(net, couplings=net.couplings + extra)


# ------------------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("diodes", (True, False), ids=("diodes", "linear"))
@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_numpy_on_random_networks(kind, diodes, seed):
    check_agreement(builders.random_network(kind, diodes=diodes, seed=seed), seed)


@pytest.mark.parametrize(
    "options",
    [
        dict(forward="tanh", backward="tanh", resistors=True, v_sat=0.3),
        dict(forward="vccs", backward="vccs", resistors=True, inverted_inputs=True),
        dict(forward="tanh", backward=None, v_sat=0.3),
        dict(forward=None, backward="tanh", resistors=True, v_sat=0.3),
    ],
    ids=("tanh-both-res", "vccs-both-res-inverted", "tanh-forward", "tanh-backward-res"),
)
def test_agrees_with_numpy_on_deep_layered_networks(options):
    # Two hidden layers; gain 2 and a small v_sat drive the clamps and the tanh into their
    # nonlinear range, so Newton needs several iterations.
    net = builders.layered((6, 7, 5, 3), gain=2.0, bias_scale=0.3, seed=4, **options)
    check_agreement(net, 4)


@pytest.mark.parametrize("group", ("h1", "out"))
def test_agrees_with_numpy_with_couplings_inside_a_group(group):
    # A coupling from a group to itself makes that group's diagonal block dense.
    net = lateral(
        builders.layered(
            (4, 5, 4, 3),
            forward="tanh",
            backward="vccs",
            resistors=True,
            gain=2.0,
            bias_scale=0.3,
            seed=5,
        ),
        group,
        5,
    )
    check_agreement(net, 5)


# ------------------------------------------------------------------------------------ refusals


def test_refuses_a_network_that_is_not_a_chain():
    net = builders.layered((4, 5, 6, 3), forward="vccs", backward="vccs", seed=1)
    skip = Coupling("skip", "vccs", "h1", "out", np.full((3, 5), 1e-5))
    net = replace(net, couplings=net.couplings + (skip,))
    u, _ = make_batch(net, 0)
    with pytest.raises(ValueError) as err:
        LAYERED.solve(net, Phase(), u)
    message = str(err.value)
    for part in ("'skip'", "'h1'", "'out'", "h1, h2, out", "NumpyEngine"):
        assert part in message, f"{part!r} missing from: {message}"
    # the reference engine solves it
    assert NUMPY.solve(net, Phase(), u).converged.all()


def test_convergence_error_names_network_phase_and_samples():
    # Output nodes whose leak a transconductor from the node to itself cancels (a negative
    # conductance -g beside the leak g), driven by a bias current: no operating point exists; Newton
    # meets a singular Jacobian and the pseudo-transient runs away.
    net = builders.random_network("feedforward", seed=0)
    out = net.free_groups[-1]
    g = 1e-4
    groups = tuple(
        replace(grp, leak=g, bias=np.full(grp.size, 1e-6), clamp=None) if grp is out else grp
        for grp in net.groups
    )
    cancel = Coupling("cancel", "vccs", out.name, out.name, g * np.eye(out.size))
    floating = replace(
        net,
        groups=groups,
        couplings=tuple(
            replace(c, weight=np.zeros_like(c.weight)) if c.dst == out.name else c
            for c in net.couplings
        )
        + (cancel,),
    )
    u, _ = make_batch(net, 0)
    with pytest.raises(ConvergenceError) as ours:
        LAYERED.solve(floating, Phase(), u)
    message = str(ours.value)
    assert message.startswith(
        "layered engine: network 'random_feedforward', phase free: neither Newton (200 "
        "iterations) nor pseudo-transient continuation converged for sample(s) ["
    ), message
    assert "the Jacobian was singular" in message and "no DC path to ground" in message
    assert ours.value.samples == tuple(range(BATCH))  # the rows, for callers that leave them out


def test_pseudo_transient_continues_where_newton_stops():
    """With Newton cut short (max_iter 1), the samples continue by pseudo-transient continuation and
    end at the operating point full Newton finds (unique here), as in the dense engine."""
    net = builders.random_network("nonreciprocal", seed=0)
    u, _ = make_batch(net, 0)
    full = LAYERED.solve(net, Phase(), u)
    short = LayeredEngine(max_iter=1).solve(net, Phase(), u)
    assert (short.iterations > full.iterations).any()  # the continuation did run
    # both converge to vtol 1e-12 V; measured difference ~2e-12 V (1e-11 V to the dense engine's
    # continuation, whose linear solves round differently)
    assert np.abs(short.x - full.x).max() <= 1e-9
    assert np.abs(short.x - NumpyEngine(max_iter=1).solve(net, Phase(), u).x).max() <= 1e-9


def test_unstable_newton_solution_is_replaced_when_stability_is_checked():
    """layered:12-8-4 at gain 1 has several DC solutions for sample 0 (see test_settle.py): Newton
    lands on one the circuit does not settle into. With check_stability the engine continues by
    pseudo-transient continuation and ends where the dense engine (and ngspice's transient) does."""
    net = from_shorthand("layered:12-8-4", seed=1, gain=1.0)
    u = np.random.default_rng(0).uniform(0, 1, (1, 12))
    dense = NUMPY.solve(net, Phase(), u)
    unchecked = LayeredEngine().solve(net, Phase(), u)
    checked = LAYERED.solve(net, Phase(), u)  # check_stability=True
    assert np.abs(unchecked.x - dense.x).max() > 0.01  # measured 0.2 V: the unstable solution
    assert checked.stable.all()
    assert np.abs(checked.x - dense.x).max() <= TOL


def test_bad_warm_start_is_refused():
    net = builders.random_network("feedforward", seed=0)
    u, _ = make_batch(net, 0)
    with pytest.raises(ValueError, match="x_init has shape"):
        LAYERED.solve(net, Phase(), u, x_init=np.zeros((BATCH, net.n_free + 1)))


def test_stability_is_not_checked_by_default():
    net = builders.random_network("feedforward", seed=0)
    u, _ = make_batch(net, 0)
    assert LayeredEngine().solve(net, Phase(), u).stable is None


# ------------------------------------------------------------------------------------ MNIST scale


def test_mnist_scale_free_phase_is_fast_and_agrees():
    net = builders.layered((784, 500, 10), forward="vccs", backward=None)
    u, _ = make_batch(net, 7, batch=50)
    engine = LayeredEngine()
    engine.solve(net, Phase(), u[:2])  # warm up (first BLAS calls)
    start = time.perf_counter()
    got = engine.solve(net, Phase(), u)
    t_layered = (time.perf_counter() - start) / len(u)
    # The reference needs ~0.2-0.5 s per sample here (a dense 510 x 510 solve per Newton step), so
    # it gets the first 4 samples only; samples are independent, so its per-sample time on a
    # smaller batch is, if anything, flattering to it.
    n_ref = 4
    start = time.perf_counter()
    ref = NumpyEngine(check_stability=False).solve(net, Phase(), u[:n_ref])
    t_numpy = (time.perf_counter() - start) / n_ref
    compare("784-500-10 free", ref.x, got.x[:n_ref], BIG_TOL)
    np.testing.assert_array_equal(got.iterations[:n_ref], ref.iterations)
    assert t_numpy >= SPEEDUP * t_layered, (
        f"784-500-10 free phase: layered {t_layered * 1e3:.2f} ms per sample (batch {len(u)}), "
        "numpy "
        f"{t_numpy * 1e3:.2f} ms per sample (batch {n_ref}): less than {SPEEDUP}x faster"
    )


def test_mnist_inputs_aep_phase_with_feedback_agrees():
    # Backward VCCS between hidden and output layers: the output Schur complement is a dense
    # 10 x 10 block per sample, and the AEP correction adds W^T blocks. 200 hidden nodes instead
    # of 500 (the same code paths) and few samples, because the reference is slow at this size.
    net = builders.layered((784, 200, 10), forward="vccs", backward="vccs", seed=1)
    u, y = make_batch(net, 8, batch=3)
    reference = NumpyEngine(check_stability=False)
    x_free = reference.solve(net, Phase(), u).x
    phase = Phase("nudged", 1e-6, aep=True)
    ref = reference.solve(net, phase, u, y, x0=x_free)
    got = LayeredEngine().solve(net, phase, u, y, x0=x_free)
    compare("784-200-10 with feedback, aep", ref.x, got.x, BIG_TOL)


def test_backtrack_accepts_the_first_halving_that_decreases_the_residual():
    """The shared line search against halving by hand: F(x) = x^2 - 4 from x = 3 with a step of
    -100 (an overshoot: t = 1, 1/2, ... 1/16 increase |F|^2, t = 1/32 is the first accepted), a row
    whose full step is accepted, and a row whose residual is NaN everywhere beyond x (gives up);
    then with fewer halvings allowed than the overshoot needs."""

    def residual(rows, points):
        f = points**2 - 4.0
        f[rows == 2] = np.nan
        return f

    x = np.array([[3.0], [3.0], [3.0]])
    step = np.array([[-100.0], [-1.0], [-1.0]])
    merit = (x[:, 0] ** 2 - 4.0) ** 2
    t, gave_up = backtrack(residual, x, step, merit, residual(np.arange(3), x + step))
    expected = 1.0
    while ((3 - 100 * expected) ** 2 - 4) ** 2 > merit[0] * (1 - 1e-4 * expected):
        expected /= 2
    assert t[0] == expected == 1 / 32
    assert t[1] == 1.0
    assert gave_up.tolist() == [2] and t[2] == 2.0**-MAX_HALVINGS
    # with a budget of 4 halvings the overshooting row gives up too, at t = 1/16
    t, gave_up = backtrack(residual, x, step, merit, residual(np.arange(3), x + step), halvings=4)
    assert gave_up.tolist() == [0, 2] and t[0] == t[2] == 1 / 16 and t[1] == 1.0


def test_pseudo_transient_holds_each_step_to_max_step():
    """One node, C dx/dt = g (5 V - x) from 0 V: free steps reach 5 V in a few steps (dt grows
    tenfold as |F| falls), steps held to 0.1 V move by at most 0.1 V and need at least 50."""
    cap, g = np.array([1e-12]), 1e-3

    def evaluate(rows, x):
        f = g * (5.0 - x)
        return f, lambda shift, sel: f[sel] / (shift + g), np.full(1, -g)

    visited = []
    free_x, free_it, free_ok = pseudo_transient(
        np.zeros((1, 1)), evaluate, cap, vtol=1e-12, itol=1e-15
    )
    held_x, held_it, held_ok = pseudo_transient(
        np.zeros((1, 1)),
        lambda r, x: (visited.append(x.copy()), evaluate(r, x))[1],
        cap,
        vtol=1e-12,
        itol=1e-15,
        max_step=0.1,
    )
    assert free_ok.all() and held_ok.all()
    assert abs(free_x[0, 0] - 5) <= 1e-9 and abs(held_x[0, 0] - 5) <= 1e-9
    assert free_it[0] < 20 <= 50 <= held_it[0]
    assert np.abs(np.diff(np.concatenate(visited)[:, 0])).max() <= 0.1 + 1e-15


@pytest.mark.parametrize("engine", [LayeredEngine(), NumpyEngine()], ids=lambda e: e.name)
def test_slow_nodes_do_not_pass_for_settled(engine):
    """Capacitances only set the dynamics, not the operating point. With hidden nodes of 0.05 F
    beside outputs of 1 pF, the pseudo-transient fallback (needed: gain 1 makes Newton fail for some
    samples) took a short step of the slow nodes for convergence: 11 of 50 samples were reported
    converged with KCL residuals up to 5e-5 A (measured before the fix)."""
    from circuitep import kcl

    net = from_shorthand("layered:10-8-4", seed=1, gain=1.0)
    slow = replace(
        net, groups=tuple(replace(g, capacitance=0.05) if g.name == "h1" else g for g in net.groups)
    )
    u = np.random.default_rng(0).uniform(0, 1, (50, 10))
    op = engine.solve(slow, Phase(), u)
    f, _ = kcl.residual(slow, slow.expand_inputs(u), op.x, jacobian=False)
    assert op.converged.all() and np.abs(f).max() <= 1e-12, f"max |F| = {np.abs(f).max():.1e} A"


def test_the_memo_of_chain_and_drive_never_changes_an_answer():
    """The engine remembers the last network's chain and the last batch's input drive: a new
    batch, new parameters (another network object) or another phase of the same batch are solved
    as a fresh engine solves them, bit for bit."""
    net = builders.random_network("nonreciprocal", seed=1)
    rng = np.random.default_rng(5)
    u1, u2 = rng.uniform(0, 1, (2, 3, net.n_inputs))
    y = rng.uniform(0, 0.5, (3, net.n_outputs))
    other = net.with_params({c.name: 1.5 * c.weight for c in net.couplings})
    engine = LayeredEngine()
    cases = [
        (net, u1, Phase()),
        (net, u1, Phase("nudged", 1e-6)),
        (net, u2, Phase()),
        (other, u2, Phase()),
        (other, u2, Phase("nudged", -1e-6)),
        (net, u1, Phase()),
    ]
    for n, u, phase in cases:
        targets = None if phase.kind == "free" else y
        got = engine.solve(n, phase, u, targets).x
        assert np.array_equal(got, LayeredEngine().solve(n, phase, u, targets).x), phase.label


@pytest.mark.parametrize("pattern", ["feedforward", "backward", "both", "dense"])
def test_block_elimination_equals_the_dense_solve(pattern):
    """``_Blocks.solve`` against ``numpy.linalg.solve`` of the same dense Jacobian, for the block
    patterns the engine meets: a free feedforward chain (lower blocks only), its AEP-corrected
    nudged phase (upper blocks only, lower ones constant zeros: solved by matrix-vector
    back-substitution, never forming ``S^-1 U``), a reciprocal chain (both) and dense diagonal
    blocks. Tolerance 1e-12 relative: a well-conditioned random system in float64."""
    from circuitep.engines.layered import _Blocks

    rng = np.random.default_rng(0)
    sizes, batch = (5, 4, 3, 2), 3
    bounds = np.cumsum((0,) + sizes)
    slices = tuple(slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    diag = [
        rng.uniform(2.0, 3.0, (batch, n))
        if pattern != "dense"
        else np.eye(n) * 3 + 0.1 * rng.standard_normal((batch, n, n))
        for n in sizes
    ]
    off = {}
    for k in range(len(sizes) - 1):
        lower = 0.3 * rng.standard_normal((sizes[k + 1], sizes[k]))
        upper = 0.3 * rng.standard_normal((batch, sizes[k], sizes[k + 1]))
        if pattern in ("feedforward", "both", "dense"):
            off[k + 1, k] = lower
        else:
            off[k + 1, k] = np.zeros_like(lower)  # W - W under the correction
        if pattern in ("backward", "both", "dense"):
            off[k, k + 1] = upper
    blocks = _Blocks(slices, diag, off)
    rhs = rng.standard_normal((batch, bounds[-1]))
    want = np.linalg.solve(blocks.dense(), rhs[..., None])[..., 0]
    np.testing.assert_allclose(blocks.solve(rhs), want, rtol=1e-12, atol=1e-12)
