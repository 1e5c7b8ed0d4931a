"""User device files: ``.subckt`` definitions and ``.model`` cards, validated line by line.

Issue 17 item 3. A designer hands over a file of subcircuits and model cards; nothing in it may
make ngspice run a command or read a file. So the file is never passed on: it is parsed into the
package's own validated objects (:class:`~circuitep.netlist.Subcircuit`,
:class:`~circuitep.netlist.ModelCard`, :class:`~circuitep.netlist.Element`) and netlists write
those, from numbers and identifiers only. Allowed, line by line:

- comments (``*`` lines, text after ``;`` or `` $``), blank lines, ``+`` continuations;
- ``.subckt NAME PIN ...`` ... ``.ends [NAME]`` (not nested; no ``params:``);
- ``.model NAME TYPE (KEY=NUMBER ...)`` for TYPE ``D``, ``NMOS``, ``PMOS``;
- inside a subcircuit, elements ``R``, ``C`` (two nodes, a number), ``D`` (two nodes, a model),
  ``M`` (drain gate source bulk, a model, ``W=`` and ``L=``, optionally ``M AD AS PD PS NRD
  NRS``), ``V``/``I`` (two nodes, ``[DC] NUMBER``), ``G`` (four nodes, a number).

Everything else is refused with ``file:line`` and the reason: control sections, analyses,
``.include``/``.lib`` (no file is read beyond the one named), ``.param`` and braced expressions
(write numbers), behavioural and code-model devices (``B``, ``A``), quotes, non-ASCII text. Names
are lowercased (SPICE is case-insensitive); numbers take SPICE's scale suffixes (``f p n u m k
meg g t``; ``M`` is milli).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from circuitep.elements.diode_clamp import DIODE_CARD_KEYS
from circuitep.netlist import (
    IDENT,
    MODEL_KINDS,
    MOSFET_OPTIONAL,
    MOSFET_PARAMS,
    Element,
    ModelCard,
    Subcircuit,
)
from circuitep.spec import DiodeModel

#: The largest device file read (bytes).
MAX_FILE_BYTES = 1_000_000
_SUFFIX = {"t": "1e12", "g": "1e9", "meg": "1e6", "k": "1e3", "mil": "25.4e-6", "m": "1e-3"}
_SUFFIX |= {"u": "1e-6", "n": "1e-9", "p": "1e-12", "f": "1e-15", "": "1"}
_NUMBER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)(meg|mil|[tgkmunpf])?([a-z]*)")
_PLAIN = re.compile(r"[\x20-\x7e]*")


class DeviceFileError(ValueError):
    """A device file holds something it may not; the message names ``file:line``."""


@dataclass(frozen=True)
class DeviceLibrary:
    """What a device file defines.

    Attributes
    ----------
    subcircuits : dict of str to Subcircuit
        By (lowercased) name.
    models : dict of str to ModelCard
        By (lowercased) name.
    """

    subcircuits: dict
    models: dict


def spice_value(text: str) -> float:
    """A SPICE number with an optional scale suffix (``2u``, ``1meg``, ``10pF``), as a float.

    Parameters
    ----------
    text : str
        The number, lowercase.

    Returns
    -------
    float
        Its value.

    Raises
    ------
    ValueError
        If ``text`` is not such a number.
    """
    m = _NUMBER.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not a number")
    value = float(Decimal(m.group(1)) * Decimal(_SUFFIX[m.group(2) or ""]))  # 100u is 1e-4
    if not (value == value and abs(value) < float("inf")):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _lines(path: Path, data: bytes):
    """``(line number, text)`` of the file's logical lines: comments gone, continuations joined."""
    out: list[list] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("ascii").rstrip("\r")
        except UnicodeDecodeError:
            raise DeviceFileError(f"{path}:{number}: not ASCII text") from None
        if not _PLAIN.fullmatch(line.replace("\t", " ")):
            raise DeviceFileError(f"{path}:{number}: control characters")
        line = line.replace("\t", " ").split(";", 1)[0]
        line = re.split(r"\s\$", line, maxsplit=1)[0].strip().lower()
        if not line or line.startswith("*"):
            continue
        if line.startswith("+"):
            if not out:
                raise DeviceFileError(
                    f"{path}:{number}: a continuation line with nothing to continue"
                )
            out[-1][1] += " " + line[1:]
            continue
        out.append([number, line])
    return [(n, text) for n, text in out]


def _ident(path, number, what, name) -> str:
    if not IDENT.fullmatch(name):
        raise DeviceFileError(f"{path}:{number}: {what} {name!r} is not a plain SPICE name")
    return name


