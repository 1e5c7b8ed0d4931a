"""The contract every element kind keeps (issue 15): one test body over every kind the registry
lists.

- Its SPICE against its numpy stamp, element by element: every node held by a voltage source at
  random operating points, ngspice's source currents against the stamp's currents (free phase),
  the AEP phase's reversed elements (linear kinds) or correction slopes (non-linear kinds), and
  the adjoint elements (``J^T`` of the stamp) with the adjoint nodes held at random values.
- Its learning rule against central finite differences of ``<s, F>`` in each weight.
- A whole circuit of the kind (forward, feedback between free groups, from inputs) in every phase:
  ngspice (literal and folded) and the layered engine against the numpy engine, to 1e-9 V.

Tolerances: the stamp currents agree to 1e-9 relative (ngspice computes ``R`` and ``G`` currents
in double precision from the same numbers, measured ~4e-16; it keeps 11 significant digits of a
``B`` source's constants, measured 2e-11 for tanh, see tests/test_expr.py); finite differences of a
function linear in the weights to 1e-7 relative; whole circuits to 1e-9 V (measured ~1e-13 V).
"""

from __future__ import annotations

import numpy as np
import pytest

from circuitep import kcl
from circuitep.elements import expr, registry
from circuitep.elements.blocks import dense
from circuitep.engines.base import Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.ngspice_engine import shared_session
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.netlist import Element, Netlist, Section, write
from circuitep.spec import Coupling, Network, NodeGroup

KINDS = registry.KINDS
STAMP_TOL = 1e-9  # relative, with an absolute floor of 1e-18 A
FD_TOL = 1e-7
CIRCUIT_TOL = 1e-9  # V


def example(
    kind: str, name: str, src: str, dst: str, shape: tuple[int, int], seed: int
) -> Coupling:
    """A coupling of ``kind`` with random weights and settings around the table's typical values."""
    rng = np.random.default_rng(seed)
    m = registry.COUPLINGS[kind]
    w = m.WEIGHT.typical * (
        rng.uniform(0.2, 2.0, shape) if m.WEIGHT.nonnegative else rng.normal(0, 1, shape)
    )
    if src == dst:
        w = w * (1 - np.eye(shape[0]))
    fields, settings = {}, {}
    for p in m.SETTINGS:
        size = shape if p.per_element else ()
        value = p.typical * rng.uniform(0.5, 1.5, size)
        if not (p.nonnegative or p.positive):
            value = value * rng.choice([-1.0, 1.0], size)
        (fields if p.field else settings)[p.name] = value if p.per_element else float(value)
    mask = rng.uniform(size=shape) < 0.85
    if src == dst:  # no element from a node to itself
        mask &= ~np.eye(shape[0], dtype=bool)
    else:
        mask[0, 0] = True
    return Coupling(name, kind, src, dst, w, mask, settings=settings or None, **fields)


def test_every_kind_declares_its_table():
    for name, m in registry.COUPLINGS.items():
        assert m.NAME == name and m.POWER_CLASS in ("resistors", "transconductors")
        for p in (m.WEIGHT,) + tuple(m.SETTINGS):
            assert p.unit and p.doc and p.typical is not None, (name, p)
            assert p.default is not None or p is m.WEIGHT, (name, p)
    table = registry.parameter_table()
    assert all(f"kind {k}:" in table for k in KINDS)


# ------------------------------------------------------------------------- SPICE against numpy


def _held(nodes: list[str], volts: np.ndarray) -> list[Element]:
    return [
        Element("V", f"vhold_{n}", (n, "0"), float(v)) for n, v in zip(nodes, volts, strict=True)
    ]


def _currents(els: list[Element], held: dict[str, float]) -> dict[str, float]:
    """ngspice's operating point of ``els`` with every node held: the current each element set
    drives into each held node (A), from the holding sources' branch currents."""
    nodes = list(held)
    text = write(
        Netlist(
            "* stamp",
            (
                Section("held", tuple(_held(nodes, np.array(list(held.values()))))),
                Section("elements", tuple(els)),
            ),
            (),
            (("reltol", 1e-10),),
        )
    )
    session, token = shared_session(), object()
    session.add_circuit(token, text)
    try:
        session.checked("op")
        return {n: session.vector(f"vhold_{n}#branch")[0] for n in nodes}
    finally:
        session.remove(token)


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    tol = STAMP_TOL * np.abs(want).max(initial=0) + 1e-18
    assert np.abs(got - want).max() <= tol, f"{what}:\nngspice {got}\nnumpy   {want}"


