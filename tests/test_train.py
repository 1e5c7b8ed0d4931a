"""Training end to end (:mod:`circuitep.train`, :func:`circuitep.runs.train_run`).

- Resume: a run interrupted after one epoch (``stop_after=1``) and resumed reproduces the
  uninterrupted run bit for bit (parameters ``np.array_equal``, metrics equal except ``seconds``);
  resuming with another configuration or spec, restarting over a run, or resuming nothing is a
  ``RunError`` naming the problem.
- Atomic checkpoint: a kill in the middle of ``np.savez`` leaves the previous checkpoint loadable,
  and resuming from it still reproduces the uninterrupted run.
- ngspice in the loop: parameters reach the loaded circuits by ``alter`` (one load per phase kind),
  and ngspice trains to the same parameters as the numpy (layered) engine.
- VF vs AEP vs bp on a feedforward circuit: VF's hidden-layer gradient is exactly zero (nudging
  the outputs does not move a hidden node that nothing feeds back to), so VF trains only the output
  layer; AEP matches backprop.
- :func:`constrain`: bounds, masks, quantisation.
- Bad input is refused before training, with a message naming the field.

Tolerances, and why:

- Resume: 0 (exact). The sample order of epoch ``e`` depends on ``(seed, e)`` only and the state
  (parameters, momentum, epoch, records) round-trips through ``.npz`` exactly, so nothing may
  differ but the wall-clock ``seconds``.
- numpy vs ngspice (ff:64-16-10, 200 / 100 digits, 3 epochs of batch 8: with 2 epochs of batch 16
  the circuit stays near chance, 19 %, and agreeing accuracies would show little; measured 44 %):
  parameters within 1e-6 of each group's scale (measured 1.6e-11: ngspice solves to reltol 1e-10,
  so each step's gradient differs by ~1e-10 relative; a wrong or missing ``alter`` would differ at
  O(1)); test accuracy within 1 sample of 100 (0.01 + 1e-9): identical parameters give identical
  predictions unless a sample's two largest outputs are within ~1e-9 V, so at most one such tie may
  flip (measured: equal accuracies every epoch).
- Gradient cosine of AEP with the exact gradient >= 0.999 every epoch on both engines (the bar of
  the task; measured 1 - 3e-9, the O(beta^2) bias of the centred estimate, beta = 1e-2 x leak).
- ngspice loads: one circuit per phase kind used, free and aep (both nudge signs share one circuit,
  evaluation reuses the free one): <= 2 (measured 2 loads and 8,646 alters for 64 samples).
- VF vs output-only training: VF <= output-only + 1 pp (measured: identical runs, since VF's
  hidden gradient is exactly 0 and its output-layer gradient is then exact). AEP vs bp: within
  1 pp (measured identical to the printed digits: AEP's bias is ~1e-8 in cosine). bp must beat
  output-only by >= 5 pp (measured 95.3 % vs 84.2 %), or the comparison shows nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import circuitep.train
from circuitep.builders import from_shorthand, layered
from circuitep.datasets import load_dataset
from circuitep.engines.base import ConvergenceError, Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.runs import RunError, train_run
from circuitep.specio import load_spec
from circuitep.train import (
    LEAK_FLOOR,
    TrainConfig,
    Trainer,
    config_from_json,
    config_to_json,
    constrain,
    init_state,
    load_checkpoint,
    lr_scale,
    natural_scale,
    save_checkpoint,
    storage_of,
)
from circuitep.variation import Variation, draw

RESUME_SPEC = "ff:64-16-10"
RESUME_CONFIG = TrainConfig(epochs=3, batch_size=32, lr=0.05, v_on=1.0, seed=0)
ACC_TOL = 0.01 + 1e-9  # one sample of 100
COSINE_MIN = 0.999


# --- helpers ----------------------------------------------------------------------------------


def resume_data():
    return load_dataset("digits", n_train=300, n_test=100, seed=0)


def records(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())


def without_seconds(recs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in recs]


def assert_same_params(a: dict, b: dict, what: str) -> None:
    assert set(a) == set(b), f"{what}: parameter groups {sorted(a)} != {sorted(b)}"
    for k in a:
        assert np.array_equal(a[k], b[k]), (
            f"{what}: {k} differs, max |diff| = {np.max(np.abs(a[k] - b[k])):.3e}"
        )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The reference: RESUME_SPEC on 300 digits for 3 epochs in one call (dir A)."""
    out = tmp_path_factory.mktemp("runs") / "A"
    summary = train_run(
        from_shorthand(RESUME_SPEC, seed=0),
        resume_data(),
        LayeredEngine(),
        RESUME_CONFIG,
        out,
        progress=False,
    )
    assert summary["complete"] and summary["epochs"] == 3, summary
    return out


# --- 1. resume --------------------------------------------------------------------------------


