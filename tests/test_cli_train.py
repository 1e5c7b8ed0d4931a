"""``circuitep train`` and ``circuitep demo``: the command line over
:func:`circuitep.runs.train_run`.

A short run of ff:64-8-10 on 100 digits writes every file of the run layout (runs.py docstring),
each checked for content, not only existence: metrics as JSON and CSV with the same rows, the
initial and trained specs (loadable, and the trained one equal to the checkpoint's parameters),
the netlist (title line first, ``.end`` last) and the figure (a PNG). Starting over a run without
``--resume`` is refused (exit 2, the message names ``--resume``); ``--resume`` on a finished run
trains nothing more. Bad arguments exit with code 2 and a message on stderr.

Exact comparisons only: the CSV is written from the same floats (``repr`` round-trips) and the
spec TOML writes the shortest round-tripping decimals, so nothing needs a tolerance.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from circuitep.builders import from_shorthand
from circuitep.cli import main
from circuitep.netlist import spice_number
from circuitep.specio import load_spec
from circuitep.train import load_checkpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RECORD_KEYS = {"epoch", "train_accuracy", "test_accuracy", "cost", "grad_cosine"}
SPEC = "ff:64-8-10"


def train_args(out: Path, *extra: str) -> list[str]:
    return [
        "train",
        SPEC,
        "--data",
        "digits",
        "--n-train",
        "100",
        "--n-test",
        "50",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def exit_code(argv: list[str]) -> int:
    """What the process would exit with: main's return value or argparse's SystemExit code."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(train_args(out)) == 0
    return out


def test_train_writes_the_run_layout(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    expected = {
        "config.json",
        "spec.toml",
        "data.json",
        "checkpoint.npz",
        "metrics.json",
        "metrics.csv",
        "trained.toml",
        "trained.cir",
        "learning_curves.png",
    }
    assert names == expected, (
        f"missing {sorted(expected - names)}, unexpected {sorted(names - expected)}"
    )

    config = json.loads((run_dir / "config.json").read_text())
    assert (config["epochs"], config["algorithm"], config["seed"]) == (2, "aep", 0), config

    records = json.loads((run_dir / "metrics.json").read_text())
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert RECORD_KEYS <= set(r), f"record lacks {sorted(RECORD_KEYS - set(r))}: {r}"
        assert 0 <= r["train_accuracy"] <= 1 and 0 <= r["test_accuracy"] <= 1, r
        assert r["grad_cosine"] >= 0.999, r  # AEP on a feedforward circuit (measured 1 - 1e-8)
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records)
    for row, r in zip(rows, records, strict=True):
        assert list(row) == list(r), f"CSV columns {list(row)} != JSON keys {list(r)}"
        assert {k: type(r[k])(v) for k, v in row.items()} == r, f"CSV row {row} != JSON record {r}"

    ckpt = load_checkpoint(run_dir / "checkpoint.npz")
    assert ckpt.epoch == 2 and list(ckpt.records) == records
    initial, trained = load_spec(run_dir / "spec.toml"), load_spec(run_dir / "trained.toml")
    reference = from_shorthand(SPEC, seed=0).params()
    for k, v in reference.items():
        assert np.array_equal(initial.params()[k], v), f"spec.toml: {k} is not the initial {SPEC}"
        assert np.array_equal(trained.params()[k], ckpt.params[k]), (
            f"trained.toml: {k} is not the checkpoint's"
        )
    assert not np.array_equal(trained.params()["fwd1"], reference["fwd1"]), (
        "trained.toml is untrained"
    )

    lines = (run_dir / "trained.cir").read_text().splitlines()
    assert lines[0].strip() and not lines[0].startswith("."), (
        f"first line is not a title: {lines[0]!r}"
    )
    assert SPEC.replace(":", "_").replace("-", "_") in lines[0], lines[0]
    assert [ln for ln in lines if ln.strip()][-1].strip().lower() == ".end"

    png = (run_dir / "learning_curves.png").read_bytes()
    assert png[:8] == PNG_MAGIC, f"not a PNG: {png[:8]!r}"
    width, height = struct.unpack(">II", png[16:24])
    assert png[12:16] == b"IHDR" and width > 0 and height > 0


def test_train_again_without_resume_is_refused(run_dir, capsys):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    capsys.readouterr()
    assert exit_code(train_args(run_dir)) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and str(run_dir) in err, err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before, (
        "a refused run changed files"
    )


