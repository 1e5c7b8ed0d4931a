"""Transistor-level transconductors (issue 17 items 3 and 4): the five-transistor OTA, its knobs,
its small-signal model from ngspice's device parameters, and AEP from the circuit's own Jacobian.

References, each independent of what it checks:
- the OTA's terminal derivatives (:func:`circuitep.transistors.small_signal`, from ngspice's
  ``gm``/``gds``/... at the operating point) against ngspice central differences of the output
  current: agree to 1e-6 relative (the differences' own truncation at h = 1e-5 V; measured 4e-11);
- the knob curve: the realised OTA's transconductance at the curve's conditions is the weight asked
  for (1e-4 relative: PCHIP passes through the measured points, between them it errs by up to
  4e-6 where the DAC resistance bends the curve near its floor);
- AEP on the transistor circuit against ngspice finite differences of the same circuit: cosine
  >= 0.999999 and relative error <= 1e-4 at beta = 1e-7 S (measured 1 - 1e-15 and 1e-6: the
  beta^2 bias and the differences' truncation), while the numpy model's exact gradient is visibly
  another circuit's (cosine < 0.99).
"""

from __future__ import annotations

import numpy as np
import pytest

from circuitep import builders
from circuitep import transistors as T
from circuitep.engines.base import Phase
from circuitep.engines.ngspice_engine import NgspiceEngine, shared_session
from circuitep.engines.ota import OtaEngine, characterise
from circuitep.estimators import compare, estimate
from circuitep.gradcheck import probe_batch
from circuitep.netlist import (
    DialectError,
    Element,
    Netlist,
    Section,
    Subcircuit,
    write,
    write_xyce,
)
from circuitep.sens import finite_difference_gradients, sample_elements, where_differenced
from circuitep.train import TrainConfig

pytestmark = pytest.mark.ngspice

DESIGN = T.OtaDesign()


def _bench(vgp=0.3, vgn=0.05, vout=0.8, ib=3e-5):
    els = [
        Element("V", "vdd", (T.VDD_NODE, "0"), DESIGN.vdd),
        Element("V", "vss", (T.VSS_NODE, "0"), DESIGN.vss),
        Element("V", "vgp", ("gp", "0"), vgp),
        Element("V", "vgn", ("gn", "0"), vgn),
        Element("V", "vout", ("out", "0"), vout),
        Element("X", "xota", ("gp", "gn", "out", "tail", T.VDD_NODE, T.VSS_NODE), T.SUBCKT),
        Element("I", "itail", ("tail", T.VSS_NODE), ib),
        Element("R", "rdac", ("tail", T.VSS_NODE), DESIGN.r_dac),
    ]
    return Netlist(
        "* one OTA, terminals held",
        (Section("bench", tuple(els)),),
        models=DESIGN.models(),
        options=(("reltol", 1e-12), ("vntol", 1e-14), ("abstol", 1e-18), ("gmin", 1e-12)),
        subcircuits=(DESIGN.subcircuit(),),
        saves=tuple(T.block_vectors(DESIGN.subcircuit(), "xota")),  # saved_params among them
    )


@pytest.mark.parametrize(
    "bias", [(0.3, 0.05, 0.8, 3e-5), (-0.4, 0.2, -0.3, 2e-6), (1.0, 0.0, 1.2, 1e-4)]
)
def test_small_signal_matches_ngspice_differences(bias):
    session = shared_session()
    token = object()
    session.add_circuit(token, write(_bench(*bias)))
    try:

        def current():
            assert session.run("op", 30.0) == []
            return float(session.vector("vout#branch")[0])  # the OTA's current into out

        current()
        p = {
            f"{m}.{q}": session.vector(f"@m.xota.{m}[{q}]")
            for m, qs in T.DEVICE_PARAMS.items()
            for q in qs
        }
        ss = T.small_signal(p, 1 / DESIGN.r_dac)
        sub = DESIGN.subcircuit()
        general = T.linearise_block(
            sub,
            {
                k: session.vector(v)
                for k, v in zip(T.block_params(sub), T.block_vectors(sub, "xota"), strict=True)
            },
            1 / DESIGN.r_dac,
        )
        for name in ("d_gp", "d_gn", "d_tail"):  # the engines' general form is the closed form
            assert getattr(general, name)[0] == pytest.approx(getattr(ss, name)[0], rel=1e-12)
        for source, value, h, derived in [
            ("vgp", bias[0], 1e-5, ss.d_gp),
            ("vgn", bias[1], 1e-5, ss.d_gn),
            ("itail", bias[3], bias[3] * 1e-4, ss.d_tail),
        ]:
            session.checked(f"alter {source} dc = {value + h!r}")
            up = current()
            session.checked(f"alter {source} dc = {value - h!r}")
            down = current()
            session.checked(f"alter {source} dc = {value!r}")
            fd = (up - down) / (2 * h)
            assert derived[0] == pytest.approx(fd, rel=1e-6), source
    finally:
        session.command("destroy all")
        session.remove(token)