@pytest.mark.ngspice
@pytest.mark.parametrize("kind", KINDS)
def test_spice_matches_the_stamp_at_random_operating_points(kind, ngspice_engine_factory):
    ngspice_engine_factory()  # the ngspice gate
    m = registry.COUPLINGS[kind]
    c = example(kind, "c", "a", "b", (2, 3), seed=1)
    src, dst = [f"a_{j}" for j in range(3)], [f"b_{i}" for i in range(2)]
    adj_src, adj_dst = [f"adj_{n}" for n in src], [f"adj_{n}" for n in dst]
    link = kcl.Link(c, m, slice(0, 2), slice(0, 3), slice(2, 5), 0, 1)
    rng = np.random.default_rng(7)
    for point in range(3):
        vs, vd = rng.uniform(-0.6, 1.2, (1, 3)), rng.uniform(-0.6, 1.2, (1, 2))
        held = dict(zip(src + dst, np.concatenate([vs[0], vd[0]]), strict=True))
        i_dst, i_src = kcl.coupling_currents(link, vd, vs)
        i_src = np.zeros((1, 3)) if i_src is None else i_src
        got = _currents(m.spice(c, src, dst), held)
        _close(np.array([got[n] for n in dst]), i_dst[0], f"{kind} free, point {point}, into dst")
        _close(np.array([got[n] for n in src]), i_src[0], f"{kind} free, point {point}, into src")
        ds, sd = m.jacobian(c, vs)
        a = dense(ds)[0] if dense(ds).ndim == 3 else dense(ds)
        if sd is not None:
            a = a - (dense(sd)[0] if dense(sd).ndim == 3 else dense(sd)).T
        if not m.RECIPROCAL and m.LINEAR:  # AEP: the correction cancels A v_src and adds A^T v_dst
            got = _currents(m.spice_reversed(c, src, dst), held)
            _close(
                np.array([got[n] for n in dst]), i_dst[0] - a @ vs[0], f"{kind} reversed, into dst"
            )
            _close(
                np.array([got[n] for n in src]),
                i_src[0] + a.T @ vd[0],
                f"{kind} reversed, into src",
            )
        if not m.LINEAR:  # AEP: the correction's slope expressions, evaluated at v_src
            probes, els = {}, []
            for i, j in np.argwhere(c.mask):
                node = f"p_{i}_{j}"
                probes[node] = 0.0
                slope = expr.to_spice(m.slope_expression(c, i, j, expr.v(src[j])))
                els.append(Element("B", f"bslope_{i}_{j}", ("0", node), slope))
            got = _currents(els, held | probes)
            want = [a[i, j] for i, j in np.argwhere(c.mask)]
            _close(np.array([got[n] for n in probes]), np.array(want), f"{kind} AEP slope")
        lam_s, lam_d = rng.normal(0, 1, 3), rng.normal(0, 1, 2)  # adjoint: J^T of the stamp
        g_dst, g_src = m.loads(c)
        ds_, sd_ = (dense(b) if b is not None else None for b in (ds, sd))
        ds_ = ds_[0] if ds_.ndim == 3 else ds_
        want_dst = -(g_dst if g_dst is not None else 0) * lam_d
        want_src = ds_.T @ lam_d - (g_src if g_src is not None else 0) * lam_s
        if sd_ is not None:
            want_dst = want_dst + (sd_[0] if sd_.ndim == 3 else sd_).T @ lam_s
        adj = m.spice_adjoint(c, src, dst, adj_src, adj_dst) or []
        got = _currents(
            adj, held | dict(zip(adj_src + adj_dst, np.concatenate([lam_s, lam_d]), strict=True))
        )
        _close(np.array([got[n] for n in adj_dst]), want_dst, f"{kind} adjoint, into adj dst")
        _close(np.array([got[n] for n in adj_src]), want_src, f"{kind} adjoint, into adj src")


# ------------------------------------------------------------------ learning rule against FD


