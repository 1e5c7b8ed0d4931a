"""A training run on disk: configuration, checkpoints, metrics, the trained circuit, figures.

Layout of ``out/``: ``config.json``, ``spec.toml`` (the initial network), ``data.json`` (which
data: name, sizes, SHA-256; see :func:`data_identity`), ``checkpoint.npz``
(written atomically after every epoch), ``metrics.json`` and ``metrics.csv`` (one record per
epoch), ``trained.toml`` and ``trained.cir`` (the trained circuit, literal free-phase netlist;
both hold test sample 0, the spec as its [sample]),
``learning_curves.png``, and ``diverged.json`` when training diverged (where and why; the
checkpoint and the trained circuit are then those of the last completed epoch).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from circuitep import plots
from circuitep.compiler import compile_network
from circuitep.datasets import Dataset
from circuitep.engines.base import ConvergenceError, Engine, Phase
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.specio import load_spec, save_spec, spec_to_toml, write_text_atomic
from circuitep.spec import Network, Sample
from circuitep.train import (TrainConfig, Trainer, TrainingDiverged, TrainState, check_compatible, check_lr_groups,
                             config_from_json, config_to_json, init_state, load_checkpoint, save_checkpoint)


class RunError(ValueError):
    """A run directory that cannot be started or resumed as asked."""


def write_metrics(out: Path, records: list[dict]) -> None:
    write_text_atomic(out / "metrics.json", json.dumps(records, indent=2) + "\n")
    if records:
        buf = io.StringIO()
        # every key of any record, in order: a resumed run's newer records may carry more
        writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in records for k in r)))
        writer.writeheader()
        writer.writerows(records)
        write_text_atomic(out / "metrics.csv", buf.getvalue())


def read_diverged(out: str | Path) -> dict | None:
    """Where and why a run directory's training diverged (``diverged.json``), or None. Delete the
    file to train the run again from its last checkpoint (e.g. with another engine)."""
    path = Path(out) / "diverged.json"
    return _read_run_file(path, _read_json_object) if path.exists() else None


def data_identity(data: Dataset) -> dict:
    """What a run was trained on: the data set's name, split sizes and a SHA-256 of its arrays, so
    that a resumed run cannot continue on other data (another subset, or Fashion-MNIST for MNIST)."""
    digest = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(a).data)
    return {"name": data.name, "n_train": len(data.x_train), "n_test": len(data.x_test),
            "sha256": digest.hexdigest()}


def _describe_data(identity: dict) -> str:
    return (f"{identity.get('name')}, {identity.get('n_train')} train / {identity.get('n_test')} test samples, "
            f"sha256 {str(identity.get('sha256'))[:12]}")


def _read_json_object(path: Path) -> dict:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _read_run_file(path: Path, read):
    """``read(path)``, with any failure reported as a :class:`RunError` that names the file."""
    try:
        return read(path)
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(f"{path} cannot be read ({type(exc).__name__}: {exc}); the run directory is "
                       "damaged: delete the file or start a new run") from exc


def write_trained_netlist(path: Path, net: Network, trainer: Trainer, command: str | None) -> None:
    """The trained circuit's literal free-phase netlist holding test sample 0 (its inputs; the
    header gives its label and targets and the node ranges on it), runnable alone in ngspice."""
    label = int(trainer.data.y_test[0])
    targets = " ".join(f"{t:g}" for t in trainer.y_test[0])
    try:
        state = NumpyEngine(check_stability=False).solve(net, Phase(), trainer.u_test[:1]).x[0]
    except ConvergenceError:
        state = None  # the header then gives no measured node ranges
    sample = f"test sample 0 of {trainer.data.name}, label {label}, targets (V) {targets}"
    compiled = compile_network(net, "free", "literal", inputs=trainer.u_test[0], state=state,
                               command=command or "circuitep.runs.train_run (a Python call)", sample=sample)
    write_text_atomic(path, compiled.spice())


def train_run(net: Network, data: Dataset, engine: Engine, config: TrainConfig, out: str | Path, *,
              resume: bool = False, exact_engine: Engine | None = None, progress: bool = True,
              stop_after: int | None = None, command: str | None = None) -> dict:
    """Train and write everything to ``out``; returns a summary dict.

    With ``resume`` the run continues from ``out/checkpoint.npz`` with the saved configuration and
    spec (which must match the ones given). ``stop_after`` ends the call after that many epochs
    of this call (to simulate an interruption in tests). When training diverges
    (:class:`~circuitep.train.TrainingDiverged`) the run stops at the last completed epoch, writes
    ``diverged.json`` and returns it as ``diverged``; resuming it trains nothing more until that
    file is deleted.
    """
    out = Path(out)
    ckpt = out / "checkpoint.npz"
    check_compatible(net, data)  # before anything is written
    check_lr_groups(net, config)
    net.conductance_scale()  # beta and the learning rates need it
    identity = data_identity(data)
    if resume:
        if not ckpt.exists() or not (out / "config.json").exists():
            raise RunError(f"nothing to resume in {out}: no checkpoint.npz and config.json there")
        saved = _read_run_file(out / "config.json", lambda p: config_from_json(p.read_text()))
        if replace(saved, epochs=config.epochs) != config:
            raise RunError(f"{out}/config.json differs from the configuration given; resume with the same options "
                           f"(only --epochs may change; saved: {saved})")
        if saved.epochs != config.epochs and saved.lr_schedule != "constant":
            raise RunError(f"{out} was trained with the {saved.lr_schedule} learning-rate schedule over "
                           f"{saved.epochs} epochs, which --epochs would change for the epochs already trained; "
                           f"start a new run to train longer")
        if saved.epochs != config.epochs:
            write_text_atomic(out / "config.json", config_to_json(config) + "\n")
        saved_net = load_spec(out / "spec.toml")
        if spec_to_toml(saved_net) != spec_to_toml(net):
            raise RunError(f"{out}/spec.toml differs from the spec given; resume with the same spec")
        state = _read_run_file(ckpt, load_checkpoint)
        if config.epochs < state.epoch:
            raise RunError(f"{out} is already at epoch {state.epoch}; pass --epochs {state.epoch} or more")
        trained_on = out / "data.json"
        if trained_on.exists():  # runs from before data.json was written cannot be checked
            saved_data = _read_run_file(trained_on, _read_json_object)
            if saved_data != identity:
                raise RunError(f"{out} was trained on other data ({_describe_data(saved_data)}) than given "
                               f"({_describe_data(identity)}); resume with the same data set and sizes")
    else:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt.exists():
            raise RunError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        (out / "diverged.json").unlink(missing_ok=True)  # from a run that diverged before its first epoch
        write_text_atomic(out / "config.json", config_to_json(config) + "\n")
        save_spec(net, out / "spec.toml")
        write_text_atomic(out / "data.json", json.dumps(identity, indent=2) + "\n")
        state = init_state(net, config)
    records = list(state.records)
    trainer = Trainer(net, data, engine, config, exact_engine=exact_engine,
                      failures=records[-1]["failures"] if records else 0)
    done_now = 0
    diverged = read_diverged(out)  # a diverged run replays the same epoch to the same end: not again
    epochs = tqdm(total=config.epochs, initial=state.epoch, desc="epochs", unit="epoch", disable=not progress,
                  leave=False)
    while not diverged and state.epoch < config.epochs and (stop_after is None or done_now < stop_after):
        start = time.perf_counter()
        with tqdm(total=len(trainer.u_train), desc=f"epoch {state.epoch + 1}", unit="sample",
                  disable=not progress, leave=False) as bar:
            try:
                state = trainer.run_epoch(state, bar)
            except TrainingDiverged as exc:
                diverged = {"epoch": exc.epoch, "batch": exc.batch, "failures": trainer.failures,
                            "message": str(exc)}
                write_text_atomic(out / "diverged.json", json.dumps(diverged, indent=2) + "\n")
                break
        record = trainer.evaluate(state, state.epoch, time.perf_counter() - start)
        records.append(record)
        state = TrainState(state.params, state.velocity, state.epoch, tuple(records))
        save_checkpoint(ckpt, state)
        write_metrics(out, records)
        epochs.update(1)
        epochs.set_postfix(test=f"{record['test_accuracy']:.3f}", cos=f"{record['grad_cosine']:.5f}")
        done_now += 1
    epochs.close()
    # test sample 0 as the trained spec's [sample]: `circuitep simulate trained.toml` reports on a real input
    trained = replace(trainer.network(state), sample=Sample(trainer.u_test[0], trainer.y_test[0]))
    save_spec(trained, out / "trained.toml")
    write_trained_netlist(out / "trained.cir", trained, trainer, command)
    if records:
        plots.learning_curves(records, out / "learning_curves.png",
                              f"{net.name} on {data.name}: {config.algorithm} with {engine.name}")
    final = records[-1] if records else {}
    return {"out": str(out), "epochs": state.epoch, "complete": state.epoch >= config.epochs, "diverged": diverged,
            "test_accuracy": final.get("test_accuracy"), "train_accuracy": final.get("train_accuracy"),
            "grad_cosine": final.get("grad_cosine"), "failures": trainer.failures, "engine": engine.name,
            "algorithm": config.algorithm, "params": state.params}
