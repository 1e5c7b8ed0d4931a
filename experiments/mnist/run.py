"""MNIST: AEP against EP, VF and backpropagation on circuits with one hidden layer.

    python experiments/mnist/run.py [--quick] [--config experiments/mnist/config.json] \
        [--runs-dir runs/mnist]
    # layered, cosine lr:
    python experiments/mnist/run.py --config experiments/mnist/config-cosine.json

Two settings (the AEP paper's comparison, on circuits): ``layered`` — forward and backward
transconductors between hidden and output layers, backward ones initialised symmetric to the
forward ones; ``feedforward`` — forward transconductors only. Algorithms ``aep``, ``ep``, ``vf`` and
``bp`` (the exact gradient) with the same hyperparameters, several seeds, the layered engine.
Every run is a resumable run directory under ``--runs-dir``; finished runs are reused, so an
interrupted experiment continues where it stopped. Then the trained AEP feedforward circuit is taken
into ngspice: 1,000 test images through its netlist, accuracy and agreement with numpy.

Writes ``experiments/results/mnist{,-quick}.json``, ``.md`` (the table) and ``.png`` (curves);
``config-X.json`` writes ``mnist-X`` instead and keeps its runs under ``runs/mnist-X``.
Needs the MNIST IDX files: ``CIRCUITEP_MNIST_DIR`` or ``--data-dir``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from circuitep import plots
from circuitep.builders import from_shorthand
from circuitep.datasets import DatasetError, load_dataset
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.ngspice_engine import NgspiceEngine
from circuitep.fileio import FileReadError, read_text_limited
from circuitep.gradcheck import asymmetry, loop_gain
from circuitep.runs import MAX_JSON_BYTES, RunError, lock_run, read_diverged, train_run
from circuitep.specio import load_spec, write_text_atomic
from circuitep.train import TrainConfig, encode, free_outputs, load_checkpoint

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"


def algorithms(cfg: dict, setting: str) -> list[str]:
    """The compared algorithms, then the baselines the config lists for this setting."""
    return list(cfg["algorithms"]) + list(cfg.get("baselines", {}).get(setting, []))


def run_dir(setting: str, algorithm: str, seed: int, runs_dir: Path) -> Path:
    return runs_dir / f"{setting}-{algorithm}-s{seed}"


def initial_network(setting: str, seed: int, cfg: dict):
    return from_shorthand(cfg["settings"][setting].format(hidden=cfg["hidden"]), seed=seed)


def read_run(setting: str, algorithm: str, seed: int, cfg: dict, runs_dir: Path) -> dict | None:
    """What a run directory holds so far, or None when it has no epoch yet."""
    out = run_dir(setting, algorithm, seed, runs_dir)
    if not (out / "metrics.json").exists():
        return None
    records = json.loads(read_text_limited(out / "metrics.json", MAX_JSON_BYTES, "run file"))
    diverged = read_diverged(out)  # its failure count includes the epoch that diverged
    trained = load_spec(out / "trained.toml") if (out / "trained.toml").exists() else None
    net = initial_network(setting, seed, cfg)
    start = asymmetry(net)
    drift = (
        [start] + [r["asymmetry"] for r in records]
        if all("asymmetry" in r for r in records)
        else None
    )
    return {
        "records": records,
        "asymmetry_initial": start,
        "asymmetry_per_epoch": drift,
        "asymmetry_final": asymmetry(trained) if trained else float("nan"),
        "loop_gain_last": loop_gain(
            net.with_params(load_checkpoint(out / "checkpoint.npz").params)
        ),
        "failures": (diverged or records[-1])["failures"],
        "diverged": diverged,
        "dir": str(out),
    }


def train_config(algorithm: str, seed: int, net, cfg: dict) -> TrainConfig:
    """The run's hyperparameters. ``output`` is the output-layer-only baseline: the exact gradient
    with a learning rate of 0 for every parameter group that does not feed the output nodes."""
    lr_groups = {}
    if algorithm == "output":
        out = {g.name for g in net.free_groups if g.role == "output"}
        feeds_output = {c.name for c in net.couplings if c.dst in out} | {f"{g}.bias" for g in out}
        lr_groups = {
            k: 0.0 for k in net.params() if k not in feeds_output and not k.endswith(".leak")
        }
    return TrainConfig(
        algorithm="bp" if algorithm == "output" else algorithm,
        lr_groups=lr_groups,
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        lr_schedule=cfg.get("lr_schedule", "constant"),
        momentum=cfg["momentum"],
        beta_rel=cfg["beta_rel"],
        seed=seed,
        v_on=cfg["v_on"],
        probe_size=cfg["probe_size"],
        eval_train_samples=cfg.get("eval_train_samples"),
    )


def run_one(setting: str, algorithm: str, seed: int, cfg: dict, data, runs_dir: Path) -> dict:
    """Train (or resume) one run directory to the configured number of epochs."""
    net = initial_network(setting, seed, cfg)
    out = run_dir(setting, algorithm, seed, runs_dir)
    diverged = read_diverged(out)
    if diverged:
        print(f"{out.name}: diverged in epoch {diverged['epoch']}, not trained again", flush=True)
        return read_run(setting, algorithm, seed, cfg, runs_dir)
    resume = (out / "checkpoint.npz").exists()
    print(f"{out.name}: {'resuming' if resume else 'training'}", flush=True)
    train_run(
        net,
        data,
        LayeredEngine(),
        train_config(algorithm, seed, net, cfg),
        out,
        resume=resume,
        progress=cfg.get("progress", True),
    )
    return read_run(setting, algorithm, seed, cfg, runs_dir)


def ngspice_check(run_dir: Path, data, n: int, cfg: dict) -> dict:
    """Simulate n test images through the trained circuit in ngspice; compare with numpy. Agreement
    and accuracy are over the images both engines solve; those either one does not are counted."""
    trained = (run_dir / "trained.toml").read_text()
    digest = hashlib.sha256(trained.encode()).hexdigest()
    cache = (
        run_dir / "ngspice_check.json"
    )  # the check is deterministic for a trained circuit: reuse it
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("trained_sha256") == digest and cached.get("samples") == n:
            return cached
    net = load_spec(run_dir / "trained.toml")
    u, _ = encode(data.x_test[:n], data.y_test[:n], data.n_classes, TrainConfig(v_on=cfg["v_on"]))
    with NgspiceEngine(form="folded") as engine:
        spice = free_outputs(engine, net, u)
    ref = free_outputs(LayeredEngine(), net, u)
    ok = np.isfinite(spice).all(1) & np.isfinite(ref).all(1)
    pred_s, pred_n, labels = spice[ok].argmax(1), ref[ok].argmax(1), data.y_test[:n][ok]
    epoch = len(json.loads((run_dir / "metrics.json").read_text()))
    result = {
        "run": run_dir.name,
        "epoch": epoch,
        "samples": n,
        "solved_by_both": int(ok.sum()),
        "ngspice_unsolved": int((~np.isfinite(spice).all(1)).sum()),
        "numpy_unsolved": int((~np.isfinite(ref).all(1)).sum()),
        "accuracy": float((pred_s == labels).mean()),
        "numpy_accuracy": float((pred_n == labels).mean()),
        "agreement": float((pred_s == pred_n).mean()),
        "max_abs_diff_v": float(np.abs(spice[ok] - ref[ok]).max()),
        "trained_sha256": digest,
    }
    write_text_atomic(cache, json.dumps(result, indent=2) + "\n")
    return result


#: The last epochs averaged per seed in the ``test_accuracy_last_epochs`` entry (fewer if the
#: configuration has fewer epochs).
LAST_EPOCHS = 5


def stats(values) -> dict | None:
    """Mean, standard deviation (over seeds, ddof 0) and the values; None when there are none."""
    if not values:
        return None
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values)),
        "values": [float(v) for v in values],
        "seeds": len(values),
    }


def summarise(runs: list[dict], epochs: int) -> dict:
    """Statistics over the seeds of one (setting, algorithm). Epoch-k numbers use the runs that have
    reached epoch k, so an unfinished seed never lowers or hides a finished one's result."""
    acc = [[r["test_accuracy"] for r in run["records"]] for run in runs]
    last = min(LAST_EPOCHS, epochs)
    cos = [np.mean([r["grad_cosine"] for r in run["records"]]) for run in runs]
    complete = [run for run, a in zip(runs, acc, strict=True) if len(a) >= epochs]
    drifts = [run["asymmetry_per_epoch"] for run in complete]
    return {
        "epochs_done": [len(a) for a in acc],
        "diverged_in_epoch": [
            run["diverged"]["epoch"] if run["diverged"] else None for run in runs
        ],
        "test_accuracy_epoch1": stats([a[0] for a in acc]),
        f"test_accuracy_epoch{epochs}": stats([a[epochs - 1] for a in acc if len(a) >= epochs]),
        "test_accuracy_best": stats([max(a[:epochs]) for a in acc if len(a) >= epochs]),
        # SGD at a constant learning rate moves test accuracy by tenths of a percent from one epoch
        # to the next: the mean over each seed's last epochs says where a run ended with less of
        # that noise
        "test_accuracy_last_epochs": stats(
            [float(np.mean(a[epochs - last : epochs])) for a in acc if len(a) >= epochs]
        ),
        "grad_cosine_mean_over_training": stats(cos),
        "asymmetry_final": stats([run["asymmetry_final"] for run in complete]),
        "loop_gain_last_epoch": [run["loop_gain_last"] for run in runs],
        "asymmetry_per_epoch": (
            [float(v) for v in np.mean([d[: epochs + 1] for d in drifts], axis=0)]
            if drifts and all(drifts)
            else None
        ),
        "seeds": len(complete),
        "failures": sum(run["failures"] for run in runs),
    }


