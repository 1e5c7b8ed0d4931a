"""ngspice with every resistor coupling a Verilog-A programmable resistor (issue 17 item 5).

The model holds ideal resistors (the ``resistor`` coupling kind, ``g`` in S); the circuit builds
each as the package's Verilog-A device :data:`circuitep.verilog_a.MODULE` (compiled by OpenVAF,
loaded through OSDI): conductance ``g`` within its range, nonlinear I-V ``i = g vnl sinh(v /
vnl)``. Each device sits behind a 0 V current sense (``vam_...``), so the circuit reports every
device's current; since the device's current is proportional to its programmed conductance
inside its range, ``d i / d g = i / g`` there (0 where it is clipped). The devices are
reciprocal: AEP needs no correction (it is EP here), and the learning rule is the resistor's,
``dC/dg = (s_i - s_j) d i / d g`` with the measured derivative in place of the ideal ``v_i -
v_j``. The truth is ngspice's finite differences of this circuit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from circuitep.compiler import source_values
from circuitep.engines.base import Phase, check_batch
from circuitep.engines.measured import CircuitEngine, check_state
from circuitep.netlist import VA_CARD, Element, ModelCard, replaced_sections
from circuitep.spec import Network
from circuitep.transistors import Site
from circuitep.verilog_a import MODULE, compiled_library


@dataclass(frozen=True)
class Resistors:
    """A batch's free state and the devices' measured ``d i / d g`` (V, ``(batch, n_devices)``)."""

    x0: np.ndarray
    d_weight: np.ndarray
    sites: tuple  # of circuitep.transistors.Site
    u: np.ndarray  # all input-node voltages, V, (batch, n_in)


@dataclass
class VaEngine(CircuitEngine):
    """ngspice on the circuit whose resistor couplings are Verilog-A devices (module docstring).

    Parameters
    ----------
    vnl : float
        The devices' nonlinearity voltage, V (``i = g vnl sinh(v / vnl)``).
    g_range : tuple of float
        The devices' conductance range ``(gmin, gmax)``, S; a programmed value outside is clipped.
    """

    vnl: float = 1.0
    g_range: tuple = (1e-12, 1e-2)
    name: str = "ngspice-va"

    def __post_init__(self):
        if not (np.isfinite(self.vnl) and self.vnl > 0):
            raise ValueError(f"vnl = {self.vnl!r} must be a positive number of volts")
        lo, hi = (float(v) for v in self.g_range)
        if not (0 < lo < hi < np.inf):
            raise ValueError(f"g_range = {self.g_range!r} must be 0 < gmin < gmax (S)")
        self.g_range = (lo, hi)
        super().__post_init__()
        self.library = str(compiled_library())
        self._session.load_osdi(self.library)

    @property
    def tolerance_dict(self) -> dict:
        """:attr:`NgspiceEngine.tolerance_dict` plus the device (``va``)."""
        return super().tolerance_dict | {"va": {"vnl": self.vnl, "g_range": list(self.g_range)}}

    def _sites(self, compiled) -> list[Site]:
        """Where every device sits (:class:`circuitep.transistors.Site`), resistor couplings."""
        free = {n: k for k, n in enumerate(compiled.free_nodes)}
        by_name = {el.name: el for el in compiled.netlist.elements()}
        out = []
        for c in compiled.network.couplings:
            if c.kind != "resistor":
                continue
            for i, j in zip(*np.nonzero(c.mask), strict=True):
                base = f"{c.name}_{i}_{j}"
                el = by_name.get(f"r{base}") or by_name.get(f"nva_{base}")
                if el is None:  # g = 0: no device (the netlist leaves it out)
                    continue
                dst = el.nodes[0] if el.letter == "R" else by_name[f"vam_{base}"].nodes[0]
                src = el.nodes[1]
                out.append(
                    Site(c.name, int(i), int(j), base, src, dst, free.get(src), free.get(dst))
                )
        return out

    def _realise(self, compiled, save: bool = False):
        self._session.load_osdi(self.library)  # again after a fresh ngspice
        sites = {f"r{s.base}": s for s in self._sites(compiled)}

        def device(el: Element) -> list[Element] | None:
            s = sites.get(el.name)
            if s is None:
                return None
            mid = f"va_{s.base}"
            return [
                Element("V", f"vam_{s.base}", (s.dst, mid), 0.0),
                Element("N", f"nva_{s.base}", (mid, s.src), 1.0 / el.value),
            ]

        retitle = ("resistors", "Verilog-A resistors behind 0 V current senses")
        sections = replaced_sections(compiled.netlist, device, retitle)
        lo, hi = self.g_range
        card = ModelCard(VA_CARD, MODULE, (("glo", lo), ("ghi", hi), ("vnl", self.vnl)))
        old = compiled.netlist
        netlist = dataclasses.replace(
            old,
            sections=tuple(sections),
            models=old.models + (card,),
            osdi=old.osdi + (self.library,),
            header=old.header
            + (f"resistors realised as the Verilog-A device {MODULE} (circuitep.verilog_a)",),
        )
        return dataclasses.replace(compiled, netlist=netlist)

    def linearise(self, net: Network, inputs) -> Resistors:
        """Free state and each device's ``d i / d g`` from its measured current, one sweep.

        Parameters
        ----------
        net : Network
            The model; the circuit is its Verilog-A realisation.
        inputs : array_like, shape (batch, n_inputs)
            Primary input voltages, V.

        Returns
        -------
        Resistors
            Measured at every sample.
        """
        u, _, _ = check_batch(net, Phase(), inputs, None, None)
        compiled = self._compile(net, Phase())
        sites = tuple(self._sites(compiled))
        values = source_values(compiled, u, None, None)
        tables = {s.name: values[:, k] for k, s in enumerate(compiled.sources)}
        names = list(compiled.free_nodes) + [f"vam_{s.base}#branch" for s in sites]
        got = self._sweep_or_fail(compiled.netlist, tables, names, "free phase", u.shape[0])
        x0 = np.stack([got[n] for n in compiled.free_nodes], axis=1)
        check_state(self.name, x0, "free")
        weights = {c.name: c.weight for c in net.couplings}
        g = np.array([weights[s.coupling][s.i, s.j] for s in sites])
        current = np.stack([got[f"vam_{s.base}#branch"] for s in sites], axis=1)
        inside = (g >= self.g_range[0]) & (g <= self.g_range[1])
        return Resistors(x0, np.where(inside, current / g, 0.0), sites, u)

    def _absent_rules(self, net: Network, lin: Resistors, s: np.ndarray, grads: dict) -> None:
        """The rule where ``g = 0`` and the netlist has no device.

        There the derivative is the device law's at
        ``g -> 0+``, ``d i / d g = vnl sinh((v_i - v_j) / vnl)`` (the one place the controller
        uses the law, which has no current to measure there), so that such a coupling can grow.
        """
        flat = net.slices()
        v = np.concatenate([lin.u, lin.x0], axis=1)
        sv = np.concatenate([np.zeros_like(lin.u), s], axis=1)
        for c in net.couplings:
            if c.kind != "resistor":
                continue
            absent = c.mask & (c.weight == 0)
            if not absent.any():
                continue
            vd, vs = v[:, flat[c.dst]], v[:, flat[c.src]]
            sd, ss = sv[:, flat[c.dst]], sv[:, flat[c.src]]
            dv = vd[:, :, None] - vs[:, None, :]
            rule = np.mean((sd[:, :, None] - ss[:, None, :]) * self.vnl * np.sinh(dv / self.vnl), 0)
            grads[c.name] = np.where(absent, rule, grads[c.name])

    def _device_rules(self, net: Network, lin: Resistors, s: np.ndarray, grads: dict) -> None:
        """The devices' rule ``(s_i - s_j) d i / d g`` (batch mean) into ``grads``."""
        zero = np.zeros(s.shape[0])
        self._absent_rules(net, lin, s, grads)
        for k, site in enumerate(lin.sites):
            name, i, j, dst, src = site.coupling, site.i, site.j, site.dst_free, site.src_free
            sd = s[:, dst] if dst is not None else zero
            ss = s[:, src] if src is not None else zero
            grads[name][i, j] = np.mean((sd - ss) * lin.d_weight[:, k])
