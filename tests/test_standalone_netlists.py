"""Every committed netlist runs alone in ``ngspice -b`` (a separate process, no init files) and
prints node voltages that agree with the numpy engine to 1e-9 V; the AEP and dyadic ones carry
their sample's correction, so their states give the exact adjoint (issue 18)."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import gate_ngspice

from circuitep.cli import main
from circuitep.engines.base import Phase
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.estimators import exact_adjoint
from circuitep.golden import GOLDEN_BETA, REFERENCE_SPECS
from circuitep.spec import Coupling, Network, NodeGroup, Sample
from circuitep.specio import load_spec, save_spec

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"
FILES = sorted(NETLISTS.glob("*/*.cir"))
_PRINTED = re.compile(r"^v\(([a-z0-9_]+)\) = (\S+)$", re.MULTILINE)


@pytest.fixture
def ngspice_binary(request):
    gate_ngspice(request.config)
    path = shutil.which("ngspice")
    if path is None:
        if request.config.getoption("--ngspice") == "required":
            pytest.fail("the ngspice program is not on PATH (apt-get install ngspice)")
        pytest.skip("the ngspice program is not on PATH")
    return path


def run_alone(binary: str, path: Path, cwd: Path) -> dict[str, float]:
    """Node voltages a netlist prints when run by itself: ``ngspice -b -n FILE``."""
    done = subprocess.run(
        [binary, "-b", "-n", str(path)], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {name: float(v) for name, v in _PRINTED.findall(done.stdout)}


def numpy_states(name: str) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """What numpy solves for each phase of a reference spec's sample: ``(x, adjoint or None)``."""
    net = load_spec(NETLISTS / f"{name}.toml")
    engine = NumpyEngine()
    u, y = net.sample.inputs[None], net.sample.targets[None]
    free = engine.solve(net, Phase(), u).x
    nudged = engine.solve(net, Phase("nudged", GOLDEN_BETA), u, y, x_init=free).x
    aep = engine.solve(net, Phase("nudged", GOLDEN_BETA, aep=True), u, y, x0=free, x_init=free).x
    dyadic = engine.solve(net, Phase("dyadic", GOLDEN_BETA), u, y, x_init=free)
    return {
        "free": (free[0], None),
        "nudged": (nudged[0], None),
        "aep": (aep[0], None),
        "dyadic": (dyadic.x[0], dyadic.adjoint[0]),
    }


def test_every_reference_spec_has_its_netlists_here():
    assert len(FILES) == len(REFERENCE_SPECS) * 8


@pytest.mark.ngspice
@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_netlist_runs_alone_and_matches_numpy(path, ngspice_binary, tmp_path):
    name, phase = path.parent.name, path.stem.split("-")[0]
    net = load_spec(NETLISTS / f"{name}.toml")
    printed = run_alone(ngspice_binary, path, tmp_path)
    x, d = numpy_states(name)[phase]
    got = np.array([printed[n] for n in net.free_nodes])
    assert np.abs(got - x).max() <= 1e-9, np.c_[got, x]
    if d is not None:
        got_d = np.array([printed[f"adj_{n}"] for n in net.free_nodes])
        assert np.abs(got_d - d).max() <= 1e-9, np.c_[got_d, d]


@pytest.mark.ngspice
@pytest.mark.parametrize("name", REFERENCE_SPECS)
@pytest.mark.parametrize("form", ["literal", "folded"])
def test_golden_aep_netlists_give_the_exact_adjoint(name, form, ngspice_binary, tmp_path):
    """(x_aep - x_free) / beta of the two files run alone against lambda = J^-T dC/dx: one-sided
    AEP has an O(beta) bias, beta / leak = 1e-3 here, so 1e-2 relative (measured 2e-4 at most);
    with the placeholder currents ``dc 0`` the files held before, it was off by ~1e3."""
    net = load_spec(NETLISTS / f"{name}.toml")
    free = run_alone(ngspice_binary, NETLISTS / name / f"free-{form}.cir", tmp_path)
    aep = run_alone(ngspice_binary, NETLISTS / name / f"aep-{form}.cir", tmp_path)
    x0 = np.array([free[n] for n in net.free_nodes])
    s = (np.array([aep[n] for n in net.free_nodes]) - x0) / GOLDEN_BETA
    lam = exact_adjoint(net, net.sample.inputs[None], net.sample.targets[None], x0[None])[0]
    rel = np.linalg.norm(s - lam) / np.linalg.norm(lam)
    print(f"{name} {form}: relative error {rel:.2e}")
    assert rel <= 1e-2, np.c_[s, lam]