def _number(path, number, what, text) -> float:
    try:
        return spice_value(text)
    except ValueError as exc:
        raise DeviceFileError(f"{path}:{number}: {what}: {exc}") from None


def _pairs(path, number, tokens, what) -> list[tuple[str, float]]:
    pairs = []
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key or not value:
            raise DeviceFileError(f"{path}:{number}: {what}: expected KEY=NUMBER, got {token!r}")
        pairs.append(
            (_ident(path, number, what, key), _number(path, number, f"{what} {key}", value))
        )
    return pairs


def _element(path, number, tokens) -> Element:
    name = _ident(path, number, "element name", tokens[0])
    letter = name[0].upper()
    rest = tokens[1:]
    node = lambda k: _ident(path, number, f"{name} node", rest[k])  # noqa: E731

    def need(n):
        if len(rest) < n:
            raise DeviceFileError(f"{path}:{number}: {name}: expected {n} fields, got {len(rest)}")

    try:
        if letter in "RC":
            need(3)
            if len(rest) != 3:
                raise DeviceFileError(f"{path}:{number}: {name}: two nodes and a value only")
            return Element(letter, name, (node(0), node(1)), _number(path, number, name, rest[2]))
        if letter == "D":
            need(3)
            if len(rest) != 3:
                raise DeviceFileError(f"{path}:{number}: {name}: two nodes and a model only")
            model = _ident(path, number, f"{name} model", rest[2])
            return Element("D", name, (node(0), node(1)), model)
        if letter in "VI":
            need(3)
            values = rest[2:]
            if values[0] == "dc":
                values = values[1:]
            if len(values) != 1:
                raise DeviceFileError(
                    f"{path}:{number}: {name}: a source in a device file is DC only: "
                    "two nodes, [DC] and a number"
                )
            value = _number(path, number, name, values[0])
            return Element(letter, name, (node(0), node(1)), value)
        if letter == "G":
            need(5)
            if len(rest) != 5:
                raise DeviceFileError(f"{path}:{number}: {name}: four nodes and a gain only")
            nodes = tuple(node(k) for k in range(4))
            return Element("G", name, nodes, _number(path, number, name, rest[4]))
        if letter == "M":
            need(5)
            nodes = tuple(node(k) for k in range(4))
            model = _ident(path, number, f"{name} model", rest[4])
            pairs = dict(_pairs(path, number, rest[5:], name))
            unknown = sorted(set(pairs) - set(MOSFET_PARAMS) - set(MOSFET_OPTIONAL))
            if unknown:
                raise DeviceFileError(
                    f"{path}:{number}: {name}: parameter(s) {unknown} not allowed; allowed "
                    f"{list(MOSFET_PARAMS) + list(MOSFET_OPTIONAL)}"
                )
            return Element("M", name, nodes, model, params=tuple(pairs.items()))
    except ValueError as exc:
        if isinstance(exc, DeviceFileError):
            raise
        raise DeviceFileError(f"{path}:{number}: {exc}") from None
    raise DeviceFileError(
        f"{path}:{number}: element {name!r}: kind {letter!r} is not allowed in a device file "
        "(allowed R, C, D, M, V, I, G)"
    )


