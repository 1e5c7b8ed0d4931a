"""The physical report (circuitep/report.py) against independent references: closed forms for one
node, Tellegen's theorem on the reference circuits, ngspice's own source currents, and numpy's
transient against ngspice's (issue 18)."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from circuitep import kcl, report
from circuitep.cli import main
from circuitep.compiler import compile_network
from circuitep.engines.base import Phase
from circuitep.engines.ngspice_engine import shared_session
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.golden import REFERENCE_SPECS
from circuitep.runs import write_metrics
from circuitep.spec import Coupling, Network, NodeGroup
from circuitep.specio import load_spec

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"


def one_node(
    kind: str, w: float = 3e-5, leak: float = 1e-4, bias: float = 2e-5, cap: float = 1e-12
) -> Network:
    """An input u driving one output node (leak, bias, capacitance) through a VCCS or a resistor."""
    groups = (
        NodeGroup("in", "input", 1),
        NodeGroup("out", "output", 1, leak=leak, bias=bias, capacitance=cap),
    )
    return Network("one", groups, (Coupling("c", kind, "in", "out", np.array([[w]])),))


@pytest.mark.parametrize("kind", ["vccs", "resistor"])
def test_one_node_powers_match_the_closed_form(kind):
    u, w, g, b = 0.7, 3e-5, 1e-4, 2e-5
    net = one_node(kind, w, g, b)
    x = NumpyEngine().solve(net, Phase(), np.array([[u]])).x
    p = report.element_powers(net, np.array([[u]]), x)
    if kind == "vccs":  # g v = b + w u
        v = (b + w * u) / g
        want = {"leaks": g * v * v, "bias": -b * v, "transconductors": -w * u * v}
    else:  # (g + w) v = b + w u
        v = (b + w * u) / (g + w)
        want = {
            "leaks": g * v * v,
            "bias": -b * v,
            "resistors": w * (u - v) ** 2,
            "inputs": -u * w * (u - v),
        }
    assert x[0, 0] == pytest.approx(v, rel=1e-12)
    for k in report.POWER_CLASSES:
        assert p[k][0] == pytest.approx(want.get(k, 0.0), rel=1e-12, abs=1e-22), k


def test_one_node_settles_as_its_rc_closed_form():
    """From rest, v(t) = v_f (1 - exp(-t / tau)), tau = C / g: within tol after tau ln(v_f/tol)."""
    net = one_node("vccs", bias=0.0)
    u = np.array([0.7])
    v_f = 3e-5 * 0.7 / 1e-4
    tr = report.transient(net, u, np.zeros(1))
    tau = 1e-12 / 1e-4
    assert np.abs(tr.x[:, 0] - v_f * (1 - np.exp(-tr.t / tau))).max() <= 1e-7
    assert report.settling_time(tr, np.array([v_f]), 1e-3) == pytest.approx(
        tau * np.log(v_f / 1e-3), rel=1e-4
    )


def phases_of(net):
    beta = 1e-3 * net.conductance_scale()
    return [Phase(), Phase("nudged", beta), Phase("nudged", -beta, aep=True)]


@pytest.mark.parametrize("name", REFERENCE_SPECS)
def test_tellegen_the_classes_sum_to_zero_at_every_phase(name):
    net = load_spec(NETLISTS / f"{name}.toml")
    u, y = net.sample.inputs[None], net.sample.targets[None]
    free = NumpyEngine().solve(net, Phase(), u).x
    for phase in phases_of(net):
        x = NumpyEngine().solve(net, phase, u, y, x0=free if phase.aep else None, x_init=free).x
        p = report.element_powers(net, u, x, phase, y, free if phase.aep else None)
        s = report.power_summary(p)
        assert all(p[k][0] >= 0 for k in report.PASSIVE), p
        assert abs(s["tellegen"][0]) <= 1e-12 * s["dissipated"][0], (phase.label, p)
        assert (p["nudge"][0] != 0) == phase.nudged
        assert (p["correction"][0] != 0) == (phase.aep and not kcl.is_reciprocal(net))


@pytest.mark.ngspice
@pytest.mark.parametrize("name", ["reciprocal", "feedforward"])
def test_source_powers_match_ngspice_source_currents(name, ngspice_engine_factory):
    """The input sources' and clamp rails' power from ngspice's own branch currents i(v) (V i for
    the current into the + terminal) on the literal netlists: the reciprocal one's inputs drive
    resistors, the feedforward one's clamps conduct (tens of uA)."""
    ngspice_engine_factory("literal")
    net = load_spec(NETLISTS / f"{name}.toml")
    compiled = compile_network(net, "free", "literal")
    session, token = shared_session(), object()
    session.add_circuit(token, compiled.text)
    try:
        session.checked("op")
        x = np.array([[session.vector(n)[0] for n in net.free_nodes]])
        absorbed = {
            el.name: el.value * session.vector(f"{el.name}#branch")[0]
            for el in compiled.netlist.elements()
            if el.kind == "V"
        }
    finally:
        session.remove(token)
    p = report.element_powers(net, net.sample.inputs[None], x)
    inputs = sum(v for k, v in absorbed.items() if k.startswith("vin"))
    rails = sum(v for k, v in absorbed.items() if k.startswith(("vhi_", "vlo_")))
    assert p["inputs"][0] == pytest.approx(inputs, rel=1e-9, abs=1e-20)
    assert (p["inputs"][0] != 0) == (name == "reciprocal")
    assert p["rails"][0] == pytest.approx(rails, rel=1e-6, abs=1e-18)
    assert (abs(p["rails"][0]) > 1e-6) == (name == "feedforward")  # W