def test_resume_reproduces_uninterrupted_run(uninterrupted, tmp_path):
    net, data = from_shorthand(RESUME_SPEC, seed=0), resume_data()
    out = tmp_path / "B"
    first = train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, progress=False, stop_after=1)
    assert first["epochs"] == 1 and not first["complete"], first
    assert load_checkpoint(out / "checkpoint.npz").epoch == 1
    assert len(records(out)) == 1
    second = train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, resume=True, progress=False)
    assert second["epochs"] == 3 and second["complete"], second

    a, b = (
        load_checkpoint(uninterrupted / "checkpoint.npz"),
        load_checkpoint(out / "checkpoint.npz"),
    )
    assert a.epoch == b.epoch == 3
    assert_same_params(a.params, b.params, "checkpoint params, resumed vs uninterrupted")
    assert_same_params(a.velocity, b.velocity, "checkpoint momentum, resumed vs uninterrupted")
    assert without_seconds(records(uninterrupted)) == without_seconds(records(out))
    assert without_seconds(list(a.records)) == without_seconds(list(b.records))
    assert [r["epoch"] for r in records(out)] == [1, 2, 3]
    assert_same_params(second["params"], b.params, "summary vs checkpoint")


def test_resume_with_other_config_or_spec_is_refused(tmp_path):
    net, data = from_shorthand(RESUME_SPEC, seed=0), resume_data()
    out = tmp_path / "run"
    train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, progress=False, stop_after=2)
    before = (out / "checkpoint.npz").read_bytes()
    with pytest.raises(RunError, match=r"config\.json differs"):
        train_run(
            net,
            data,
            LayeredEngine(),
            replace(RESUME_CONFIG, lr=0.1),
            out,
            resume=True,
            progress=False,
        )
    with pytest.raises(RunError, match=r"spec\.toml differs"):
        train_run(
            from_shorthand(RESUME_SPEC, seed=1),
            data,
            LayeredEngine(),
            RESUME_CONFIG,
            out,
            resume=True,
            progress=False,
        )
    # other data: another subset of the same data set has the same shapes, only the hash differs
    other = load_dataset("digits", n_train=len(data.x_train), n_test=len(data.x_test), seed=1)
    with pytest.raises(
        RunError, match=r"trained on other data \(digits, .* sha256 .*resume with the same data"
    ):
        train_run(net, other, LayeredEngine(), RESUME_CONFIG, out, resume=True, progress=False)
    with pytest.raises(RunError, match=r"is already at epoch 2; pass --epochs 2 or more"):
        train_run(
            net,
            data,
            LayeredEngine(),
            replace(RESUME_CONFIG, epochs=1),
            out,
            resume=True,
            progress=False,
        )
    assert (out / "checkpoint.npz").read_bytes() == before, (
        "a refused resume touched the checkpoint"
    )


@pytest.mark.parametrize(
    "damage",
    [
        ("config.json", "not json", r"config\.json cannot be read \(JSONDecodeError"),
        (
            "config.json",
            '{"foo": 1}',
            r"config\.json cannot be read \(ValueError: unknown key\(s\) \['foo'\]",
        ),
        ("checkpoint.npz", "", r"checkpoint\.npz cannot be read \(EOFError"),
        ("checkpoint.npz", "PK\x03\x04 truncated", r"checkpoint\.npz cannot be read \(BadZipFile"),
        ("data.json", "[1", r"data\.json cannot be read"),
        (
            "data.json",
            "[1]",
            r"data\.json cannot be read \(ValueError: expected a JSON object, got list",
        ),
    ],
    ids=[
        "config-not-json",
        "config-unknown-key",
        "checkpoint-empty",
        "checkpoint-truncated",
        "data-json",
        "data-json-list",
    ],
)
def test_resume_of_a_damaged_run_names_the_file(tmp_path, damage):
    name, text, message = damage
    net, data = from_shorthand(RESUME_SPEC, seed=0), resume_data()
    out = tmp_path / "run"
    train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, progress=False, stop_after=1)
    (out / name).write_text(text)
    with pytest.raises(RunError, match=message + r".*delete the file or start a new run"):
        train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, resume=True, progress=False)


def test_cosine_schedule_lowers_the_rate_batch_by_batch(monkeypatch, tmp_path):
    """Each SGD step gets (1 + cos(pi t)) / 2 with t the fraction of the run's batches done before
    it (2 epochs of 3 batches: t = 0, 1/6, ..., 5/6); a constant schedule leaves the rate alone."""
    scales = []
    real_step = circuitep.train.sgd_step

    def recording_step(net, state, grads, config, scale=1.0, sigma=None):
        scales.append(scale)
        return real_step(net, state, grads, config, scale, sigma)

    monkeypatch.setattr(circuitep.train, "sgd_step", recording_step)
    net, data = from_shorthand(RESUME_SPEC, seed=0), resume_data()
    config = replace(RESUME_CONFIG, epochs=2, batch_size=100, lr_schedule="cosine")
    train_run(net, data, LayeredEngine(), config, tmp_path / "cosine", progress=False)
    assert scales == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * k / 6)) for k in range(6)], abs=1e-15
    )
    scales.clear()
    train_run(
        net,
        data,
        LayeredEngine(),
        replace(config, lr_schedule="constant"),
        tmp_path / "constant",
        progress=False,
    )
    assert scales == [1.0] * 6
    # a cosine schedule is laid over the run's epochs: extending the run would change its past
    with pytest.raises(RunError, match="cosine learning-rate schedule over 2 epochs"):
        train_run(
            net,
            data,
            LayeredEngine(),
            replace(config, epochs=3),
            tmp_path / "cosine",
            resume=True,
            progress=False,
        )
    assert lr_scale(config, 1.5) == 0.0  # beyond the end the rate stays at 0


