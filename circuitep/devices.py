"""Element equations, written once for both engines.

Every function is vectorised over numpy arrays and states its SI units. The numpy engine builds
KCL residuals and Jacobians from them; the compiler uses the same constants so that an ngspice
netlist and the numpy solver describe one circuit.

The diode is ngspice's level-1 junction diode (src/spicelib/devices/dio: ``diotemp.c`` for the
temperature update, ``dioload.c`` for the DC current): :func:`diode_law` turns a model card and a
circuit temperature into the effective parameters (saturation current and ``N Vt`` at that
temperature, series resistance, breakdown knee), and :func:`junction_current` /
:func:`diode_current` evaluate the current from those alone, so that every consumer (KCL, the
layered engine, the adjoint network's expression, the power report, the clamp range) uses one law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Boltzmann constant over the elementary charge (V/K), with the CODATA 2014 values ngspice 39 uses
#: (measured: with CODATA 2018 values the two engines differ by 2e-7 V at a conducting clamp).
K_OVER_Q = 1.38064852e-23 / 1.6021766208e-19
#: Kelvin at 0 degC (ngspice's CONSTCtoK).
CELSIUS_TO_KELVIN = 273.15
#: ngspice's nominal temperature (option ``tnom`` and the default circuit temperature), 27 degC.
T_NOMINAL_C = 27.0
#: ngspice's nominal temperature, 27 degC (K).
T_NOMINAL = T_NOMINAL_C + CELSIUS_TO_KELVIN
#: Thermal voltage kT/q at 27 degC (V), about 25.86 mV.
THERMAL_VOLTAGE = K_OVER_Q * T_NOMINAL
#: ngspice's default GMIN (S): a conductance in parallel with every junction.
GMIN = 1e-12
#: ngspice's defaults of the diode card's temperature and breakdown parameters (dioset.c): band gap
#: EG (eV), saturation-current exponent XTI, breakdown current IBV (A) and emission coefficient NBV.
EG_DEFAULT = 1.11
XTI_DEFAULT = 3.0
IBV_DEFAULT = 1e-3
NBV_DEFAULT = 1.0
#: ngspice's default relative tolerance is not the one circuitep writes: the breakdown knee of
#: :func:`breakdown_knee` is matched to ``reltol * IBV`` as diotemp.c does, with circuitep's
#: ``reltol`` (:class:`circuitep.compiler.Tolerances`).
BREAKDOWN_RELTOL = 1e-10
#: Largest exponent evaluated before the diode current is continued linearly (avoids overflow
#: during Newton iterations far from the solution; never active at a converged state of a sane
#: circuit, where it would mean a junction voltage of about 2 V).
_MAX_EXPONENT = 80.0
#: Most Newton steps of the series-resistance solve (:func:`diode_current`); measured on junction
#: voltages -3 .. 3 V with RS 1 uOhm .. 1 TOhm: at most 11; 42 (bisection steps) with RS = 1 TOhm
#: and breakdown at 0.9 V; the current then matches a brentq solution to 4e-15 relative.
_RS_ITERATIONS = 100


def thermal_voltage(temperature: float) -> float:
    """``k T / q`` (V) at ``temperature`` (degC), with ngspice's constants.

    Parameters
    ----------
    temperature : float
        Temperature, degC.

    Returns
    -------
    float
        The thermal voltage, V (25.86 mV at 27 degC).
    """
    return K_OVER_Q * (temperature + CELSIUS_TO_KELVIN)


def saturation_current(
    i_sat: float,
    n: float,
    temperature: float,
    tnom: float = T_NOMINAL_C,
    eg: float = EG_DEFAULT,
    xti: float = XTI_DEFAULT,
) -> float:
    """Saturation current (A) at ``temperature``, ngspice's ``tlev = 0`` law (diotemp.c).

    ::

        IS(T) = IS exp((T / TNOM - 1) EG / (N Vt(T)) + XTI / N ln(T / TNOM))

    with ``T`` and ``TNOM`` in kelvin and ``Vt(T) = k T / q``.

    Parameters
    ----------
    i_sat : float
        ``IS`` at ``tnom``, A.
    n : float
        Emission coefficient ``N``.
    temperature : float
        Circuit temperature, degC.
    tnom : float
        Temperature the card's parameters were measured at, degC.
    eg : float
        Activation energy ``EG``, eV.
    xti : float
        Saturation-current temperature exponent ``XTI``.

    Returns
    -------
    float
        ``IS(T)``, A.
    """
    t = temperature + CELSIUS_TO_KELVIN
    t_nom = tnom + CELSIUS_TO_KELVIN
    vte = n * (K_OVER_Q * t)
    arg1 = ((t / t_nom) - 1) * eg / vte
    arg2 = xti / n * math.log(t / t_nom)
    return i_sat * math.exp(arg1 + arg2)


def breakdown_knee(
    bv: float, ibv: float, i_sat: float, vt: float, nbv: float, reltol: float = BREAKDOWN_RELTOL
) -> float:
    """The junction voltage magnitude (V) where the reverse breakdown region starts (diotemp.c).

    ngspice matches the breakdown exponential to carry ``IBV`` at ``BV``: it solves
    ``IBV = IS (exp((BV - x) / (NBV Vt)) - 1 + x / Vt)`` for ``x`` by up to 25 fixed-point steps,
    stopping within ``reltol IBV``; when ``IBV < IS BV / Vt`` it takes ``x = BV``. The same steps
    here.

    Parameters
    ----------
    bv : float
        Breakdown voltage ``BV`` (V, positive).
    ibv : float
        Current at the breakdown voltage ``IBV`` (A, positive).
    i_sat : float
        Saturation current at the circuit temperature, A.
    vt : float
        Thermal voltage ``k T / q`` (V).
    nbv : float
        Breakdown emission coefficient ``NBV``.
    reltol : float
        Relative tolerance of the match.

    Returns
    -------
    float
        ``x``, V: the diode is in breakdown for junction voltages below ``-x``.
    """
    if ibv < i_sat * bv / vt:
        return bv
    tol = reltol * ibv
    xbv = bv - nbv * vt * math.log(1 + ibv / i_sat)
    for _ in range(25):
        xbv = bv - nbv * vt * math.log(ibv / i_sat + 1 - xbv / vt)
        xcbv = i_sat * (math.exp((bv - xbv) / (nbv * vt)) - 1 + xbv / vt)
        if abs(xcbv - ibv) <= tol:
            break
    return xbv


@dataclass(frozen=True)
class DiodeLaw:
    """The effective parameters of one diode at one temperature: all the DC law needs.

    ``i_sat`` saturation current at the temperature (A); ``vte`` ``N k T / q`` (V); ``rs`` series
    resistance at the temperature (Ohm, 0: none); ``bv`` the breakdown knee of
    :func:`breakdown_knee` (V, ``inf``: no breakdown); ``vtebrk`` ``NBV k T / q`` (V); ``gmin``
    the conductance across the junction (S). Built by :func:`diode_law`.
    """

    i_sat: float
    vte: float
    rs: float = 0.0
    bv: float = math.inf
    vtebrk: float = 1.0
    gmin: float = GMIN


def diode_law(
    i_sat: float,
    n: float,
    temperature: float = T_NOMINAL_C,
    *,
    rs: float = 0.0,
    tnom: float | None = None,
    eg: float | None = None,
    xti: float | None = None,
    bv: float | None = None,
    ibv: float | None = None,
    nbv: float | None = None,
    trs1: float | None = None,
    trs2: float | None = None,
    gmin: float = GMIN,
) -> DiodeLaw:
    """A diode card's effective DC parameters at ``temperature``, as ngspice computes them.

    ``None`` stands for a parameter the card leaves out (ngspice's default: ``tnom`` the circuit's
    nominal 27 degC, ``eg`` 1.11 eV, ``xti`` 3, ``ibv`` 1 mA, ``nbv`` 1, ``trs1`` ``trs2`` 0, no
    breakdown without ``bv``). The series resistance follows ``RS (1 + TRS1 dT + TRS2 dT^2)``
    with ``dT = T - TNOM`` (K), as diotemp.c divides the conductance.

    Parameters
    ----------
    i_sat : float
        ``IS`` at ``tnom``, A.
    n : float
        Emission coefficient ``N``.
    temperature : float
        Circuit temperature, degC.
    rs : float
        Series resistance ``RS`` at ``tnom``, Ohm.
    tnom : float
        Nominal temperature of the card, degC.
    eg : float
        Activation energy ``EG``, eV.
    xti : float
        Saturation-current temperature exponent ``XTI``.
    bv : float
        Reverse breakdown voltage ``BV``, V.
    ibv : float
        Current at ``BV``, A.
    nbv : float
        Breakdown emission coefficient ``NBV``.
    trs1 : float
        Linear temperature coefficient of ``RS``, 1/K.
    trs2 : float
        Quadratic temperature coefficient of ``RS``, 1/K^2.
    gmin : float
        Conductance across the junction, S.

    Returns
    -------
    DiodeLaw
        The effective parameters.
    """
    tnom = T_NOMINAL_C if tnom is None else tnom
    vt = thermal_voltage(temperature)
    sat = saturation_current(
        i_sat,
        n,
        temperature,
        tnom,
        EG_DEFAULT if eg is None else eg,
        XTI_DEFAULT if xti is None else xti,
    )
    if not 0 < sat < math.inf:
        raise ValueError(
            f"diode: the saturation current at {temperature:g} degC is {sat:g} A (IS = {i_sat:g} "
            f"A at TNOM = {tnom:g} degC): outside what double precision can hold; choose EG, XTI "
            "or the temperature closer to the card's"
        )
    dt = temperature - tnom
    factor = 1.0 + (trs1 or 0.0) * dt + (trs2 or 0.0) * dt * dt
    if rs and not factor > 0:
        raise ValueError(
            f"diode: RS (1 + TRS1 dT + TRS2 dT^2) = {rs * factor:g} Ohm at {temperature:g} degC is "
            "not positive: the temperature coefficients are too large for this temperature"
        )
    nbv = NBV_DEFAULT if nbv is None else nbv
    knee = math.inf
    if bv is not None:
        knee = breakdown_knee(bv, IBV_DEFAULT if ibv is None else ibv, sat, vt, nbv)
    return DiodeLaw(sat, n * vt, rs * factor if rs else 0.0, knee, nbv * vt, gmin)


def junction_current(
    vd: np.ndarray,
    *,
    i_sat: float,
    vte: float,
    gmin: float = GMIN,
    bv: float = math.inf,
    vtebrk: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Current and small-signal conductance of ngspice's junction (dioload.c, level 1), no RS.

    Parameters
    ----------
    vd : array, V
        Junction voltage (anode minus cathode).
    i_sat : float, A
        Saturation current at the circuit temperature (:func:`saturation_current`).
    vte : float, V
        ``N k T / q`` at the circuit temperature.
    gmin : float, S
        Conductance in parallel with the junction (ngspice option ``gmin``).
    bv : float, V
        Breakdown knee (:func:`breakdown_knee`); ``inf``: no breakdown.
    vtebrk : float, V
        ``NBV k T / q``, the breakdown region's slope voltage.

    Returns
    -------
    current : array, A
        Current from anode to cathode::

            I = IS (exp(vd / vte) - 1) + gmin vd                 for vd >= -3 vte
            I = -IS (1 + (3 vte / (e vd))^3) + gmin vd           down to -bv (SPICE3 reverse model)
            I = -IS exp(-(bv + vd) / vtebrk) + gmin vd           below -bv (breakdown)

        each exponential continued linearly beyond an exponent of 80.
    conductance : array, S
        dI/dvd.
    """
    vd = np.asarray(vd, dtype=float)
    a = vd / vte
    forward = a >= -3.0
    # Both branches are evaluated everywhere and selected; written with few temporaries because the
    # numpy engines spend a quarter of an MNIST epoch here. Division by zero and overflow land only
    # in the branch not selected.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        expo = np.exp(np.minimum(a, _MAX_EXPONENT))
        i_fwd = expo - 1.0
        if a.max(initial=-np.inf) > _MAX_EXPONENT:  # linear continuation beyond the cap
            i_fwd = expo * (1.0 + np.maximum(a - _MAX_EXPONENT, 0.0)) - 1.0
        cube = (3.0 / np.e) / a  # 3 N Vt / (e vd)
        cube = cube * cube * cube  # not ** 3: numpy's power of a negative base is ~40x slower
        current = np.where(forward, i_fwd, -1.0 - cube)
        conductance = np.where(forward, expo / vte, 3.0 * cube / vd)
        if bv < math.inf and vd.min(initial=np.inf) < -bv:
            b = -(bv + vd) / vtebrk  # > 0 in breakdown
            e_b = np.exp(np.minimum(b, _MAX_EXPONENT))
            i_brk = -e_b * (1.0 + np.maximum(b - _MAX_EXPONENT, 0.0))
            brk = (vd < -bv) & ~forward  # dioload.c: the forward branch comes first
            current = np.where(brk, i_brk, current)
            conductance = np.where(brk, e_b / vtebrk, conductance)
    current *= i_sat
    current += gmin * vd
    conductance *= i_sat
    conductance += gmin
    return current, conductance


