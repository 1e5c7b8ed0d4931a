"""Monte Carlo over circuits drawn from a variation: their gradients and accuracy (DESIGN.md §7).

For each draw (a seed) of a :class:`~circuitep.variation.Variation` of a model, the circuit that is
simulated is :meth:`~circuitep.variation.Draw.circuit`; on a probe batch every estimator runs on
that circuit (AEP with its correction from the model, realised with the variation's errors; EP, VF
and Dyadic) and is compared with the circuit's own exact gradient (its adjoint), beside the
model's gradient (a digital twin's, at the model's own free state) and AEP with the circuit's own
correction (``aep_own``). Optionally: the trained circuit's test accuracy, ngspice's central
finite differences of the varied circuit against its exact gradient, and training under the
variation from the model's starting point. :func:`evaluate_draw` is one pure task; :func:`run`
maps them on a Dask cluster (:mod:`circuitep.cluster`) and :func:`summarise` reduces them.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace

import numpy as np

from circuitep.costs import Cost
from circuitep.datasets import Dataset
from circuitep.engines.base import ConvergenceError
from circuitep.engines.ngspice_engine import NgspiceEngine
from circuitep.estimators import compare, reference_engine
from circuitep.gradcheck import gradcheck
from circuitep.sens import finite_difference_gradients
from circuitep.spec import Network
from circuitep.train import TrainConfig, free_outputs
from circuitep.variation import Storage, Variation, draw

# names of the cosines a draw reports, in the order tables show them
COSINES = ("aep", "model", "ep", "vf", "dyadic", "aep_own")

# what --sweep can vary, and how a value changes the variation
SWEEPS = {
    "sigma-gain": "relative mismatch of every coupling's weight",
    "correction-gain": "common relative gain error of AEP's correction elements",
    "sigma-correction": "relative mismatch of each correction element",
    "bits": "stored weights of 2**bits levels over each coupling's own range",
    "levels": "stored weights of this many levels over each coupling's own range",
    "temperature": "the circuit's temperature, degC",
}


def with_sweep(variation: Variation, name: str, value: float) -> Variation:
    """``variation`` with the swept quantity ``name`` (a key of :data:`SWEEPS`) set to ``value``.

    Parameters
    ----------
    variation : Variation
        The base variation.
    name : str
        What is swept.
    value : float
        Its value (bits and levels: a whole number).

    Returns
    -------
    Variation
    """
    if name == "sigma-gain":
        return replace(variation, gain=value)
    if name == "correction-gain":
        return replace(variation, correction_gain=value)
    if name == "sigma-correction":
        return replace(variation, sigma_correction=value)
    if name in ("bits", "levels"):
        if value != int(value) or value < 1:
            raise ValueError(f"--sweep {name}: {value!r} is not a positive whole number")
        levels = 2 ** int(value) if name == "bits" else int(value)
        base = variation.storage or Storage()
        return replace(variation, storage=replace(base, levels=levels))
    if name == "temperature":
        return replace(variation, temperature=value)
    raise ValueError(f"unknown sweep {name!r}; choose one of {sorted(SWEEPS)}")


@dataclass(frozen=True, eq=False)
class DrawTask:
    """One Monte Carlo task: everything :func:`evaluate_draw` needs (picklable, plain data).

    ``inputs`` (V, shape (batch, n_inputs)) and ``targets`` are the probe batch; ``beta`` (S) the
    nudge; ``test_inputs`` / ``test_labels`` the test set (or None); ``engine`` ``reference``
    (the numpy engine that models the circuit) or ``ngspice``; ``check_fd`` adds ngspice's
    central finite differences; ``train`` a :class:`~circuitep.train.TrainConfig` and data set
    to train the drawn circuit from ``start`` (or None). ``point`` labels the sweep point.
    """

    model: Network
    variation: Variation
    seed: int
    inputs: np.ndarray
    targets: np.ndarray
    beta: float
    cost: Cost | None = None
    test_inputs: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    engine: str = "reference"
    check_fd: bool = False
    train: TrainConfig | None = None
    data: Dataset | None = None
    start: Network | None = None
    point: dict | None = None


def accuracy(engine, net: Network, u: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of test samples whose highest output is their label (no operating point: wrong).

    Parameters
    ----------
    engine : Engine
        Solves the free phase.
    net : Network
        The circuit.
    u : ndarray, shape (n, n_inputs)
        Input voltages, V.
    labels : ndarray of int, shape (n,)
        Class labels.

    Returns
    -------
    float
    """
    x = free_outputs(engine, net, u)
    ok = np.isfinite(x).all(axis=1)
    return float((x[ok].argmax(1) == labels[ok]).sum() / len(labels))


