"""Train a circuit end to end: mini-batches, a gradient estimator, SGD, conductance constraints.

Engine-agnostic: the same loop drives the numpy engine and ngspice (where new element values are
``alter``-ed into the loaded circuits). Parameters are updated in units of the network's natural
scale (DESIGN.md §1): a conductance or transconductance ``theta`` (S) is stepped as
``theta -= lr * sigma^2 * dC/dtheta`` with ``sigma`` the median leak conductance, a bias current
with ``sigma`` = leak x 1 V, so the learning rate is dimensionless whatever the circuit's units.

Everything a run needs to continue is in its checkpoint (parameters, momentum, epoch, metrics);
the sample order of epoch ``e`` comes from ``seed`` and ``e`` alone, so a resumed run reproduces
an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from circuitep.checks import is_bool, is_integer, is_number, plain_float, plain_int
from circuitep.costs import make_cost
from circuitep.datasets import Dataset, inputs_to_voltages, labels_to_targets
from circuitep.elements.registry import kind as kind_of
from circuitep.engines.base import ConvergenceError, Engine, Phase
from circuitep.estimators import compare, estimate
from circuitep.fileio import atomic_path, open_regular
from circuitep.gradcheck import asymmetry, transconductor_pairs
from circuitep.report import linear_transient, phase_report, sample_report, transient
from circuitep.sens import finite_difference_gradients, sample_elements, where_differenced
from circuitep.spec import MAX_AMPS, MAX_SIEMENS, MAX_VOLTS, MIN_SIEMENS, Network
from circuitep.variation import (
    Draw,
    Storage,
    Written,
    draw,
    program,
    variation_from_dict,
)

#: Training algorithms: the gradient estimators of :mod:`circuitep.estimators` by their names there
#: (``exact`` is the exact adjoint gradient, i.e. backpropagation through the circuit's equations).
ALGORITHMS = ("aep", "ep", "vf", "dyadic", "exact")
#: Other names accepted for an algorithm, stored as the name they stand for: ``bp`` (what the CLI,
#: the experiment configs and the committed results call the exact gradient) is ``exact``.
ALGORITHM_ALIASES = {"bp": "exact"}
#: Smallest trained leak, relative to the natural scale: a leak of 0 would leave a node fed only by
#: transconductors without a DC path to ground (no operating point; the spec refuses it).
LEAK_FLOOR = 1e-3
LR_SCHEDULES = ("constant", "cosine")
#: Samples in a row (whole batches, at least one) without an operating point after which training
#: stops as diverged: with no converged sample there is no update, so the parameters stay where no
#: sample converges and skipping would go on for the rest of the run.
DIVERGED_AFTER = 100


class TrainingDiverged(RuntimeError):
    """Whole batches in a row had no sample with an operating point (see :data:`DIVERGED_AFTER`).

    ``epoch`` is the epoch being trained (1-based), ``batch`` the batch index within it,
    ``failures`` the non-converged samples of the run up to there (the state's count plus this
    epoch's).
    """

    def __init__(self, message: str, epoch: int, batch: int, failures: int = 0):
        super().__init__(message)
        self.epoch, self.batch, self.failures = epoch, batch, failures


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a run (all plain data, saved as ``config.json``).

    ``lr``: dimensionless learning rate (see module docstring); ``lr_groups`` overrides it per
    parameter group (``{"fwd1": 0.05}``). ``lr_schedule``: ``constant``, or ``cosine`` (the rate
    falls from ``lr`` to 0 over the ``epochs`` as ``(1 + cos(pi t)) / 2``, ``t`` the fraction of
    the run done, batch by batch: the last epochs then average out SGD's noise instead of
    sampling it). ``beta_rel``: the nudge beta in units of the natural
    scale (beta = beta_rel x median leak, S). ``train_leak``: also learn leak
    conductances. ``g_bounds``: resistor conductances kept in ``[g_min, g_max]`` (S, relative to
    the natural scale); ``w_max``: transconductances kept within ``+-w_max`` (relative);
    ``levels``: the circuit stores each weight as one of this many levels (None: analog), over
    each coupling's own range (``levels_range = "own"``: its largest ``|w|`` at the start times
    ``headroom``) or over ``g_bounds`` / ``w_max`` (``"bounds"``); ``program_noise`` is a write's
    error in level steps (rms). With ``shadow`` the controller keeps high-precision weights and
    writes them quantised after every update; without, the stored levels are the weights (an
    update smaller than half a step is lost unless ``stochastic_rounding``). ``variation``: the
    circuit differs from the model by a declared variation (the JSON of
    :meth:`circuitep.variation.Variation.describe`, without storage), one draw of seed
    ``variation_seed`` kept fixed for the run (DESIGN.md §7): the learning signal comes from the
    circuit's states and the updates go to the model and, through the same devices, to the
    circuit. ``correction``: where AEP's correction comes from, ``model`` (the controller's model,
    realised by correction elements with the variation's errors) or ``circuit`` (the circuit's
    own, exact: reversed transconductors).
    ``on_failure``: what a non-converging sample does, ``skip`` (counted) or ``stop``.
    ``eval_train_samples``: measure the per-epoch train accuracy on the first N training samples
    (None: all of them). ``fd_elements``: for an engine that measures its circuit (transistor
    OTAs, Verilog-A devices), the gradient cosine's truth (ngspice's finite differences, two free
    phases of the probe batch per element) covers a fixed random sample of that many parameter
    elements (:func:`circuitep.sens.sample_elements`; None: all). ``algorithm``: one of
    :data:`ALGORITHMS`, or an alias of :data:`ALGORITHM_ALIASES` (``bp``), stored as the name it
    stands for (``exact``).
    """

    algorithm: str = "aep"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.05
    lr_groups: dict = field(default_factory=dict)
    lr_schedule: str = "constant"
    momentum: float = 0.9
    beta_rel: float = 1e-2
    centered: bool = True
    cost: str = "mse"
    tau: float = 0.1
    train_leak: bool = False
    g_bounds: tuple[float, float] = (0.0, 10.0)
    w_max: float = 10.0
    levels: int | None = None
    levels_range: str = "own"
    headroom: float = 2.0
    shadow: bool = True
    stochastic_rounding: bool = False
    program_noise: float = 0.0
    variation: dict | None = None
    variation_seed: int = 0
    correction: str = "model"
    seed: int = 0
    probe_size: int = 32
    v_on: float = 1.0
    v_off: float = 0.0
    on_failure: str = "skip"
    eval_train_samples: int | None = None
    fd_elements: int | None = None

    def __post_init__(self):
        def put(key, value):  # store the plain value: config.json and equality on resume
            object.__setattr__(self, key, value)

        def number(key, value, ok, message):  # a plain float if ``ok`` of it, else refuse
            if not is_number(value) or not ok(plain_float(key, value)):
                raise ValueError(f"{key} = {value!r} {message}")
            return plain_float(key, value)

        def choice(key, value, choices, message):
            if not isinstance(value, str) or str.__str__(value) not in choices:
                raise ValueError(message)
            put(key, str.__str__(value))

        for key in ("centered", "train_leak", "shadow", "stochastic_rounding"):
            if not is_bool(getattr(self, key)):
                raise ValueError(f"{key} = {getattr(self, key)!r} must be True or False")
            put(key, bool(getattr(self, key)))
        if not is_integer(self.seed) or not 0 <= plain_int(self.seed) < 2**32:
            raise ValueError(f"seed = {self.seed!r} must be an integer in 0 .. 2**32 - 1")
        put("seed", plain_int(self.seed))
        if not is_integer(self.variation_seed) or not 0 <= plain_int(self.variation_seed) < 2**32:
            raise ValueError(
                f"variation_seed = {self.variation_seed!r} must be an integer in 0 .. 2**32 - 1"
            )
        put("variation_seed", plain_int(self.variation_seed))
        choice(
            "levels_range",
            self.levels_range,
            ("own", "bounds"),
            f"levels_range = {self.levels_range!r} must be 'own' or 'bounds'",
        )
        choice(
            "correction",
            self.correction,
            ("model", "circuit"),
            f"correction = {self.correction!r} must be 'model' or 'circuit'",
        )
        put(
            "headroom",
            number("headroom", self.headroom, lambda v: 0 < v < np.inf, "must be positive"),
        )
        put(
            "program_noise",
            number(
                "program_noise",
                self.program_noise,
                lambda v: 0 <= v < np.inf,
                "must be a finite number >= 0 (level steps rms)",
            ),
        )
        if self.variation is not None:
            variation = variation_from_dict(self.variation)
            if variation.storage is not None:
                raise ValueError(
                    "variation.storage: the stored weights are set by levels, levels_range, "
                    "headroom, g_bounds, w_max, program_noise and stochastic_rounding"
                )
            put("variation", variation.describe())
        if not isinstance(self.g_bounds, (tuple, list)) or len(self.g_bounds) != 2:
            raise ValueError(f"g_bounds = {self.g_bounds!r} must be a pair (g_min, g_max)")
        if not all(is_number(b) for b in self.g_bounds):
            raise ValueError(
                f"g_bounds = {self.g_bounds!r} must be a pair of numbers (g_min, g_max)"
            )
        # a tuple: a list would not compare equal on resume
        put("g_bounds", tuple(plain_float("g_bounds", b) for b in self.g_bounds))
        if isinstance(self.algorithm, str) and str.__str__(self.algorithm) in ALGORITHM_ALIASES:
            put("algorithm", ALGORITHM_ALIASES[str.__str__(self.algorithm)])
        choice(
            "algorithm",
            self.algorithm,
            ALGORITHMS,
            f"algorithm {self.algorithm!r} is not one of {ALGORITHMS} (or the alias 'bp' of "
            "'exact')",
        )
        for key in ("lr", "beta_rel", "tau"):
            put(
                key,
                number(
                    key,
                    getattr(self, key),
                    lambda v: 0 < v < np.inf,
                    "must be a positive finite number",
                ),
            )
        if not isinstance(self.lr_groups, dict):
            raise ValueError(
                f"lr_groups = {self.lr_groups!r} must be a dict of parameter group names to rates"
            )
        groups = {}
        for key, v in self.lr_groups.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"lr_groups keys must be parameter group names (strings), got {key!r}"
                )
            groups[str.__str__(key)] = number(
                f"lr_groups[{key!r}]",
                v,
                lambda x: 0 <= x < np.inf,
                "must be a non-negative finite number",
            )
        put("lr_groups", groups)
        for key in ("epochs", "batch_size", "probe_size"):
            v = getattr(self, key)
            if not is_integer(v) or plain_int(v) < 1:
                raise ValueError(f"{key} = {v!r} must be a positive integer")
            put(key, plain_int(v))
        choice(
            "lr_schedule",
            self.lr_schedule,
            LR_SCHEDULES,
            f"lr_schedule = {self.lr_schedule!r} is not one of {LR_SCHEDULES}",
        )
        put(
            "momentum", number("momentum", self.momentum, lambda v: 0 <= v < 1, "must be in [0, 1)")
        )
        choice(
            "on_failure",
            self.on_failure,
            ("skip", "stop"),
            f"on_failure = {self.on_failure!r} must be 'skip' or 'stop'",
        )
        for key in ("eval_train_samples", "fd_elements"):
            v = getattr(self, key)
            if v is not None:
                if not is_integer(v) or plain_int(v) < 1:
                    raise ValueError(f"{key} = {v!r} must be a positive integer or None")
                put(key, plain_int(v))
        if self.levels is not None:
            if not is_integer(self.levels) or plain_int(self.levels) < 2:
                raise ValueError(f"levels = {self.levels!r} must be an integer >= 2 or None")
            put("levels", plain_int(self.levels))
        for key in ("v_on", "v_off"):
            put(
                key,
                number(
                    key,
                    getattr(self, key),
                    lambda v: abs(v) <= MAX_VOLTS,
                    f"must be a target voltage within +-{MAX_VOLTS:g} V",
                ),
            )
        if not self.v_off < self.v_on:
            raise ValueError(
                f"v_on = {self.v_on} must be above v_off = {self.v_off}: the predicted class is "
                "the output with the highest voltage"
            )
        if self.cost == "xent" and self.v_off < 0:  # (v_off < v_on is checked above)
            raise ValueError(
                "cross-entropy targets are probabilities: need 0 <= v_off < v_on, got "
                f"v_off = {self.v_off}, v_on = {self.v_on}"
            )
        lo, hi = self.g_bounds
        if not 0 <= lo < hi < np.inf:
            raise ValueError(f"g_bounds = {self.g_bounds!r} needs 0 <= g_min < g_max < inf")
        put(
            "w_max",
            number("w_max", self.w_max, lambda v: 0 < v < np.inf, "must be positive and finite"),
        )
        if isinstance(self.cost, str):
            put("cost", str.__str__(self.cost))
        make_cost(self.cost, self.tau)