def read_device_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> DeviceLibrary:
    """Parse and validate a user's file of ``.subckt`` definitions and ``.model`` cards.

    Parameters
    ----------
    path : str or os.PathLike
        The file (a regular file of at most ``max_bytes``).
    max_bytes : int
        Size limit, bytes.

    Returns
    -------
    DeviceLibrary
        Its subcircuits and models, as validated objects.

    Raises
    ------
    DeviceFileError
        Naming ``file:line`` and what is not allowed there.
    """
    path = Path(path)
    if not path.is_file():
        raise DeviceFileError(f"{path}: no such regular file")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DeviceFileError(f"{path}: larger than {max_bytes} bytes")
    subcircuits: dict[str, Subcircuit] = {}
    models: dict[str, ModelCard] = {}
    current: tuple[str, tuple, list, int] | None = None
    for number, line in _lines(path, data):
        for bad in ("'", '"', "{", "}", "`"):
            if bad in line:
                raise DeviceFileError(
                    f"{path}:{number}: {bad!r}: quotes and braced expressions are not allowed "
                    "(write numbers)"
                )
        tokens = line.replace("(", " ").replace(")", " ").replace(",", " ").split()
        tokens = _glue(tokens)
        head = tokens[0]
        if head == ".subckt":
            if current is not None:
                raise DeviceFileError(f"{path}:{number}: .subckt inside .subckt {current[0]}")
            if len(tokens) < 3:
                raise DeviceFileError(f"{path}:{number}: .subckt needs a name and pins")
            if any("=" in t or t == "params:" for t in tokens):
                raise DeviceFileError(
                    f"{path}:{number}: subcircuit parameters (params:) are not supported: write "
                    "numbers"
                )
            name = _ident(path, number, "subcircuit name", tokens[1])
            pins = tuple(_ident(path, number, "pin", t) for t in tokens[2:])
            current = (name, pins, [], number)
        elif head == ".ends":
            if current is None:
                raise DeviceFileError(f"{path}:{number}: .ends without .subckt")
            if len(tokens) > 1 and tokens[1] != current[0]:
                raise DeviceFileError(f"{path}:{number}: .ends {tokens[1]} closes {current[0]}")
            name, pins, elements, start = current
            if name in subcircuits:
                raise DeviceFileError(f"{path}:{start}: subcircuit {name!r} defined twice")
            try:
                subcircuits[name] = Subcircuit(name, pins, tuple(elements))
            except (ValueError, TypeError) as exc:
                raise DeviceFileError(f"{path}:{start}: subcircuit {name!r}: {exc}") from None
            current = None
        elif head == ".model":
            if len(tokens) < 3:
                raise DeviceFileError(f"{path}:{number}: .model needs a name and a type")
            name = _ident(path, number, "model name", tokens[1])
            kind = tokens[2].upper()
            if kind not in MODEL_KINDS:
                raise DeviceFileError(
                    f"{path}:{number}: model type {tokens[2]!r} is not one of {MODEL_KINDS}"
                )
            if name in models:
                raise DeviceFileError(f"{path}:{number}: model {name!r} defined twice")
            try:
                models[name] = ModelCard(name, kind, tuple(_pairs(path, number, tokens[3:], name)))
            except ValueError as exc:
                raise DeviceFileError(f"{path}:{number}: {exc}") from None
        elif head.startswith("."):
            raise DeviceFileError(
                f"{path}:{number}: {head!r} is not allowed in a device file (only .subckt, .ends "
                "and .model: no control sections, analyses, includes, libraries or parameters)"
            )
        else:
            if current is None:
                raise DeviceFileError(
                    f"{path}:{number}: element {tokens[0]!r} outside a .subckt (a device file "
                    "holds subcircuits and models only)"
                )
            current[2].append(_element(path, number, tokens))
    if current is not None:
        raise DeviceFileError(f"{path}:{current[3]}: .subckt {current[0]} has no .ends")
    for sub in subcircuits.values():
        for el in sub.elements:
            if el.letter in "DM" and el.value not in models:
                raise DeviceFileError(
                    f"{path}: subcircuit {sub.name!r}, {el.name}: model {el.value!r} is not "
                    "defined in this file"
                )
    return DeviceLibrary(subcircuits, models)


def _glue(tokens: list[str]) -> list[str]:
    """``key = value`` written with spaces as one ``key=value`` token."""
    out: list[str] = []
    k = 0
    while k < len(tokens):
        t = tokens[k]
        if t == "=" and out and k + 1 < len(tokens):
            out[-1] = f"{out[-1]}={tokens[k + 1]}"
            k += 2
            continue
        if t.endswith("=") and k + 1 < len(tokens):
            out.append(t + tokens[k + 1])
            k += 2
            continue
        if t.startswith("=") and out:
            out[-1] += t
            k += 1
            continue
        out.append(t)
        k += 1
    return out


def diode_model(card: ModelCard, where: str = "") -> DiodeModel:
    """The clamps' diode model from a user's ``.model NAME D(...)`` card.

    Every parameter must be one circuitep models (:class:`~circuitep.spec.DiodeModel`: IS, N, RS,
    CJO (or CJ0), VJ, M, FC, TT, BV, IBV, NBV, EG, XTI, TNOM, TRS1, TRS2; ``LEVEL=1``), within
    its bounds.

    Parameters
    ----------
    card : ModelCard
        A ``D`` card (:func:`read_device_file`).
    where : str
        The file, for messages.

    Returns
    -------
    DiodeModel
        The model, named as the card.
    """
    if card.kind != "D":
        raise DeviceFileError(f"{where}model {card.name!r} is a {card.kind}, not a diode (D)")
    by_card = {spice: name for name, spice in DIODE_CARD_KEYS.items()}
    values = {}
    for key, value in card.params:
        if key == "level" and value == 1:
            continue
        field = by_card.get("cjo" if key == "cj0" else key)
        if field is None:
            raise DeviceFileError(
                f"{where}model {card.name!r}: parameter {key!r} is not one circuitep models; "
                f"allowed {sorted(by_card)} and level=1"
            )
        values[field] = value
    try:
        return DiodeModel(name=card.name, **values)
    except (ValueError, TypeError) as exc:
        raise DeviceFileError(f"{where}model {card.name!r}: {exc}") from None
