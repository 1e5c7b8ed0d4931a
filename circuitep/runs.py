"""A training run on disk: configuration, checkpoints, metrics, the trained circuit, figures.

Layout of ``out/``: ``config.json``, ``spec.toml`` (the initial network), ``data.json`` (which
data: name, sizes, SHA-256; see :func:`data_identity`), ``checkpoint.npz``
(written atomically after every epoch), ``metrics.json`` and ``metrics.csv`` (one record per
epoch), ``trained.toml`` and ``trained.cir`` (the trained circuit, literal free-phase netlist;
both hold test sample 0, the spec as its [sample]),
``learning_curves.png``, and ``diverged.json`` when training diverged (where and why; the
checkpoint and the trained circuit are then those of the last completed epoch).

A run holds ``run.lock`` while it writes (:func:`lock_run`: an OS file lock, released by the
operating system when the process ends in any way, even by SIGKILL), so that a second run into the
same directory is refused instead of mixing its files with the first one's. The checkpoint is the
record of the run: metrics, the trained circuit and the figure are written from it again by every
call of :func:`train_run`, so a kill between two files is repaired by ``--resume``.
"""

from __future__ import annotations

import csv
import datetime
import fcntl
import hashlib
import io
import json
import os
import socket
import sys
import time
import zipfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from circuitep import plots
from circuitep.compiler import compile_network
from circuitep.datasets import Dataset
from circuitep.engines.base import ConvergenceError, Engine, Phase
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.fileio import read_text_limited, write_error, write_text_atomic
from circuitep.spec import Network, Sample
from circuitep.specio import load_spec, save_spec, spec_to_toml
from circuitep.train import (
    TrainConfig,
    Trainer,
    TrainingDiverged,
    check_compatible,
    check_lr_groups,
    config_from_json,
    config_to_json,
    init_state,
    load_checkpoint,
    save_checkpoint,
)


class RunError(ValueError):
    """A run directory that cannot be started or resumed as asked."""


#: The lock file of a run directory (see :func:`lock_run`).
LOCK_NAME = "run.lock"
#: Every file a run directory may hold (besides temporaries ``.NAME.tmp.*``): a new run is
#: refused in a directory holding anything else, so that ``--out .`` cannot litter a project.
RUN_FILES = frozenset(
    {
        "config.json",
        "spec.toml",
        "data.json",
        "checkpoint.npz",
        "metrics.json",
        "metrics.csv",
        "trained.toml",
        "trained.cir",
        "learning_curves.png",
        "diverged.json",
        "ngspice_check.json",
        LOCK_NAME,
    }
)
#: Largest JSON run file read (bytes).
MAX_JSON_BYTES = 16 << 20


