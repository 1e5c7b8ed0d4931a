"""The circuit is not the model: declared variations and the circuits drawn from them.

DESIGN.md §7.

The controller holds a model (a :class:`~circuitep.spec.Network`); the circuit that is simulated is
that model plus a :class:`Variation` drawn from a seed (:func:`draw`): relative mismatch of every
conductance and gain and absolute offsets (what each element kind declares in its ``VARIES``
table, :func:`circuitep.elements.registry.variation_keys`), temperature, diode-card changes,
stored-weight limits (:class:`Storage`: levels over a range, bounds, programming noise, drift) and
errors of the AEP correction's elements. A :class:`Draw` keeps its mismatch pattern fixed: every
update of the model is realised on the same devices (:meth:`Draw.circuit`). The correction the
controller computes comes from the model (:meth:`Draw.correction`).

Everything here is a pure function of the model, the variation and the seed: the same seed gives
the same circuit on every machine (each pattern is drawn from its own stream, keyed by the seed and
the element's name, so adding a coupling does not change the others' patterns).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from circuitep.checks import is_integer, is_number, plain_float, plain_int
from circuitep.elements.aep import Correction
from circuitep.elements.registry import kind as kind_of
from circuitep.elements.registry import variation_keys
from circuitep.spec import WEIGHT_BOUNDS, Network, _validated_copy, check_array

#: A drawn factor ``1 + sigma z`` is kept at or above this: a device's gain does not change sign
#: (at sigma 0.3 a factor below zero needs z < -3.3, one draw in 2000).
MIN_FACTOR = 0.0


def _sigma(path: str, value, unit: str = "") -> float:
    if not is_number(value) or not np.isfinite(plain_float(path, value)) or value < 0:
        raise ValueError(
            f"{path} = {value!r} must be a finite number >= 0{' ' + unit if unit else ''}"
        )
    return plain_float(path, value)


@dataclass(frozen=True)
class Storage:
    """How the circuit stores its weights (issue 16 item 6).

    ``levels`` programmable values per device over a range: each coupling's own (``w_max =
    None``: its largest ``|w|`` in the model the draw was made from, times ``headroom``), or
    ``w_max`` (S) for every coupling; resistors (conductances >= 0) over ``[g_min, g_max]`` when
    ``g_bounds`` is given (on/off ratio ``g_max / g_min``), else over ``[0, w_max]``. Values are
    clipped to the range. ``program_noise`` is the standard deviation of a written value in units
    of one level step (fresh at every write of a device whose level changed); ``drift``
    (``nu``) scales every stored value by ``(t / 1 s)^-nu`` at ``drift_time`` seconds after
    programming (phase-change memory: nu of 0.005 to 0.1). ``stochastic`` rounds each write up or
    down at random in proportion to the distance (unbiased), instead of to the nearest level.
    """

    levels: int | None = None
    w_max: float | None = None
    headroom: float = 1.0
    g_bounds: tuple[float, float] | None = None
    program_noise: float = 0.0
    drift: float = 0.0
    drift_time: float = 1.0
    stochastic: bool = False

    def __post_init__(self):
        if self.levels is not None:
            if not is_integer(self.levels) or plain_int(self.levels) < 2:
                raise ValueError(f"storage.levels = {self.levels!r} must be an integer >= 2")
            object.__setattr__(self, "levels", plain_int(self.levels))
        if self.w_max is not None:
            object.__setattr__(self, "w_max", _sigma("storage.w_max", self.w_max, "S"))
            if self.w_max <= 0:
                raise ValueError("storage.w_max must be positive (S)")
        object.__setattr__(self, "headroom", _sigma("storage.headroom", self.headroom))
        if self.headroom <= 0:
            raise ValueError("storage.headroom must be positive")
        if self.g_bounds is not None:
            lo, hi = (_sigma("storage.g_bounds", v, "S") for v in self.g_bounds)
            if not 0 <= lo < hi:
                raise ValueError(f"storage.g_bounds = {self.g_bounds!r} needs 0 <= g_min < g_max")
            object.__setattr__(self, "g_bounds", (lo, hi))
        for key in ("program_noise", "drift"):
            object.__setattr__(self, key, _sigma(f"storage.{key}", getattr(self, key)))
        object.__setattr__(self, "drift_time", _sigma("storage.drift_time", self.drift_time, "s"))
        if self.drift and self.drift_time <= 0:
            raise ValueError("storage.drift_time must be positive (s) when drift is set")
        if not isinstance(self.stochastic, bool):
            raise ValueError("storage.stochastic must be True or False")

    @property
    def quantised(self) -> bool:
        """Whether weights take discrete levels."""
        return self.levels is not None


@dataclass(frozen=True)
class Variation:
    """A declared difference between the circuit and its model (DESIGN.md §7).

    ``sigma`` maps a key of :func:`circuitep.elements.registry.variation_keys` (``vccs.weight``,
    ``ota.v_offset``, ``leak``, ``bias``...) to its standard deviation (relative, or in the key's
    unit for absolute offsets); ``gain`` is a shorthand for the relative mismatch of every
    coupling kind's weight (keys in ``sigma`` win). ``per_coupling`` gives a coupling's own
    relative weight mismatch by name. ``temperature`` (°C) is the circuit's, ``None``: the
    model's. ``diode`` replaces diode-card parameters of the circuit (keys of
    :class:`~circuitep.spec.DiodeModel`). ``storage`` limits the stored weights. The AEP
    correction's elements err by a common relative ``correction_gain``, a fixed per-element
    relative mismatch ``sigma_correction`` and a relative gain noise ``correction_noise`` drawn
    afresh for every nudged phase.
    """

    gain: float = 0.0
    sigma: Mapping[str, float] = field(default_factory=dict)
    per_coupling: Mapping[str, float] = field(default_factory=dict)
    temperature: float | None = None
    diode: Mapping[str, float] = field(default_factory=dict)
    storage: Storage | None = None
    correction_gain: float = 0.0
    sigma_correction: float = 0.0
    correction_noise: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "gain", _sigma("gain", self.gain))
        keys = variation_keys()
        sigma = {}
        for key, value in dict(self.sigma).items():
            if key not in keys:
                raise ValueError(f"sigma: unknown key {key!r}; known: {sorted(keys)}")
            sigma[key] = _sigma(f"sigma[{key!r}]", value, keys[key].unit)
        object.__setattr__(self, "sigma", sigma)
        per = {
            str(k): _sigma(f"per_coupling[{k!r}]", v) for k, v in dict(self.per_coupling).items()
        }
        object.__setattr__(self, "per_coupling", per)
        if self.temperature is not None:
            if not is_number(self.temperature) or not np.isfinite(float(self.temperature)):
                raise ValueError(f"temperature = {self.temperature!r} must be a number (°C)")
            object.__setattr__(self, "temperature", plain_float("temperature", self.temperature))
        diode = {}
        for key, value in dict(self.diode).items():
            if not is_number(value):
                raise ValueError(f"diode[{key!r}] = {value!r} must be a number")
            diode[str(key)] = plain_float(f"diode[{key!r}]", value)
        object.__setattr__(self, "diode", diode)
        if self.storage is not None and not isinstance(self.storage, Storage):
            raise TypeError("storage must be a circuitep.variation.Storage or None")
        if not is_number(self.correction_gain) or not np.isfinite(float(self.correction_gain)):
            raise ValueError(f"correction_gain = {self.correction_gain!r} must be a finite number")
        object.__setattr__(
            self, "correction_gain", plain_float("correction_gain", self.correction_gain)
        )
        for key in ("sigma_correction", "correction_noise"):
            object.__setattr__(self, key, _sigma(key, getattr(self, key)))

    def sigma_of(self, key: str) -> float:
        """The standard deviation for variation key ``key`` (``gain`` for coupling weights).

        Parameters
        ----------
        key : str
            A key of :func:`circuitep.elements.registry.variation_keys`.

        Returns
        -------
        float
            Its sigma (0: no variation).
        """
        if key in self.sigma:
            return self.sigma[key]
        return self.gain if key.endswith(".weight") else 0.0

    @property
    def corrects_with_errors(self) -> bool:
        """Whether the AEP correction's elements err."""
        return bool(self.correction_gain or self.sigma_correction or self.correction_noise)

    def describe(self) -> dict:
        """The variation as JSON values (for run records and Monte Carlo files)."""
        out = dataclasses.asdict(self)
        out["storage"] = None if self.storage is None else dataclasses.asdict(self.storage)
        return out