def test_resume_of_a_finished_run_trains_nothing(run_dir, capsys):
    ckpt = (run_dir / "checkpoint.npz").read_bytes()
    metrics = (run_dir / "metrics.json").read_text()
    capsys.readouterr()
    assert exit_code(train_args(run_dir, "--resume")) == 0
    assert (run_dir / "checkpoint.npz").read_bytes() == ckpt, "the checkpoint was rewritten"
    assert (run_dir / "metrics.json").read_text() == metrics, "metrics changed"
    assert load_checkpoint(run_dir / "checkpoint.npz").epoch == 2
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, where",
    [
        (["train", SPEC, "--out", "OUT", "--lr", "0"], "--lr"),
        (["train", SPEC, "--out", "OUT", "--lr", "nan"], "--lr"),
        (["train", SPEC, "--out", "OUT", "--epochs", "0"], "--epochs"),
        (["train", SPEC, "--out", "OUT", "--data", "nosuch"], "--data"),
        (["train", SPEC, "--out", "OUT", "--algorithm", "sgd"], "--algorithm"),
        (["train", SPEC], "--out"),
        (
            ["train", SPEC, "--out", "OUT", "--seed", "-1"],
            "--seed: expected a seed in 0 .. 2**32 - 1",
        ),
        (["train", SPEC, "--out", "OUT", "--seed", str(2**70)], "--seed"),
    ],
)
def test_bad_arguments_exit_2_from_argparse(argv, where, tmp_path, capsys):
    argv = [str(tmp_path / "run") if a == "OUT" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert where in err, err
    assert not (tmp_path / "run").exists(), "a refused command created the run directory"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosuch.toml", "nosuch.toml"),
        ("ff:10-8-10", "10 inputs but data set 'digits' has 64 features"),
        ("ff:64-8", None),  # a valid shorthand with 8 outputs: the message names the outputs
        ("zz:1-2", "shorthand 'zz:1-2'"),
        (
            "ff:\uff16\uff14-8-10",
            "sizes must be whole numbers joined by '-'",
        ),  # fullwidth digits: int() reads them
        (
            "ff:64-99999999999999999999-10",
            "a layer of 99999999999999999999 nodes is beyond 10,000,000",
        ),
        (
            "my:spec.toml",
            "spec file 'my:spec.toml' does not exist",
        ),  # a colon in a file name is no shorthand
    ],
)
def test_bad_spec_exits_2_with_message(spec, message, tmp_path, capsys):
    code = exit_code(
        [
            "train",
            spec,
            "--n-train",
            "20",
            "--n-test",
            "10",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("circuitep: error: ") and err.count("\n") == 1, f"not one line: {err!r}"
    assert (message or "8 outputs but data set 'digits' has 10 classes") in err, err


def test_demo_help_exits_0(capsys):
    assert exit_code(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--epochs" in out and "--resume" in out, out


def test_a_network_without_leaks_is_refused_before_anything_is_written(tmp_path, capsys):
    """beta and the learning rates are relative to the leaks: without any, nothing can start."""
    from dataclasses import replace

    from circuitep.specio import save_spec

    net = from_shorthand("ff:2-2-2", seed=0)
    groups = tuple(
        replace(g, leak=0.0, clamp=(0.4, 0.6)) if g.free else g for g in net.groups
    )  # DC path: diodes
    save_spec(replace(net, groups=groups), tmp_path / "noleak.toml")
    code = exit_code(
        [
            "train",
            str(tmp_path / "noleak.toml"),
            "--data",
            "xor",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "has no leak conductance to set its natural scale" in err, err
    assert not (tmp_path / "run").exists(), "a refused run wrote files"


def test_trained_netlist_says_which_sample_and_command_and_runs_alone(run_dir):
    """trained.cir holds test sample 0: the header gives its label and targets and the exact
    command; run alone in ngspice -b it prints the output voltages (issue 18)."""
    text = (run_dir / "trained.cir").read_text()
    assert f"* written by: circuitep {' '.join(train_args(run_dir))}" in text
    assert "* sample: test sample 0 of digits, label " in text and "targets (V) " in text
    assert "on this sample the nodes span [" in text
    assert ".control" in text and "print v(out_0)" in text


def test_metrics_hold_the_circuits_power_energy_and_settling_time(run_dir):
    """Per epoch (circuitep.train.Trainer.physics): free-phase power on the probe batch, settling
    time and energies of probe sample 0, node range; AEP adds two nudged phases to an inference."""
    for r in json.loads((run_dir / "metrics.json").read_text()):
        assert r["power_w"] > 0 and 0 < r["settling_time_s"] < 1e-5, r
        assert (
            r["energy_inference_j"] > 0 and r["energy_training_sample_j"] > r["energy_inference_j"]
        ), r
        assert r["node_min_v"] < r["node_max_v"], r


def test_trained_spec_holds_test_sample_0(run_dir):
    """So that `circuitep simulate trained.toml` reports on a digit, not on no sample at all."""
    sample = load_spec(run_dir / "trained.toml").sample
    assert (
        sample is not None
        and sample.inputs.shape == (64,)
        and sorted(set(sample.targets)) == [0.0, 1.0]
    )
    text = (run_dir / "trained.cir").read_text()
    assert all(
        f"vin_{k} in_{k} 0 dc {spice_number(float(v))}\n" in text
        for k, v in enumerate(sample.inputs)
    )
