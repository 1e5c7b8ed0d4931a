"""AEP on a digits circuit built from transistor OTAs, against that circuit's own gradient.

Issue 17 items 3 and 4. The model is a feedforward network of ideal transconductors; the circuit
realises each of them as the built-in five-transistor OTA (:mod:`circuitep.transistors`). On a
probe batch of digits, with every gradient from ngspice:

- ``aep``: AEP with its correction measured in the circuit
  (:class:`circuitep.engines.ota.OtaEngine`);
- ``vf``: the plain nudge on the same circuit (no correction);
- ``model``: the numpy model's exact gradient (ideal transconductors, what a digital twin
  computes), solved by ngspice on the ideal netlist;

each compared with the truth, ngspice central finite differences of the transistor circuit's cost
(:func:`circuitep.sens.finite_difference_gradients`), over every bias and every weight of the
last coupling and a random sample of ``--fd-weights`` weights of each other coupling (every
difference costs two free phases of the transistor circuit). Also the free phase's time per
sample, OTA circuit against the ideal netlist, measured side by side.

    python experiments/ota/gradcheck.py --shape ff:64-16-10 --batch 8 --fd-weights 40

Writes ``--json`` (default ``experiments/results/ota-gradcheck.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from circuitep import builders  # noqa: E402
from circuitep.cli import default_beta  # noqa: E402
from circuitep.datasets import inputs_to_voltages, labels_to_targets, load_dataset  # noqa: E402
from circuitep.engines.base import Phase  # noqa: E402
from circuitep.engines.ngspice_engine import NgspiceEngine  # noqa: E402
from circuitep.engines.ota import OtaEngine  # noqa: E402
from circuitep.gradcheck import circuit_gradcheck  # noqa: E402


def main(argv=None) -> int:
    """Run the check and write the JSON.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="ff:64-16-10", help="feedforward shorthand (64 inputs)")
    parser.add_argument("--seed", type=int, default=0, help="weights and probe batch")
    parser.add_argument("--batch", type=int, default=8, help="digits in the probe batch")
    parser.add_argument(
        "--fd-weights", type=int, default=40, help="weights differenced per coupling but the last"
    )
    parser.add_argument(
        "--json", default=str(ROOT / "experiments/results/ota-gradcheck.json"), help="output"
    )
    args = parser.parse_args(argv)

    net = builders.from_shorthand(args.shape, seed=args.seed)
    data = load_dataset("digits", seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(data.x_train), args.batch, replace=False)
    u = inputs_to_voltages(data.x_train[rows])
    y = labels_to_targets(data.y_train[rows], data.n_classes)
    beta = default_beta(net)
    ota, ideal = OtaEngine(), NgspiceEngine(form="literal")

    times = {"ota": [], "ideal": []}
    for _ in range(2):  # interleaved: the machine is shared
        for name, engine in (("ota", ota), ("ideal", ideal)):
            t = time.perf_counter()
            engine.solve(net, Phase(), u)
            times[name].append(time.perf_counter() - t)

    chosen = {}
    last = net.couplings[-1].name
    for name, p in net.params().items():
        mask = np.ones(np.shape(p), bool)
        if name != last and name in {c.name for c in net.couplings} and mask.size > args.fd_weights:
            mask[:] = False
            flat = rng.choice(mask.size, args.fd_weights, replace=False)
            mask.flat[flat] = True
        chosen[name] = mask
    report = circuit_gradcheck(net, ota, u, y, beta=beta, elements=chosen)
    results = report["estimators"]
    fd_time = report["seconds"]["truth"]
    runs = {k: report["seconds"][k] for k in results}
    compiled = ota._compile(net, Phase())
    out = {
        "command": "python experiments/ota/gradcheck.py " + " ".join(argv or sys.argv[1:]),
        "shape": args.shape,
        "seed": args.seed,
        "batch": args.batch,
        "beta_s": beta,
        "otas": sum(int(c.mask.sum()) for c in net.couplings if c.kind == "vccs"),
        "netlist_elements": len(compiled.netlist.elements()),
        "ngspice": ota.tolerance_dict["ngspice"],
        "solver": compiled.netlist.solver,
        "ota_design": ota.tolerance_dict["ota"],
        "fd_elements": report["differenced"],
        "fd_seconds": fd_time,
        "estimate_seconds": runs,
        "free_phase_s_per_sample": {k: min(v) / args.batch for k, v in times.items()},
        "free_phase_ota_vs_ideal": min(times["ota"]) / min(times["ideal"]),
        "vs_circuit_fd": {
            k: {"cosine": r["cosine"], "rel_error": r["rel_error"], "groups": r["groups"]}
            for k, r in results.items()
        },
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    for k, r in results.items():
        print(
            f"{k:6s} vs circuit FD: cosine {r['cosine']:.9f}, relative error {r['rel_error']:.3g}"
        )
    print(
        f"free phase: OTA circuit {out['free_phase_ota_vs_ideal']:.0f}x the ideal netlist "
        f"({out['otas']} OTAs, {out['netlist_elements']} elements); FD {fd_time:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
