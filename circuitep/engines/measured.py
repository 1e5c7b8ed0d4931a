"""ngspice engines whose circuit is not the model: every learning signal measured in the circuit.

DESIGN.md §7, issue 17. A :class:`CircuitEngine` is an
:class:`~circuitep.engines.ngspice_engine.NgspiceEngine` whose netlists realise the model's
couplings as devices the numpy model cannot describe (:meth:`CircuitEngine._realise`: transistor
OTAs in :mod:`circuitep.engines.ota`, Verilog-A resistors in :mod:`circuitep.engines.va`). It
solves free and plain nudged phases; :meth:`CircuitEngine.estimate_from_circuit`, which
:func:`circuitep.estimators.estimate` hands every estimate to, linearises the circuit at the free
state from its own devices (:meth:`linearise`), realises the AEP correction from that
(:meth:`_correction`; none where the devices are reciprocal), runs the nudged phases as DC sweeps
over the batch and applies the devices' learning rules (:meth:`_device_rules`) beside the ideal
elements' (:func:`circuitep.kcl.param_gradients`). The truth to check against is the circuit's
own gradient: ngspice finite differences through the same engine
(:func:`circuitep.sens.finite_difference_gradients`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from circuitep import kcl
from circuitep.compiler import source_values
from circuitep.costs import Cost, SquaredError
from circuitep.engines.base import ConvergenceError, Phase, check_batch
from circuitep.engines.ngspice_engine import NgspiceEngine
from circuitep.netlist import Section, write_sweep
from circuitep.spec import MAX_VOLTS, Network

#: Estimators a circuit engine computes from the circuit (the others need the numpy model's
#: Jacobian).
CIRCUIT_ESTIMATORS = ("aep", "vf")


@dataclass
class CircuitEngine(NgspiceEngine):
    """ngspice on a circuit realised from the model with other devices (module docstring).

    Literal netlists only (devices driven by inputs cannot be folded into Norton sources).
    Subclasses give :meth:`_realise`, :meth:`linearise`, :meth:`_device_rules` and, for
    non-reciprocal devices, :meth:`_correction`.
    """

    form: str = "literal"

    def __post_init__(self):
        if self.form != "literal":
            raise ValueError(
                f"{type(self).__name__} needs form='literal': its devices sit where a folded "
                "netlist would put current sources"
            )
        super().__post_init__()

    def _compile(self, net: Network, phase: Phase, **options):
        if phase.kind not in ("free", "nudged"):
            raise ValueError(
                f"{type(self).__name__} solves free and nudged phases; the {phase.kind} phase "
                "needs the circuit's own Jacobian: use estimate_from_circuit "
                "(circuitep.estimators.estimate calls it)"
            )
        return super()._compile(net, phase, **options)

    def _unsolved(self, net, phase, u, y, x0, x, d) -> np.ndarray:
        """Samples with voltages not finite or beyond +-MAX_VOLTS.

        The model's KCL does not hold in this circuit: ngspice's own convergence test is the check.
        """
        return np.flatnonzero(~np.all(np.isfinite(x) & (np.abs(x) <= MAX_VOLTS), axis=1))

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

    def linearise(self, net: Network, inputs):
        """The free state and the devices' derivatives there (subclasses).

        Parameters
        ----------
        net : Network
            The model.
        inputs : array_like, shape (batch, n_inputs)
            Primary input voltages, V.

        Returns
        -------
        object
            With ``x0`` (V, ``(batch, n_free)``) and what :meth:`_correction` and
            :meth:`_device_rules` read.
        """
        raise NotImplementedError

    def _correction(self, compiled, lin, tables: dict) -> Section | None:
        """AEP's correction elements from ``lin``; None: reciprocal devices need none."""
        return None

    def _device_rules(self, net: Network, lin, s: np.ndarray, grads: dict) -> None:
        """Replace the model's rules in ``grads`` by the devices' own (subclasses)."""
        raise NotImplementedError

    def _nudged(self, net, u, targets, lin, beta: float, cost, corrected: bool):
        """One nudged phase at ``beta``, AEP-corrected from ``lin`` when ``corrected``."""
        compiled = self._compile(net, Phase("nudged", beta=beta, cost=cost))
        values = source_values(compiled, u, targets, lin.x0)
        tables = {s.name: values[:, k] for k, s in enumerate(compiled.sources)}
        netlist = compiled.netlist
        if corrected:
            section = self._correction(compiled, lin, tables)
            if section is not None:
                netlist = dataclasses.replace(netlist, sections=netlist.sections + (section,))
        what = f"{'AEP' if corrected else 'nudged'} phase at beta = {beta:g}"
        got = self._sweep_or_fail(netlist, tables, list(compiled.free_nodes), what, u.shape[0])
        x = np.stack([got[n] for n in compiled.free_nodes], axis=1)
        check_state(self.name, x, what)
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
        """AEP or VF on the simulated circuit, everything measured in ngspice (module docstring).

        Parameters
        ----------
        name : {"aep", "vf"}
            AEP (nudged with the circuit's own correction) or VF (plain nudge).
        net : Network
            The model; the circuit is its realisation (:meth:`_realise`).
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
                f"estimator {name!r} needs the numpy model's Jacobian, which this circuit of "
                f"devices does not have: {self.name} computes {CIRCUIT_ESTIMATORS} from the "
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
        self._device_rules(net, lin, s, grads)
        out = net.output_index()
        value = float(cost.value(lin.x0[:, out], y).mean())
        return lin.x0, s, grads, value


def check_state(engine: str, x: np.ndarray, what: str) -> None:
    """Refuse states ngspice returned that are no operating point (not finite, beyond MAX_VOLTS).

    Parameters
    ----------
    engine : str
        The engine's name, for the message.
    x : numpy.ndarray
        Free-node voltages, V, ``(batch, n_free)``.
    what : str
        The phase, for the message.
    """
    bad = np.flatnonzero(~np.all(np.isfinite(x) & (np.abs(x) <= MAX_VOLTS), axis=1))
    if bad.size:
        raise ConvergenceError(
            f"{engine}: {what}: what ngspice returned for sample(s) {bad[:10].tolist()} is no "
            f"operating point (voltages beyond +-{MAX_VOLTS:g} V)",
            samples=bad,
        )