def test_knob_curve_realises_the_weights():
    knobs = characterise(DESIGN)
    assert np.all(np.diff(knobs.gains) > 0) and knobs.w_max > 1e-4
    w = np.geomspace(knobs.gains[0], knobs.w_max, 13)[1:-1]
    ib, slope = knobs.tail(w)
    h = 1e-6
    fd = (knobs.tail(w * (1 + h))[0] - knobs.tail(w * (1 - h))[0]) / (2 * h * w)
    np.testing.assert_allclose(slope, fd, rtol=1e-5)
    # the OTA programmed with that tail current has transconductance |w| at the curve's point
    for wk, ik in zip(w[::4], ib[::4], strict=True):
        session = shared_session()
        token = object()
        session.add_circuit(token, write(_bench(DESIGN.v_ref, DESIGN.v_ref, DESIGN.v_out, ik)))
        try:
            assert session.run("op", 30.0) == []
            p = {
                f"{m}.{q}": session.vector(f"@m.xota.{m}[{q}]")
                for m, qs in T.DEVICE_PARAMS.items()
                for q in qs
            }
            gain = T.small_signal(p, 1 / DESIGN.r_dac).d_gp[0] * DESIGN.divider
            assert gain == pytest.approx(wk, rel=1e-4)  # measured 4e-6 near the floor
        finally:
            session.command("destroy all")
            session.remove(token)
    # below the curve the square law, above it full scale (clipped, no gradient)
    small, big = knobs.tail(np.array([knobs.gains[0] / 10, 2 * knobs.w_max]))
    assert small[0] == pytest.approx(knobs.currents[0] / 100)
    assert small[1] == pytest.approx(knobs.currents[-1]) and big[1] == 0


def test_design_refuses_nonsense():
    with pytest.raises(ValueError, match="vto_n"):
        T.OtaDesign(vto_n=-0.5)
    with pytest.raises(ValueError, match="between vss and vdd"):
        T.OtaDesign(v_ref=7.0)
    with pytest.raises(ValueError, match="finite"):
        T.OtaDesign(kp_n=float("nan"))
    with pytest.raises(ValueError, match="r_off"):
        T.OtaDesign(r_off=10.0)


@pytest.fixture(scope="module")
def small():
    net = builders.from_shorthand("ff:4-3-2", gain=0.5)
    u, y = probe_batch(net, 8, seed=0)
    return net, u, y, OtaEngine()


def test_aep_on_the_transistor_circuit_is_its_own_gradient(small):
    net, u, y, engine = small
    truth = finite_difference_gradients(net, engine, u, y)
    aep = estimate("aep", net, engine, u, y, beta=1e-7)
    got = compare(aep.grads, truth)
    assert got["cosine"] >= 0.999999 and got["rel_error"] <= 1e-4, got
    # the numpy model's exact gradient is another circuit's; VF misses every weight before the
    # last layer (no feedback) in this feedforward circuit
    model = estimate("exact", net, NgspiceEngine(form="literal"), u, y, beta=1e-7)
    assert compare(model.grads, truth)["cosine"] < 0.99
    vf = estimate("vf", net, engine, u, y, beta=1e-7)
    assert compare(vf.grads, truth)["groups"]["fwd1"]["cosine"] == 0


def test_circuit_states_are_not_the_model(small):
    net, u, _, engine = small
    x = engine.solve(net, Phase(), u).x
    lin = engine.linearise(net, u)
    np.testing.assert_array_equal(lin.x0, x)  # one sweep, one answer
    ideal = NgspiceEngine(form="literal").solve(net, Phase(), u).x
    assert np.abs(x - ideal).max() > 0.01  # V: the OTAs saturate, load and offset their nodes
    # each OTA's measured transconductance carries its weight's sign
    w = np.array([net.couplings[int(s.coupling[-1]) - 1].weight[s.i, s.j] for s in lin.sites])
    assert np.all(np.sign(lin.gain) == np.sign(w))


