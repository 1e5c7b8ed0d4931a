"""A plain-data netlist and its ngspice-dialect writer.

The compiler turns a network into a :class:`Netlist`; :func:`write` turns that into SPICE text. This
module never imports an engine. Every element kind is described once in :data:`ELEMENT_KINDS`
(letter, terminals, value, unit); names, nodes and numbers are validated here, so no text can
reach ngspice that is not a plain identifier or a number written by :func:`spice_number`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from circuitep.checks import finite_float, is_number, plain_float, plain_str

#: SPICE node and element names: lower-case identifiers (ngspice lower-cases everything anyway).
IDENT = re.compile(r"[a-z0-9][a-z0-9_]*")

#: Words ngspice gives a meaning to, refused as user names (any case; SPICE is case-insensitive)
#: and as model and node names in a netlist: ground's names; dot-commands and control words; the
#: functions of the B-source parser (inpptree.c) and of numparam (xpressn.c) with numparam's
#: keywords; the expression variables temper, hertz and time (a diode model named ``temper`` made
#: ngspice 39 segfault, ``gnd`` failed to load); and the constants of the front end (pi, e, c, i,
#: kelvin, echarge, boltz, planck, yes, no, true, false).
RESERVED_NAMES = frozenset(
    """
    gnd ground
    shell control endc end include lib endl param options option model subckt ends alter source
    run op quit exit set global func dc ac tran temp
    abs acos acosh asin asinh atan atanh arctan cos cosh exp ln log log10 sgn sin sinh sqrt sqr tan
    tanh u u2 uramp pwl pwl_derivative eq0 ne0 gt0 lt0 ge0 le0 pow pwr min max ceil floor nint int
    ddt idt table tablef ternary_fcn agauss gauss unif aunif limit v i
    and or not div mod if else while macro funct defined for to downto is var
    temper hertz time
    pi e c kelvin echarge boltz planck yes no true false