def _stream(seed: int, *names: str) -> np.random.Generator:
    """A generator keyed by the seed and names (stable across runs and machines)."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


@dataclass(frozen=True, eq=False)
class Draw:
    """One circuit drawn from a variation: its fixed patterns and storage ranges.

    ``patterns`` maps ``(where, param)`` (a coupling's or free group's name, and the parameter)
    to standard normal values of the parameter's shape; ``ranges`` each coupling's storage range
    ``(lo, hi)`` (S); ``correction`` the fixed factors of the correction elements per coupling
    ``(forward, back)``. Made by :func:`draw`.
    """

    variation: Variation
    seed: int
    patterns: Mapping[tuple[str, str], np.ndarray]
    ranges: Mapping[str, tuple[float, float]]
    correction_factors: Mapping[str, tuple[np.ndarray, np.ndarray]]

    def circuit(self, model: Network, written: Written | None = None) -> Network:
        """The circuit that realises ``model`` on this draw's devices.

        Parameters
        ----------
        model : Network
            The model's parameters (what the controller wants the circuit to hold).
        written : Written, optional
            The state of the stored weights (:func:`program`); ``None``: programmed once now.

        Returns
        -------
        Network
            The simulated circuit: same structure, varied values.
        """
        var = self.variation
        stored = (written or program(self, model)).values if var.storage else None
        couplings = []
        for c in model.couplings:
            w = c.weight if stored is None else stored[c.name]
            k = kind_of(c)
            settings = dict(c.settings)
            weight = w
            for v in k.VARIES:
                key = f"{k.NAME}.{v.param}"
                sigma = var.per_coupling.get(c.name) if v.param == "weight" else None
                sigma = var.sigma_of(key) if sigma is None else sigma
                if not sigma:
                    continue
                z = self.patterns[(c.name, v.param)]
                base = weight if v.param == "weight" else settings[v.param]
                new = (
                    base * np.maximum(1 + sigma * z, MIN_FACTOR) if v.relative else base + sigma * z
                )
                if v.param == "weight":
                    weight = new
                else:
                    settings[v.param] = np.where(c.mask, new, 0.0)
            if var.storage is not None and var.storage.drift:
                weight = weight * var.storage.drift_time**-(var.storage.drift)
            if weight is not c.weight or settings != c.settings:
                couplings.append(_rebuilt(c, weight, settings))
            else:
                couplings.append(c)
        params = {}
        for g in model.free_groups:
            for p in ("leak", "bias"):
                sigma = var.sigma_of(p)
                if sigma:
                    z, base = self.patterns[(g.name, p)], getattr(g, p)
                    relative = variation_keys()[p].relative
                    params[f"{g.name}.{p}"] = (
                        base * np.maximum(1 + sigma * z, MIN_FACTOR)
                        if relative
                        else base + sigma * z
                    )
        circuit = _validated_copy(model, couplings=tuple(couplings))
        if params:
            circuit = circuit.with_params(params)  # bounds and DC paths checked there
        else:
            circuit._check_values()
        changes = {}
        if var.temperature is not None:
            changes["temperature"] = var.temperature
        if var.diode:
            changes["diode"] = dataclasses.replace(model.diode, **var.diode)
        if changes:
            circuit = _validated_copy(circuit, **changes)
        return circuit

    def correction(self, model: Network, rng: np.random.Generator | None = None) -> Correction:
        """The AEP correction the controller applies: from ``model``, with its elements' errors.

        Parameters
        ----------
        model : Network
            The model the controller holds.
        rng : numpy.random.Generator, optional
            Draws the correction noise of one phase (``correction_noise``); ``None``: none.

        Returns
        -------
        Correction
            Source ``model``, explicit form, gain factors ``(1 + correction_gain) (1 +
            sigma_correction z) (1 + correction_noise xi)``.
        """
        var = self.variation
        forward, back = {}, {}
        for name, (zf, zb) in self.correction_factors.items():
            common = 1.0 + var.correction_gain
            forward[name] = common * (1 + var.sigma_correction * zf)
            back[name] = common * (1 + var.sigma_correction * zb)
            if rng is not None and var.correction_noise:
                forward[name] = forward[name] * (
                    1 + var.correction_noise * rng.standard_normal(zf.shape)
                )
                back[name] = back[name] * (1 + var.correction_noise * rng.standard_normal(zb.shape))
        return Correction(model, forward, back, "explicit")


def _rebuilt(c, weight: np.ndarray, settings: dict):
    """Coupling ``c`` with new weights and settings, checked against its kind's bounds."""
    path = f"couplings[{c.name!r}]"
    w = check_array(
        f"{path}.weight", np.where(c.mask, weight, 0.0), c.weight.shape, **WEIGHT_BOUNDS[c.kind]
    )
    new = _validated_copy(c, weight=w, settings=settings)
    kind_of(new).check(new, path)
    return new


