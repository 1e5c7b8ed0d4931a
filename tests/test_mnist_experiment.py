"""experiments/mnist/run.py end to end on a sliver of MNIST, as a user runs it (a subprocess).

What is checked: the results JSON has the fields the issue names; the trained circuit's ngspice
check agrees with the numpy engine; on the feedforward circuit VF, EP and the output-layer-only
baseline train alike (VF's and EP's hidden-layer gradient is exactly zero there, and their output
layer gradient equals the exact one up to the O(beta^2) bias of centred nudging, so they may differ
by rounding at most: held to one test image); a report over unfinished runs says so instead of
averaging them in, and one over a diverged run says where it diverged.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ngspice
SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "mnist" / "run.py"
N_TEST = 100


def run_script(
    tmp_path: Path, mnist_dir: Path, *extra: str, config_name: str = "config.json"
) -> subprocess.CompletedProcess:
    config = json.loads((SCRIPT.parent / "config.json").read_text())
    config["quick"].update(
        hidden=6, epochs=2, seeds=[0], n_train=300, n_test=N_TEST, ngspice_samples=40
    )
    (tmp_path / config_name).write_text(json.dumps(config))
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--config",
        str(tmp_path / config_name),
        "--data-dir",
        str(mnist_dir),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path / "results"),
        "--no-progress",
        *extra,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def accuracies(tmp_path: Path, name: str) -> list[float]:
    records = json.loads((tmp_path / "runs" / "quick" / name / "metrics.json").read_text())
    return [r["test_accuracy"] for r in records]


def test_mnist_script_reports_what_the_issue_asks(tmp_path, mnist_dir):
    run_script(tmp_path, mnist_dir)
    results = json.loads((tmp_path / "results" / "mnist-quick.json").read_text())
    for setting in ("layered", "feedforward"):
        for algorithm in ("aep", "ep", "vf", "bp"):
            r = results[setting][algorithm]
            assert r["seeds"] == 1
            for key in ("test_accuracy_epoch1", "test_accuracy_epoch2"):
                assert 0 <= r[key]["mean"] <= 1 and r[key]["std"] == 0.0
    aep = accuracies(tmp_path, "layered-aep-s0")
    assert results["layered"]["aep"]["test_accuracy_last_epochs"]["mean"] == pytest.approx(
        sum(aep) / 2, abs=1e-12
    )
    assert len(results["layered"]["aep"]["asymmetry_per_epoch"]) == 3  # initial + 2 epochs
    assert (
        results["layered"]["ep"]["asymmetry_final"]["mean"] == 0.0
    )  # EP's rule keeps pairs symmetric
    for key in ("ngspice_check", "ngspice_check_layered"):
        check = results[key]
        assert check["samples"] == 40 and check["agreement"] == 1.0
        assert (
            check["max_abs_diff_v"] <= 1e-6
        )  # the engines' agreement bound (tests/test_engines.py)
    vf = accuracies(tmp_path, "feedforward-vf-s0")
    for other in ("feedforward-ep-s0", "feedforward-output-s0"):
        assert all(
            abs(a - b) <= 1 / N_TEST for a, b in zip(accuracies(tmp_path, other), vf, strict=True)
        ), other
    assert (tmp_path / "results" / "mnist-quick.png").stat().st_size > 0

    # asked for more epochs than the runs hold, the report counts them as unfinished
    done = run_script(tmp_path, mnist_dir, "--report-only", "--epochs", "3")
    assert "| feedforward | aep | 0 (+1: at epoch 2) |" in done.stdout
    # a run that diverged (diverged.json, as train_run writes it) is reported as such, not trained
    # again
    run = tmp_path / "runs" / "quick" / "feedforward-bp-s0"
    (run / "diverged.json").write_text(
        json.dumps({"epoch": 3, "batch": 0, "failures": 100, "message": "test"})
    )
    done = run_script(
        tmp_path, mnist_dir, "--epochs", "3", "--setting", "feedforward", "--algorithm", "bp"
    )
    assert "feedforward-bp-s0: diverged in epoch 3, not trained again" in done.stdout
    assert len(json.loads((run / "metrics.json").read_text())) == 2
    done = run_script(tmp_path, mnist_dir, "--report-only", "--epochs", "3")
    assert "| feedforward | bp | 0 (+1: diverged in epoch 3) |" in done.stdout
    # another configuration, config-X.json, reports as mnist-X (its runs go to runs/mnist-X by
    # default)
    done = run_script(tmp_path, mnist_dir, "--report-only", config_name="config-x.json")
    assert (tmp_path / "results" / "mnist-x-quick.md").read_text() in done.stdout
    assert (
        "Command: `python experiments/mnist/run.py --quick --config "
        "experiments/mnist/config-x.json`" in done.stdout
    )


def test_missing_mnist_is_named_not_a_traceback(tmp_path):
    """No IDX files in --data-dir: the script exits with status 2 and says which files it looked
    for and where, as argparse reports any other bad option."""
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        "--data-dir",
        str(tmp_path),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path / "results"),
        "--no-progress",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "train-images-idx3-ubyte" in done.stderr and str(tmp_path) in done.stderr
