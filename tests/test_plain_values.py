"""Hostile values from Python and from spec files (issue 14, items 2, 3, 12 and 13).

- Names and numbers are kept as the plain ``str`` / ``float`` they hold, so what is validated is
  what is written: a ``str`` subclass whose ``__format__`` returned ``.control`` lines reached the
  netlist as the diode model's name, and ``ngspice -b`` then ran its ``shell`` command.
- Words ngspice gives a meaning to are refused as the diode model's name (``temper`` made ngspice
  39 segfault) and as any model or node name of a netlist; names next to them still simulate.
- Values outside physical bounds are refused naming the field and the value (a 1e-320 S leak
  said "cannot write inf into a netlist", 5e-324 F "Array must not contain infs or NaNs").
- Booleans are not numbers in a training configuration (``lr_groups={"fwd1": True}`` trained).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from dataclasses import asdict, replace

import networkx as nx
import numpy as np
import pytest

from circuitep import builders
from circuitep.checks import is_bool, is_integer, is_number
from circuitep.compiler import FORMS, PHASES, Tolerances, compile_network
from circuitep.costs import CrossEntropy
from circuitep.datasets import load_dataset
from circuitep.engines.base import Phase
from circuitep.engines.ngspice_engine import check_timeout
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.engines.pool import PoolEngine
from circuitep.netlist import RESERVED_NAMES, Element, ModelCard, spice_number
from circuitep.spec import Coupling, DiodeModel, Network, NodeGroup, Sample
from circuitep.specio import SpecError, load_spec, spec_to_toml
from circuitep.train import TrainConfig, constrain

#: What a lying diode name formatted as: a complete model card, a control section, and a comment
#: starter for the rest of the line.
PAYLOAD = "dclamp D(is=1e-12)\n.control\nshell touch {marker}\n.endc\n*"


def lying_str(text: str, marker) -> str:
    """A ``str`` holding ``text`` whose ``__str__``, ``__format__`` and ``__repr__`` return a
    control section that creates ``marker``."""
    lie = PAYLOAD.format(marker=marker)

    class Lying(str):
        def __str__(self):
            return lie

        def __format__(self, spec):
            return lie

        def __repr__(self):
            return lie

    return Lying(text)


class LyingFloat(float):
    """A float whose text and ``__float__`` say another number (and another netlist line)."""

    def __repr__(self):
        return "1\n.control\nshell touch lying-float\n.endc"

    __str__ = __repr__

    def __format__(self, spec):
        return repr(self)

    def __float__(self):
        return 1e300


def texts(net: Network) -> list[str]:
    """The netlists of every phase and form of ``net``."""
    return [
        compile_network(net, phase, form, beta=None if phase == "free" else 1e-6).text
        for phase in PHASES
        for form in FORMS
    ]


def run_ngspice_batch(text: str, folder) -> subprocess.CompletedProcess:
    """``ngspice -b`` on ``text`` in ``folder`` with HOME there (no init file of the user's)."""
    exe = shutil.which("ngspice")
    assert exe, "the ngspice executable is not on PATH"
    path = folder / "circuit.cir"
    path.write_text(text)
    return subprocess.run(
        [exe, "-b", str(path)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(folder)},
    )


def base_network() -> Network:
    return builders.layered([2, 2, 2], forward="tanh", backward="vccs", resistors=True, seed=1)


# --------------------------------------------------------------------------- item 2: lying str


def with_lying_names(net: Network, marker) -> Network:
    """``net`` with every name (network, groups, couplings, their ends, the diode) a lying str."""
    lie = lambda text: lying_str(text, marker)  # noqa: E731
    groups = tuple(
        NodeGroup(
            lie(g.name),
            lie(g.role),
            g.size,
            g.leak,
            g.bias,
            g.capacitance,
            g.clamp,
            None if g.invert is None else lie(g.invert),
        )
        for g in net.groups
    )
    couplings = tuple(
        Coupling(lie(c.name), lie(c.kind), lie(c.src), lie(c.dst), c.weight, c.mask, c.v_sat)
        for c in net.couplings
    )
    diode = DiodeModel(net.diode.i_sat, net.diode.n, lie(net.diode.name))
    return Network(lie(net.name), groups, couplings, diode, net.sample, lie(net.description))


@pytest.mark.ngspice
def test_lying_strings_write_the_text_they_hold_and_run_nothing(tmp_path, ngspice_engine_factory):
    """Every name given as a str subclass whose formatting is a shell command: the netlists are
    the plain ones to the byte, and neither ngspice -b nor the in-process engine runs anything."""
    marker = tmp_path / "MARKER"
    hostile = with_lying_names(
        builders.layered(
            [2, 2, 2], forward="tanh", backward="vccs", resistors=True, inverted_inputs=True, seed=1
        ),
        marker,
    )
    plain = builders.layered(
        [2, 2, 2], forward="tanh", backward="vccs", resistors=True, inverted_inputs=True, seed=1
    )
    assert texts(hostile) == texts(plain)
    for name in [
        hostile.name,
        hostile.diode.name,
        *(g.name for g in hostile.groups),
        *(c.name for c in hostile.couplings),
        *(c.src for c in hostile.couplings),
    ]:
        assert type(name) is str
    for text in texts(hostile)[:2]:
        assert ".control" not in text and "shell" not in text
        run_ngspice_batch(text, tmp_path)
    u = np.full((1, hostile.n_inputs), 0.3)
    got = ngspice_engine_factory("literal").solve(hostile, Phase(), u).x
    assert np.abs(got - NumpyEngine().solve(plain, Phase(), u).x).max() < 1e-6
    assert not marker.exists()


@pytest.mark.ngspice
def test_a_lying_diode_name_runs_nothing(tmp_path):
    """The reported case: only the diode model's name lies; it wrote a control section after
    the model card, which ngspice -b ran (without clamps no diode line breaks the circuit first)."""
    marker = tmp_path / "MARKER"
    net = builders.layered(
        [2, 2, 2], forward="tanh", backward="vccs", resistors=True, clamp=None, seed=1
    )
    hostile = Network(
        net.name, net.groups, net.couplings, DiodeModel(name=lying_str("dclamp", marker))
    )
    run_ngspice_batch(hostile_text := compile_network(hostile).text, tmp_path)
    assert not marker.exists(), "ngspice ran the shell command of a lying diode name"
    assert ".control" not in hostile_text and texts(hostile) == texts(net)


@pytest.mark.ngspice
def test_the_old_injection_would_have_run(tmp_path):
    """The check above is not vacuous: the netlist the old code wrote for a lying diode name (its
    formatting in the model card) makes ngspice -b run the command."""
    marker = tmp_path / "MARKER"
    text = compile_network(base_network()).text.replace(
        ".model dclamp", ".model " + PAYLOAD.format(marker=marker)
    )
    run_ngspice_batch(text, tmp_path)
    assert marker.exists()


def test_lying_strings_in_netlist_parts_are_written_plain(tmp_path):
    marker = tmp_path / "MARKER"
    el = Element(
        "D",
        lying_str("d1", marker),
        (lying_str("a", marker), "0"),
        lying_str("dclamp", marker),
        lying_str("comment", marker),
    )
    assert el.line() == "d1 a 0 dclamp ; comment"
    assert (
        ModelCard(
            lying_str("dclamp", marker), lying_str("D", marker), (("is", LyingFloat(1e-12)),)
        ).line()
        == ".model dclamp D(is=1e-12)"
    )
    b = Element("B", "b1", ("0", "a"), lying_str("v(a)*2", marker))
    assert b.line() == "b1 0 a I=v(a)*2"


def test_netlist_parts_must_be_the_netlists_own_classes():
    """A subclass of Element, Section or ModelCard could override line(): refused."""
    from circuitep.netlist import Netlist, Section

    class Sneaky(ModelCard):
        def line(self):
            return ".control"

    r = Element("R", "r1", ("a", "0"), 1.0)
    with pytest.raises(TypeError, match="is not a ModelCard"):
        Netlist("* t", (Section("s", (r,)),), (Sneaky("dd", "D", ()),))
    with pytest.raises(TypeError, match="is not an Element"):
        Section("s", (replace(r, comment="x"), "r2 a 0 1"))


def test_lying_floats_write_the_number_they_hold():
    """A float subclass's repr, str, format and __float__ all lie; the number it holds is used."""
    assert spice_number(LyingFloat(0.25)) == "0.25"
    net = base_network()
    h1 = net.group("h1")
    hostile_groups = tuple(
        NodeGroup(
            g.name,
            g.role,
            g.size,
            [LyingFloat(v) for v in g.leak],
            [LyingFloat(v) for v in g.bias],
            LyingFloat(1e-12),
            (LyingFloat(g.clamp[0]), LyingFloat(g.clamp[1])),
        )
        if g.free
        else g
        for g in net.groups
    )
    hostile_couplings = tuple(
        Coupling(
            c.name,
            c.kind,
            c.src,
            c.dst,
            [[LyingFloat(v) for v in row] for row in c.weight],
            None,
            LyingFloat(c.v_sat),
        )
        for c in net.couplings
    )
    hostile = Network(
        net.name,
        hostile_groups,
        hostile_couplings,
        DiodeModel(LyingFloat(1e-12), LyingFloat(1.0)),
        Sample([LyingFloat(0.1), LyingFloat(0.2)], [LyingFloat(0.3), LyingFloat(0.0)]),
    )
    plain = Network(
        net.name, net.groups, net.couplings, DiodeModel(), Sample([0.1, 0.2], [0.3, 0.0])
    )
    assert np.array_equal(hostile.group("h1").leak, h1.leak)
    tol = Tolerances(LyingFloat(1e-10), LyingFloat(1e-12), LyingFloat(1e-15))
    assert type(tol.reltol) is float
    got = [
        compile_network(
            hostile, p, f, beta=None if p == "free" else LyingFloat(1e-6), tolerances=tol
        ).text
        for p in PHASES
        for f in FORMS
    ]
    assert got == texts(plain)
    assert all("lying" not in t and "1e+300" not in t for t in got)
    phase = Phase("nudged", LyingFloat(1e-6))
    assert type(phase.beta) is float and phase.label == "nudged(beta=1e-06)"


def test_numpy_strings_and_integers_are_plain_and_bytes_are_refused():
    g = NodeGroup(np.str_("h"), np.str_("hidden"), np.int64(2))
    assert type(g.name) is str and type(g.role) is str and type(g.size) is int
    assert type(DiodeModel(name=np.str_("dd")).name) is str
    with pytest.raises(TypeError, match=r"groups\[\?\]\.name must be a string, got bytes"):
        NodeGroup(b"h", "hidden", 1)
    with pytest.raises(TypeError, match=r"diode\.name must be a string, got bytes"):
        DiodeModel(name=b"dclamp")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seed=True), r"seed = True must be a non-negative integer"),
        (dict(seed=1.5), r"seed = 1.5 must be a non-negative integer"),
        (dict(gain=np.bool_(True)), r"gain = .*True.* must be a non-negative finite number"),
        (dict(gain=math.nan), r"gain = nan must be a non-negative finite number"),
        (dict(sizes=[2, True]), r"sizes = \[2, True\] must be whole numbers of nodes"),
    ],
)
def test_layered_refuses_booleans_and_non_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        builders.layered(**{"sizes": [2, 2], **kwargs})