def test_restart_over_existing_run_is_refused(uninterrupted):
    config_before = (uninterrupted / "config.json").read_bytes()
    ckpt_before = (uninterrupted / "checkpoint.npz").read_bytes()
    with pytest.raises(RunError, match=r"already holds a run.*--resume"):
        train_run(
            from_shorthand(RESUME_SPEC, seed=0),
            resume_data(),
            LayeredEngine(),
            replace(RESUME_CONFIG, lr=0.2),
            uninterrupted,
            progress=False,
        )
    assert (uninterrupted / "config.json").read_bytes() == config_before
    assert (uninterrupted / "checkpoint.npz").read_bytes() == ckpt_before


@pytest.mark.parametrize("make_dir", [False, True], ids=["missing-dir", "empty-dir"])
def test_resume_without_checkpoint_is_refused(tmp_path, make_dir):
    out = tmp_path / "run"
    if make_dir:
        out.mkdir()
    with pytest.raises(RunError, match=r"nothing to resume.*checkpoint\.npz"):
        train_run(
            from_shorthand(RESUME_SPEC, seed=0),
            resume_data(),
            LayeredEngine(),
            RESUME_CONFIG,
            out,
            resume=True,
            progress=False,
        )


class SimulatedKill(Exception):
    """Stands for the process being killed while ``np.savez`` writes."""


def test_checkpoint_survives_kill_mid_write(uninterrupted, tmp_path, monkeypatch):
    net, data = from_shorthand(RESUME_SPEC, seed=0), resume_data()
    out = tmp_path / "run"
    train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, progress=False, stop_after=1)
    good = load_checkpoint(out / "checkpoint.npz")
    written = []

    def partial_savez(file, *args, **kwds):
        written.append(Path(file))
        with open(file, "wb") as f:
            f.write(b"PK\x03\x04 partial zip")  # a zip header and nothing else: unreadable
        raise SimulatedKill(f"killed while writing {file}")

    monkeypatch.setattr(circuitep.train.np, "savez", partial_savez)
    with pytest.raises(SimulatedKill):
        train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, resume=True, progress=False)
    monkeypatch.undo()

    assert written and written[0].name != "checkpoint.npz", (
        f"savez wrote the checkpoint in place: {written}"
    )
    state = load_checkpoint(out / "checkpoint.npz")
    assert state.epoch == 1
    assert_same_params(state.params, good.params, "checkpoint after the kill")
    assert len(records(out)) == 1, "metrics.json ran ahead of the checkpoint"

    # The partial file is not taken for a checkpoint: resuming continues from epoch 1 and reproduces
    # the uninterrupted run; the next successful save replaces (removes) the partial temporary.
    summary = train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, resume=True, progress=False)
    assert summary["complete"]
    assert_same_params(
        load_checkpoint(out / "checkpoint.npz").params,
        load_checkpoint(uninterrupted / "checkpoint.npz").params,
        "resumed after the kill",
    )
    assert without_seconds(records(out)) == without_seconds(records(uninterrupted))
    stray = sorted(p.name for p in out.iterdir() if "tmp" in p.name)
    assert not stray, f"temporary files left in the run directory: {stray}"


class FlakyEngine:
    """LayeredEngine, except that nudged phases of a batch holding ``bad`` (an input row; None:
    every row) fail; ``names_samples``: the error says which rows failed, as the numpy engines'
    errors do."""

    name = "flaky"

    def __init__(self, bad: np.ndarray, names_samples: bool = False, free_fails: bool = False):
        self.bad, self.inner, self.names_samples, self.free_fails = (
            bad,
            LayeredEngine(),
            names_samples,
            free_fails,
        )

    def solve(self, net, phase, inputs, targets=None, x0=None, x_init=None):
        rows = [
            k
            for k, row in enumerate(np.asarray(inputs))
            if self.bad is None or np.array_equal(row, self.bad)
        ]
        if (phase.kind != "free" or self.free_fails) and rows:
            raise ConvergenceError(
                "simulated non-convergence", samples=rows if self.names_samples else None
            )
        return self.inner.solve(net, phase, inputs, targets, x0, x_init)


def failing_sample(probe: bool) -> np.ndarray:
    """Inputs of a training sample inside (or outside) the gradient-cosine probe batch."""
    trainer = Trainer(
        from_shorthand(RESUME_SPEC, seed=0), resume_data(), LayeredEngine(), RESUME_CONFIG
    )
    in_probe = set(trainer.probe.tolist())
    index = next(i for i in range(len(trainer.u_train)) if (i in in_probe) == probe)
    return trainer.u_train[index]


def test_resume_reproduces_failure_counts(tmp_path):
    net, data, bad = from_shorthand(RESUME_SPEC, seed=0), resume_data(), failing_sample(probe=False)
    train_run(net, data, FlakyEngine(bad), RESUME_CONFIG, tmp_path / "a", progress=False)
    train_run(
        net, data, FlakyEngine(bad), RESUME_CONFIG, tmp_path / "b", progress=False, stop_after=1
    )
    train_run(
        net, data, FlakyEngine(bad), RESUME_CONFIG, tmp_path / "b", resume=True, progress=False
    )
    a, b = records(tmp_path / "a"), records(tmp_path / "b")
    assert [r["failures"] for r in a] == [1, 2, 3]
    assert without_seconds(a) == without_seconds(b)


