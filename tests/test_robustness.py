"""Failure paths that once gave silently wrong numbers or deep tracebacks."""

import numpy as np
import pytest

from circuitep.builders import layered
from circuitep.costs import CrossEntropy
from circuitep.engines.base import ConvergenceError, Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.ngspice_engine import NgspiceError, shared_session
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.spec import Coupling, DiodeModel, Network, NodeGroup

NUMPY = NumpyEngine()


def small(name="net", diode=None):
    net = layered((3, 4, 2), name=name, forward="vccs", backward="vccs", resistors=True, seed=1)
    return Network(name, net.groups, net.couplings, diode or DiodeModel())


@pytest.mark.ngspice
def test_a_refused_netlist_does_not_confuse_other_engines(ngspice_engine_factory):
    engine = ngspice_engine_factory("folded")
    net, u = small(), np.full((1, 3), 0.5)
    engine.solve(net, Phase(), u)
    engine.solve(net, Phase("nudged", beta=1e-6), u, np.zeros((1, 2)))
    with pytest.raises(NgspiceError, match="rejected the netlist"):
        shared_session().add_circuit(object(), "* bad\nv1 a 0 dc 1\nd1 a 0 nomodel\n.end\n")
    again = engine.solve(net, Phase(), u).x
    assert np.abs(again - NUMPY.solve(net, Phase(), u).x).max() <= 1e-6


@pytest.mark.ngspice
def test_a_network_named_error_loads(ngspice_engine_factory):
    net, u = small("error_net"), np.full((1, 3), 0.5)
    got = ngspice_engine_factory("folded").solve(net, Phase(), u).x
    assert np.abs(got - NUMPY.solve(net, Phase(), u).x).max() <= 1e-6


@pytest.mark.ngspice
def test_a_new_diode_model_reloads_the_circuit(ngspice_engine_factory):
    engine = ngspice_engine_factory("folded")
    u = np.full((1, 3), 0.9)
    for i_sat in (1e-12, 1e-6):
        net = small(diode=DiodeModel(i_sat=i_sat))
        assert (
            np.abs(engine.solve(net, Phase(), u).x - NUMPY.solve(net, Phase(), u).x).max() <= 1e-6
        )


@pytest.mark.parametrize(
    "text", ["line\x1cR99 out_0 0 1", "page\x0cbreak", "R\u00e9sum\u00e9", "a\u2028b"]
)
def test_descriptions_are_printable_ascii(text):
    net = small()
    with pytest.raises(ValueError, match="printable ASCII"):
        Network(net.name, net.groups, net.couplings, description=text)


def test_conductance_scale_ignores_zero_leaks_and_refuses_none():
    groups = (
        NodeGroup("in", "input", 1),
        NodeGroup("h", "hidden", 3, leak=0.0),
        NodeGroup("out", "output", 1, leak=2e-4),
    )
    couplings = (
        Coupling("a", "vccs", "in", "h", [[1e-4]] * 3),
        Coupling("b", "resistor", "h", "out", [[1e-4] * 3]),
    )
    assert Network("n", groups, couplings).conductance_scale() == 2e-4
    no_leak = (
        groups[0],
        groups[1],
        NodeGroup("out", "output", 1, leak=0.0, clamp=(-1.0, 1.0)),
    )  # DC path: diodes
    with pytest.raises(ValueError, match="no leak conductance"):
        Network("n", no_leak, couplings).conductance_scale()


@pytest.mark.parametrize("engine", [NUMPY, LayeredEngine()], ids=lambda e: e.name)
def test_singular_circuit_is_a_convergence_error_not_a_linalg_error(engine):
    """Hidden nodes with no net conductance to ground: one whose leak a transconductor from the node
    to itself cancels, and two whose 2 x 2 block the layered engine solves densely (where its block
    elimination once raised numpy's LinAlgError for the whole batch). At zero input the free state
    is 0 V, where ``F`` already vanishes, but the adjoint circuit has no operating point: the dyadic
    phase says so instead of returning NaN. (A node with no DC path at all is refused by the
    spec.)"""
    one = Network(
        "sing",
        (
            NodeGroup("in", "input", 1),
            NodeGroup("h", "hidden", 1, leak=1e-4),
            NodeGroup("out", "output", 1),
        ),
        (
            Coupling("a", "vccs", "in", "h", [[1e-4]]),
            Coupling("c", "vccs", "h", "h", [[1e-4]]),
            Coupling("b", "vccs", "h", "out", [[1e-4]]),
        ),
    )
    two = Network(
        "sing2",
        (
            NodeGroup("in", "input", 1),
            NodeGroup("h", "hidden", 2, leak=0.0),
            NodeGroup("out", "output", 2),
        ),
        (
            Coupling("a", "vccs", "in", "h", [[1e-4], [1e-4]]),
            Coupling("r", "resistor", "h", "out", [[1e-4, 0], [0, 1e-4]]),
            Coupling("b", "vccs", "out", "h", [[1e-4, 0], [0, 1e-4]]),
        ),
    )
    for net in (one, two):
        with pytest.raises(
            ConvergenceError,
            match=f"network '{net.name}'.*sample\\(s\\) \\[0, 1\\]; the Jacobian was singular",
        ):
            engine.solve(net, Phase(), np.array([[0.5], [0.2]]))
    zero = np.zeros((2, 1))
    x0 = engine.solve(one, Phase(), zero).x
    with pytest.raises(
        ConvergenceError,
        match="the Jacobian at the free state is singular for sample\\(s\\) \\[0, 1\\]",
    ):
        engine.solve(one, Phase("dyadic", beta=0.5), zero, np.ones((2, 1)), x0=x0, x_init=x0)


def test_cross_entropy_targets_must_be_probabilities():
    net = small()
    with pytest.raises(ValueError, match="cross-entropy targets are probabilities"):
        NUMPY.solve(
            net,
            Phase("nudged", beta=1e-6, cost=CrossEntropy(0.1)),
            np.full((1, 3), 0.5),
            np.array([[1.0, -0.5]]),
        )


def test_bad_warm_start_is_refused():
    with pytest.raises(ValueError, match="x_init has shape"):
        NUMPY.solve(small(), Phase(), np.full((2, 3), 0.5), x_init=np.zeros((2, 5)))
