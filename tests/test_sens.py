"""ngspice's own sensitivities (.sens) against the exact adjoint gradient."""

from pathlib import Path

import numpy as np
import pytest

from circuitep.builders import random_network
from circuitep.cli import main
from circuitep.engines.base import Phase
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.estimators import compare, estimate
from circuitep.golden import REFERENCE_SPECS
from circuitep.gradcheck import probe_batch
from circuitep.sens import sens_gradients
from circuitep.specio import load_spec

pytestmark = pytest.mark.ngspice
NETLISTS = Path(__file__).resolve().parent.parent / "netlists"


# ngspice's DC sensitivities are forward differences with a relative perturbation of 1e-6 of each
# element value: measured relative errors are 1.0e-6 for resistor groups and ~1e-11 for VCCS and
# current sources, except on strongly conducting diode clamps where the curvature of the diode
# law over the perturbation gives up to 7.9e-4 (feedforward spec). Bars: cosine >= 0.9999 and
# relative error <= 2e-3.
@pytest.mark.parametrize(
    "net",
    [load_spec(NETLISTS / f"{n}.toml") for n in REFERENCE_SPECS]
    + [random_network("nonreciprocal", seed=1)],
    ids=lambda n: n.name,
)
def test_sens_matches_exact_gradient(net, ngspice_engine_factory):
    engine = ngspice_engine_factory("literal")
    u, y = probe_batch(net, 4)
    sens = sens_gradients(net, engine, u, y)
    exact = estimate("exact", net, NumpyEngine(), u, y, beta=1e-7).grads
    result = compare(sens, {k: exact[k] for k in sens})
    assert result["cosine"] >= 0.9999 and result["rel_error"] <= 2e-3, result


def test_sensitivities_leave_the_engines_circuits_as_they_were(ngspice_engine_factory):
    """Measured on ngspice 46: a second ``sens`` on one circuit zeroes every VCCS gain for good.

    Sensitivities run on a circuit of their own, so the engine's loaded free circuit solves the
    same operating points afterwards (bit for bit), however often they ran, and a second call
    gives the same sensitivities.
    """
    engine = ngspice_engine_factory("literal")
    net = load_spec(NETLISTS / "feedforward.toml")
    u, _ = probe_batch(net, 3)
    before = engine.solve(net, Phase(), u).x
    first = engine.sensitivities(net, u)
    second = engine.sensitivities(net, u)
    assert np.array_equal(engine.solve(net, Phase(), u).x, before)
    assert any(k.startswith("g") for k in first)  # VCCS gains are covered
    for k in first:
        np.testing.assert_allclose(second[k], first[k], rtol=1e-9, atol=0)


def test_sens_needs_literal_form(ngspice_engine_factory):
    net = load_spec(NETLISTS / "layered.toml")
    with pytest.raises(ValueError, match="literal form"):
        sens_gradients(net, ngspice_engine_factory("folded"), *probe_batch(net, 1))


def test_gradcheck_sens_option(tmp_path):
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "gradcheck",
                str(NETLISTS / "layered.toml"),
                "--form",
                "literal",
                "--sens",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    import json

    report = json.loads(out.read_text())
    assert report["sens"]["cosine"] >= 0.9999
    assert np.isfinite(report["sens"]["rel_error"])
