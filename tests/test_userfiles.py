"""User device files (issue 17 item 3): parsed and validated line by line, never passed on.

A valid file (a designer's OTA, uppercase, scale suffixes, continuation lines, comments) becomes
the package's own objects and simulates in ngspice exactly as the built-in OTA (same output current
to 1e-15 A: the same devices, written from the same numbers). Hostile files are refused with
``file:line``, and the test checks that nothing they ask for happened: the marker file a ``shell``
command would create does not exist, even after the refused content is fed through the whole path
a user has (read, write a netlist, run ngspice on what was written).
"""

from __future__ import annotations

import subprocess

import pytest

from circuitep import transistors as T
from circuitep.engines.ngspice_engine import shared_session
from circuitep.netlist import Element, Netlist, Section, write
from circuitep.userfiles import DeviceFileError, read_device_file, spice_value

OTA_FILE = """* a designer's five-transistor OTA, as they would write it
.MODEL NCH NMOS (LEVEL=1 VTO=0.7 KP=50u GAMMA=0.4 PHI=0.7 LAMBDA=0.02)
.model pch pmos level=1 vto=-0.7 kp=25u
+ gamma=0.4 phi=0.7 lambda=0.02   $ continuation line
.SUBCKT MYOTA GP GN OUT TAIL VDD VSS
M1 A GP TAIL VSS NCH W=2u L=2u ; the pair
M2 OUT GN TAIL VSS NCH W=2U L=2U
M3 A A VDD VDD PCH W=4u L=2u
M4 OUT A VDD VDD PCH W = 4u L = 2u
.ENDS MYOTA
"""


def test_spice_numbers():
    assert spice_value("2u") == pytest.approx(2e-6)
    assert spice_value("1meg") == 1e6 and spice_value("3m") == pytest.approx(3e-3)
    assert spice_value("10pf") == pytest.approx(1e-11) and spice_value("-1.5e-3") == -1.5e-3
    for bad in ("u2", "1e400", "0x10", ""):
        with pytest.raises(ValueError):
            spice_value(bad)


def _current(netlist_text: str) -> float:
    session = shared_session()
    token = object()
    session.add_circuit(token, netlist_text)
    try:
        assert session.run("op", 30.0) == []
        return float(session.vector("vout#branch")[0])
    finally:
        session.command("destroy all")
        session.remove(token)


def _bench(subckt: str, models, subcircuits) -> str:
    d = T.OtaDesign()
    els = [
        Element("V", "vdd", ("vdd", "0"), d.vdd),
        Element("V", "vss", ("vss", "0"), d.vss),
        Element("V", "vgp", ("gp", "0"), 0.3),
        Element("V", "vgn", ("gn", "0"), 0.0),
        Element("V", "vout", ("out", "0"), 0.6),
        Element("X", "xota", ("gp", "gn", "out", "tail", "vdd", "vss"), subckt),
        Element("I", "itail", ("tail", "vss"), 2e-5),
    ]
    return write(
        Netlist(
            "* bench",
            (Section("bench", tuple(els)),),
            models=tuple(models),
            options=(("reltol", 1e-12), ("abstol", 1e-18), ("vntol", 1e-14)),
            subcircuits=tuple(subcircuits),
            probes=("tail",),
        ),
        standalone=True,  # runs alone in ngspice -b; the engine's loader drops the .control
    )


@pytest.mark.ngspice
def test_a_designers_ota_file_simulates_as_the_builtin(tmp_path):
    path = tmp_path / "myota.lib"
    path.write_text(OTA_FILE)
    lib = read_device_file(path)
    assert set(lib.subcircuits) == {"myota"} and set(lib.models) == {"nch", "pch"}
    theirs = _current(_bench("myota", lib.models.values(), lib.subcircuits.values()))
    d = T.OtaDesign()
    ours = _current(_bench(T.SUBCKT, d.models(), [d.subcircuit()]))
    assert theirs == pytest.approx(ours, abs=1e-15)