def _seed(run: dict) -> str:
    return Path(run["dir"]).name.rsplit("-s", 1)[1]


def curve(runs: list[dict], summary: dict, epochs: int, drift: bool) -> dict:
    """What the figure shows of one (setting, algorithm): the mean over the seeds that finished,
    else the longest unfinished run, labelled with its seed, length and whether it diverged."""
    complete = [run for run in runs if len(run["records"]) >= epochs]
    if complete:
        return {
            "accuracy": np.mean(
                [[r["test_accuracy"] for r in run["records"][:epochs]] for run in complete], axis=0
            ),
            "cosine": np.mean(
                [[r["grad_cosine"] for r in run["records"][:epochs]] for run in complete], axis=0
            ),
            "asymmetry": summary["asymmetry_per_epoch"] if drift else None,
            "note": f" ({len(complete)} seeds)"
            if len(complete) > 1
            else f" (seed {_seed(complete[0])})",
        }
    run = max(runs, key=lambda r: len(r["records"]))
    diverged = ", diverged" if run["diverged"] else ""
    note = f" (seed {_seed(run)}, {len(run['records'])} epochs{diverged})"
    return {
        "accuracy": [r["test_accuracy"] for r in run["records"]],
        "cosine": [r["grad_cosine"] for r in run["records"]],
        "asymmetry": run["asymmetry_per_epoch"] if drift else None,
        "note": note,
    }