def test_failures_are_training_state_not_trainer_state(tmp_path):
    """The failure count travels in the TrainState the step functions return and in the
    checkpoint; the Trainer's attributes are the same objects after an epoch as before."""
    net, data, bad = from_shorthand(RESUME_SPEC, seed=0), resume_data(), failing_sample(probe=False)
    trainer = Trainer(net, data, FlakyEngine(bad), RESUME_CONFIG)
    before = {k: id(v) for k, v in vars(trainer).items()}
    state = trainer.run_epoch(init_state(net, RESUME_CONFIG))
    assert state.failures == 1 and state.epoch == 1
    assert {k: id(v) for k, v in vars(trainer).items()} == before
    state = trainer.evaluate(state, 0.0)
    assert state.failures == state.records[-1]["failures"] == 1  # its free phase converges
    save_checkpoint(tmp_path / "c.npz", replace(state, records=(), failures=5))
    assert load_checkpoint(tmp_path / "c.npz").failures == 5  # from the checkpoint, not the records


@pytest.mark.parametrize("names_samples", [False, True], ids=["halving", "named"])
def test_skipping_a_sample_leaves_the_mean_gradient_of_the_others(names_samples):
    net, data, bad = from_shorthand(RESUME_SPEC, seed=0), resume_data(), failing_sample(probe=False)
    trainer = Trainer(net, data, FlakyEngine(bad, names_samples), RESUME_CONFIG)
    k = next(i for i in range(len(trainer.u_train)) if np.array_equal(trainer.u_train[i], bad))
    idx = np.arange(max(0, k - 6), k + 7)
    grads, n, failures = trainer._batch_gradient(net, idx)
    others = idx[idx != k]
    expected = trainer.gradient(net, trainer.u_train[others], trainer.y_train[others]).grads
    assert n == len(others) and failures == 1
    for key in expected:  # sums of the same per-sample terms in another order: rounding only
        assert np.allclose(
            grads[key], expected[key], rtol=1e-12, atol=1e-12 * np.abs(expected[key]).max()
        ), key


@pytest.mark.parametrize("names_samples", [False, True], ids=["halving", "named"])
def test_a_sample_without_operating_point_counts_as_wrong_in_accuracy(names_samples):
    net, data, bad = from_shorthand(RESUME_SPEC, seed=0), resume_data(), failing_sample(probe=False)
    trainer = Trainer(net, data, FlakyEngine(bad, names_samples, free_fails=True), RESUME_CONFIG)
    reference = Trainer(net, data, LayeredEngine(), RESUME_CONFIG)
    k = next(i for i in range(len(trainer.u_train)) if np.array_equal(trainer.u_train[i], bad))
    u, labels = trainer.u_train[: k + 5], data.y_train[: k + 5]
    out = reference._outputs(net, u)
    correct = out.argmax(1) == labels
    accuracy, _, failures = trainer.accuracy(net, u, labels, chunk=len(u))
    assert failures == 1
    assert accuracy == (correct.sum() - correct[k]) / len(u)


def test_skip_covers_probe_batch(tmp_path):
    net, data, bad = from_shorthand(RESUME_SPEC, seed=0), resume_data(), failing_sample(probe=True)
    summary = train_run(
        net,
        data,
        FlakyEngine(bad),
        replace(RESUME_CONFIG, epochs=1),
        tmp_path / "run",
        progress=False,
    )
    assert summary["complete"] and summary["failures"] >= 1


def test_training_that_loses_every_sample_stops_as_diverged(tmp_path):
    """Whole batches in a row (at least DIVERGED_AFTER = 100 samples) without an operating point
    leave nothing to update with, so the parameters would stay where no sample converges: the run
    stops at its last completed epoch, says where in diverged.json, and a resume does not replay
    it."""
    net, data, out = from_shorthand(RESUME_SPEC, seed=0), resume_data(), tmp_path / "run"
    train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, progress=False, stop_after=1)
    after_epoch1 = load_checkpoint(out / "checkpoint.npz").params
    summary = train_run(
        net, data, FlakyEngine(bad=None), RESUME_CONFIG, out, resume=True, progress=False
    )
    diverged = json.loads((out / "diverged.json").read_text())
    assert summary["diverged"] == diverged and summary["epochs"] == 1 and not summary["complete"]
    assert (diverged["epoch"], diverged["batch"], diverged["failures"]) == (
        2,
        3,
        4 * 32,
    )  # 4 x 32 >= 100
    assert "training diverged in epoch 2" in diverged["message"]
    assert_same_params(
        load_checkpoint(out / "checkpoint.npz").params, after_epoch1, "after divergence"
    )
    assert len(records(out)) == 1 and (out / "trained.toml").exists()
    again = train_run(net, data, LayeredEngine(), RESUME_CONFIG, out, resume=True, progress=False)
    assert again["diverged"] == diverged and again["epochs"] == 1


def test_a_whole_epoch_without_an_operating_point_is_divergence_on_small_sets(tmp_path):
    """Fewer training samples than DIVERGED_AFTER: an epoch in which no sample converged is the
    same dead end (the counter restarts each epoch, so it would never reach 100)."""
    net, data = from_shorthand("ff:2-2-2", seed=0), load_dataset("xor")
    summary = train_run(
        net,
        data,
        FlakyEngine(bad=None),
        replace(RESUME_CONFIG, batch_size=2),
        tmp_path / "run",
        progress=False,
    )
    assert summary["diverged"]["epoch"] == 1 and summary["epochs"] == 0, summary["diverged"]
    assert summary["diverged"]["failures"] == len(data.x_train)


