"""Bad input is refused at construction, with a message that names the field (STYLE.md item 8),
and numbers reach netlists only through ``spice_number`` (STYLE.md item 7)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest

from circuitep import builders
from circuitep.engines.base import Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.netlist import Element, spice_number
from circuitep.spec import Coupling, DiodeModel, Network, NodeGroup, Sample

IN = NodeGroup("in", "input", 2)
OUT = NodeGroup("out", "output", 1)


def vccs(name="c", src="in", dst="out", weight=((1e-4, 1e-4),), kind="vccs"):
    return Coupling(name, kind, src, dst, np.array(weight, dtype=float))


# --------------------------------------------------------------------------------- couplings


def test_negative_conductance_refused():
    with pytest.raises(
        ValueError, match=re.escape("couplings['c'].weight[0, 1] = -0.0001 is negative")
    ):
        vccs(kind="resistor", weight=((1e-4, -1e-4),))


def test_negative_transconductance_allowed():
    assert vccs(weight=((1e-4, -1e-4),)).weight[0, 1] == -1e-4


@pytest.mark.parametrize("bad, text", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
@pytest.mark.parametrize("kind", ["resistor", "vccs", "tanh"])
def test_non_finite_weights_refused(kind, bad, text):
    with pytest.raises(
        ValueError, match=re.escape(f"couplings['c'].weight[0, 1] = {text} is not finite")
    ):
        vccs(kind=kind, weight=((1e-4, bad),))


def test_non_finite_node_parameters_refused():
    with pytest.raises(ValueError, match=re.escape("groups['h'].leak[1] = nan is not finite")):
        NodeGroup("h", "hidden", 2, leak=[1e-4, np.nan])
    with pytest.raises(ValueError, match=re.escape("groups['h'].bias[0] = inf is not finite")):
        NodeGroup("h", "hidden", 2, bias=[np.inf, 0.0])
    with pytest.raises(ValueError, match=re.escape("groups['h'].leak[0] = -1.0 is negative")):
        NodeGroup("h", "hidden", 1, leak=-1.0)


def test_weight_not_a_matrix_refused():
    with pytest.raises(ValueError, match=re.escape("couplings['c'].weight must be a 2-D matrix")):
        vccs(weight=(1e-4, 1e-4))


def test_weight_shape_mismatch_refused():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "couplings['c'].weight has shape (2, 1), expected (1, 2) = (out.size, in.size)"
        ),
    ):
        Network("n", (IN, OUT), (vccs(weight=((1e-4,), (1e-4,))),))


@pytest.mark.parametrize("end", ["src", "dst"])
def test_unknown_group_in_coupling_refused(end):
    kwargs = {"src": "in", "dst": "out", end: "nope"}
    with pytest.raises(
        ValueError, match=re.escape(f"couplings['c'].{end} = 'nope' is not a group")
    ):
        Network("n", (IN, OUT), (vccs(**kwargs),))


def test_coupling_driving_an_input_refused():
    with pytest.raises(ValueError, match=re.escape("couplings['c'].dst = 'in' is an input group")):
        Network("n", (IN, OUT), (vccs(src="out", dst="in", weight=((1e-4,), (1e-4,))),))


# ------------------------------------------------------------------------------------- names

INJECTIONS = [
    "h\n",  # trailing newline (re.match with $ would let this through)
    "h1\n.control",
    "h1\r\n.control",
    ".control",
    "h.control",
    "shell rm",
    "h 1",
    "h\t1",
    "h;1",
    "H1",
    "Hidden",
    "gnd",
    "ground",
    "",
    "1h",
    "h_1",  # underscores are reserved for the compiler's helper nodes
    "h" * 25,
]


@pytest.mark.parametrize("bad", INJECTIONS, ids=repr)
def test_bad_group_names_refused(bad):
    with pytest.raises(ValueError, match=re.escape(f"groups[{bad!r}].name = {bad!r}")):
        NodeGroup(bad, "hidden", 1)


@pytest.mark.parametrize("bad", [b for b in INJECTIONS if b not in ("h_1", "h" * 25)], ids=repr)
def test_bad_coupling_and_network_names_refused(bad):
    with pytest.raises(ValueError, match=re.escape(f"couplings[{bad!r}].name = {bad!r}")):
        vccs(name=bad)
    with pytest.raises(ValueError, match=re.escape(f"name = {bad!r}")):
        Network(bad, (IN, OUT))


@pytest.mark.parametrize("end", ["src", "dst"])
def test_bad_group_reference_in_coupling_refused(end):
    with pytest.raises(ValueError, match=re.escape(f"couplings['c'].{end} = 'x\\n.control'")):
        vccs(**{end: "x\n.control"})


def test_non_string_names_are_type_errors():
    with pytest.raises(TypeError, match=r"groups\[\?\]\.name must be a string"):
        NodeGroup(3, "hidden", 1)
    with pytest.raises(TypeError, match=r"couplings\[\?\]\.name must be a string"):
        Coupling(None, "vccs", "in", "out", [[1.0]])


@pytest.mark.parametrize("word", ["shell", "control", "endc", "gnd", "include"])
def test_spice_command_words_refused_as_names(word):
    """ngspice command words and ground's names are refused even though they are identifiers."""
    with pytest.raises(
        ValueError, match=re.escape(f"groups['{word}'].name = '{word}' is reserved")
    ):
        NodeGroup(word, "input", 1)
    with pytest.raises(ValueError, match="is reserved"):
        Coupling(word, "resistor", "a", "b", [[1e-4]])