""".split()
)
#: Behavioural expressions are built by the compiler only from node names, numbers, arithmetic,
#: the ternary operator and these functions.
#: ngspice's sparse-matrix solvers: KLU (SuiteSparse; ngspice builds with KLU, such as Debian
#: bookworm-backports' 46) and Sparse 1.3 (every build).
SOLVERS = ("klu", "sparse")
_EXPR_TOKENS = re.compile(
    r"[ \t]*(?:v\([a-z0-9_]+\)|exp|tanh|min"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    r"|[-+*/()?:<>=,])"
)


@dataclass(frozen=True)
class ElementKind:
    """One row of the element table: how an element is written and what its value means."""

    letter: str
    terminals: int
    value: str  # what the value field is: resistance, dc, gain, model, expression
    unit: str
    description: str


ELEMENT_KINDS: dict[str, ElementKind] = {
    k.letter: k
    for k in (
        ElementKind("R", 2, "resistance", "Ohm", "resistor n+ n-"),
        ElementKind("C", 2, "capacitance", "F", "capacitor n+ n-"),
        ElementKind("V", 2, "dc", "V", "voltage source n+ n- (V(n+) - V(n-) = dc)"),
        ElementKind("I", 2, "dc", "A", "current source, dc amperes flow from n+ through it to n-"),
        ElementKind(
            "G",
            4,
            "gain",
            "S",
            "VCCS n+ n- nc+ nc-: gain * V(nc+, nc-) flows from n+ through it to n-",
        ),
        ElementKind("D", 2, "model", "", "diode anode cathode model"),
        ElementKind("B", 2, "expression", "A", "behavioural current source n+ n- I=expression"),
        ElementKind("M", 4, "model", "", "MOSFET drain gate source bulk model w=... l=... (m)"),
        ElementKind("X", 0, "subcircuit", "", "subcircuit instance pins... name (0: any pins)"),
        ElementKind(
            "N", 2, "conductance", "S", "Verilog-A programmable resistor n+ n- (OSDI, g=value)"
        ),
    )
}
#: Geometry parameters every MOSFET line carries (m).
MOSFET_PARAMS = ("w", "l")
#: Instance parameters a MOSFET line may carry beside them: multiplier, junction areas (m^2) and
#: perimeters (m), squares of drain and source diffusion.
MOSFET_OPTIONAL = ("m", "ad", "as", "pd", "ps", "nrd", "nrs")
#: Model-card kinds the writer emits: the junction diode, ngspice's MOSFETs and the package's
#: own Verilog-A device (:mod:`circuitep.verilog_a`, loaded through OSDI).
MODEL_KINDS = ("D", "NMOS", "PMOS", "circuitep_vres")
#: The model card every ``N`` element uses (:data:`circuitep.verilog_a.CARD`).
VA_CARD = "circuitep_vres_card"
#: A path of an OSDI library a standalone netlist loads (``pre_osdi``): plain characters only.
OSDI_PATH = re.compile(r"/[A-Za-z0-9_./-]+\.osdi")
#: A saved device parameter: ``@<device>[<parameter>]`` (ngspice's device-parameter vectors; the
#: device name may carry a subcircuit path ``m.x1.m2``).
SAVED_PARAM = re.compile(r"@[a-z][a-z0-9_.]*\[[a-z]+\]")


def spice_number(x: float) -> str:
    """The shortest decimal that round-trips ``x`` (Python's ``repr``); never SI suffixes.

    SPICE reads ``M`` as milli, so suffixes are never used. NaN and infinities are refused. The
    number written is the one ``x`` holds (:func:`circuitep.checks.plain_float`), whatever a
    subclass's ``__repr__`` or ``__float__`` says.

    Parameters
    ----------
    x : float
        A finite real number.

    Returns
    -------
    str
        Its SPICE text.
    """
    if not is_number(x):
        raise TypeError(f"a SPICE number must be numeric, got {x!r}")
    try:
        x = plain_float("value", x)
    except ValueError as exc:  # an integer beyond 1.8e308
        raise ValueError(f"cannot write {x} into a netlist: too large for a double") from exc
    if not math.isfinite(x):
        raise ValueError(f"cannot write {x} into a netlist")
    return repr(x) if x != 0 else "0"


def check_ident(path: str, name: str, *, reserved: bool = False) -> str:
    """``name`` as a plain ``str`` if it is a SPICE identifier.

    ``name`` as a plain ``str`` if it is a SPICE identifier (and, with ``reserved``, not one of
    :data:`RESERVED_NAMES`, for model and node names), else a ``ValueError`` naming ``path``.

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    name : str
        The identifier.
    reserved : bool
        Also refuse :data:`RESERVED_NAMES`.

    Returns
    -------
    str
        ``name`` as a plain ``str``.
    """
    if not isinstance(name, str) or not IDENT.fullmatch(name):
        raise ValueError(
            f"{path} = {name!r} is not a valid SPICE identifier (pattern {IDENT.pattern})"
        )
    name = plain_str(path, name)
    if reserved and name.lower() in RESERVED_NAMES:
        raise ValueError(
            f"{path} = {name!r} is a word ngspice reserves (see circuitep.netlist.RESERVED_NAMES)"
        )
    return name


def check_expression(path: str, expr: str) -> str:
    """Accept only the tokens the compiler builds expressions from (no dot-commands, no quotes).

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    expr : str
        A behavioural expression.

    Returns
    -------
    str
        ``expr`` as a plain ``str``.
    """
    if not isinstance(expr, str):
        raise ValueError(f"{path}: a behavioural expression must be a string, got {expr!r}")
    expr = plain_str(path, expr)
    pos = 0
    while pos < len(expr):
        m = _EXPR_TOKENS.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(
                f"{path}: unexpected text {expr[pos : pos + 20]!r} in a behavioural expression"
            )
        pos = m.end()
    return expr


@dataclass(frozen=True)
class Element:
    """One netlist element.

    ``letter`` is its SPICE letter (a key of :data:`ELEMENT_KINDS`), ``name`` its full SPICE name
    (starting with the letter).
    """

    letter: str
    name: str
    nodes: tuple[str, ...]
    value: float | str
    comment: str = ""
    #: MOSFETs only: ``(("w", metres), ("l", metres))``
    params: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        ek = ELEMENT_KINDS.get(self.letter) if isinstance(self.letter, str) else None
        if ek is None:
            raise ValueError(f"element kind {self.letter!r} is not one of {sorted(ELEMENT_KINDS)}")
        object.__setattr__(self, "letter", ek.letter)
        # plain values only: line() writes exactly what is checked here
        object.__setattr__(self, "name", check_ident("element name", self.name))
        if not self.name.startswith(self.letter.lower()):
            raise ValueError(f"element {self.name!r} must start with its letter {self.letter!r}")
        if not isinstance(self.nodes, tuple) or (
            len(self.nodes) != ek.terminals if ek.terminals else not self.nodes
        ):
            raise ValueError(
                f"element {self.name!r} has {len(self.nodes)} nodes, a {self.letter} has "
                f"{ek.terminals}"
            )
        nodes = tuple(
            check_ident(f"{self.name}.nodes[{k}]", n, reserved=True)
            for k, n in enumerate(self.nodes)
        )
        object.__setattr__(self, "nodes", nodes)
        if self.letter in "DMX":
            model = check_ident(f"{self.name}.model", self.value, reserved=True)
            object.__setattr__(self, "value", model)
        elif self.letter == "B":
            object.__setattr__(self, "value", check_expression(self.name, self.value))
        else:
            spice_number(self.value)
            object.__setattr__(self, "value", finite_float(f"{self.name} value", self.value))
        _check_comment(self.comment)
        object.__setattr__(self, "comment", plain_str(f"{self.name} comment", self.comment))
        params = tuple(self.params)
        if self.letter != "M" and params:
            raise ValueError(f"element {self.name!r}: only a MOSFET carries parameters")
        if self.letter == "M":
            keys = [k for k, _ in params]
            if (
                len(set(keys)) != len(keys)
                or not set(MOSFET_PARAMS) <= set(keys)
                or not set(keys) <= set(MOSFET_PARAMS) | set(MOSFET_OPTIONAL)
            ):
                raise ValueError(
                    f"MOSFET {self.name!r} needs the parameters {MOSFET_PARAMS} and may have "
                    f"{MOSFET_OPTIONAL}, each once; got {keys}"
                )
            params = tuple(
                (k, finite_float(f"{self.name}.{k}", v)) for k, v in params if spice_number(v)
            )
            if any(v <= 0 for k, v in params if k in MOSFET_PARAMS) or any(
                v < 0 for _, v in params
            ):
                raise ValueError(
                    f"MOSFET {self.name!r}: w and l must be positive (m), the others >= 0"
                )
        object.__setattr__(self, "params", params)

    @property
    def kind(self) -> str:
        """The element's SPICE letter: the older name of :attr:`letter`.

        An element *kind* is now a coupling or node kind of :mod:`circuitep.elements`.
        """
        return self.letter

    def line(self) -> str:
        """The element's SPICE line.

        Returns
        -------
        str
            One line, no newline.
        """
        if self.letter in "DX":
            value = self.value
        elif self.letter == "M":
            value = " ".join([self.value] + [f"{k}={spice_number(v)}" for k, v in self.params])
        elif self.letter == "N":
            value = f"{VA_CARD} g={spice_number(self.value)}"
        elif self.letter == "B":
            value = f"I={self.value}"
        elif self.letter in "VI":
            value = f"dc {spice_number(self.value)}"
        else:
            value = spice_number(self.value)
        text = f"{self.name} {' '.join(self.nodes)} {value}"
        return f"{text} ; {self.comment}" if self.comment else text


@dataclass(frozen=True)
class Section:
    """A commented block of elements (one layer, one coupling, the sources, ...)."""

    title: str
    elements: tuple[Element, ...]

    def __post_init__(self):
        _check_comment(self.title)
        object.__setattr__(self, "title", plain_str("section title", self.title))
        object.__setattr__(self, "elements", tuple(self.elements))
        for el in self.elements:
            if type(el) is not Element:  # a subclass could write another line()
                raise TypeError(f"section {self.title!r}: {el!r} is not an Element")


@dataclass(frozen=True)
class ModelCard:
    """``.model name kind(param=value ...)``."""

    name: str
    kind: str
    params: tuple[tuple[str, float], ...]

    def __post_init__(self):
        object.__setattr__(self, "name", check_ident("model name", self.name, reserved=True))
        if not isinstance(self.kind, str) or str.__str__(self.kind) not in MODEL_KINDS:
            raise ValueError(f"model kind {self.kind!r} is not supported")
        object.__setattr__(self, "kind", str.__str__(self.kind))
        params = []
        for key, val in self.params:
            spice_number(val)
            params.append(
                (
                    check_ident(f"model {self.name} parameter", key),
                    finite_float(f"model {self.name} {key}", val),
                )
            )
        object.__setattr__(self, "params", tuple(params))

    def line(self) -> str:
        """The card's ``.model`` line.

        Returns
        -------
        str
            One line, no newline.
        """
        params = " ".join(f"{k}={spice_number(v)}" for k, v in self.params)
        return f".model {self.name} {self.kind}({params})"


@dataclass(frozen=True)
class Subcircuit:
    """``.subckt name pins...`` ... ``.ends``: a block of elements instanced by ``X`` lines.

    Its elements are any but ``X`` (no nesting); their nodes are its pins, ``0`` (global ground)
    or its own internal nodes.
    """

    name: str
    pins: tuple[str, ...]
    elements: tuple[Element, ...]

    def __post_init__(self):
        object.__setattr__(self, "name", check_ident("subcircuit name", self.name, reserved=True))
        pins = tuple(
            check_ident(f"subcircuit {self.name} pin", p, reserved=True) for p in self.pins
        )
        if not pins or len(set(pins)) != len(pins) or "0" in pins:
            raise ValueError(f"subcircuit {self.name}: pins {pins} must be distinct, not 0")
        object.__setattr__(self, "pins", pins)
        object.__setattr__(self, "elements", tuple(self.elements))
        for el in self.elements:
            if type(el) is not Element or el.letter == "X":
                raise TypeError(f"subcircuit {self.name}: {el!r} is not a plain element")

    def lines(self) -> list[str]:
        """The definition's lines, ``.subckt`` to ``.ends``.

        Returns
        -------
        list of str
            The lines, no newlines.
        """
        head = f".subckt {self.name} {' '.join(self.pins)}"
        return [head, *(el.line() for el in self.elements), f".ends {self.name}"]


@dataclass(frozen=True)
class Netlist:
    """A netlist: title, header comments, options, model cards, sections of elements."""

    title: str
    sections: tuple[Section, ...]
    models: tuple[ModelCard, ...] = ()
    options: tuple[tuple[str, float], ...] = ()
    header: tuple[str, ...] = field(default_factory=tuple)
    #: nodes whose voltages a standalone run prints (see :func:`write`)
    probes: tuple[str, ...] = ()
    #: ngspice's sparse-matrix solver (:data:`SOLVERS`), written as ``.options klu`` or
    #: ``.options sparse``; None: ngspice's default (Sparse 1.3 in ngspice 39 and 46)
    solver: str | None = None
    #: subcircuit definitions its ``X`` elements instance
    subcircuits: tuple[Subcircuit, ...] = ()
    #: device parameters every analysis saves beside the node voltages (:data:`SAVED_PARAM`)
    saves: tuple[str, ...] = ()
    #: OSDI libraries its devices need (:data:`OSDI_PATH`): a standalone file loads them itself
    osdi: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "subcircuits", tuple(self.subcircuits))
        for sub in self.subcircuits:
            if type(sub) is not Subcircuit:
                raise TypeError(f"netlist {self.title!r}: {sub!r} is not a Subcircuit")
        object.__setattr__(self, "saves", tuple(plain_str("saves", v) for v in self.saves))
        for v in self.saves:
            if not SAVED_PARAM.fullmatch(v):
                raise ValueError(f"saved vector {v!r} is not of the form @device[parameter]")
        object.__setattr__(self, "osdi", tuple(plain_str("osdi", v) for v in self.osdi))
        for v in self.osdi:
            if not OSDI_PATH.fullmatch(v):
                raise ValueError(f"OSDI library {v!r} is not a plain absolute .osdi path")
        defined = {sub.name: len(sub.pins) for sub in self.subcircuits}
        for el in (e for sec in self.sections for e in sec.elements if e.letter == "X"):
            if defined.get(el.value) != len(el.nodes):
                raise ValueError(
                    f"instance {el.name!r} of {el.value!r}: no such subcircuit with "
                    f"{len(el.nodes)} pins in this netlist"
                )
        if self.solver is not None and self.solver not in SOLVERS:
            raise ValueError(f"solver {self.solver!r} is not one of {', '.join(SOLVERS)}")
        _check_comment(self.title)
        for h in self.header:
            _check_comment(h)
        object.__setattr__(self, "title", plain_str("title", self.title))
        object.__setattr__(self, "header", tuple(plain_str("header", h) for h in self.header))
        object.__setattr__(self, "sections", tuple(self.sections))
        object.__setattr__(self, "models", tuple(self.models))
        for part, kind in [(s, Section) for s in self.sections] + [
            (m, ModelCard) for m in self.models
        ]:
            if type(part) is not kind:  # a subclass could write other lines
                raise TypeError(f"netlist {self.title!r}: {part!r} is not a {kind.__name__}")
        object.__setattr__(
            self,
            "probes",
            tuple(check_ident(f"probes[{k}]", n, reserved=True) for k, n in enumerate(self.probes)),
        )
        options = []
        for key, val in self.options:
            spice_number(val)
            options.append((check_ident("option", key), finite_float(f"option {key}", val)))
        object.__setattr__(self, "options", tuple(options))
        seen = set()
        for el in self.elements():
            if el.name in seen:
                raise ValueError(f"duplicate element name {el.name!r}")
            seen.add(el.name)

    def elements(self) -> list[Element]:
        """Every element of every section, in order.

        Returns
        -------
        list of Element
            The elements.
        """
        return [el for s in self.sections for el in s.elements]

    def element(self, name: str) -> Element:
        """The element named ``name``.

        Parameters
        ----------
        name : str
            Its full SPICE name.

        Returns
        -------
        Element
            The element (KeyError if there is none).
        """
        for el in self.elements():
            if el.name == name:
                return el
        raise KeyError(f"no element named {name!r}")

    def nodes(self) -> list[str]:
        """All nodes but ground, sorted."""
        return sorted({n for el in self.elements() for n in el.nodes} - {"0"})


def replaced_sections(
    netlist: Netlist, replace: Callable[[Element], list[Element] | None], retitle: tuple[str, str]
) -> tuple[Section, ...]:
    """The netlist's sections with elements swapped for others (a circuit built of other devices).

    Parameters
    ----------
    netlist : Netlist
        The netlist.
    replace : callable
        Gives the elements that take an element's place, or None to keep it.
    retitle : tuple of str
        ``(old, new)``: text replaced in the titles of the sections that changed.

    Returns
    -------
    tuple of Section
        In order; unchanged sections are the same objects.
    """
    out = []
    for sec in netlist.sections:
        els, changed = [], False
        for el in sec.elements:
            new = replace(el)
            changed |= new is not None
            els += [el] if new is None else new
        out.append(Section(sec.title.replace(*retitle), tuple(els)) if changed else sec)
    return tuple(out)


_COMMENT = re.compile(r"[\x20-\x7e]*")


def _check_comment(text: str) -> None:
    """Comments are one line of printable ASCII: no line or page breaks of any kind."""
    if not isinstance(text, str) or not _COMMENT.fullmatch(text):
        raise ValueError(f"comment {text!r} must be a single line of printable ASCII")


#: Nodes per ``print`` line of the analysis block.
_PRINT_CHUNK = 8


def analysis_block(probes: Sequence[str]) -> list[str]:
    """The ``.control`` block that makes a netlist run alone.

    The ``.control`` block that makes a netlist run on its own in ``ngspice -b``: an operating
    point, then ``print`` of every probed node voltage with 17 significant digits (enough to
    round-trip a double), then ``quit`` (else batch mode adds a "no simulations run" note and exit
    status 1). ngspice's shared library runs a loaded ``.control`` block too, so engines load text
    without it (:func:`write` with ``standalone=False``).

    Parameters
    ----------
    probes : sequence of str
        Node names to print.

    Returns
    -------
    list of str
        The block's lines.
    """
    lines = [
        "* --- analysis: operating point, node voltages printed (leave out: --no-analysis)",
        ".control",
        "set numdgt=17",
        "op",
    ]
    for k in range(0, len(probes), _PRINT_CHUNK):
        lines.append("print " + " ".join(f"v({n})" for n in probes[k : k + _PRINT_CHUNK]))
    return lines + ["quit", ".endc"]


#: Saved vectors per ``.save`` line.
_SAVE_CHUNK = 40


def write(
    netlist: Netlist,
    line: Callable[[Element], str] = Element.line,
    extra: Sequence[str] = (),
    standalone: bool = False,
) -> str:
    """SPICE text of a netlist: deterministic, no timestamps, ends with ``.end``.

    ``line`` writes one element and ``extra`` lines go before ``.end`` (for :func:`write_sweep`).
    ``standalone`` adds :func:`analysis_block` for ``netlist.probes`` (when it has any), so that the
    file runs alone in ``ngspice -b``; leave it out to include the netlist in a larger deck or to
    load it into an engine.

    Parameters
    ----------
    netlist : Netlist
        The netlist.
    line : callable
        Writes one element's line.
    extra : sequence of str
        Lines before ``.end``.
    standalone : bool
        Add :func:`analysis_block`.

    Returns
    -------
    str
        The SPICE text.
    """
    lines = [netlist.title]
    lines += [f"* {h}" if h else "*" for h in netlist.header]
    if netlist.osdi and standalone:  # loaded before the circuit is read; engines load them once
        lines += [".control", *(f"pre_osdi {path}" for path in netlist.osdi), ".endc"]
    if netlist.options:
        lines.append(".options " + " ".join(f"{k}={spice_number(v)}" for k, v in netlist.options))
    if netlist.solver is not None:  # ngspice without KLU (39) ignores the flag
        lines.append(f".options {netlist.solver}")
    lines += [m.line() for m in netlist.models]
    for sub in netlist.subcircuits:
        lines += ["", *sub.lines()]
    if netlist.saves:  # ngspice then saves only what is named: "all" keeps the node voltages
        lines += [""] + [
            f".save {'all ' if k == 0 else ''}{' '.join(netlist.saves[k : k + _SAVE_CHUNK])}"
            for k in range(0, len(netlist.saves), _SAVE_CHUNK)
        ]
    for s in netlist.sections:
        if not s.elements:
            continue
        lines += ["", f"* --- {s.title}"]
        lines += [line(el) for el in s.elements]
    lines += ["", *extra]
    if standalone and netlist.probes:
        lines += [*analysis_block(netlist.probes), ""]
    lines += [".end", ""]
    return "\n".join(lines)


#: Node and source of the index that :func:`write_sweep` steps through the samples.
SWEEP_NODE = "sweep_index"
SWEEP_SOURCE = "v" + SWEEP_NODE


def write_sweep(netlist: Netlist, tables: dict[str, Sequence[float]]) -> str:
    """SPICE text of ``netlist`` for many samples in one analysis.

    Each V or I source named in ``tables`` becomes a behavioural source whose value is
    ``pwl(V(sweep_index), 0, t_0, 1, t_1, ...)``, so that ``dc vsweep_index 0 N-1 1`` solves sample
    ``k`` at index ``k``. ngspice then sets up and orders its matrix once for all of them (DESIGN.md
    §3). Every table needs the same length, at least 2; names and numbers are validated as in
    :func:`write`.

    Parameters
    ----------
    netlist : Netlist
        The netlist.
    tables : dict of str to sequence of float
        Per-sample values (V or A) of the swept sources, by name.

    Returns
    -------
    str
        The SPICE text.
    """
    lengths = {len(t) for t in tables.values()}
    if len(lengths) != 1 or min(lengths) < 2:
        raise ValueError(
            f"sweep tables need one common length of at least 2, got lengths {sorted(lengths)}"
        )
    elements = {el.name: el for el in netlist.elements()}
    if SWEEP_NODE in netlist.nodes() or SWEEP_SOURCE in elements:
        raise ValueError(f"netlist already uses {SWEEP_NODE!r}, the sweep's own node")
    for name in tables:
        el = elements.get(name)
        if el is None or el.letter not in "VI":
            raise ValueError(f"sweep table for {name!r}: not a V or I source of the netlist")
        if "b" + name in elements:
            raise ValueError(f"the swept source's name {'b' + name!r} is taken")

    def line(el: Element) -> str:
        if el.name not in tables:
            return el.line()
        points = ",".join(f"{k},{spice_number(v)}" for k, v in enumerate(tables[el.name]))
        return f"b{el.name} {' '.join(el.nodes)} {el.letter}=pwl(v({SWEEP_NODE}),{points})"

    return write(netlist, line, extra=[f"{SWEEP_SOURCE} {SWEEP_NODE} 0 dc 0"])


# --- Xyce ------------------------------------------------------------------------------------
#
# Written from the Xyce Reference Guide (doc/Reference_Guide in github.com/Xyce/Xyce: B_Device,
# G_Device, D_Device and D_1_Device_Model_Params, OPTIONS_Command with its DEVICE and NONLIN tables,
# DC_Command, Expression_Operator, Expression_Arithmetic_Functions). Xyce is not installed here:
# tests check the text against that grammar, never a run.

DIALECTS = ("ngspice", "xyce")
#: Temperature (degC) of the one-point ``.DC TEMP LIST`` that a standalone Xyce netlist runs when
#: the netlist has no ``temp`` option: the nominal 27 degC. With one, its value (the temperature of
#: ngspice and numpy).
XYCE_TEMP = 27
#: ngspice option -> (Xyce package, Xyce option). ``vntol`` has no Xyce counterpart (NONLIN's
#: DELTAXTOL is a weighted update norm, not volts): it is left out and the header says so.
XYCE_OPTIONS = {
    "gmin": ("DEVICE", "GMIN"),
    "reltol": ("NONLIN", "RELTOL"),
    "abstol": ("NONLIN", "ABSTOL"),
    "temp": ("DEVICE", "TEMP"),
    "tnom": ("DEVICE", "TNOM"),
}
#: Diode card parameters that Xyce's source (N_DEV_Diode.C) documents as level 2 only: its level-1
#: diode, which the writer selects, would ignore them, so a card with them is refused.
XYCE_LEVEL2_ONLY = ("nbv", "trs1", "trs2")
#: Functions of behavioural expressions the Xyce writer passes on (all in Xyce's function table).
XYCE_FUNCTIONS = ("exp", "tanh", "min")


class DialectError(ValueError):
    """A netlist holds something the chosen simulator dialect cannot express."""


def _xyce_expression(name: str, expr: str) -> str:
    """A behavioural expression in Xyce's syntax, braced.

    Refuses functions Xyce's writer does not know to be the same (ngspice's ``pwl`` of a voltage,
    for one).
    """
    for word in re.findall(r"[a-z_][a-z0-9_]*(?=\()", expr):
        if word != "v" and word not in XYCE_FUNCTIONS:
            raise DialectError(
                f"{name}: the function {word!r} of its expression is not written for Xyce "
                f"(supported: v(), {', '.join(XYCE_FUNCTIONS)}, arithmetic and ?:)"
            )
    return "{" + expr + "}"


def xyce_line(el: Element) -> str:
    """One element in Xyce's syntax: R, C, V, I, G and D as in SPICE.

    a B source as ``B n+ n- I={expression}``.

    Parameters
    ----------
    el : Element
        The element.

    Returns
    -------
    str
        Its Xyce line.
    """
    if el.letter == "B":
        return f"{el.name} {' '.join(el.nodes)} I={_xyce_expression(el.name, el.value)}"
    return el.line().split(" ; ")[0]


def write_xyce(netlist: Netlist, standalone: bool = True) -> str:
    """Xyce text of a netlist.

    ``.OPTIONS DEVICE GMIN`` and ``.OPTIONS NONLIN RELTOL ABSTOL`` for the tolerances, the diode
    card with ``LEVEL=1`` (Xyce's SPICE3f5 diode, the equations of
    :func:`circuitep.devices.diode_current`), B sources with braced expressions, element comments on
    their own lines; ``standalone`` adds a one-point ``.DC TEMP LIST 27`` (one operating point) and
    ``.PRINT DC`` of the probed node voltages. Raises :class:`DialectError` for what it cannot
    write.

    Parameters
    ----------
    netlist : Netlist
        The netlist.
    standalone : bool
        Add the analysis and ``.PRINT`` lines.

    Returns
    -------
    str
        The Xyce text.
    """
    transistor = [el.name for el in netlist.elements() if el.letter in "MXN"]
    if netlist.subcircuits or transistor or netlist.saves or netlist.osdi:
        raise DialectError(
            "the Xyce writer covers R, C, V, I, G, D and B elements: transistor-level devices "
            f"and subcircuits ({', '.join(transistor[:3]) or 'definitions'}) are ngspice-only here"
        )
    lines = [netlist.title]
    lines += [f"* {h}" if h else "*" for h in netlist.header]
    lines.append(
        "* dialect: Xyce (written from the Xyce Reference Guide; not run here: Xyce is not "
        "installed)"
    )
    if netlist.solver is not None:
        lines.append(f"* ngspice's matrix solver option ({netlist.solver}): Xyce chooses its own")
    packages: dict[str, list[str]] = {}
    for key, value in netlist.options:
        if key == "vntol":
            lines.append(
                f"* vntol = {spice_number(value)} V (ngspice) has no Xyce option: left to Xyce's "
                "default"
            )
            continue
        if key not in XYCE_OPTIONS:
            raise DialectError(f"option {key!r} has no Xyce counterpart known to this writer")
        pkg, name = XYCE_OPTIONS[key]
        packages.setdefault(pkg, []).append(f"{name}={spice_number(value)}")
    lines += [f".OPTIONS {pkg} {' '.join(opts)}" for pkg, opts in packages.items()]
    for m in netlist.models:
        level2 = [k for k, _ in m.params if k in XYCE_LEVEL2_ONLY]
        if level2:
            raise DialectError(
                f"model {m.name}: {', '.join(level2)} are level-2 parameters in Xyce, whose "
                "level-1 diode (the SPICE3 diode that ngspice and numpy share) ignores them"
            )
        params = " ".join(f"{k.upper()}={spice_number(v)}" for k, v in m.params)
        lines.append(f".MODEL {m.name} {m.kind}({params} LEVEL=1)")
    for s in netlist.sections:
        if not s.elements:
            continue
        lines += ["", f"* --- {s.title}"]
        for el in s.elements:
            if el.comment:
                lines.append(f"* {el.name}: {el.comment}")
            lines.append(xyce_line(el))
    lines.append("")
    if standalone and netlist.probes:
        lines += [
            "* --- analysis: one operating point (a one-point DC sweep of the temperature), node "
            "voltages",
            f".DC TEMP LIST {spice_number(dict(netlist.options).get('temp', XYCE_TEMP))}",
        ]
        for k in range(0, len(netlist.probes), _PRINT_CHUNK):
            probes = " ".join(f"V({n})" for n in netlist.probes[k : k + _PRINT_CHUNK])
            lines.append(f".PRINT DC {probes}" if k == 0 else f"+ {probes}")
        lines.append("")
    lines += [".END", ""]
    return "\n".join(lines)
