"""The element kinds, listed once: every dispatch on a coupling's ``kind`` goes through here.

A coupling kind is a module of :mod:`circuitep.elements` that declares (see
:mod:`circuitep.elements.vccs` for a short one):

- ``NAME`` (the spec's ``kind``), ``LABEL`` (for messages), ``PREFIX`` (coupling names built from
  graphs), ``POWER_CLASS`` (``resistors`` or ``transconductors``), ``ADJOINT`` (section title);
- ``WEIGHT`` (a :class:`~circuitep.elements.params.Param`: unit and bounds of the weights) and
  ``SETTINGS`` (its other, untrained parameters: ``v_sat``, ``g_out``...);
- ``RECIPROCAL`` (its Jacobian is symmetric: no AEP correction, a DC path between its nodes) and
  ``LINEAR`` (its Jacobian does not depend on the state: the AEP netlist reverses it);
- the stamp, vectorised over a batch (``c`` a :class:`~circuitep.spec.Coupling`, ``vd`` ``vs``
  the dst and src voltages (V), ``sd`` ``ss`` the adjoint there): ``loads(c)`` (constant
  conductances to ground of dst and src, S), ``drive(c, vs)`` and ``back(c, vd)`` (the other
  currents into dst and src, A), ``jacobian(c, vs)`` (their derivatives ``d drive / d vs`` and
  ``d back / d vd``, S, :mod:`circuitep.elements.blocks`), ``weight_grad(c, vd, vs, sd, ss)``
  (the learning rule ``-(dF/dw)^T s`` summed over the batch), ``symmetric_rule`` (EP's rule or
  ``None``), ``dc_paths``, ``power``, ``max_current``, ``sens_name`` and ``check``;
- its SPICE for every phase: ``spice(c, src, dst)`` (free and nudged), ``spice_reversed`` (AEP,
  linear kinds) or ``slope_expression`` (AEP, non-linear kinds: its Jacobian entry as a
  :mod:`circuitep.elements.expr` expression, also evaluated by numpy)
  and ``spice_adjoint``; ``title(c)`` names its netlist section;
- ``VARIES``: how its parameters differ between a drawn circuit and its model
  (:class:`~circuitep.elements.params.Varies` rows, read by :mod:`circuitep.variation`).

Node elements (leak, bias, capacitance, diode clamp) sit on every free node; the nudge on the
outputs; the AEP correction is computed in :mod:`circuitep.elements.aep`. A new kind is one
module listed in :data:`COUPLINGS`, plus its tests.
"""

from __future__ import annotations

from types import ModuleType

from circuitep.elements import bias, capacitance, diode_clamp, leak, ota, resistor, tanh, vccs

#: Every coupling kind, by the name a spec gives it.
COUPLINGS: dict[str, ModuleType] = {m.NAME: m for m in (resistor, vccs, tanh, ota)}
#: The kinds' names, in declaration order (a spec's ``kind`` is one of these).
KINDS: tuple[str, ...] = tuple(COUPLINGS)
#: The parameters of every free node, by key (leak, bias, capacitance).
NODE_PARAMS = {m.PARAM.name: m.PARAM for m in (leak, bias, capacitance)}
#: How the free nodes' parameters vary between a circuit and its model (leak, bias).
NODE_VARIES = {v.param: v for m in (leak, bias) for v in m.VARIES}
#: The diode model's parameters (i_sat, n).
DIODE_PARAMS = {p.name: p for p in diode_clamp.PARAMS}

#: What every coupling module must define (checked on import and by tests/test_elements.py).
REQUIRED = (
    "NAME",
    "LABEL",
    "PREFIX",
    "WEIGHT",
    "SETTINGS",
    "RECIPROCAL",
    "LINEAR",
    "POWER_CLASS",
    "ADJOINT",
    "title",
    "check",
    "loads",
    "drive",
    "back",
    "jacobian",
    "weight_grad",
    "symmetric_rule",
    "dc_paths",
    "power",
    "max_current",
    "sens_name",
    "spice",
    "spice_adjoint",
    "VARIES",
)


def _check_modules() -> None:
    for name, m in COUPLINGS.items():
        missing = [a for a in REQUIRED if not hasattr(m, a)]
        missing += [] if m.LINEAR or hasattr(m, "slope_expression") else ["slope_expression"]
        missing += [] if not m.LINEAR or hasattr(m, "spice_reversed") else ["spice_reversed"]
        if missing:
            raise ImportError(f"element kind {name!r} ({m.__name__}) lacks {missing}")


_check_modules()


def kind(c) -> ModuleType:
    """The module of coupling ``c``'s kind (``c.kind`` is validated to be one of :data:`KINDS`).

    Parameters
    ----------
    c : Coupling
        A validated coupling.

    Returns
    -------
    module
        Its kind's module.
    """
    return COUPLINGS[c.kind]


def settings_of(name: str) -> dict:
    """The :class:`~circuitep.elements.params.Param` of each setting of kind ``name``.

    Parameters
    ----------
    name : str
        A coupling kind (one of :data:`KINDS`).

    Returns
    -------
    dict of str to Param
        The settings by key.
    """
    return {p.name: p for p in COUPLINGS[name].SETTINGS}


def setting_keys() -> set[str]:
    """Every setting any kind declares (keys a spec's coupling may carry beyond the common ones)."""
    return {p.name for m in COUPLINGS.values() for p in m.SETTINGS}


def kinds_using(key: str) -> str:
    """The kinds that declare setting ``key``, for messages (``saturating (tanh)``).

    Parameters
    ----------
    key : str
        A setting's key (``v_sat``, ``g_out``...).

    Returns
    -------
    str
        Their labels joined by ``or``.
    """
    return " or ".join(m.LABEL for m in COUPLINGS.values() if key in settings_of(m.NAME))


def is_transconductor(c) -> bool:
    """Whether coupling ``c`` is non-reciprocal (its Jacobian has no transpose of its own).

    Parameters
    ----------
    c : Coupling
        A validated coupling.

    Returns
    -------
    bool
        True unless its kind is reciprocal.
    """
    return not COUPLINGS[c.kind].RECIPROCAL


def variation_keys() -> dict:
    """Every parameter a variation may name, by key, with its :class:`~.params.Varies` row.

    Keys are ``<kind>.<param>`` for couplings (``vccs.weight``, ``ota.v_offset``) and the node
    parameter's name for free nodes (``leak``, ``bias``).

    Returns
    -------
    dict of str to Varies
        In declaration order.
    """
    out = {f"{m.NAME}.{v.param}": v for m in COUPLINGS.values() for v in m.VARIES}
    return out | dict(NODE_VARIES)


def parameter_table() -> str:
    """Every kind's parameters, one line each (the docs' table)."""
    lines = []
    for m in COUPLINGS.values():
        lines.append(f"- kind {m.NAME}: {m.LABEL}")
        lines += [f"    - {p.describe()}" for p in (m.WEIGHT,) + tuple(m.SETTINGS)]
    lines.append("- free nodes:")
    lines += [f"    - {p.describe()}" for p in NODE_PARAMS.values()]
    lines.append("- diode model:")
    lines += [f"    - {p.describe()}" for p in DIODE_PARAMS.values()]
    return "\n".join(lines)