def test_from_graph_keeps_plain_values(tmp_path):
    marker = tmp_path / "MARKER"
    g = nx.DiGraph()
    g.add_node("a", role=lying_str("input", marker))
    g.add_node(
        "h",
        role="hidden",
        group=lying_str("hid", marker),
        leak=LyingFloat(2e-4),
        clamp=(LyingFloat(-0.4), 0.5),
    )
    g.add_node("o", role="output", bias=LyingFloat(1e-6))
    g.add_edge("a", "h", kind="vccs", weight=LyingFloat(1e-4))
    g.add_edge("h", "o", kind=lying_str("tanh", marker), weight=1e-4, v_sat=LyingFloat(0.5))
    net = builders.from_graph(g, diode=DiodeModel(name=lying_str("dd", marker)))
    plain = nx.DiGraph()
    plain.add_node("a", role="input")
    plain.add_node("h", role="hidden", group="hid", leak=2e-4, clamp=(-0.4, 0.5))
    plain.add_node("o", role="output", bias=1e-6)
    plain.add_edge("a", "h", kind="vccs", weight=1e-4)
    plain.add_edge("h", "o", kind="tanh", weight=1e-4, v_sat=0.5)
    assert texts(net) == texts(builders.from_graph(plain, diode=DiodeModel(name="dd")))