@pytest.mark.ngspice
@pytest.mark.parametrize("name", ["feedforward", "reciprocal"])
def test_numpy_and_ngspice_transients_agree(name, ngspice_engine_factory):
    """Both integrate C dx/dt = F(x) of the same circuit: numpy by Radau at rtol 1e-7, ngspice by
    its trapezoidal rule with steps of at most t_stop / 10^4 (reltol 1e-10). Measured: waveforms
    within 4e-6 V (the linear interpolation between numpy's logarithmic time points), settling
    times within 2e-5 relative; the bars are 1e-4 V and 1e-3 relative, for the free phase from rest
    and an AEP phase from the free state."""
    engine = ngspice_engine_factory("literal")
    net = load_spec(NETLISTS / f"{name}.toml")
    u, y = net.sample.inputs, net.sample.targets
    free = NumpyEngine().solve(net, Phase(), u[None]).x[0]
    aep = Phase("nudged", 1e-3 * net.conductance_scale(), aep=True)
    x_aep = NumpyEngine().solve(net, aep, u[None], y[None], x0=free[None], x_init=free[None]).x[0]
    t_stop = report.default_t_stop(net)
    ngspice = report.ngspice_transients(engine)
    for phase, start, final, tol in [
        (Phase(), np.zeros(net.n_free), free, 1e-3),
        (aep, free, x_aep, 1e-2 * np.abs(x_aep - free).max()),
    ]:
        args = (net, u, start, phase, y, free if phase.aep else None, t_stop)
        a, b = report.transient(*args), ngspice(*args)
        on_b = np.stack([np.interp(b.t, a.t, a.x[:, k]) for k in range(net.n_free)], axis=1)
        assert np.abs(on_b - b.x).max() <= 1e-4, phase.label
        ta, tb = report.settling_time(a, final, tol), report.settling_time(b, final, tol)
        assert 0 < ta < np.inf and ta == pytest.approx(tb, rel=1e-3), (phase.label, ta, tb)


@pytest.mark.ngspice
def test_simulate_json_holds_power_energy_and_settling_time(tmp_path, ngspice_engine_factory):
    ngspice_engine_factory("literal")
    out, png = tmp_path / "op.json", tmp_path / "settle.png"
    assert (
        main(
            [
                "simulate",
                str(NETLISTS / "feedforward.toml"),
                "--json",
                str(out),
                "--plot-settle",
                str(png),
            ]
        )
        == 0
    )
    rep = json.loads(out.read_text())["report"]
    free = rep["phases"][0]
    assert set(free["power_w"]) == set(report.POWER_CLASSES)
    assert (
        free["dissipated_w"] == pytest.approx(free["supplied_w"], rel=1e-9)
        and free["dissipated_w"] > 0
    )
    assert (
        rep["latency_inference_s"] == free["settling_time_s"] > 0
        and free["engine_transient"] == "ngspice"
    )
    assert rep["energy_per_inference_j"] == pytest.approx(
        free["dissipated_w"] * free["settling_time_s"]
    )
    assert rep["settling_time_numpy_s"] == pytest.approx(free["settling_time_s"], rel=1e-3)
    assert [p["phase"] for p in rep["phases"]] == ["free", "aep(beta=1e-07)", "aep(beta=-1e-07)"]
    assert rep["energy_per_training_sample_j"] == pytest.approx(
        sum(p["energy_j"] for p in rep["phases"])
    )
    assert free["ranges"]["node_min_v"] < free["ranges"]["node_max_v"]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24])[0] > 0


def test_gradcheck_reports_the_physics_of_probe_sample_0(tmp_path, capsys):
    out = tmp_path / "g.json"
    assert (
        main(
            [
                "gradcheck",
                str(NETLISTS / "feedforward.toml"),
                "--engine",
                "numpy",
                "--samples",
                "2",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    physics = json.loads(out.read_text())["physics"]
    assert physics["energy_per_training_sample_j"] > physics["energy_per_inference_j"] > 0
    assert "energy per inference" in capsys.readouterr().out


def test_metrics_csv_holds_the_columns_of_every_record(tmp_path):
    """A run resumed from before a column existed (e.g. power_w) still writes its CSV."""
    write_metrics(tmp_path, [{"epoch": 1}, {"epoch": 2, "power_w": 1e-3}])
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,power_w", "1,", "2,0.001"]


@pytest.mark.parametrize("name", REFERENCE_SPECS)
def test_linearised_nudged_transient_settles_as_the_full_one(name):
    """The per-epoch metrics settle the nudged phases linearised at the free state: the nudge moves
    the nodes by about beta/leak = 1e-3 V there, so the two settling times (to 1 % of that
    displacement) agree to 2e-3 relative (measured 6e-4 at most, feedforward's nudged phase)."""
    net = load_spec(NETLISTS / f"{name}.toml")
    u, y = net.sample.inputs, net.sample.targets
    free = NumpyEngine().solve(net, Phase(), u[None]).x[0]
    for phase in phases_of(net)[1:]:
        x = (
            NumpyEngine()
            .solve(
                net,
                phase,
                u[None],
                y[None],
                x0=free[None] if phase.aep else None,
                x_init=free[None],
            )
            .x[0]
        )
        args = (net, u, free, phase, y, free if phase.aep else None)
        tol = 1e-2 * np.abs(x - free).max()
        full, linear = report.transient(*args), report.linear_transient(*args)
        assert np.abs(linear.x[-1] - x).max() <= 1e-3 * tol
        assert report.settling_time(linear, x, tol) == pytest.approx(
            report.settling_time(full, x, tol), rel=2e-3
        )