# --- 3. ngspice in the loop -------------------------------------------------------------------


@pytest.mark.ngspice
def test_ngspice_training_alters_loaded_circuits(ngspice_engine_factory, tmp_path):
    engine = ngspice_engine_factory(
        "folded", sweep=1
    )  # one op per sample: circuits loaded once, values altered
    net = from_shorthand("ff:64-8-10", seed=0)
    data = load_dataset("digits", n_train=64, n_test=32, seed=0)
    config = TrainConfig(epochs=1, batch_size=16, v_on=1.0, seed=0)
    summary = train_run(net, data, engine, config, tmp_path / "run", progress=False)
    assert summary["complete"] and summary["engine"] == "ngspice"
    # one circuit per phase kind used: free and aep (both signs of the nudge share one circuit);
    # evaluation reuses the free circuit
    assert 1 <= engine.loads <= 2, f"{engine.loads} circuits loaded from text"
    assert engine.alters > 0
    trained, initial = summary["params"], net.params()
    changed = [
        k
        for k in ("fwd1", "fwd2", "h1.bias", "out.bias")
        if not np.array_equal(trained[k], initial[k])
    ]
    assert changed == ["fwd1", "fwd2", "h1.bias", "out.bias"], f"only {changed} changed"

    # The circuit ngspice holds now is the trained one (its values came by alter, not by reloading):
    # its free state matches the layered engine's for the trained network, not for the initial one.
    loads = engine.loads
    u = data.x_test[:4]
    trained_net = net.with_params(trained)
    x_ng = engine.solve(trained_net, Phase(), u).x
    assert engine.loads == loads, "solving the trained network reloaded a circuit"
    x_ref = LayeredEngine().solve(trained_net, Phase(), u).x
    x_init = LayeredEngine().solve(net, Phase(), u).x
    np.testing.assert_allclose(
        x_ng, x_ref, rtol=0, atol=1e-6, err_msg="ngspice vs layered, trained network"
    )
    assert np.max(np.abs(x_init - x_ref)) > 1e-3, "training did not move the free state"


@pytest.mark.ngspice
def test_ngspice_trains_like_numpy(ngspice_engine_factory, tmp_path):
    net = from_shorthand("ff:64-16-10", seed=0)
    data = load_dataset("digits", n_train=200, n_test=100, seed=0)
    config = TrainConfig(epochs=3, batch_size=8, lr=0.05, v_on=1.0, seed=0)
    runs = {}
    for name, engine in (
        ("layered", LayeredEngine()),
        ("ngspice", ngspice_engine_factory("folded")),
    ):
        summary = train_run(
            net, data, engine, config, tmp_path / name, exact_engine=LayeredEngine(), progress=False
        )
        runs[name] = (summary, records(tmp_path / name))
    s_np, s_ng = runs["layered"][0], runs["ngspice"][0]
    report = {
        name: [(r["test_accuracy"], r["grad_cosine"]) for r in recs]
        for name, (_, recs) in runs.items()
    }
    print(report)
    for name, (_, recs) in runs.items():
        for r in recs:
            assert r["grad_cosine"] >= COSINE_MIN, (
                f"{name} epoch {r['epoch']}: cosine {r['grad_cosine']}"
            )
            assert r["failures"] == 0, f"{name} epoch {r['epoch']}: {r['failures']} failures"
    assert s_np["test_accuracy"] > 0.3, f"training did not learn (chance is 0.1): {report}"
    assert abs(s_np["test_accuracy"] - s_ng["test_accuracy"]) <= ACC_TOL, report
    for k, p in s_np["params"].items():
        scale = max(np.max(np.abs(p)), 1e-30)
        err = np.max(np.abs(s_ng["params"][k] - p)) / scale
        assert err <= 1e-6, (
            f"{k}: ngspice vs layered trained parameters differ by {err:.2e} of their scale"
        )


# --- 4. VF vs AEP vs bp on a feedforward circuit ----------------------------------------------


def test_vf_trains_only_the_output_layer_and_aep_matches_bp():
    net = from_shorthand("ff:64-32-10", seed=0)
    data = load_dataset("digits", seed=0)
    epochs = 8
    hidden = ("fwd1", "h1.bias")
    runs = {
        "vf": dict(algorithm="vf"),
        "output-only": dict(algorithm="bp", lr_groups={k: 0.0 for k in hidden}),
        "aep": dict(algorithm="aep"),
        "bp": dict(algorithm="bp"),
    }
    acc = {}
    for name, kw in runs.items():
        config = TrainConfig(epochs=epochs, lr=0.05, v_on=1.0, seed=0, **kw)
        trainer = Trainer(net, data, LayeredEngine(), config)
        state = init_state(net, config)
        if name == "vf":
            u, y = trainer.u_train[:64], trainer.y_train[:64]
            grads = trainer.gradient(net, u, y).grads
            for k in hidden:
                assert not np.any(grads[k]), f"VF gradient of {k} is not exactly zero"
            assert np.any(grads["fwd2"]), "VF gradient of the output layer is zero"
        for _ in range(epochs):
            state = trainer.run_epoch(state)
            if name in ("vf", "output-only"):
                for k in hidden:
                    assert np.array_equal(state.params[k], net.params()[k]), (
                        f"{name}: {k} changed in epoch {state.epoch}"
                    )
        acc[name] = trainer.accuracy(trainer.network(state), trainer.u_test, data.y_test)[0]
    print({k: round(100 * v, 2) for k, v in acc.items()})
    assert acc["vf"] <= acc["output-only"] + ACC_TOL, acc
    assert abs(acc["aep"] - acc["bp"]) <= ACC_TOL, acc
    assert acc["bp"] >= acc["output-only"] + 0.05, f"the hidden layer does not matter here: {acc}"