def diode_current(
    vd: np.ndarray,
    *,
    i_sat: float,
    vte: float,
    rs: float = 0.0,
    gmin: float = GMIN,
    bv: float = math.inf,
    vtebrk: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Current and small-signal conductance of a diode with series resistance, at its terminals.

    With ``rs = 0`` this is :func:`junction_current`. Otherwise ngspice puts ``RS`` between the
    anode and an internal node; the junction voltage ``vj`` then solves, per diode,
    ``vj + RS I_j(vj) = vd`` (strictly increasing in ``vj``, one root between 0 and ``vd``),
    found here by Newton's method safeguarded by bisection, vectorised. The terminal conductance
    follows from the implicit function theorem: ``dI/dvd = g_j / (1 + RS g_j)``.

    Parameters
    ----------
    vd : array, V
        Terminal voltage (anode minus cathode).
    i_sat : float, A
        Saturation current at the circuit temperature.
    vte : float, V
        ``N k T / q``.
    rs : float, Ohm
        Series resistance (0: none).
    gmin : float, S
        Conductance across the junction.
    bv : float, V
        Breakdown knee; ``inf``: none.
    vtebrk : float, V
        ``NBV k T / q``.

    Returns
    -------
    tuple of numpy.ndarray
        Current in A (anode to cathode) and ``dI/dvd`` in S, shaped as ``vd``.
    """
    law = dict(i_sat=i_sat, vte=vte, gmin=gmin, bv=bv, vtebrk=vtebrk)
    if not rs:
        return junction_current(vd, **law)
    vd = np.asarray(vd, dtype=float)
    lo, hi = np.minimum(vd, 0.0), np.maximum(vd, 0.0)
    # start on the side from which Newton converges monotonically, near the root: forward (convex),
    # the junction voltage at which the junction alone would carry vd / RS, an upper bound of the
    # root; reverse, vd itself, or in breakdown (concave) the junction voltage at which the
    # breakdown exponential alone carries |vd| / RS, a lower bound. (From vd itself Newton crawls
    # one vte per step down an exponential: 50 steps for 2 V.)
    with np.errstate(invalid="ignore", over="ignore"):
        vj = np.where(vd > 0, np.minimum(vd, vte * np.log1p(hi / (rs * i_sat))), vd)
        if bv < math.inf:
            vj = np.where(vd < 0, np.maximum(vd, -bv - vtebrk * np.log1p(-lo / (rs * i_sat))), vj)
    # the residual vj + RS I - vd cancels to ~eps |vd|: the steps stop at that size
    tol = 8 * np.finfo(float).eps * np.maximum(np.abs(vd), vte)
    active = np.ones(vd.shape, dtype=bool)
    for _ in range(_RS_ITERATIONS):
        i_j, g_j = junction_current(vj, **law)
        f = vj + rs * i_j - vd
        lo = np.where(f < 0, vj, lo)
        hi = np.where(f > 0, vj, hi)
        step = f / (1.0 + rs * g_j)
        new = vj - step
        outside = (new < lo) | (new > hi)  # (vj itself is an end of the bracket)
        new = np.where(outside, 0.5 * (lo + hi), new)
        active = np.abs(new - vj) > tol
        vj = new
        if not active.any():
            break
    i_j, g_j = junction_current(vj, **law)
    return i_j, g_j / (1.0 + rs * g_j)


def law_current(vd: np.ndarray, law: DiodeLaw) -> tuple[np.ndarray, np.ndarray]:
    """:func:`diode_current` with the effective parameters of ``law``.

    Parameters
    ----------
    vd : numpy.ndarray
        Terminal voltages, V.
    law : DiodeLaw
        The effective parameters (:func:`diode_law`).

    Returns
    -------
    tuple of numpy.ndarray
        Current in A and its slope in S.
    """
    return diode_current(
        vd,
        i_sat=law.i_sat,
        vte=law.vte,
        rs=law.rs,
        gmin=law.gmin,
        bv=law.bv,
        vtebrk=law.vtebrk,
    )


def diode_clamp_current(
    v: np.ndarray, v_lo: np.ndarray, v_hi: np.ndarray, law: DiodeLaw
) -> tuple[np.ndarray, np.ndarray]:
    """Current into a node from its diode clamp, and its derivative.

    One diode conducts from the node up to the rail ``v_hi``, one from the rail ``v_lo`` up to the
    node, so the node behaves as a soft hard-sigmoid between the rails (DESIGN.md §2).

    Returns ``(current into the node in A, d current / dv in S)``; shapes broadcast with ``v``.

    Parameters
    ----------
    v : numpy.ndarray
        Node voltages, V.
    v_lo : numpy.ndarray
        Lower rail, V.
    v_hi : numpy.ndarray
        Upper rail, V.
    law : DiodeLaw
        The diodes' effective parameters at the circuit temperature (:func:`diode_law`).

    Returns
    -------
    tuple of numpy.ndarray
        Current in A and its slope in S.
    """
    i_up, g_up = law_current(v - v_hi, law)
    i_dn, g_dn = law_current(v_lo - v, law)
    return i_dn - i_up, -(g_up + g_dn)


def tanh_transfer(v: np.ndarray, v_sat: float) -> tuple[np.ndarray, np.ndarray]:
    """Saturating transconductor transfer ``V_s tanh(v / V_s)`` (V) and its slope (1).

    A transconductor of gain ``w`` (S) then injects ``w V_s tanh(v_j / V_s)`` (A).

    Parameters
    ----------
    v : numpy.ndarray
        Voltages, V.
    v_sat : float
        ``V_s``, V.

    Returns
    -------
    tuple of numpy.ndarray
        Transfer in V and slope.
    """
    t = np.tanh(v / v_sat)
    return v_sat * t, 1.0 - t * t
