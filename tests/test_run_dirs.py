"""Run directories under concurrent runs, kills, full disks and odd ``--out`` values (issue 14).

Real processes throughout: a run that holds its directory is a child ``circuitep train`` stopped
(or killed with SIGKILL) by a line of its own just after it wrote a checkpoint, the instant that
matters; the file-size limit is the child's own ``RLIMIT_FSIZE``. Nothing is mocked: the child
runs the unchanged command line, only told when to stop.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from circuitep.builders import from_shorthand
from circuitep.cli import main
from circuitep.datasets import load_dataset
from circuitep.engines.layered import LayeredEngine
from circuitep.runs import LOCK_NAME, RunError, train_run
from circuitep.train import TrainConfig, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
XOR = ["train", "ff:2-2-2", "--data", "xor", "--no-progress"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# The child runs ``circuitep train`` and stops at one instant: "hold" sleeps (holding the run
# directory, after touching READY) once config.json and spec.toml are written, before any epoch;
# "kill" SIGKILLs itself once the checkpoint of epoch AT is on disk.
CHILD = """
import os, signal, sys, time
import circuitep.runs as runs
from circuitep.cli import main
action, at, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]
init, write = runs.init_state, runs.save_checkpoint
def init_then_hold(net, config):
    open(ready, "w").close()
    time.sleep(120)
def save_then_kill(path, state):
    write(path, state)
    if state.epoch == at:
        os.kill(os.getpid(), signal.SIGKILL)
if action == "hold":
    runs.init_state = init_then_hold
else:
    runs.save_checkpoint = save_then_kill
