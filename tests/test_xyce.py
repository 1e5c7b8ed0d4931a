"""``compile --dialect xyce``: Xyce netlists checked against Xyce's documented grammar.

Xyce cannot be installed here, so nothing is run: each line is checked against the Xyce Reference
Guide (github.com/Xyce/Xyce, doc/Reference_Guide): ``.OPTIONS <pkg> <name>=<value>`` with GMIN in
the DEVICE table and RELTOL, ABSTOL in the NONLIN table (OPTIONS_Command, devtbl, nlstbl);
``.MODEL <name> D(...)`` with level-1 diode parameters (D_1_Device_Model_Params) and LEVEL;
``B<name> <+> <-> I={<expression>}`` (B_Device) whose functions are in the arithmetic-function
table and whose operators in the operator table (Expression_*); G as
``G<name> <+> <-> <c+> <c-> <transconductance>`` (G_Device); ``.DC TEMP LIST <value>`` (DC_Command)
with ``.PRINT DC``. Every other element line must be the ngspice writer's line itself.
"""

import re
from pathlib import Path

import pytest

from circuitep.builders import layered
from circuitep.cli import main
from circuitep.compiler import FORMS, PHASES, compile_network
from circuitep.costs import CrossEntropy
from circuitep.golden import GOLDEN_BETA, REFERENCE_SPECS
from circuitep.netlist import DialectError, Element, Netlist, Section, write_xyce
from circuitep.spec import DiodeModel, Network
from circuitep.specio import load_spec

NETLISTS = Path(__file__).resolve().parent.parent / "netlists"
OPTIONS = {
    "DEVICE": {"GMIN", "TEMP", "TNOM"},
    "NONLIN": {"RELTOL", "ABSTOL", "MAXSTEP", "DELTAXTOL", "RHSTOL"},
}
DIODE_PARAMS = {
    "AF",
    "BV",
    "CJ",
    "CJ0",
    "CJO",
    "EG",
    "FC",
    "IBV",
    "IKF",
    "IRF",
    "IS",
    "ISR",
    "JS",
    "KF",
    "M",
    "N",
    "NBV",
    "NR",
    "RS",
    "TNOM",
    "TT",
    "VB",
    "VJ",
    "XTI",
    "LEVEL",
}
FUNCTIONS = {"ABS", "EXP", "LN", "LOG", "MIN", "MAX", "TANH", "SQRT", "IF", "LIMIT", "V"}
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
EXPR_TOKEN = re.compile(rf"\s*(?:[A-Za-z_][A-Za-z0-9_]*|{NUMBER[5:]}|>=|<=|==|!=|[-+*/()?:<>,])")


def check_expression(expr: str, nodes: set[str]) -> None:
    assert expr.count("(") == expr.count(")"), expr
    for node in re.findall(r"v\(([a-z0-9_]+)\)", expr):
        assert node in nodes, f"V({node}) of a node the netlist does not have"
    rest = re.sub(r"v\([a-z0-9_]+\)", "1", expr)
    pos = 0
    while pos < len(rest):
        m = EXPR_TOKEN.match(rest, pos)
        assert m and m.end() > pos, f"unexpected text {rest[pos : pos + 20]!r}"
        token = m.group().strip()
        if re.fullmatch(r"[A-Za-z_]\w*", token):
            assert token.upper() in FUNCTIONS and rest[m.end() : m.end() + 1] == "(", (
                f"function {token!r}"
            )
        pos = m.end()


