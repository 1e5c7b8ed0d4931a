"""ngspice with every transconductor built from transistors; AEP from the circuit's own Jacobian.

Issue 17 items 3 and 4 (DESIGN.md §7). :class:`OtaEngine` is an
:class:`~circuitep.engines.ngspice_engine.NgspiceEngine` whose netlists realise each ``vccs``
coupling of the model as the reference five-transistor OTA (:mod:`circuitep.transistors`): free
and plain nudged phases solve that circuit. The numpy model cannot describe it, so the learning
signal comes from the circuit alone (:meth:`OtaEngine.estimate_from_circuit`, which
:func:`circuitep.estimators.estimate` hands every estimate to):

1. **Linearise at the free state** (:meth:`OtaEngine.linearise`): one DC sweep over the batch
   solves the free phase and saves every transistor's small-signal parameters at every sample;
   :func:`~circuitep.transistors.small_signal` turns them into each OTA's transconductance from
   its source node, ``G_e = d i_dst / d v_src`` (the only non-reciprocal entries of the circuit's
   Jacobian on the network's nodes: gates draw no current, everything else is two-terminal), and
   its derivative with respect to its weight, ``d i_dst / d w = sign(w) (d i / d I_b)
   (d I_b / d|w|)``.
2. **Realise the correction from it** (AEP): while nudged, OTA ``e`` from free node ``j`` into
   free node ``i`` gets two correction sources, ``-G_e (v_j - x0_j)`` into ``i`` and ``+G_e (v_i -
   x0_i)`` into ``j``, against reference nodes holding the free state ``x0`` and one node holding
   ``G_e`` per OTA (per-sample sources of the sweep): the nudged circuit's Jacobian is then the
   transpose of the free circuit's, and ``(x_beta - x_-beta) / (2 beta)`` is the exact adjoint up
   to ``beta^2``.
3. **Learning rules** ``dC/dw_e = -s_i d i_e / d w`` (batch mean) for the OTAs; every other
   element (leaks, biases, clamps) is ideal in the circuit too and keeps its rule
   (:func:`circuitep.kcl.param_gradients`).

The truth to check against is this circuit's own gradient: ngspice finite differences through the
same engine (:func:`circuitep.sens.finite_difference_gradients`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import numpy as np

from circuitep.compiler import source_values
from circuitep.engines.base import Phase, check_batch
from circuitep.engines.measured import CircuitEngine, check_state
from circuitep.engines.ngspice_engine import NgspiceError, shared_session
from circuitep.netlist import Element, Netlist, Section, spice_number, write
from circuitep.spec import Network
from circuitep.transistors import (
    SUBCKT,
    VDD_NODE,
    VREF_NODE,
    VSS_NODE,
    Knobs,
    OtaDesign,
    Site,
    Transconductor,
    block_params,
    block_vectors,
    linearise_block,
    realise,
    sites,
)

#: The correction's gain nodes hold ``G_e / GAIN_SCALE`` volts (order 0.1 .. 1 V).
GAIN_SCALE = 1e-4


@dataclass(frozen=True)
class Linearisation:
    """A batch's free state and the OTAs' derivatives there, all measured in ngspice.

    Attributes
    ----------
    x0 : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.
    gain : numpy.ndarray
        ``d i_dst / d v_src`` of each OTA, S, ``(batch, n_ota)`` (:attr:`sites` order).
    d_weight : numpy.ndarray
        ``d i_dst / d w`` of each OTA, V, ``(batch, n_ota)``.
    sites : tuple of Site
        The OTAs.
    """

    x0: np.ndarray
    gain: np.ndarray
    d_weight: np.ndarray
    sites: tuple[Site, ...]


@dataclass
class OtaEngine(CircuitEngine):
    """ngspice on the circuit whose transconductors are the reference OTA (module docstring).

    Literal netlists only (an OTA's input is a gate: it cannot be folded into a Norton source).
    Solves free and plain nudged phases like :class:`NgspiceEngine`; the AEP phase needs the
    circuit's own Jacobian and runs in :meth:`estimate_from_circuit`.

    Parameters
    ----------
    design : OtaDesign
        The OTA, its DAC, switches and supplies; the knob curve is measured once
        (:func:`characterise`).
    device : Transconductor, optional
        A user's transconductor subcircuit in place of the built-in OTA (same pins, knobs and
        supplies; :func:`circuitep.userfiles.read_device_file`).

    ``solver="auto"`` means KLU where ngspice has it (0.72x Sparse's time on the ``ff:64-10``
    digits OTA circuit), else Sparse.
    """

    form: str = "literal"
    design: OtaDesign = field(default_factory=OtaDesign)
    device: Transconductor | None = None
    name: str = "ngspice-ota5t"

    def __post_init__(self):
        if not isinstance(self.design, OtaDesign):
            raise TypeError(f"design must be an OtaDesign, got {type(self.design).__name__}")
        if self.device is None:
            self.device = self.design.transconductor()
        if not isinstance(self.device, Transconductor):
            raise TypeError(f"device must be a Transconductor, got {type(self.device).__name__}")
        if self.device.name != SUBCKT and self.name == "ngspice-ota5t":
            self.name = f"ngspice-{self.device.name}"
        super().__post_init__()
        if self.solver == "auto" and self._session.klu:
            # the element-count rule of ``auto`` counts an OTA as one X line; flattened, its
            # transistors make KLU the faster solver (0.72x Sparse's time per sample, ff:64-10
            # digits sweep, measured side by side)
            self.solver = "klu"
        self.knobs = characterise(self.design, self.device)

    @property
    def tolerance_dict(self) -> dict:
        """:attr:`NgspiceEngine.tolerance_dict` plus the OTA design (``ota``)."""
        return super().tolerance_dict | {"ota": dataclasses.asdict(self.design)}

    def _realise(self, compiled, save: bool = False):
        return realise(compiled, self.design, self.knobs, save=save, device=self.device)

    def linearise(self, net: Network, inputs) -> Linearisation:
        """Free state and each OTA's transconductance and weight derivative, from one sweep.

        Parameters
        ----------
        net : Network
            The model; the circuit is its OTA realisation.
        inputs : array_like, shape (batch, n_inputs)
            Primary input voltages, V.

        Returns
        -------
        Linearisation
            Measured at every sample.
        """
        u, _, _ = check_batch(net, Phase(), inputs, None, None)
        compiled = self._compile(net, Phase(), save=True)
        where = tuple(sites(compiled))
        values = source_values(compiled, u, None, None)
        tables = {s.name: values[:, k] for k, s in enumerate(compiled.sources)}
        sub = self.device.subcircuit
        vectors = {s.base: block_vectors(sub, s.instance) for s in where}
        names = list(compiled.free_nodes) + [v for vs in vectors.values() for v in vs]
        got = self._sweep_or_fail(compiled.netlist, tables, names, "free phase", u.shape[0])
        x0 = np.stack([got[n] for n in compiled.free_nodes], axis=1)
        check_state(self.name, x0, "free")
        params = {
            key: np.stack([got[vectors[s.base][k]] for s in where], axis=1)
            for k, key in enumerate(block_params(sub))
        }
        ss = linearise_block(sub, params, 1 / self.design.r_dac)
        rho = self.design.divider
        weights = {c.name: c.weight for c in net.couplings}
        w = np.array([weights[s.coupling][s.i, s.j] for s in where])
        pos = w >= 0
        # the source reaches the + gate through r_on (sign +) or the - gate (sign -)
        gain = np.where(
            pos, ss.d_gp * rho + ss.d_gn * (1 - rho), ss.d_gp * (1 - rho) + ss.d_gn * rho
        )
        _, slope = self.knobs.tail(w)
        d_weight = np.where(pos, 1.0, -1.0) * ss.d_tail * slope
        return Linearisation(x0, gain, d_weight, where)

    def _correction(self, compiled, lin: Linearisation, tables: dict) -> Section | None:
        """The AEP correction's elements from the measured transconductances (module docstring).

        Adds their per-sample values (``x0`` references, one gain node per OTA) to ``tables``.
        """
        free = list(compiled.free_nodes)
        inner = [k for k, s in enumerate(lin.sites) if s.src_free is not None]
        refs = sorted(
            {lin.sites[k].src_free for k in inner} | {lin.sites[k].dst_free for k in inner}
        )
        els = []
        for r in refs:
            els.append(Element("V", f"vx0_{free[r]}", (f"x0r_{free[r]}", "0"), 0.0))
            tables[f"vx0_{free[r]}"] = lin.x0[:, r]
        for k in inner:
            s = lin.sites[k]
            g = f"gm_{s.base}"
            els += [
                Element("V", f"v{g}", (g, "0"), 0.0),
                Element(
                    "B",
                    f"bcf_{s.base}",
                    ("0", s.dst),
                    f"-{GAIN_SCALE!r}*v({g})*(v({s.src})-v(x0r_{s.src}))",
                ),
                Element(
                    "B",
                    f"bcb_{s.base}",
                    ("0", s.src),
                    f"{GAIN_SCALE!r}*v({g})*(v({s.dst})-v(x0r_{s.dst}))",
                ),
            ]
            tables[f"v{g}"] = lin.gain[:, k] / GAIN_SCALE
        section = Section(
            "AEP correction from the circuit's measured OTA transconductances: -G (v_src - "
            "x0_src) into dst, +G (v_dst - x0_dst) into src",
            tuple(els),
        )
        return section

    def _device_rules(self, net: Network, lin: Linearisation, s: np.ndarray, grads: dict) -> None:
        """The OTAs' rule ``dC/dw_e = -s_dst d i_e / d w`` (batch mean) into ``grads``."""
        for c in net.couplings:
            if c.kind == "vccs":
                grads[c.name] = np.zeros(c.weight.shape)
        for k, site in enumerate(lin.sites):
            grads[site.coupling][site.i, site.j] = -np.mean(
                s[:, site.dst_free] * lin.d_weight[:, k]
            )


