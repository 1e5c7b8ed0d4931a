"""Read and write network specs (TOML) and parameters (npz).

A spec file is plain TOML::

    name = "feedforward"
    description = "one line"
    temperature = 27.0      # optional: the circuit's temperature (degC, default 27)
    [diode]                 # optional: i_sat (A), n, name, and the card's optional parameters
                            # rs (Ohm), cjo (F), vj (V), m, fc, tt (s), bv (V), ibv (A), nbv,
                            # eg (eV), xti, tnom (degC), trs1 (1/K), trs2 (1/K^2)
    [[groups]]              # name, role (input|hidden|output), size, leak (S), bias (A),
                            # capacitance (F), clamp = [v_lo, v_hi] (V), invert = "<input group>"
    [[couplings]]           # name, kind (resistor|vccs|tanh|...), src, dst, weight = [[...]] (S),
                            # mask = [[true, ...]] (optional), and the kind's settings
                            # (e.g. v_sat (V), tanh only)
    [sample]                # optional: inputs = [...] (V), targets = [...] (V)

Scalars broadcast over a group. Unknown keys are refused, so a misspelt field never passes silently.
Values must be physical: each parameter within the bounds of its element module's table
(:func:`circuitep.elements.registry.parameter_table` lists every kind, setting, unit, bound and
default: e.g. leaks 0 or at least 1e-15 S, transconductances within +-1e6 S), voltages within
+-1e3 V; the diode's name may not be a word ngspice reserves (``circuitep.netlist.RESERVED_NAMES``,
e.g. ``temper``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np

from circuitep.checks import is_bool
from circuitep.devices import T_NOMINAL_C
from circuitep.elements.registry import DIODE_PARAMS, kinds_using, setting_keys, settings_of
from circuitep.fileio import (  # noqa: F401 - atomic_path, write_text_atomic: for importers
    FileReadError,
    atomic_path,
    open_regular,
    read_text_limited,
    write_text_atomic,
)
from circuitep.spec import KINDS, Coupling, DiodeModel, Network, NodeGroup, Sample

_TOP = {"name", "description", "temperature", "diode", "groups", "couplings", "sample"}
_GROUP = {"name", "role", "size", "leak", "bias", "capacitance", "clamp", "invert"}
_FREE_ONLY = {"leak", "bias", "capacitance", "clamp"}
#: A coupling's keys: the common ones and every setting a kind declares (v_sat, g_out, ...).
_COUPLING = {"name", "kind", "src", "dst", "weight", "mask"} | setting_keys()
_DIODE = set(DIODE_PARAMS) | {"name"}
_SAMPLE = {"inputs", "targets"}
#: Largest spec file read (bytes): about 3 million weights as TOML, 30 times a 784-100-10 circuit.
MAX_SPEC_BYTES = 64 << 20


class SpecError(ValueError):
    """A spec file that cannot be read; the message names the file and the field."""


def _keys(path: str, table: dict, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"{path} must be a table")
    unknown = set(table) - allowed
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise SpecError(f"{path}: missing key(s) {missing}")
    return table


def network_from_dict(data: dict, source: str = "spec") -> Network:
    """Build a network from the parsed TOML structure of a spec (layout: the module docstring).

    Parameters
    ----------
    data : dict
        The parsed TOML tables: ``name``, ``description``, ``diode``, ``groups``, ``couplings``,
        ``sample``. Unknown keys are refused.
    source : str
        Where ``data`` came from (a file name), named in every error message.

    Returns
    -------
    Network
        The validated network.

    Raises
    ------
    SpecError
        For unknown or missing keys, input groups given free-node parameters, ``v_sat`` on a
        non-tanh coupling, and every value the network's validation refuses; the message names
        ``source`` and the field.
    """
    try:
        _keys(source, data, _TOP)
        groups = []
        for k, g in enumerate(data.get("groups", [])):
            g = _keys(f"{source}: groups[{k}]", g, _GROUP, ("name", "role", "size"))
            ignored = sorted(set(g) & _FREE_ONLY) if g["role"] == "input" else []
            if ignored:
                raise SpecError(
                    f"{source}: groups[{k}] is an input group, held by voltage sources: {ignored} "
                    "would do nothing there"
                )
            groups.append(NodeGroup(**g))
        couplings = []
        for k, c in enumerate(data.get("couplings", [])):
            c = dict(
                _keys(
                    f"{source}: couplings[{k}]",
                    c,
                    _COUPLING,
                    ("name", "kind", "src", "dst", "weight"),
                )
            )
            table = (
                settings_of(c["kind"])
                if isinstance(c["kind"], str) and c["kind"] in KINDS
                else None
            )
            foreign = sorted(set(c) & setting_keys() - set(table or ()))
            if table is not None and foreign:
                raise SpecError(
                    f"{source}: couplings[{k}] has {foreign[0]}, which only "
                    f"{kinds_using(foreign[0])} couplings use"
                )
            settings = {
                key: c.pop(key)
                for key in list(c)
                if key in setting_keys() and not (table is not None and table[key].field)
            }
            if settings and table is not None:
                c["settings"] = settings  # else Coupling names the unknown kind
            couplings.append(Coupling(**c))
        diode = DiodeModel(**_keys(f"{source}: diode", data.get("diode", {}), _DIODE))
        sample = None
        if "sample" in data:
            s = _keys(f"{source}: sample", data["sample"], _SAMPLE)
            if "inputs" not in s:
                raise SpecError(f"{source}: sample has no inputs")
            sample = Sample(s["inputs"], s.get("targets"))
        if "name" not in data:
            raise SpecError(f"{source}: missing top-level name")
        return Network(
            data["name"],
            tuple(groups),
            tuple(couplings),
            diode,
            sample,
            data.get("description", ""),
            data.get("temperature", T_NOMINAL_C),
        )
    except SpecError:
        raise
    except (TypeError, ValueError, KeyError) as exc:
        raise SpecError(f"{source}: {exc}") from exc


def load_spec(path: str | os.PathLike) -> Network:
    """Read a network spec from a TOML file (UTF-8, a byte-order mark allowed).

    Parameters
    ----------
    path : str or os.PathLike
        The spec file; at most :data:`MAX_SPEC_BYTES` bytes, a regular file.

    Returns
    -------
    Network

    Raises
    ------
    SpecError
        When the file does not exist, is not a regular file, is too large, is not valid TOML, or
        holds an invalid network; the message names the file (and the field).
    """
    path = Path(path)
    try:  # a byte-order mark is not TOML's business
        text = read_text_limited(path, MAX_SPEC_BYTES, "spec file", encoding="utf-8-sig")
        data = tomllib.loads(text)
    except FileNotFoundError as exc:
        raise SpecError(f"spec file {str(path)!r} does not exist") from exc
    except FileReadError as exc:
        raise SpecError(str(exc)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid TOML ({exc})") from exc
    return network_from_dict(data, str(path))


def _toml_value(v) -> str:
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if is_bool(v):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_toml_value(x) for x in v)
        return f"[{inner}]"
    raise TypeError(f"cannot write {v!r} to TOML")


def _scalar_or_array(a: np.ndarray):
    return a.flat[0].item() if a.size and np.all(a == a.flat[0]) else a


def spec_to_toml(net: Network) -> str:
    """TOML text of a network; it round-trips through :func:`load_spec`.

    Parameters
    ----------
    net : Network
        The network; parameters equal over a group are written as one scalar.

    Returns
    -------
    str
        The spec text, ending in a newline.
    """
    lines = [f"name = {_toml_value(net.name)}"]
    if net.description:
        lines.append(f"description = {_toml_value(net.description)}")
    if net.temperature != T_NOMINAL_C:  # (the default left out: reference specs stay as they were)
        lines.append(f"temperature = {_toml_value(net.temperature)}")
    lines += [
        "",
        "[diode]",
        f"i_sat = {_toml_value(net.diode.i_sat)}",
        f"n = {_toml_value(net.diode.n)}",
        f"name = {_toml_value(net.diode.name)}",
        *(f"{key} = {_toml_value(value)}" for key, value in net.diode.given().items()),
    ]
    for g in net.groups:
        lines += [
            "",
            "[[groups]]",
            f"name = {_toml_value(g.name)}",
            f"role = {_toml_value(g.role)}",
            f"size = {g.size}",
        ]
        if g.invert:
            lines.append(f"invert = {_toml_value(g.invert)}")
        if g.free:
            for key in ("leak", "bias", "capacitance"):
                lines.append(f"{key} = {_toml_value(_scalar_or_array(getattr(g, key)))}")
            if g.clamp:
                lines.append(f"clamp = {_toml_value(list(g.clamp))}")
    for c in net.couplings:
        lines += [
            "",
            "[[couplings]]",
            f"name = {_toml_value(c.name)}",
            f"kind = {_toml_value(c.kind)}",
            f"src = {_toml_value(c.src)}",
            f"dst = {_toml_value(c.dst)}",
            "weight = [\n" + "".join(f"  {_toml_value(row)},\n" for row in c.weight) + "]",
        ]
        if not c.mask.all():
            lines.append("mask = [\n" + "".join(f"  {_toml_value(row)},\n" for row in c.mask) + "]")
        for key in settings_of(c.kind):
            value = c.setting(key)
            if isinstance(value, np.ndarray):
                value = _scalar_or_array(value)
            lines.append(f"{key} = {_toml_value(value)}")
    if net.sample is not None:
        lines += ["", "[sample]", f"inputs = {_toml_value(net.sample.inputs)}"]
        if net.sample.targets is not None:
            lines.append(f"targets = {_toml_value(net.sample.targets)}")
    return "\n".join(lines) + "\n"


def save_spec(net: Network, path: str | os.PathLike) -> None:
    """Write a network spec as TOML (:func:`spec_to_toml`), atomically.

    Parameters
    ----------
    net : Network
        The network to write.
    path : str or os.PathLike
        The file written.

    Raises
    ------
    FileWriteError
        When the write fails; the message names ``path``.
    """
    write_text_atomic(path, spec_to_toml(net))


def save_params(net: Network, path: str | os.PathLike) -> None:
    """Save every parameter of :meth:`Network.params` to an ``.npz`` file, atomically.

    Parameters
    ----------
    net : Network
        The network whose parameters (S, A, ... as :meth:`Network.params` gives them) are saved.
    path : str or os.PathLike
        The ``.npz`` file written.

    Raises
    ------
    FileWriteError
        When the write fails; the message names ``path``.
    """
    with atomic_path(path) as tmp:
        np.savez(tmp, **net.params())


def load_params(net: Network, path: str | os.PathLike) -> Network:
    """``net`` with parameters read from an ``.npz`` file written by :func:`save_params`.

    Parameters
    ----------
    net : Network
        The network whose structure the parameters fit; names and shapes must match.
    path : str or os.PathLike
        The ``.npz`` file, a regular file.

    Returns
    -------
    Network
        A new network holding the file's parameters.

    Raises
    ------
    SpecError
        When the file cannot be read, a parameter has the wrong shape or an unknown name, or a
        value is refused; the message names the file.
    """
    try:
        with open_regular(path, "parameter file") as f, np.load(f) as data:
            params = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read parameters from {str(path)!r}: {exc}") from exc
    known = net.params()
    for k, v in params.items():
        if k in known and v.shape != known[k].shape:
            raise SpecError(
                f"{path}: parameter {k!r} has shape {v.shape}, the network needs {known[k].shape}"
            )
    try:
        return net.with_params(params)
    except (KeyError, ValueError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