def natural_scale(net: Network) -> float:
    """The network's conductance scale ``sigma``, see :meth:`Network.conductance_scale`.

    Parameters
    ----------
    net : Network
        The circuit.

    Returns
    -------
    float
        In S (the median leak conductance).
    """
    return net.conductance_scale()


@dataclass(frozen=True)
class TrainState:
    """Everything a run needs to continue.

    Parameters, momentum buffers, epochs done, metrics, and ``failures``, the non-converged samples
    skipped so far in the run (training batches, accuracy and probe evaluations under ``on_failure =
    "skip"``); ``written``, what the circuit's weight storage holds
    (:class:`circuitep.variation.Written`; ``None`` until the first update, or without storage
    limits). The step functions take a state and return a new one; :class:`Trainer` keeps none
    between calls.
    """

    params: dict[str, np.ndarray]
    velocity: dict[str, np.ndarray]
    epoch: int
    records: tuple[dict, ...] = ()
    failures: int = 0
    written: Written | None = None


def trainable(net: Network, config: TrainConfig) -> list[str]:
    """Names of the parameter groups training updates.

    Every one but the leaks, unless ``config.train_leak``.

    Parameters
    ----------
    net : Network
        The circuit.
    config : TrainConfig
        The training configuration.

    Returns
    -------
    list of str
        Keys of :meth:`Network.params`, in its order.
    """
    return [k for k in net.params() if config.train_leak or not k.endswith(".leak")]


