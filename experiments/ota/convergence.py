"""How fast ngspice solves a digits circuit of transistor OTAs: level-1 MOSFETs against BSIM3.

Issue 17: ngspice's operating points are what keep a digits OTA circuit slow to train. This times
the free phase (one DC sweep over a batch of digits, as :meth:`OtaEngine.linearise` runs it) of
the same circuit with the built-in OTA on its level-1 cards and on ngspice's BSIM3 (level 8,
default parameters; drain/source areas and perimeters given so that BSIM's parameter check is
silent and writes no ``b3v33check.log``), side by side in one run, and reports the ratio. The BSIM3
variant is a different transistor, not a faster solve of the same one: its knob curve is measured
again (:func:`circuitep.engines.ota.characterise`).

    python experiments/ota/convergence.py --shapes ff:64-10 ff:64-16-10 --batch 16

Writes ``--json`` (default ``experiments/results/ota-convergence.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from circuitep import builders, transistors  # noqa: E402
from circuitep.datasets import inputs_to_voltages, load_dataset  # noqa: E402
from circuitep.engines.ota import OtaEngine  # noqa: E402
from circuitep.netlist import Element, ModelCard, Subcircuit  # noqa: E402


def bsim3_device(design: transistors.OtaDesign) -> transistors.Transconductor:
    """The built-in OTA's topology and sizes on BSIM3 default cards.

    Parameters
    ----------
    design : OtaDesign
        Sizes and pins.

    Returns
    -------
    Transconductor
        The device, subcircuit named like the built-in one.
    """
    sub = design.subcircuit()
    elements = []
    for e in sub.elements:
        w = dict(e.params)["w"]
        geometry = (("ad", w * 1e-6), ("as", w * 1e-6), ("pd", 2 * w + 2e-6), ("ps", 2 * w + 2e-6))
        elements.append(Element("M", e.name, e.nodes, e.value, params=e.params + geometry))
    cards = tuple(
        ModelCard(name, kind, (("level", 8.0), ("version", 3.3)))
        for name, kind in ((transistors.NMOS, "NMOS"), (transistors.PMOS, "PMOS"))
    )
    return transistors.Transconductor(Subcircuit(sub.name, sub.pins, tuple(elements)), cards)


def main(argv=None) -> int:
    """Time both device models on each shape and write the JSON.

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
    parser.add_argument("--shapes", nargs="+", default=["ff:64-10", "ff:64-16-10"])
    parser.add_argument("--batch", type=int, default=16, help="digits per sweep")
    parser.add_argument(
        "--json", default=str(ROOT / "experiments/results/ota-convergence.json"), help="output"
    )
    args = parser.parse_args(argv)
    data = load_dataset("digits", seed=0)
    u = inputs_to_voltages(data.x_train[: args.batch])
    design = transistors.OtaDesign()
    engines = {"level1": OtaEngine(design=design), "bsim3": OtaEngine(device=bsim3_device(design))}
    rows = []
    for shape in args.shapes:
        net = builders.from_shorthand(shape, seed=0)
        seconds = {k: [] for k in engines}
        for _ in range(2):  # interleaved: the machine is shared
            for name, engine in engines.items():
                start = time.perf_counter()
                engine.linearise(net, u)
                seconds[name].append((time.perf_counter() - start) / args.batch)
        best = {k: min(v) for k, v in seconds.items()}
        rows.append(
            {
                "shape": shape,
                "otas": sum(c.weight.size for c in net.couplings),
                "s_per_sample": seconds,
                "bsim3_vs_level1": best["bsim3"] / best["level1"],
            }
        )
        print(
            f"{shape}: {rows[-1]['otas']} OTAs, free phase per sample in a sweep of {args.batch} "
            f"digits: level 1 {best['level1']:.3f} s, BSIM3 {best['bsim3']:.3f} s "
            f"(ratio {rows[-1]['bsim3_vs_level1']:.2f})",
            flush=True,
        )
    out = {"batch": args.batch, "ngspice": engines["level1"].tolerance_dict, "shapes": rows}
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
