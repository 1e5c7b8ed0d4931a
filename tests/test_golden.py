"""The committed golden netlists match the compiler, and they simulate to the numpy solution."""

from pathlib import Path

import numpy as np
import pytest

from circuitep.engines.base import Phase
from circuitep.engines.ngspice_engine import shared_session
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.golden import REFERENCE_SPECS, check_golden, golden_texts
from circuitep.specio import load_spec

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"


def test_golden_netlists_match_the_compiler():
    stale = check_golden(NETLISTS)
    assert not stale, (
        f"golden netlists drifted: {stale}; if intended, run: circuitep golden --write"
    )


def test_there_is_one_golden_netlist_per_spec_phase_and_form():
    paths = golden_texts(NETLISTS)
    assert len(paths) == len(REFERENCE_SPECS) * 4 * 2
    assert all(p.exists() for p in paths)


@pytest.mark.ngspice
@pytest.mark.parametrize("name", REFERENCE_SPECS)
@pytest.mark.parametrize("form", ["literal", "folded"])
def test_golden_free_netlist_simulates_to_the_numpy_state(name, form, ngspice_engine_factory):
    """Load the committed text itself into ngspice (not a recompiled netlist) and compare its
    operating point with the numpy solver's on the spec's sample (1e-6 V, the engines' bar)."""
    ngspice_engine_factory("folded")  # makes sure libngspice is loaded (or the test is gated)
    net = load_spec(NETLISTS / f"{name}.toml")
    text = (NETLISTS / name / f"free-{form}.cir").read_text()
    session, token = shared_session(), object()
    session.add_circuit(token, text)
    try:
        session.checked("op")
        got = np.array([session.vector(n)[0] for n in net.free_nodes])
    finally:
        session.remove(token)
    want = NumpyEngine().solve(net, Phase(), net.sample.inputs[None]).x[0]
    assert np.abs(got - want).max() <= 1e-6, np.c_[got, want]