def init_state(net: Network, config: TrainConfig) -> TrainState:
    """The state of a new run: the network's parameters (copied), zero momentum, epoch 0.

    Parameters
    ----------
    net : Network
        The circuit.
    config : TrainConfig
        The training configuration.

    Returns
    -------
    TrainState
    """
    params = {k: np.array(v) for k, v in net.params().items()}
    return TrainState(params, {k: np.zeros_like(params[k]) for k in trainable(net, config)}, 0)


def constrain(
    net: Network, params: dict[str, np.ndarray], config: TrainConfig, sigma: float | None = None
) -> dict[str, np.ndarray]:
    """Keep every parameter physical.

    Resistor conductances within ``g_bounds``, transconductances within ``+-w_max``, leaks (when
    trained) within ``[max(g_min, LEAK_FLOOR), g_max]``. (Levels are the circuit's storage:
    :meth:`Trainer.circuit`.)
    Bounds are relative to ``sigma``; training passes the initial network's, so that trained leaks
    cannot move their own bounds. The spec's own bounds (S) hold too: couplings within
    ``+-spec.MAX_SIEMENS``, resistors below ``spec.MIN_SIEMENS`` removed (0 S), leaks at least
    ``spec.MIN_SIEMENS``, bias currents within ``+-spec.MAX_AMPS``; masked weights are 0.

    Parameters
    ----------
    net : Network
        The circuit (its couplings' kinds and masks, its groups).
    params : dict of str to ndarray
        Parameters by group name (S for conductances, A for biases), shapes as
        :meth:`Network.params`.
    config : TrainConfig
        Gives ``g_bounds``, ``w_max`` and ``train_leak``.
    sigma : float, optional
        The natural scale in S (default :func:`natural_scale` of ``net``).

    Returns
    -------
    dict of str to ndarray
        A new dict; groups not constrained are passed through.
    """
    sigma = natural_scale(net) if sigma is None else sigma
    out = dict(params)
    for c in net.couplings:
        if c.name not in out:
            continue
        conductance = kind_of(c).WEIGHT.nonnegative  # a conductance (resistor), else signed
        lo, hi = (
            (config.g_bounds[0] * sigma, config.g_bounds[1] * sigma)
            if conductance
            else (-config.w_max * sigma, config.w_max * sigma)
        )
        lo, hi = max(lo, -MAX_SIEMENS), min(hi, MAX_SIEMENS)  # the spec's own bounds
        w = np.clip(out[c.name], lo, hi)
        if conductance:  # below MIN_SIEMENS (1 petaohm) a resistor is none
            w = np.where(w < MIN_SIEMENS, 0.0, w)
        out[c.name] = np.where(c.mask, w, 0.0)
    for g in net.free_groups:  # the spec's bound on bias currents (A)
        key = f"{g.name}.bias"
        if key in out:
            out[key] = np.clip(out[key], -MAX_AMPS, MAX_AMPS)
    if config.train_leak:
        lo = max(config.g_bounds[0] * sigma, LEAK_FLOOR * sigma, MIN_SIEMENS)
        for g in net.free_groups:
            key = f"{g.name}.leak"
            out[key] = np.clip(out[key], lo, max(config.g_bounds[1] * sigma, lo))
    return out