def test_adjoint_prefix_refused_as_coupling_name():
    """Coupling ``x``'s adjoint elements are named ``radj_x_i_j``: a coupling ``adj_x`` collides."""
    with pytest.raises(
        ValueError, match=r"couplings\['adj_x'\]\.name = 'adj_x': the prefix 'adj_' is reserved"
    ):
        Coupling("adj_x", "resistor", "a", "b", [[1e-4]])
    Coupling("x_adj", "resistor", "a", "b", [[1e-4]])  # elsewhere in the name it is fine


def test_multi_line_description_refused():
    with pytest.raises(ValueError, match="description must be a single line"):
        Network("n", (IN, OUT), description="fine\n.control")


# ---------------------------------------------------------------------------- network structure


def test_duplicate_group_names_refused():
    with pytest.raises(ValueError, match=re.escape("groups: duplicate group name(s) ['out']")):
        Network("n", (IN, OUT, NodeGroup("out", "hidden", 3)))


def test_duplicate_coupling_names_refused():
    with pytest.raises(ValueError, match=re.escape("couplings: duplicate coupling name(s) ['c']")):
        Network("n", (IN, OUT), (vccs(), vccs(kind="resistor")))


def test_inverted_group_size_mismatch_refused():
    with pytest.raises(
        ValueError, match=re.escape("groups['inn'].size = 3 differs from the size of 'in' (2)")
    ):
        Network("n", (IN, NodeGroup("inn", "input", 3, invert="in"), OUT))


def test_inverting_a_missing_group_refused():
    with pytest.raises(
        ValueError, match=re.escape("groups['inn'].invert = 'nope' is not a primary input group")
    ):
        Network("n", (IN, NodeGroup("inn", "input", 2, invert="nope"), OUT))


def test_invert_on_a_free_group_refused():
    with pytest.raises(
        ValueError, match=re.escape("groups['h'].invert is only meaningful for input groups")
    ):
        NodeGroup("h", "hidden", 2, invert="in")


def test_clamp_order_checked():
    with pytest.raises(
        ValueError, match=re.escape("groups['h'].clamp = (0.5, -0.5) needs v_lo < v_hi")
    ):
        NodeGroup("h", "hidden", 1, clamp=(0.5, -0.5))


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_group_size_checked(size):
    with pytest.raises(
        ValueError, match=re.escape(f"groups['h'].size = {size!r} must be a positive integer")
    ):
        NodeGroup("h", "hidden", size)


def test_sample_with_wrong_length_refused():
    with pytest.raises(ValueError, match=re.escape("sample.inputs has shape (3,), expected (2,)")):
        Network("n", (IN, OUT), sample=Sample(np.zeros(3)))
    with pytest.raises(ValueError, match=re.escape("sample.targets has shape (2,), expected (1,)")):
        Network("n", (IN, OUT), sample=Sample(np.zeros(2), np.zeros(2)))
    with pytest.raises(ValueError, match=re.escape("sample.inputs[1] = nan is not finite")):
        Network("n", (IN, OUT), sample=Sample(np.array([0.0, np.nan])))


