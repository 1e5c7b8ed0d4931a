"""ngspice's own DC sensitivities as a second, SPICE-native reference for the exact gradient.

For each sample and each output node ``o``, ``sens v(o)`` gives ``d v_o / d p`` for every element
value ngspice knows: resistances, VCCS gains, source values. The cost gradient follows by the
chain rule, ``dC/dp = sum_o dC/dv_o d v_o / d p``, and conductances by ``dC/dg = -R^2 dC/dR``.
Saturating (behavioural) transconductors are not covered: their groups are left out.
"""

from __future__ import annotations

import numpy as np

from circuitep.compiler import compile_network
from circuitep.costs import Cost, SquaredError
from circuitep.elements.registry import kind as kind_of
from circuitep.engines.base import Phase
from circuitep.engines.ngspice_engine import NgspiceEngine
from circuitep.spec import Network


def sens_gradients(
    net: Network, engine: NgspiceEngine, inputs, targets, cost: Cost | None = None
) -> dict[str, np.ndarray]:
    """Batch-mean ``dC/dtheta`` from ngspice's ``.sens`` for every group it covers.

    ``engine`` must use the literal form (folded netlists have no per-weight elements for the input
    couplings). Returns arrays shaped like the entries of :meth:`Network.params`.

    Parameters
    ----------
    net : Network
        The validated network (:class:`circuitep.spec.Network`).
    engine : NgspiceEngine
        A literal-form ngspice engine.
    inputs : numpy.ndarray
        Primary input voltages, V, ``(batch, n_inputs)``.
    targets : numpy.ndarray
        Targets, ``(batch, n_outputs)`` (V for squared error); ``None`` for the free phase.
    cost : Cost
        The cost (:mod:`circuitep.costs`); ``None``: squared error.

    Returns
    -------
    dict of str to numpy.ndarray
        The gradients by parameter name.
    """
    if engine.form != "literal":
        raise ValueError(
            "ngspice sensitivities need the literal form: NgspiceEngine(form='literal')"
        )
    cost = cost or SquaredError()
    inputs = np.asarray(inputs, dtype=float)
    x = engine.solve(net, Phase(), inputs).x
    out = net.output_index()
    slope = cost.grad(x[:, out], np.asarray(targets, dtype=float))  # dC/dv_o, (batch, n_out)
    sens = engine.sensitivities(net, inputs)
    # batch mean of dC/d(element value)
    d_cost = {name: float((slope * s).sum(axis=1).mean()) for name, s in sens.items()}
    values = {
        el.name: el.value for el in compile_network(net, "free", "literal").netlist.elements()
    }

    def param(name: str) -> float:  # resistors are written by resistance R = 1/g
        return -(values[name] ** 2) * d_cost[name] if name.startswith("r") else d_cost[name]

    grads = {}
    for c in net.couplings:
        kind = kind_of(c)
        if kind.sens_name(c, 0, 0) is None:  # behavioural sources: not covered by .sens
            continue
        g = np.zeros(c.weight.shape)
        for i, j in np.argwhere(c.mask):
            name = kind.sens_name(c, i, j)
            if name in d_cost:  # a resistor of zero conductance is an open circuit: no element
                g[i, j] = param(name)
        grads[c.name] = g
    for grp in net.free_groups:
        grads[f"{grp.name}.bias"] = np.array([d_cost[f"ibias_{n}"] for n in grp.nodes()])
        grads[f"{grp.name}.leak"] = np.array(
            [param(f"rleak_{n}") if f"rleak_{n}" in d_cost else 0.0 for n in grp.nodes()]
        )
    return grads