def draw(variation: Variation, model: Network, seed: int) -> Draw:
    """Draw one circuit of ``variation`` for ``model`` (its fixed patterns).

    Parameters
    ----------
    variation : Variation
        What varies and by how much.
    model : Network
        The model; its structure (and, for storage over each coupling's own range, its weights)
        sets the patterns' shapes and the ranges.
    seed : int
        The draw's seed (>= 0).

    Returns
    -------
    Draw
        The fixed patterns; :meth:`Draw.circuit` realises a model on them.
    """
    if not isinstance(variation, Variation):
        raise TypeError("variation must be a circuitep.variation.Variation")
    if not is_integer(seed) or plain_int(seed) < 0:
        raise ValueError(f"seed = {seed!r} must be an integer >= 0")
    seed = plain_int(seed)
    names = {c.name for c in model.couplings}
    unknown = sorted(set(variation.per_coupling) - names)
    if unknown:
        raise ValueError(f"per_coupling names {unknown}, not couplings of {model.name!r}")
    patterns = {}
    for c in model.couplings:
        for v in kind_of(c).VARIES:
            patterns[(c.name, v.param)] = _stream(
                seed, "coupling", c.name, v.param
            ).standard_normal(c.weight.shape)
    for g in model.free_groups:
        for p in ("leak", "bias"):
            patterns[(g.name, p)] = _stream(seed, "group", g.name, p).standard_normal(g.size)
    for arr in patterns.values():
        arr.setflags(write=False)
    ranges = {}
    storage = variation.storage
    if storage is not None:
        for c in model.couplings:
            ranges[c.name] = storage_range(storage, c)
    free = {g.name for g in model.free_groups}
    factors = {}
    for c in model.couplings:
        if not kind_of(c).RECIPROCAL and c.src in free:
            rng = _stream(seed, "correction", c.name)
            factors[c.name] = (
                rng.standard_normal(c.weight.shape),
                rng.standard_normal(c.weight.shape),
            )
    return Draw(variation, seed, patterns, ranges, factors)