# ---------------------------------------------------------------------- item 3: reserved words


@pytest.mark.parametrize("word", sorted(RESERVED_NAMES))
def test_ngspice_words_are_refused_as_the_diode_model_name(word):
    with pytest.raises(ValueError, match=re.escape(f"diode.name = {word!r} is reserved")):
        DiodeModel(name=word)
    with pytest.raises(
        ValueError, match=re.escape(f"model name = {word!r} is a word ngspice reserves")
    ):
        ModelCard(word, "D", ())
    with pytest.raises(
        ValueError, match=re.escape(f"d1.model = {word!r} is a word ngspice reserves")
    ):
        Element("D", "d1", ("a", "0"), word)
    with pytest.raises(
        ValueError, match=re.escape(f"r1.nodes[0] = {word!r} is a word ngspice reserves")
    ):
        Element("R", "r1", (word, "0"), 1.0)


@pytest.mark.parametrize("word", ["TEMPER", "Temper", "GND", "Hertz"])
def test_reserved_words_are_refused_in_any_case(word):
    with pytest.raises(ValueError, match=re.escape(f"diode.name = {word!r}")):
        DiodeModel(name=word)
    with pytest.raises(ValueError, match=re.escape(f"groups[{word!r}].name = {word!r}")):
        NodeGroup(word, "hidden", 1)
    with pytest.raises(ValueError, match=re.escape(f"model name = {word!r}")):
        ModelCard(word, "D", ())


