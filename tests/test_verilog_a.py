"""Verilog-A through OSDI (issue 17 item 5): circuitep's programmable resistor trains in a circuit.

References: the device's current in ngspice against its law ``i = g vnl sinh(v / vnl)`` (1e-12
relative: the same double-precision formula); AEP (EP here: the devices are reciprocal) on the
Verilog-A circuit against ngspice's finite differences of that circuit (cosine >= 0.999999,
measured 1 - 1e-15), while the ideal model's exact gradient is another circuit's; a blobs run
trains with the devices in the loop (measured 98.3 % test, gradient cosine 1.000000 every epoch).
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from circuitep import builders
from circuitep.engines.ngspice_engine import NgspiceEngine, shared_session
from circuitep.engines.va import VaEngine
from circuitep.estimators import compare, estimate
from circuitep.gradcheck import probe_batch
from circuitep.netlist import Netlist, Section
from circuitep.sens import finite_difference_gradients
from circuitep.verilog_a import OsdiUnavailable, compiled_library

pytestmark = pytest.mark.ngspice


def test_library_is_compiled_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("CIRCUITEP_CACHE", str(tmp_path / "cache"))
    first = compiled_library()
    stamp = first.stat().st_mtime_ns
    assert compiled_library() == first and first.stat().st_mtime_ns == stamp
    monkeypatch.setenv("CIRCUITEP_CACHE", str(tmp_path / "a b;c"))
    with pytest.raises(OsdiUnavailable, match="plain path"):
        compiled_library()
    monkeypatch.setenv("CIRCUITEP_CACHE", str(tmp_path / "other"))
    monkeypatch.setenv("CIRCUITEP_OPENVAF", str(tmp_path / "nothing"))
    with pytest.raises(OsdiUnavailable, match="not an executable"):
        compiled_library()


def test_netlist_refuses_odd_library_paths():
    for bad in ("/tmp/x.osdi; shell touch y", "relative.osdi", "/tmp/x.so", "/tmp/a b.osdi"):
        with pytest.raises(ValueError, match="plain absolute .osdi path"):
            Netlist("* t", (Section("s", ()),), osdi=(bad,))


def test_device_follows_its_law():
    engine = VaEngine(vnl=0.5, g_range=(1e-9, 3e-4))
    session = shared_session()
    token = object()
    text = """* one device
.model circuitep_vres_card circuitep_vres(glo=1e-9 ghi=3e-4 vnl=0.5)
v1 a 0 dc 0.8
vam a b dc 0
n1 b 0 circuitep_vres_card g=2e-4
n2 a 0 circuitep_vres_card g=5e-4
.end
"""
    assert engine.library in session.osdi
    session.add_circuit(token, text)
    try:
        assert session.run("op", 30.0) == []
        i = float(session.vector("vam#branch")[0])
        assert i == pytest.approx(2e-4 * 0.5 * np.sinh(0.8 / 0.5), rel=1e-12)
        total = -float(session.vector("v1#branch")[0])
        assert total - i == pytest.approx(3e-4 * 0.5 * np.sinh(0.8 / 0.5), rel=1e-12)  # clipped
    finally:
        session.command("destroy all")
        session.remove(token)


def test_gradient_is_the_circuits_own():
    net = builders.from_shorthand("res:2-4-3")
    u, y = probe_batch(net, 8, seed=0)
    engine = VaEngine(vnl=0.5)
    truth = finite_difference_gradients(net, engine, u, y)
    got = compare(estimate("aep", net, engine, u, y, beta=1e-7).grads, truth)
    assert got["cosine"] >= 0.999999 and got["rel_error"] <= 1e-4, got
    model = estimate("exact", net, NgspiceEngine(form="literal"), u, y, beta=1e-7)
    assert compare(model.grads, truth)["cosine"] < 0.999


def test_trains_with_verilog_a_devices_in_the_loop(tmp_path):
    from circuitep.cli import main

    out = tmp_path / "run"
    args = ["train", "res:2-8-3", "--data", "blobs", "--engine", "ngspice-va", "--epochs", "6"]
    args += ["--batch-size", "16", "--lr", "0.5", "--lr-schedule", "cosine", "--no-progress"]
    assert main(args + ["--out", str(out)]) == 0
    records = json.loads((out / "metrics.json").read_text())
    assert records[-1]["engine"] == "ngspice-va" and records[-1]["test_accuracy"] >= 0.9, records
    assert min(r["grad_cosine"] for r in records) >= 0.99999, records
    text = (out / "trained.cir").read_text()
    assert "pre_osdi /" in text and "circuitep_vres_card g=" in text
    run = subprocess.run(
        ["ngspice", "-b", str(out / "trained.cir")], capture_output=True, text=True
    )
    assert run.returncode == 0 and "v(out_0)" in run.stdout.lower(), run.stderr[-300:]
