"""Compile a network into the netlist of one learning phase (DESIGN.md §2).

Phases: ``free``; ``nudged`` (the nudge ``-beta dC/dx`` into the outputs, toward target sources);
``aep`` (the nudge plus the correction ``-(J - J^T)(x - x0)``: for linear transconductors the
correction cancels each element's own drive and adds its transpose, so the AEP netlist carries every
free-to-free transconductor reversed plus one constant current ``(K x0)_i`` per node; saturating
ones keep explicit correction sources against reference nodes holding ``x0``); ``dyadic`` (the
circuit and its adjoint network side by side). Forms: ``literal`` (one element per weight) and
``folded`` (each free node's input-driven elements replaced by one Norton current source and one
conductance).

Every value that changes per sample is a source: input voltages (literal), Norton currents
(folded), target voltages and reference voltages. :func:`source_values` gives their values for a
batch, so an engine can ``alter`` them without rebuilding the circuit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from circuitep import kcl
from circuitep.checks import is_number, plain_float
from circuitep.costs import Cost, CrossEntropy, SquaredError
from circuitep.devices import GMIN, T_NOMINAL_C, DiodeLaw
from circuitep.elements import aep, bias, capacitance, diode_clamp, leak, nudge
from circuitep.elements.registry import kind as kind_of
from circuitep.netlist import (
    DIALECTS,
    Element,
    ModelCard,
    Netlist,
    Section,
    spice_number,
    write,
    write_xyce,
)
from circuitep.phases import PHASES
from circuitep.spec import Coupling, Network, voltage_rows

FORMS = ("literal", "folded")


#: Relative tolerances ngspice can meet and that still mean something.
RELTOL_RANGE = (1e-14, 1e-2)


@dataclass(frozen=True)
class Tolerances:
    """ngspice convergence options, written into every netlist (defaults suit small-beta gradients).

    ``reltol`` (1), ``vntol`` (V), ``abstol`` (A). ``gmin`` is always ngspice's default,
    :data:`circuitep.devices.GMIN`, which the numpy diode model uses too (so both engines solve one
    circuit).
    """

    reltol: float = 1e-10
    vntol: float = 1e-12
    abstol: float = 1e-15

    def __post_init__(self):
        for key in ("reltol", "vntol", "abstol"):
            v = getattr(self, key)
            if not is_number(v) or not 0 < plain_float(key, v) < np.inf:
                raise ValueError(f"tolerance {key} = {v!r} must be a positive number")
            object.__setattr__(self, key, plain_float(key, v))  # the number the netlist holds
        # below double precision ngspice can never meet reltol (1e-16 hung its op); at 1 it accepts
        # the first iterate (0.64 V off)
        if not RELTOL_RANGE[0] <= self.reltol <= RELTOL_RANGE[1]:
            raise ValueError(
                f"tolerance reltol = {self.reltol!r} must be within {RELTOL_RANGE[0]:g} .. "
                f"{RELTOL_RANGE[1]:g} (ngspice's default is 1e-3)"
            )

    def as_dict(self) -> dict:
        """The tolerances by ngspice option name.

        Returns
        -------
        dict
            ``{name: value}``.
        """
        return {"reltol": self.reltol, "vntol": self.vntol, "abstol": self.abstol, "gmin": GMIN}

    def options(self) -> tuple[tuple[str, float], ...]:
        """The ``.options`` entries, sorted by name.

        Returns
        -------
        tuple of (str, float)
            ``(name, value)`` pairs.
        """
        return tuple(self.as_dict().items())


@dataclass(frozen=True)
class Source:
    """A source whose value is set per sample.

    ``role`` is input, norton, target, aep or ref; ``index`` indexes the input nodes, or the free
    nodes, outputs, free nodes, free nodes.
    """

    name: str
    role: str
    index: int
    kind: str  # element letter, V or I


@dataclass(frozen=True)
class Compiled:
    """A netlist with what an engine needs to drive and read it."""

    netlist: Netlist
    network: Network
    phase: str
    form: str
    beta: float
    cost: Cost
    free_nodes: tuple[str, ...]
    adjoint_nodes: tuple[str, ...] = ()
    sources: tuple[Source, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """The netlist alone, without an analysis.

        What engines load and larger decks include. Files are written with :meth:`spice`.
        """
        return self.spice(standalone=False)

    def spice(self, standalone: bool = True, dialect: str = "ngspice") -> str:
        """SPICE text.

        ``standalone`` adds the analysis and print block (:func:`circuitep.netlist.analysis_block`)
        so that the file runs alone in ``ngspice -b``. ``dialect="xyce"`` writes Xyce's syntax
        instead (:func:`circuitep.netlist.write_xyce`).

        Parameters
        ----------
        standalone : bool
            Add the analysis block so that the file runs alone.
        dialect : str
            ``ngspice`` or ``xyce``.

        Returns
        -------
        str
            The netlist text.
        """
        if dialect not in DIALECTS:
            raise ValueError(f"dialect {dialect!r} is not one of {DIALECTS}")
        if dialect == "xyce":
            return write_xyce(self.netlist, standalone=standalone)
        return write(self.netlist, standalone=standalone)


#: Node whose voltage carries beta for behavioural nudges (user nodes end in _<digits>).
BETA_NODE = "nudge_beta"


def adjoint_node(node: str) -> str:
    """The adjoint node of free node ``node`` (dyadic phase).

    Parameters
    ----------
    node : str
        A free node's name.

    Returns
    -------
    str
        Its name.
    """
    return f"adj_{node}"


def target_node(node: str) -> str:
    """The node holding the target voltage of output ``node``.

    Parameters
    ----------
    node : str
        An output node's name.

    Returns
    -------
    str
        Its name.
    """
    return f"tgt_{node}"


def ref_node(node: str) -> str:
    """The node holding ``x0`` of free node ``node`` (AEP phase).

    Parameters
    ----------
    node : str
        A free node's name.

    Returns
    -------
    str
        Its name.
    """
    return f"ref_{node}"


def compile_network(
    net: Network,
    phase: str = "free",
    form: str = "literal",
    *,
    beta: float | None = None,
    cost: Cost | None = None,
    inputs: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    x0: np.ndarray | None = None,
    tolerances: Tolerances | None = None,
    command: str | None = None,
    sample: str | None = None,
    state: np.ndarray | None = None,
    correction: aep.Correction | None = None,
    solver: str | None = None,
) -> Compiled:
    """Compile one phase of ``net``.

    ``inputs`` (n_inputs,), ``targets`` (n_outputs,) and ``x0`` (n_free,) give the initial source
    values (default: the spec's sample, else zeros); engines alter them per sample. ``beta`` (S for
    squared error, see :mod:`circuitep.costs`) is required for nudged, aep and dyadic phases.

    What the header says: ``command`` is the command that wrote the file (shell-quoted); ``sample``
    says which sample the sources hold (e.g. ``"test image 0 of digits, label 3"``; without it the
    header says the values are placeholders that engines set per sample); ``state`` (n_free,) V, the
    free state of that sample, adds each group's node range on it and the clamp currents there. The
    AEP phase's correction currents ``K x0`` are those of ``x0`` (default ``state``, else zeros:
    placeholders, and the header says so).

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    phase : str
        One of :data:`PHASES`.
    form : str
        One of :data:`FORMS`.
    beta : float
        Nudge strength (S for squared error).
    cost : Cost
        The cost (:mod:`circuitep.costs`); ``None``: squared error.
    inputs : numpy.ndarray
        Primary input voltages, V, ``(n_inputs,)``.
    targets : numpy.ndarray
        Targets, ``(n_outputs,)``.
    x0 : numpy.ndarray
        The free state for the AEP correction, V, ``(n_free,)``.
    tolerances : Tolerances
        ngspice's tolerances; ``None``: the defaults.
    command : str
        The command that wrote the file, for the header.
    sample : str
        What sample the sources hold, for the header.
    state : numpy.ndarray
        That sample's free state, V, ``(n_free,)``, for the header.
    correction : Correction
        AEP phase: where the correction comes from, its elements' errors and its form
        (:class:`circuitep.elements.aep.Correction`); ``None``: the circuit's own, reversed form.
    solver : {"klu", "sparse"}, optional
        ngspice's matrix solver, written as ``.options klu`` or ``.options sparse``; ``None``:
        ngspice's default (Sparse 1.3). An ngspice without KLU ignores ``klu``.

    Returns
    -------
    Compiled
        The netlist with its per-sample sources.
    """
    if not isinstance(phase, str) or str.__str__(phase) not in PHASES:
        raise ValueError(f"phase {phase!r} is not one of {PHASES}")
    if not isinstance(form, str) or str.__str__(form) not in FORMS:
        raise ValueError(f"form {form!r} is not one of {FORMS}")
    phase, form = str.__str__(phase), str.__str__(form)  # plain: they are compared and written
    cost = cost or SquaredError()
    tolerances = tolerances or Tolerances()
    if phase != "free":
        if not is_number(beta) or not 0 < abs(plain_float("beta", beta)) < np.inf:
            raise ValueError(f"the {phase} phase needs a finite non-zero beta, got {beta!r}")
        beta = plain_float("beta", beta)
    else:
        beta = 0.0
    if inputs is None:
        inputs = net.sample.inputs if net.sample is not None else np.zeros(net.n_inputs)
    given = targets is not None  # else placeholders: engines set each sample's targets later
    if targets is None:
        targets = (
            net.sample.targets
            if net.sample is not None and net.sample.targets is not None
            else np.full(net.n_outputs, 1.0 / net.n_outputs)
        )
    aep_state = (
        "the x0 passed in"
        if x0 is not None
        else "this sample's free state x0"
        if state is not None
        else None
    )
    if x0 is None:
        x0 = np.zeros(net.n_free) if state is None else state
    if state is not None:
        state = np.asarray(state, dtype=float)
        if state.shape != (net.n_free,) or not np.isfinite(state).all():
            raise ValueError(f"state has shape {state.shape}, expected finite ({net.n_free},)")
    u = net.expand_inputs(np.asarray(inputs, dtype=float)[None])
    targets = np.asarray(targets, dtype=float)
    if targets.shape != (net.n_outputs,):
        raise ValueError(f"targets have shape {targets.shape}, expected ({net.n_outputs},)")
    voltage_rows("targets", targets[None], net.n_outputs)
    if given and phase != "free":
        cost.check_targets(targets)
    x0 = np.asarray(x0, dtype=float)
    if x0.shape != (net.n_free,):
        raise ValueError(f"x0 has shape {x0.shape}, expected ({net.n_free},)")

    if correction is not None and phase != "aep":
        raise ValueError("a correction belongs to the AEP phase")
    kcl.check_correction(net, correction)
    explicit = correction is not None and correction.form == "explicit"
    b = _Builder(net, form, explicit_rs=phase == "dyadic")
    b.inputs(u[0])
    b.free_groups(state)
    b.couplings(transpose_linear=phase == "aep" and not explicit)
    if phase in ("nudged", "aep"):
        b.nudge(beta, cost, targets, into=lambda n: n)
    if phase == "aep" and explicit:
        b.aep_explicit(x0, correction)
    elif phase == "aep":
        b.aep_correction(u, x0)
    if phase == "dyadic":
        b.adjoint()
        b.nudge(beta, cost, targets, into=adjoint_node)
    if sample is None:
        held = (
            "sample: none; the per-sample sources hold placeholders (inputs as given or the "
            "spec's, targets 1/n_outputs V, AEP currents for x0 = 0) that engines set per sample"
        )
    else:
        held = f"sample: {sample}"
    targets_line = f"targets (V): {' '.join(spice_number(float(t)) for t in targets)}" + (
        ""
        if given or (net.sample is not None and net.sample.targets is not None)
        else f" (placeholders 1/{net.n_outputs}: no targets given)"
    )
    header = (
        f"circuitep netlist of network '{net.name}': {phase} phase, {form} form",
        *([net.description] if net.description else []),
        f"{net.n_inputs} inputs, {net.n_free} free nodes ({net.n_outputs} outputs), "
        f"{len(net.couplings)} couplings; SI units (V, A, S, Ohm, F)",
        f"written by: {command}"
        if command
        else "written by: circuitep.compiler.compile_network (a Python call, no command line)",
        held,
        *(
            [targets_line, f"nudge: beta = {spice_number(beta)} on cost {cost.name}"]
            if phase != "free"
            else []
        ),
        *(
            [
                (
                    "AEP correction: explicit elements "
                    + (
                        "from the model the controller holds"
                        if correction.source is not None
                        else "from this circuit's own Jacobian"
                    )
                    + ("" if correction.exact else ", with gain errors")
                    + f"; reference nodes hold x0 for {aep_state or 'x0 = 0 (placeholders)'}"
                )
                if explicit
                else f"AEP correction: currents K x0 (A) for {aep_state}"
                if aep_state
                else (
                    "AEP correction: currents K x0 (A) for x0 = 0, placeholders: wrong when this "
                    "file runs alone"
                )
            ]
            if phase == "aep"
            else []
        ),
    )
    probes = tuple(net.free_nodes) + (
        tuple(adjoint_node(n) for n in net.free_nodes) if phase == "dyadic" else ()
    )
    netlist = Netlist(
        f"* circuitep {net.name} {phase} {form}",
        tuple(b.sections),
        (b.diode_model(),),
        tolerances.options() + temperature_options(net),
        header,
        probes,
        solver,
    )
    return Compiled(
        netlist,
        net,
        phase,
        form,
        float(beta),
        cost,
        tuple(net.free_nodes),
        tuple(adjoint_node(n) for n in net.free_nodes) if phase == "dyadic" else (),
        tuple(b.sources),
    )


def linear_correction(net: Network) -> np.ndarray:
    """``K = A - A^T`` of the linear transconductors between free nodes (S, ``(n_free, n_free)``).

    it does not depend on the state.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).

    Returns
    -------
    numpy.ndarray
        ``K``, S, ``(n_free, n_free)``.
    """
    linear = [link for link in kcl.links(net) if link.kind.LINEAR]
    return aep.matrix(aep.terms(linear, np.zeros((1, net.n_free))), 1, net.n_free)[0]


def source_values(
    compiled: Compiled, u: np.ndarray, targets: np.ndarray | None, x0: np.ndarray | None
) -> np.ndarray:
    """Values of ``compiled.sources`` for a batch, ``(batch, n_sources)``.

    ``u`` are all input-node voltages ``(batch, n_in)`` (see :meth:`Network.expand_inputs`).

    Parameters
    ----------
    compiled : Compiled
        A compiled phase.
    u : numpy.ndarray
        All input-node voltages, V, ``(batch, n_in)`` (:meth:`Network.expand_inputs`).
    targets : numpy.ndarray
        Targets, ``(batch, n_outputs)``, or ``None``.
    x0 : numpy.ndarray
        Free state, V, ``(batch, n_free)``, or ``None``.

    Returns
    -------
    numpy.ndarray
        Source values (V or A), ``(batch, n_sources)``.
    """
    net = compiled.network
    columns = []
    norton = kcl.input_drive(net, u)[0] if compiled.form == "folded" else None
    aep = x0 @ linear_correction(net).T if any(s.role == "aep" for s in compiled.sources) else None
    for s in compiled.sources:
        if s.role == "input":
            columns.append(u[:, s.index])
        elif s.role == "norton":
            columns.append(norton[:, s.index])
        elif s.role == "target":
            columns.append(targets[:, s.index])
        elif s.role == "aep":
            columns.append(aep[:, s.index])
        else:
            columns.append(x0[:, s.index])
    return np.stack(columns, axis=1) if columns else np.zeros((u.shape[0], 0))


#: Diode current (A) at which a clamped node's range is quoted: the largest current the clamps
#: carry at the operating points of the trained digits circuits measured (376 uA, issue 18), rounded
#: up.
CLAMP_RANGE_CURRENT = 1e-3


def temperature_options(net: Network) -> tuple[tuple[str, float], ...]:
    """Ngspice's options ``temp`` (the network's temperature) and ``tnom`` (27), in degC.

    ``tnom`` is the temperature of every card that gives no TNOM of its own; it is written so that
    no simulator default can differ from the numpy engines' 27 degC
    (:data:`circuitep.devices.T_NOMINAL_C`).

    Parameters
    ----------
    net : Network
        The validated network.

    Returns
    -------
    tuple of (str, float)
        ``(("temp", T), ("tnom", 27.0))``.
    """
    return (("temp", net.temperature), ("tnom", T_NOMINAL_C))


def clamp_range(
    rails: tuple[float, float], law: DiodeLaw, current: float = CLAMP_RANGE_CURRENT
) -> tuple[float, float, float]:
    """The voltage range of a diode-clamped node.

    The rails ``(v_lo, v_hi)`` (V) widened by the diode drop ``vte ln(1 + I / IS) + RS I`` (V) at
    ``current`` I (A), with the law's values at the network's temperature. Returns
    ``(lo, hi, I)``.

    Parameters
    ----------
    rails : tuple of float
        ``(v_lo, v_hi)``, V.
    law : DiodeLaw
        The diodes' effective parameters (:func:`circuitep.elements.diode_clamp.net_law`).
    current : float
        Diode current the range is quoted at, A.

    Returns
    -------
    tuple of float
        ``(lo, hi)`` in V and the current in A.
    """
    drop = law.vte * np.log1p(current / law.i_sat) + law.rs * current
    return rails[0] - drop, rails[1] + drop, current


class _Builder:
    """Accumulates the sections of one netlist; one method per block of the circuit."""

    def __init__(self, net: Network, form: str, explicit_rs: bool = False):
        self.net, self.form = net, form
        self.law = diode_clamp.net_law(net)
        # the dyadic netlist writes RS as resistors: its adjoint reads the junction voltages
        self.explicit_rs = explicit_rs and self.law.rs > 0
        self.sections: list[Section] = []
        self.sources: list[Source] = []
        self.free = {g.name for g in net.free_groups}
        self.free_index = {n: k for k, n in enumerate(net.free_nodes)}

    def add(self, title: str, elements: list[Element]) -> None:
        self.sections.append(Section(title, tuple(elements)))

    def model_name(self) -> str:
        """The clamp diodes' card name: the spec's, ``<name>_j`` for the junction without RS."""
        return f"{self.net.diode.name}_j" if self.explicit_rs else self.net.diode.name

    def diode_model(self) -> ModelCard:
        d = self.net.diode
        params = d.card()
        if self.explicit_rs:
            keys = {diode_clamp.DIODE_CARD_KEYS[k] for k in diode_clamp.RS_PARAMS}
            params = tuple((k, v) for k, v in params if k not in keys)
        return ModelCard(self.model_name(), "D", params)

    def folded(self, c: Coupling) -> bool:
        return self.form == "folded" and c.src not in self.free

    def inputs(self, u: np.ndarray) -> None:
        net = self.net
        if self.form == "literal":
            els = []
            for k, node in enumerate(net.input_nodes):
                els.append(Element("V", f"v{node}", (node, "0"), float(u[k])))
                self.sources.append(Source(f"v{node}", "input", k, "V"))
            self.add("inputs: voltage sources (V)", els)
            return
        current, conductance = kcl.input_drive(net, u[None])
        receives, resistive = kcl.input_driven(net)
        els = []
        for k, node in enumerate(net.free_nodes):
            if receives[k]:
                els.append(Element("I", f"inrt_{node}", ("0", node), float(current[0, k])))
                self.sources.append(Source(f"inrt_{node}", "norton", k, "I"))
            if resistive[k] and conductance[k] > 0:
                els.append(Element("R", f"rnrt_{node}", (node, "0"), 1.0 / conductance[k]))
        self.add("inputs folded: Norton current (A) and conductance per free node", els)

    def free_groups(self, state: np.ndarray | None = None) -> None:
        """The elements of every free node.

        Leak, bias, capacitance and clamp of every free node; the section titles state the clamped
        nodes' range (:func:`clamp_range`) and, given the sample's free ``state`` (V), the range the
        nodes take on it.
        """
        d = self.net.diode
        fs = self.net.free_slices()
        for g in self.net.free_groups:
            els = []
            if g.clamp is not None:
                els += diode_clamp.spice_rails(g.name, g.clamp)
            for k, node in enumerate(g.nodes()):
                els += leak.spice(node, g.leak[k])
                els += bias.spice(node, g.bias[k])
                els += capacitance.spice(node, g.capacitance[k])
                if g.clamp is not None and self.explicit_rs:
                    els += diode_clamp.spice_with_rs(node, g.name, self.model_name(), self.law.rs)
                elif g.clamp is not None:
                    els += diode_clamp.spice(node, g.name, d.name)
            clamp = ""
            if g.clamp:
                lo, hi, amps = clamp_range(g.clamp, self.law)
                clamp = (
                    f", diode clamp: rails {g.clamp[0]:g} and {g.clamp[1]:g} V, node range about "
                    f"[{lo:.3g}, {hi:.3g}] V (a diode drop past the rails at {amps:g} A)"
                )
                if self.explicit_rs:
                    clamp += (
                        f", RS written as resistors of {self.law.rs:g} Ohm (RS at "
                        f"{self.net.temperature:g} degC) beside a card without RS"
                    )
            seen = ""
            if state is not None:
                xs = state[fs[g.name]]
                seen = f"; on this sample the nodes span [{xs.min():.4g}, {xs.max():.4g}] V"
            self.add(
                f"group {g.name} ({g.role}, {g.size} nodes): leak, bias, capacitance{clamp}{seen}",
                els,
            )

    def couplings(self, transpose_linear: bool = False) -> None:
        """The couplings' elements, one per weight.

        One element per weight; with ``transpose_linear`` (AEP phase) every linear transconductor
        between free nodes drives the other way: current ``w v(dst_i)`` into ``src_j``.
        """
        net = self.net
        for c in net.couplings:
            if self.folded(c):
                continue
            src, dst = net.group(c.src).nodes(), net.group(c.dst).nodes()
            kind = kind_of(c)
            reverse = (
                transpose_linear and kind.LINEAR and not kind.RECIPROCAL and c.src in self.free
            )
            els = kind.spice_reversed(c, src, dst) if reverse else kind.spice(c, src, dst)
            direction = (
                f"{c.dst} -> {c.src}, reversed for the AEP phase (the correction cancels the "
                "forward drive and adds its transpose)"
                if reverse
                else f"{c.src} -> {c.dst}"
            )
            self.add(f"coupling {c.name}: {kind.title(c)}, {direction}", els)

    def nudge(self, beta: float, cost: Cost, targets: np.ndarray, into) -> None:
        outs = [self.net.free_nodes[k] for k in self.net.output_index()]
        els = []
        for k, node in enumerate(outs):
            els.append(
                Element("V", f"v{target_node(node)}", (target_node(node), "0"), float(targets[k]))
            )
            self.sources.append(Source(f"v{target_node(node)}", "target", k, "V"))
        if isinstance(
            cost, CrossEntropy
        ):  # beta as a voltage, so that both signs share one circuit
            els.append(
                Element("V", f"v{BETA_NODE}", (BETA_NODE, "0"), beta, "beta (A V) as a voltage")
            )
        els += nudge.spice(
            outs, [target_node(o) for o in outs], [into(o) for o in outs], beta, cost, BETA_NODE
        )
        self.add(f"nudge: current -beta dC/dx ({cost.name}) into the outputs, targets (V)", els)

    def aep_correction(self, u: np.ndarray, x0: np.ndarray) -> None:
        """The AEP correction's sources beside the reversed couplings.

        The rest of ``-K (v - x0)``, ``K = J - J^T`` at x0: per node the constant current ``(K
        x0)_i`` left over by the reversed linear transconductors, and for saturating ones explicit
        sources against reference nodes holding x0.
        """
        net = self.net
        els, sources = aep.spice(
            kcl.links(net), net.free_nodes, x0, linear_correction(net), ref_node
        )
        self.sources += [Source(*row) for row in sources]
        self.add(
            "AEP correction: constant currents K x0 (A), and -(J - J^T)(v - x0) of saturating "
            "couplings",
            els,
        )

    def aep_explicit(self, x0: np.ndarray, correction: aep.Correction) -> None:
        """The AEP correction as elements of its own, from ``correction``'s source, with its errors.

        Beside the couplings in their forward direction: per entry of every non-reciprocal coupling
        between free groups, correction transconductors driven by each node's deviation from the
        free state ``x0`` (V) held on a reference node (:func:`circuitep.elements.aep.
        spice_explicit`).
        """
        net = self.net
        source = net if correction.source is None else correction.source
        els, sources = aep.spice_explicit(
            kcl.links(source), net.free_nodes, x0, ref_node, correction
        )
        self.sources += [Source(*row) for row in sources]
        where = "the model" if correction.source is not None else "this circuit"
        self.add(
            f"AEP correction, explicit: -(J - J^T)(v - x0) with J of {where} at the free state, "
            "driven by v - v(ref) (reference nodes hold x0)",
            els,
        )

    def adjoint(self) -> None:
        """The adjoint network (Director-Rohrer): linearised at the circuit's state, transposed."""
        net, law = self.net, self.law
        nodes = net.free_nodes
        adj = {n: adjoint_node(n) for n in nodes}
        els = []
        if self.form == "folded":
            _, conductance = kcl.input_drive(
                net, np.zeros((1, sum(g.size for g in net.input_groups)))
            )
            for k, node in enumerate(nodes):
                if conductance[k] > 0:
                    els.append(
                        Element("R", f"radj_nrt_{node}", (adj[node], "0"), 1.0 / conductance[k])
                    )
        for g in net.free_groups:
            for k, node in enumerate(g.nodes()):
                els += leak.spice_adjoint(node, adj[node], g.leak[k])
                els += capacitance.spice_adjoint(node, adj[node], g.capacitance[k])
                if g.clamp is not None:
                    if self.explicit_rs:
                        els += diode_clamp.spice_adjoint_with_rs(node, adj[node], g.name, law)
                    else:
                        els += diode_clamp.spice_adjoint(node, adj[node], g.name, law)
        self.add("adjoint: leaks, capacitances, small-signal diode conductances", els)
        for c in net.couplings:
            if self.folded(c):
                continue
            src, dst = net.group(c.src).nodes(), net.group(c.dst).nodes()
            kind = kind_of(c)
            els = kind.spice_adjoint(
                c,
                src,
                dst,
                [adj[n] for n in src] if c.src in self.free else None,
                [adj[n] for n in dst],
            )
            if els is None:  # nothing of it in the adjoint network (a transconductor from inputs)
                continue
            self.add(f"adjoint of coupling {c.name}: {kind.ADJOINT}", els)