def test_reserved_diode_name_in_a_spec_file_names_the_file_and_field(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(spec_to_toml(base_network()).replace('name = "dclamp"', 'name = "temper"'))
    with pytest.raises(SpecError, match=re.escape(f"{path}: diode.name = 'temper' is reserved")):
        load_spec(path)


NEIGHBOURS = [
    "temper1",
    "hertz2",
    "time0",
    "pi1",
    "e1",
    "boltz1",
    "gnd1",
    "vv",
    "ii",
    "table1",
    "u3",
    "if1",
]


@pytest.mark.ngspice
@pytest.mark.parametrize("form", FORMS)
def test_names_next_to_reserved_words_simulate(form, ngspice_engine_factory):
    """Words just next to reserved ones still work as the diode model, groups, couplings and the
    network; so do reserved words as group and coupling names, which never stand alone in a
    netlist (nodes are <group>_<k>, elements <letter><coupling>_<i>_<j>)."""
    net = builders.layered([3, 2, 2], forward="tanh", backward="vccs", resistors=True, seed=2)
    renames = {"in": "temper", "h1": "e", "out": "time"}
    cnames = iter(["pi", "hertz", "c", "i", "v", "table", "u"])
    cmap = {c.name: next(cnames) for c in net.couplings}
    for diode, groups, couplings in [
        ("temper1", renames, cmap),
        (
            "hertz2",
            {"in": "pi1", "h1": "boltz1", "out": "gnd1"},
            # NEIGHBOURS[5:] has more names than there are couplings
            {c.name: n for c, n in zip(net.couplings, NEIGHBOURS[5:], strict=False)},
        ),
    ]:
        g2 = tuple(replace(g, name=groups[g.name]) for g in net.groups)
        c2 = tuple(
            replace(c, name=couplings[c.name], src=groups[c.src], dst=groups[c.dst])
            for c in net.couplings
        )
        renamed = Network("time1", g2, c2, DiodeModel(name=diode))
        u = np.array([[0.2, 0.7, 0.4]])
        got = ngspice_engine_factory(form).solve(renamed, Phase(), u).x
        want = NumpyEngine().solve(net, Phase(), u).x
        assert np.abs(got - want).max() < 1e-6, f"{diode}: ngspice {got} numpy {want}"


# ------------------------------------------------------------------------ item 12: bounds


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("leak", 1e-320, "groups['h1'].leak[0] = 1e-320 S is below 1e-15 S"),
        ("leak", 5e-324, "groups['h1'].leak[0] = 5e-324 S is below 1e-15 S"),
        ("leak", 1e-16, "groups['h1'].leak[0] = 1e-16 S is below 1e-15 S"),
        ("capacitance", 5e-324, "groups['h1'].capacitance[0] = 5e-324 F is below 1e-18 F"),
        ("capacitance", 1e300, "groups['h1'].capacitance[0] = 1e+300 F is beyond 1000 F"),
        ("bias", 1e300, "groups['h1'].bias[0] = 1e+300 A is beyond 1000 A"),
    ],
)
def test_node_parameters_outside_physical_bounds_name_the_field(key, value, message, tmp_path):
    with pytest.raises(ValueError, match=re.escape(message)):
        NodeGroup("h1", "hidden", 2, **{key: value})
    path = tmp_path / "spec.toml"
    path.write_text(spec_to_toml(base_network()).replace(f"{key} = ", f"{key} = {value!r} #", 1))
    with pytest.raises(SpecError, match=re.escape(f"{path}: {message}")):
        load_spec(path)