def evaluate_draw(task: DrawTask) -> dict:
    """One draw: its circuit's gradients (and accuracy, FD check, training) as JSON values.

    Parameters
    ----------
    task : DrawTask
        The model, the variation, the seed and what to measure.

    Returns
    -------
    dict
        ``seed``, ``point``, ``cosine`` and ``rel_error`` per name of :data:`COSINES`,
        ``test_accuracy`` (None without a test set), ``fd_rel_error`` (None without
        ``check_fd``), ``error`` (None, or why the gradients of a circuit without an operating
        point were not measured: then every cosine is None) and, with ``train``,
        ``trained_test_accuracy`` and ``trained_grad_cosine``.
    """
    model, d = task.model, draw(task.variation, task.model, task.seed)
    circuit = d.circuit(model)
    engine = NgspiceEngine() if task.engine == "ngspice" else reference_engine(circuit)
    out = {
        "seed": task.seed,
        "point": task.point,
        "cosine": dict.fromkeys(COSINES),
        "rel_error": dict.fromkeys(COSINES),
        "test_accuracy": None,
        "fd_rel_error": None,
        "error": None,
    }
    report = None
    try:
        try:
            report = gradcheck(
                circuit,
                engine,
                task.inputs,
                task.targets,
                beta=task.beta,
                cost=task.cost,
                model=model,
                correction=d.correction(model),
            )
        except ConvergenceError as e:
            # a drawn circuit with no operating point for a probe sample in some phase (a
            # quantised or strongly mismatched circuit can lose it): its gradients are not
            # measured, the draw says why, and its accuracy is still measured
            out["error"] = str(e)
        else:
            out["cosine"] = {k: report["estimators"][k]["cosine"] for k in COSINES}
            out["rel_error"] = {k: report["estimators"][k]["rel_error"] for k in COSINES}
        if task.test_inputs is not None:
            out["test_accuracy"] = accuracy(engine, circuit, task.test_inputs, task.test_labels)
    finally:
        if isinstance(engine, NgspiceEngine):
            engine.close()
    # the truth for any circuit: ngspice's own central differences
    if task.check_fd and report is not None:
        exact = {k: np.asarray(v) for k, v in report["exact"].items()}
        with NgspiceEngine() as ng:
            fd = finite_difference_gradients(circuit, ng, task.inputs, task.targets, task.cost)
        out["fd_rel_error"] = compare(fd, exact)["rel_error"]
    if task.train is not None:
        out.update(_train_draw(task))
    return out


def _train_draw(task: DrawTask) -> dict:
    """Train the drawn circuit from ``task.start`` under the variation (same seed)."""
    from circuitep.engines.layered import LayeredEngine
    from circuitep.runs import train_run

    config = replace(
        task.train,
        variation={**task.variation.describe(), "storage": None},
        variation_seed=task.seed,
        **(_storage_fields(task.variation.storage)),
    )
    with tempfile.TemporaryDirectory(prefix="circuitep-mc-") as out:
        summary = train_run(task.start, task.data, LayeredEngine(), config, out, progress=False)
    return {
        "trained_test_accuracy": summary["test_accuracy"],
        "trained_grad_cosine": summary["grad_cosine"],
    }


def _storage_fields(storage: Storage | None) -> dict:
    if storage is None:
        return {}
    return dict(
        levels=storage.levels,
        headroom=storage.headroom,
        program_noise=storage.program_noise,
        stochastic_rounding=storage.stochastic,
    )


def _stats(values) -> dict | None:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return None
    return {
        "median": float(np.median(v)),
        "worst": float(v.min()),
        "best": float(v.max()),
        "mean": float(v.mean()),
        "std": float(v.std()),
        "q10": float(np.quantile(v, 0.1)),
        "q90": float(np.quantile(v, 0.9)),
        "n": int(v.size),
    }


def summarise(draws: list[dict]) -> dict:
    """Per cosine name its median and worst over the draws; accuracy and FD statistics.

    Parameters
    ----------
    draws : list of dict
        :func:`evaluate_draw` results (of one sweep point).

    Returns
    -------
    dict
        ``{name: {"median_cosine", "worst_cosine", "mean_cosine", "std_cosine", "q10_cosine",
        "q90_cosine"}}`` for every name of :data:`COSINES`, and ``test_accuracy``,
        ``fd_rel_error``, ``trained_test_accuracy`` statistics where measured (else absent);
        ``failed_draws``: draws whose gradients were not measured (no operating point).
    """
    out = {}
    for name in COSINES:
        s = _stats([d["cosine"][name] for d in draws])
        if s is not None:
            out[name] = {
                "median_cosine": s["median"],
                "worst_cosine": s["worst"],
                "mean_cosine": s["mean"],
                "std_cosine": s["std"],
                "q10_cosine": s["q10"],
                "q90_cosine": s["q90"],
            }
    for key in ("test_accuracy", "fd_rel_error", "trained_test_accuracy"):
        s = _stats([d.get(key) for d in draws])
        if s is not None:
            out[key] = s
    out["failed_draws"] = sum(d.get("error") is not None for d in draws)
    return out


def run(tasks: list[DrawTask], client, *, progress: bool = True) -> list[dict]:
    """Every task on the cluster of ``client``, results in order (a lost worker loses none).

    Parameters
    ----------
    tasks : list of DrawTask
        The draws.
    client : distributed.Client
        From :func:`circuitep.cluster.client_for`.
    progress : bool
        A progress bar.

    Returns
    -------
    list of dict
        :func:`evaluate_draw` of each task.
    """
    from circuitep.cluster import map_tasks

    return map_tasks(client, evaluate_draw, tasks, desc="draws", progress=progress)