def test_estimators_without_the_model_are_refused(small):
    net, u, y, engine = small
    with pytest.raises(ValueError, match="numpy model's Jacobian"):
        estimate("exact", net, engine, u, y, beta=1e-7)
    with pytest.raises(ValueError, match="literal"):
        OtaEngine(form="folded")
    with pytest.raises(ValueError, match="estimate_from_circuit"):
        engine.solve(net, Phase("aep", beta=1e-7), u, y, x0=np.zeros((8, net.n_free)))


def test_realised_netlist_runs_alone(small, tmp_path):
    import subprocess

    net, u, _, engine = small
    compiled = engine._compile(net, Phase())
    text = compiled.spice(standalone=True)
    assert ".subckt circuitep_ota5t" in text and "xfwd2_0_0 " in text
    path = tmp_path / "ota.cir"
    path.write_text(text)
    run = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-500:]
    with pytest.raises(DialectError, match="transistor-level"):
        write_xyce(compiled.netlist)


def test_netlist_refuses_malformed_devices():
    with pytest.raises(ValueError, match="needs the parameters"):
        Element("M", "m1", ("d", "g", "s", "b"), "nch")
    with pytest.raises(ValueError, match="positive"):
        Element("M", "m1", ("d", "g", "s", "b"), "nch", params=(("w", 1e-6), ("l", -1.0)))
    with pytest.raises(ValueError, match="needs the parameters"):
        Element("M", "m1", ("d", "g", "s", "b"), "nch", params=(("w", 1.0), ("l", 1.0), ("x", 1)))
    with pytest.raises(ValueError, match="only a MOSFET"):
        Element("R", "r1", ("a", "b"), 1.0, params=(("w", 1e-6),))
    with pytest.raises(ValueError, match="not a valid SPICE identifier"):
        Element("X", "x1", ("a", "b"), "sub\n.control")
    x = Element("X", "x1", ("a", "b"), "nosuch")
    with pytest.raises(ValueError, match="no such subcircuit"):
        Netlist("* t", (Section("s", (x,)),))
    sub = Subcircuit("nosuch", ("p", "q"), (Element("R", "r1", ("p", "q"), 1.0),))
    Netlist("* t", (Section("s", (x,)),), subcircuits=(sub,))
    with pytest.raises(TypeError, match="plain element"):
        Subcircuit("s2", ("p",), (x,))
    for bad in ["@m1[gm]\n.control", "@m1[gm] ; shell ls", "v(a)"]:
        with pytest.raises(ValueError, match="@device"):
            Netlist("* t", (Section("s", ()),), saves=(bad,))