# --- 5. constrain -----------------------------------------------------------------------------


def masked_network():
    """3-5-4 with resistors and transconductors, leaks 1e-4 .. 3e-4 S, random masks per coupling."""
    base = layered([3, 5, 4], forward="vccs", resistors=True, leak=1e-4, seed=3)
    rng = np.random.default_rng(5)
    groups = tuple(
        replace(g, leak=rng.uniform(1e-4, 3e-4, g.size)) if g.free else g for g in base.groups
    )
    couplings = tuple(replace(c, mask=rng.random(c.weight.shape) < 0.6) for c in base.couplings)
    return replace(base, groups=groups, couplings=couplings)


def wild_params(net, seed=0) -> dict:
    """Parameters ~N(0, (3 sigma)^2), non-zero under the masks too, some leaks negative; in every
    coupling the first two existing elements are set far below and far above any bound."""
    rng = np.random.default_rng(seed)
    sigma = natural_scale(net)
    params = {k: 3 * sigma * rng.standard_normal(v.shape) for k, v in net.params().items()}
    for c in net.couplings:
        rows, cols = np.nonzero(c.mask)
        params[c.name][rows[0], cols[0]] = -100 * sigma
        params[c.name][rows[1], cols[1]] = 100 * sigma
    return params


def bounds(c, sigma: float, config: TrainConfig) -> tuple[float, float]:
    if c.kind == "resistor":
        return config.g_bounds[0] * sigma, config.g_bounds[1] * sigma
    return -config.w_max * sigma, config.w_max * sigma


def test_constrain_bounds_and_masks():
    net = masked_network()
    config = TrainConfig(g_bounds=(0.5, 3.0), w_max=2.0)
    sigma = natural_scale(net)
    assert sigma == float(np.median(np.concatenate([g.leak for g in net.free_groups])))
    params = wild_params(net)
    copy = {k: v.copy() for k, v in params.items()}
    out = constrain(net, params, config)
    assert all(np.array_equal(params[k], copy[k]) for k in params), "constrain modified its input"
    kinds = set()
    for c in net.couplings:
        kinds.add(c.kind)
        w, p = out[c.name], params[c.name]
        lo, hi = bounds(c, sigma, config)
        assert not c.mask.all() and np.any(p[~c.mask]), (
            f"{c.name}: the test needs masked non-zero entries"
        )
        assert np.all(w[~c.mask] == 0), f"{c.name}: masked entries {w[~c.mask]}"
        assert np.all(w[c.mask & (p <= lo)] == lo), f"{c.name}: values below {lo} not clipped to it"
        assert np.all(w[c.mask & (p >= hi)] == hi), f"{c.name}: values above {hi} not clipped to it"
        inside = c.mask & (p > lo) & (p < hi)
        assert inside.any() and np.array_equal(w[inside], p[inside]), (
            f"{c.name}: in-bound values moved"
        )
    assert kinds == {"resistor", "vccs"}
    trained_leaks = constrain(net, params, replace(config, train_leak=True))
    for g in net.free_groups:
        key = f"{g.name}.leak"
        assert np.array_equal(out[key], params[key]), "leaks that are not trained are left alone"
        assert np.array_equal(trained_leaks[key], np.clip(params[key], 0.5 * sigma, 3.0 * sigma)), (
            "trained leaks"
        )
        assert np.array_equal(out[f"{g.name}.bias"], params[f"{g.name}.bias"]), (
            "biases are not bounded"
        )
    again = constrain(net, out, config)
    assert all(np.array_equal(v, again[k]) for k, v in out.items()), "constrain is not idempotent"


def test_trained_leaks_stay_within_the_initial_scale(tmp_path):
    """With --train-leak the step size and the bounds come from the initial network's scale sigma:
    recomputed from the trained leaks they grew with them (lr 100 on xor reached 5e9 S in 5
    epochs)."""
    net, data = from_shorthand("ff:2-2-2", seed=0), load_dataset("xor")
    sigma = natural_scale(net)
    config = TrainConfig(train_leak=True, lr=100.0, epochs=5, batch_size=4)
    summary = train_run(net, data, LayeredEngine(), config, tmp_path / "run", progress=False)
    for key in ("h1.leak", "out.leak"):
        leak = summary["params"][key]
        assert np.all((LEAK_FLOOR * sigma <= leak) & (leak <= config.g_bounds[1] * sigma)), (
            f"{key} = {leak} S"
        )


