"""The reference specs in ``netlists/`` and their golden netlists.

Each reference spec ``netlists/<name>.toml`` has one committed netlist per phase and form,
``netlists/<name>/<phase>-<form>.cir``, compiled with the spec's sample and the default beta. A
test fails when the compiler's output drifts from them; ``circuitep golden --write`` regenerates
them after an intended change. Each holds the spec's sample: its inputs, its targets, and in the
AEP netlists the correction currents ``K x0`` of its free state ``x0`` (numpy engine), so that every
file runs alone in ``ngspice -b`` (its analysis block prints the node voltages) to the numpy state.
"""

from __future__ import annotations

from pathlib import Path

from circuitep.compiler import FORMS, PHASES, compile_network
from circuitep.engines.base import Phase
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.specio import load_spec

REFERENCE_SPECS = ("feedforward", "reciprocal", "layered")
#: Nudge strength used for the golden netlists (S): 1e-3 of the reference specs' leak conductance.
GOLDEN_BETA = 1e-7


def golden_texts(netlists_dir: str | Path) -> dict[Path, str]:
    """Path of every golden netlist and the text the compiler produces for it now.

    Parameters
    ----------
    netlists_dir : str or Path
        The directory holding the reference specs ``<name>.toml`` (:data:`REFERENCE_SPECS`).

    Returns
    -------
    dict of Path to str
        ``<netlists_dir>/<name>/<phase>-<form>.cir`` for every reference spec, phase and form,
        with the netlist text (nudged phases at :data:`GOLDEN_BETA`, the spec's sample, AEP
        corrections from the numpy free state).
    """
    root = Path(netlists_dir)
    out = {}
    for name in REFERENCE_SPECS:
        net = load_spec(root / f"{name}.toml")
        state = NumpyEngine().solve(net, Phase(), net.sample.inputs[None]).x[0]
        for phase in PHASES:
            for form in FORMS:
                compiled = compile_network(
                    net,
                    phase,
                    form,
                    beta=None if phase == "free" else GOLDEN_BETA,
                    inputs=net.sample.inputs,
                    targets=net.sample.targets,
                    state=state,
                    command="circuitep golden --write",
                    sample="the spec's [sample]",
                )
                out[root / name / f"{phase}-{form}.cir"] = compiled.spice()
    return out


def write_golden(netlists_dir: str | Path) -> list[Path]:
    """Regenerate every golden netlist.

    Parameters
    ----------
    netlists_dir : str or Path
        The directory holding the reference specs; subdirectories are created as needed.

    Returns
    -------
    list of Path
        The paths written.
    """
    paths = []
    for path, text in golden_texts(netlists_dir).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


def check_golden(netlists_dir: str | Path) -> list[Path]:
    """Golden netlists that are missing or differ from the compiler's output.

    Parameters
    ----------
    netlists_dir : str or Path
        The directory holding the reference specs and their golden netlists.

    Returns
    -------
    list of Path
        The stale or missing files; empty when everything is up to date.
    """
    return [
        p
        for p, text in golden_texts(netlists_dir).items()
        if not p.exists() or p.read_text() != text
    ]