def storage_of(config: TrainConfig, sigma: float) -> Storage | None:
    """How the circuit stores its weights under ``config`` (None: as analog values, exactly).

    Parameters
    ----------
    config : TrainConfig
        Gives ``levels``, ``levels_range``, ``headroom``, ``g_bounds``, ``w_max``,
        ``program_noise`` and ``stochastic_rounding``.
    sigma : float
        The natural scale in S (the bounds are relative to it).

    Returns
    -------
    Storage or None
    """
    if config.levels is None and not config.program_noise:
        return None
    common = dict(
        levels=config.levels,
        program_noise=config.program_noise,
        stochastic=config.stochastic_rounding,
    )
    if config.levels_range == "own":
        return Storage(headroom=config.headroom, **common)
    lo, hi = config.g_bounds
    return Storage(
        w_max=min(config.w_max * sigma, MAX_SIEMENS),
        g_bounds=(lo * sigma, min(hi * sigma, MAX_SIEMENS)),
        **common,
    )


def lr_scale(config: TrainConfig, done: float) -> float:
    """The factor of :attr:`TrainConfig.lr_schedule` on the learning rate.

    Parameters
    ----------
    config : TrainConfig
        Gives the schedule: ``constant`` (1) or ``cosine`` (``(1 + cos(pi done)) / 2``).
    done : float
        Fraction of the run's batches behind (0 at the start; beyond 1, as after extending a run,
        the cosine stays at 0).

    Returns
    -------
    float
        In [0, 1].
    """
    if config.lr_schedule == "constant":
        return 1.0
    return 0.5 * (1.0 + np.cos(np.pi * min(max(done, 0.0), 1.0)))


def sgd_step(
    net: Network,
    state: TrainState,
    grads: dict[str, np.ndarray],
    config: TrainConfig,
    scale: float = 1.0,
    sigma: float | None = None,
) -> TrainState:
    """One momentum-SGD step in natural units, then :func:`constrain`.

    ``v <- momentum v - lr scale sigma^2 dC/dtheta``, ``theta <- theta + v`` for every trainable
    group, ``dC/dtheta`` from a learning rule of DESIGN.md §1. (Trans)conductances scale with
    ``sigma`` (S), bias currents with ``sigma x 1 V`` (A), so the learning rate is dimensionless.
    Training passes the initial network's ``sigma``: with trained leaks the current one would grow
    with them, and the step with it.

    Parameters
    ----------
    net : Network
        The circuit (for :func:`constrain`).
    state : TrainState
        Parameters and momentum before the step.
    grads : dict of str to ndarray
        Batch-mean ``dC/dtheta`` per trainable group (per S, or per A for biases).
    config : TrainConfig
        Gives ``lr``, ``lr_groups`` and ``momentum``.
    scale : float
        The schedule's factor on the learning rates (:func:`lr_scale`).
    sigma : float, optional
        The natural scale in S (default :func:`natural_scale` of ``net``).

    Returns
    -------
    TrainState
        A new state; ``state`` is not changed.
    """
    sigma = natural_scale(net) if sigma is None else sigma
    params, velocity = dict(state.params), dict(state.velocity)
    for key in velocity:
        # (trans)conductances scale with sigma (S), bias currents with sigma x 1 V (A): both sigma^2
        lr = scale * config.lr_groups.get(key, config.lr)
        velocity[key] = config.momentum * velocity[key] - lr * sigma**2 * grads[key]
        params[key] = params[key] + velocity[key]
    return replace(state, params=constrain(net, params, config, sigma), velocity=velocity)


def encode(data_x: np.ndarray, data_y: np.ndarray, n_classes: int, config: TrainConfig):
    """Features to input voltages and labels to one-hot target voltages.

    Parameters
    ----------
    data_x : ndarray, shape (n, n_features)
        Features in [0, 1], mapped to 0 .. 1 V.
    data_y : ndarray of int, shape (n,)
        Class labels.
    n_classes : int
        Number of classes.
    config : TrainConfig
        Gives the target voltages ``v_off`` and ``v_on`` (V).

    Returns
    -------
    u : ndarray, shape (n, n_features)
        Input voltages in V.
    y : ndarray, shape (n, n_classes)
        Target voltages in V.
    """
    return inputs_to_voltages(data_x), labels_to_targets(
        data_y, n_classes, config.v_off, config.v_on
    )


def check_compatible(net: Network, data: Dataset) -> None:
    """Check that a data set fits a network: one input per feature, one output per class.

    Parameters
    ----------
    net : Network
        The circuit.
    data : Dataset
        The data set.

    Raises
    ------
    ValueError
        Naming both and the numbers that differ.
    """
    if net.n_inputs != data.x_train.shape[1]:
        raise ValueError(
            f"network {net.name!r} has {net.n_inputs} inputs but data set {data.name!r} has "
            f"{data.x_train.shape[1]} features"
        )
    if net.n_outputs != data.n_classes:
        raise ValueError(
            f"network {net.name!r} has {net.n_outputs} outputs but data set {data.name!r} has "
            f"{data.n_classes} classes"
        )


def check_lr_groups(net: Network, config: TrainConfig) -> None:
    """Check that ``config.lr_groups`` names only trainable parameter groups (:func:`trainable`).

    Parameters
    ----------
    net : Network
        The circuit.
    config : TrainConfig
        The training configuration.

    Raises
    ------
    ValueError
        Naming the unknown or untrained groups and the trainable ones.
    """
    unknown = set(config.lr_groups) - set(trainable(net, config))
    if unknown:
        raise ValueError(
            f"lr_groups names unknown or untrained parameter group(s) {sorted(unknown)}; "
            f"trainable groups: {trainable(net, config)}"
        )