# -------------------------------------------------------------------------------------- phases


@pytest.mark.parametrize("kind", ["nudged", "dyadic"])
def test_phase_needs_non_zero_beta(kind):
    with pytest.raises(ValueError, match=f"a {kind} phase needs a non-zero beta"):
        Phase(kind, 0.0)


def test_phase_checks():
    with pytest.raises(ValueError, match="beta = nan must be a finite real number"):
        Phase("nudged", float("nan"))
    with pytest.raises(ValueError, match="a free phase has no nudge"):
        Phase("free", 1e-6)
    with pytest.raises(ValueError, match="the AEP correction belongs to a nudged phase"):
        Phase("dyadic", 1e-6, aep=True)
    with pytest.raises(ValueError, match="phase kind 'relaxed' is not one of"):
        Phase("relaxed")


# ------------------------------------------------------------------------------------- engines


def engine_params():
    return [
        pytest.param("numpy", id="numpy"),
        pytest.param("literal", id="ngspice-literal", marks=pytest.mark.ngspice),
        pytest.param("folded", id="ngspice-folded", marks=pytest.mark.ngspice),
    ]


@pytest.fixture
def engine(request):
    if request.param == "numpy":
        return NumpyEngine()
    return request.getfixturevalue("ngspice_engine_factory")(request.param)


@pytest.fixture(scope="module")
def net():
    return builders.random_network("nonreciprocal", seed=0)  # 4 inputs, 5 + 3 free nodes


@pytest.mark.parametrize("engine", engine_params(), indirect=True)
@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 5), (1, 2, 4)])
def test_engine_refuses_inputs_of_wrong_shape(engine, net, shape):
    with pytest.raises(
        ValueError, match=re.escape(f"inputs have shape {shape}, expected (batch, 4)")
    ):
        engine.solve(net, Phase(), np.zeros(shape))