def main(argv=None) -> int:
    """The experiment; a run directory that is in use or cannot be written ends it with status 2."""
    try:
        return experiment(argv)
    except (RunError, OSError) as exc:
        print(f"{Path(sys.argv[0]).name}: error: {exc}", file=sys.stderr)
        return 2


def experiment(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--config", default=str(HERE / "config.json"), help="experiment configuration (JSON)"
    )
    p.add_argument(
        "--quick", action="store_true", help="the reduced configuration ('quick' in the config)"
    )
    p.add_argument("--data-dir", help="MNIST IDX folder (default: $CIRCUITEP_MNIST_DIR)")
    p.add_argument(
        "--runs-dir",
        help="where run directories go (default runs/NAME: NAME is mnist for config.json, "
        "mnist-X for config-X.json)",
    )
    p.add_argument(
        "--results-dir",
        default=str(RESULTS),
        help="where NAME{,-quick}.json/.md/.png go (default experiments/results)",
    )
    p.add_argument("--seeds", type=positive_int, help="use only the first N seeds of the config")
    p.add_argument(
        "--epochs", type=positive_int, help="override the config's epochs (runs resume and extend)"
    )
    p.add_argument(
        "--setting",
        choices=("layered", "feedforward"),
        help="train only this setting (to run settings in parallel processes); no report",
    )
    p.add_argument(
        "--algorithm",
        choices=("aep", "ep", "vf", "bp", "output"),
        help="train only this algorithm (to run in parallel processes); no report. 'output': the "
        "output-layer-only baseline (exact gradient, hidden layer frozen)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: summarise the epochs the run directories hold so far",
    )
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        full = json.loads(read_text_limited(args.config, MAX_JSON_BYTES, "configuration file"))
        cfg = {**full, **full["quick"]} if args.quick else dict(full)
    except (OSError, ValueError, KeyError, TypeError, FileReadError) as exc:
        p.error(
            f"--config {args.config}: {type(exc).__name__}: {exc} (a JSON object; --quick needs "
            "its 'quick' table)"
        )
    cfg["progress"] = not args.no_progress
    if args.epochs:
        cfg["epochs"] = args.epochs
    seeds = cfg["seeds"][: args.seeds] if args.seeds else cfg["seeds"]
    try:
        data = load_dataset(
            "mnist", data_dir=args.data_dir, n_train=cfg.get("n_train"), n_test=cfg.get("n_test")
        )
    except DatasetError as exc:
        p.error(str(exc))
    name = experiment_name(args.config)
    runs_dir = Path(args.runs_dir or Path("runs") / name) / ("quick" if args.quick else "full")
    results: dict = {"config": {k: v for k, v in cfg.items() if k != "quick"}, "seeds_used": seeds}
    curves = {}
    for setting in cfg["settings"]:
        if args.setting and setting != args.setting:
            continue
        results[setting] = {}
        for algorithm in algorithms(cfg, setting):
            if args.algorithm and algorithm != args.algorithm:
                continue
            if args.report_only:
                runs = [
                    r for r in (read_run(setting, algorithm, s, cfg, runs_dir) for s in seeds) if r
                ]
            else:
                runs = [
                    r
                    for r in (run_one(setting, algorithm, s, cfg, data, runs_dir) for s in seeds)
                    if r
                ]
            summary = summarise(runs, cfg["epochs"]) if runs else None
            results[setting][algorithm] = summary
            if summary:
                curves[(setting, algorithm)] = curve(
                    runs, summary, cfg["epochs"], setting == "layered"
                )
    if args.setting or args.algorithm:
        print("trained the selected runs; run again without --setting/--algorithm for the report")
        return 0
    for setting, key in (("feedforward", "ngspice_check"), ("layered", "ngspice_check_layered")):
        check_run = run_dir(setting, "aep", seeds[0], runs_dir)
        if (check_run / "trained.toml").exists():
            print(f"ngspice check of {check_run.name} ...", flush=True)
            n = min(cfg["ngspice_samples"], len(data.x_test))
            with lock_run(check_run):  # it writes ngspice_check.json into the run directory
                results[key] = ngspice_check(check_run, data, n, cfg)
    stem = Path(args.results_dir) / (f"{name}-quick" if args.quick else name)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    command = (
        "python experiments/mnist/run.py"
        + (" --quick" if args.quick else "")
        + (f" --config experiments/mnist/{Path(args.config).name}" if name != "mnist" else "")
    )
    stem.with_suffix(".md").write_text(
        table(results, cfg, seeds, args.quick, command, Path(args.config).name)
    )
    plots.experiment_curves(
        curves,
        stem.with_suffix(".png"),
        f"MNIST, 784-{cfg['hidden']}-10 circuits"
        + (
            f", {cfg['lr_schedule']} learning rate"
            if cfg.get("lr_schedule", "constant") != "constant"
            else ""
        ),
    )
    print(table(results, cfg, seeds, args.quick, command, Path(args.config).name))
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def experiment_name(config: str) -> str:
    """``mnist`` for config.json, ``mnist-cosine`` for config-cosine.json: names results, runs."""
    return "mnist" + Path(config).stem.removeprefix("config")


