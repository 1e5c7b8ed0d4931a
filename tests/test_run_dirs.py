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
import subprocess
import sys
import time
from pathlib import Path

import pytest

from circuitep.cli import main
from circuitep.runs import LOCK_NAME
from circuitep.train import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
XOR = ["train", "ff:2-2-2", "--data", "xor", "--no-progress"]

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


def child(argv: list[str], action: str, at: int = 0, ready: Path = Path("unused")) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, action, str(at), str(ready), *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        capsys.readouterr()
        assert exit_code(XOR + ["--seed", "2", "--epochs", "3", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{out} is in use by another run (pid {holder.pid} on " in err, err
        assert "--seed 1" in err and "choose another --out" in err, err
        assert exit_code(first + ["--resume"]) == 2, "a resume of a run in progress was accepted"
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "a refused run changed files"
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