#: Points of the measured knob curve.
CURVE_POINTS = 81


@functools.lru_cache(maxsize=8)
def characterise(design: OtaDesign, device: Transconductor | None = None) -> Knobs:
    """Measure the OTA's transconductance against its tail current in ngspice.

    One OTA, gates at ``v_ref``, output held at ``v_out``, tail currents log-spaced from
    ``i_min`` to ``i_max``; the transconductance is :func:`small_signal`'s ``d_gp`` times the
    switch divider. Cached per design.

    Parameters
    ----------
    design : OtaDesign
        The design (DAC range and resistance, switches, supplies).
    device : Transconductor, optional
        The transconductor; ``None``: the design's OTA.

    Returns
    -------
    Knobs
        The measured curve.
    """
    device = device or design.transconductor()
    sub = device.subcircuit
    currents = np.geomspace(design.i_min, design.i_max, CURVE_POINTS)
    elements = [
        Element("V", "vdd", (VDD_NODE, "0"), design.vdd),
        Element("V", "vss", (VSS_NODE, "0"), design.vss),
        Element("V", "vgate", (VREF_NODE, "0"), design.v_ref),
        Element("V", "vout", ("out", "0"), design.v_out),
        Element("X", "xota", (VREF_NODE, VREF_NODE, "out", "tail", VDD_NODE, VSS_NODE), sub.name),
        Element("I", "itail", ("tail", VSS_NODE), float(currents[0])),
        Element("R", "rdac", ("tail", VSS_NODE), design.r_dac),
    ]
    netlist = Netlist(
        "* circuitep: OTA knob curve",
        (Section("one OTA, terminals held", tuple(elements)),),
        models=device.models,
        options=(("reltol", 1e-10), ("vntol", 1e-12), ("abstol", 1e-15), ("gmin", 1e-12)),
        subcircuits=(sub,),
        saves=tuple(block_vectors(sub, "xota")),
    )

    session = shared_session()
    token = object()
    session.add_circuit(token, write(netlist))
    gains = np.empty(CURVE_POINTS)
    try:
        for k, ib in enumerate(currents):
            session.checked(f"alter itail dc = {spice_number(ib)}")
            errors = session.run("op", 30.0)
            if errors is None or errors:
                raise NgspiceError(f"OTA knob curve: no operating point at I_b = {ib:.3g} A")
            p = {
                key: session.vector(v)
                for key, v in zip(block_params(sub), block_vectors(sub, "xota"), strict=True)
            }
            gains[k] = linearise_block(sub, p, 1 / design.r_dac).d_gp[0] * design.divider
    finally:
        session.command("destroy all")
        session.remove(token)
    if not np.all(np.diff(gains) > 0):
        raise ValueError(
            f"knob curve of {sub.name!r}: the transconductance does not grow with the tail "
            "current (is gp its + input and out its output?)"
        )
    return Knobs(currents, gains)