def test_zero_leak_and_tiny_transconductances_still_pass():
    assert NodeGroup("h", "hidden", 1, leak=0.0).leak[0] == 0
    assert (
        Coupling("c", "vccs", "a", "b", [[5e-324]]).weight[0, 0] == 5e-324
    )  # no reciprocal is taken
    assert Coupling("r", "resistor", "a", "b", [[0.0]]).weight[0, 0] == 0


@pytest.mark.parametrize(
    "kind, weight, message",
    [
        ("resistor", 1e-320, "couplings['c'].weight[0, 0] = 1e-320 S is below 1e-15 S"),
        ("resistor", 1e300, "couplings['c'].weight[0, 0] = 1e+300 S is beyond 1e+06 S"),
        ("vccs", -1e300, "couplings['c'].weight[0, 0] = -1e+300 S is beyond 1e+06 S"),
        ("tanh", 1e7, "couplings['c'].weight[0, 0] = 10000000.0 S is beyond 1e+06 S"),
    ],
)
def test_weights_outside_physical_bounds_name_the_field(kind, weight, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Coupling("c", kind, "a", "b", [[weight]])


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: Coupling("c", "tanh", "a", "b", [[1e-4]], v_sat=5e-324),
            "couplings['c'].v_sat = 5e-324 V is below",
        ),
        (
            lambda: Coupling("c", "tanh", "a", "b", [[1e-4]], v_sat=1e4),
            "couplings['c'].v_sat = 10000.0 V is beyond",
        ),
        (lambda: DiodeModel(i_sat=5e-324), "diode.i_sat = 5e-324 A is below 1e-30 A"),
        (lambda: DiodeModel(n=5e-324), "diode.n = 5e-324 is below 0.1"),
        (lambda: DiodeModel(n=1e3), "diode.n = 1000.0 is beyond 100"),
    ],
)
def test_device_parameters_outside_physical_bounds_name_the_field(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def graph_with(node=None, edge=None) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_node("a", role="input")
    g.add_node("h", role="hidden", **(node or {}))
    g.add_node("o", role="output")
    g.add_edge("a", "h", **{"kind": "tanh", "weight": 1e-4, **(edge or {})})
    g.add_edge("h", "o", kind="vccs", weight=1e-4)
    return g


@pytest.mark.parametrize(
    "node, edge, message",
    [
        ({}, dict(v_sat=math.nan), "graph edge 'a' -> 'h': v_sat = nan is not finite"),
        ({}, dict(v_sat=-1.0), "graph edge 'a' -> 'h': v_sat = -1.0 must be positive"),
        ({}, dict(weight=1e300), "graph edge 'a' -> 'h': weight = 1e+300 S is beyond 1e+06 S"),
        (dict(leak=1e-320), {}, "graph node 'h': leak = 1e-320 S is below 1e-15 S"),
        (dict(capacitance=5e-324), {}, "graph node 'h': capacitance = 5e-324 F is below 1e-18 F"),
        (dict(bias=math.inf), {}, "graph node 'h': bias = inf is not finite"),
        (dict(clamp=(math.nan, 1.0)), {}, "graph node 'h': clamp[0] = nan is not finite"),
        (
            dict(group="temper\n"),
            {},
            "graph node 'h': group = 'temper\\n' is not a plain identifier",
        ),
        (dict(group=3), {}, "graph node 'h': group must be a string, got int"),
    ],
)
def test_from_graph_names_the_node_or_edge_and_the_value(node, edge, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        builders.from_graph(graph_with(node, edge))


def test_training_keeps_couplings_within_the_specs_bounds():
    """An SGD step may leave a resistor at 1e-17 S or a weight beyond 1e6 S (w_max is relative):
    constrain removes the one and clips the other, so the updated network is still a valid spec."""
    net = builders.layered([2, 2, 2], forward="vccs", resistors=True, seed=0)
    params = {k: np.array(v) for k, v in net.params().items()}
    params["res1"][0, 0], params["fwd1"][0, 0] = 1e-17, 1e9
    out = constrain(net, params, TrainConfig(w_max=1e12, g_bounds=(0.0, 10.0)))
    assert out["res1"][0, 0] == 0 and out["fwd1"][0, 0] == 1e6
    net.with_params(out)


# ------------------------------------------------------------------ item 13: no booleans


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(lr_groups={"fwd1": True}),
            r"lr_groups\['fwd1'\] = True must be a non-negative finite number",
        ),
        (
            dict(lr_groups={"fwd1": np.bool_(False)}),
            r"lr_groups\['fwd1'\] = .*False.* must be a non-negative",
        ),
        (dict(lr_groups={"fwd1": "0.1"}), r"lr_groups\['fwd1'\] = '0.1' must be a non-negative"),
        (
            dict(lr_groups={1: 0.1}),
            r"lr_groups keys must be parameter group names \(strings\), got 1",
        ),
        (dict(lr_groups=[("fwd1", 0.1)]), r"lr_groups = \[\('fwd1', 0.1\)\] must be a dict"),
        (dict(momentum=False), r"momentum = False must be in \[0, 1\)"),
        (dict(w_max=True), r"w_max = True must be positive and finite"),
        (dict(v_on=True), r"v_on = True must be a target voltage"),
        (dict(g_bounds=(False, True)), r"g_bounds = \(False, True\) must be a pair of numbers"),
        (dict(levels=True), r"levels = True must be an integer >= 2"),
        (dict(eval_train_samples=True), r"eval_train_samples = True must be a positive integer"),
        (dict(tau=np.bool_(True)), r"tau = .*True.* must be a positive finite number"),
    ],
)
def test_train_config_refuses_booleans_as_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