def table(results: dict, cfg: dict, seeds, quick: bool, command: str, config_name: str) -> str:
    e = cfg["epochs"]
    first = e - min(LAST_EPOCHS, e) + 1
    schedule = (
        f" ({cfg['lr_schedule']} schedule)"
        if cfg.get("lr_schedule", "constant") != "constant"
        else ""
    )

    def pct(st):
        return f"{100 * st['mean']:.2f} ± {100 * st['std']:.2f}" if st else "-"

    lines = [
        f"# MNIST, circuits 784-{cfg['hidden']}-10 "
        f"({'quick: ' if quick else ''}{cfg.get('n_train') or 60000} "
        f"train / {cfg.get('n_test') or 10000} test, seeds {seeds}, layered engine)",
        "",
        f"Command: `{command}` (configuration "
        f"`experiments/mnist/{config_name}`: lr {cfg['lr']}{schedule}, batch {cfg['batch_size']}, "
        f"momentum {cfg['momentum']}, "
        f"beta {cfg['beta_rel']} x leak, {e} epochs). Mean ± std over the seeds that completed {e} "
        "epochs "
        "(epoch 1: over every seed run; a run that diverged stopped at its last completed epoch). "
        "At a constant "
        "learning rate test accuracy moves by tenths of a percent from one epoch to the next: "
        "'mean of epochs "
        f"{first}–{e}' averages each seed's last epochs first, 'best' is the mean of each seed's "
        "best epoch. "
        "`output` is "
        "the output-layer-only baseline (its cosine is that of the exact gradient, of which only "
        "the "
        "output-layer part is applied). Loop gain: spectral radius of G_h^-1 W_bwd G_out^-1 W_fwd "
        "of the "
        "circuit after its last epoch, every clamp off (`circuitep.gradcheck.loop_gain`); above 1 "
        "the loop "
        "amplifies where the clamps let it, and some inputs may have several operating points or "
        "none "
        "that is stable.",
        "",
        f"| setting | algorithm | seeds done ({e} epochs) | test acc. epoch 1 (%) | test acc. "
        f"epoch {e} (%) | "
        f"mean of epochs {first}–{e} (%) | best (%) | mean cosine with exact gradient | "
        "non-converged samples | "
        "final asymmetry of fwd/bwd pairs | "
        "loop gain at the last epoch, per seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in cfg["settings"]:
        for algorithm in algorithms(cfg, setting):
            r = results.get(setting, {}).get(algorithm)
            if r is None:
                lines.append(f"| {setting} | {algorithm} | 0 | not run yet | | | | | | | |")
                continue
            partial = [
                f"diverged in epoch {d}" if d else f"at epoch {n}"
                for n, d in zip(r["epochs_done"], r["diverged_in_epoch"], strict=True)
                if n < e
            ]
            done = f"{r['seeds']}" + (
                f" (+{len(partial)}: {', '.join(partial)})" if partial else ""
            )
            best = (
                f"{100 * r['test_accuracy_best']['mean']:.2f}" if r["test_accuracy_best"] else "-"
            )
            asym = (
                f"{r['asymmetry_final']['mean']:.3f}"
                if r["asymmetry_final"] and setting == "layered"
                else "-"
            )
            gains = (
                ", ".join(
                    f"{g:.2f}" + (f" (epoch {n})" if n < e else "")
                    for g, n in zip(r["loop_gain_last_epoch"], r["epochs_done"], strict=True)
                )
                if setting == "layered"
                else "-"
            )
            lines.append(
                f"| {setting} | {algorithm} | {done} | {pct(r['test_accuracy_epoch1'])} | "
                f"{pct(r[f'test_accuracy_epoch{e}'])} | {pct(r['test_accuracy_last_epochs'])} | "
                f"{best} | "
                f"{r['grad_cosine_mean_over_training']['mean']:.6f} | {r['failures']} | {asym} | "
                f"{gains} |"
            )
    for key in ("ngspice_check", "ngspice_check_layered"):
        c = results.get(key)
        if c:
            unsolved = (
                f" ({c['samples'] - c['solved_by_both']} without an operating point: ngspice "
                f"{c['ngspice_unsolved']}, numpy {c['numpy_unsolved']}; the rest compared)"
                if c["solved_by_both"] < c["samples"]
                else ""
            )
            lines += [
                "",
                f"ngspice check ({c['run']} after epoch {c['epoch']}, {c['samples']} test images "
                "through "
                f"the trained netlist, folded form{unsolved}): accuracy {100 * c['accuracy']:.2f} "
                "% (numpy "
                f"{100 * c['numpy_accuracy']:.2f} %), predictions agree on "
                f"{100 * c['agreement']:.2f} %, largest "
                f"voltage difference {c['max_abs_diff_v']:.1e} V.",
            ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
