"""The netlist writer: deterministic text of a fixed shape, unique names, plain numbers, and no way
for text other than identifiers, numbers and the compiler's expressions to reach ngspice
(STYLE.md 7, 12)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from circuitep import builders
from circuitep.compiler import FORMS, PHASES, Tolerances, compile_network
from circuitep.costs import CrossEntropy, SquaredError
from circuitep.netlist import (
    ELEMENT_KINDS,
    SWEEP_SOURCE,
    Element,
    ModelCard,
    Netlist,
    Section,
    check_expression,
    spice_number,
    write,
    write_sweep,
)
from circuitep.spec import Sample

#: Same grammar as in test_validation: what spice_number may emit.
NUMBER = re.compile(r"-?(?:\d+\.\d*|\d+|\.\d+)(?:e[+-]?\d+)?")


def networks():
    """Networks that between them use every element kind the compiler emits (R C V I G D B)."""
    return {
        "reciprocal": builders.random_network("reciprocal", seed=0),  # inverted inputs
        "nonreciprocal": builders.random_network("nonreciprocal", seed=1),
        "feedforward": builders.random_network("feedforward", diodes=False, seed=2),
        "tanh": builders.layered(
            (3, 4, 2),
            name="tanhnet",
            forward="tanh",
            backward="tanh",
            resistors=True,
            v_sat=0.3,
            seed=3,
        ),
    }


CASES = [(name, phase, form) for name in networks() for phase in PHASES for form in FORMS]


def compile_case(name: str, phase: str, form: str, cost=None):
    net = networks()[name]  # built afresh each time: determinism must not depend on object identity
    return compile_network(net, phase, form, beta=None if phase == "free" else 1e-6, cost=cost)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: "-".join(c))
def case(request):
    compiled = compile_case(*request.param)
    return request.param, compiled, compiled.text


def test_output_is_deterministic(case):
    params, _, text = case
    again = compile_case(*params).text
    assert again == text
    assert write(compile_case(*params).netlist) == text


def test_starts_with_a_title_line(case):
    (name, phase, form), compiled, text = case
    title = text.splitlines()[0]
    # ngspice always reads the first line as the title, whatever it holds; it must be one plain line
    assert title.strip() and not title.startswith(".")
    assert compiled.network.name in title and phase in title and form in title
    assert title == compiled.netlist.title


def test_options_model_and_end(case):
    _, compiled, text = case
    lines = text.splitlines()
    options = [line for line in lines if line.startswith(".options")]
    assert len(options) == 1, options
    t = Tolerances()
    assert options[0].startswith(".options reltol=")
    for key, value in t.options():
        assert f"{key}={value!r}" in options[0].split(), (key, options[0])
    assert ".model dclamp D(" in text
    assert [line for line in lines if line.startswith(".model")] == [
        ".model dclamp D(is=1e-12 n=1.0)"
    ]
    assert text.endswith("\n")
    assert [line for line in lines if line.strip()][-1] == ".end"
    assert lines.count(".end") == 1


def test_every_line_is_a_comment_a_card_or_an_element(case):
    _, compiled, text = case
    lines = text.splitlines()
    cards = []
    for line in lines[1:]:
        if not line.strip() or line.startswith("*"):
            continue
        if line.startswith("."):
            cards.append(line.split()[0])
            continue
        assert line[0].upper() in ELEMENT_KINDS, f"unexpected line {line!r}"
    assert cards == [".options", ".model", ".end"], cards  # no .control, .include, .param, ...


def test_element_names_unique(case):
    _, compiled, text = case
    names = [
        line.split()[0]
        for line in text.splitlines()[1:]
        if line.strip() and not line.startswith(("*", "."))
    ]
    assert len(names) == len(compiled.netlist.elements())
    lower = [n.lower() for n in names]  # ngspice is case-insensitive
    dupes = sorted({n for n in lower if lower.count(n) > 1})
    assert not dupes, f"duplicate element names: {dupes}"


def test_element_lines_have_their_terminals_and_plain_numbers(case):
    _, compiled, text = case
    by_name = {el.name: el for el in compiled.netlist.elements()}
    for line in text.splitlines()[1:]:
        if not line.strip() or line.startswith(("*", ".")):
            continue
        fields = line.split()
        el = by_name[fields[0]]
        n = ELEMENT_KINDS[el.kind].terminals
        assert tuple(fields[1 : 1 + n]) == el.nodes, line
        rest = fields[1 + n :]
        if el.kind == "D":
            assert rest == [compiled.network.diode.name], line
        elif el.kind == "B":
            assert len(rest) == 1 and rest[0].startswith("I="), line
        elif el.kind in "VI":
            assert rest[0] == "dc" and len(rest) == 2 and NUMBER.fullmatch(rest[1]), line
        else:
            assert len(rest) == 1 and NUMBER.fullmatch(rest[0]), line


@pytest.mark.parametrize(
    "expr", ["1-exp(2)", "v(a)/(exp(v(a))+exp(v(b)))", "2*(1+tanh(v(a)))-exp(0)"]
)
def test_b_source_exp_after_a_sign_accepted(expr):
    assert check_expression("bx", expr) == expr


def test_cross_entropy_nudge_written_as_checked_expression():
    compiled = compile_case("nonreciprocal", "nudged", "folded", cost=CrossEntropy(0.1))
    bs = [el for el in compiled.netlist.elements() if el.kind == "B"]
    assert bs and all("exp(" in el.value for el in bs)
    for el in bs:
        assert check_expression(el.name, el.value) == el.value
    assert (
        compile_case("nonreciprocal", "nudged", "folded", cost=CrossEntropy(0.1)).text
        == compiled.text
    )
    assert (
        compiled.text != compile_case("nonreciprocal", "nudged", "folded", cost=SquaredError()).text
    )


def test_phases_and_forms_differ_where_they_should():
    texts = {(p, f): compile_case("nonreciprocal", p, f).text for p in PHASES for f in FORMS}
    assert len(set(texts.values())) == len(texts)
    assert "gnudge_" in texts[("nudged", "literal")] and "gnudge_" not in texts[("free", "literal")]
    assert (
        "iaep_" in texts[("aep", "folded")]
        and "reversed for the AEP phase" in texts[("aep", "folded")]
    )
    assert "adj_" in texts[("dyadic", "folded")]
    assert "vin_0" in texts[("free", "literal")] and "inrt_" in texts[("free", "folded")]


# ------------------------------------------------------------------------- what is refused


def b_source(expr: str) -> Element:
    return Element("B", "bx", ("0", "n1"), expr)


@pytest.mark.parametrize(
    "expr",
    [
        "1;.control",
        ".control",
        "1 .endc",
        "shell rm",
        "1*v(n1) shell",
        "v(n1)'",
        '"1"',
        "{x}",
        "$x",
        "`x`",
        "1;x",
        "v(n 1)",
        "V(n1)",
        "i(v1)",
        "sqrt(v(n1))",
        "1 & 2",
        "v(n1)\\",
    ],
    ids=repr,
)
def test_b_source_with_disallowed_text_refused(expr):
    with pytest.raises(ValueError, match=r"bx: unexpected text .* in a behavioural expression"):
        b_source(expr)


@pytest.mark.parametrize(
    "expr", ["1\ne 0 0 0 0 1", "1\r\ne 0 0 0 0 1", "1\x0be 0 0 0 0 1"], ids=repr
)
def test_b_source_with_line_break_refused(expr):
    with pytest.raises(ValueError, match=r"bx: unexpected text"):
        b_source(expr)


def test_b_source_with_compiler_style_expression_accepted():
    expr = "-2.5e-05*(1-tanh(v(ref_h1_0)/0.3)*tanh(v(ref_h1_0)/0.3))*(v(h1_0)-v(ref_h1_0))"
    assert b_source(expr).line() == f"bx 0 n1 I={expr}"
    assert b_source("((v(a)-v(b))>=-3*0.02)?(1e-12/0.02*exp(min(v(a),2)/0.02)):(0)").kind == "B"


def test_duplicate_element_names_refused():
    r = Element("R", "r1", ("n1", "0"), 1e3)
    with pytest.raises(ValueError, match="duplicate element name 'r1'"):
        Netlist("* t", (Section("a", (r,)), Section("b", (r,))))


@pytest.mark.parametrize("text", ["two\nlines", "a\r.control", "nul\0"], ids=repr)
def test_comments_titles_and_headers_are_single_lines(text):
    r = (Element("R", "r1", ("n1", "0"), 1e3),)
    with pytest.raises(ValueError, match="must be a single line"):
        Netlist(text, (Section("s", r),))
    with pytest.raises(ValueError, match="must be a single line"):
        Netlist("* t", (Section("s", r),), header=("fine", text))
    with pytest.raises(ValueError, match="must be a single line"):
        Section(text, r)
    with pytest.raises(ValueError, match="must be a single line"):
        Element("R", "r1", ("n1", "0"), 1e3, comment=text)


def test_options_and_model_cards_checked():
    r = (Element("R", "r1", ("n1", "0"), 1e3),)
    with pytest.raises(
        ValueError, match="option = 'reltol\\\\n.control' is not a valid SPICE identifier"
    ):
        Netlist("* t", (Section("s", r),), options=(("reltol\n.control", 1e-3),))
    with pytest.raises(ValueError, match="cannot write nan into a netlist"):
        Netlist("* t", (Section("s", r),), options=(("reltol", float("nan")),))
    with pytest.raises(ValueError, match="model kind 'X' is not supported"):
        ModelCard("dm", "X", ())
    with pytest.raises(
        ValueError, match="model dm parameter = 'is x' is not a valid SPICE identifier"
    ):
        ModelCard("dm", "D", (("is x", 1e-12),))
    with pytest.raises(ValueError, match="model name = 'd m' is not a valid SPICE identifier"):
        ModelCard("d m", "D", ())


def test_diode_element_model_name_checked():
    with pytest.raises(
        ValueError,
        match=re.escape("d1.model = 'dclamp\\n.control' is not a valid SPICE identifier"),
    ):
        Element("D", "d1", ("a", "b"), "dclamp\n.control")


def test_sweep_netlist_reads_each_source_from_its_table():
    compiled = compile_network(builders.layered((3, 2, 2), seed=0), "nudged", "folded", beta=1e-6)
    tables = {
        src.name: [0.1 * k + 0.01 * j for k in range(3)] for j, src in enumerate(compiled.sources)
    }
    text = write_sweep(compiled.netlist, tables)
    for j, src in enumerate(compiled.sources):
        el = compiled.netlist.element(src.name)
        points = ",".join(f"{k},{spice_number(0.1 * k + 0.01 * j)}" for k in range(3))
        assert (
            f"b{src.name} {' '.join(el.nodes)} {el.kind}=pwl(v(sweep_index),{points})"
            in text.splitlines()
        )
        assert el.line() not in text
    assert text.endswith(f"{SWEEP_SOURCE} sweep_index 0 dc 0\n.end\n")
    others = [el.line() for el in compiled.netlist.elements() if el.name not in tables]
    assert all(line in text.splitlines() for line in others)


def test_sweep_tables_are_checked():
    compiled = compile_network(builders.layered((3, 2, 2), seed=0), "free", "folded")
    name = compiled.sources[0].name
    with pytest.raises(ValueError, match="one common length of at least 2"):
        write_sweep(compiled.netlist, {name: [0.1]})
    with pytest.raises(ValueError, match="one common length"):
        write_sweep(compiled.netlist, {name: [0.1, 0.2], compiled.sources[1].name: [0.1, 0.2, 0.3]})
    with pytest.raises(ValueError, match="'rleak_h1_0': not a V or I source"):
        write_sweep(compiled.netlist, {"rleak_h1_0": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'nosuch': not a V or I source"):
        write_sweep(compiled.netlist, {"nosuch": [1.0, 2.0]})
    with pytest.raises(ValueError, match="cannot write nan"):
        write_sweep(compiled.netlist, {name: [0.1, float("nan")]})


@pytest.mark.parametrize("targets", [[0.0, 0.0, 0.0], [-1.0, 0.0, 2.0]])
def test_cross_entropy_nudge_refuses_targets_that_are_not_probabilities(targets):
    """The B-sources divide by the targets' sum: all zeros would write 0/0 into the netlist, which
    ngspice would simulate without complaint. The engines refuse the same targets."""
    net = builders.layered([3, 4, 3], seed=0)
    with pytest.raises(ValueError, match="cross-entropy targets are probabilities"):
        compile_network(
            net,
            "nudged",
            "literal",
            beta=1e-6,
            cost=CrossEntropy(),
            inputs=[0.5, 0.5, 0.5],
            targets=targets,
        )


def test_placeholder_targets_are_not_checked_against_the_cost():
    """Engines compile without targets and set each sample's later: a spec whose sample holds
    squared-error targets (all zero) must still compile for cross-entropy, and a free phase never
    uses targets at all."""
    net = replace(builders.layered([3, 4, 3], seed=0), sample=Sample(np.full(3, 0.5), np.zeros(3)))
    nudged = compile_network(net, "nudged", "literal", beta=1e-6, cost=CrossEntropy())
    # the targets are per-sample sources the engines set: the spec's zeros are only placeholders
    targets = [s.name for s in nudged.sources if s.role == "target"]
    assert len(targets) == net.n_outputs, [(s.name, s.role) for s in nudged.sources]
    held = {el.name: el.value for el in nudged.netlist.elements()}
    assert [held[name] for name in targets] == [0.0] * net.n_outputs
    free = compile_network(
        net,
        "free",
        "literal",
        cost=CrossEntropy(),
        inputs=[0.5, 0.5, 0.5],
        targets=[-1.0, 0.0, 1.0],
    )
    # a free phase has no target sources, and its netlist is the one compiled without targets
    assert not [s for s in free.sources if s.role == "target"]
    plain = compile_network(net, "free", "literal", cost=CrossEntropy(), inputs=[0.5, 0.5, 0.5])
    assert free.text == plain.text


def test_compile_refuses_target_voltages_the_engines_refuse():
    net = builders.layered([3, 4, 3], seed=0)
    with pytest.raises(ValueError, match=r"targets contain 1e\+06 V, beyond \+-1000 V"):
        compile_network(
            net, "nudged", "literal", beta=1e-6, inputs=[0.5, 0.5, 0.5], targets=[1e6, 0.0, 0.0]
        )


@pytest.mark.parametrize("reltol", [1e-16, 1.0])
def test_tolerances_ngspice_cannot_meet_or_that_mean_nothing_are_refused(reltol):
    """reltol 1e-16 (below double precision) hung ngspice's op; 1.0 let it return 0.64 V off."""
    with pytest.raises(ValueError, match=r"tolerance reltol = .* must be within 1e-14 .. 0.01"):
        Tolerances(reltol=reltol)
