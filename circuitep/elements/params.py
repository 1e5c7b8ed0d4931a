"""Parameter tables of the element kinds: names, units, physical bounds and defaults.

Every element module declares its parameters as :class:`Param` rows; the spec validator
(:mod:`circuitep.spec`), the TOML reader (:mod:`circuitep.specio`), the graph builder and the docs
read them from there (through :mod:`circuitep.elements.registry`). The bounds are physical: far
beyond them a netlist or the numpy engines lose all precision or overflow (each constant says
what was measured).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Largest voltage (V) a spec may hold (clamp rails, sample inputs and targets): the circuits work
#: at volts, and far beyond this the diode equations lose all precision (rails at 1e30 V left
#: ngspice at 0 V where the numpy engines found 0.1 V).
MAX_VOLTS = 1e3
#: Smallest non-zero conductance (S) of a leak or a resistor, 1 petaohm: the netlist holds its
#: reciprocal, which overflowed to inf for a leak of 1e-320 S.
MIN_SIEMENS = 1e-15
#: Largest conductance or transconductance (S) of a coupling: with voltages up to
#: :data:`MAX_VOLTS` its currents stay far from overflow (1e300 S overflowed the numpy engine).
#: Leaks have no upper bound: a huge leak shorts its node to ground, which the engines handle.
MAX_SIEMENS = 1e6
#: Largest bias current (A): a bias through a 1 S load at :data:`MAX_VOLTS`.
MAX_AMPS = 1e3
#: Capacitances (F), 1 aF to 1 kF: the stability check scales by their ratios, and 5e-324 F or
#: 1e300 F beside 1 pF overflowed it.
FARAD_RANGE = (1e-18, 1e3)
#: Saturation voltages of tanh couplings (V), 1 uV to :data:`MAX_VOLTS`: the netlist divides by it.
V_SAT_RANGE = (1e-6, MAX_VOLTS)
#: Diode saturation currents (A) and ideality factors: clamp diodes have pA to uA and n of 1 to 2;
#: beyond 1 A the exponential overflows, and a subnormal n made the thermal voltage 0.
I_SAT_RANGE = (1e-30, 1.0)
N_RANGE = (0.1, 100.0)
#: Temperatures (degC) of a circuit and of a diode card's TNOM: above absolute zero (at -273 degC
#: the thermal voltage is 13 uV and every exponent overflows) and below the few hundred degC at
#: which silicon junctions stop being diodes.
TEMPERATURE_RANGE = (-270.0, 500.0)


@dataclass(frozen=True)
class Param:
    """One parameter of an element kind.

    ``unit`` is its SI unit; ``default`` its value when a spec leaves it out (``None``: required).
    Bounds as :func:`circuitep.spec.check_array` reads them: ``nonnegative``, ``positive`` and
    ``span = (lo, hi)`` on non-zero magnitudes. A coupling's extra parameter (a *setting*, not
    trained) is a scalar or, with ``per_element``, one value per element ``(dst, src)``;
    ``field`` says it is a field of :class:`circuitep.spec.Coupling` itself (``v_sat``) rather
    than an entry of ``Coupling.settings``. ``typical`` is a magnitude met in these circuits
    (docs, and the contract tests draw their examples around it). A model card's parameter has
    ``spice``, its key on the SPICE ``.model`` card; ``optional`` ones are left off the card unless
    given (the simulator's default, named in ``doc``, applies); ``interval = (lo, hi)`` bounds a
    signed value itself (temperatures), checked by :func:`circuitep.spec.check_interval`.
    """

    name: str
    unit: str
    doc: str
    default: float | None = None
    nonnegative: bool = False
    positive: bool = False
    span: tuple[float, float] | None = None
    per_element: bool = False
    field: bool = False
    typical: float | None = None
    spice: str | None = None
    optional: bool = False
    interval: tuple[float, float] | None = None

    def bounds(self) -> dict:
        """Keyword arguments of :func:`circuitep.spec.check_array` for this parameter."""
        return dict(
            nonnegative=self.nonnegative, positive=self.positive, span=self.span, unit=self.unit
        )

    def describe(self) -> str:
        """One line for the docs: name, unit, bounds and default."""
        parts = [f"{self.name} ({self.unit or '1'})"]
        if self.positive:
            parts.append("> 0")
        elif self.nonnegative:
            parts.append(">= 0")
        if self.span is not None:
            lo, hi = self.span
            parts.append(
                f"|value| {'0 or ' if lo > 0 and not self.positive else ''}{lo:g} .. {hi:g}"
            )
        if self.interval is not None:
            parts.append(f"{self.interval[0]:g} .. {self.interval[1]:g}")
        if self.default is not None:
            parts.append(f"default {self.default:g}")
        if self.optional:
            parts.append("optional")
        if self.spice is not None:
            parts.append(f"card key {self.spice}")
        if self.per_element:
            parts.append("scalar or per element")
        return f"{', '.join(parts)}: {self.doc}"


@dataclass(frozen=True)
class Varies:
    """How one parameter of an element kind differs between a circuit and its model (DESIGN.md §7).

    ``param`` is the parameter's name (``weight``, a setting such as ``v_offset``, or a node
    parameter ``leak``/``bias``); ``relative`` mismatch multiplies it by ``1 + sigma z``
    (``sigma`` dimensionless), an absolute one adds ``sigma z`` (``sigma`` in ``unit``), ``z``
    standard normal per element, fixed for a drawn circuit. ``doc`` says what it stands for.
    """

    param: str
    relative: bool
    unit: str
    doc: str