def test_trains_with_transistor_otas_in_the_loop(tmp_path):
    """`circuitep train --engine ngspice-ota5t`: AEP from the circuit's own Jacobian learns blobs
    (measured: 98.3 % test after 3 epochs, from 33 %), its gradient matches the circuit's finite
    differences on the probe batch every epoch (measured 1 - 3e-9), and the trained circuit is
    written as its transistor netlist, which runs alone in ngspice."""
    import json
    import subprocess

    from circuitep.cli import main

    out = tmp_path / "run"
    args = ["train", "ff:2-8-3", "--data", "blobs", "--engine", "ngspice-ota5t"]
    args += ["--epochs", "3", "--batch-size", "16", "--lr", "0.05", "--out", str(out)]
    assert main(args + ["--no-progress"]) == 0
    records = json.loads((out / "metrics.json").read_text())
    records = records["epochs"] if isinstance(records, dict) else records
    last = records[-1]
    assert last["engine"] == "ngspice-ota5t" and last["test_accuracy"] >= 0.9, last
    assert min(r["grad_cosine"] for r in records) >= 0.99999, records
    text = (out / "trained.cir").read_text()
    assert ".subckt circuitep_ota5t" in text
    run = subprocess.run(
        ["ngspice", "-b", str(out / "trained.cir")], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and "v(out_0)" in run.stdout.lower(), run.stderr[-300:]


def test_trainer_refuses_what_a_transistor_circuit_cannot_do(small):
    from circuitep.datasets import load_dataset
    from circuitep.train import TrainConfig, Trainer

    data = load_dataset("blobs", seed=0)
    net = builders.from_shorthand("ff:2-4-3")
    for config in (TrainConfig(algorithm="ep"), TrainConfig(variation={"gain": 0.1})):
        with pytest.raises(ValueError, match="measures its circuit"):
            Trainer(net, data, small[3], config)


def test_simulate_reports_the_devices_operating_point_only(small, tmp_path, capsys):
    import json

    from circuitep.cli import main

    net, u, _, engine = small
    out = tmp_path / "op.json"
    assert main(["simulate", "ff:4-3-2", "--engine", "ngspice-ota5t", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not computed" in text and "power" not in text
    got = json.loads(out.read_text())
    assert got["engine"] == "ngspice-ota5t" and set(got["nodes"]) == set(net.free_nodes)
    assert main(["simulate", "ff:4-3-2", "--engine", "ngspice-ota5t", "--settle"]) != 0


def test_gradcheck_command_on_a_circuit_of_devices(tmp_path, capsys):
    import json

    from circuitep.cli import main

    out = tmp_path / "g.json"
    args = ["gradcheck", "ff:4-3-2", "--engine", "ngspice-ota5t", "--json", str(out)]
    assert main(args) == 0
    assert "finite differences of this circuit" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["estimators"]["aep"]["cosine"] >= 0.999999
    assert report["estimators"]["model"]["cosine"] < 0.999
    assert main(args[:4] + ["--sweep-beta"]) != 0
    assert "not available on ngspice-ota5t" in capsys.readouterr().err


def test_sampled_truth_is_the_full_truth_where_it_differences(small):
    """``sample_elements`` + ``finite_difference_gradients(elements=...)``: the sampled elements
    carry the full differences' values exactly (same steps, same free phases), the others NaN, and
    ``where_differenced`` compares over those alone."""
    net, u, y, engine = small
    masks = sample_elements(net, 7, seed=3)
    assert sum(int(m.sum()) for m in masks.values()) == 7
    assert {k: np.shape(m) for k, m in masks.items()} == {
        k: np.shape(p) for k, p in net.params().items()
    }
    assert sample_elements(net, 7, seed=3).keys() == masks.keys()
    for a, b in zip(sample_elements(net, 7, 3).values(), masks.values(), strict=True):
        np.testing.assert_array_equal(a, b)  # a seed is a sample: fixed for a run
    full = finite_difference_gradients(net, engine, u, y)
    part = finite_difference_gradients(net, engine, u, y, elements=masks)
    for k, m in masks.items():
        np.testing.assert_array_equal(np.asarray(part[k])[m], np.asarray(full[k])[m])
        assert np.isnan(np.asarray(part[k])[~m]).all()
    est, truth = where_differenced(full, part)
    assert sum(v.size for v in truth.values()) == 7
    assert compare(est, truth)["cosine"] == pytest.approx(1.0, abs=1e-15)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            sample_elements(net, bad)
    everything = sample_elements(net, 10**6)
    assert all(m.all() for m in everything.values())


def test_trainer_truth_on_a_sample_of_elements(tmp_path):
    """``--fd-elements N --probe-size P``: the per-epoch gradient cosine of a device engine checks
    N elements on P samples (2 N free phases of P samples instead of 2 x all of 32); it still
    measures the circuit's own gradient (cosine 1 - 1e-9 in the full test above)."""
    import json

    from circuitep.cli import main

    out = tmp_path / "run"
    args = ["train", "ff:2-8-3", "--data", "blobs", "--engine", "ngspice-ota5t", "--epochs", "1"]
    args += ["--batch-size", "16", "--fd-elements", "10", "--probe-size", "4"]
    args += ["--eval-train-samples", "40", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    config = config.get("config", config)
    assert config["fd_elements"] == 10 and config["probe_size"] == 4, config
    records = json.loads((out / "metrics.json").read_text())
    records = records["epochs"] if isinstance(records, dict) else records
    assert min(r["grad_cosine"] for r in records) >= 0.99999, records
    with pytest.raises(ValueError, match="fd_elements = 0 must be a positive integer"):
        TrainConfig(fd_elements=0)


def test_transistor_circuits_solve_with_klu_where_ngspice_has_it(small):
    """``auto`` picks KLU for OTA circuits (the element-count rule sees one line per OTA; measured
    0.72x Sparse's time on the ff:64-10 digits circuit), and every operating point says so."""
    net, u, _, engine = small
    want = "klu" if shared_session().klu else "sparse"
    assert engine.solver == want
    engine.solve(net, Phase(), u)
    assert engine.solvers_used == {want}
    assert OtaEngine(solver="sparse").solver == "sparse"
