"""A transient from rest confirms (or refutes) a DC operating point."""

from pathlib import Path

import numpy as np
import pytest

from circuitep.builders import from_shorthand
from circuitep.cli import main
from circuitep.engines.base import Phase
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
    circuit does not settle into from rest (measured 0.2 V away), the numpy engine's pseudo-transient
    fallback finds the one it does."""
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