def test_trained_leaks_keep_a_dc_path(tmp_path):
    """The outputs of ff circuits reach ground only through their leaks: trained to 0 they would
    leave no DC path, a network the spec refuses, and training crashed building it (a review's run:
    --v-on 10 drives an output leak down to the floor). The run now ends as the circuit does: here
    it stops as diverged in epoch 5 (measured), its trained circuit a valid spec."""
    net, data = from_shorthand("ff:2-2-2", seed=0), load_dataset("xor")
    config = TrainConfig(train_leak=True, v_on=10.0, epochs=5, batch_size=4)
    summary = train_run(net, data, LayeredEngine(), config, tmp_path / "run", progress=False)
    assert summary["params"]["out.leak"].min() == pytest.approx(
        LEAK_FLOOR * natural_scale(net), rel=1e-12
    )
    trained = load_spec(tmp_path / "run" / "trained.toml")
    assert trained.floating_nodes() == [] and trained.group("out").leak.min() > 0


def stored(net, params, config, seed=0):
    """The circuit of ``params`` (constrained) as the run's storage holds it."""
    storage = storage_of(config, natural_scale(net))
    names = {c.name for c in net.couplings}  # (wild leaks and biases: not the storage's)
    model = net.with_params({k: v for k, v in constrain(net, params, config).items() if k in names})
    return model, draw(Variation(storage=storage), net, seed).circuit(model)


@pytest.mark.parametrize("levels", [2, 3, 5, 16])
def test_storage_over_the_bounds_quantises_to_levels(levels):
    net = masked_network()
    config = TrainConfig(g_bounds=(0.5, 3.0), w_max=2.0, levels=levels, levels_range="bounds")
    sigma = natural_scale(net)
    params = wild_params(net, seed=levels)
    _, circuit = stored(net, params, config)
    for c, q in zip(net.couplings, circuit.couplings, strict=True):
        w = q.weight
        lo, hi = bounds(c, sigma, config)
        step = (hi - lo) / (levels - 1)
        values = np.unique(w[c.mask])
        assert len(values) <= levels, f"{c.name}: {len(values)} distinct values for {levels} levels"
        assert len(values) >= min(levels, 2), f"{c.name}: everything quantised to {values}"
        assert np.all(w[~c.mask] == 0), f"{c.name}: masked entries {w[~c.mask]}"
        assert lo <= values.min() and values.max() <= hi, f"{c.name}: {values} outside [{lo}, {hi}]"
        k = (values - lo) / step
        np.testing.assert_allclose(
            k, np.round(k), atol=1e-9, err_msg=f"{c.name}: values off the grid"
        )
        # nearest level: no value moved by more than half a step from its clipped original
        clipped = np.clip(params[c.name], lo, hi)[c.mask]
        assert np.max(np.abs(w[c.mask] - clipped)) <= step / 2 * (1 + 1e-9), (
            f"{c.name}: not the nearest level"
        )


def test_quantised_values_stay_within_bounds():
    net = layered([2, 3], forward=None, resistors=True, leak=1e-3)
    config = TrainConfig(g_bounds=(0.0, 3.0), levels=280, levels_range="bounds")
    hi = config.g_bounds[1] * natural_scale(net)
    _, circuit = stored(net, {k: v + 1.0 for k, v in net.params().items()}, config)
    res1 = next(c for c in circuit.couplings if c.name == "res1")
    assert res1.weight.max() <= hi


def test_levels_over_each_couplings_own_range_keep_a_small_network_trainable():
    """The issue's finding: 16 levels over +-10x the leak put every weight of a random network on
    one or two levels; over each coupling's own range (2x its largest |w|) 16 levels resolve it."""
    net = from_shorthand("layered:4-6-3", seed=0)
    for levels_range, most in (("bounds", 3), ("own", 16)):
        config = TrainConfig(levels=16, levels_range=levels_range)
        _, circuit = stored(net, net.params(), config)
        c = next(c for c in circuit.couplings if c.kind != "resistor")
        distinct = len(np.unique(c.weight[c.mask]))
        assert distinct <= most, (levels_range, distinct)
        if levels_range == "own":
            assert distinct >= 6


