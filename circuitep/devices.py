"""Element equations, written once for both engines.

Every function is vectorised over numpy arrays and states its SI units. The numpy engine builds
KCL residuals and Jacobians from them; the compiler uses the same constants so that an ngspice
netlist and the numpy solver describe one circuit.
"""

from __future__ import annotations

import numpy as np

#: Boltzmann constant over the elementary charge (V/K), with the CODATA 2014 values ngspice 39 uses
#: (measured: with CODATA 2018 values the two engines differ by 2e-7 V at a conducting clamp).
K_OVER_Q = 1.38064852e-23 / 1.6021766208e-19
#: ngspice's nominal temperature, 27 degC (K).
T_NOMINAL = 300.15
#: Thermal voltage kT/q at 27 degC (V), about 25.86 mV.
THERMAL_VOLTAGE = K_OVER_Q * T_NOMINAL
#: ngspice's default GMIN (S): a conductance in parallel with every junction.
GMIN = 1e-12
#: Largest exponent evaluated before the diode current is continued linearly (avoids overflow
#: during Newton iterations far from the solution; never active at a converged state of a sane
#: circuit, where it would mean a junction voltage of about 2 V).
_MAX_EXPONENT = 80.0


def diode_current(
    vd: np.ndarray, i_sat: float, n: float, gmin: float = GMIN
) -> tuple[np.ndarray, np.ndarray]:
    """Shockley diode current and small-signal conductance, ngspice's DC model.

    Parameters
    ----------
    vd : array, V
        Junction voltage (anode minus cathode).
    i_sat : float, A
        Saturation current ``IS``.
    n : float
        Emission coefficient ``N``.
    gmin : float, S
        Conductance in parallel with the junction (ngspice option ``gmin``).

    Returns
    -------
    current : array, A
        Current from anode to cathode::

            I = IS (exp(vd / (N Vt)) - 1) + gmin vd              for vd >= -3 N Vt
            I = -IS (1 + (3 N Vt / (e vd))^3) + gmin vd          below (SPICE3 reverse model)

    conductance : array, S
        dI/dvd.
    """
    vte = n * THERMAL_VOLTAGE
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
    current *= i_sat
    current += gmin * vd
    conductance *= i_sat
    conductance += gmin
    return current, conductance


def diode_clamp_current(
    v: np.ndarray, v_lo: np.ndarray, v_hi: np.ndarray, i_sat: float, n: float, gmin: float = GMIN
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
    i_sat : float
        Saturation current, A.
    n : float
        Emission coefficient.
    gmin : float
        Conductance across each junction, S.

    Returns
    -------
    tuple of numpy.ndarray
        Current in A and its slope in S.
    """
    i_up, g_up = diode_current(v - v_hi, i_sat, n, gmin)
    i_dn, g_dn = diode_current(v_lo - v, i_sat, n, gmin)
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