@pytest.mark.parametrize("engine", engine_params(), indirect=True)
def test_engine_refuses_bad_batches(engine, net):
    u = np.zeros((2, 4))
    with pytest.raises(ValueError, match="inputs contain NaN or infinite values"):
        engine.solve(net, Phase(), np.array([[0.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(
        ValueError, match=re.escape("the nudged phase needs targets of shape (2, 3)")
    ):
        engine.solve(net, Phase("nudged", 1e-6), u)
    with pytest.raises(ValueError, match=re.escape("targets have shape (2, 2), expected (2, 3)")):
        engine.solve(net, Phase("nudged", 1e-6), u, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="the AEP correction needs the free state x0"):
        engine.solve(net, Phase("nudged", 1e-6, aep=True), u, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=re.escape("x0 has shape (2, 7), expected finite (2, 8)")):
        engine.solve(net, Phase("nudged", 1e-6, aep=True), u, np.zeros((2, 3)), x0=np.zeros((2, 7)))


# ------------------------------------------------------------------------------------ netlists


@pytest.mark.parametrize(
    "node", ["a b", "a\n", "a\nb", "a\r", "A", "", "a;b", "a.b", "v(a)", "a=1"], ids=repr
)
def test_element_node_names_checked(node):
    with pytest.raises(
        ValueError, match=re.escape(f"r1.nodes[1] = {node!r} is not a valid SPICE identifier")
    ):
        Element("R", "r1", ("n1", node), 1e3)


@pytest.mark.parametrize("name", ["r 1", "r1\n", "r1\n.control", "R1", ".r1", "r1;x"], ids=repr)
def test_element_names_checked(name):
    with pytest.raises(
        ValueError, match=re.escape(f"element name = {name!r} is not a valid SPICE identifier")
    ):
        Element("R", name, ("n1", "0"), 1e3)


def test_element_must_start_with_its_letter_and_have_its_terminals():
    with pytest.raises(ValueError, match=re.escape("element 'g1' must start with its letter 'R'")):
        Element("R", "g1", ("n1", "0"), 1e3)
    with pytest.raises(ValueError, match=re.escape("element 'g1' has 2 nodes, a G has 4")):
        Element("G", "g1", ("n1", "0"), 1e-3)
    with pytest.raises(ValueError, match=re.escape("element kind 'Q' is not one of")):
        Element("Q", "q1", ("n1", "0", "n2"), 1.0)
    with pytest.raises(ValueError, match="not a valid SPICE identifier"):  # X names a subcircuit
        Element("X", "x1", ("n1", "0"), 1.0)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_element_values_must_be_finite(value):
    with pytest.raises(ValueError, match="cannot write .* into a netlist"):
        Element("R", "r1", ("n1", "0"), value)


# --------------------------------------------------------------------------------- spice_number

#: What spice_number may emit: a plain decimal or exponent literal. No SI suffix (SPICE reads
#: M as milli, MEG as mega...), no inf/nan, nothing ngspice could read as a scale factor.
NUMBER = re.compile(r"-?(?:\d+\.\d*|\d+|\.\d+)(?:e[+-]?\d+)?")


@pytest.mark.parametrize(
    "value, text",
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-float("inf"), "-inf"),
        (np.float64("nan"), "nan"),
    ],
)
def test_spice_number_refuses_non_finite(value, text):
    with pytest.raises(ValueError, match=f"cannot write {text} into a netlist"):
        spice_number(value)


@pytest.mark.parametrize("value", [True, "1k", "1e3", None, [1.0]], ids=repr)
def test_spice_number_refuses_non_numbers(value):
    with pytest.raises(TypeError, match="a SPICE number must be numeric"):
        spice_number(value)


def _check_number(x: float) -> None:
    s = spice_number(x)
    assert NUMBER.fullmatch(s), f"spice_number({x!r}) = {s!r} is not a plain number"
    assert float(s) == float(x), f"spice_number({x!r}) = {s!r} does not round-trip"
    assert math.copysign(1, float(s)) == math.copysign(1, float(x)) or float(x) == 0


@pytest.mark.parametrize(
    "value",
    [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        1e-3,
        1e-6,
        1e-9,
        1e-12,
        1e-15,
        1e3,
        1e6,
        1e9,
        1e12,
        1e15,
        1e16,
        1e18,
        1e-300,
        5e-324,
        2.2250738585072014e-308,
        1.7976931348623157e308,
        -1.7976931348623157e308,
        0.025864186384551112,
        1 / 3,
        123456789.123456789,
        4.7e3,
        2.2e-6,
        3,
        -7,
        10**15,
        np.float64(0.3),
        np.float32(0.1),
        np.int64(42),
        np.float64(1e-5),
    ],
    ids=repr,
)
def test_spice_number_examples(value):
    _check_number(value)


@pytest.mark.parametrize("value", [1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 1e3, 1e6, 1e9, 1e12], ids=repr)
def test_spice_number_never_uses_si_suffixes(value):
    # f p n u m k meg g t: SPICE reads "1M" as 1e-3, so a scale letter is never acceptable
    text = spice_number(value)
    assert not re.search(r"[a-df-z]", text.lower()), text
    assert float(text) == value


def test_spice_number_random_floats_round_trip():
    """No hypothesis in this environment: 20,000 random doubles over the whole exponent range, plus
    random bit patterns (subnormals included)."""
    rng = np.random.default_rng(2024)
    mags = (
        10.0 ** rng.uniform(-323, 307, 10_000)
        * rng.uniform(1, 10, 10_000)
        * rng.choice([-1, 1], 10_000)
    )
    bits = rng.integers(0, 2**64, 10_000, dtype=np.uint64, endpoint=False).view(
        np.float64
    )  # any sign
    values = np.concatenate([mags, bits])
    values = values[np.isfinite(values)]
    assert values.size > 19_000
    for x in values:
        _check_number(float(x))


def test_free_nodes_without_a_dc_path_to_ground_are_refused():
    """A node fed only by transconductors has no conductance of its own: its voltage is undetermined
    (ngspice returned 9.99995 V for one, the numpy engines a singular Jacobian)."""
    hid = NodeGroup("h", "hidden", 2, leak=[1e-4, 0.0])
    drive = Coupling("w", "vccs", "in", "h", [[1e-4, 0.0], [0.0, 1e-4]])
    out = NodeGroup("out", "output", 1, leak=0.0)
    to_out = Coupling("v", "vccs", "h", "out", [[1e-4, 1e-4]])
    with pytest.raises(ValueError, match=r"free node\(s\) h_1, out_0 have no DC path to ground"):
        Network("n", (IN, hid, out), (drive, to_out))
    # a resistor chain to a leaky node, a resistor to an input, or a clamp each give one
    assert (
        Network(
            "n",
            (IN, hid, out),
            (
                drive,
                to_out,
                Coupling("r", "resistor", "h", "h", [[0, 1e-4], [1e-4, 0]]),
                Coupling("ro", "resistor", "h", "out", [[0.0, 1e-4]]),
            ),
        ).floating_nodes()
        == []
    )
    assert (
        Network(
            "n",
            (IN, NodeGroup("h", "hidden", 2, leak=0.0), out),
            (
                Coupling("r", "resistor", "in", "h", [[1e-4, 0], [0, 1e-4]]),
                Coupling("ro", "resistor", "h", "out", [[1e-4, 0.0]]),
            ),
        ).floating_nodes()
        == []
    )
    assert (
        Network(
            "n",
            (
                IN,
                NodeGroup("h", "hidden", 2, leak=0.0, clamp=(-1, 1)),
                NodeGroup("out", "output", 1, clamp=(-1, 1), leak=0.0),
            ),
            (drive, to_out),
        ).floating_nodes()
        == []
    )


def test_voltages_beyond_max_volts_are_refused():
    """Clamp rails at 1e30 V left ngspice at 0 V where the numpy engines found 0.1 V."""
    with pytest.raises(
        ValueError, match=r"groups\['out'\]\.clamp\[1\] = 1e\+30 V is beyond \+-1000 V"
    ):
        NodeGroup("out", "output", 1, clamp=(-1.0, 1e30))
    with pytest.raises(ValueError, match=r"sample\.inputs\[0\] = -2000 V is beyond"):
        Network(
            "n",
            (IN, OUT),
            (Coupling("r", "resistor", "in", "out", [[1e-4, 1e-4]]),),
            sample=Sample([-2e3, 0]),
        )
    net = Network("n", (IN, OUT), (Coupling("r", "resistor", "in", "out", [[1e-4, 1e-4]]),))
    with pytest.raises(ValueError, match=r"inputs contain 5000 V, beyond \+-1000 V"):
        NumpyEngine().solve(net, Phase(), np.array([[0.0, 5e3]]))
    with pytest.raises(ValueError, match=r"targets contain -1e\+06 V, beyond"):
        NumpyEngine().solve(net, Phase("nudged", beta=1e-6), np.zeros((1, 2)), np.array([[-1e6]]))


def test_huge_conductances_do_not_break_the_stability_check():
    """A 1e308 S leak shorts its node to ground: the operating point is 0 V and stable (the check
    used to overflow into numpy's 'Array must not contain infs or NaNs')."""
    net = Network(
        "n",
        (IN, NodeGroup("out", "output", 1, leak=1e308)),
        (Coupling("r", "resistor", "in", "out", [[1e-4, 1e-4]]),),
    )
    op = NumpyEngine().solve(net, Phase(), np.array([[1.0, 0.5]]))
    assert abs(op.x[0, 0]) < 1e-300 and op.stable.tolist() == [True]
    with pytest.raises(ValueError, match=r"diode\.i_sat = 1e\+300 A is beyond 1 A"):
        DiodeModel(i_sat=1e300)


def test_layer_sizes_must_be_whole_numbers():
    with pytest.raises(ValueError, match=r"sizes = \[2.7, 3.2, 2\] must be whole numbers of nodes"):
        builders.layered([2.7, 3.2, 2])  # int() would quietly make 2 and 3 of them


@pytest.mark.parametrize("extra", [dict(clamp=(0.0, 1.0)), dict(bias=1e-6)])
def test_input_groups_refuse_a_clamp_or_bias(extra):
    with pytest.raises(
        ValueError, match=r"groups\['in'\] is an input group, held by voltage sources"
    ):
        NodeGroup("in", "input", 2, **extra)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="nudged", beta="1e-6"), r"beta = '1e-6' must be a finite real number"),
        (dict(kind="nudged", beta=1j), r"beta = 1j must be a finite real number"),
        (dict(kind="nudged", beta=1e-6, aep="no"), r"aep = 'no' must be True or False"),
        (dict(kind="nudged", beta=1e-6, cost="xent"), r"cost = 'xent' must be a cost object"),
    ],
)
def test_phase_refuses_values_of_the_wrong_type(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Phase(**kwargs)


def test_with_params_names_a_mis_shaped_weight():
    net = builders.layered([4, 3, 2], seed=0)
    with pytest.raises(ValueError, match=r"parameter 'fwd1' has shape \(4, 3\), expected \(3, 4\)"):
        net.with_params({"fwd1": np.zeros((4, 3))})


def test_with_params_checks_the_new_values_and_shares_the_validated_structure():
    """An update checks what parameters can change (bounds, finiteness, masked weights stored as
    0, the DC paths to ground) and shares the rest of the network: the untouched couplings and
    groups, the diode and the sample are the same objects, not validated copies."""
    net = builders.layered([4, 3, 2], forward="vccs", resistors=True, clamp=None, seed=0)
    net = replace(net, sample=Sample(np.full(4, 0.5), np.zeros(2)))
    fwd1 = next(c for c in net.couplings if c.name == "fwd1")
    mask = np.ones(fwd1.weight.shape, bool)
    mask[0, 0] = False
    masked = tuple(replace(c, mask=mask) if c is fwd1 else c for c in net.couplings)
    net = replace(net, couplings=masked)
    new = net.with_params({"fwd1": np.full((3, 4), 2e-4), "h1.bias": np.full(3, 1e-6)})
    assert new.sample is net.sample and new.diode is net.diode
    changed = {"fwd1", "h1"}
    for old, c in zip(net.couplings, new.couplings, strict=True):
        assert (c is old) == (c.name not in changed), c.name
    for old, g in zip(net.groups, new.groups, strict=True):
        assert (g is old) == (g.name not in changed), g.name
    fwd1 = new.couplings[[c.name for c in new.couplings].index("fwd1")]
    assert fwd1.weight[0, 0] == 0 and fwd1.weight[1, 1] == 2e-4 and not fwd1.weight.flags.writeable
    assert new.group("h1").bias.tolist() == [1e-6] * 3
    assert new.group("h1").leak is net.group("h1").leak
    for params, message in [
        ({"fwd1": np.full((3, 4), np.nan)}, r"couplings\['fwd1'\].weight\[0, 0\] = nan is not "),
        ({"fwd1": np.full((3, 4), 2e6)}, r"couplings\['fwd1'\].weight\[0, 0\] = 2000000.0 S is "),
        ({"res1": np.full((3, 4), -1e-4)}, r"couplings\['res1'\].weight\[0, 0\] = -0.0001 is neg"),
        ({"h1.bias": np.full(3, 2e3)}, r"groups\['h1'\].bias\[0\] = 2000.0 A is beyond 1000 A"),
        (
            {"h1.leak": np.zeros(3), "res1": np.zeros((3, 4)), "res2": np.zeros((2, 3))},
            r"free node\(s\) h1_0, h1_1, h1_2 have no DC path to ground",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            net.with_params(params)


def test_from_graph_refuses_transconductors_on_an_undirected_graph():
    """An undirected edge has no direction: its transconductor's was whatever networkx reported."""
    import networkx as nx

    g = nx.Graph()
    g.add_node("a", role="input")
    g.add_node("h", role="hidden")
    g.add_node("o", role="output")
    g.add_edge("a", "h", kind="vccs", weight=1e-4)
    g.add_edge("h", "o", kind="vccs", weight=1e-4)
    with pytest.raises(
        ValueError,
        match=r"a vccs transconductor has a direction; build the network from an nx.DiGraph",
    ):
        builders.from_graph(g)


def test_loop_gain_without_leaks_is_infinite_not_a_linalg_error():
    from circuitep.gradcheck import loop_gain

    net = builders.layered(
        [4, 3, 2],
        forward="vccs",
        backward="vccs",
        symmetric_backward=True,
        leak=0.0,
        clamp=(0.4, 0.6),
        output_clamp=True,
        seed=0,
    )
    assert loop_gain(net) == float("inf")


def test_estimate_refuses_an_x0_that_is_not_the_free_state():
    """The estimators' formulas hold at the operating point; a wrong x0 gave AEP cosine 0.36."""
    from circuitep.estimators import estimate

    net = builders.layered([4, 3, 2], seed=0)
    u, y = np.full((2, 4), 0.5), np.zeros((2, 2))
    x0 = NumpyEngine().solve(net, Phase(), u).x
    estimate("aep", net, NumpyEngine(), u, y, beta=1e-6, x0=x0)  # the right one passes
    with pytest.raises(ValueError, match=r"x0 is not the free operating point of these inputs"):
        estimate("aep", net, NumpyEngine(), u, y, beta=1e-6, x0=x0 + 0.01)
    with pytest.raises(ValueError, match=r"x0 has shape \(2, 4\)"):
        estimate("aep", net, NumpyEngine(), u, y, beta=1e-6, x0=np.zeros((2, 4)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(vtol=1.0), r"vtol = 1.0 must be in \(0, 1e-06\]"),
        (dict(vtol=-1.0), r"vtol = -1.0 must be in"),
        (dict(itol=1e-4), r"itol = 0.0001 must be in \(0, 1e-09\]"),
        (dict(max_iter=2.5), r"max_iter = 2.5 must be a positive whole number"),
    ],
)
@pytest.mark.parametrize("engine", [NumpyEngine, LayeredEngine], ids=["numpy", "layered"])
def test_engine_options_are_checked(engine, kwargs, message):
    """vtol 1 V let Newton stop 0.94 V from the operating point."""
    with pytest.raises(ValueError, match=message):
        engine(**kwargs)


def test_network_parts_must_have_their_types():
    with pytest.raises(TypeError, match="diode must be a DiodeModel, got str"):
        Network("n", (IN, OUT), (), diode="dclamp")
    with pytest.raises(TypeError, match=r"couplings\[0\] must be a Coupling, got str"):
        Network("n", (IN, OUT), ("x",))
    with pytest.raises(TypeError, match="sample must be a Sample or None, got list"):
        Network(
            "n", (IN, OUT), (Coupling("r", "resistor", "in", "out", [[1e-4, 1e-4]]),), sample=[1, 2]
        )


@pytest.mark.parametrize(
    "node_attrs, edge_attrs, message",
    [
        (
            dict(lek=1e-3),
            {},
            r"graph node 'h': attribute\(s\) \['lek'\] unknown or meaningless for a hidden node",
        ),
        ({}, dict(weight=True), r"graph edge 'a' -> 'h': weight = True must be a number"),
        ({}, dict(weight="1e-4"), r"graph edge 'a' -> 'h': weight = '1e-4' must be a number"),
        ({}, dict(v_sat=0.2), r"attribute\(s\) \['v_sat'\] unknown for a vccs edge"),
    ],
    ids=["misspelt-leak", "bool-weight", "string-weight", "v_sat-on-vccs"],
)
def test_from_graph_refuses_attributes_it_would_ignore_or_convert(node_attrs, edge_attrs, message):
    import networkx as nx

    g = nx.DiGraph()
    g.add_node("a", role="input")
    g.add_node("h", role="hidden", **node_attrs)
    g.add_node("o", role="output")
    g.add_edge("a", "h", **{"kind": "vccs", "weight": 1e-4, **edge_attrs})
    g.add_edge("h", "o", kind="vccs", weight=1e-4)
    with pytest.raises(ValueError, match=message):
        builders.from_graph(g)


def test_from_graph_keeps_a_tanh_edges_v_sat():
    import networkx as nx

    g = nx.DiGraph()
    g.add_node("a", role="input")
    g.add_node("o", role="output")
    g.add_edge("a", "o", kind="tanh", weight=1e-4, v_sat=0.2)
    assert builders.from_graph(g).couplings[0].v_sat == 0.2  # was always 1 V


def test_layered_refuses_a_circuit_whose_inputs_drive_nothing():
    with pytest.raises(ValueError, match="without either the inputs drive nothing"):
        builders.layered([4, 3, 2], forward=None, backward="vccs")
    with pytest.raises(ValueError, match=r"gain = -1 must be a non-negative finite number"):
        builders.layered([4, 3, 2], gain=-1)
