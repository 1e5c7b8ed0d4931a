"""What a designer reads off a circuit: power by element class, settling time, energy, ranges.

Pure functions of a :class:`~circuitep.spec.Network` and its states (issue 18). Powers are the
power each element class *absorbs* (W, positive: taken from the circuit), per sample, at a DC
operating point of a phase:

- ``leaks``: ``g_L v_i^2``; ``resistors``: ``g (v_i - v_j)^2`` of the resistive couplings;
- ``transconductors``: ``-I v_i``, a VCCS (or tanh transconductor) driving the current
  ``I = w f(v_j)`` into node ``i`` delivers its current times the voltage across its output;
- ``diodes``: ``I_d V_d`` of both clamp diodes; ``rails``: the clamp rail sources, ``I v_rail``
  for the current entering their ``+`` terminal;
- ``bias``: ``-b v_i`` of the bias current sources; ``inputs``: the input voltage sources
  (``-u_j`` times the current they drive into resistive couplings; a transconductor draws
  nothing from the node it senses);
- ``nudge``: ``beta (dC/dx_o) v_o`` (the nudge current ``-beta dC/dx_o`` into output ``o``);
- ``correction``: ``(K (x - x0))_i x_i`` of the AEP correction ``-K (x - x0)``. The compiler
  realises it by reversed transconductors plus currents ``K x0`` (DESIGN.md §2); the node
  currents, so the coupling and correction powers, are the same (``x.A x = x.A^T x``).

Capacitors absorb nothing at DC. By Tellegen's theorem the classes sum to zero at an operating
point: the ``dissipated`` power (leaks, resistors, diodes) equals the power ``supplied`` by the
active classes. Energy is dissipated power times settling time: a phase's settling time comes from
a transient (:func:`transient`: from rest for the free phase, from the free state for the nudged
ones) to a stated tolerance (:func:`settling_time`), with the spec's capacitances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from circuitep import kcl
from circuitep.devices import law_current
from circuitep.elements import diode_clamp
from circuitep.elements.registry import kind as kind_of
from circuitep.engines.base import Phase, capacitance, check_batch
from circuitep.engines.numpy_engine import phase_residual
from circuitep.spec import Network

POWER_CLASSES = (
    "leaks",
    "resistors",
    "transconductors",
    "diodes",
    "rails",
    "bias",
    "inputs",
    "nudge",
    "correction",
)
#: Classes that only dissipate (their power is >= 0 at any state).
PASSIVE = ("leaks", "resistors", "diodes")
#: Settling tolerance of the free phase (V): every node within 1 mV of its operating point.
SETTLE_TOL_V = 1e-3
#: Settling tolerance of a nudged phase, relative to its largest node displacement from the free
#: state: the learning signal is that displacement (about beta/leak of a volt), so an absolute
#: 1 mV would call a 1e-3 V nudge settled at once.
SETTLE_TOL_REL = 1e-2


def element_powers(
    net: Network,
    inputs,
    x: np.ndarray,
    phase: Phase | None = None,
    targets=None,
    x0: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Power absorbed by each class of :data:`POWER_CLASSES` at the states ``x`` of a phase.

    See the module docstring for the formula of each class.

    Parameters
    ----------
    net : Network
        The circuit.
    inputs : array_like, shape (batch, n_inputs)
        Primary input voltages in V.
    x : ndarray, shape (batch, n_free)
        Free-node voltages in V at an operating point of ``phase``.
    phase : Phase, optional
        Default the free phase; nudged phases need ``targets``, AEP ones ``x0``.
    targets : array_like, shape (batch, n_outputs), optional
        Targets of a nudged phase.
    x0 : ndarray, shape (batch, n_free), optional
        The free state in V, for the AEP correction.

    Returns
    -------
    dict of str to ndarray, shape (batch,)
        Absorbed power in W per class (positive: taken from the circuit).
    """
    phase = phase or Phase()
    u, y, x0 = check_batch(net, phase, inputs, targets, x0)
    x = np.asarray(x, dtype=float)
    batch = x.shape[0]
    p = {k: np.zeros(batch) for k in POWER_CLASSES}
    v = np.concatenate([u, x], axis=1)
    flat = net.slices()
    for link in kcl.links(net):
        c = link.coupling
        vd, vs = v[:, flat[c.dst]], v[:, flat[c.src]]
        p[link.kind.POWER_CLASS] += link.kind.power(c, vd, vs)
        if link.src_free is None:  # the input source's current flows into the coupling
            _, i_src = kcl.coupling_currents(link, vd, vs)
            if i_src is not None:
                p["inputs"] += (vs * i_src).sum(1)
    leak, bias, clamped, v_lo, v_hi = kcl._node_arrays(net)
    p["leaks"] += (leak * x * x).sum(1)
    p["bias"] -= (bias * x).sum(1)
    if clamped.any():
        diodes, rails = diode_clamp.power(
            x[:, clamped], v_lo[clamped], v_hi[clamped], diode_clamp.net_law(net)
        )
        p["diodes"] += diodes
        p["rails"] += rails
    if phase.nudged:
        out = net.output_index()
        p["nudge"] += (phase.beta * phase.cost.grad(x[:, out], y) * x[:, out]).sum(1)
    if phase.aep:
        k = kcl.correction_matrix(net, u, x0)
        p["correction"] += (np.einsum("bij,bj->bi", k, x - x0) * x).sum(1)
    return p


