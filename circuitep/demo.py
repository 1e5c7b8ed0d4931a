"""The main job on the embedded default: a circuit learns digits with ngspice in the loop.

A feedforward transconductor circuit learns the 8x8 digits, trained by AEP with ngspice in the loop,
and reports how well its gradient matched.
"""

from __future__ import annotations

from pathlib import Path

from circuitep.builders import from_shorthand
from circuitep.datasets import load_dataset
from circuitep.engines.ngspice_engine import NgspiceEngine
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.runs import train_run
from circuitep.train import TrainConfig

DEMO_SPEC = "ff:64-64-10"
DEMO_CONFIG = TrainConfig(
    algorithm="aep", epochs=10, batch_size=32, lr=0.05, momentum=0.9, v_on=1.0, seed=0
)


def run_demo(
    out: str | Path = "demo-run",
    *,
    epochs: int | None = None,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Train the demo circuit (:data:`DEMO_SPEC`, :data:`DEMO_CONFIG`) with ngspice in the loop.

    Parameters
    ----------
    out : str or Path
        The run directory (see :func:`circuitep.runs.train_run`).
    epochs : int, optional
        Number of epochs instead of the configuration's 10.
    resume : bool
        Continue the run in ``out`` from its checkpoint.
    progress : bool
        Show a progress bar.
    command : str, optional
        The command line written into the header of ``trained.cir``.

    Returns
    -------
    dict
        The run summary (see :func:`circuitep.runs.train_run`).
    """
    config = (
        DEMO_CONFIG if epochs is None else TrainConfig(**{**DEMO_CONFIG.__dict__, "epochs": epochs})
    )
    net = from_shorthand(DEMO_SPEC, seed=config.seed)
    return train_run(
        net,
        load_dataset("digits", seed=config.seed),
        NgspiceEngine(form="folded"),
        config,
        out,
        resume=resume,
        exact_engine=NumpyEngine(check_stability=False),
        progress=progress,
        command=command,
    )