def free_outputs(engine: Engine, net: Network, u: np.ndarray) -> np.ndarray:
    """Output voltages of the free phase, a row of NaN for each sample without an operating point.

    Rows the engine names are left out and the rest solved once more (samples are solved
    independently); where it names none, the batch is halved until each is isolated.

    Parameters
    ----------
    engine : Engine
        Solves the free phase.
    net : Network
        The circuit.
    u : ndarray, shape (batch, n_inputs)
        Primary input voltages in V.

    Returns
    -------
    ndarray, shape (batch, n_outputs)
        Output voltages in V; NaN rows for the samples that did not converge.
    """
    out = net.output_index()
    try:
        return engine.solve(net, Phase(), u).x[:, out]
    except ConvergenceError as exc:
        x = np.full((len(u), len(out)), np.nan)
        if len(u) == 1:
            return x
        if exc.samples:
            keep = np.setdiff1d(np.arange(len(u)), exc.samples)
            if keep.size:
                x[keep] = free_outputs(engine, net, u[keep])
            return x
    half = len(u) // 2
    return np.concatenate(
        [free_outputs(engine, net, u[:half]), free_outputs(engine, net, u[half:])]
    )


class Trainer:
    """Runs epochs of one configuration on one engine.

    Holds no state of its own between calls beyond the references it was built with: the training
    state (:class:`TrainState`, failure counts included) is passed in and returned, and the helpers
    return the failures they counted.
    """

    def __init__(
        self,
        net: Network,
        data: Dataset,
        engine: Engine,
        config: TrainConfig,
        *,
        exact_engine: Engine | None = None,
        progress: bool = False,
    ):
        check_compatible(net, data)
        check_lr_groups(net, config)
        self.net, self.data, self.engine, self.config = net, data, engine, config
        self.exact_engine = exact_engine or engine
        #: the engine computes gradients from a circuit the numpy model cannot describe
        #: (:class:`circuitep.engines.ota.OtaEngine`): its truth is ngspice's finite differences
        self.measured = hasattr(engine, "estimate_from_circuit")
        if self.measured and (
            config.variation is not None or config.algorithm not in ("aep", "vf")
        ):
            raise ValueError(
                f"engine {engine.name!r} measures its circuit: it trains with aep or vf and no "
                "declared variation (the transistors are the circuit)"
            )
        self.cost = make_cost(config.cost, config.tau)
        self.sigma = natural_scale(net)  # of the initial network: fixed for the run
        self.beta = config.beta_rel * self.sigma
        # the circuit's devices (DESIGN.md §7): one draw, fixed for the run
        self.storage = storage_of(config, self.sigma)
        self.draw: Draw | None = None
        if config.variation is not None or self.storage is not None:
            variation = replace(variation_from_dict(config.variation or {}), storage=self.storage)
            self.draw = draw(variation, net, config.variation_seed)
        self.progress = progress
        self.u_train, self.y_train = encode(data.x_train, data.y_train, data.n_classes, config)
        self.u_test, self.y_test = encode(data.x_test, data.y_test, data.n_classes, config)
        probe = np.random.default_rng(config.seed + 7).choice(
            len(self.u_train), min(config.probe_size, len(self.u_train)), replace=False
        )
        self.probe = np.sort(probe)
        #: the truth's elements for a measured circuit (None: all), fixed for the run
        self.fd_elements = (
            sample_elements(net, config.fd_elements, config.seed + 11)
            if self.measured and config.fd_elements is not None
            else None
        )

    def network(self, state: TrainState) -> Network:
        """The trained network of a state.

        Parameters
        ----------
        state : TrainState
            Its parameters replace the initial network's.

        Returns
        -------
        Network
        """
        return self.net.with_params(state.params)

    def written(self, state: TrainState) -> Written | None:
        """What the circuit's weight storage holds in ``state`` (None without storage limits).

        Parameters
        ----------
        state : TrainState
            Its ``written``, or before the first update the first write of its parameters.

        Returns
        -------
        Written or None
        """
        if self.draw is None or self.storage is None:
            return None
        return state.written or program(self.draw, self.network(state))

    def circuit(self, state: TrainState) -> Network:
        """The circuit that is simulated in ``state``: the model on the run's devices.

        Without a variation or storage limits it is the model (:meth:`network`); else the draw's
        mismatch pattern and the stored weights (:meth:`circuitep.variation.Draw.circuit`).

        Parameters
        ----------
        state : TrainState
            The model's parameters and the storage's contents.

        Returns
        -------
        Network
        """
        model = self.network(state)
        if self.draw is None:
            return model
        return self.draw.circuit(model, self.written(state))

    def believed(self, state: TrainState) -> Network:
        """The circuit as the controller knows it: the model with the levels it wrote.

        Parameters
        ----------
        state : TrainState
            The model's parameters and the storage's contents.

        Returns
        -------
        Network
            :meth:`network` with each coupling's weights replaced by their written target levels
            (their programming noise and the draw's mismatch are unknown to the controller).
        """
        written = self.written(state)
        if written is None:
            return self.network(state)
        return self.net.with_params({**state.params, **written.targets})

    def correction(self, state: TrainState, rng: np.random.Generator | None = None):
        """AEP's correction in ``state``: None (the circuit's own, exact) or from the model.

        Parameters
        ----------
        state : TrainState
            The model the controller holds (:meth:`believed`).
        rng : numpy.random.Generator, optional
            Draws the correction elements' noise for one phase.

        Returns
        -------
        Correction or None
            ``None`` for ``correction = "circuit"``, without a variation or for other algorithms.
        """
        if self.draw is None or self.config.correction == "circuit":
            return None
        if self.config.algorithm != "aep":
            return None
        return self.draw.correction(self.believed(state), rng)

    def store(self, state: TrainState, before: Written | None) -> TrainState:
        """Write the updated model into the circuit's storage (after every update).

        Parameters
        ----------
        state : TrainState
            After an update.
        before : Written or None
            What the storage held before the update.

        Returns
        -------
        TrainState
            With ``written``; without ``shadow`` the parameters become the stored levels.
        """
        if self.storage is None:
            return state
        written = program(self.draw, self.network(state), before)
        params = state.params
        if not self.config.shadow:
            params = {**params, **{k: v for k, v in written.targets.items() if k in params}}
        return replace(state, params=params, written=written)

    def gradient(
        self,
        net: Network,
        u: np.ndarray,
        y: np.ndarray,
        algorithm: str | None = None,
        correction=None,
    ):
        """Batch-mean gradient of the configured algorithm.

        Dyadic runs at ``1000 beta`` (it has no beta bias: :func:`circuitep.gradcheck.gradcheck`).

        Parameters
        ----------
        net : Network
            The circuit at its current parameters.
        u : ndarray, shape (batch, n_inputs)
            Input voltages in V.
        y : ndarray, shape (batch, n_outputs)
            Target voltages in V.
        algorithm : str, optional
            An estimator name, or an alias of :data:`ALGORITHM_ALIASES`, instead of the configured
            one.
        correction : Correction, optional
            AEP's correction (:meth:`correction`); ``None``: the circuit's own.

        Returns
        -------
        Estimate
            :func:`circuitep.estimators.estimate`'s result; ``grads`` per parameter group.

        Raises
        ------
        ConvergenceError
            When a phase does not converge for some sample.
        """
        algorithm = algorithm or self.config.algorithm
        name = ALGORITHM_ALIASES.get(algorithm, algorithm)
        beta = self.beta * (1e3 if name == "dyadic" else 1.0)
        return estimate(
            name,
            net,
            self.engine,
            u,
            y,
            beta=beta,
            cost=self.cost,
            centered=self.config.centered,
            correction=correction if name == "aep" else None,
        )

    def _batch_gradient(self, net, idx, correction=None):
        """Batch-mean gradient over the samples of ``idx`` that converge.

        Under ``skip`` the non-converging samples are left out and counted: those the engine names
        are dropped at once (samples are solved independently, so the others do not change); where
        it names none, the batch is halved until each is isolated. Returns ``(grads or None,
        n_converged, n_failed)``.
        """
        try:
            grads = self.gradient(net, self.u_train[idx], self.y_train[idx], correction=correction)
            return grads.grads, len(idx), 0
        except ConvergenceError as exc:
            if self.config.on_failure == "stop":
                raise ConvergenceError(
                    f"training stopped in the batch of samples {idx.tolist()[:8]}...: {exc}"
                ) from exc
            if len(idx) == 1:
                return None, 0, 1
            if exc.samples:
                keep = np.delete(idx, exc.samples)
                grads, n, failed = (
                    self._batch_gradient(net, keep, correction) if keep.size else (None, 0, 0)
                )
                return grads, n, failed + len(exc.samples)
        parts = [
            self._batch_gradient(net, half, correction)
            for half in (idx[: len(idx) // 2], idx[len(idx) // 2 :])
        ]
        failed = sum(f for _, _, f in parts)
        parts = [(g, n) for g, n, _ in parts if n]
        if not parts:
            return None, 0, failed
        n = sum(k for _, k in parts)
        return {key: sum(g[key] * k for g, k in parts) / n for key in parts[0][0]}, n, failed

    def accuracy(
        self, net: Network, u: np.ndarray, labels: np.ndarray, chunk: int = 500
    ) -> tuple[float, float, int]:
        """Accuracy and mean cost of the free phase on a set of samples.

        Parameters
        ----------
        net : Network
            The circuit.
        u : ndarray, shape (n, n_inputs)
            Input voltages in V.
        labels : ndarray of int, shape (n,)
            Class labels; the predicted class is the output with the highest voltage.
        chunk : int
            Samples solved per engine call.

        Returns
        -------
        accuracy : float
            Fraction of correct argmax predictions (under ``skip`` a non-converged sample counts as
            wrong).
        cost : float
            Mean cost over the set (non-converged samples add nothing).
        failed : int
            Number of samples whose operating point did not converge.
        """
        correct, cost, failed = 0, 0.0, 0
        y = labels_to_targets(labels, self.data.n_classes, self.config.v_off, self.config.v_on)
        for k in range(0, len(u), chunk):
            x = self._outputs(net, u[k : k + chunk])
            ok = np.isfinite(x).all(axis=1)
            failed += int((~ok).sum())
            correct += int((x[ok].argmax(1) == labels[k : k + chunk][ok]).sum())
            cost += float(self.cost.value(x[ok], y[k : k + chunk][ok]).sum())
        return correct / len(u), cost / len(u), failed

    def _outputs(self, net: Network, u: np.ndarray) -> np.ndarray:
        """Output voltages of the free phase.

        Rows of NaN where a sample did not converge (under ``skip``; ``stop`` raises).
        """
        if self.config.on_failure == "stop":
            return self.engine.solve(net, Phase(), u).x[:, net.output_index()]
        return free_outputs(self.engine, net, u)

    def gradient_cosine(self, net: Network, correction=None) -> tuple[float, int]:
        """Cosine between the algorithm's gradient and the exact one on the fixed probe batch.

        The exact gradient is the circuit's own (its adjoint), the truth a circuit that is not
        its model is checked against (DESIGN.md §7).

        Parameters
        ----------
        net : Network
            The circuit.
        correction : Correction, optional
            AEP's correction (:meth:`correction`); ``None``: the circuit's own.

        Returns
        -------
        cosine : float
            NaN when no probe sample converges.
        failed : int
            Probe samples that did not converge (left out under ``skip``).
        """
        idx, failed = self.probe, 0
        for _ in range(2):
            try:
                u, y = self.u_train[idx], self.y_train[idx]
                est = self.gradient(net, u, y, correction=correction)
                truth = self._true_gradient(net, u, y)
                return compare(*where_differenced(est.grads, truth))["cosine"], failed
            except ConvergenceError:
                if self.config.on_failure == "stop":
                    raise
                good = [i for i in idx if self._converges(net, i, correction)]
                failed += len(idx) - len(good)
                if not good:
                    return float("nan"), failed
                idx = np.array(good)
        return float("nan"), failed

    def _true_gradient(self, net: Network, u, y) -> dict:
        """The circuit's own gradient: its exact adjoint, or ngspice's finite differences."""
        if self.measured:
            return finite_difference_gradients(
                net, self.engine, u, y, cost=self.cost, elements=self.fd_elements
            )
        return estimate("exact", net, self.exact_engine, u, y, beta=self.beta, cost=self.cost).grads

    def model_cosine(self, state: TrainState, circuit: Network) -> float:
        """Cosine of the model's gradient (a digital twin's) with the circuit's true one.

        Both exact adjoints on the probe batch, each at its own free state.

        Parameters
        ----------
        state : TrainState
            The model the controller holds (:meth:`believed`).
        circuit : Network
            The circuit being trained (:meth:`circuit`).

        Returns
        -------
        float
            NaN when a phase does not converge.
        """
        u, y = self.u_train[self.probe], self.y_train[self.probe]
        try:
            twin = estimate(
                "exact",
                self.believed(state),
                self.exact_engine,
                u,
                y,
                beta=self.beta,
                cost=self.cost,
            )
            truth = estimate(
                "exact", circuit, self.exact_engine, u, y, beta=self.beta, cost=self.cost
            )
        except ConvergenceError:
            return float("nan")
        return compare(twin.grads, truth.grads)["cosine"]

    def _converges(self, net: Network, i: int, correction=None) -> bool:
        try:
            self.gradient(net, self.u_train[[i]], self.y_train[[i]], correction=correction)
            if not self.measured:
                estimate(
                    "exact",
                    net,
                    self.exact_engine,
                    self.u_train[[i]],
                    self.y_train[[i]],
                    beta=self.beta,
                    cost=self.cost,
                )
        except ConvergenceError:
            return False
        return True

    def evaluate(self, state: TrainState, seconds: float) -> TrainState:
        """The state with this epoch's metrics appended to its records.

        Parameters
        ----------
        state : TrainState
            After the epoch ``state.epoch``.
        seconds : float
            Its training time in s.

        Returns
        -------
        TrainState
            With a record of train and test accuracy and cost, ``grad_cosine``, ``failures``,
            ``seconds``, ``asymmetry`` (where there are transconductor pairs) and :meth:`physics`;
            the evaluation's failures are added to the state's count. Everything is measured on
            the circuit (:meth:`circuit`); when it is not the model, ``model_grad_cosine`` is the
            model's gradient's cosine with the circuit's (:meth:`model_cosine`).
        """
        net = self.circuit(state)
        n = self.config.eval_train_samples or len(self.u_train)
        train_acc, train_cost, failed_train = self.accuracy(
            net, self.u_train[:n], self.data.y_train[:n]
        )
        test_acc, test_cost, failed_test = self.accuracy(net, self.u_test, self.data.y_test)
        cosine, failed_probe = self.gradient_cosine(net, self.correction(state))
        failures = state.failures + failed_train + failed_test + failed_probe
        record = {
            "epoch": state.epoch,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
            "cost": train_cost,
            "test_cost": test_cost,
            "grad_cosine": cosine,
            "failures": failures,
            "seconds": seconds,
            "engine": self.engine.name,
        }
        if hasattr(self.engine, "solvers_used"):  # which ngspice and matrix solver(s) solved it
            record["ngspice"] = self.engine.tolerance_dict["ngspice"]
            record["solver"] = "+".join(sorted(self.engine.solvers_used))
        if self.draw is not None:
            record["model_grad_cosine"] = self.model_cosine(state, net)
        if transconductor_pairs(net):  # how far forward and backward couplings have drifted apart
            record["asymmetry"] = asymmetry(net)
        record.update(self.physics(net))
        return replace(state, records=state.records + (record,), failures=failures)

    def physics(self, net: Network) -> dict:
        """The circuit's physical figures this epoch (:mod:`circuitep.report`, by the exact engine).

        Parameters
        ----------
        net : Network
            The circuit.

        Returns
        -------
        dict of str to float
            ``power_w`` dissipated in the free phase (W, mean over the probe batch),
            ``node_min_v`` / ``node_max_v`` (V, over it), and for the first probe sample the free
            phase's ``settling_time_s`` (s, from rest to 1 mV), ``energy_inference_j`` and
            ``energy_training_sample_j`` (J, with the algorithm's nudged phases settling from the
            free state; the free phase's transient at rtol 1e-5, the nudged ones linearised at the
            free state, :func:`circuitep.report.linear_transient`). NaN where a state does not
            converge.
        """
        u, y = self.u_train[self.probe], self.y_train[self.probe]
        keys = (
            "power_w",
            "node_min_v",
            "node_max_v",
            "settling_time_s",
            "energy_inference_j",
            "energy_training_sample_j",
        )
        if self.measured:  # the report's formulas are the model's elements', not transistors'
            return dict.fromkeys(keys, float("nan"))
        try:
            free = phase_report(net, u, self.exact_engine.solve(net, Phase(), u).x)
            rep = sample_report(
                net,
                self.exact_engine,
                u[0],
                y[0],
                beta=self.beta,
                cost=self.cost,
                algorithm=self.config.algorithm,
                transients=_quick_transient,
                nudged_transients=linear_transient,
            )
            values = (
                free["dissipated_w"],
                free["ranges"]["node_min_v"],
                free["ranges"]["node_max_v"],
                rep["latency_inference_s"],
                rep["energy_per_inference_j"],
                rep["energy_per_training_sample_j"],
            )
        except (ConvergenceError, ValueError):
            values = (float("nan"),) * len(keys)
        return dict(zip(keys, values, strict=True))

    def run_epoch(self, state: TrainState, bar=None) -> TrainState:
        """One pass over the training set in the order fixed by (seed, epoch).

        Parameters
        ----------
        state : TrainState
            Before the epoch.
        bar : tqdm, optional
            A progress bar, advanced by each batch's size.

        Returns
        -------
        TrainState
            After the epoch: new parameters, ``epoch + 1``, the skipped samples added to
            ``failures``.

        Raises
        ------
        TrainingDiverged
            When whole batches in a row have no converged sample (:data:`DIVERGED_AFTER`).
        ConvergenceError
            Under ``on_failure = "stop"``, for the first sample without an operating point.
        """
        order = np.random.default_rng([self.config.seed, state.epoch]).permutation(
            len(self.u_train)
        )
        lost = 0  # samples in a row, in whole batches, without an operating point
        limit = min(
            max(DIVERGED_AFTER, self.config.batch_size), len(order)
        )  # small sets: a whole epoch
        for k in range(0, len(order), self.config.batch_size):
            idx = order[k : k + self.config.batch_size]
            net = self.circuit(state)  # the learning signal comes from the circuit's states
            rng = np.random.default_rng([self.config.variation_seed, state.epoch, k])
            grads, n, failed = self._batch_gradient(net, idx, self.correction(state, rng))
            state = replace(state, failures=state.failures + failed) if failed else state
            if grads is not None:
                done = (state.epoch + k / len(order)) / self.config.epochs
                before = self.written(state)
                state = sgd_step(
                    self.net, state, grads, self.config, lr_scale(self.config, done), self.sigma
                )
                state = self.store(state, before)
            lost = 0 if n else lost + len(idx)
            if lost >= limit:
                batch = k // self.config.batch_size
                raise TrainingDiverged(
                    f"training diverged in epoch {state.epoch + 1}: no sample of the last {lost} "
                    f"(batches up to {batch + 1} of the epoch) has an operating point, so no "
                    f"update can be computed ({state.failures} non-converged samples in the run so "
                    "far)",
                    state.epoch + 1,
                    batch,
                    state.failures,
                )
            if bar is not None:
                bar.update(len(idx))
        return replace(state, epoch=state.epoch + 1)


def _quick_transient(*args):
    """The free phase's numpy transient at rtol 1e-5 and 1,000 points, for the per-epoch metrics.

    Its settling time to 1 mV is within 1e-5 relative of rtol 1e-7's (measured on ff:64-32-10).
    """
    return transient(*args, points=1000, rtol=1e-5)


def config_to_json(config: TrainConfig) -> str:
    """The configuration as JSON text (``config.json`` of a run).

    Parameters
    ----------
    config : TrainConfig
        The configuration.

    Returns
    -------
    str
        An indented JSON object of every field.
    """
    return json.dumps(asdict(config), indent=2)


def config_from_json(text: str) -> TrainConfig:
    """A configuration from the JSON text of :func:`config_to_json`.

    Parameters
    ----------
    text : str
        A JSON object of :class:`TrainConfig` fields.

    Returns
    -------
    TrainConfig
        Validated as any configuration.

    Raises
    ------
    ValueError
        For text that is not a JSON object, unknown keys or invalid values.
    """
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object of TrainConfig fields, got {type(data).__name__}")
    unknown = set(data) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}")
    if "g_bounds" in data:
        data["g_bounds"] = tuple(data["g_bounds"])
    return TrainConfig(**data)


def save_checkpoint(path: str | Path, state: TrainState) -> None:
    """Write the state as an uncompressed ``.npz``, atomically.

    A crash at any moment leaves the previous checkpoint intact.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    state : TrainState
        Parameters, momentum, epoch, failures and records.

    Raises
    ------
    FileWriteError
        When the write fails; the message names ``path``.
    """
    arrays = {f"param/{k}": v for k, v in state.params.items()}
    arrays |= {f"velocity/{k}": v for k, v in state.velocity.items()}
    arrays["epoch"] = np.array(state.epoch)
    arrays["failures"] = np.array(state.failures)
    arrays["records"] = np.array(json.dumps(list(state.records)))
    if state.written is not None:
        arrays |= {f"written_value/{k}": v for k, v in state.written.values.items()}
        arrays |= {f"written_target/{k}": v for k, v in state.written.targets.items()}
        arrays["writes"] = np.array(state.written.writes)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load_checkpoint(path: str | Path) -> TrainState:
    """The state saved by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.

    Returns
    -------
    TrainState

    Raises
    ------
    ValueError
        For a file that is not regular, or whose members would unpack to more bytes than the file
        holds (a zip bomb; the checkpoint stores its arrays uncompressed).
    OSError, EOFError, zipfile.BadZipFile
        From numpy's reader, for anything else that is not a checkpoint.
    """
    # (np.load(path) would leak the file when it is not a zip)
    with open_regular(path, "checkpoint") as f, np.load(f) as data:
        unpacked = sum(i.file_size for i in data.zip.infolist())
        size = os.fstat(f.fileno()).st_size
        if unpacked > size:
            raise ValueError(
                f"its members unpack to {unpacked:,} bytes, more than the file's "
                f"{size:,}: not a checkpoint circuitep wrote"
            )
        params = {k[6:]: data[k] for k in data.files if k.startswith("param/")}
        velocity = {k[9:]: data[k] for k in data.files if k.startswith("velocity/")}
        records = tuple(json.loads(str(data["records"])))
        # checkpoints from before the count was saved: the last epoch's record holds it
        failures = (
            int(data["failures"])
            if "failures" in data.files
            else int(records[-1].get("failures", 0))
            if records
            else 0
        )
        written = None
        if "writes" in data.files:
            written = Written(
                {k[14:]: data[k] for k in data.files if k.startswith("written_value/")},
                {k[15:]: data[k] for k in data.files if k.startswith("written_target/")},
                int(data["writes"]),
            )
        return TrainState(params, velocity, int(data["epoch"]), records, failures, written)