def small_network(kind: str, seed: int = 0) -> Network:
    """in(3) -> h(4) -> out(2) of ``kind``, feedback out -> h, a coupling of h to itself; leaks,
    biases, clamps on h."""
    groups = (
        NodeGroup("in", "input", 3),
        NodeGroup("h", "hidden", 4, leak=1e-4, bias=2e-6, clamp=(-0.45, 0.55)),
        NodeGroup("out", "output", 2, leak=1e-4, bias=-1e-6),
    )
    couplings = (
        example(kind, "fwd1", "in", "h", (4, 3), seed),
        example(kind, "fwd2", "h", "out", (2, 4), seed + 1),
        example(kind, "bwd2", "out", "h", (4, 2), seed + 2),
    )
    couplings += (example(kind, "self1", "h", "h", (4, 4), seed + 3),)
    scaled = tuple(
        Coupling(c.name, c.kind, c.src, c.dst, c.weight * 0.3, c.mask, c.v_sat, c.settings)
        for c in couplings
    )
    return Network(f"contract_{kind}", groups, scaled)


@pytest.mark.parametrize("kind", KINDS)
def test_learning_rule_matches_finite_differences(kind):
    net = small_network(kind)
    rng = np.random.default_rng(3)
    u = net.expand_inputs(rng.uniform(0, 1, (3, net.n_inputs)))
    x, s = rng.uniform(-0.5, 0.7, (3, net.n_free)), rng.normal(0, 1, (3, net.n_free))
    grads = kcl.param_gradients(net, u, x, s)
    params = net.params()
    masks = {c.name: c.mask for c in net.couplings}

    def phi(p):  # -mean_b <s, F(theta)>: its gradient is the learning rule
        f, _ = kcl.residual(net.with_params(p), u, x, jacobian=False)
        return -(s * f).sum(1).mean()

    for key, value in params.items():
        fd = np.zeros(value.shape)
        mask = masks.get(key, np.ones(value.shape, bool))
        for idx in np.ndindex(value.shape):
            if not mask[idx]:
                continue
            h = 1e-3 * (abs(value[idx]) + 1e-6)
            plus, minus = dict(params), dict(params)
            plus[key] = value.copy()
            plus[key][idx] += h
            minus[key] = value.copy()
            minus[key][idx] -= h
            fd[idx] = (phi(plus) - phi(minus)) / (2 * h)
        scale = np.abs(fd).max(initial=0) + 1e-30
        assert np.abs(grads[key] - fd).max() <= FD_TOL * scale, (
            f"{kind} {key}:\nrule {grads[key]}\nfd   {fd}"
        )


# ------------------------------------------------------------------------ whole circuits


@pytest.mark.ngspice
@pytest.mark.parametrize("form", ["literal", "folded"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_phase_agrees_across_engines(kind, form, ngspice_engine_factory):
    """Free, nudged, AEP-nudged and dyadic (adjoint half too) phases of a circuit of the kind."""
    net = small_network(kind)
    rng = np.random.default_rng(5)
    u, y = rng.uniform(0, 1, (3, net.n_inputs)), rng.uniform(0, 0.5, (3, net.n_outputs))
    numpy_, spice = NumpyEngine(), ngspice_engine_factory(form)
    x0 = numpy_.solve(net, Phase(), u).x
    for phase in (
        Phase(),
        Phase("nudged", 1e-6),
        Phase("nudged", 1e-6, aep=True),
        Phase("dyadic", 1e-4),
    ):
        targets = None if phase.kind == "free" else y
        ref = numpy_.solve(net, phase, u, targets, x0=x0 if phase.aep else None)
        for engine in (spice, LayeredEngine()):
            op = engine.solve(net, phase, u, targets, x0=x0 if phase.aep else None)
            diff = np.abs(op.x - ref.x).max()
            assert diff <= CIRCUIT_TOL, (
                f"{kind} {phase.label} {engine.name}: {diff:.3e} V\n{op.x}\n{ref.x}"
            )
            if phase.kind == "dyadic":
                diff = np.abs(op.adjoint - ref.adjoint).max()
                assert diff <= CIRCUIT_TOL, (
                    f"{kind} {phase.label} {engine.name} adjoint: {diff:.3e} V"
                )
