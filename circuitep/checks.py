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
    """Whether ``value`` is a real number: a Python or numpy integer or float, not a boolean."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def is_integer(value: object) -> bool:
    """Whether ``value`` is a Python or numpy integer, not a boolean."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def plain_str(path: str, value: object) -> str:
    """The text ``value`` holds, as a plain ``str`` (not what a subclass's ``__str__`` or
    ``__format__`` says); ``TypeError`` naming ``path`` for anything but a string."""
    if not isinstance(value, str):
        raise TypeError(f"{path} must be a string, got {type(value).__name__}")
    return str.__str__(value)  # the base method copies the characters; no subclass method runs


def plain_int(value: int | np.integer) -> int:
    """The integer ``value`` (see :func:`is_integer`) holds, as a plain ``int``."""
    if isinstance(value, int):
        return int.__index__(value)
    return int(np.asarray(value).astype(object)[()].__index__())  # numpy's stored value, exactly


def plain_float(path: str, value: object) -> float:
    """The number ``value`` holds, as a plain ``float``.

    ``TypeError`` naming ``path`` if it is not a number (:func:`is_number`), ``ValueError`` if it
    is an integer too large for a float. Non-finite values are returned as they are.
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
    """:func:`plain_float`, refusing NaN and infinities with a ``ValueError`` naming ``path``."""
    x = plain_float(path, value)
    if not math.isfinite(x):
        raise ValueError(f"{path} = {x} is not finite")
    return x