def check_xyce(text: str, ngspice: str) -> None:
    lines = text.split("\n")
    assert lines[0].startswith("*") and lines[-2:] == [".END", ""]
    ng_elements = {
        line.split()[0]: line.split(" ; ")[0]
        for line in ngspice.split("\n")[1:]
        if line and line[0].isalpha()
    }
    nodes = {n for line in ng_elements.values() for n in line.split()[1:3]}
    models, printing = set(), False
    for line in lines[1:-2]:
        if not line or line.startswith("*"):
            continue
        if line.startswith("+"):
            assert printing, line
            assert re.fullmatch(r"\+( V\([a-z0-9_]+\))+", line), line
            continue
        printing = False
        word = line.split()[0]
        if word == ".OPTIONS":
            pkg, *opts = line.split()[1:]
            for opt in opts:
                name, value = opt.split("=")
                assert name in OPTIONS[pkg] and re.fullmatch(NUMBER, value), line
        elif word == ".MODEL":
            m = re.fullmatch(r"\.MODEL ([a-z0-9_]+) D\((.*)\)", line)
            assert m, line
            models.add(m.group(1))
            assert all(p.split("=")[0] in DIODE_PARAMS for p in m.group(2).split()), line
            assert "LEVEL=1" in m.group(2).split(), line
        elif word == ".DC":
            assert re.fullmatch(rf"\.DC TEMP LIST {NUMBER}", line), line
        elif word == ".PRINT":
            assert re.fullmatch(r"\.PRINT DC( V\([a-z0-9_]+\))+", line), line
            printing = True
        elif word[0] == "b":
            m = re.fullmatch(r"(b[a-z0-9_]*) ([a-z0-9_]+) ([a-z0-9_]+) I=\{(.*)\}", line)
            assert m, line
            check_expression(m.group(4), nodes)
        else:
            assert not word.startswith("."), f"unexpected card {line!r}"
            assert line == ng_elements[word], (line, ng_elements[word])
            if word[0] == "d":
                assert line.split()[3] in models, line
    for node in re.findall(r"V\(([a-z0-9_]+)\)", text):
        assert node in nodes, node


@pytest.mark.parametrize("name", REFERENCE_SPECS)
@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("form", FORMS)
def test_xyce_netlists_follow_the_documented_grammar(name, phase, form):
    net = load_spec(NETLISTS / f"{name}.toml")
    compiled = compile_network(net, phase, form, beta=None if phase == "free" else GOLDEN_BETA)
    text = compiled.spice(dialect="xyce")
    check_xyce(text, compiled.spice(standalone=False))
    assert ".control" not in text and "not run here: Xyce is not installed" in text
    assert ".DC TEMP LIST 27" in text and "vntol = 1e-12 V (ngspice) has no Xyce option" in text
    assert ".PRINT DC" not in compiled.spice(standalone=False, dialect="xyce")


def test_tanh_couplings_and_the_cross_entropy_nudge_follow_it_too():
    net = layered((3, 4, 2), name="tanhnet", forward="tanh", backward="tanh", v_sat=0.3, seed=3)
    for phase in ("free", "nudged", "aep", "dyadic"):
        compiled = compile_network(
            net, phase, "literal", beta=None if phase == "free" else 1e-6, cost=CrossEntropy()
        )
        check_xyce(compiled.spice(dialect="xyce"), compiled.spice(standalone=False))


def test_an_option_xyce_has_no_counterpart_for_is_refused():
    net = Netlist(
        "* t", (Section("s", (Element("R", "r1", ("a", "0"), 1.0),)),), options=(("itl1", 100.0),)
    )
    with pytest.raises(DialectError, match="option 'itl1' has no Xyce counterpart"):
        write_xyce(net)


def test_compile_dialect_xyce_writes_the_file(tmp_path):
    out = tmp_path / "x.cir"
    assert (
        main(["compile", str(NETLISTS / "feedforward.toml"), "--dialect", "xyce", "-o", str(out)])
        == 0
    )
    text = out.read_text()
    assert (
        ".MODEL dclamp D(IS=1e-12 N=1.0 LEVEL=1)" in text and ".OPTIONS DEVICE GMIN=1e-12" in text
    )
    assert "--dialect xyce" in text.split("\n")[4]


@pytest.mark.parametrize("phase", PHASES)
def test_a_full_level1_card_at_temperature_follows_it_too(phase):
    """Every level-1 card parameter circuitep writes, at 85 degC, in every phase (the dyadic one
    with RS as explicit resistors beside the junction card)."""
    base = load_spec(NETLISTS / "feedforward.toml")
    card = dict(rs=12.5, cjo=2e-12, vj=0.7, m=0.33, fc=0.4, tt=5e-9, bv=75.0, ibv=2e-6)
    card |= dict(eg=0.69, xti=2.0, tnom=35.0)
    diode = DiodeModel(**card)
    net = Network(base.name, base.groups, base.couplings, diode, base.sample, "", 85.0)
    compiled = compile_network(net, phase, beta=None if phase == "free" else GOLDEN_BETA)
    text = compiled.spice(dialect="xyce")
    check_xyce(text, compiled.spice(standalone=False))
    assert ".DC TEMP LIST 85.0" in text and "TEMP=85.0 TNOM=27.0" in text