@pytest.mark.parametrize("tau", [True, np.bool_(True), "0.1", math.nan])
def test_cross_entropy_temperature_is_a_number(tau):
    with pytest.raises(
        ValueError, match="cross-entropy temperature tau = .* must be a positive number of volts"
    ):
        CrossEntropy(tau)


def test_cross_entropy_temperature_is_kept_plain():
    assert (
        type(CrossEntropy(LyingFloat(0.2)).tau) is float
        and CrossEntropy(LyingFloat(0.2)).tau == 0.2
    )


def test_train_config_stores_plain_values():
    config = TrainConfig(
        lr=LyingFloat(0.1),
        lr_groups={np.str_("fwd1"): np.float32(0.5)},
        momentum=np.float64(0.5),
        algorithm=np.str_("ep"),
        epochs=np.int64(2),
        g_bounds=[np.float32(0.0), 10],
    )
    assert config.lr == 0.1 and type(config.lr) is float
    assert config.lr_groups == {"fwd1": 0.5} and type(next(iter(config.lr_groups))) is str
    assert (
        type(config.algorithm) is str
        and type(config.epochs) is int
        and config.g_bounds == (0.0, 10.0)
    )
    assert TrainConfig(**json.loads(json.dumps(asdict(config)))) == config


# ------------------------------------------------------------------ one number-checking helper


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda b: PoolEngine(workers=b), r"workers = .*True.* must be a positive integer"),
        (
            lambda b: PoolEngine(timeout=b),
            r"timeout = .*True.* must be a positive number of seconds",
        ),
        (lambda b: PoolEngine(ngspice_timeout=b), r"timeout = .*True.* must be a positive number"),
        (check_timeout, r"timeout = .*True.* must be a positive number of seconds"),
        (
            lambda b: load_dataset("xor", n_train=b),
            r"xor: n_train must be a positive int or None, got .*True",
        ),
        (lambda b: load_dataset("xor", seed=b), r"seed must be a non-negative int, got .*True"),
        (lambda b: NumpyEngine(vtol=b), r"numpy engine: vtol = .*True.* must be in \(0, 1e-06\]"),
        (lambda b: NumpyEngine(itol=b), r"numpy engine: itol = .*True.* must be in \(0, 1e-09\]"),
        (
            lambda b: NumpyEngine(max_iter=b),
            r"numpy engine: max_iter = .*True.* must be a positive whole number",
        ),
    ],
)
@pytest.mark.parametrize("flag", [True, np.bool_(True)])
def test_engine_and_data_options_refuse_booleans_as_numbers(make, message, flag):
    """circuitep.checks decides what a number is for engines and data sets too (issue 15 item 5),
    where hand-written checks used to; the options are refused before any worker starts."""
    with pytest.raises(ValueError, match=message):
        make(flag)


def test_checks_tell_booleans_from_numbers():
    assert [is_bool(v) for v in (True, np.bool_(False), 1, 0.0, "True")] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert not any(f(v) for f in (is_number, is_integer) for v in (True, np.bool_(True)))
    assert is_number(np.float32(1)) and is_integer(np.int8(1)) and not is_integer(1.0)
    assert Phase("nudged", 1e-6, aep=np.bool_(True)).aep is True
