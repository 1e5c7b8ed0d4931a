"""Behavioural expressions written once.

One tree gives a ``B`` source's SPICE text and its numpy value.

An expression is built from immutable nodes: constants (:class:`Const`), node voltages
(:func:`v`), ``+ - * /`` and unary minus (Python's operators on :class:`Expr`), :func:`exp`,
:func:`tanh`, :func:`minimum` and the ternary :func:`where` on the comparison :func:`ge`; the
words and signs :func:`circuitep.netlist.check_expression` accepts, nothing else.
:func:`to_spice` writes it (numbers through :func:`circuitep.netlist.spice_number`, integers as
integers) and :func:`evaluate` computes it with numpy over a batch of node voltages.

The text follows the tree: a binary operator's left operand is parenthesised only when it binds
less tightly, its right operand also when it binds equally (``a-(b-c)``, ``a/(b*c)``) or starts
with a minus, so that ngspice evaluates the same operations in the same order as numpy does. A
negation is written ``-x`` without parentheses around a product or quotient (``-(a*b)`` and
``(-a)*b`` are the same double). A comparison's left side and the ternary with both branches
are always parenthesised, the form the netlists have always used: ``(((a)>=b)?(x):(y))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuitep.checks import finite_float, is_bool, is_integer, is_number, plain_int
from circuitep.netlist import check_ident, spice_number

#: Integers are written as integers; beyond 2**53 ngspice's double would not hold them exactly.
_MAX_INT = 2**53
#: Functions: their numbers of arguments and numpy's implementation.
_FUNCTIONS = {"exp": (1, np.exp), "tanh": (1, np.tanh), "min": (2, np.minimum)}
_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
# How tightly each form binds (higher: tighter).
_CMP, _ADD, _MUL, _NEG, _ATOM = 1, 2, 3, 4, 5
_PREC = {"+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL}


class Expr:
    """Base of the expression nodes.

    ``+ - * /`` and unary ``-`` build new nodes (numbers are wrapped in :class:`Const`). Each node
    writes itself (``_write``: its text and how tightly it binds) and evaluates itself
    (``_eval``).
    """

    __slots__ = ("_written",)  # the text and binding of _write, kept once computed
    __array_ufunc__ = None  # numpy scalars and arrays leave arithmetic with an Expr to it

    def _text(self) -> tuple[str, int]:
        """``_write()``, computed once per node.

        A shared subtree (a layer's ``tanh(v(a_j)/V_s)`` in each of its elements) is written once.
        """
        try:
            return self._written
        except AttributeError:
            written = self._write()
            object.__setattr__(self, "_written", written)
            return written

    def __add__(self, other):
        return Binary("+", self, wrap(other))

    def __radd__(self, other):
        return Binary("+", wrap(other), self)

    def __sub__(self, other):
        return Binary("-", self, wrap(other))

    def __rsub__(self, other):
        return Binary("-", wrap(other), self)

    def __mul__(self, other):
        return Binary("*", self, wrap(other))

    def __rmul__(self, other):
        return Binary("*", wrap(other), self)

    def __truediv__(self, other):
        return Binary("/", self, wrap(other))

    def __rtruediv__(self, other):
        return Binary("/", wrap(other), self)

    def __neg__(self):
        return Neg(self)


@dataclass(frozen=True, slots=True)
class Const(Expr):
    """A number.

    A finite float (written by :func:`~circuitep.netlist.spice_number`) or an integer of at most
    2**53 in magnitude (written as an integer, ``3`` rather than ``3.0``).
    """

    value: int | float

    def __post_init__(self):
        x = self.value
        if is_integer(x):
            x = plain_int(x)
            if abs(x) > _MAX_INT:
                raise ValueError(f"expression constant {x} is beyond 2**53: write it as a float")
        elif is_number(x):
            x = finite_float("expression constant", x)
            object.__setattr__(self, "_written", (spice_number(x), _NEG if x < 0 else _ATOM))
        else:
            kind = "a boolean" if is_bool(x) else type(x).__name__
            raise TypeError(f"an expression constant must be a number, got {x!r} ({kind})")
        object.__setattr__(self, "value", x)

    def _write(self):
        text = str(self.value) if isinstance(self.value, int) else spice_number(self.value)
        return text, _NEG if text.startswith("-") else _ATOM

    def _eval(self, voltages):
        return np.float64(self.value)


@dataclass(frozen=True, slots=True)
class Voltage(Expr):
    """The voltage of node ``name`` (V), written ``v(name)``; ``name`` a SPICE identifier."""

    name: str

    def __post_init__(self):
        object.__setattr__(self, "name", check_ident("expression node", self.name, reserved=True))

    def _write(self):
        return f"v({self.name})", _ATOM

    def _eval(self, voltages):
        if self.name not in voltages:
            raise ValueError(
                f"expression needs the voltage of node {self.name!r}; given {sorted(voltages)}"
            )
        return np.asarray(voltages[self.name], dtype=float)


@dataclass(frozen=True, slots=True)
class Neg(Expr):
    """``-arg``."""

    arg: Expr

    def __post_init__(self):
        _check_operands("-", (self.arg,))

    def _write(self):
        arg, p = self.arg._text()
        return "-" + (f"({arg})" if p < _MUL else arg), _NEG

    def _eval(self, voltages):
        return -self.arg._eval(voltages)


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    """``left op right``, ``op`` one of ``+ - * /``."""

    op: str
    left: Expr
    right: Expr

    def __post_init__(self):
        if self.op not in _BINARY:
            raise ValueError(f"expression operator {self.op!r} is not one of {sorted(_BINARY)}")
        _check_operands(self.op, (self.left, self.right))

    def _write(self):
        p = _PREC[self.op]
        left, lp = self.left._text()
        right, rp = self.right._text()
        if lp < p:
            left = f"({left})"
        if rp <= p or rp == _NEG:
            right = f"({right})"
        return f"{left}{self.op}{right}", p

    def _eval(self, voltages):
        return _BINARY[self.op](self.left._eval(voltages), self.right._eval(voltages))


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """``fn(args...)``, ``fn`` one of ``exp``, ``tanh`` and ``min``."""

    fn: str
    args: tuple[Expr, ...]

    def __post_init__(self):
        if self.fn not in _FUNCTIONS:
            raise ValueError(f"expression function {self.fn!r} is not one of {sorted(_FUNCTIONS)}")
        if len(self.args) != _FUNCTIONS[self.fn][0]:
            raise ValueError(
                f"{self.fn} takes {_FUNCTIONS[self.fn][0]} argument(s), got {len(self.args)}"
            )
        _check_operands(self.fn, self.args)

    def _write(self):
        return f"{self.fn}({','.join(a._text()[0] for a in self.args)})", _ATOM

    def _eval(self, voltages):
        return _FUNCTIONS[self.fn][1](*(a._eval(voltages) for a in self.args))


@dataclass(frozen=True, slots=True)
class GreaterEqual(Expr):
    """The condition ``left >= right`` of a :class:`Where` (not a value of its own)."""

    left: Expr
    right: Expr

    def __post_init__(self):
        _check_operands(">=", (self.left, self.right))

    def _write(self):
        right, rp = self.right._text()
        return f"({self.left._text()[0]})>=" + (f"({right})" if rp <= _CMP else right), _CMP

    def _eval(self, voltages):
        return np.greater_equal(self.left._eval(voltages), self.right._eval(voltages))


@dataclass(frozen=True, slots=True)
class Where(Expr):
    """The ternary ``cond ? then : other``."""

    cond: GreaterEqual
    then: Expr
    other: Expr

    def __post_init__(self):
        if not isinstance(self.cond, GreaterEqual):
            raise TypeError(f"a ternary's condition must be a comparison, got {self.cond!r}")
        _check_operands("ternary", (self.then, self.other))

    def _write(self):
        parts = (self.cond._text()[0], self.then._text()[0], self.other._text()[0])
        return "(({})?({}):({}))".format(*parts), _ATOM

    def _eval(self, voltages):
        cond = self.cond._eval(voltages)
        # Both branches are computed everywhere, as in circuitep.devices; overflow or a division
        # by zero in the branch not selected is not an error (ngspice computes only the selected).
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            then, other = self.then._eval(voltages), self.other._eval(voltages)
        return np.where(cond, then, other)


def _check_operands(what: str, args) -> None:
    for a in args:
        if not isinstance(a, Expr) or isinstance(a, GreaterEqual):
            raise TypeError(f"an operand of {what} must be a value expression, got {a!r}")


def wrap(x) -> Expr:
    """``x`` itself if it is an expression, else the constant ``x``.

    Parameters
    ----------
    x : Expr or number
        An expression, or a number to wrap in :class:`Const`.

    Returns
    -------
    Expr
        The expression.
    """
    return x if isinstance(x, Expr) else Const(x)


def v(name: str) -> Voltage:
    """The voltage of node ``name`` (V).

    Parameters
    ----------
    name : str
        The node's SPICE name.

    Returns
    -------
    Voltage
        The node voltage ``v(name)``.
    """
    return Voltage(name)


def exp(x) -> Call:
    """``exp(x)``.

    Parameters
    ----------
    x : Expr or number
        The argument.

    Returns
    -------
    Call
        The expression.
    """
    return Call("exp", (wrap(x),))


def tanh(x) -> Call:
    """``tanh(x)``.

    Parameters
    ----------
    x : Expr or number
        The argument.

    Returns
    -------
    Call
        The expression.
    """
    return Call("tanh", (wrap(x),))


def minimum(a, b) -> Call:
    """``min(a, b)``, elementwise.

    Parameters
    ----------
    a, b : Expr or number
        The operands.

    Returns
    -------
    Call
        The expression.
    """
    return Call("min", (wrap(a), wrap(b)))


def ge(a, b) -> GreaterEqual:
    """The condition ``a >= b``.

    Parameters
    ----------
    a, b : Expr or number
        The operands.

    Returns
    -------
    GreaterEqual
        The condition (usable only in :func:`where`).
    """
    return GreaterEqual(wrap(a), wrap(b))


def where(cond: GreaterEqual, then, other) -> Where:
    """``then`` where ``cond`` holds, else ``other`` (SPICE's ``cond ? then : other``).

    Parameters
    ----------
    cond : GreaterEqual
        The condition, from :func:`ge`.
    then : Expr or number
        The value where it holds.
    other : Expr or number
        The value elsewhere.

    Returns
    -------
    Where
        The expression.
    """
    return Where(cond, wrap(then), wrap(other))


def total(terms) -> Expr:
    """``terms[0] + terms[1] + ...``, summed left to right.

    Parameters
    ----------
    terms : iterable of Expr or number
        At least one term.

    Returns
    -------
    Expr
        The sum.
    """
    terms = [wrap(t) for t in terms]
    if not terms:
        raise ValueError("a sum needs at least one term")
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def to_spice(e: Expr) -> str:
    """The SPICE text of ``e``.

    In ngspice's ``B``-source syntax; the module docstring says where it puts parentheses.

    Parameters
    ----------
    e : Expr
        A value expression (a bare :func:`ge` condition is refused).

    Returns
    -------
    str
        Text that :func:`circuitep.netlist.check_expression` accepts.
    """
    _check_operands("a B source", (e,))
    return e._text()[0]


def evaluate(e: Expr, voltages: dict[str, np.ndarray]) -> np.ndarray:
    """The value of ``e`` with numpy, elementwise over a batch.

    Parameters
    ----------
    e : Expr
        A value expression; its unit is whatever it is built to be (A for a ``B`` source).
    voltages : dict of str to ndarray
        Node voltages (V) by node name; arrays of one shape (say ``(batch,)``), or broadcasting.

    Returns
    -------
    ndarray
        The value, of the broadcast shape of the voltages it reads.

    Raises
    ------
    ValueError
        When the expression reads a node that ``voltages`` lacks.
    """
    _check_operands("an evaluation", (e,))
    return np.asarray(e._eval(voltages), dtype=float)
