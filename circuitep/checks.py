"""Plain values from user input: one place that decides what a name or a number is.

A value given from Python may be a subclass of ``str``, ``int`` or ``float`` whose methods say
something else than what it holds (a ``str`` whose ``__format__`` returns ``.control`` lines, a
``float`` whose ``__repr__`` or ``__float__`` lies). Everything a spec, a netlist or a training
configuration keeps is first turned into the plain built-in value that it holds, so that what is
validated is what is written. Booleans are not numbers here (``True`` is not 1 S).
"""

from __future__ import annotations

import math

import numpy as np


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number.

    Parameters
    ----------
    value : object
        Any value.

    Returns
    -------
    bool
        True for a Python or numpy integer or float; False for everything else, booleans
        (``bool``, ``np.bool_``) included.
    """
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer.

    Parameters
    ----------
    value : object
        Any value.

    Returns
    -------
    bool
        True for a Python or numpy integer; False for everything else, booleans included.
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_bool(value: object) -> bool:
    """Whether ``value`` is a boolean.

    Parameters
    ----------
    value : object
        Any value.

    Returns
    -------
    bool
        True for ``bool`` and ``np.bool_``; False for everything else (``0`` and ``1`` included).
    """
    return isinstance(value, (bool, np.bool_))


def plain_str(path: str, value: object) -> str:
    """The text ``value`` holds, as a plain ``str``.

    Not what a subclass's ``__str__`` or ``__format__`` says: the base method copies the
    characters and no subclass method runs.

    Parameters
    ----------
    path : str
        Name of the field, used in the error message.
    value : object
        The value to convert.

    Returns
    -------
    str
        A plain ``str`` holding the same characters.

    Raises
    ------
    TypeError
        If ``value`` is not a string; the message names ``path``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{path} must be a string, got {type(value).__name__}")
    return str.__str__(value)  # the base method copies the characters; no subclass method runs


def plain_int(value: int | np.integer) -> int:
    """The integer ``value`` holds, as a plain ``int``.

    Parameters
    ----------
    value : int or np.integer
        An integer (see :func:`is_integer`); the caller has checked it.

    Returns
    -------
    int
        numpy's stored value, exactly (no subclass ``__int__`` runs).
    """
    if isinstance(value, int):
        return int.__index__(value)
    return int(np.asarray(value).astype(object)[()].__index__())  # numpy's stored value, exactly


def plain_float(path: str, value: object) -> float:
    """The number ``value`` holds, as a plain ``float``.

    Non-finite values are returned as they are (see :func:`finite_float`).

    Parameters
    ----------
    path : str
        Name of the field, used in error messages.
    value : object
        A number (:func:`is_number`).

    Returns
    -------
    float
        A plain ``float``; a numpy long double beyond 1.8e308 becomes ``inf``.

    Raises
    ------
    TypeError
        If ``value`` is not a number; the message names ``path`` and the value.
    ValueError
        If ``value`` is an integer too large for a float.
    """
    if not is_number(value):
        raise TypeError(f"{path} = {value!r} must be a number, got {type(value).__name__}")
    if isinstance(value, float):  # np.float64 too
        return float.__float__(value)
    if isinstance(value, int):
        try:
            return float(int.__index__(value))
        except OverflowError as exc:
            raise ValueError(f"{path} = {value} is too large for a float") from exc
    with np.errstate(over="ignore"):  # a long double beyond 1.8e308 becomes inf, refused by callers
        return float(np.asarray(value).astype(np.float64)[()])


def finite_float(path: str, value: object) -> float:
    """:func:`plain_float`, refusing NaN and infinities.

    Parameters
    ----------
    path : str
        Name of the field, used in error messages.
    value : object
        A number (:func:`is_number`).

    Returns
    -------
    float
        A plain, finite ``float``.

    Raises
    ------
    TypeError
        If ``value`` is not a number.
    ValueError
        If it is NaN, infinite or an integer too large for a float; the message names ``path``.
    """
    x = plain_float(path, value)
    if not math.isfinite(x):
        raise ValueError(f"{path} = {x} is not finite")
    return x
