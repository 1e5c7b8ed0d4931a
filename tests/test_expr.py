"""The expression form behind every behavioural source (circuitep.elements.expr, issue 15 item 1).

- expr itself: the text it prints (parentheses, numbers), that the netlist's checker accepts it,
  its numpy evaluation, its refusals (bad node names, non-finite or non-numeric constants), and
  ngspice evaluating the printed text of random trees to the value numpy computes (to 1e-10:
  ngspice rounds the constants it reads, see NGSPICE_TOL).
- Every kind's expression against its numpy stamp at random voltages, to 1e-12 relative (of the
  largest value compared): the tanh coupling's currents and slopes, the AEP correction, the diode
  clamp's adjoint conductance (forward, reverse and beyond the exponent cap) and the softmax nudge.
  The SPICE of the same expressions is checked against the stamps through ngspice in
  tests/test_elements.py (and, for whole circuits, tests/test_standalone_netlists.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_elements import _currents, example

from circuitep import kcl
from circuitep.costs import CrossEntropy
from circuitep.devices import diode_clamp_current, diode_law, law_current
from circuitep.elements import aep, diode_clamp, nudge, registry
from circuitep.elements import expr as ex
from circuitep.elements.blocks import dense
from circuitep.netlist import Element, check_expression

TOL = 1e-12
#: ngspice 39 keeps 11 significant digits of a B source's constants (measured: ``v(a)*0.83619769345
#: 15577`` at v(a) = 0.7 V gives 0.585338385415, i.e. 0.7 * 0.83619769345; largest difference over
#: the random trees below 3e-11 relative), so its reading of the text is checked to 1e-10.
NGSPICE_TOL = 1e-10


def _close(got, want, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    tol = TOL * np.abs(want).max(initial=0) + 1e-300
    assert got.shape == want.shape and np.abs(got - want).max() <= tol, (
        f"{what}:\nexpr  {got}\nnumpy {want}"
    )


a, b, c = ex.v("a"), ex.v("b"), ex.v("x")


# ------------------------------------------------------------------------------------ printing


@pytest.mark.parametrize(
    ("e", "text"),
    [
        (a + b + c, "v(a)+v(b)+v(x)"),
        (a + (b + c), "v(a)+(v(b)+v(x))"),  # the tree's order, not re-associated
        (a - (b - c), "v(a)-(v(b)-v(x))"),
        (a / (b * c), "v(a)/(v(b)*v(x))"),
        (a * b / c, "v(a)*v(b)/v(x)"),
        ((a + b) * c, "(v(a)+v(b))*v(x)"),
        (a * b + c, "v(a)*v(b)+v(x)"),
        (-(a + b), "-(v(a)+v(b))"),
        (-(a * b) * c, "-v(a)*v(b)*v(x)"),
        (a * -b, "v(a)*(-v(b))"),
        (a - -0.5, "v(a)-(-0.5)"),
        (-ex.Const(-0.5) * a, "--0.5*v(a)"),
        (3 * a + 1, "3*v(a)+1"),
        (0.1 * a, "0.1*v(a)"),
        (a * 1e-12 + 2.5e21, "v(a)*1e-12+2.5e+21"),
        (ex.Const(0.0) + ex.Const(-0.0), "0+0"),
        (ex.exp(a / 0.3) - ex.tanh(-a), "exp(v(a)/0.3)-tanh(-v(a))"),
        (ex.minimum(a - b, -3 * ex.Const(0.02)), "min(v(a)-v(b),-3*0.02)"),
        (ex.where(ex.ge(a - b, -0.06), a, 0) + 1e-12, "(((v(a)-v(b))>=-0.06)?(v(a)):(0))+1e-12"),
        (ex.total([a, b, c]), "v(a)+v(b)+v(x)"),
    ],
    ids=repr,
)
def test_printing(e, text):
    assert ex.to_spice(e) == text
    assert check_expression("bx", text) == text


def test_numpy_numbers_and_arrays_combine_with_expressions():
    assert ex.to_spice(np.float64(0.25) * a) == "0.25*v(a)"
    assert ex.to_spice(a * np.int64(2)) == "v(a)*2"
    assert ex.to_spice(float(np.float32(0.1)) + a) == "0.10000000149011612+v(a)"


# ---------------------------------------------------------------------------------- evaluation


def test_evaluation_vectorised_over_a_batch():
    rng = np.random.default_rng(0)
    va, vb = rng.normal(size=5), rng.normal(size=5)
    volts = {"a": va, "b": vb}
    e = ex.where(ex.ge(a, b), ex.exp(a) * 2, ex.tanh(b) / 3) - ex.minimum(a, -b) - 1
    want = np.where(va >= vb, np.exp(va) * 2, np.tanh(vb) / 3) - np.minimum(va, -vb) - 1
    np.testing.assert_array_equal(ex.evaluate(e, volts), want)
    np.testing.assert_array_equal(ex.evaluate(ex.Const(2), volts), 2.0)
    # the branch not selected may overflow or divide by zero without a warning
    got = ex.evaluate(ex.where(ex.ge(a, 0), a, 1 / a), {"a": np.array([0.0, -2.0])})
    np.testing.assert_array_equal(got, [0.0, -0.5])


def test_missing_voltage_named():
    with pytest.raises(ValueError, match=r"voltage of node 'b'; given \['a'\]"):
        ex.evaluate(a + b, {"a": np.zeros(2)})


# ------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    "name", ["A", "a b", "", "a)", "v(a)", "a.b", "_a", "a\n.end", "gnd", "e", 3, None]
)
def test_bad_node_names_refused(name):
    with pytest.raises(ValueError, match="expression node"):
        ex.v(name)


@pytest.mark.parametrize("x", [float("nan"), float("inf"), -np.inf, np.float64("nan")])
def test_non_finite_numbers_refused(x):
    with pytest.raises(ValueError, match="expression constant"):
        ex.Const(x)
    with pytest.raises(ValueError, match="expression constant"):
        a * x


@pytest.mark.parametrize("x", [True, np.bool_(False), "1", None, [1.0], 1j])
def test_non_numbers_refused(x):
    with pytest.raises(TypeError, match="expression constant must be a number"):
        ex.Const(x)


def test_other_malformed_expressions_refused():
    with pytest.raises(ValueError, match="beyond 2\\*\\*53"):
        ex.Const(2**53 + 1)
    with pytest.raises(ValueError, match="operator '\\^'"):
        ex.Binary("^", a, b)
    with pytest.raises(ValueError, match="function 'sqrt'"):
        ex.Call("sqrt", (a,))
    with pytest.raises(ValueError, match="min takes 2 argument"):
        ex.Call("min", (a,))
    with pytest.raises(TypeError, match="condition must be a comparison"):
        ex.Where(a, a, b)
    with pytest.raises(TypeError, match="must be a value expression"):
        ex.ge(a, b) + 1
    with pytest.raises(TypeError, match="must be a value expression"):
        ex.to_spice(ex.ge(a, b))
    with pytest.raises(ValueError, match="at least one term"):
        ex.total([])


# ------------------------------------------------------------- ngspice reads what numpy computes


def _random_tree(rng, depth: int) -> ex.Expr:
    if depth == 0 or rng.uniform() < 0.2:
        leaf = rng.integers(3)
        return ex.v("abx"[rng.integers(3)]) if leaf else ex.Const(float(rng.normal(0, 2)))
    op = rng.integers(8)
    x, y = _random_tree(rng, depth - 1), _random_tree(rng, depth - 1)
    if op < 4:
        return ex.Binary("+-*/"[op], x, y if op < 3 else 1.5 + ex.tanh(y))  # no division by ~0
    if op == 4:
        return -x
    if op == 5:
        return ex.exp(ex.tanh(x))
    if op == 6:
        return ex.minimum(x, y)
    return ex.where(ex.ge(x, y), x - y, y * 0.5)


@pytest.mark.ngspice
def test_ngspice_evaluates_the_printed_text_as_numpy_does(ngspice_engine_factory):
    ngspice_engine_factory()  # the ngspice gate
    rng = np.random.default_rng(3)
    held = {"a": 0.7, "b": -1.3, "x": 0.2}
    trees = [_random_tree(rng, 5) for _ in range(40)]
    probes = {f"p{k}": 0.0 for k in range(len(trees))}
    els = [
        Element("B", f"b{p}", ("0", p), ex.to_spice(t)) for p, t in zip(probes, trees, strict=True)
    ]
    got = _currents(els, held | probes)
    volts = {k: np.array(x) for k, x in held.items()}
    for p, t in zip(probes, trees, strict=True):
        want = float(ex.evaluate(t, volts))
        tol = NGSPICE_TOL * max(abs(want), 1.0)
        assert abs(got[p] - want) <= tol, (ex.to_spice(t), got[p], want)


# --------------------------------------------------------------- each kind against its stamp

NONLINEAR = [k for k, m in registry.COUPLINGS.items() if hasattr(m, "slope_expression")]


@pytest.mark.parametrize("kind", NONLINEAR)
def test_slope_expressions_match_the_jacobian(kind):
    m = registry.COUPLINGS[kind]
    c = example(kind, "c", "a", "b", (3, 4), seed=2)
    vs = np.random.default_rng(5).uniform(-1.5, 1.5, (6, 4))
    volts = {f"a_{j}": vs[:, j] for j in range(4)}
    ds, _ = m.jacobian(c, vs)
    want = dense(ds) if dense(ds).ndim == 3 else np.broadcast_to(dense(ds), (6, 3, 4))
    for i, j in np.argwhere(c.mask):
        got = ex.evaluate(m.slope_expression(c, i, j, ex.v(f"a_{j}")), volts)
        _close(got, want[:, i, j], f"{kind} slope ({i}, {j})")


def test_tanh_current_expressions_match_the_stamp():
    m = registry.COUPLINGS["tanh"]
    c = example("tanh", "c", "a", "b", (3, 4), seed=4)
    vs = np.random.default_rng(6).uniform(-1.5, 1.5, (6, 4))
    volts = {f"a_{j}": vs[:, j] for j in range(4)}
    got = np.zeros((6, 3))
    for i, j in np.argwhere(c.mask):
        got[:, i] += ex.evaluate(m.current_expression(c, i, j, ex.v(f"a_{j}")), volts)
    _close(got, m.drive(c, vs), "tanh currents")


@pytest.mark.parametrize("kind", NONLINEAR)
def test_aep_correction_expressions_match_the_engines_correction(kind):
    m = registry.COUPLINGS[kind]
    c = example(kind, "c", "a", "b", (2, 3), seed=8)
    nodes = [f"b_{i}" for i in range(2)] + [f"a_{j}" for j in range(3)]
    link = kcl.Link(c, m, slice(0, 2), slice(2, 5), slice(2, 5), 0, 1)
    rng = np.random.default_rng(9)
    x, x0 = rng.uniform(-1, 1, (4, 5)), rng.uniform(-1, 1, (4, 5))
    want = np.zeros((4, 5))
    aep.apply(want, aep.terms([link], x0), x, x0)
    volts = {n: x[:, k] for k, n in enumerate(nodes)}
    volts |= {f"ref_{n}": x0[:, k] for k, n in enumerate(nodes)}
    got = np.zeros((4, 5))
    for i, j in np.argwhere(c.mask):
        a_, b_ = nodes[i], nodes[2 + j]
        into_a, into_b = aep.correction_expressions(m, c, i, j, a_, b_, lambda n: f"ref_{n}")
        got[:, i] += ex.evaluate(into_a, volts)
        got[:, 2 + j] += ex.evaluate(into_b, volts)
    _close(got, want, f"{kind} AEP correction")


@pytest.mark.parametrize(
    ("i_sat", "n", "temperature", "bv"),
    [
        (1e-12, 1.0, 27.0, None),
        (3e-9, 1.7, 27.0, None),
        (2e-15, 1.02, 27.0, None),
        (1e-12, 1.0, -40.0, None),
        (1e-12, 1.3, 125.0, 0.9),  # breakdown below -0.9 V, within the range evaluated
    ],
)
def test_diode_conductance_expressions_match_the_device_model(i_sat, n, temperature, bv):
    law = diode_law(i_sat, n, temperature, bv=bv, nbv=1.5 if bv else None)
    vte = law.vte
    vd = np.concatenate(
        [np.linspace(-2, 1, 301), [-3 * vte, -3 * vte * (1 - 1e-15), 80 * vte, 80 * vte + 0.5]]
    )
    got = ex.evaluate(diode_clamp.conductance_expression(ex.v("d"), law), {"d": vd})
    want = law_current(vd, law)[1]
    np.testing.assert_allclose(got, want, rtol=TOL, atol=0)  # elementwise: 1e-12 S .. 1e24 S
    # the adjoint clamp: both diodes' conductance times the adjoint voltage
    x, lam = np.linspace(-1.5, 2.5, 81), np.linspace(-1, 1, 81)
    volts = {"h_0": x, "vlo_h": np.full(81, -0.4), "vhi_h": np.full(81, 0.6), "adj_h_0": lam}
    got = ex.evaluate(diode_clamp.adjoint_expression("h_0", "adj_h_0", "h", law), volts)
    want = -diode_clamp_current(x, -0.4, 0.6, law)[1] * lam
    np.testing.assert_allclose(got, want, rtol=TOL, atol=0)


@pytest.mark.parametrize("tau", [0.1, 0.037])
def test_softmax_nudge_expressions_match_the_cost(tau):
    rng = np.random.default_rng(11)
    x, y = rng.uniform(-0.5, 0.5, (7, 4)), rng.uniform(0, 2, (7, 4))
    beta = 3e-6
    outs, tgts = [f"out_{k}" for k in range(4)], [f"tgt_{k}" for k in range(4)]
    volts = {"beta": np.full(7, beta)} | {o: x[:, k] for k, o in enumerate(outs)}
    volts |= {t: y[:, k] for k, t in enumerate(tgts)}
    exprs = nudge.softmax_expressions(outs, tgts, tau, "beta")
    got = np.stack([ex.evaluate(e, volts) for e in exprs], axis=1)
    want = nudge.current(beta, CrossEntropy(tau), x, y)
    for row in range(7):
        _close(got[row], want[row], f"softmax nudge, sample {row}")
    texts = [el.value for el in nudge.spice(outs, tgts, outs, beta, CrossEntropy(tau), "beta")]
    assert texts == [ex.to_spice(e) for e in exprs]
