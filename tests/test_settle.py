"""A transient from rest confirms (or refutes) a DC operating point."""

from pathlib import Path

import numpy as np
import pytest

from circuitep.builders import from_shorthand
from circuitep.cli import main
from circuitep.engines import newton
from circuitep.engines.base import ConvergenceError, Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.numpy_engine import NumpyEngine

pytestmark = pytest.mark.ngspice
SPEC = str(Path(__file__).resolve().parent.parent / "netlists" / "feedforward.toml")


def test_feedforward_circuit_settles_at_its_operating_point(ngspice_engine_factory):
    engine = ngspice_engine_factory("folded")
    net = from_shorthand("ff:12-8-4", seed=1)
    u = np.random.default_rng(0).uniform(0, 1, (3, 12))
    # transient tolerances are ngspice's (reltol 1e-10 here); measured agreement ~1e-15 V
    assert np.abs(engine.settle(net, u) - engine.solve(net, Phase(), u).x).max() <= 1e-6


def test_multistable_circuit_settles_where_the_numpy_engine_says(ngspice_engine_factory):
    """layered:12-8-4 at gain 1 has several DC solutions for sample 0; ngspice's op finds one the
    circuit does not settle into from rest (measured 0.2 V away), the numpy engine's
    pseudo-transient fallback finds the one it does."""
    engine = ngspice_engine_factory("folded")
    net = from_shorthand("layered:12-8-4", seed=1, gain=1.0)
    u = np.random.default_rng(0).uniform(0, 1, (1, 12))
    settled = engine.settle(net, u)
    op = engine.solve(net, Phase(), u).x
    numpy_op = NumpyEngine().solve(net, Phase(), u)
    assert np.abs(settled - op).max() > 0.01
    assert np.abs(settled - numpy_op.x).max() <= 1e-6
    assert numpy_op.stable.all()


def test_simulate_settle_option(tmp_path, capsys):
    assert main(["simulate", SPEC, "--settle", "--json", str(tmp_path / "op.json")]) == 0
    assert "settles at this operating point" in capsys.readouterr().out
    assert main(["simulate", SPEC, "--engine", "numpy", "--settle"]) == 2


def test_simulate_settle_says_when_the_transient_runs_away(tmp_path, capsys):
    """Self-feedback of 2x the leak: the DC solution exists (and is unstable); from rest the
    voltages grow without bound, which is not 'settling elsewhere'."""
    spec = tmp_path / "runaway.toml"
    spec.write_text("""name = "runaway"
[[groups]]
name = "in"
role = "input"
size = 1
[[groups]]
name = "out"
role = "output"
size = 1
leak = 1e-4
[[couplings]]
name = "i"
kind = "vccs"
src = "in"
dst = "out"
weight = [[1e-4]]
[[couplings]]
name = "s"
kind = "vccs"
src = "out"
dst = "out"
weight = [[2e-4]]
[sample]
inputs = [0.5]
""")
    assert main(["simulate", str(spec), "--settle"]) == 0
    out = capsys.readouterr().out
    assert "UNSTABLE" in out and "transient from rest RUNS AWAY (|v| reaches" in out, out


def test_where_free_transient_steps_cycle_held_steps_settle(ngspice_engine_factory, monkeypatch):
    """layered:12-8-4 at gain 1.5 (loop gain above 1): for 19 of 50 samples (measured) Newton fails
    and pseudo-transient steps that grow freely cycle without settling. The engines' fallback
    (:func:`~circuitep.engines.newton.settle`: steps held to 0.1 V first) finds a stable operating
    point for every one, where ngspice's transient from rest ends (tolerance as above) and where
    the layered engine's fallback ends too (same algorithm, other linear algebra: 1e-9 V)."""
    net = from_shorthand("layered:12-8-4", seed=0, gain=1.5)
    u = np.random.default_rng(0).uniform(0, 1, (50, 12))
    monkeypatch.setattr(newton, "TRANSIENT_MAX_STEP", np.inf)  # free steps only
    with pytest.raises(ConvergenceError) as failed:
        NumpyEngine().solve(net, Phase(), u)
    cycled = np.array(failed.value.samples)
    assert len(cycled) >= 10
    monkeypatch.undo()
    op = NumpyEngine().solve(net, Phase(), u[cycled])
    assert op.stable.all()
    assert np.abs(ngspice_engine_factory("folded").settle(net, u[cycled]) - op.x).max() <= 1e-6
    assert np.abs(LayeredEngine().solve(net, Phase(), u[cycled]).x - op.x).max() <= 1e-9


def test_both_numpy_engines_settle_where_the_circuit_does(ngspice_engine_factory):
    """layered:30-20-10 at gain 1, 200 samples: where Newton stalls near a fold or lands on an
    unstable equilibrium, both numpy engines (one solver, dense or block linear algebra) let the
    circuit settle from rest. Measured before they shared it: the dense engine crawled on and ended
    sample 107 on an operating point 2.26 V from the one reached from rest; the layered engine's
    transient cycled between two states for samples 148 and 166, its step grown into Newton's
    regime, so that it failed on 148 and took 1,219 iterations for 166. The circuit approaches these
    states slowly: ngspice's transient is 4e-5 V short of sample 107's after 200 time constants,
    2e-12 V after 1,000, the length used here."""
    net = from_shorthand("layered:30-20-10", seed=0, gain=1.0)
    u = np.random.default_rng(0).uniform(0, 1, (200, 30))
    dense = NumpyEngine().solve(net, Phase(), u)
    assert dense.stable.all()
    layered = LayeredEngine(check_stability=True).solve(net, Phase(), u)
    assert np.abs(layered.x - dense.x).max() <= 1e-9  # same algorithm, other rounding (as below)
    tau = float(np.max(np.concatenate([g.capacitance / g.leak for g in net.free_groups])))
    slow = [107, 148, 166]
    settled = ngspice_engine_factory("folded").settle(net, u[slow], t_stop=1000 * tau)
    assert np.abs(settled - dense.x[slow]).max() <= 1e-6


def test_a_sample_settles_alone_as_in_its_batch():
    """Training drops the samples without an operating point and solves the rest of the batch again,
    which is sound only if a sample's solution does not depend on its batch-mates, also where
    Newton fails and the transient takes over (11 of these 50 samples, measured; before the first
    transient step was set per sample, 5 of them failed in the batch). Batched linear algebra
    rounds differently from single solves (measured 6e-12 V), hence 1e-9 V. The dense engine runs
    the same solver with other linear algebra: the first 10 samples suffice for it (50 take ~5
    s)."""
    net = from_shorthand("layered:12-8-4", seed=0, gain=1.5)
    u = np.random.default_rng(0).uniform(0, 1, (50, 12))
    for engine, n in ((LayeredEngine(), 50), (NumpyEngine(), 10)):
        batch = engine.solve(net, Phase(), u[:n]).x
        alone = np.concatenate([engine.solve(net, Phase(), u[i : i + 1]).x for i in range(n)])
        assert np.abs(batch - alone).max() <= 1e-9, engine.name