sys.argv = ["circuitep"] + sys.argv[4:]
raise SystemExit(main(sys.argv[1:]))
"""


def child(argv: list[str], action: str, at: int = 0, ready: Path = Path("unused")):
    """The child of CHILD running ``circuitep ARGV`` (a ``subprocess.Popen``)."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, action, str(at), str(ready), *argv],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_a_second_run_into_a_directory_in_use_is_refused_and_a_kill_frees_it(tmp_path, capsys):
    """Seeds 1 and 2 into one --out, the second started while the first has written its config but
    no checkpoint yet (where both once went on, mixing their files): the second is refused with the
    holder's pid and command and changes nothing; once the first is SIGKILLed no stale lock
    remains, and the run can start again."""
    out, ready = tmp_path / "run", tmp_path / "ready"
    first = XOR + ["--seed", "1", "--epochs", "3", "--out", str(out)]
    holder = child(first, "hold", ready=ready)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None, holder.communicate()
            assert time.monotonic() < deadline, "the first run did not start training in 60 s"
            time.sleep(0.05)
        before = files(out)
        capsys.readouterr()
        assert exit_code(XOR + ["--seed", "2", "--epochs", "3", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another run (pid {holder.pid} on " in err, err
        assert "--seed 1" in err and "choose another --out" in err, err
        assert exit_code(first + ["--resume"]) == 2, "a resume of a run in progress was accepted"
        assert files(out) == before, "a refused run changed files"
        assert json.loads((out / "config.json").read_text())["seed"] == 1
    finally:
        holder.kill()
        holder.communicate()
    assert holder.returncode == -signal.SIGKILL
    assert (out / LOCK_NAME).exists()  # left by the kill, but no longer locked:
    assert exit_code(first) == 0
    assert load_checkpoint(out / "checkpoint.npz").epoch == 3
    assert not (out / LOCK_NAME).exists(), "the lock file outlived the run"


def test_a_kill_just_after_the_final_checkpoint_is_repaired_by_resume(tmp_path):
    """SIGKILL right after the last epoch's checkpoint: metrics.json/csv are an epoch short and the
    trained circuit and figure missing; the resume rewrites all of them from the checkpoint."""
    out = tmp_path / "run"
    argv = XOR + ["--epochs", "2", "--out", str(out)]
    killed = child(argv, "kill", at=2)
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    records = list(load_checkpoint(out / "checkpoint.npz").records)
    assert [r["epoch"] for r in records] == [1, 2]
    assert len(json.loads((out / "metrics.json").read_text())) == 1  # the state the kill left
    assert not (out / "trained.toml").exists()

    assert exit_code(argv + ["--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text()) == records
    with open(out / "metrics.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2]
    for name in ("trained.toml", "trained.cir", "learning_curves.png"):
        assert (out / name).stat().st_size > 0, name


def test_a_diverged_run_exits_3_and_says_where_diverged_json_is(tmp_path, capsys):
    out = tmp_path / "run"
    argv = XOR + ["--epochs", "3", "--lr", "1e300", "--out", str(out)]
    with warnings.catch_warnings():  # the Newton solver may warn of overflow on the runaway
        warnings.simplefilter("ignore", RuntimeWarning)
        assert exit_code(argv) == 3
    err = capsys.readouterr().err
    where = out / "diverged.json"
    assert f"circuitep: training diverged in epoch 2; where and why: {where}" in err, err
    assert json.loads(where.read_text())["epoch"] == 2
    assert exit_code(argv + ["--resume"]) == 3, "a resume of a diverged run exited as if trained"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "3 when training diverged" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("out", ["", " "])
def test_an_empty_out_is_refused(out, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert exit_code(XOR + ["--epochs", "1", "--out", out]) == 2
    assert "--out: expected a directory for the run, got an empty path" in capsys.readouterr().err
    with pytest.raises(RunError, match="the run directory .* is an empty path"):
        train_run(
            from_shorthand("ff:2-2-2"), load_dataset("xor"), LayeredEngine(), TrainConfig(), out
        )
    assert list(tmp_path.iterdir()) == [], "a refused run wrote into the current directory"


def test_a_new_run_in_a_directory_holding_other_files_is_refused(tmp_path, monkeypatch, capsys):
    """``--out .`` in a project folder: refused before anything is written; an empty one is fine."""
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path)
    assert exit_code(XOR + ["--epochs", "1", "--out", "."]) == 2
    err = capsys.readouterr().err
    assert (
        "holds files that are not part of a run (notes.txt, src); choose a new or empty directory"
    ) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "src"]
    monkeypatch.chdir(tmp_path / "src")
    assert exit_code(XOR + ["--epochs", "1", "--out", "."]) == 0
    assert (tmp_path / "src" / "checkpoint.npz").exists()


def test_a_file_size_limit_names_the_file_and_what_to_do(tmp_path):
    """``ulimit -f``: the write fails with EFBIG (SIGXFSZ ignored, as by a shell trapping it)."""

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "circuitep.cli", *XOR, "--epochs", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
        env=ENV,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"circuitep: error: cannot write {out / 'checkpoint.npz'} (File too "
        "large): the file exceeds the file-size limit (ulimit -f): raise the "
        "limit\n"
    ), done.stderr
    assert not [p.name for p in out.iterdir() if "tmp" in p.name], "a partial temporary was left"


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs sysfs (where none may write)")
def test_an_out_where_nobody_may_write_names_it(capsys):
    out = "/sys/circuitep-run"
    assert exit_code(XOR + ["--epochs", "1", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"circuitep: error: cannot create the run directory {out} (Operation "
        "not permitted): no permission to write there: choose a directory you "
        "may write to"
    ), err


def test_the_mnist_experiment_refuses_a_run_directory_in_use(tmp_path, mnist_dir):
    """experiments/mnist/run.py writes run directories through train_run: one in use by another
    process (here this one) ends the script with status 2 and the holder named, not a traceback."""
    from circuitep.runs import lock_run

    config = json.loads((ROOT / "experiments" / "mnist" / "config.json").read_text())
    config["quick"].update(hidden=4, epochs=1, seeds=[0], n_train=50, n_test=20)
    (tmp_path / "config.json").write_text(json.dumps(config))
    busy = tmp_path / "runs" / "quick" / "layered-aep-s0"
    busy.mkdir(parents=True)
    script = ROOT / "experiments" / "mnist" / "run.py"
    with lock_run(busy):
        done = subprocess.run(
            [
                sys.executable,
                str(script),
                "--quick",
                "--config",
                str(tmp_path / "config.json"),
                "--data-dir",
                str(mnist_dir),
                "--runs-dir",
                str(tmp_path / "runs"),
                "--results-dir",
                str(tmp_path / "results"),
                "--no-progress",
                "--setting",
                "layered",
                "--algorithm",
                "aep",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=ENV,
        )
    assert done.returncode == 2, done.stderr[-3000:]
    holder = f"pid {os.getpid()} on {socket.gethostname()}, started "
    assert done.stderr.startswith(f"run.py: error: {busy} is in use by another run ({holder}"), (
        done.stderr
    )
    assert done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and sorted(p.name for p in busy.iterdir()) == []