def storage_range(storage: Storage, c) -> tuple[float, float]:
    """The range ``(lo, hi)`` (S) coupling ``c``'s weights are stored over.

    Parameters
    ----------
    storage : Storage
        The storage limits.
    c : Coupling
        The coupling (its kind's bounds and, for its own range, its weights).

    Returns
    -------
    tuple of float
        ``(lo, hi)``: ``(-w_max, w_max)`` for signed kinds, ``(g_min, g_max)`` or ``(0, w_max)``
        for conductances.
    """
    nonnegative = WEIGHT_BOUNDS[c.kind]["nonnegative"]
    if nonnegative and storage.g_bounds is not None:
        return storage.g_bounds
    w_max = storage.w_max
    if w_max is None:
        w_max = float(np.abs(c.weight).max()) * storage.headroom
        if w_max == 0:
            w_max = 1e-4 * storage.headroom  # an all-zero coupling: the leak scale
    return (0.0, w_max) if nonnegative else (-w_max, w_max)


def quantise(
    w: np.ndarray, lo: float, hi: float, levels: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``w`` clipped to ``[lo, hi]`` and rounded to one of ``levels`` equally spaced values.

    Parameters
    ----------
    w : numpy.ndarray
        Values, S.
    lo, hi : float
        The range, S.
    levels : int
        Number of levels (>= 2), ``lo`` and ``hi`` included.
    rng : numpy.random.Generator, optional
        Stochastic rounding (up with probability equal to the distance from the lower level, in
        steps); ``None``: to the nearest level.

    Returns
    -------
    numpy.ndarray
        The level indices' values, S, same shape.
    """
    step = (hi - lo) / (levels - 1)
    t = (np.clip(w, lo, hi) - lo) / step
    k = np.floor(t + rng.random(t.shape)) if rng is not None else np.rint(t)
    return np.clip(lo + np.clip(k, 0, levels - 1) * step, lo, hi)  # (lo + k step: an ulp over)


@dataclass(frozen=True, eq=False)
class Written:
    """What the stored weights hold: per coupling the values written and their target levels.

    ``values`` (S) include the programming noise of the write that set them; ``targets`` are the
    noiseless levels (or, unquantised, the values asked for); ``writes`` counts the programming
    rounds. Made by :func:`program`.
    """

    values: Mapping[str, np.ndarray]
    targets: Mapping[str, np.ndarray]
    writes: int = 1


def program(d: Draw, model: Network, previous: Written | None = None) -> Written:
    """Write ``model``'s weights into the draw's storage (one programming round).

    Devices whose target level did not change keep what they hold (their noise included);
    the others get the new level plus fresh programming noise (``program_noise`` steps rms).

    Parameters
    ----------
    d : Draw
        The circuit's devices.
    model : Network
        The weights to write.
    previous : Written, optional
        What the storage held before; ``None``: a first write.

    Returns
    -------
    Written
        The new contents.
    """
    storage = d.variation.storage
    writes = 1 if previous is None else previous.writes + 1
    values, targets = {}, {}
    for c in model.couplings:
        if storage is None or not storage.quantised:
            target = c.weight
            step = (
                0.0
                if storage is None or not storage.program_noise
                else (d.ranges[c.name][1] - d.ranges[c.name][0]) / 255
            )
        else:
            lo, hi = d.ranges[c.name]
            rng = _stream(d.seed, "round", c.name, str(writes)) if storage.stochastic else None
            target = quantise(c.weight, lo, hi, storage.levels, rng)
            step = (hi - lo) / (storage.levels - 1)
        noise = 0.0
        if storage is not None and storage.program_noise:
            noise = (
                storage.program_noise
                * step
                * _stream(d.seed, "write", c.name, str(writes)).standard_normal(c.weight.shape)
            )
        value = target + noise
        if previous is not None:
            same = previous.targets[c.name] == target
            value = np.where(same, previous.values[c.name], value)
        lo_bound = 0.0 if WEIGHT_BOUNDS[c.kind]["nonnegative"] else -np.inf
        values[c.name] = np.where(c.mask, np.maximum(value, lo_bound), 0.0)
        targets[c.name] = target
    return Written(values, targets, writes)


def variation_from_dict(data: Mapping) -> Variation:
    """The variation of :meth:`Variation.describe`'s JSON values (run records, Monte Carlo files).

    Parameters
    ----------
    data : mapping
        Fields of :class:`Variation`; ``storage`` a mapping of :class:`Storage` fields or None.

    Returns
    -------
    Variation
        Validated as any variation.

    Raises
    ------
    ValueError
        For unknown keys (named) or invalid values.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a variation must be a JSON object, got {type(data).__name__}")
    data = dict(data)
    known = {f.name for f in dataclasses.fields(Variation)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"variation: unknown key(s) {unknown}; known: {sorted(known)}")
    storage = data.get("storage")
    if storage is not None:
        if not isinstance(storage, Mapping):
            raise ValueError("variation.storage must be a JSON object of Storage fields or null")
        known = {f.name for f in dataclasses.fields(Storage)}
        unknown = sorted(set(storage) - known)
        if unknown:
            raise ValueError(f"variation.storage: unknown key(s) {unknown}; known: {sorted(known)}")
        storage = dict(storage)
        if storage.get("g_bounds") is not None:
            storage["g_bounds"] = tuple(storage["g_bounds"])
        data["storage"] = Storage(**storage)
    return Variation(**data)
