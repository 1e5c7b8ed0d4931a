"""Build a :class:`~circuitep.spec.Network` from Python.

Ways to build a :class:`~circuitep.spec.Network` from Python: layered networks, random test
networks, and arbitrary graphs described with networkx.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import networkx as nx
import numpy as np

from circuitep.checks import is_integer, is_number, plain_float, plain_int
from circuitep.elements.registry import COUPLINGS, KINDS, settings_of
from circuitep.elements.registry import NODE_PARAMS as NODE_TABLE
from circuitep.spec import (
    GROUP_NAME,
    MAX_GROUP_SIZE,
    NODE_PARAMS,
    WEIGHT_BOUNDS,
    Coupling,
    DiodeModel,
    Network,
    NodeGroup,
    Sample,
    check_array,
    check_name,
    check_volts,
)

Transconductor = Literal["vccs", "tanh"] | None


def layered(
    sizes: Sequence[int],
    *,
    name: str = "layered",
    forward: Transconductor = "vccs",
    backward: Transconductor = None,
    resistors: bool = False,
    inverted_inputs: bool = False,
    symmetric_backward: bool = False,
    leak: float = 1e-4,
    gain: float = 1.0,
    clamp: tuple[float, float] | None = (-0.45, 0.55),
    output_clamp: bool = True,
    bias_scale: float = 0.0,
    v_sat: float = 1.0,
    diode: DiodeModel | None = None,
    seed: int = 0,
    description: str = "",
) -> Network:
    """A layered network ``sizes = (n_in, n_h1, ..., n_out)``.

    Groups ``in`` (and ``inn``, the inverted inputs, if ``inverted_inputs``), ``h1``... and ``out``.
    Between layers ``l-1`` and ``l`` (``l`` from 1) it adds any combination of a forward
    transconductor ``fwd<l>`` (layer l-1 drives layer l), a backward one ``bwd<l>`` (layer l drives
    layer l-1; not into inputs) and resistors ``res<l>`` (and ``resn1`` from the inverted inputs).
    Weights are drawn with seed ``seed``: transconductances ``N(0, (gain leak)^2 / fan_in)``,
    conductances uniform in ``[0, 2 gain leak / fan_in]``, so node voltages stay of order 1 V.
    ``symmetric_backward`` sets ``bwd<l> = fwd<l>^T`` (a symmetric initialisation).

    Parameters
    ----------
    sizes : sequence of int
        Nodes per layer, inputs first.
    name : str
        The network's name.
    forward : str or None
        Kind of the forward transconductors (``vccs``, ``tanh``...), or ``None``.
    backward : str or None
        Kind of the backward transconductors, or ``None``.
    resistors : bool
        Add resistors between consecutive layers.
    inverted_inputs : bool
        Add the inverted input group ``inn``.
    symmetric_backward : bool
        Initialise ``bwd<l> = fwd<l>^T``.
    leak : float
        Leak conductance of every free node, S.
    gain : float
        Scale of the initial weights (dimensionless).
    clamp : tuple of float or None
        Diode clamp rails ``(v_lo, v_hi)`` of the hidden nodes, V; ``None``: no clamps.
    output_clamp : bool
        Clamp the outputs too.
    bias_scale : float
        Initial biases ``bias_scale leak N(0, 1)`` (A): dimensionless, in units of ``leak`` x 1 V.
    v_sat : float
        Saturation voltage of ``tanh`` transconductors, V.
    diode : DiodeModel
        The clamps' diode model; ``None``: the default.
    seed : int
        Seed of the random weights.
    description : str
        The network's description.

    Returns
    -------
    Network
        The network.
    """
    if any(not is_integer(s) for s in sizes):
        raise ValueError(f"sizes = {list(sizes)} must be whole numbers of nodes")
    sizes = [plain_int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes = {sizes} needs at least an input and an output layer")
    if (
        forward is None and not resistors
    ):  # backward couplings never drive the inputs' layer from them
        raise ValueError(
            "a layered network needs forward transconductors or resistors: without either the "
            "inputs drive nothing"
        )
    if not is_number(gain) or not 0 <= plain_float("gain", gain) < np.inf:
        raise ValueError(f"gain = {gain!r} must be a non-negative finite number")
    gain = plain_float("gain", gain)
    if not is_integer(seed) or plain_int(seed) < 0:  # default_rng would take True as seed 1
        raise ValueError(f"seed = {seed!r} must be a non-negative integer")
    rng = np.random.default_rng(plain_int(seed))
    names = ["in"] + [f"h{k}" for k in range(1, len(sizes) - 1)] + ["out"]
    groups = [NodeGroup("in", "input", sizes[0])]
    if inverted_inputs:
        groups.append(NodeGroup("inn", "input", sizes[0], invert="in"))
    for k, (g, n) in enumerate(zip(names[1:], sizes[1:], strict=True), start=1):
        role = "output" if k == len(sizes) - 1 else "hidden"
        c = clamp if (role == "hidden" or output_clamp) else None
        groups.append(
            NodeGroup(
                g, role, n, leak=leak, clamp=c, bias=bias_scale * leak * rng.standard_normal(n)
            )
        )
    couplings = []
    for k in range(1, len(sizes)):
        src, dst = names[k - 1], names[k]
        fan_in = sizes[k - 1] * (2 if k == 1 and inverted_inputs else 1)
        fwd_w = None
        if forward is not None:
            fwd_w = rng.standard_normal((sizes[k], sizes[k - 1])) * gain * leak / np.sqrt(fan_in)
            couplings.append(Coupling(f"fwd{k}", forward, src, dst, fwd_w, v_sat=v_sat))
        if backward is not None and k > 1:
            bwd_w = (
                fwd_w.T.copy()
                if symmetric_backward and fwd_w is not None
                else rng.standard_normal((sizes[k - 1], sizes[k])) * gain * leak / np.sqrt(sizes[k])
            )
            couplings.append(Coupling(f"bwd{k}", backward, dst, src, bwd_w, v_sat=v_sat))
        if resistors:
            couplings.append(
                Coupling(
                    f"res{k}",
                    "resistor",
                    src,
                    dst,
                    rng.uniform(0, 2 * gain * leak / fan_in, (sizes[k], sizes[k - 1])),
                )
            )
            if k == 1 and inverted_inputs:
                couplings.append(
                    Coupling(
                        "resn1",
                        "resistor",
                        "inn",
                        dst,
                        rng.uniform(0, 2 * gain * leak / fan_in, (sizes[1], sizes[0])),
                    )
                )
    return Network(
        name, tuple(groups), tuple(couplings), diode or DiodeModel(), description=description
    )


NetworkKind = Literal["reciprocal", "nonreciprocal", "feedforward"]


def random_network(
    kind: NetworkKind, *, diodes: bool = True, sizes: Sequence[int] = (4, 5, 3), seed: int = 0
) -> Network:
    """A small random network of one kind, with a random sample, for tests and examples.

    ``reciprocal``: resistors only, with inverted inputs (EP's home ground); ``nonreciprocal``:
    resistors plus independent forward and backward transconductors; ``feedforward``: forward
    transconductors only.

    Parameters
    ----------
    kind : str
        ``reciprocal``, ``nonreciprocal`` or ``feedforward``.
    diodes : bool
        Clamp the free nodes with diodes.
    sizes : sequence of int
        Nodes per layer.
    seed : int
        Seed of the weights and the sample.

    Returns
    -------
    Network
        The network, with a sample.
    """
    rng = np.random.default_rng(seed + 1000)
    clamp = (-0.45, 0.55) if diodes else None
    options = {
        "reciprocal": dict(forward=None, resistors=True, inverted_inputs=True, gain=2.0),
        "nonreciprocal": dict(forward="vccs", backward="vccs", resistors=True, gain=1.5),
        "feedforward": dict(forward="vccs", gain=2.0),
    }
    if kind not in options:
        raise ValueError(f"kind {kind!r} is not one of {sorted(options)}")
    net = layered(
        sizes, name=f"random_{kind}", clamp=clamp, bias_scale=0.2, seed=seed, **options[kind]
    )
    sample = Sample(rng.uniform(0, 1, net.n_inputs), rng.uniform(0, 0.5, net.n_outputs))
    return Network(
        net.name,
        net.groups,
        net.couplings,
        net.diode,
        sample,
        f"random {kind} network, seed {seed}",
    )


def from_graph(
    graph: nx.DiGraph, *, name: str = "graph", diode: DiodeModel | None = None
) -> Network:
    """A network from a networkx directed graph.

    Node attributes: ``role`` (``input``, ``hidden``, ``output``; required), ``group`` (default:
    ``in``, ``hid``, ``out`` by role), and for free nodes ``leak`` (S, default 1e-4), ``bias`` (A,
    default 0), ``capacitance`` (F), ``clamp`` (``(v_lo, v_hi)`` or absent). Edge attributes:
    ``kind`` (one of :data:`circuitep.elements.registry.KINDS`: ``resistor``, ``vccs``,
    ``tanh``...), ``weight`` (S) and the kind's settings (for tanh ``v_sat``, V, default 1, one per
    pair of groups; a per-element setting such as an ota's ``g_out`` may differ per edge). Any other
    attribute is refused. A ``vccs`` edge ``a -> b`` injects ``w v(a)`` into ``b``; a resistor edge
    joins ``a`` and ``b`` whatever its direction. Graph nodes become ``<group>_<k>`` in insertion
    order; the free nodes of a group share the clamp of its first node (another node may repeat it,
    not differ). One coupling per (kind, source group, target group), masked.

    Parameters
    ----------
    graph : networkx.DiGraph
        Nodes and edges with the attributes above.
    name : str
        The network's name.
    diode : DiodeModel
        The clamps' diode model; ``None``: the default.

    Returns
    -------
    Network
        The network.
    """
    default_group = {"input": "in", "hidden": "hid", "output": "out"}
    members: dict[str, list] = {}
    attrs: dict[str, dict] = {}
    where = {}
    for node, data in graph.nodes(data=True):
        role = data.get("role")
        if not isinstance(role, str) or str.__str__(role) not in default_group:
            raise ValueError(
                f"graph node {node!r}: attribute role = {role!r} must be input, hidden or output"
            )
        role = str.__str__(role)  # plain from here on: a subclass may compare or format as another
        allowed = {"role", "group"} | (set() if role == "input" else set(NODE_PARAMS) | {"clamp"})
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(
                f"graph node {node!r}: attribute(s) {unknown} unknown or meaningless for a {role} "
                f"node (allowed: {sorted(allowed)})"
            )
        grp = check_name(
            f"graph node {node!r}: group", data.get("group", default_group[role]), GROUP_NAME
        )
        values = {
            key: float(check_array(f"graph node {node!r}: {key}", data[key], (), **bounds))
            for key, bounds in NODE_PARAMS.items()
            if key in data
        }
        clamp = data.get("clamp")
        if clamp is not None:
            clamp = tuple(check_volts(f"graph node {node!r}: clamp", clamp, (2,)).tolist())
        if grp in attrs and attrs[grp]["role"] != role:
            raise ValueError(
                f"graph node {node!r}: group {grp!r} mixes roles {attrs[grp]['role']!r} and "
                f"{role!r}"
            )
        attrs.setdefault(grp, {"role": role, "clamp": clamp})
        if "clamp" in data and clamp != attrs[grp]["clamp"]:  # absent: the group's
            raise ValueError(
                f"graph node {node!r}: clamp = {clamp!r} differs from the clamp of "
                f"group {grp!r} ({attrs[grp]['clamp']!r}, from its first node): a "
                "group's nodes share one clamp"
            )
        where[node] = (grp, len(members.setdefault(grp, [])))
        members[grp].append(values)
    groups = []
    for grp, datas in members.items():
        role = attrs[grp]["role"]
        kw = {}
        if role != "input":
            for key, param in NODE_TABLE.items():
                kw[key] = [d.get(key, param.default) for d in datas]
        groups.append(
            NodeGroup(
                grp, role, len(datas), clamp=attrs[grp]["clamp"] if role != "input" else None, **kw
            )
        )
    sizes = {grp: len(d) for grp, d in members.items()}
    blocks: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
    for a, b, data in graph.edges(data=True):
        kind = data.get("kind")
        if not isinstance(kind, str) or str.__str__(kind) not in KINDS:
            raise ValueError(
                f"graph edge {a!r} -> {b!r}: kind = {kind!r} must be {', '.join(KINDS[:-1])} "
                f"or {KINDS[-1]}"
            )
        kind = str.__str__(kind)
        element, table = COUPLINGS[kind], settings_of(kind)
        if not element.RECIPROCAL and not graph.is_directed():
            raise ValueError(
                f"graph edge {a!r} - {b!r}: a {kind} transconductor has a direction; build the "
                "network from an nx.DiGraph (an undirected graph may hold resistors only)"
            )
        if "weight" not in data:
            raise ValueError(f"graph edge {a!r} -> {b!r}: missing weight")
        unknown = sorted(set(data) - {"kind", "weight"} - set(table))
        if unknown:
            raise ValueError(
                f"graph edge {a!r} -> {b!r}: attribute(s) {unknown} unknown for a {kind} edge"
            )
        weight = data["weight"]
        if not is_number(weight):
            raise ValueError(f"graph edge {a!r} -> {b!r}: weight = {weight!r} must be a number (S)")
        weight = float(
            check_array(f"graph edge {a!r} -> {b!r}: weight", weight, (), **WEIGHT_BOUNDS[kind])
        )
        (ga, ia), (gb, ib) = where[a], where[b]
        if element.RECIPROCAL and attrs[gb]["role"] == "input":  # a two-terminal element
            (ga, ia), (gb, ib) = (gb, ib), (ga, ia)
        if attrs[gb]["role"] == "input":
            raise ValueError(f"graph edge {a!r} -> {b!r}: a coupling cannot drive an input node")
        if element.RECIPROCAL and ga == gb and ia > ib:
            ia, ib = ib, ia
        key = (kind, ga, gb)
        if key not in blocks:
            shape = (sizes[gb], sizes[ga])
            blocks[key] = (
                np.zeros(shape),
                np.zeros(shape, bool),
                {k: np.full(shape, p.default) for k, p in table.items() if p.per_element},
            )
        w, m, values = blocks[key]
        if m[ib, ia]:
            raise ValueError(f"graph edge {a!r} -> {b!r}: duplicate {kind} between these nodes")
        for k, p in table.items():
            value = float(
                check_array(
                    f"graph edge {a!r} -> {b!r}: {k}", data.get(k, p.default), (), **p.bounds()
                )
            )
            if p.per_element:
                values[k][ib, ia] = value
                continue
            values.setdefault(k, value)
            if value != values[k]:
                raise ValueError(
                    f"graph edge {a!r} -> {b!r}: {k} = {value!r} differs from {values[k]!r} of the "
                    f"other {kind} edges between groups {ga!r} and {gb!r}"
                )
        w[ib, ia], m[ib, ia] = weight, True
    couplings = []
    for (kind, ga, gb), (w, m, values) in blocks.items():
        table = settings_of(kind)
        fields = {k: v for k, v in values.items() if table[k].field}
        settings = {k: v for k, v in values.items() if not table[k].field}
        couplings.append(
            Coupling(
                f"{COUPLINGS[kind].PREFIX}_{ga}_{gb}",
                kind,
                ga,
                gb,
                w,
                m,
                settings=settings or None,
                **fields,
            )
        )
    return Network(name, tuple(groups), tuple(couplings), diode or DiodeModel())


#: Shorthand specs for the command line: ``KIND:N_IN-N_H...-N_OUT``.
SHORTHANDS = {
    "ff": "feedforward transconductors only (non-reciprocal, the AEP showcase)",
    "layered": "forward transconductors plus backward ones between consecutive free layers, "
    "initialised symmetric (the AEP paper's Fig. 1 setting)",
    "res": "resistors with inverted inputs (reciprocal, Kendall et al. 2020)",
}


def from_shorthand(text: str, *, seed: int = 0, gain: float | None = None) -> Network:
    """A network from ``KIND:SIZES``, e.g. ``ff:64-64-10`` (see :data:`SHORTHANDS`).

    ``gain`` scales the initial weights (default 1; 0.5 for ``layered``, whose symmetric feedback
    loop at gain 1 makes circuits with several stable states, measured on 12-8-4: the engines then
    settle in different ones).

    Hidden nodes are diode-clamped to about [0, 1] V (rails 0.4 and 0.6 V: each diode turns on about
    0.4 V past its rail at these currents), outputs are linear (leak only).

    Parameters
    ----------
    text : str
        The shorthand (``ff:64-8-10``...).
    seed : int
        Seed of the random weights.
    gain : float
        Scale of the initial weights; ``None``: the shorthand's default.

    Returns
    -------
    Network
        The network.
    """
    kind, _, sizes_text = text.partition(":")
    if kind not in SHORTHANDS or not sizes_text:
        raise ValueError(
            f"spec shorthand {text!r} is not KIND:SIZES with KIND one of {sorted(SHORTHANDS)} "
            "(e.g. ff:64-64-10)"
        )
    if not re.fullmatch(
        r"[0-9]+(-[0-9]+)*", sizes_text
    ):  # ASCII digits only: int() also reads '６４'
        raise ValueError(f"spec shorthand {text!r}: sizes must be whole numbers joined by '-'")
    sizes = [int(s) for s in sizes_text.split("-")]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"spec shorthand {text!r}: need at least two positive layer sizes")
    if max(sizes) > MAX_GROUP_SIZE:
        raise ValueError(
            f"spec shorthand {text!r}: a layer of {max(sizes)} nodes is beyond {MAX_GROUP_SIZE:,}"
        )
    options = {
        "ff": dict(forward="vccs"),
        "layered": dict(forward="vccs", backward="vccs", symmetric_backward=True),
        "res": dict(forward=None, resistors=True, inverted_inputs=True),
    }[kind]
    name = f"{kind}_{'_'.join(map(str, sizes))}"
    gain = (0.5 if kind == "layered" else 1.0) if gain is None else gain
    return layered(
        sizes,
        name=name,
        clamp=(0.4, 0.6),
        output_clamp=False,
        gain=gain,
        seed=seed,
        description=f"{SHORTHANDS[kind]}; sizes {sizes_text}; seed {seed}",
        **options,
    )