HOSTILE = {
    "control": ".control\nshell touch {marker}\n.endc\n",
    "control inside subckt": ".subckt s a b\n.control\nshell touch {marker}\n.endc\n.ends\n",
    "include": ".include {marker}\n",
    "lib": ".lib {marker} tt\n",
    "param expression": ".param x={{1}}\n",
    "braces": ".subckt s a b\nr1 a b {{1k}}\n.ends\n",
    "quotes": ".subckt s a b\nr1 a b '1k'\n.ends\n",
    "behavioural": ".subckt s a b\nb1 a b i=v(a)\n.ends\n",
    "code model file source": ".subckt s a b\na1 %v([a]) filesrc\n.ends\n",
    "analysis": ".op\n",
    "element outside": "r1 a b 1k\n",
    "shell word as node": ".subckt s a b\nr1 a `touch {marker}` 1\n.ends\n",
    "nested": ".subckt s a b\n.subckt t c d\n.ends\n.ends\n",
    "unterminated": ".subckt s a b\nr1 a b 1k\n",
    "unknown model type": ".model q1 npn(is=1e-15)\n",
    "mosfet parameter": (
        ".model n nmos(level=1)\n.subckt s d g\nm1 d g 0 0 n w=1u l=1u geo=1\n.ends\n"
    ),
    "undefined model": ".subckt s a b\nd1 a b nosuch\n.ends\n",
    "non-ascii": ".subckt s a b\nr1 a b 1k \u00b5\n.ends\n",
    "source with pwl": ".subckt s a b\nv1 a b pwl(0 0 1 1)\n.ends\n",
    "subckt params": ".subckt s a b params: r=1k\nr1 a b 1k\n.ends\n",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_are_refused_and_do_nothing(case, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.lib"
    path.write_text(HOSTILE[case].format(marker=marker), encoding="utf-8")
    with pytest.raises(DeviceFileError, match=rf"{path.name}(:\d+)?: "):
        read_device_file(path)
    assert not marker.exists()


@pytest.mark.ngspice
def test_what_a_refused_file_asked_for_never_runs(tmp_path):
    """The whole path: even the valid part of a file with a control section is never used, and
    ngspice itself, running what circuitep writes, creates no marker."""
    marker = tmp_path / "pwned"
    path = tmp_path / "mixed.lib"
    path.write_text(OTA_FILE + f".control\nshell touch {marker}\n.endc\n")
    with pytest.raises(DeviceFileError, match=r"mixed.lib:11: '.control'"):
        read_device_file(path)
    good = tmp_path / "good.lib"
    good.write_text(OTA_FILE)
    lib = read_device_file(good)
    deck = tmp_path / "deck.cir"
    deck.write_text(_bench("myota", lib.models.values(), lib.subcircuits.values()))
    run = subprocess.run(["ngspice", "-b", str(deck)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not marker.exists()
    text = deck.read_text()
    assert "shell" not in text and "v(tail)" in run.stdout.lower()


def test_limits_and_messages(tmp_path):
    with pytest.raises(DeviceFileError, match="no such regular file"):
        read_device_file(tmp_path / "missing.lib")
    big = tmp_path / "big.lib"
    big.write_text("* " + "x" * 200 + "\n")
    with pytest.raises(DeviceFileError, match="larger than 100 bytes"):
        read_device_file(big, max_bytes=100)
    twice = tmp_path / "twice.lib"
    twice.write_text(".model d1 d(is=1e-14)\n.model d1 d(is=1e-14)\n")
    with pytest.raises(DeviceFileError, match="twice.lib:2: model 'd1' defined twice"):
        read_device_file(twice)


@pytest.mark.ngspice
def test_a_users_transconductor_trains_with_its_own_gradient(tmp_path):
    """A designer's OTA from a file (wider pair, their own cards) replaces the built-in one: its
    knob curve is measured, AEP's gradient matches ngspice's finite differences of that circuit
    (the generic linearisation of their subcircuit), and it trains."""
    from circuitep import builders
    from circuitep.datasets import load_dataset
    from circuitep.engines.ota import OtaEngine
    from circuitep.estimators import compare, estimate
    from circuitep.gradcheck import probe_batch
    from circuitep.sens import finite_difference_gradients
    from circuitep.train import TrainConfig, Trainer, init_state

    path = tmp_path / "theirs.lib"
    path.write_text(OTA_FILE.replace("W=2u L=2u ;", "W=3u L=2u ;").replace("W=2U", "W=3U"))
    lib = read_device_file(path)
    device = T.Transconductor(lib.subcircuits["myota"], tuple(lib.models.values()))
    engine = OtaEngine(device=device)
    assert engine.name == "ngspice-myota"
    assert engine.knobs.w_max > OtaEngine().knobs.w_max  # a wider pair: more gain per current
    net = builders.from_shorthand("ff:4-3-2", gain=0.5)
    u, y = probe_batch(net, 8, seed=0)
    truth = finite_difference_gradients(net, engine, u, y)
    got = compare(estimate("aep", net, engine, u, y, beta=1e-7).grads, truth)
    assert got["cosine"] >= 0.999999 and got["rel_error"] <= 1e-4, got
    data = load_dataset("blobs", seed=0)
    config = TrainConfig(epochs=3, lr=0.05, batch_size=16, probe_size=8)
    trainer = Trainer(builders.from_shorthand("ff:2-8-3"), data, engine, config)
    state = init_state(trainer.net, config)
    for _ in range(3):
        state = trainer.run_epoch(state)
    acc = trainer.accuracy(trainer.network(state), trainer.u_test, data.y_test)[0]
    assert acc >= 0.9, acc


@pytest.mark.ngspice
def test_train_command_takes_a_device_file_and_refuses_a_hostile_one(tmp_path, capsys):
    import json

    from circuitep.cli import main

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.lib"
    evil.write_text(OTA_FILE + f".control\nshell touch {marker}\n.endc\n")
    base = ["train", "ff:2-8-3", "--data", "blobs", "--engine", "ngspice-ota5t", "--epochs", "2"]
    base += ["--batch-size", "16", "--no-progress"]
    code = main(base + ["--device", str(evil), "--out", str(tmp_path / "evil")])
    assert code != 0 and not marker.exists()
    assert "evil.lib:11: '.control' is not allowed" in capsys.readouterr().err
    good = tmp_path / "myota.lib"
    good.write_text(OTA_FILE)
    assert main(base + ["--device", f"{good}:MYOTA", "--out", str(tmp_path / "run")]) == 0
    records = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert records[-1]["engine"] == "ngspice-myota" and records[-1]["grad_cosine"] > 0.99999
    assert ".subckt myota" in (tmp_path / "run" / "trained.cir").read_text()
    code = main(base + ["--engine", "ngspice", "--device", str(good), "--out", str(tmp_path / "x")])
    assert code != 0 and "use it with --engine ngspice-ota5t" in capsys.readouterr().err


DIODE_FILE = """* a 1N4148-like small-signal diode (DC parameters)
.model D1N4148 D (IS=2.52n RS=0.568 N=1.752 BV=100 IBV=100u)
"""


@pytest.mark.ngspice
def test_a_users_diode_card_goes_end_to_end(tmp_path, capsys):
    import json

    from circuitep.cli import main

    lib = tmp_path / "d1n4148.lib"
    lib.write_text(DIODE_FILE)
    out = tmp_path / "c.cir"
    assert main(["compile", "ff:4-3-2", "--diode", str(lib), "-o", str(out)]) == 0
    card = [line for line in out.read_text().splitlines() if line.startswith(".model")]
    assert card == [".model d1n4148 D(is=2.52e-09 n=1.752 rs=0.568 bv=100.0 ibv=0.0001)"], card
    assert main(["simulate", "ff:4-3-2", "--diode", str(lib)]) == 0
    assert main(["gradcheck", "ff:4-3-2", "--diode", f"{lib}:D1N4148"]) == 0
    assert "aep" in capsys.readouterr().out
    run = tmp_path / "run"
    args = ["train", "ff:2-8-3", "--data", "blobs", "--engine", "ngspice", "--epochs", "1"]
    assert main(args + ["--diode", str(lib), "--out", str(run), "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())[-1]["grad_cosine"] > 0.99999
    assert ".model d1n4148 D(" in (run / "trained.cir").read_text()
    bad = tmp_path / "bad.lib"
    bad.write_text(".model dx D (IS=1e-14 KF=1e-16)\n")
    assert main(["compile", "ff:4-3-2", "--diode", str(bad), "-o", str(out)]) != 0
    assert "parameter 'kf' is not one circuitep models" in capsys.readouterr().err