def compile_cli(tmp_path, *args) -> tuple[int, Path, str]:
    out = tmp_path / "x.cir"
    argv = ["compile", *args, "-o", str(out)]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, out, shlex.join(["circuitep", *argv])


@pytest.mark.ngspice
def test_compile_writes_its_command_and_runs_alone(tmp_path, ngspice_binary):
    spec = tmp_path / "my spec.toml"  # a space: the header's command is shell-quoted
    spec.write_text((NETLISTS / "feedforward.toml").read_text())
    code, out, command = compile_cli(tmp_path, str(spec), "--phase", "aep", "--form", "folded")
    assert code == 0
    text = out.read_text()
    assert f"* written by: {command}\n" in text and "'" in command
    assert "regenerate: circuitep compile SPEC" not in text
    assert "* sample: the spec's [sample]" in text
    assert "K x0 (A) for this sample's free state x0" in text
    net = load_spec(spec)
    printed = run_alone(ngspice_binary, out, tmp_path)
    x = numpy_states("feedforward")["aep"][0]
    got = np.array([printed[n] for n in net.free_nodes])
    assert np.abs(got - x).max() <= 1e-9, np.c_[got, x]


def test_no_analysis_leaves_out_the_control_block(tmp_path):
    code, out, _ = compile_cli(tmp_path, str(NETLISTS / "reciprocal.toml"), "--no-analysis")
    assert code == 0
    text = out.read_text()
    assert ".control" not in text and "print " not in text and text.rstrip().endswith(".end")


@pytest.mark.parametrize("phase", ["nudged", "aep", "dyadic"])
def test_a_nudged_compile_without_targets_is_refused(tmp_path, capsys, phase):
    """ff:16-8-4 has no sample, so no targets: the nudge would pull toward made-up 0.25 V ones."""
    code, out, _ = compile_cli(tmp_path, "ff:16-8-4", "--phase", phase)
    assert code == 2 and not out.exists()
    assert (
        f"--phase {phase} nudges the outputs toward targets: pass --targets"
        in capsys.readouterr().err
    )


def test_a_shorthand_compiles_with_the_default_sample(tmp_path):
    code, out, _ = compile_cli(tmp_path, "ff:16-8-4", "--phase", "nudged", "--targets", "1,0,0,0")
    assert code == 0
    text = out.read_text()
    assert "default sample (the spec has no [sample]): every input 0.5 V" in text
    assert "shorthand weights of seed 0" in text and "vin_0 in_0 0 dc 0.5" in text


def test_default_beta_is_written_as_the_nominal_decimal(tmp_path):
    """1e-3 x the 1e-4 S leak is the float 1.0000000000000001e-07; the nominal nudge is 1e-07."""
    code, out, _ = compile_cli(tmp_path, str(NETLISTS / "feedforward.toml"), "--phase", "nudged")
    assert code == 0
    text = out.read_text()
    assert "gnudge_out_0 0 out_0 tgt_out_0 out_0 1e-07" in text and "0000000001" not in text


def test_compile_of_a_circuit_without_an_operating_point(tmp_path, capsys):
    """The free state only adds comments to a free netlist; an AEP netlist needs it for K x0. A
    transconductor from a node to itself of gain equal to its leak leaves KCL singular."""
    groups = (NodeGroup("in", "input", 1), NodeGroup("out", "output", 1, leak=1e-4, bias=1e-5))
    couplings = (
        Coupling("fwd", "vccs", "in", "out", np.array([[1e-4]])),
        Coupling("loop", "vccs", "out", "out", np.array([[1e-4]])),
    )
    spec = tmp_path / "singular.toml"
    save_spec(
        Network("singular", groups, couplings, sample=Sample(np.array([0.5]), np.array([1.0]))),
        spec,
    )
    code, out, _ = compile_cli(tmp_path, str(spec))
    assert code == 0 and "gloop_0_0" in out.read_text() and "nodes span" not in out.read_text()
    code, _, _ = compile_cli(tmp_path, str(spec), "--phase", "aep")
    assert code == 2 and "--phase aep needs the sample's free state" in capsys.readouterr().err
