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

from circuitep import kcl
from circuitep.compiler import source_values
from circuitep.costs import Cost, SquaredError
from circuitep.engines.base import ConvergenceError, Phase, check_batch
from circuitep.engines.ngspice_engine import NgspiceEngine, NgspiceError, shared_session
from circuitep.netlist import Element, Netlist, Section, spice_number, write, write_sweep
from circuitep.spec import MAX_VOLTS, Network
from circuitep.transistors import (
    DEVICE_PARAMS,
    SUBCKT,
    VDD_NODE,
    VREF_NODE,
    VSS_NODE,
    Knobs,
    OtaDesign,
    Site,
    realise,
    saved_params,
    sites,
    small_signal,
)

#: The correction's gain nodes hold ``G_e / GAIN_SCALE`` volts (order 0.1 .. 1 V).
GAIN_SCALE = 1e-4
#: Estimators this engine computes from the circuit (the others need the numpy model's Jacobian).
CIRCUIT_ESTIMATORS = ("aep", "vf")


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
class OtaEngine(NgspiceEngine):
    """ngspice on the circuit whose transconductors are the reference OTA (module docstring).

    Literal netlists only (an OTA's input is a gate: it cannot be folded into a Norton source).
    Solves free and plain nudged phases like :class:`NgspiceEngine`; the AEP phase needs the
    circuit's own Jacobian and runs in :meth:`estimate_from_circuit`.

    Parameters
    ----------
    design : OtaDesign
        The OTA; its knob curve is measured once (:func:`characterise`).
    """

    form: str = "literal"
    design: OtaDesign = field(default_factory=OtaDesign)
    name: str = "ngspice-ota5t"

    def __post_init__(self):
        if self.form != "literal":
            raise ValueError(
                "OtaEngine needs form='literal': an OTA's input is a transistor's gate, which a "
                "folded netlist would replace by a current source"
            )
        if not isinstance(self.design, OtaDesign):
            raise TypeError(f"design must be an OtaDesign, got {type(self.design).__name__}")
        super().__post_init__()
        self.knobs = characterise(self.design)

    @property
    def tolerance_dict(self) -> dict:
        """:attr:`NgspiceEngine.tolerance_dict` plus the OTA design (``ota``)."""
        return super().tolerance_dict | {"ota": dataclasses.asdict(self.design)}

    def _compile(self, net: Network, phase: Phase, **options):
        if phase.kind not in ("free", "nudged"):
            raise ValueError(
                f"OtaEngine solves free and nudged phases; the {phase.kind} phase needs the "
                "circuit's own Jacobian: use estimate_from_circuit (circuitep.estimators.estimate "
                "calls it)"
            )
        return super()._compile(net, phase, **options)

    def _unsolved(self, net, phase, u, y, x0, x, d) -> np.ndarray:
        """Samples with voltages not finite or beyond +-MAX_VOLTS.

        The model's KCL does not hold in this circuit: ngspice's own convergence test is the check.
        """
        return np.flatnonzero(~np.all(np.isfinite(x) & (np.abs(x) <= MAX_VOLTS), axis=1))

    def _realise(self, compiled, save: bool = False):
        return realise(compiled, self.design, self.knobs, save=save)

    # --- measuring the circuit -------------------------------------------------------------

    def _sweep_or_fail(self, netlist, tables: dict, names: list[str], what: str, batch: int):
        if batch == 1:  # a sweep needs two points: the sample twice
            tables = {k: np.repeat(v, 2) for k, v in tables.items()}
        got = self.sweep_vectors(write_sweep(netlist, tables), max(batch, 2), names, what)
        if got is None:
            raise ConvergenceError(
                f"{self.name}: {what}: ngspice found no operating point for the batch",
                samples=np.arange(batch),
            )
        return {k: v[:batch] for k, v in got.items()}

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
        vectors = {s.base: saved_params(s.instance) for s in where}
        names = list(compiled.free_nodes) + [v for vs in vectors.values() for v in vs]
        got = self._sweep_or_fail(compiled.netlist, tables, names, "free phase", u.shape[0])
        x0 = np.stack([got[n] for n in compiled.free_nodes], axis=1)
        _check_state(self.name, x0, "free")
        keys = [f"{m}.{q}" for m, qs in DEVICE_PARAMS.items() for q in qs]
        params = {
            key: np.stack([got[vectors[s.base][k]] for s in where], axis=1)
            for k, key in enumerate(keys)
        }
        ss = small_signal(params, 1 / self.design.r_dac)
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

    def _nudged(self, net, u, targets, lin: Linearisation, beta: float, cost, corrected: bool):
        """One nudged phase at ``beta``, AEP-corrected from ``lin`` when ``corrected``."""
        compiled = self._compile(net, Phase("nudged", beta=beta, cost=cost))
        values = source_values(compiled, u, targets, lin.x0)
        tables = {s.name: values[:, k] for k, s in enumerate(compiled.sources)}
        netlist = compiled.netlist
        if corrected:
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
            netlist = dataclasses.replace(netlist, sections=netlist.sections + (section,))
        what = f"{'AEP' if corrected else 'nudged'} phase at beta = {beta:g}"
        got = self._sweep_or_fail(netlist, tables, list(compiled.free_nodes), what, u.shape[0])
        x = np.stack([got[n] for n in compiled.free_nodes], axis=1)
        _check_state(self.name, x, what)
        return x

    def estimate_from_circuit(
        self,
        name: str,
        net: Network,
        inputs,
        targets,
        *,
        beta: float,
        cost: Cost | None = None,
        centered: bool = True,
        correction=None,
    ):
        """AEP or VF on the transistor circuit, everything measured in ngspice (module docstring).

        Parameters
        ----------
        name : {"aep", "vf"}
            AEP (nudged with the circuit's own correction) or VF (plain nudge).
        net : Network
            The model; the circuit is its OTA realisation.
        inputs : numpy.ndarray
            Primary input voltages, V, ``(batch, n_inputs)``.
        targets : numpy.ndarray
            Targets, ``(batch, n_outputs)``.
        beta : float
            Nudge strength (S for squared error).
        cost : Cost
            The cost; ``None``: squared error.
        centered : bool
            Two nudged phases (``+-beta``) or one.
        correction : None
            Must be None: the correction is the circuit's own, measured.

        Returns
        -------
        x0 : numpy.ndarray
            The free state, V, ``(batch, n_free)``.
        s : numpy.ndarray
            The adjoint estimate, ``(batch, n_free)``.
        grads : dict of str to numpy.ndarray
            Batch-mean gradients per parameter (:meth:`Network.params` shapes).
        value : float
            The batch-mean cost at the free state.
        """
        if name not in CIRCUIT_ESTIMATORS:
            raise ValueError(
                f"estimator {name!r} needs the numpy model's Jacobian, which a transistor "
                f"circuit does not have: {self.name} computes {CIRCUIT_ESTIMATORS} from the "
                "circuit itself; its true gradient is ngspice's finite differences "
                "(circuitep.sens.finite_difference_gradients)"
            )
        if correction is not None:
            raise ValueError(
                f"{self.name} measures the AEP correction in the circuit: correction must be None"
            )
        cost = cost or SquaredError()
        u, y, _ = check_batch(net, Phase("nudged", beta=1.0), inputs, targets, None)
        lin = self.linearise(net, inputs)
        corrected = name == "aep"
        plus = self._nudged(net, u, y, lin, beta, cost, corrected)
        if centered:
            minus = self._nudged(net, u, y, lin, -beta, cost, corrected)
            s = (plus - minus) / (2 * beta)
        else:
            s = (plus - lin.x0) / beta
        grads = kcl.param_gradients(net, u, lin.x0, s)
        for c in net.couplings:
            if c.kind == "vccs":
                grads[c.name] = np.zeros(c.weight.shape)
        for k, site in enumerate(lin.sites):
            grads[site.coupling][site.i, site.j] = -np.mean(
                s[:, site.dst_free] * lin.d_weight[:, k]
            )
        out = net.output_index()
        value = float(cost.value(lin.x0[:, out], y).mean())
        return lin.x0, s, grads, value