# --- 6. bad input is refused before training --------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(lr=-1), r"lr = -1 must be a positive finite number"),
        (dict(lr=math.nan), r"lr = nan must be a positive finite number"),
        (dict(lr=math.inf), r"lr = inf must be"),
        (dict(lr=True), r"lr = True must be"),
        (dict(beta_rel=0), r"beta_rel = 0 must be a positive"),
        (dict(tau=-0.1), r"tau = -0.1 must be"),
        (dict(algorithm="sgd"), r"algorithm 'sgd' is not one of .*aep"),
        (dict(epochs=-1), r"epochs = -1"),
        (dict(epochs=2.0), r"epochs = 2.0"),
        (dict(batch_size=0), r"batch_size = 0"),
        (dict(probe_size=0), r"probe_size = 0"),
        (dict(momentum=1.0), r"momentum = 1.0 must be in \[0, 1\)"),
        (dict(lr_groups={"fwd1": -0.1}), r"lr_groups\['fwd1'\] = -0.1"),
        (dict(lr_groups={"fwd1": math.nan}), r"lr_groups\['fwd1'\] = nan"),
        (dict(levels=1), r"levels = 1 must be an integer >= 2"),
        (dict(g_bounds=(1.0, 0.5)), r"g_bounds = \(1.0, 0.5\) needs 0 <= g_min < g_max"),
        (dict(g_bounds=(-1.0, 1.0)), r"g_bounds"),
        (dict(w_max=0), r"w_max = 0 must be positive"),
        (dict(on_failure="retry"), r"on_failure = 'retry' must be 'skip' or 'stop'"),
        (
            dict(lr_schedule="linear"),
            r"lr_schedule = 'linear' is not one of \('constant', 'cosine'\)",
        ),
        (dict(g_bounds=(0.0, math.inf)), r"g_bounds = \(0.0, inf\) needs 0 <= g_min < g_max < inf"),
        (dict(g_bounds=(0.0, 1.0, 2.0)), r"g_bounds = \(0.0, 1.0, 2.0\) must be a pair"),
        (
            dict(train_leak="false"),
            r"train_leak = 'false' must be True or False",
        ),  # a non-empty string is truthy
        (dict(centered="no"), r"centered = 'no' must be True or False"),
        (dict(seed=-1), r"seed = -1 must be an integer in 0 .. 2\*\*32 - 1"),
        (dict(seed="0"), r"seed = '0' must be an integer"),
        (dict(w_max=math.inf), r"w_max = inf must be positive and finite"),
        # targets: the class is the highest output, so v_on must be above v_off, and both are
        # voltages
        (dict(v_on=0.0, v_off=1.0), r"v_on = 0.0 must be above v_off = 1.0"),
        (dict(v_on=0.5, v_off=0.5), r"v_on = 0.5 must be above v_off = 0.5"),
        (dict(v_on=math.nan), r"v_on = nan must be a target voltage within \+-1000 V"),
        (dict(v_on=1e200), r"v_on = 1e\+200 must be a target voltage"),
        (dict(v_off=-math.inf), r"v_off = -inf must be a target voltage"),
    ],
)
def test_train_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_g_bounds_given_as_a_list_resume_like_a_tuple(tmp_path):
    """config.json stores a pair as a list and reads it back as a tuple: both must compare equal."""
    assert TrainConfig(g_bounds=[0.0, 10.0]) == TrainConfig(g_bounds=(0.0, 10.0))


def test_train_config_cost_is_checked():
    with pytest.raises(ValueError, match="hinge"):
        TrainConfig(cost="hinge")


def test_zero_epochs_is_refused():
    with pytest.raises(ValueError, match="epochs = 0 must be a positive integer"):
        TrainConfig(epochs=0)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ff:10-8-10", r"has 10 inputs but data set 'digits' has 64 features"),
        ("ff:64-8-3", r"has 3 outputs but data set 'digits' has 10 classes"),
    ],
)
def test_spec_must_match_data(tmp_path, spec, message):
    with pytest.raises(ValueError, match=message):
        train_run(
            from_shorthand(spec),
            load_dataset("digits", n_train=20, n_test=10),
            LayeredEngine(),
            TrainConfig(epochs=1),
            tmp_path / "run",
            progress=False,
        )
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_spec_mismatch_leaves_no_files(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="inputs"):
        train_run(
            from_shorthand("ff:10-8-10"),
            load_dataset("digits", n_train=20, n_test=10),
            LayeredEngine(),
            TrainConfig(epochs=1),
            out,
            progress=False,
        )
    assert not out.exists() or not any(out.iterdir()), (
        f"left behind: {sorted(p.name for p in out.iterdir())}"
    )


def test_unknown_lr_group_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fwd9"):
        train_run(
            from_shorthand("ff:64-8-10"),
            load_dataset("digits", n_train=20, n_test=10),
            LayeredEngine(),
            TrainConfig(epochs=1, lr_groups={"fwd9": 0.0}),
            tmp_path / "run",
            progress=False,
        )


def test_numpy_scalars_are_python_numbers_in_the_config():
    config = TrainConfig(epochs=np.int64(3), lr=np.float64(0.05), batch_size=np.int64(8))
    assert config == TrainConfig(epochs=3, lr=0.05, batch_size=8) and type(config.epochs) is int
    assert config_from_json(config_to_json(config)) == config


def test_bp_is_the_exact_estimator_by_its_one_name(tmp_path):
    """The library calls the exact gradient ``exact`` (the estimators' name); ``bp``, as the CLI,
    the experiment configs and run directories written before say, is accepted and stored as it:
    a run whose config.json says bp resumes with either name."""
    assert TrainConfig(algorithm="bp") == TrainConfig(algorithm="exact")
    assert TrainConfig(algorithm="bp").algorithm == "exact"
    net, data = from_shorthand("ff:64-8-10", seed=0), load_dataset("digits", n_train=20, n_test=10)
    out, config = tmp_path / "run", TrainConfig(algorithm="exact", epochs=2, batch_size=10)
    train_run(net, data, LayeredEngine(), config, out, progress=False, stop_after=1)
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(dict(saved, algorithm="bp")))  # as older runs did
    summary = train_run(
        net,
        data,
        LayeredEngine(),
        replace(config, algorithm="bp"),
        out,
        resume=True,
        progress=False,
    )
    assert summary["complete"] and summary["algorithm"] == "exact"
    with pytest.raises(ValueError, match="alias 'bp'"):
        TrainConfig(algorithm="backprop")
