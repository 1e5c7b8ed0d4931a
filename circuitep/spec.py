"""Network specs: plain, validated data describing a circuit network.

A network is a list of node groups (inputs held by voltage sources, free hidden and output nodes
with leak, bias, capacitance and an optional diode clamp) and a list of couplings between groups
(resistors, linear transconductors, saturating transconductors), each a dense weight matrix with a
mask saying which elements exist. Layered networks and arbitrary graphs (``builders.from_graph``)
map onto this one form. Everything is validated at construction and errors name the field.

Node ``k`` of group ``g`` is called ``g_k``; inputs come first in the flat node order, then the
free nodes, each in declaration order (DESIGN.md §2).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from circuitep.checks import is_bool, is_integer, is_number, plain_float, plain_int, plain_str
from circuitep.devices import T_NOMINAL_C
from circuitep.elements import diode_clamp
from circuitep.elements.params import (  # noqa: F401 - the bounds, for importers
    FARAD_RANGE,
    I_SAT_RANGE,
    MAX_AMPS,
    MAX_SIEMENS,
    MAX_VOLTS,
    MIN_SIEMENS,
    N_RANGE,
    TEMPERATURE_RANGE,
    V_SAT_RANGE,
)
from circuitep.elements.registry import COUPLINGS, DIODE_PARAMS, KINDS, settings_of
from circuitep.elements.registry import NODE_PARAMS as _NODE_TABLE
from circuitep.elements.registry import kind as kind_of
from circuitep.elements.tanh import V_SAT
from circuitep.netlist import RESERVED_NAMES

#: Group names become SPICE node names ``<group>_<k>``: lower-case letters and digits only, so that
#: no user node can collide with the compiler's helper nodes (which contain two underscores).
GROUP_NAME = re.compile(r"[a-z][a-z0-9]{0,23}")
#: Coupling and network names become parts of SPICE element names and titles.
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: Names refused even though they are plain identifiers: SPICE's names for ground and ngspice's
#: control words (they can never reach a netlist as commands, but a reader should not see them).
#: Group and coupling names never stand alone in a netlist (nodes are ``<group>_<k>``, elements
#: ``<letter><coupling>_<i>_<j>``), so ngspice's other words are fine there; the diode model's
#: name does stand alone and must avoid all of :data:`circuitep.netlist.RESERVED_NAMES` (a model
#: named ``temper`` made ngspice 39 segfault).
_RESERVED = {
    "gnd",
    "ground",
    "shell",
    "control",
    "endc",
    "end",
    "include",
    "lib",
    "param",
    "options",
    "option",
    "model",
    "subckt",
    "ends",
    "alter",
    "source",
    "run",
    "op",
    "quit",
    "exit",
    "set",
}

#: Most nodes in one group: far beyond any circuit a netlist or the dense couplings can hold.
MAX_GROUP_SIZE = 10**7

ROLES = ("input", "hidden", "output")
Role = Literal["input", "hidden", "output"]
Kind = str  # one of KINDS, the element kinds of circuitep.elements.registry


def check_name(
    path: str,
    value: object,
    pattern: re.Pattern = NAME,
    reserved: frozenset[str] | set[str] = _RESERVED,
) -> str:
    """``value`` as a plain ``str`` if it is an allowed identifier.

    ``value`` as a plain ``str`` if it is an identifier matching ``pattern`` and not one of the
    ``reserved`` words (in any case), else raise naming ``path``. Callers keep the returned string,
    never ``value`` itself (a ``str`` subclass may format as other text).

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    value : object
        The value given.
    pattern : re.Pattern
        The identifier pattern.
    reserved : set of str
        Refused words.

    Returns
    -------
    str
        The name.
    """
    value = plain_str(path, value)
    if value.lower() in reserved:
        kind = (
            "a SPICE ground name or ngspice command word"
            if value.lower() in _RESERVED
            else "a function, constant or variable of ngspice's expressions"
        )
        raise ValueError(f"{path} = {value!r} is reserved ({kind})")
    if not pattern.fullmatch(value):
        raise ValueError(
            f"{path} = {value!r} is not a plain identifier: use lower-case letters, digits"
            f"{' and underscores' if pattern is NAME else ''}, starting with a letter"
            f" (pattern {pattern.pattern})"
        )
    return value


def _as_array(path: str, value: object, booleans: bool, what: str) -> np.ndarray:
    """``value`` as an array of booleans or of numbers, not converted.

    ``value`` as an array of booleans or of numbers; refuse ragged lists and other element types
    instead of converting them (a TOML ``true`` or ``"1e-4"`` is a mistake, not 1 S or 1e-4 S).
    """
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nesting
        raise ValueError(f"{path} must be {what} (rows of equal length)") from exc
    if isinstance(value, np.ndarray) and (
        arr.dtype.kind == "b" if booleans else arr.dtype.kind in "iuf"
    ):
        return arr
    objects = np.asarray(value, dtype=object)  # lists: numpy would turn True into 1.0
    elements = list(objects.flat)
    ok = is_bool if booleans else is_number
    bad = [v for v in elements if not ok(v)][:1] or ([] if elements else [value])
    if bad:
        raise TypeError(f"{path} must be {what}, got {bad[0]!r}")
    if booleans:
        return np.array([bool(v) for v in elements], dtype=bool).reshape(objects.shape)
    try:  # each number's own value: numpy would ask a float subclass's __float__
        values = [plain_float(path, v) for v in elements]
        return np.array(values, dtype=float).reshape(objects.shape)
    except ValueError as exc:
        raise ValueError(f"{path} holds an integer too large for a float") from exc


def check_array(
    path: str,
    value: object,
    shape: tuple[int, ...],
    *,
    nonnegative: bool = False,
    positive: bool = False,
    dtype: type = float,
    span: tuple[float, float] | None = None,
    unit: str = "",
) -> np.ndarray:
    """Broadcast ``value`` to a read-only array of ``shape``.

    refuse non-numbers, NaN, inf and wrong signs, and with ``span = (lo, hi)`` non-zero magnitudes
    outside ``[lo, hi]`` (in ``unit``; zero passes unless ``positive``).

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    value : object
        The value given.
    shape : tuple of int
        The shape the value must broadcast to.
    nonnegative : bool
        Refuse negatives.
    positive : bool
        Refuse values <= 0.
    dtype : type
        ``float`` or ``bool``.
    span : tuple of float
        Allowed magnitudes ``(lo, hi)``, or ``None``.
    unit : str
        The unit, for messages.

    Returns
    -------
    numpy.ndarray
        A read-only array of ``shape``.
    """
    arr = _as_array(
        path, value, dtype is bool, "booleans" if dtype is bool else "a number or a list of numbers"
    )
    if arr.ndim > len(shape) or (arr.shape != shape and arr.ndim != 0):
        raise ValueError(f"{path} has shape {arr.shape}, expected {shape} (or a scalar)")
    arr = np.array(np.broadcast_to(arr, shape), dtype=dtype)  # our own copy: it is made read-only

    def first(bad: np.ndarray) -> str:
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        return f"{path}{list(idx) if idx else ''} = {float(arr[idx])!r}"

    if dtype is float and arr.size:  # (reductions first: a weight matrix has 10^5 .. 10^6 entries)
        if not np.isfinite(arr).all():
            raise ValueError(f"{first(~np.isfinite(arr))} is not finite")
        low, high = float(arr.min()), float(arr.max())
        if nonnegative and low < 0:
            raise ValueError(f"{first(arr < 0)} is negative")
        if positive and low <= 0:
            raise ValueError(f"{first(arr <= 0)} must be positive")
        if span is not None:
            lo, hi, u = *span, f" {unit}" if unit else ""
            if max(-low, high) > hi:
                mag = np.abs(arr)
                raise ValueError(f"{first(mag > hi)}{u} is beyond {hi:g}{u}")
            mag = np.abs(arr) if lo > 0 else None  # (no magnitude is below a bound of 0)
            if mag is not None and ((mag < lo) & (mag > 0)).any():
                what = "value" if positive else "non-zero value (0: none)"
                raise ValueError(
                    f"{first((mag < lo) & (mag > 0))}{u} is below {lo:g}{u}, the "
                    f"smallest {what} accepted here"
                )
    arr.setflags(write=False)
    return arr


def check_volts(path: str, value: object, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`check_array` for voltages: also refuse magnitudes beyond :data:`MAX_VOLTS`.

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    value : object
        The value given.
    shape : tuple of int
        The shape the value must broadcast to.

    Returns
    -------
    numpy.ndarray
        Read-only voltages, V, of ``shape``.
    """
    arr = check_array(path, value, shape)
    if (np.abs(arr) > MAX_VOLTS).any():
        idx = tuple(int(i) for i in np.argwhere(np.abs(arr) > MAX_VOLTS)[0])
        raise ValueError(
            f"{path}{list(idx) if idx else ''} = {arr[idx]:g} V is beyond +-{MAX_VOLTS:g} V"
        )
    return arr


