"""Training with stored weights of few bits (issue 16 item 6): test accuracy against bits.

A digits circuit (``layered:64-32-10``, 20 epochs, cosine schedule from lr 0.1, AEP) trained with
each weight stored as one of ``2**bits`` levels over its coupling's own range, three ways:

- ``shadow``: the controller keeps high-precision weights and writes them quantised after every
  update (the circuit's states, and so the learning signal, come from the quantised circuit);
- ``direct``: the stored levels are the weights, each write rounded to the nearest level (an update
  smaller than half a step is lost);
- ``stochastic``: the stored levels are the weights, each write rounded up or down at random in
  proportion (unbiased);

and beside them ``post``: the analog-trained circuit quantised once after training. Every run is
a circuitep run directory under ``--out`` (resumable: a finished run is read back, not redone); the
points run on a Dask LocalCluster (or ``--scheduler``). Writes ``low-precision.json``, ``.csv``,
``.md`` and ``.png`` into ``--results``.

    python experiments/variation/low_precision.py --bits 2 3 4 5 6 8 --seeds 0 1
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from circuitep.cluster import client_for, map_tasks  # noqa: E402

SPEC = "layered:64-32-10"
MODES = ("shadow", "direct", "stochastic")


def config_for(mode: str | None, bits: int | None, seed: int, headroom: float):
    from circuitep.train import TrainConfig

    storage = {}
    if mode is not None:
        storage = dict(
            levels=2**bits,
            headroom=headroom,
            shadow=mode == "shadow",
            stochastic_rounding=mode == "stochastic",
        )
    return TrainConfig(
        epochs=20, lr=0.1, lr_schedule="cosine", seed=seed, variation_seed=seed, **storage
    )


def run_point(task: dict) -> dict:
    """One training run (a task of the cluster): its final metrics."""
    from circuitep.builders import from_shorthand
    from circuitep.datasets import load_dataset
    from circuitep.engines.layered import LayeredEngine
    from circuitep.runs import train_run
    from circuitep.train import Trainer
    from circuitep.variation import Storage, Variation, draw

    mode, bits, seed, headroom = task["mode"], task["bits"], task["seed"], task["headroom"]
    net = from_shorthand(SPEC, seed=seed)
    data = load_dataset("digits", seed=seed)
    train_mode = None if mode == "post" else mode
    out = Path(task["out"]) / (
        f"analog-s{seed}" if train_mode is None else f"{mode}-b{bits}-h{headroom:g}-s{seed}"
    )
    config = config_for(train_mode, bits, seed, headroom)
    if mode == "post" and "analog" in task:  # the seed's analog run, trained in the first pass
        summary = task["analog"]
    else:
        resume = (out / "checkpoint.npz").exists()
        summary = train_run(net, data, LayeredEngine(), config, out, resume=resume, progress=False)
    result = dict(task, test_accuracy=summary["test_accuracy"], run=str(out.relative_to(ROOT)))
    if mode == "post":  # the analog-trained circuit quantised once over each coupling's own range
        trained = net.with_params(summary["params"])
        storage = Storage(levels=2**bits, headroom=1.0)
        circuit = draw(Variation(storage=storage), trained, seed).circuit(trained)
        trainer = Trainer(circuit, data, LayeredEngine(), config)
        result["test_accuracy"] = trainer.accuracy(circuit, trainer.u_test, data.y_test)[0]
        result["analog_accuracy"] = summary["test_accuracy"]
        result["analog"] = {k: summary[k] for k in ("params", "test_accuracy")}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4, 5, 6, 8])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--headroom", type=float, default=2.0, help="own range = headroom x max|w|")
    p.add_argument("--modes", nargs="+", default=["post", *MODES])
    p.add_argument("--out", default=str(ROOT / "experiments/variation/runs"))
    p.add_argument("--results", default=str(ROOT / "experiments/results"))
    p.add_argument("--scheduler", help="address of an existing Dask scheduler")
    p.add_argument("--workers", type=int, help="LocalCluster worker processes (default: cores)")
    args = p.parse_args(argv)
    tasks = [
        dict(mode=m, bits=b, seed=s, headroom=args.headroom, out=args.out)
        for m in args.modes
        for b in args.bits
        for s in args.seeds
    ]
    with client_for(args.scheduler, args.workers) as client:
        if "post" in args.modes:  # one analog run per seed first: every "post" point reads it
            firsts = [t for t in tasks if t["mode"] == "post" and t["bits"] == args.bits[0]]
            done = map_tasks(client, run_point, firsts, desc="analog runs")
            analog = {t["seed"]: r["analog"] for t, r in zip(firsts, done, strict=True)}
            for t in tasks:
                if t["mode"] == "post":
                    t["analog"] = analog[t["seed"]]
        results = map_tasks(client, run_point, tasks, desc="low-precision runs")
    for r in results:
        r.pop("analog", None)  # the analog run's parameters: an input, not a result
        r.pop("out", None)  # this machine's folder; "run" names the run relative to the repo
    write(results, args, Path(args.results))
    return 0


def write(results: list[dict], args, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    table = {}
    for r in results:
        table.setdefault(r["mode"], {}).setdefault(r["bits"], []).append(r["test_accuracy"])
    analog = [r["analog_accuracy"] for r in results if r["mode"] == "post"]
    summary = {
        mode: {
            str(b): {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)}
            for b, v in sorted(by_bits.items())
        }
        for mode, by_bits in table.items()
    }
    doc = {
        "spec": SPEC,
        "data": "digits",
        "training": "AEP, 20 epochs, lr 0.1 cosine, batch 32, layered engine",
        "headroom": args.headroom,
        "seeds": args.seeds,
        "analog_test_accuracy": {"mean": float(np.mean(analog)), "std": float(np.std(analog))}
        if analog
        else None,
        "summary": summary,
        "runs": results,
        "command": "python experiments/variation/low_precision.py " + " ".join(sys.argv[1:]),
    }
    (folder / "low-precision.json").write_text(json.dumps(doc, indent=2) + "\n")
    with open(folder / "low-precision.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["mode", "bits", "seed", "headroom", "test_accuracy", "run"])
        w.writeheader()
        for r in results:
            w.writerow({k: r[k] for k in w.fieldnames})
    bits = sorted({r["bits"] for r in results})
    lines = [
        f"# Stored weights of few bits: {SPEC} on digits, test accuracy (%)",
        "",
        f"Seeds {args.seeds}; levels over each coupling's own range (training: {args.headroom:g}x"
        " its largest |w| at the start; post: 1x the trained one). Analog: "
        + (
            f"{100 * doc['analog_test_accuracy']['mean']:.2f} ± "
            f"{100 * doc['analog_test_accuracy']['std']:.2f} %."
            if analog
            else "not run."
        ),
        "",
        "| mode | " + " | ".join(f"{b} bits" for b in bits) + " |",
        "|---|" + "---|" * len(bits),
    ]
    for mode, row in summary.items():
        cells = [
            f"{100 * row[str(b)]['mean']:.1f} ± {100 * row[str(b)]['std']:.1f}"
            if str(b) in row
            else "-"
            for b in bits
        ]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    lines += ["", f"Command: `{doc['command']}`", ""]
    (folder / "low-precision.md").write_text("\n".join(lines))
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, row in summary.items():
        b = [int(k) for k in row]
        m = np.array([row[k]["mean"] for k in row]) * 100
        s = np.array([row[k]["std"] for k in row]) * 100
        ax.errorbar(b, m, yerr=s, marker="o", capsize=3, label=mode)
    if analog:
        ax.axhline(100 * np.mean(analog), color="k", ls="--", lw=1, label="analog")
    ax.set_xlabel("bits per stored weight")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{SPEC} on digits: weights of few bits")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "low-precision.png", dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