def _is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary of :func:`~circuitep.fileio.atomic_path` for a run file."""
    return name.startswith(".") and name[1:].partition(".tmp")[0] in RUN_FILES


def _holder(path: Path) -> str:
    try:
        info = json.loads(read_text_limited(path, MAX_JSON_BYTES, "lock file"))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"


@contextmanager
def lock_run(out: str | Path):
    """Hold the run directory ``out`` for the body of the ``with``.

    An exclusive ``fcntl.flock`` on ``out/run.lock``, which records the holder (pid, host, start
    time in UTC, command). The operating system releases the lock when the process ends, however
    it ends, so a killed run never leaves a stale lock; the file is removed on a normal exit.

    Parameters
    ----------
    out : str or Path
        The run directory; it must exist.

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    RunError
        When another process holds the directory; the message names it.
    FileWriteError
        When the lock file cannot be created (a directory nobody may write to).
    """
    path = Path(out) / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(path, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(
                f"{out} is in use by another run ({_holder(path)}); wait for it to end "
                "or choose another --out"
            ) from None
        try:  # the holder before us may have removed the file we opened: lock the one in place
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        now = datetime.datetime.now(datetime.UTC)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": now.isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still locked: a waiting process then retries
        os.close(fd)


def write_metrics(out: Path, records: list[dict]) -> None:
    """Write the epoch records as ``metrics.json`` and ``metrics.csv``, atomically.

    Parameters
    ----------
    out : Path
        The run directory.
    records : list of dict
        One record per epoch; the CSV's columns are every key of any record, in order (a resumed
        run's newer records may carry more). No CSV is written for an empty list.
    """
    write_text_atomic(out / "metrics.json", json.dumps(records, indent=2) + "\n")
    if records:
        buf = io.StringIO()
        # every key of any record, in order: a resumed run's newer records may carry more
        writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in records for k in r)))
        writer.writeheader()
        writer.writerows(records)
        write_text_atomic(out / "metrics.csv", buf.getvalue())


def read_diverged(out: str | Path) -> dict | None:
    """Where and why a run directory's training diverged (``diverged.json``).

    Delete the file to train the run again from its last checkpoint (e.g. with another engine).

    Parameters
    ----------
    out : str or Path
        The run directory.

    Returns
    -------
    dict or None
        ``epoch``, ``batch``, ``failures`` and ``message``; None when the run did not diverge.

    Raises
    ------
    RunError
        When the file exists but cannot be read.
    """
    path = Path(out) / "diverged.json"
    return _read_run_file(path, _read_json_object) if path.exists() else None


def data_identity(data: Dataset) -> dict:
    """What a run was trained on, so that a resumed run cannot continue on other data.

    Parameters
    ----------
    data : Dataset
        The data set.

    Returns
    -------
    dict
        ``name``, ``n_train``, ``n_test`` and ``sha256`` (hex) of its four arrays: another subset,
        or Fashion-MNIST for MNIST, differs.
    """
    digest = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(a).data)
    return {
        "name": data.name,
        "n_train": len(data.x_train),
        "n_test": len(data.x_test),
        "sha256": digest.hexdigest(),
    }


def _describe_data(identity: dict) -> str:
    return (
        f"{identity.get('name')}, {identity.get('n_train')} train / {identity.get('n_test')} test "
        f"samples, sha256 {str(identity.get('sha256'))[:12]}"
    )


def _read_json_object(path: Path) -> dict:
    data = json.loads(read_text_limited(path, MAX_JSON_BYTES, "run file"))
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _read_run_file(path: Path, read):
    """``read(path)``, with any failure reported as a :class:`RunError` that names the file."""
    try:
        return read(path)
    except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); the run directory is "
            "damaged: delete the file or start a new run"
        ) from exc


def write_trained_netlist(path: Path, net: Network, trainer: Trainer, command: str | None) -> None:
    """Write the trained circuit's literal free-phase netlist holding test sample 0.

    It holds the sample's inputs; the header gives its label and targets and the node ranges on it
    (from the numpy engine; none when that does not converge or the circuit is transistor-level,
    whose netlist, from the engine, is written). It runs alone in ngspice.

    Parameters
    ----------
    path : Path
        The ``.cir`` file written (atomically).
    net : Network
        The trained circuit.
    trainer : Trainer
        Gives the test sample (its input voltages and targets) and the data set's name.
    command : str or None
        The command line for the header (default: a Python call of :func:`train_run`).
    """
    label = int(trainer.data.y_test[0])
    targets = " ".join(f"{t:g}" for t in trainer.y_test[0])
    measured = trainer.measured  # a transistor circuit: its netlist, no numpy node ranges
    try:
        state = (
            None
            if measured
            else NumpyEngine(check_stability=False).solve(net, Phase(), trainer.u_test[:1]).x[0]
        )
    except ConvergenceError:
        state = None  # the header then gives no measured node ranges
    sample = f"test sample 0 of {trainer.data.name}, label {label}, targets (V) {targets}"
    compiled = compile_network(
        net,
        "free",
        "literal",
        inputs=trainer.u_test[0],
        state=state,
        command=command or "circuitep.runs.train_run (a Python call)",
        sample=sample,
    )
    if measured:
        compiled = trainer.engine._realise(compiled)
    write_text_atomic(path, compiled.spice())


def train_run(
    net: Network,
    data: Dataset,
    engine: Engine,
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    exact_engine: Engine | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    command: str | None = None,
) -> dict:
    """Train and write everything to the run directory ``out``.

    With ``resume`` the run continues from ``out/checkpoint.npz`` with the saved configuration and
    spec (which must match the ones given; only ``epochs`` may change, and only with a constant
    learning rate). When training diverges (:class:`~circuitep.train.TrainingDiverged`) the run
    stops at the last completed epoch, writes ``diverged.json`` and returns it as ``diverged``;
    resuming it trains nothing more until that file is deleted.

    ``out`` is locked for the whole call (:func:`lock_run`). A new run needs a new or empty
    directory, or one holding only the files of a run that never completed an epoch
    (:data:`RUN_FILES`).

    Parameters
    ----------
    net : Network
        The initial circuit.
    data : Dataset
        Training and test data; its classes must fit the network's outputs.
    engine : Engine
        Solves the phases of training.
    config : TrainConfig
        The training configuration.
    out : str or Path
        The run directory; ``""`` is refused (it would mean the current directory).
    resume : bool
        Continue the run in ``out``.
    exact_engine : Engine, optional
        Engine of the exact gradient the cosine is measured against (default ``engine``).
    progress : bool
        Show progress bars.
    stop_after : int, optional
        End the call after that many epochs of this call (to simulate an interruption in tests).
    command : str, optional
        The command line, for the header of ``trained.cir``.

    Returns
    -------
    dict
        ``out``, ``epochs`` (completed), ``complete``, ``diverged`` (None or the content of
        ``diverged.json``), ``test_accuracy``, ``train_accuracy`` (fractions, None without an
        epoch), ``grad_cosine``, ``failures``, ``engine``, ``algorithm`` and ``params`` (the trained
        parameters).

    Raises
    ------
    RunError
        For a directory that cannot hold the run, a resume that does not match, or a damaged run
        file; the message names the file and what to do.
    FileWriteError
        When a file cannot be written.
    """
    if not str(out).strip():
        raise RunError("the run directory (--out) is an empty path; name a directory for the run")
    out = Path(out)
    check_compatible(net, data)  # before anything is written
    check_lr_groups(net, config)
    net.conductance_scale()  # beta and the learning rates need it
    if resume and not out.is_dir():
        raise RunError(f"nothing to resume in {out}: no checkpoint.npz and config.json there")
    if not resume:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(out, exc, "create the run directory") from exc
    with lock_run(out):
        return _train_locked(
            net, data, engine, config, out, resume, exact_engine, progress, stop_after, command
        )


def _train_locked(
    net: Network,
    data: Dataset,
    engine: Engine,
    config: TrainConfig,
    out: Path,
    resume: bool,
    exact_engine: Engine | None,
    progress: bool,
    stop_after: int | None,
    command: str | None,
) -> dict:
    ckpt = out / "checkpoint.npz"
    identity = data_identity(data)
    if resume:
        if not ckpt.exists() or not (out / "config.json").exists():
            raise RunError(f"nothing to resume in {out}: no checkpoint.npz and config.json there")
        saved = _read_run_file(
            out / "config.json",
            lambda p: config_from_json(read_text_limited(p, MAX_JSON_BYTES, "run file")),
        )
        if replace(saved, epochs=config.epochs) != config:
            raise RunError(
                f"{out}/config.json differs from the configuration given; resume with the same "
                f"options (only --epochs may change; saved: {saved})"
            )
        if saved.epochs != config.epochs and saved.lr_schedule != "constant":
            raise RunError(
                f"{out} was trained with the {saved.lr_schedule} learning-rate schedule over "
                f"{saved.epochs} epochs, which --epochs would change for the epochs already "
                "trained; start a new run to train longer"
            )
        saved_net = load_spec(out / "spec.toml")
        if spec_to_toml(saved_net) != spec_to_toml(net):
            raise RunError(
                f"{out}/spec.toml differs from the spec given; resume with the same spec"
            )
        state = _read_run_file(ckpt, load_checkpoint)
        if config.epochs < state.epoch:
            raise RunError(
                f"{out} is already at epoch {state.epoch}; pass --epochs {state.epoch} or more"
            )
        trained_on = out / "data.json"
        if trained_on.exists():  # runs from before data.json was written cannot be checked
            saved_data = _read_run_file(trained_on, _read_json_object)
            if saved_data != identity:
                raise RunError(
                    f"{out} was trained on other data ({_describe_data(saved_data)}) than given "
                    f"({_describe_data(identity)}); resume with the same data set and sizes"
                )
        if saved.epochs != config.epochs:
            write_text_atomic(out / "config.json", config_to_json(config) + "\n")
        if state.records:  # the checkpoint is the record: a kill after it left the metrics behind
            write_metrics(out, list(state.records))
    else:
        if ckpt.exists():
            raise RunError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        foreign = sorted(
            p.name for p in out.iterdir() if p.name not in RUN_FILES and not _is_temporary(p.name)
        )
        if foreign:
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            raise RunError(
                f"{out} holds files that are not part of a run ({', '.join(foreign[:5])}"
                f"{more}); choose a new or empty directory for --out"
            )
        (out / "diverged.json").unlink(
            missing_ok=True
        )  # from a run that diverged before its first epoch
        write_text_atomic(out / "config.json", config_to_json(config) + "\n")
        save_spec(net, out / "spec.toml")
        write_text_atomic(out / "data.json", json.dumps(identity, indent=2) + "\n")
        state = init_state(net, config)
    trainer = Trainer(net, data, engine, config, exact_engine=exact_engine)
    done_now = 0
    diverged = read_diverged(
        out
    )  # a diverged run replays the same epoch to the same end: not again
    epochs = tqdm(
        total=config.epochs,
        initial=state.epoch,
        desc="epochs",
        unit="epoch",
        disable=not progress,
        leave=False,
    )
    while (
        not diverged
        and state.epoch < config.epochs
        and (stop_after is None or done_now < stop_after)
    ):
        start = time.perf_counter()
        with tqdm(
            total=len(trainer.u_train),
            desc=f"epoch {state.epoch + 1}",
            unit="sample",
            disable=not progress,
            leave=False,
        ) as bar:
            try:
                state = trainer.run_epoch(state, bar)
            except TrainingDiverged as exc:
                diverged = {
                    "epoch": exc.epoch,
                    "batch": exc.batch,
                    "failures": exc.failures,
                    "message": str(exc),
                }
                write_text_atomic(out / "diverged.json", json.dumps(diverged, indent=2) + "\n")
                break
        state = trainer.evaluate(state, time.perf_counter() - start)
        record = state.records[-1]
        save_checkpoint(ckpt, state)
        write_metrics(out, list(state.records))
        epochs.update(1)
        epochs.set_postfix(
            test=f"{record['test_accuracy']:.3f}", cos=f"{record['grad_cosine']:.5f}"
        )
        done_now += 1
    epochs.close()
    records = list(state.records)
    if records:  # again from the checkpoint's records, whatever happened to the files before
        write_metrics(out, records)
    # test sample 0 as the trained spec's [sample]: `circuitep simulate trained.toml` reports on a
    # real input
    trained = replace(trainer.network(state), sample=Sample(trainer.u_test[0], trainer.y_test[0]))
    save_spec(trained, out / "trained.toml")
    write_trained_netlist(out / "trained.cir", trained, trainer, command)
    if records:
        plots.learning_curves(
            records,
            out / "learning_curves.png",
            f"{net.name} on {data.name}: {config.algorithm} with {engine.name}",
        )
    final = records[-1] if records else {}
    # a diverged epoch's failures are in diverged.json only (its state was not kept)
    failures = diverged.get("failures", state.failures) if diverged else state.failures
    return {
        "out": str(out),
        "epochs": state.epoch,
        "complete": state.epoch >= config.epochs,
        "diverged": diverged,
        "test_accuracy": final.get("test_accuracy"),
        "train_accuracy": final.get("train_accuracy"),
        "grad_cosine": final.get("grad_cosine"),
        "failures": failures,
        "engine": engine.name,
        "algorithm": config.algorithm,
        "params": state.params,
    }