def power_summary(powers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dissipated and supplied power, and their balance, from :func:`element_powers`.

    Parameters
    ----------
    powers : dict of str to ndarray, shape (batch,)
        Absorbed power (W) per class of :data:`POWER_CLASSES`.

    Returns
    -------
    dict of str to ndarray, shape (batch,)
        ``dissipated`` (W, the passive classes), ``supplied`` (W, minus the active classes' absorbed
        power) and ``tellegen`` (W, the sum over every class: zero at an operating point).
    """
    dissipated = sum(powers[k] for k in PASSIVE)
    supplied = -sum(powers[k] for k in POWER_CLASSES if k not in PASSIVE)
    return {"dissipated": dissipated, "supplied": supplied, "tellegen": dissipated - supplied}


def ranges(net: Network, inputs, x: np.ndarray) -> dict:
    """Node-voltage range, largest device currents and the headroom to the clamp rails over a batch.

    Parameters
    ----------
    net : Network
        The circuit.
    inputs : array_like, shape (batch, n_inputs)
        Primary input voltages in V.
    x : ndarray, shape (batch, n_free)
        Free-node voltages in V.

    Returns
    -------
    dict
        ``node_min_v``, ``node_max_v``, ``input_min_v``, ``input_max_v`` (V); ``max_current_a``
        (A, by class: leaks, bias, resistors, transconductors, diodes); ``rail_headroom_v`` (V; the
        smallest distance of a clamped node to the nearer rail, negative beyond it; None without
        clamps).
    """
    u = net.expand_inputs(inputs)
    x = np.asarray(x, dtype=float)
    v = np.concatenate([u, x], axis=1)
    flat = net.slices()
    leak, bias, clamped, v_lo, v_hi = kcl._node_arrays(net)
    currents = {
        "leaks": float(np.abs(leak * x).max(initial=0)),
        "bias": float(np.abs(bias).max(initial=0)),
        "resistors": 0.0,
        "transconductors": 0.0,
        "diodes": 0.0,
    }
    for c in net.couplings:
        vd, vs = v[:, flat[c.dst]], v[:, flat[c.src]]
        kind = kind_of(c)
        currents[kind.POWER_CLASS] = max(currents[kind.POWER_CLASS], kind.max_current(c, vd, vs))
    headroom = None
    if clamped.any():
        xc = x[:, clamped]
        law = diode_clamp.net_law(net)
        i_up, _ = law_current(xc - v_hi[clamped], law)
        i_dn, _ = law_current(v_lo[clamped] - xc, law)
        currents["diodes"] = float(max(np.abs(i_up).max(), np.abs(i_dn).max()))
        headroom = float(np.minimum(v_hi[clamped] - xc, xc - v_lo[clamped]).min())
    return {
        "node_min_v": float(x.min()),
        "node_max_v": float(x.max()),
        "input_min_v": float(u.min()),
        "input_max_v": float(u.max()),
        "max_current_a": currents,
        "rail_headroom_v": headroom,
    }


def default_t_stop(net: Network) -> float:
    """Transient length: 200 of the slowest node time constants ``C / G_leak``.

    As :meth:`circuitep.engines.ngspice_engine.NgspiceEngine.settle`; a leak below 1e-12 S counts
    as 1e-12 S.

    Parameters
    ----------
    net : Network
        The circuit.

    Returns
    -------
    float
        In s.
    """
    leak = np.concatenate([g.leak for g in net.free_groups])
    return 200 * float(np.max(capacitance(net) / np.maximum(leak, 1e-12)))


@dataclass(frozen=True)
class Transient:
    """A settling transient of one sample.

    Times ``t`` (s, starting at 0) and free-node voltages ``x`` (len(t), n_free) V, by ``engine``.
    """

    t: np.ndarray
    x: np.ndarray
    engine: str


def _check_no_diode_charge(net: Network) -> None:
    """Refuse a numpy transient of clamps whose card gives junction or diffusion charge.

    The numpy transients integrate the node capacitances only; CJO, VJ, M, FC and TT act in
    ngspice's transients (:func:`ngspice_transients`), so a numpy transient would silently differ.
    """
    charge = [k for k in diode_clamp.CHARGE_PARAMS if getattr(net.diode, k) is not None]
    if charge and any(g.clamp is not None for g in net.free_groups):
        raise ValueError(
            f"network {net.name!r}: the diode card gives {', '.join(charge)}, the diodes' charge, "
            "which the numpy transients do not model (they integrate the node capacitances only; "
            "the DC operating points are unaffected): use ngspice's transients, or leave the "
            "charge parameters out"
        )


def transient(
    net: Network,
    inputs,
    x_start: np.ndarray,
    phase: Phase | None = None,
    targets=None,
    x0: np.ndarray | None = None,
    t_stop: float | None = None,
    points: int = 4000,
    rtol: float = 1e-7,
    atol: float = 1e-12,
) -> Transient:
    """Integrate ``C dx/dt = F(x)`` for one sample with scipy's Radau method.

    Radau is implicit, for the stiff diode clamps, and is given the phase's exact Jacobian. The
    result is sampled on times spaced logarithmically from ``t_stop / 1e6`` (settling spans
    decades), plus ``t = 0``.

    Parameters
    ----------
    net : Network
        The circuit.
    inputs : array_like, shape (n_inputs,)
        Primary input voltages (V) of one sample.
    x_start : ndarray, shape (n_free,)
        Initial node voltages in V.
    phase : Phase, optional
        Default the free phase; the dyadic phase is not supported.
    targets : array_like, shape (n_outputs,), optional
        Targets of a nudged phase.
    x0 : ndarray, shape (n_free,), optional
        The free state in V, for the AEP correction.
    t_stop : float, optional
        End time in s; default :func:`default_t_stop`.
    points : int
        Number of logarithmically spaced output times.
    rtol, atol : float
        Integrator tolerances (relative; absolute in V).

    Returns
    -------
    Transient
        ``t`` of shape ``(points + 1,)`` in s and ``x`` of shape ``(points + 1, n_free)`` in V,
        ``engine="numpy"``.

    Raises
    ------
    ValueError
        When the integration fails (the message names the network and phase).
    """
    phase = phase or Phase()
    _check_no_diode_charge(net)
    inputs = np.asarray(inputs, dtype=float)[None]
    u, y, x0b = check_batch(
        net,
        phase,
        inputs,
        None if targets is None else np.asarray(targets)[None],
        None if x0 is None else np.asarray(x0)[None],
    )
    k = kcl.correction_matrix(net, u, x0b) if phase.aep else None
    cap = capacitance(net)
    t_stop = t_stop or default_t_stop(net)

    def fun(_, xx):
        return phase_residual(net, phase, u, xx[None], y, x0b, k, jacobian=False)[0][0] / cap

    def jac(_, xx):
        return phase_residual(net, phase, u, xx[None], y, x0b, k)[1][0] / cap[:, None]

    sol = solve_ivp(
        fun,
        (0.0, t_stop),
        np.asarray(x_start, dtype=float),
        method="Radau",
        jac=jac,
        rtol=rtol,
        atol=atol,
        dense_output=True,
    )
    if not sol.success:
        raise ValueError(
            f"network {net.name!r}, phase {phase.label}: the numpy transient failed ({sol.message})"
        )
    t = np.concatenate([[0.0], np.geomspace(t_stop * 1e-6, t_stop, points)])
    return Transient(t, sol.sol(t).T, "numpy")


def linear_transient(
    net: Network,
    inputs,
    x_start: np.ndarray,
    phase: Phase | None = None,
    targets=None,
    x0: np.ndarray | None = None,
    t_stop: float | None = None,
    points: int = 1000,
) -> Transient:
    """:func:`transient` of the phase linearised at its end, in closed form.

    The end ``x_f`` is found by Newton's method from ``x_start``; then
    ``C dx/dt = J(x_f) (x - x_f)`` is solved by the eigenvectors of ``C^-1 J``. For a nudged phase
    started from the free state the displacement is about beta / leak volts, so this is its
    transient to first order in beta, for one eigen-decomposition instead of an implicit
    integration (what the per-epoch training metrics use).

    Parameters
    ----------
    net : Network
        The circuit.
    inputs : array_like, shape (n_inputs,)
        Primary input voltages (V) of one sample.
    x_start : ndarray, shape (n_free,)
        Initial node voltages in V.
    phase : Phase, optional
        Default the free phase; the dyadic phase is not supported.
    targets : array_like, shape (n_outputs,), optional
        Targets of a nudged phase.
    x0 : ndarray, shape (n_free,), optional
        The free state in V, for the AEP correction.
    t_stop : float, optional
        End time in s; default :func:`default_t_stop`.
    points : int
        Number of logarithmically spaced output times.

    Returns
    -------
    Transient
        ``t`` of shape ``(points + 1,)`` in s and ``x`` of shape ``(points + 1, n_free)`` in V,
        ``engine="numpy-linear"``.
    """
    phase = phase or Phase()
    _check_no_diode_charge(net)
    inputs = np.asarray(inputs, dtype=float)[None]
    u, y, x0b = check_batch(
        net,
        phase,
        inputs,
        None if targets is None else np.asarray(targets)[None],
        None if x0 is None else np.asarray(x0)[None],
    )
    k = kcl.correction_matrix(net, u, x0b) if phase.aep else None
    start = np.asarray(x_start, dtype=float)
    end = start.copy()
    for _ in range(50):
        f, jac = phase_residual(net, phase, u, end[None], y, x0b, k)
        step = np.linalg.solve(jac[0], -f[0])
        end += step
        if np.abs(step).max() <= 1e-15:
            break
    jac = phase_residual(net, phase, u, end[None], y, x0b, k)[1][0]
    lam, vec = np.linalg.eig(jac / capacitance(net)[:, None])
    coef = np.linalg.solve(vec, (start - end).astype(complex))
    t_stop = t_stop or default_t_stop(net)
    t = np.concatenate([[0.0], np.geomspace(t_stop * 1e-6, t_stop, points)])
    with np.errstate(under="ignore"):
        decay = (vec @ (np.exp(lam[:, None] * t[None, :]) * coef[:, None])).real
    return Transient(t, end[None] + decay.T, "numpy-linear")


def ngspice_transients(engine):
    """A ``transients`` function for :func:`sample_report` that runs ngspice's own transient.

    Parameters
    ----------
    engine : NgspiceEngine
        The engine whose :meth:`~circuitep.engines.ngspice_engine.NgspiceEngine.transient`
        (10,000 steps) is run.

    Returns
    -------
    callable
        ``run(net, inputs, x_start, phase, targets, x0, t_stop) -> Transient`` with one sample's
        arrays as in :func:`transient`, ``engine="ngspice"``.
    """

    def run(net, inputs, x_start, phase, targets, x0, t_stop):
        t, x = engine.transient(
            net,
            phase or Phase(),
            np.asarray(inputs)[None],
            None if targets is None else np.asarray(targets)[None],
            None if x0 is None else np.asarray(x0)[None],
            x_start,
            t_stop,
        )
        return Transient(t, x, "ngspice")

    return run


def settling_time(tr: Transient, final: np.ndarray, tol: float) -> float:
    """The last time any node is farther than ``tol`` from ``final``.

    Linearly interpolated between samples of the transient.

    Parameters
    ----------
    tr : Transient
        The transient (``t`` in s, ``x`` of shape (n_t, n_free) in V).
    final : ndarray, shape (n_free,)
        The operating point in V.
    tol : float
        Tolerance in V.

    Returns
    -------
    float
        In s; 0 if it starts within ``tol``, ``inf`` if it is still out at the end (it did not
        settle there).
    """
    dev = np.abs(tr.x - np.asarray(final)[None]).max(axis=1)
    out = np.flatnonzero(dev > tol)
    if out.size == 0:
        return 0.0
    k = out[-1]
    if k == len(dev) - 1:
        return float("inf")
    frac = (dev[k] - tol) / (dev[k] - dev[k + 1])
    return float(tr.t[k] + frac * (tr.t[k + 1] - tr.t[k]))


def phase_report(
    net: Network,
    inputs,
    x: np.ndarray,
    phase: Phase | None = None,
    targets=None,
    x0: np.ndarray | None = None,
) -> dict:
    """Powers by class, their summary and the ranges at the states of one phase, as JSON-ready data.

    Parameters
    ----------
    net : Network
        The circuit.
    inputs : array_like, shape (batch, n_inputs)
        Primary input voltages in V.
    x : ndarray, shape (batch, n_free)
        Free-node voltages in V at an operating point of ``phase``.
    phase : Phase, optional
        Default the free phase; nudged phases need ``targets``, AEP ones ``x0``.
    targets : array_like, shape (batch, n_outputs), optional
        Targets of a nudged phase.
    x0 : ndarray, shape (batch, n_free), optional
        The free state in V, for the AEP correction.

    Returns
    -------
    dict
        ``phase`` (label), ``samples``, ``power_w`` (W by class, batch means), ``dissipated_w``,
        ``supplied_w`` (W, batch means), ``tellegen_w`` (W, largest over the batch) and ``ranges``
        (:func:`ranges`).
    """
    powers = element_powers(net, inputs, x, phase, targets, x0)
    summary = power_summary(powers)
    return {
        "phase": (phase or Phase()).label,
        "samples": int(len(x)),
        "power_w": {k: float(v.mean()) for k, v in powers.items()},
        "dissipated_w": float(summary["dissipated"].mean()),
        "supplied_w": float(summary["supplied"].mean()),
        "tellegen_w": float(np.abs(summary["tellegen"]).max()),
        "ranges": ranges(net, inputs, x),
    }


def training_phases(algorithm: str, beta: float, cost) -> list[Phase]:
    """The nudged phases one training sample needs besides the free one.

    Parameters
    ----------
    algorithm : str
        ``aep``, ``vf`` and ``ep``: centred (``+beta`` and ``-beta``); ``exact``: none (the exact
        gradient is computed, not settled); ``dyadic``: none reported (the doubled circuit;
        :func:`transient` solves single circuits).
    beta : float
        Nudge strength (S for squared error, A V for cross-entropy).
    cost : Cost
        The training cost.

    Returns
    -------
    list of Phase
    """
    if algorithm in ("aep", "vf", "ep"):
        kind = "aep" if algorithm == "aep" else "nudged"
        return [Phase(kind, b, cost=cost) for b in (beta, -beta)]
    return []


def sample_report(
    net: Network,
    engine,
    inputs,
    targets,
    *,
    beta: float,
    cost,
    algorithm: str = "aep",
    tol_v: float = SETTLE_TOL_V,
    tol_rel: float = SETTLE_TOL_REL,
    transients=None,
    nudged_transients=None,
) -> dict:
    """Physical report of one training sample: power, settling time and energy per phase.

    Per phase the power by class, the settling time (free phase from rest to ``tol_v``, nudged
    ones from the free state to ``tol_rel`` of their displacement) and the energy (dissipated
    power times settling time); without ``targets`` only the free phase. States come from
    ``engine``.

    Parameters
    ----------
    net : Network
        The circuit.
    engine : Engine
        Solves the operating points.
    inputs : array_like, shape (n_inputs,)
        Primary input voltages (V) of the sample.
    targets : array_like, shape (n_outputs,), or None
        Its targets; None reports the free phase only.
    beta : float
        Nudge strength (S for squared error, A V for cross-entropy).
    cost : Cost
        The training cost.
    algorithm : str
        Chooses the nudged phases (:func:`training_phases`).
    tol_v : float
        Settling tolerance (V) of the free phase.
    tol_rel : float
        Settling tolerance of the nudged phases, relative to their largest displacement.
    transients : callable, optional
        ``transients(net, inputs, x_start, phase, targets, x0, t_stop)`` runs the transients
        (default :func:`transient`, numpy; :func:`ngspice_transients` for ngspice's).
    nudged_transients : callable, optional
        Those of the nudged phases (default the same; :func:`linear_transient` is the cheap one).

    Returns
    -------
    dict
        ``engine``, ``algorithm``, ``beta``, ``phases`` (:func:`phase_report` plus
        ``settle_tol_v``, ``start``, ``engine_transient``, ``settling_time_s`` (s) and ``energy_j``
        (J) each), ``energy_per_inference_j`` and ``latency_inference_s`` (the free phase),
        ``energy_per_training_sample_j`` and ``latency_training_sample_s`` (all phases).
    """
    run = transients or transient
    run_nudged = nudged_transients or run
    u = np.asarray(inputs, dtype=float)[None]
    y = None if targets is None else np.asarray(targets, dtype=float)[None]
    free = engine.solve(net, Phase(), u).x
    t_stop = default_t_stop(net)
    tr = run(net, u[0], np.zeros(net.n_free), Phase(), None, None, t_stop)
    phases = [
        dict(
            phase_report(net, u, free),
            settle_tol_v=tol_v,
            start="rest",
            engine_transient=tr.engine,
            settling_time_s=settling_time(tr, free[0], tol_v),
        )
    ]
    for ph in training_phases(algorithm, beta, cost) if y is not None else []:
        x = engine.solve(net, ph, u, y, x0=free if ph.aep else None, x_init=free).x
        tol = tol_rel * float(np.abs(x[0] - free[0]).max())
        tr = run_nudged(net, u[0], free[0], ph, y[0], free[0] if ph.aep else None, t_stop)
        phases.append(
            dict(
                phase_report(net, u, x, ph, y, free if ph.aep else None),
                settle_tol_v=tol,
                start="free state",
                engine_transient=tr.engine,
                settling_time_s=settling_time(tr, x[0], tol),
            )
        )
    for p in phases:
        p["energy_j"] = p["dissipated_w"] * p["settling_time_s"]
    return {
        "engine": engine.name,
        "algorithm": algorithm,
        "beta": float(beta),
        "phases": phases,
        "energy_per_inference_j": phases[0]["energy_j"],
        "latency_inference_s": phases[0]["settling_time_s"],
        "energy_per_training_sample_j": sum(p["energy_j"] for p in phases),
        "latency_training_sample_s": sum(p["settling_time_s"] for p in phases),
    }


def si(value: float | None, unit: str) -> str:
    """A value with an SI prefix for printing (``3.49e-4, "W"`` -> ``349 uW``).

    Parameters
    ----------
    value : float or None
        The value; None and non-finite values are printed as they are.
    unit : str
        The unit symbol.

    Returns
    -------
    str
        Three significant digits, prefixes f .. M.
    """
    if value is None or not np.isfinite(value):
        return f"{value} {unit}"
    if value == 0:
        return f"0 {unit}"
    exp = int(np.clip(np.floor(np.log10(abs(value)) / 3), -5, 2))
    return f"{value / 10 ** (3 * exp):.3g} {'fpnum kM'[exp + 5].strip()}{unit}"


def summary_lines(rep: dict) -> list[str]:
    """A few printable lines of a :func:`sample_report`.

    Parameters
    ----------
    rep : dict
        A :func:`sample_report` result.

    Returns
    -------
    list of str
    """
    free = rep["phases"][0]
    classes = ", ".join(f"{k} {si(v, 'W')}" for k, v in free["power_w"].items() if v != 0)
    r = free["ranges"]
    room = "none (no clamps)" if r["rail_headroom_v"] is None else f"{r['rail_headroom_v']:.3f} V"
    currents = ", ".join(f"{k} {si(v, 'A')}" for k, v in r["max_current_a"].items() if v)
    lines = [
        f"power, free phase: dissipated {si(free['dissipated_w'], 'W')} = supplied "
        f"{si(free['supplied_w'], 'W')} (Tellegen residual {free['tellegen_w']:.1e} W); "
        f"absorbed by class: {classes}",
        f"settling, free phase from rest to {si(free['settle_tol_v'], 'V')} "
        f"({free['engine_transient']} transient): {si(free['settling_time_s'], 's')}; "
        f"energy per inference {si(rep['energy_per_inference_j'], 'J')}",
        f"ranges: nodes {r['node_min_v']:.3f} .. {r['node_max_v']:.3f} V, headroom to the "
        f"clamp rails {room}; largest currents: {currents}",
    ]
    if len(rep["phases"]) > 1:
        nudged = ", ".join(
            f"{p['phase']} {si(p['settling_time_s'], 's')}" for p in rep["phases"][1:]
        )
        lines.append(
            f"training sample ({rep['algorithm']}, beta {rep['beta']:g}): nudged phases "
            f"from the free state to {SETTLE_TOL_REL:g} of their displacement: {nudged}; "
            f"energy per training sample {si(rep['energy_per_training_sample_j'], 'J')}, "
            f"latency {si(rep['latency_training_sample_s'], 's')}"
        )
    return lines
