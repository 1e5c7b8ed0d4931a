"""Regenerate the three reference specs in netlists/ (then run ``circuitep golden --write``).

    python experiments/make_reference_specs.py

Weights and biases are rounded to three significant digits so the TOML files read well; each spec
carries one fixed sample (inputs in V, targets in V). Prints each free state as a check.
"""

from pathlib import Path

import numpy as np

from circuitep.builders import layered
from circuitep.engines.base import Phase
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.spec import Network, Sample
from circuitep.specio import load_spec, save_spec

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"
SAMPLE = Sample(np.array([0.9, 0.1, 0.6, 0.3]), np.array([0.5, 0.0, 0.0]))


def three_digits(a: np.ndarray) -> np.ndarray:
    return np.array([float(f"{v:.3g}") for v in np.ravel(a)]).reshape(np.shape(a))


def with_sample_rounded(net: Network) -> Network:
    params = {k: three_digits(v) for k, v in net.params().items() if not k.endswith(".leak")}
    net = net.with_params(params)
    return Network(net.name, net.groups, net.couplings, net.diode, SAMPLE, net.description)


SPECS = (
    layered(
        (4, 5, 3),
        name="feedforward",
        forward="vccs",
        gain=1.5,
        bias_scale=0.2,
        seed=3,
        description="Feedforward transconductor network 4-5-3 with diode clamps: no feedback, "
        "VF cannot train its hidden layer",
    ),
    layered(
        (4, 5, 3),
        name="reciprocal",
        forward=None,
        resistors=True,
        inverted_inputs=True,
        gain=4.0,
        bias_scale=0.5,
        seed=4,
        description="Kendall-style resistive network 4(+4 inverted)-5-3 with diode clamps: "
        "reciprocal, "
        "EP is exact",
    ),
    layered(
        (4, 6, 5, 3),
        name="layered",
        forward="vccs",
        backward="vccs",
        resistors=True,
        gain=2.0,
        bias_scale=0.2,
        seed=5,
        description="Layered 4-6-5-3: resistors plus independent forward and backward "
        "transconductors "
        "(asymmetric)",
    ),
)

if __name__ == "__main__":
    for spec in SPECS:
        net = with_sample_rounded(spec)
        path = NETLISTS / f"{net.name}.toml"
        save_spec(net, path)
        again = load_spec(path)
        assert all(np.array_equal(v, again.params()[k]) for k, v in net.params().items()), path
        print(net.name, NumpyEngine().solve(net, Phase(), SAMPLE.inputs[None]).x.round(3))