#: Points of the measured knob curve.
CURVE_POINTS = 81


@functools.lru_cache(maxsize=8)
def characterise(design: OtaDesign) -> Knobs:
    """Measure the OTA's transconductance against its tail current in ngspice.

    One OTA, gates at ``v_ref``, output held at ``v_out``, tail currents log-spaced from
    ``i_min`` to ``i_max``; the transconductance is :func:`small_signal`'s ``d_gp`` times the
    switch divider. Cached per design.

    Parameters
    ----------
    design : OtaDesign
        The design.

    Returns
    -------
    Knobs
        The measured curve.
    """
    currents = np.geomspace(design.i_min, design.i_max, CURVE_POINTS)
    elements = [
        Element("V", "vdd", (VDD_NODE, "0"), design.vdd),
        Element("V", "vss", (VSS_NODE, "0"), design.vss),
        Element("V", "vgate", (VREF_NODE, "0"), design.v_ref),
        Element("V", "vout", ("out", "0"), design.v_out),
        Element("X", "xota", (VREF_NODE, VREF_NODE, "out", "tail", VDD_NODE, VSS_NODE), SUBCKT),
        Element("I", "itail", ("tail", VSS_NODE), float(currents[0])),
        Element("R", "rdac", ("tail", VSS_NODE), design.r_dac),
    ]
    netlist = Netlist(
        "* circuitep: OTA knob curve",
        (Section("one OTA, terminals held", tuple(elements)),),
        models=design.models(),
        options=(("reltol", 1e-10), ("vntol", 1e-12), ("abstol", 1e-15), ("gmin", 1e-12)),
        subcircuits=(design.subcircuit(),),
        saves=tuple(saved_params("xota")),
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
                f"{m}.{q}": session.vector(f"@m.xota.{m}[{q}]")
                for m, qs in DEVICE_PARAMS.items()
                for q in qs
            }
            gains[k] = small_signal(p, 1 / design.r_dac).d_gp[0] * design.divider
    finally:
        session.command("destroy all")
        session.remove(token)
    if not np.all(np.diff(gains) > 0):
        raise ValueError("OTA knob curve: the transconductance does not grow with I_b")
    return Knobs(currents, gains)


def _check_state(engine: str, x: np.ndarray, what: str) -> None:
    bad = np.flatnonzero(~np.all(np.isfinite(x) & (np.abs(x) <= MAX_VOLTS), axis=1))
    if bad.size:
        raise ConvergenceError(
            f"{engine}: {what}: what ngspice returned for sample(s) {bad[:10].tolist()} is no "
            f"operating point (voltages beyond +-{MAX_VOLTS:g} V)",
            samples=bad,
        )
