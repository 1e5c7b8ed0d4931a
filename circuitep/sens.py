"""ngspice's own gradients: DC sensitivities, and central finite differences of the cost.

A second, SPICE-native reference for the exact gradient, and the truth for circuits the numpy model
cannot describe (:func:`finite_difference_gradients`, any engine).

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
from circuitep.spec import WEIGHT_BOUNDS, Network


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


#: Relative step of :func:`finite_difference_gradients`: the central difference's truncation error
#: grows like step^2 (1e-8 relative at 1e-4) and ngspice's solution noise (~1e-12 V at reltol 1e-10
#: behind voltages of ~0.1 V) like 1/step (~1e-8 relative at 1e-4), so both stay far below the
#: 1e-6 the circuit-vs-model checks ask for.
FD_STEP = 1e-4


def finite_difference_gradients(
    net: Network,
    engine,
    inputs,
    targets,
    cost: Cost | None = None,
    *,
    step: float = FD_STEP,
    params: list[str] | None = None,
    elements: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Batch-mean ``dC/dtheta`` by central finite differences of the cost, solved by ``engine``.

    The truth for a circuit whatever its devices: every parameter element is moved by ``+-h`` (``h
    = step * max(|theta|, sigma)``, ``sigma`` the network's conductance scale in S, for biases
    ``sigma * 1 V`` in A) and the free phase solved again on the same batch; masked-out weights
    get 0. Costs ``2 x`` (number of parameters) free phases.

    Parameters
    ----------
    net : Network
        The circuit (:class:`circuitep.spec.Network`).
    engine : Engine
        Solves the free phase (an :class:`~circuitep.engines.ngspice_engine.NgspiceEngine` for
        ngspice's own gradient).
    inputs : numpy.ndarray
        Primary input voltages, V, ``(batch, n_inputs)``.
    targets : numpy.ndarray
        Targets, ``(batch, n_outputs)`` (V for squared error).
    cost : Cost
        The cost (:mod:`circuitep.costs`); ``None``: squared error.
    step : float
        Relative step (see :data:`FD_STEP`).
    params : list of str, optional
        Parameter names (:meth:`Network.params`) to differentiate; ``None``: all.
    elements : dict of str to numpy.ndarray, optional
        Boolean masks shaped like a parameter: only its elements marked True are differenced, the
        others get NaN (a sample of a large circuit's gradient); parameters not named: all.

    Returns
    -------
    dict of str to numpy.ndarray
        The gradients, shaped like :meth:`Network.params`.
    """
    cost = cost or SquaredError()
    if not (np.isfinite(step) and 0 < step < 0.1):
        raise ValueError(f"step = {step!r} must be in (0, 0.1)")
    inputs = np.asarray(inputs, dtype=float)
    targets = np.asarray(targets, dtype=float)
    out = net.output_index()
    sigma = net.conductance_scale()
    every = net.params()
    names = list(every) if params is None else list(params)
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise KeyError(f"unknown parameter(s) {unknown}; known: {sorted(every)}")
    masks = {c.name: c.mask for c in net.couplings}

    def value(theta: dict) -> float:
        x = engine.solve(net.with_params(theta), Phase(), inputs).x
        return float(cost.value(x[:, out], targets).mean())

    grads = {}
    for name in names:
        p = np.asarray(every[name], dtype=float)
        g = np.zeros(p.shape)
        mask = masks.get(name, np.ones(p.shape, bool))
        if elements is not None and name in elements:
            chosen = np.asarray(elements[name], dtype=bool)
            if chosen.shape != p.shape:
                raise ValueError(
                    f"elements[{name!r}] has shape {chosen.shape}, the parameter {p.shape}"
                )
            g[~chosen] = np.nan
            mask = mask & chosen
        for idx in zip(*np.nonzero(mask), strict=True):
            h = step * max(abs(p[idx]), sigma)
            up, down = p.copy(), p.copy()
            up[idx] += h
            down[idx] -= h
            if down[idx] < 0 <= p[idx] and not name.endswith(".bias") and not _signed(net, name):
                down[idx], h_down = p[idx], 0.0  # a conductance: forward difference at its bound
            else:
                h_down = h
            g[idx] = (value({name: up}) - value({name: down})) / (h + h_down)
        grads[name] = g
    return grads


def _signed(net: Network, name: str) -> bool:
    """Whether parameter ``name`` may be negative (transconductances)."""
    for c in net.couplings:
        if c.name == name:
            return not WEIGHT_BOUNDS[c.kind]["nonnegative"]
    return False


def sample_elements(net: Network, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A uniform random sample of ``n`` of a network's parameter elements, as boolean masks.

    What :func:`finite_difference_gradients` differences when every element would cost too many
    free phases (a transistor circuit: two per element).

    Parameters
    ----------
    net : Network
        The circuit; :meth:`Network.params` gives the elements.
    n : int
        Elements to choose, >= 1 (all of them when the network has fewer).
    seed : int
        Random seed.

    Returns
    -------
    dict of str to numpy.ndarray
        One boolean mask per parameter, shaped like it; ``n`` True in all.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n = {n!r} elements to sample must be a positive integer")
    params = net.params()
    sizes = [np.size(p) for p in params.values()]
    flat = np.zeros(sum(sizes), bool)
    flat[np.random.default_rng(seed).choice(flat.size, min(int(n), flat.size), replace=False)] = (
        True
    )
    masks, start = {}, 0
    for (name, p), size in zip(params.items(), sizes, strict=True):
        masks[name] = flat[start : start + size].reshape(np.shape(p))
        start += size
    return masks


def where_differenced(
    estimated: dict[str, np.ndarray], truth: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both gradients restricted to the elements the finite differences cover (finite there).

    Parameters
    ----------
    estimated : dict of str to numpy.ndarray
        A gradient, keyed like ``truth``.
    truth : dict of str to numpy.ndarray
        :func:`finite_difference_gradients`' answer, NaN where not differenced.

    Returns
    -------
    tuple of dict
        ``(estimated, truth)``, each value the 1-D array of the differenced elements.
    """
    chosen = {k: np.isfinite(np.asarray(v)) for k, v in truth.items()}
    return (
        {k: np.asarray(estimated[k])[m] for k, m in chosen.items()},
        {k: np.asarray(truth[k])[m] for k, m in chosen.items()},
    )