def voltage_rows(what: str, value, width: int, batch: int | None = None) -> np.ndarray:
    """``value`` as float rows ``(batch, width)`` of voltages.

    ``value`` as float rows ``(batch, width)`` of voltages (inputs, targets of a batch): finite,
    within +-:data:`MAX_VOLTS`; errors say which ``what``.

    Parameters
    ----------
    what : str
        What the rows are, for messages.
    value : array_like
        One row ``(width,)`` or rows ``(batch, width)``, V.
    width : int
        Values per row.
    batch : int
        Rows required, or ``None``.

    Returns
    -------
    numpy.ndarray
        Rows, V, ``(batch, width)``.
    """
    a = np.asarray(value, dtype=float)
    if a.ndim != 2 or a.shape[1] != width or batch is not None and a.shape[0] != batch:
        raise ValueError(
            f"{what} have shape {a.shape}, expected ({'batch' if batch is None else batch}, "
            f"{width})"
        )
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    if (np.abs(a) > MAX_VOLTS).any():
        raise ValueError(
            f"{what} contain {a.flat[np.argmax(np.abs(a))]:g} V, beyond +-{MAX_VOLTS:g} V"
        )
    return a


def _choice(path: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` as a plain ``str`` if it is one of ``choices`` (asking no subclass ``__eq__``)."""
    if not isinstance(value, str) or str.__str__(value) not in choices:
        raise ValueError(f"{path} = {value!r} is not one of {choices}")
    return str.__str__(value)


def _positive_float(
    path: str, value: object, span: tuple[float, float] | None = None, unit: str = ""
) -> float:
    return float(check_array(path, value, (), positive=True, span=span, unit=unit))


def check_interval(
    path: str, value: object, interval: tuple[float, float], unit: str = ""
) -> float:
    """``value`` as a plain float within ``interval = (lo, hi)`` (a signed range: temperatures).

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    value : object
        The value given.
    interval : tuple of float
        ``(lo, hi)``, inclusive.
    unit : str
        The unit, for messages.

    Returns
    -------
    float
        The value.
    """
    x = float(check_array(path, value, ()))
    lo, hi = interval
    if not lo <= x <= hi:
        u = f" {unit}" if unit else ""
        raise ValueError(f"{path} = {x!r}{u} is outside {lo:g} .. {hi:g}{u}")
    return x


def check_temperature(path: str, value: object) -> float:
    """A temperature (degC) within :data:`TEMPERATURE_RANGE`.

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    value : object
        The value given.

    Returns
    -------
    float
        The temperature, degC.
    """
    return check_interval(path, value, TEMPERATURE_RANGE, "degC")


#: The diode card's optional parameters (left off the card when ``None``), in card order.
DIODE_OPTIONAL = tuple(key for key, p in DIODE_PARAMS.items() if p.optional)


@dataclass(frozen=True)
class DiodeModel:
    """The diode model card used by every clamp: ``.model <name> D(is=<i_sat> n=<n> ...)``.

    ``i_sat`` (A, ``IS``) within :data:`I_SAT_RANGE`, ideality ``n`` within :data:`N_RANGE`,
    always written. The optional parameters (``None``: left off the card, ngspice's default
    applies) are those of :data:`circuitep.elements.diode_clamp.PARAMS`, each with its unit and
    bounds: ``rs`` (Ohm), ``cjo`` (F), ``vj`` (V), ``m``, ``fc``, ``tt`` (s), ``bv`` (V),
    ``ibv`` (A), ``nbv``, ``eg`` (eV), ``xti``, ``tnom`` (degC), ``trs1`` (1/K), ``trs2``
    (1/K^2). The numpy engines follow the DC ones (IS, N, RS, BV, IBV, NBV, EG, XTI, TNOM, TRS1,
    TRS2) at the network's temperature (:func:`circuitep.elements.diode_clamp.law`); the charge
    parameters (CJO, VJ, M, FC, TT) act only in ngspice's transients.
    """

    i_sat: float = DIODE_PARAMS["i_sat"].default  # A, 1e-12
    n: float = DIODE_PARAMS["n"].default  # 1.0
    name: str = "dclamp"
    rs: float | None = None  # Ohm
    cjo: float | None = None  # F
    vj: float | None = None  # V
    m: float | None = None
    fc: float | None = None
    tt: float | None = None  # s
    bv: float | None = None  # V
    ibv: float | None = None  # A
    nbv: float | None = None
    eg: float | None = None  # eV
    xti: float | None = None
    tnom: float | None = None  # degC
    trs1: float | None = None  # 1/K
    trs2: float | None = None  # 1/K^2

    def __post_init__(self):
        for key in ("i_sat", "n") + DIODE_OPTIONAL:
            p, value = DIODE_PARAMS[key], getattr(self, key)
            if value is None and p.optional:
                continue
            if p.interval is not None:
                checked = check_interval(f"diode.{key}", value, p.interval, p.unit)
            else:
                checked = float(check_array(f"diode.{key}", value, (), **p.bounds()))
            object.__setattr__(self, key, checked)
        object.__setattr__(
            self, "name", check_name("diode.name", self.name, reserved=_RESERVED | RESERVED_NAMES)
        )

    def card(self) -> tuple[tuple[str, float], ...]:
        """The ``.model`` card's parameters: ``(spice key, value)`` of every one given, in order.

        Returns
        -------
        tuple of (str, float)
            ``is`` and ``n`` first, then each optional parameter that is not ``None``.
        """
        return tuple(
            (DIODE_PARAMS[key].spice, getattr(self, key))
            for key in ("i_sat", "n") + DIODE_OPTIONAL
            if getattr(self, key) is not None
        )

    def given(self) -> dict[str, float]:
        """The optional parameters given (not ``None``), by spec key.

        Returns
        -------
        dict of str to float
            Spec key to value.
        """
        return {key: getattr(self, key) for key in DIODE_OPTIONAL if getattr(self, key) is not None}


#: Bounds of the free nodes' parameters (STYLE.md item 8), read by :class:`NodeGroup` and
#: :func:`circuitep.builders.from_graph`: keyword arguments of :func:`check_array`, from the
#: element modules' tables (:mod:`circuitep.elements.registry`).
NODE_PARAMS = {key: p.bounds() for key, p in _NODE_TABLE.items()}
#: Bounds of a coupling's weights by kind (S), from the kinds' tables.
WEIGHT_BOUNDS = {name: m.WEIGHT.bounds() for name, m in COUPLINGS.items()}


@dataclass(frozen=True, eq=False)
class NodeGroup:
    """A group of nodes of one role.

    Input groups are held by voltage sources; ``invert`` names another input group whose
    voltages this one carries negated (Kendall et al. 2020's inverted inputs). Free groups
    (hidden, output) have per-node ``leak`` conductance to ground (S), ``bias`` current into the
    node (A), ``capacitance`` to ground (F, only for transients) and an optional diode ``clamp``
    ``(v_lo, v_hi)`` in volts.
    """

    name: str
    role: Role
    size: int
    leak: np.ndarray | float = _NODE_TABLE["leak"].default  # S, 1e-4
    bias: np.ndarray | float = _NODE_TABLE["bias"].default  # A, 0
    capacitance: np.ndarray | float = _NODE_TABLE["capacitance"].default  # F, 1e-12
    clamp: tuple[float, float] | None = None
    invert: str | None = None

    def __post_init__(self):
        path = f"groups[{str.__str__(self.name)!r}]" if isinstance(self.name, str) else "groups[?]"
        object.__setattr__(self, "name", check_name(f"{path}.name", self.name, GROUP_NAME))
        object.__setattr__(self, "role", _choice(f"{path}.role", self.role, ROLES))
        if not is_integer(self.size) or plain_int(self.size) < 1:
            raise ValueError(f"{path}.size = {self.size!r} must be a positive integer")
        object.__setattr__(self, "size", plain_int(self.size))
        if self.size > MAX_GROUP_SIZE:
            raise ValueError(f"{path}.size = {self.size} is beyond {MAX_GROUP_SIZE:,} nodes")
        shape = (self.size,)
        for key, bounds in NODE_PARAMS.items():
            value = check_array(f"{path}.{key}", getattr(self, key), shape, **bounds)
            object.__setattr__(self, key, value)
        if self.role == "input" and (self.clamp is not None or self.bias.any()):
            raise ValueError(
                f"{path} is an input group, held by voltage sources: a clamp or bias current would "
                "do nothing there"
            )
        if self.clamp is not None:
            lo, hi = check_volts(f"{path}.clamp", self.clamp, (2,))
            if not lo < hi:
                raise ValueError(f"{path}.clamp = ({lo}, {hi}) needs v_lo < v_hi")
            object.__setattr__(self, "clamp", (float(lo), float(hi)))
        if self.invert is not None:
            if self.role != "input":
                raise ValueError(f"{path}.invert is only meaningful for input groups")
            object.__setattr__(
                self, "invert", check_name(f"{path}.invert", self.invert, GROUP_NAME)
            )

    @property
    def free(self) -> bool:
        """Whether the group's nodes are free (hidden or output)."""
        return self.role != "input"

    def nodes(self) -> list[str]:
        """The group's node names, ``<group>_<k>``.

        Returns
        -------
        list of str
            ``size`` names.
        """
        return [f"{self.name}_{k}" for k in range(self.size)]


@dataclass(frozen=True, eq=False)
class Coupling:
    """Couplings from group ``src`` into group ``dst``.

    ``weight`` has shape ``(dst.size, src.size)``.

    - ``resistor``: conductance ``weight[i, j]`` (S, >= 0) between ``dst_i`` and ``src_j``.
    - ``vccs``: transconductance ``weight[i, j]`` (S, signed): current ``w v(src_j)`` into
      ``dst_i``.
    - ``tanh``: saturating transconductor, current ``w v_sat tanh(v(src_j) / v_sat)`` into
      ``dst_i``.

    Every kind is a module of :mod:`circuitep.elements` (listed in
    :data:`circuitep.elements.registry.COUPLINGS`), which gives its equations, bounds and SPICE.
    ``mask[i, j]`` says whether the element exists; masked-out weights are stored as 0. ``settings``
    holds the kind's other parameters (its ``SETTINGS`` table, e.g. ``g_out`` and ``v_offset`` of an
    ``ota``), each a scalar or, where the table says so, one value per element ``(dst, src)``; after
    validation a dict of floats and read-only arrays with every setting of the kind (defaults filled
    in). ``v_sat`` is a field of its own (tanh only).
    """

    name: str
    kind: Kind
    src: str
    dst: str
    weight: np.ndarray
    mask: np.ndarray | None = None
    v_sat: float = V_SAT.default  # V, tanh only: 1.0
    settings: dict | None = None

    def __post_init__(self):
        path = (
            f"couplings[{str.__str__(self.name)!r}]"
            if isinstance(self.name, str)
            else "couplings[?]"
        )
        object.__setattr__(self, "name", check_name(f"{path}.name", self.name))
        if self.name.startswith("adj_"):
            raise ValueError(
                f"{path}.name = {self.name!r}: the prefix 'adj_' is reserved for the elements of "
                "the adjoint network (coupling 'x' has adjoint elements named like 'adj_x')"
            )
        object.__setattr__(self, "kind", _choice(f"{path}.kind", self.kind, KINDS))
        object.__setattr__(self, "src", check_name(f"{path}.src", self.src, GROUP_NAME))
        object.__setattr__(self, "dst", check_name(f"{path}.dst", self.dst, GROUP_NAME))
        w = _as_array(f"{path}.weight", self.weight, False, "a matrix of numbers")
        if w.ndim != 2:
            raise ValueError(
                f"{path}.weight must be a 2-D matrix (dst, src), got shape {np.shape(w)}"
            )
        weight = check_array(f"{path}.weight", w, w.shape, **WEIGHT_BOUNDS[self.kind])
        mask = (
            np.ones(weight.shape, bool)
            if self.mask is None
            else _as_array(f"{path}.mask", self.mask, True, "a matrix of booleans")
        )
        if mask.shape != weight.shape:
            raise ValueError(f"{path}.mask must be a boolean matrix of shape {weight.shape}")
        mask = mask.copy()
        mask.setflags(write=False)
        weight = np.where(mask, weight, 0.0)
        weight.setflags(write=False)
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(
            self, "v_sat", _positive_float(f"{path}.v_sat", self.v_sat, V_SAT.span, "V")
        )
        given = {} if self.settings is None else self.settings
        if not isinstance(given, dict):
            raise TypeError(f"{path}.settings must be a dict, got {type(given).__name__}")
        table = {k: p for k, p in settings_of(self.kind).items() if not p.field}
        unknown = sorted(set(given) - set(table), key=str)
        if unknown:
            raise ValueError(
                f"{path}.settings: {unknown} unknown for a {self.kind} coupling "
                f"(its settings: {sorted(table)})"
            )
        settings = {}
        for key, p in table.items():
            value = given.get(key, p.default)
            if p.per_element:
                arr = np.asarray(check_array(f"{path}.{key}", value, weight.shape, **p.bounds()))
                arr = np.where(mask, arr, 0.0)
                arr.setflags(write=False)
                settings[key] = arr
            else:
                settings[key] = float(check_array(f"{path}.{key}", value, (), **p.bounds()))
        object.__setattr__(self, "settings", settings)
        kind_of(self).check(self, path)

    def setting(self, key: str):
        """The value of setting ``key`` (a field such as ``v_sat`` or an entry of ``settings``).

        Parameters
        ----------
        key : str
            A setting of this kind (``v_sat``...).

        Returns
        -------
        numpy.ndarray
            The coupling's field (``v_sat``, V) or an array per element of ``weight``'s shape.
        """
        return getattr(self, key) if settings_of(self.kind)[key].field else self.settings[key]


def _validated_copy(obj, **values):
    """A copy of a validated frozen spec object, not checked again.

    A copy of a validated frozen spec object with some fields set to values already checked (by
    :meth:`Network.with_params`), without running its ``__post_init__`` again.
    """
    new = copy.copy(obj)
    for key, value in values.items():
        object.__setattr__(new, key, value)
    return new


@dataclass(frozen=True, eq=False)
class Sample:
    """One input sample (primary input voltages, V) and its targets (output voltages, V)."""

    inputs: np.ndarray
    targets: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Network:
    """A circuit network: node groups, couplings, the diode model and an optional sample.

    ``temperature`` (degC, default 27, within :data:`TEMPERATURE_RANGE`) is the temperature the
    circuit is simulated at: the compiler writes it as ngspice's option ``temp`` and the numpy
    engines evaluate the diode law there (:func:`circuitep.elements.diode_clamp.net_law`).
    """

    name: str
    groups: tuple[NodeGroup, ...]
    couplings: tuple[Coupling, ...] = ()
    diode: DiodeModel = field(default_factory=DiodeModel)
    sample: Sample | None = None
    description: str = ""
    temperature: float = T_NOMINAL_C  # degC

    def __post_init__(self):
        object.__setattr__(self, "name", check_name("name", self.name))
        object.__setattr__(self, "temperature", check_temperature("temperature", self.temperature))
        if not isinstance(self.description, str) or not re.fullmatch(
            r"[\x20-\x7e]*", self.description
        ):
            raise ValueError("description must be a single line of printable ASCII text")
        object.__setattr__(self, "description", plain_str("description", self.description))
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "couplings", tuple(self.couplings))
        for k, g in enumerate(self.groups):
            if not isinstance(g, NodeGroup):
                raise TypeError(f"groups[{k}] must be a NodeGroup, got {type(g).__name__}")
        for k, c in enumerate(self.couplings):
            if not isinstance(c, Coupling):
                raise TypeError(f"couplings[{k}] must be a Coupling, got {type(c).__name__}")
        if not isinstance(self.diode, DiodeModel):
            raise TypeError(f"diode must be a DiodeModel, got {type(self.diode).__name__}")
        diode_clamp.law(self.diode, self.temperature)  # IS(T) within double precision
        if self.sample is not None and not isinstance(self.sample, Sample):
            raise TypeError(f"sample must be a Sample or None, got {type(self.sample).__name__}")
        names = [g.name for g in self.groups]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"groups: duplicate group name(s) {sorted(dupes)}")
        by_name = {g.name: g for g in self.groups}
        if not any(g.role == "input" for g in self.groups):
            raise ValueError("groups: a network needs at least one input group")
        if not any(g.role == "output" for g in self.groups):
            raise ValueError("groups: a network needs at least one output group")
        for g in self.groups:
            if g.invert is not None:
                src = by_name.get(g.invert)
                if src is None or src.role != "input" or src.invert is not None:
                    raise ValueError(
                        f"groups[{g.name!r}].invert = {g.invert!r} is not a primary input group"
                    )
                if src.size != g.size:
                    raise ValueError(
                        f"groups[{g.name!r}].size = {g.size} differs from the size of "
                        f"{g.invert!r} ({src.size}) that it inverts"
                    )
        cnames = [c.name for c in self.couplings]
        dupes = {n for n in cnames if cnames.count(n) > 1}
        if dupes:
            raise ValueError(f"couplings: duplicate coupling name(s) {sorted(dupes)}")
        for c in self.couplings:
            path = f"couplings[{c.name!r}]"
            for end in ("src", "dst"):
                if getattr(c, end) not in by_name:
                    raise ValueError(
                        f"{path}.{end} = {getattr(c, end)!r} is not a group (known: {names})"
                    )
            dst, src = by_name[c.dst], by_name[c.src]
            if not dst.free:
                raise ValueError(
                    f"{path}.dst = {c.dst!r} is an input group: couplings drive free nodes"
                )
            if c.weight.shape != (dst.size, src.size):
                raise ValueError(
                    f"{path}.weight has shape {c.weight.shape}, expected "
                    f"({dst.size}, {src.size}) = ({c.dst}.size, {c.src}.size)"
                )
        self._check_values()
        if self.sample is not None:
            inputs = check_volts("sample.inputs", self.sample.inputs, (self.n_inputs,))
            targets = None
            if self.sample.targets is not None:
                targets = check_volts("sample.targets", self.sample.targets, (self.n_outputs,))
            object.__setattr__(self, "sample", Sample(inputs, targets))

    def _check_values(self) -> None:
        """The checks that depend on parameter values.

        Not only on the structure: each coupling kind's own value checks (no resistor from a node
        to itself), and a DC path to ground from every free node.
        """
        for c in self.couplings:
            kind_of(c).check(c, f"couplings[{c.name!r}]")
        floating = self.floating_nodes()
        if floating:
            more = f" and {len(floating) - 5} more" if len(floating) > 5 else ""
            raise ValueError(
                f"free node(s) {', '.join(floating[:5])}{more} have no DC path to "
                "ground (no leak, clamp, or resistors to a node that has one): their "
                "voltage is undetermined; give them a leak (S)"
            )

    # --- structure -------------------------------------------------------------------------

    def group(self, name: str) -> NodeGroup:
        """The group named ``name``.

        Parameters
        ----------
        name : str
            A group name.

        Returns
        -------
        NodeGroup
            The group.
        """
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no group named {name!r} (known: {[g.name for g in self.groups]})")

    def floating_nodes(self) -> list[str]:
        """Free nodes without a DC path to ground.

        No leak, no clamp, and no chain of resistors to a node with one or to an input (held by a
        source). Transconductors drive a node but do not load it, so such a node's KCL row has no
        conductance of its own and its voltage is free.
        """
        grounded = np.concatenate([(g.leak > 0) | (g.clamp is not None) for g in self.free_groups])
        if grounded.all():
            return []
        index, start = {}, 0
        for g in self.free_groups:
            index[g.name], start = start, start + g.size
        n = start  # vertex n stands for ground and every input
        rows, cols = [np.flatnonzero(grounded)], [np.full(int(grounded.sum()), n)]
        for c in self.couplings:  # a coupling's DC paths: between its nodes, or dst to ground
            edges, to_ground = kind_of(c).dc_paths(c)
            if edges is not None:
                i, j = np.nonzero(edges)
                rows.append(index[c.dst] + i)
                cols.append(index[c.src] + j if c.src in index else np.full(len(j), n))
            if to_ground is not None:
                i = np.flatnonzero(to_ground)
                rows.append(index[c.dst] + i)
                cols.append(np.full(len(i), n))
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + 1, n + 1))
        _, label = connected_components(graph, directed=False)
        free = self.free_nodes
        return [free[k] for k in np.flatnonzero(label[:n] != label[n])]

    @property
    def input_groups(self) -> tuple[NodeGroup, ...]:
        """The input groups, inverted ones included."""
        return tuple(g for g in self.groups if not g.free)

    @property
    def primary_input_groups(self) -> tuple[NodeGroup, ...]:
        """The input groups that are not inverted copies."""
        return tuple(g for g in self.input_groups if g.invert is None)

    @property
    def free_groups(self) -> tuple[NodeGroup, ...]:
        """The hidden and output groups, in declaration order."""
        return tuple(g for g in self.groups if g.free)

    @property
    def output_groups(self) -> tuple[NodeGroup, ...]:
        """The output groups."""
        return tuple(g for g in self.groups if g.role == "output")

    @property
    def n_inputs(self) -> int:
        """Number of primary input voltages a sample supplies."""
        return sum(g.size for g in self.primary_input_groups)

    @property
    def n_outputs(self) -> int:
        """The number of output nodes."""
        return sum(g.size for g in self.output_groups)

    @property
    def n_free(self) -> int:
        """The number of free (hidden and output) nodes."""
        return sum(g.size for g in self.free_groups)

    @property
    def input_nodes(self) -> list[str]:
        """Every input node's name, inverted ones included."""
        return [n for g in self.input_groups for n in g.nodes()]

    @property
    def free_nodes(self) -> list[str]:
        """Every free node's name, in state order."""
        return [n for g in self.free_groups for n in g.nodes()]

    def slices(self) -> dict[str, slice]:
        """Slice of each group in the flat node vector ``[inputs..., free...]``."""
        out, k = {}, 0
        for g in self.input_groups + self.free_groups:
            out[g.name] = slice(k, k + g.size)
            k += g.size
        return out

    def free_slices(self) -> dict[str, slice]:
        """Slice of each free group in the free-node vector ``x``."""
        n_in = sum(g.size for g in self.input_groups)
        return {
            name: slice(s.start - n_in, s.stop - n_in)
            for name, s in self.slices().items()
            if self.group(name).free
        }

    def output_index(self) -> np.ndarray:
        """Indices of the output nodes in the free-node vector, in declaration order."""
        fs = self.free_slices()
        return np.concatenate(
            [np.arange(fs[g.name].start, fs[g.name].stop) for g in self.output_groups]
        )

    def expand_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """All input-node voltages ``(batch, n_in)`` from the primary ones ``(batch, n_inputs)``.

        Inverted groups carry the negated voltages of the group they invert.

        Parameters
        ----------
        inputs : numpy.ndarray
            Primary input voltages, V, ``(batch, n_inputs)``.

        Returns
        -------
        numpy.ndarray
            Input-node voltages, V, ``(batch, n_in)``.
        """
        u = voltage_rows("inputs", inputs, self.n_inputs)
        primary, k = {}, 0
        for g in self.primary_input_groups:
            primary[g.name] = u[:, k : k + g.size]
            k += g.size
        return np.concatenate(
            [
                primary[g.name] if g.invert is None else -primary[g.invert]
                for g in self.input_groups
            ],
            axis=1,
        )

    def conductance_scale(self) -> float:
        """The network's natural conductance ``sigma`` (S): the median of its positive leaks.

        Nudges (beta) and learning rates are expressed relative to it.
        """
        leaks = np.concatenate([g.leak for g in self.free_groups])
        if not (leaks > 0).any():
            raise ValueError(
                f"network {self.name!r} has no leak conductance to set its natural scale (beta and "
                "learning rates are relative to it); give the free nodes a leak (S), or, where a "
                "command has --beta, pass beta in siemens"
            )
        return float(np.median(leaks[leaks > 0]))

    # --- parameters ------------------------------------------------------------------------

    def params(self) -> dict[str, np.ndarray]:
        """Trainable parameters: ``<coupling>`` weights, ``<group>.bias``, ``<group>.leak``."""
        out = {c.name: c.weight for c in self.couplings}
        for g in self.free_groups:
            out[f"{g.name}.bias"] = g.bias
            out[f"{g.name}.leak"] = g.leak
        return out

    def with_params(self, params: dict[str, np.ndarray]) -> Network:
        """A copy with some parameters replaced (names as in :meth:`params`.

        weights ``(dst.size, src.size)`` S, bias ``(size,)`` A, leak ``(size,)`` S, or scalars for
        the groups').

        Only what a parameter can change is checked: each new array's shape, finiteness and bounds
        (:data:`WEIGHT_BOUNDS`, :data:`NODE_PARAMS`), masked weights stored as 0, and the checks
        that depend on values (every free node keeps a DC path to ground; no resistor from a node to
        itself). The structure (names, groups, couplings, masks, diode, sample) is this network's,
        validated when it was built, and is shared rather than validated again: a training step at
        784-500-10 spent as long re-validating it as in the layered engine's input drive.

        Parameters
        ----------
        params : dict of str to numpy.ndarray
            New values by parameter name (:meth:`params`).

        Returns
        -------
        Network
            A copy with those values, validated.
        """
        known = self.params()
        unknown = set(params) - set(known)
        if unknown:
            raise KeyError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(known)}")
        for c in self.couplings:
            if c.name in params and np.shape(params[c.name]) != c.weight.shape:
                raise ValueError(
                    f"parameter {c.name!r} has shape {np.shape(params[c.name])}, expected "
                    f"{c.weight.shape}"
                )
        couplings = []
        for c in self.couplings:
            if c.name in params:
                path = f"couplings[{c.name!r}].weight"
                w = check_array(path, params[c.name], c.weight.shape, **WEIGHT_BOUNDS[c.kind])
                w = w if c.mask.all() else np.where(c.mask, w, 0.0)
                w.setflags(write=False)
                c = _validated_copy(c, weight=w)
            couplings.append(c)
        groups = []
        for g in self.groups:
            keys = [key for key in ("bias", "leak") if g.free and f"{g.name}.{key}" in params]
            new = {
                key: check_array(
                    f"groups[{g.name!r}].{key}",
                    params[f"{g.name}.{key}"],
                    (g.size,),
                    **NODE_PARAMS[key],
                )
                for key in keys
            }
            groups.append(_validated_copy(g, **new) if new else g)
        net = _validated_copy(self, groups=tuple(groups), couplings=tuple(couplings))
        net._check_values()
        return net
