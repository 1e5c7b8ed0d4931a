"""Transistor-level transconductors: the built-in five-transistor OTA (issue 17 items 3 and 4).

The model the controller holds is a network of ideal transconductors (``vccs``, ``w`` in S); the
circuit that is simulated realises each of them as a five-transistor OTA with ngspice's level-1
MOSFETs (DESIGN.md §7): an NMOS differential pair ``m1``/``m2`` on a tail current source, a PMOS
current mirror ``m3``/``m4`` as its load, the output (drain of ``m2`` and ``m4``) wired straight
into the coupling's destination node. Its weight is programmed through two physical knobs, as a
designer would build it:

- the **tail current** ``I_b`` (A), a current DAC: it sets the magnitude.
  :func:`circuitep.engines.ota.characterise` measures the OTA's transconductance at zero
  differential input against ``I_b`` in ngspice, and :class:`Knobs` inverts that curve, so that
  a weight ``|w|`` maps to the ``I_b`` whose measured transconductance is ``|w|``;
- a **sign switch**: four transmission gates (resistors of ``r_on`` or ``r_off``) route the
  coupling's source node to the ``+`` gate and the reference ``v_ref`` to the ``-`` gate, or the
  other way round.

Beyond small signals the OTA is not the model: it saturates at ``+-I_b`` (square-law pair:
linear within about ``+-sqrt(2 I_b / beta)``), has output conductance (``lambda``), body effect
and a systematic offset. The numpy engines cannot describe it; its learning phases, its Jacobian
and its gradient come from the circuit (:class:`circuitep.engines.ota.OtaEngine`).

:func:`small_signal` turns ngspice's device small-signal parameters at an operating point (``gm``,
``gds``, ``gmbs``, ``gbd``, ``gbs`` of each transistor, the derivatives ngspice's own Newton step
uses) into the OTA's terminal derivatives, by eliminating its two internal nodes exactly. Every
name and value written here is the package's own: nothing from a user reaches these lines but
numbers, which :mod:`circuitep.netlist` validates.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, fields

import numpy as np
from scipy.interpolate import PchipInterpolator

from circuitep.checks import is_number, plain_float
from circuitep.netlist import Element, ModelCard, Section, Subcircuit, replaced_sections

#: The subcircuit's name and pins: ``+`` gate, ``-`` gate, output, tail, supplies.
SUBCKT = "circuitep_ota5t"
PINS = ("gp", "gn", "out", "tail", "vdd", "vss")
#: Model-card names of the OTA's transistors.
NMOS, PMOS = "circuitep_nch", "circuitep_pch"
#: Nodes of the shared supplies and of the reference input (written once per netlist).
VDD_NODE, VSS_NODE, VREF_NODE = "ota_vdd", "ota_vss", "ota_vref"
#: Per transistor, the small-signal parameters :func:`small_signal` reads (ngspice names).
DEVICE_PARAMS = {
    "m1": ("gm", "gds", "gmbs", "gbd", "gbs"),
    "m2": ("gm", "gds", "gmbs", "gbs"),
    "m3": ("gm", "gds", "gbd"),
    "m4": ("gm",),
}
#: The smallest tail current written (A): weights below the knob curve's first point map to
#: ``I_b ~ w^2`` down to this, below which a weight is realised as this current's tiny gain.
TAIL_FLOOR = 1e-15


@dataclass(frozen=True)
class OtaDesign:
    """The reference OTA's design: supplies, reference, transistor cards and sizes, switches.

    Defaults: +-5 V supplies, reference input at 0 V (so that ``i ~ w v(src)`` as in the model),
    long-channel level-1 MOSFETs (KP 50 / 25 uA/V^2, VTO +-0.7 V, GAMMA 0.4, LAMBDA 0.02 1/V), a
    2 um / 2 um NMOS pair (linear range about +-1 V at ``w = 4e-5 S``), a 4 um / 2 um PMOS mirror,
    1 kOhm / 1 TOhm switches, tail currents from ``i_min`` to ``i_max`` (the DAC's range; the top
    keeps every transistor saturated within the supplies at the largest weight,
    about 1.4e-4 S).

    Parameters
    ----------
    vdd, vss, v_ref : float
        Supply rails and the reference input, V.
    kp_n, kp_p : float
        Transconductance parameters of the NMOS and PMOS cards, A/V^2.
    vto_n, vto_p : float
        Threshold voltages, V (PMOS negative).
    gamma, phi, lam : float
        Body-effect coefficient (V^0.5), surface potential (V), channel-length modulation (1/V).
    w_pair, l_pair, w_mirror, l_mirror : float
        Channel widths and lengths of the pair and the mirror, m.
    r_on, r_off : float
        Switch resistances, Ohm.
    r_dac : float
        Output resistance of the tail-current DAC, Ohm (from the tail to ``vss``). Physical, and
        what makes the operating point findable: with an ideal tail source ngspice needed 617
        Newton iterations (dynamic gmin stepping) for ``ff:32-16-10`` from scratch, with 1 GOhm
        33. It adds ``(v_tail - vss) / r_dac`` (about 4 nA) to every tail current, so the
        smallest transconductance an OTA realises is about 0.5 uS.
    i_min, i_max : float
        The tail-current range the knob curve is measured over, A.
    v_out : float
        Output voltage at which the knob curve is measured, V (the middle of the node range).
    """

    vdd: float = 5.0
    vss: float = -5.0
    v_ref: float = 0.0
    kp_n: float = 50e-6
    kp_p: float = 25e-6
    vto_n: float = 0.7
    vto_p: float = -0.7
    gamma: float = 0.4
    phi: float = 0.7
    lam: float = 0.02
    w_pair: float = 2e-6
    l_pair: float = 2e-6
    w_mirror: float = 4e-6
    l_mirror: float = 2e-6
    r_on: float = 1e3
    r_off: float = 1e12
    r_dac: float = 1e9
    i_min: float = 1e-9
    i_max: float = 4e-4
    v_out: float = 0.5

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not is_number(value) or not np.isfinite(plain_float(f.name, value)):
                raise ValueError(f"OtaDesign.{f.name} = {value!r} must be a finite number")
            object.__setattr__(self, f.name, plain_float(f.name, value))
        positive = ("kp_n", "kp_p", "w_pair", "l_pair", "w_mirror", "l_mirror", "r_on", "r_off")
        positive += ("r_dac",)
        for name in positive + ("i_min", "i_max", "phi"):
            if getattr(self, name) <= 0:
                raise ValueError(f"OtaDesign.{name} = {getattr(self, name)!r} must be positive")
        if not (self.vss < self.v_ref < self.vdd and self.vss < self.v_out < self.vdd):
            raise ValueError("OtaDesign: v_ref and v_out must lie between vss and vdd")
        if self.r_off <= self.r_on:
            raise ValueError("OtaDesign: r_off must exceed r_on (a switch's off state)")
        if not self.i_min < self.i_max:
            raise ValueError("OtaDesign: i_min must be below i_max")
        if self.vto_n <= 0 or self.vto_p >= 0:
            raise ValueError("OtaDesign: vto_n must be positive and vto_p negative (enhancement)")
        if self.gamma < 0 or self.lam < 0:
            raise ValueError("OtaDesign: gamma and lam must be >= 0")

    @property
    def divider(self) -> float:
        """The fraction of a switch input that reaches a gate through ``r_on`` (1)."""
        return self.r_off / (self.r_on + self.r_off)

    def models(self) -> tuple[ModelCard, ModelCard]:
        """The NMOS and PMOS level-1 cards.

        Returns
        -------
        tuple of ModelCard
            NMOS, PMOS.
        """

        def card(name, kind, kp, vto):
            params = (("level", 1.0), ("vto", vto), ("kp", kp), ("gamma", self.gamma))
            return ModelCard(name, kind, params + (("phi", self.phi), ("lambda", self.lam)))

        return card(NMOS, "NMOS", self.kp_n, self.vto_n), card(PMOS, "PMOS", self.kp_p, self.vto_p)

    def transconductor(self) -> Transconductor:
        """The built-in OTA as a :class:`Transconductor` (:meth:`subcircuit`, :meth:`models`).

        Returns
        -------
        Transconductor
            The device.
        """
        return Transconductor(self.subcircuit(), self.models())

    def subcircuit(self) -> Subcircuit:
        """The OTA: pair ``m1``/``m2`` (bulk at ``vss``), mirror ``m3``/``m4`` (bulk at ``vdd``).

        Returns
        -------
        Subcircuit
            ``circuitep_ota5t gp gn out tail vdd vss``.
        """
        pair = (("w", self.w_pair), ("l", self.l_pair))
        mirror = (("w", self.w_mirror), ("l", self.l_mirror))
        return Subcircuit(
            SUBCKT,
            PINS,
            (
                Element("M", "m1", ("a", "gp", "tail", "vss"), NMOS, params=pair),
                Element("M", "m2", ("out", "gn", "tail", "vss"), NMOS, params=pair),
                Element("M", "m3", ("a", "a", "vdd", "vdd"), PMOS, params=mirror),
                Element("M", "m4", ("out", "a", "vdd", "vdd"), PMOS, params=mirror),
            ),
        )


def saved_params(instance: str) -> list[str]:
    """The device-parameter vectors :func:`small_signal` needs for OTA instance ``instance``.

    Parameters
    ----------
    instance : str
        The ``X`` element's name (``xfwd1_0_0``).

    Returns
    -------
    list of str
        ``@m.<instance>.<device>[<param>]`` names, in :data:`DEVICE_PARAMS` order.
    """
    return [f"@m.{instance}.{m}[{p}]" for m, ps in DEVICE_PARAMS.items() for p in ps]


@dataclass(frozen=True)
class SmallSignal:
    """An OTA's terminal derivatives at an operating point (arrays of one shape).

    Attributes
    ----------
    d_gp, d_gn : numpy.ndarray
        ``d i_out / d v(gp)``, ``d i_out / d v(gn)``, S (``i_out`` flows into the output node).
    d_tail : numpy.ndarray
        ``d i_out / d I_b``, dimensionless.
    """

    d_gp: np.ndarray
    d_gn: np.ndarray
    d_tail: np.ndarray


def small_signal(p: dict[str, np.ndarray], g_dac: float = 0.0) -> SmallSignal:
    """The five-transistor OTA's terminal derivatives in closed form (an independent check).

    The engines use the general :func:`linearise_block`; this hand-derived form is kept as its
    reference (they agree to 2e-16, tests/test_transistors.py).

    Linearises the five-transistor OTA with its terminals held (gates, output, supplies) and solves
    for its two internal nodes, the tail ``t`` and the mirror node ``a``, exactly. With NMOS drain
    currents ``i = gm v_gs + gds v_ds + gmbs v_bs`` and PMOS source-to-drain currents ``gm v_sg +
    gds v_sd`` (ngspice's level-1 stamp, every transistor in forward mode), junction conductances
    ``gbd``/``gbs`` to the bulk, the DAC's output conductance ``g_dac`` and the tail current
    leaving ``t``:

        KCL(a): -(gm3 + gds3 + gds1 + gbd1 + gbd3) a + S1 t = gm1 v_gp
        KCL(t): gds1 a - (S1 + S2 + gbs1 + gbs2 + g_dac) t = I_b - gm1 v_gp - gm2 v_gn
        i_out  = -gm4 a + S2 t - gm2 v_gn           (S_k = gm_k + gds_k + gmbs_k)

    Parameters
    ----------
    p : dict of str to numpy.ndarray
        ``"m1.gm"``, ``"m1.gds"``, ... for every entry of :data:`DEVICE_PARAMS` (S), arrays of one
        shape (for example ``(batch, n_ota)``).
    g_dac : float
        The tail DAC's output conductance, S (``1 / OtaDesign.r_dac``).

    Returns
    -------
    SmallSignal
        The derivatives, each of that shape.
    """
    s1 = p["m1.gm"] + p["m1.gds"] + p["m1.gmbs"]
    s2 = p["m2.gm"] + p["m2.gds"] + p["m2.gmbs"]
    m11 = -(p["m3.gm"] + p["m3.gds"] + p["m1.gds"] + p["m1.gbd"] + p["m3.gbd"])
    m12 = s1
    m21 = p["m1.gds"]
    m22 = -(s1 + s2 + p["m1.gbs"] + p["m2.gbs"] + g_dac)
    det = m11 * m22 - m12 * m21

    def response(r1, r2):  # i_out's change for the right-hand side (r1, r2) of KCL(a), KCL(t)
        a = (r1 * m22 - m12 * r2) / det
        t = (m11 * r2 - m21 * r1) / det
        return -p["m4.gm"] * a + s2 * t

    gm1, gm2 = p["m1.gm"], p["m2.gm"]
    zero = np.zeros_like(gm1)
    return SmallSignal(
        d_gp=response(gm1, -gm1),
        d_gn=response(zero, -gm2) - gm2,
        d_tail=response(zero, np.ones_like(gm1)),
    )


#: Small-signal parameters ngspice reports per element letter, which :func:`linearise_block` reads
#: (``vds`` tells a MOSFET's mode: ngspice reports ``type (v_d - v_s)``, negative when reversed).
LINEAR_PARAMS = {"M": ("gm", "gds", "gmbs", "gbd", "gbs", "vds"), "D": ("gd",)}
#: The pins an OTA's terminal derivatives are taken at (held), in :data:`PINS` order but ``tail``.
HELD = ("gp", "gn", "out", "vdd", "vss")


def block_params(sub: Subcircuit) -> list[tuple[str, str]]:
    """``(element, parameter)`` pairs :func:`linearise_block` needs for subcircuit ``sub``.

    Parameters
    ----------
    sub : Subcircuit
        A transconductor with the pins :data:`PINS`.

    Returns
    -------
    list of tuple of str
        In element order.
    """
    return [(el.name, q) for el in sub.elements for q in LINEAR_PARAMS.get(el.letter, ())]


def block_vectors(sub: Subcircuit, instance: str) -> list[str]:
    """The vector names ngspice gives :func:`block_params` for instance ``instance`` of ``sub``.

    Parameters
    ----------
    sub : Subcircuit
        The transconductor.
    instance : str
        The ``X`` element's name.

    Returns
    -------
    list of str
        ``@<letter>.<instance>.<element>[<parameter>]``.
    """
    return [f"@{name[0]}.{instance}.{name}[{q}]" for name, q in block_params(sub)]


def check_transconductor(sub: Subcircuit) -> None:
    """Refuse a subcircuit the engine cannot realise or linearise as a transconductor.

    Parameters
    ----------
    sub : Subcircuit
        Must have the pins :data:`PINS` in that order and only ``R``, ``C``, ``D``, ``M``, ``G``,
        ``I`` elements (an internal voltage source would need its branch current).
    """
    if sub.pins != PINS:
        raise ValueError(
            f"subcircuit {sub.name!r} has pins {sub.pins}; a transconductor needs {PINS} (+ gate, "
            "- gate, output into the node, tail current in, supplies)"
        )
    bad = [el.name for el in sub.elements if el.letter not in "RCDMGI"]
    if bad:
        raise ValueError(
            f"subcircuit {sub.name!r}: elements {bad} (allowed in a transconductor: R, C, D, M, "
            "G, I)"
        )


def linearise_block(sub: Subcircuit, p: dict, g_dac: float = 0.0) -> SmallSignal:
    """Terminal derivatives of any transconductor subcircuit, from its devices' small signals.

    The general form of :func:`small_signal`: the subcircuit plus its tail DAC (conductance
    ``g_dac`` from ``tail`` to ``vss``), linearised at the operating point with ngspice's own
    derivatives (:data:`LINEAR_PARAMS`; MOSFETs stamped as ``gm (v_g - v_s) + gds (v_d - v_s) +
    gmbs (v_b - v_s)`` from drain to source, drain and source exchanged where ngspice reports the
    device reversed, junctions ``gbd``/``gbs`` to the bulk; diodes ``gd``; resistors; ``G``
    elements), the pins :data:`HELD` fixed, every other node (the tail and the subcircuit's own)
    solved for exactly.

    Parameters
    ----------
    sub : Subcircuit
        The transconductor (:func:`check_transconductor`).
    p : dict of tuple to numpy.ndarray
        ``(element, parameter)`` (:func:`block_params`) to arrays of one shape (for example
        ``(batch, n_ota)``), S or V.
    g_dac : float
        The DAC's output conductance, S.

    Returns
    -------
    SmallSignal
        ``d i_out / d v(gp)``, ``d v(gn)``, ``d I_b``, each of that shape.
    """
    check_transconductor(sub)
    shape = np.shape(next(iter(p.values()))) if p else ()
    nodes = list(HELD) + sorted(
        ({n for el in sub.elements for n in el.nodes} | {"tail"}) - set(HELD) - {"0"}
    )
    at = {n: k for k, n in enumerate(nodes)}
    y = np.zeros(shape + (len(nodes), len(nodes)))

    def add(r, c, value):
        if r != "0" and c != "0":
            y[..., at[r], at[c]] += value

    def conductance(a, b, g):
        add(a, a, g), add(b, b, g), add(a, b, -g), add(b, a, -g)

    def vccs(n_from, n_to, c_plus, c_minus, g):  # g v(c+, c-) leaves n_from, enters n_to
        add(n_from, c_plus, g), add(n_from, c_minus, -g), add(n_to, c_plus, -g)
        add(n_to, c_minus, g)

    for el in sub.elements:
        if el.letter == "R":
            conductance(*el.nodes, 1.0 / el.value)
        elif el.letter == "G":
            vccs(*el.nodes, el.value)
        elif el.letter == "D":
            conductance(*el.nodes, p[(el.name, "gd")])
        elif el.letter == "M":
            d, g, s, b = el.nodes
            q = {k: p[(el.name, k)] for k in LINEAR_PARAMS["M"]}
            for rev, (dd, ss) in ((False, (d, s)), (True, (s, d))):
                on = (q["vds"] < 0) == rev
                vccs(dd, ss, g, ss, np.where(on, q["gm"], 0.0))
                conductance(dd, ss, np.where(on, q["gds"], 0.0))
                vccs(dd, ss, b, ss, np.where(on, q["gmbs"], 0.0))
            conductance(b, d, q["gbd"])
            conductance(b, s, q["gbs"])
    conductance("tail", "vss", g_dac)
    held, free = slice(0, len(HELD)), slice(len(HELD), len(nodes))
    y_uu, y_uh = y[..., free, free], y[..., free, held]
    rhs = np.concatenate([-y_uh, np.zeros(shape + (y_uu.shape[-1], 1))], axis=-1)
    rhs[..., at["tail"] - len(HELD), -1] = -1.0  # the tail current leaves the tail node
    dx = np.linalg.solve(y_uu, rhs)  # d x_free / d (held voltages, I_b)
    out = at["out"]
    direct = np.concatenate([y[..., out, held], np.zeros(shape + (1,))], axis=-1)
    d_out = -(direct + np.einsum("...u,...uk->...k", y[..., out, free], dx))
    return SmallSignal(d_gp=d_out[..., 0], d_gn=d_out[..., 1], d_tail=d_out[..., -1])


@dataclass(frozen=True)
class Transconductor:
    """The device each model transconductor is built as: a subcircuit and its model cards.

    The built-in five-transistor OTA (:meth:`OtaDesign.transconductor`), or a user's from a
    device file (:func:`circuitep.userfiles.read_device_file`), with the pins :data:`PINS`.

    Parameters
    ----------
    subcircuit : Subcircuit
        The device (:func:`check_transconductor`).
    models : tuple of ModelCard
        The cards its elements use.
    """

    subcircuit: Subcircuit
    models: tuple = ()

    def __post_init__(self):
        check_transconductor(self.subcircuit)
        object.__setattr__(self, "models", tuple(self.models))
        names = {m.name for m in self.models}
        missing = sorted({el.value for el in self.subcircuit.elements if el.letter in "DM"} - names)
        if missing:
            raise ValueError(f"subcircuit {self.subcircuit.name!r} uses undefined models {missing}")

    @property
    def name(self) -> str:
        """The subcircuit's name."""
        return self.subcircuit.name


@dataclass(frozen=True)
class Knobs:
    """The weight-to-knob map of an OTA design, measured in ngspice.

    Measured by :func:`circuitep.engines.ota.characterise`.

    ``currents`` (A, increasing) and ``gains`` (S, the transconductance at zero differential input
    and output ``v_out``, increasing) are the measured curve; between its points ``log I_b`` is a
    monotone cubic (PCHIP) in ``log |w|``; below it ``I_b ~ w^2`` (the square law) down to
    :data:`TAIL_FLOOR`; above it the DAC sits at full scale (``i_max``: the weight is clipped to
    :attr:`w_max` and its derivative is 0, in the circuit as in its gradient).
    """

    currents: np.ndarray
    gains: np.ndarray

    @property
    def w_max(self) -> float:
        """The largest weight the OTA realises, S."""
        return float(self.gains[-1])

    @functools.cached_property
    def _curve(self):
        return PchipInterpolator(np.log(self.gains), np.log(self.currents))

    def tail(self, w) -> tuple[np.ndarray, np.ndarray]:
        """Tail currents realising weights ``|w|`` and their derivatives.

        Parameters
        ----------
        w : array_like
            Weights, S (signed; the sign is the switch's).

        Returns
        -------
        tuple of numpy.ndarray
            ``I_b`` (A) and ``d I_b / d|w|`` (A/S), shaped like ``w``.
        """
        a = np.abs(np.asarray(w, dtype=float))
        g0, i0 = float(self.gains[0]), float(self.currents[0])
        on = a >= g0
        la = np.log(np.where(on, np.minimum(a, self.w_max), g0))
        ib_on = np.exp(self._curve(la))
        inside = a <= self.w_max
        slope_on = ib_on * self._curve.derivative()(la) / np.where(on, a, g0) * inside
        low = i0 * (a / g0) ** 2
        ib = np.where(on, ib_on, np.maximum(low, TAIL_FLOOR))
        slope = np.where(on, slope_on, np.where(low > TAIL_FLOOR, 2 * i0 * a / g0**2, 0.0))
        return ib, slope


@dataclass(frozen=True)
class Site:
    """Where one OTA sits: the model's transconductor ``weight[i, j]`` of coupling ``coupling``.

    ``src``/``dst`` are its netlist nodes, ``src_free``/``dst_free`` their indices among the free
    nodes (``None`` for an input node), ``base`` the stem of its elements' names.
    """

    coupling: str
    i: int
    j: int
    base: str
    src: str
    dst: str
    src_free: int | None
    dst_free: int | None

    @property
    def instance(self) -> str:
        """The ``X`` element's name."""
        return f"x{self.base}"


def sites(compiled) -> list[Site]:
    """The OTAs that realise the ``vccs`` couplings of a compiled phase, in netlist order.

    Parameters
    ----------
    compiled : Compiled
        A literal-form phase (:func:`circuitep.compiler.compile_network`).

    Returns
    -------
    list of Site
        One per unmasked transconductor.
    """
    net = compiled.network
    free = {n: k for k, n in enumerate(compiled.free_nodes)}
    by_name = {el.name: el for el in compiled.netlist.elements()}
    out = []
    for c in net.couplings:
        if c.kind != "vccs":
            continue
        for i, j in zip(*np.nonzero(c.mask), strict=True):
            base = f"{c.name}_{i}_{j}"
            el, ota = by_name.get(f"g{base}"), by_name.get(f"x{base}")
            if el is not None and el.letter == "G":
                dst, src = el.nodes[1], el.nodes[2]
            elif ota is not None and ota.letter == "X" and f"rsp_{base}" in by_name:
                dst, src = ota.nodes[2], by_name[f"rsp_{base}"].nodes[0]  # already realised
            else:
                raise ValueError(
                    f"coupling {c.name!r}: no transconductor g{base} in the {compiled.form} "
                    "netlist (transistor OTAs need the literal form)"
                )
            out.append(Site(c.name, int(i), int(j), base, src, dst, free.get(src), free.get(dst)))
    return out


def realise(
    compiled,
    design: OtaDesign,
    knobs: Knobs,
    save: bool = False,
    device: Transconductor | None = None,
):
    """The compiled phase with every ``vccs`` transconductor built as the reference OTA.

    Each ``G`` element ``g<coupling>_<i>_<j>`` becomes the OTA ``x<coupling>_<i>_<j>`` with its
    tail current ``itail_...`` (``I_b`` for ``|w|``, :meth:`Knobs.tail`, with the DAC's output
    resistance ``rdac_...``) and its four switch
    resistors ``rsp_``/``rrp_``/``rsn_``/``rrn_`` (source or reference to the ``+`` and ``-``
    gates, ``r_on`` or ``r_off`` by the sign of ``w``); one section holds the supplies and the
    reference. Every other element stays. ``save`` adds the transistors' small-signal parameters
    to every analysis (:func:`block_vectors`). ``device`` replaces the built-in OTA (the same
    DAC, switches and supplies around it).

    Parameters
    ----------
    compiled : Compiled
        A literal-form phase.
    design : OtaDesign
        The OTA.
    knobs : Knobs
        Its measured weight-to-tail-current map.
    save : bool
        Save the device parameters.
    device : Transconductor, optional
        What each transconductor is built as; ``None``: the design's own OTA.

    Returns
    -------
    Compiled
        The same phase, its netlist transistor-level.
    """
    device = device or design.transconductor()
    where = sites(compiled)
    net = compiled.network
    replaced = {f"g{s.base}": s for s in where}
    taken = set(compiled.netlist.nodes())
    clash = sorted(
        taken & {VDD_NODE, VSS_NODE, VREF_NODE}
        | {n for s in where for n in (f"gp_{s.base}", f"gn_{s.base}", f"tail_{s.base}")} & taken
    )
    if clash:
        raise ValueError(f"node name(s) {clash[:3]} of the network are the OTAs' own")
    weights = {c.name: c.weight for c in net.couplings}
    on, off = design.r_on, design.r_off

    def ota(el: Element) -> list[Element] | None:
        s = replaced.get(el.name)
        if s is None:
            return None
        w = float(weights[s.coupling][s.i, s.j])
        ib, _ = knobs.tail(w)
        pos = w >= 0
        gp, gn, tail = f"gp_{s.base}", f"gn_{s.base}", f"tail_{s.base}"
        return [
            Element(
                "X",
                s.instance,
                (gp, gn, s.dst, tail, VDD_NODE, VSS_NODE),
                device.name,
                comment=f"w = {w:.6g} S",
            ),
            Element("I", f"itail_{s.base}", (tail, VSS_NODE), float(ib)),
            Element("R", f"rdac_{s.base}", (tail, VSS_NODE), design.r_dac),
            Element("R", f"rsp_{s.base}", (s.src, gp), on if pos else off),
            Element("R", f"rrp_{s.base}", (VREF_NODE, gp), off if pos else on),
            Element("R", f"rsn_{s.base}", (s.src, gn), off if pos else on),
            Element("R", f"rrn_{s.base}", (VREF_NODE, gn), on if pos else off),
        ]

    sections = replaced_sections(
        compiled.netlist, ota, ("transconductors (S)", "five-transistor OTAs (tail A, switches)")
    )
    supplies = Section(
        "OTA supplies and reference input (V)",
        (
            Element("V", "vota_vdd", (VDD_NODE, "0"), design.vdd),
            Element("V", "vota_vss", (VSS_NODE, "0"), design.vss),
            Element("V", "vota_vref", (VREF_NODE, "0"), design.v_ref),
        ),
    )
    old = compiled.netlist
    netlist = dataclasses.replace(
        old,
        sections=(supplies, *sections),
        models=old.models + device.models,
        subcircuits=old.subcircuits + (device.subcircuit,),
        saves=old.saves
        + (
            tuple(v for s in where for v in block_vectors(device.subcircuit, s.instance))
            if save
            else ()
        ),
        header=old.header
        + (
            f"transconductors realised as the subcircuit {device.name} "
            f"(circuitep.transistors; {len(where)} OTAs)",
        ),
    )
    return dataclasses.replace(compiled, netlist=netlist)
