"""Command line: a thin layer over the library. ``circuitep --help`` lists the commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from circuitep import cluster, kcl, montecarlo, plots
from circuitep import report as circuit_report
from circuitep.builders import SHORTHANDS, from_shorthand
from circuitep.compiler import FORMS, PHASES, Tolerances, compile_network
from circuitep.costs import make_cost
from circuitep.datasets import DATASETS, load_dataset
from circuitep.demo import DEMO_CONFIG, DEMO_SPEC, run_demo
from circuitep.elements.registry import variation_keys
from circuitep.engines.base import ConvergenceError, Phase, is_stable
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.ngspice_engine import (
    KLU_MIN_ELEMENTS,
    SOLVER_CHOICES,
    NgspiceEngine,
    auto_solver,
)
from circuitep.engines.numpy_engine import NumpyEngine
from circuitep.estimators import compare
from circuitep.fileio import write_error
from circuitep.golden import REFERENCE_SPECS, check_golden, write_golden
from circuitep.gradcheck import (
    asymmetry_sweep,
    beta_sweep,
    circuit_gradcheck,
    gradcheck,
    probe_batch,
    transconductor_pairs,
)
from circuitep.netlist import DIALECTS
from circuitep.runs import data_identity, train_run
from circuitep.sens import finite_difference_gradients, sens_gradients
from circuitep.spec import MAX_VOLTS, Network
from circuitep.specio import SpecError, load_spec
from circuitep.train import (
    ALGORITHM_ALIASES,
    ALGORITHMS,
    LR_SCHEDULES,
    TrainConfig,
    config_from_json,
    encode,
    natural_scale,
)
from circuitep.variation import Storage, Variation, draw, variation_from_dict

ENGINES = ("ngspice", "numpy", "layered")
#: Engines that train and simulate: also ngspice on the circuit whose transconductors are the
#: built-in five-transistor OTA (:class:`circuitep.engines.ota.OtaEngine`), which gradcheck and
#: reference cannot take (their truth is the numpy model's adjoint).
CIRCUIT_ENGINES = ENGINES + ("ngspice-ota5t", "ngspice-va")
#: Exit status of ``train`` and ``demo`` when training diverged (``diverged.json`` in the run
#: directory); 0 is a run trained to its epochs, 2 bad input or a refused run.
EXIT_DIVERGED = 3
EXIT_STATUS = (
    "Exit status: 0 when the run is trained to --epochs, 2 for bad input or a refused "
    f"run directory, {EXIT_DIVERGED} when training diverged (where and why: diverged.json in the "
    "run directory)."
)
RUN_DIR_HELP = (
    "run directory (checkpoint, metrics, netlist, figures): new, empty, or one this "
    "command wrote; one holding other files is refused, and so is an empty path. One "
    "run at a time: a directory in use by another run is refused"
)
#: Default limit (s) on one ngspice analysis: far above any circuit here (ff:784-100-10
#: literal: 0.1 s per op), far below the 100+ s a sweep once spun.
NGSPICE_TIMEOUT = NgspiceEngine.timeout
DEFAULT_NETLISTS = Path(__file__).resolve().parent.parent / "netlists"


class UsageError(ValueError):
    """Bad command-line input; printed without a traceback."""


def _floats(text: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not np.isfinite(values).all():
        raise argparse.ArgumentTypeError(f"values must be finite, got {text!r}")
    return values


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not (np.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in 0 .. 2**32 - 1, got {text!r}")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return v


def _run_dir(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "expected a directory for the run, got an empty path (it would mean the current "
            "directory)"
        )
    return text


def _write_output(path: str, text: str) -> None:
    """Write a command's output file (not atomically: it may be /dev/stdout); errors name it."""
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise write_error(path, exc) from exc


def default_beta(net: Network) -> float:
    """A small nudge in the network's natural units: 1e-3 of its conductance scale.

    A nominal value, rounded to 12 significant digits: 1e-3 x 1e-4 S is the float
    1.0000000000000001e-07, whose last digit is the product's rounding error, not a property of
    the circuit, and netlists write every number in its shortest round-tripping form
    (:func:`circuitep.netlist.spice_number`). Values from a spec or from training are written
    exactly as they are: the netlist is the circuit the numpy engine solves.

    Parameters
    ----------
    net : Network
        The circuit.

    Returns
    -------
    float
        beta in S.
    """
    return float(f"{1e-3 * net.conductance_scale():.12g}")


#: Input voltage (V) of every input in the default sample of a spec without a [sample]: the middle
#: of the 0..1 V range the data sets' pixels are encoded in.
DEFAULT_INPUT_V = 0.5


def make_engine(
    name: str,
    form: str = "folded",
    tolerances: Tolerances | None = None,
    timeout: float = NGSPICE_TIMEOUT,
    solver: str = "auto",
    device: str | None = None,
):
    """An engine by name.

    Parameters
    ----------
    name : {"numpy", "layered", "ngspice", "ngspice-ota5t", "ngspice-va"}
        The engine (``ngspice-ota5t``: every transconductor the built-in transistor OTA;
        ``ngspice-va``: every resistor coupling the Verilog-A programmable resistor).
    form : {"folded", "literal"}
        ngspice's netlist form (``ngspice-ota5t`` is always literal).
    tolerances : Tolerances, optional
        ngspice's ``.options`` (default :class:`~circuitep.compiler.Tolerances`).
    timeout : float
        ngspice's limit per analysis, in s.
    solver : {"auto", "klu", "sparse"}
        ngspice's matrix solver (:func:`circuitep.engines.ngspice_engine.resolve_solver`).
    device : str, optional
        ``FILE[:SUBCKT]``: a user's transconductor for ``ngspice-ota5t`` (:func:`user_device`).

    Returns
    -------
    Engine

    Raises
    ------
    UsageError
        For another name.
    """
    if name == "ngspice-va":
        from circuitep.engines.va import VaEngine

        return VaEngine(tolerances=tolerances or Tolerances(), timeout=timeout, solver=solver)
    if device and name != "ngspice-ota5t":
        raise UsageError("--device replaces the transistor OTA: use it with --engine ngspice-ota5t")
    if name == "numpy":
        return NumpyEngine()
    if name == "layered":
        return LayeredEngine()
    if name == "ngspice":
        return NgspiceEngine(
            form=form, tolerances=tolerances or Tolerances(), timeout=timeout, solver=solver
        )
    if name == "ngspice-ota5t":
        from circuitep.engines.ota import OtaEngine

        return OtaEngine(
            tolerances=tolerances or Tolerances(),
            timeout=timeout,
            solver=solver,
            device=user_device(device) if device else None,
        )
    raise UsageError(f"unknown engine {name!r}: choose one of {', '.join(CIRCUIT_ENGINES)}")


def user_device(text: str):
    """The transconductor ``FILE[:SUBCKT]`` names: a subcircuit of a validated device file.

    Parameters
    ----------
    text : str
        A device file (:func:`circuitep.userfiles.read_device_file`) and, where it defines more
        than one subcircuit, which.

    Returns
    -------
    Transconductor
        The subcircuit with the file's model cards.
    """
    from circuitep.transistors import Transconductor
    from circuitep.userfiles import read_device_file

    path, _, name = (
        text.partition(":") if ":" in text and not Path(text).exists() else (text, "", "")
    )
    lib = read_device_file(path)
    if not name:
        if len(lib.subcircuits) != 1:
            raise UsageError(
                f"{path} defines {sorted(lib.subcircuits) or 'no subcircuits'}: name one as "
                f"{path}:NAME"
            )
        name = next(iter(lib.subcircuits))
    if name.lower() not in lib.subcircuits:
        raise UsageError(
            f"{path} defines no subcircuit {name!r} (it has {sorted(lib.subcircuits)})"
        )
    return Transconductor(lib.subcircuits[name.lower()], tuple(lib.models.values()))


def user_diode(text: str):
    """The diode model ``FILE[:MODEL]`` names: a ``D`` card of a validated device file.

    Parameters
    ----------
    text : str
        A device file and, where it defines more than one diode model, which.

    Returns
    -------
    DiodeModel
        The clamps' model (:func:`circuitep.userfiles.diode_model`).
    """
    from circuitep.userfiles import diode_model, read_device_file

    path, _, name = (
        text.partition(":") if ":" in text and not Path(text).exists() else (text, "", "")
    )
    lib = read_device_file(path)
    diodes = sorted(k for k, m in lib.models.items() if m.kind == "D")
    if not name:
        if len(diodes) != 1:
            raise UsageError(
                f"{path} defines diode models {diodes or 'none'}: name one as {path}:NAME"
            )
        name = diodes[0]
    if name.lower() not in diodes:
        raise UsageError(f"{path} defines no diode model {name!r} (it has {diodes})")
    return diode_model(lib.models[name.lower()], f"{path}: ")


def _with_diode(net: Network, args) -> Network:
    """``net`` with the clamps' diode model of ``--diode``, when given."""
    if getattr(args, "diode", None):
        return dataclasses.replace(net, diode=user_diode(args.diode))
    return net


def _sample(net: Network, inputs, targets, describe: bool = False):
    """Inputs and targets (or None) of the sample a command works on.

    The options, else the spec's [sample], else the default sample (every input
    :data:`DEFAULT_INPUT_V`, no targets). With ``describe`` also a line saying which sample that is,
    for netlist headers.
    """
    where = []
    if inputs is None:
        if net.sample is None:
            inputs = np.full(net.n_inputs, DEFAULT_INPUT_V)
            where.append(
                f"default sample (the spec has no [sample]): every input {DEFAULT_INPUT_V:g} V"
            )
        else:
            inputs = net.sample.inputs
            where.append("the spec's [sample]")
    else:
        where.append("inputs from --inputs")
    if len(inputs) != net.n_inputs:
        raise UsageError(
            f"--inputs has {len(inputs)} values, network {net.name!r} has {net.n_inputs} inputs"
        )
    if targets is None:
        targets = (
            net.sample.targets
            if net.sample is not None and net.sample.targets is not None
            else None
        )
        if targets is not None and where[0] != "the spec's [sample]":
            where.append("targets from the spec's [sample]")
    else:
        where.append("targets from --targets")
    if targets is not None and len(targets) != net.n_outputs:
        raise UsageError(
            f"--targets has {len(targets)} values, network {net.name!r} has {net.n_outputs} outputs"
        )
    out = np.asarray(inputs, float), None if targets is None else np.asarray(targets, float)
    return (*out, ", ".join(where)) if describe else out


# --- commands -------------------------------------------------------------------------------


def _pair(text: str) -> tuple[float, float]:
    values = _floats(text)
    if values.shape != (2,):
        raise argparse.ArgumentTypeError(f"expected two numbers LO,HI, got {text!r}")
    return float(values[0]), float(values[1])


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < np.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _sigma_item(text: str) -> tuple[str, float]:
    key, eq, value = text.partition("=")
    if not eq:
        raise argparse.ArgumentTypeError(
            f"expected KEY=SIGMA (e.g. ota.v_offset=0.002), got {text!r}"
        )
    return key.strip(), _nonnegative(value)


def add_variation_options(p: argparse.ArgumentParser, draws: bool = False) -> None:
    """The options that declare how the circuit differs from its model (DESIGN.md §7).

    Parameters
    ----------
    p : argparse.ArgumentParser
        Gains an argument group; :func:`variation_options` reads it back.
    draws : bool
        For many draws (``montecarlo``): no ``--variation-seed`` and ``--correction`` (each draw
        has its seed; both corrections are reported).
    """
    keys = ", ".join(sorted(variation_keys()))
    g = p.add_argument_group(
        "circuit vs model",
        "the simulated circuit is the model plus a variation drawn from --variation-seed and "
        "kept fixed (DESIGN.md §7). Typical transconductor current mismatch: about 2 % per "
        "device at W.L = 4 um^2 in a 130 nm process (Pelgrom, A_VT 2.2-3.9 mV.um)",
    )
    g.add_argument(
        "--sigma-gain",
        type=_nonnegative,
        default=0.0,
        help="relative mismatch of every coupling's weight (0.2 = 20 %%; default 0)",
    )
    g.add_argument(
        "--sigma",
        type=_sigma_item,
        action="append",
        default=[],
        metavar="KEY=SIGMA",
        help=f"the mismatch of one parameter kind (repeatable); keys: {keys}",
    )
    g.add_argument("--temperature", type=float, help="the circuit's temperature, degC")
    g.add_argument(
        "--correction-gain",
        type=float,
        default=0.0,
        help="common relative gain error of AEP's correction elements (0.05 = 5 %%)",
    )
    g.add_argument(
        "--sigma-correction",
        type=_nonnegative,
        default=0.0,
        help="relative mismatch of each correction element",
    )
    g.add_argument(
        "--correction-noise",
        type=_nonnegative,
        default=0.0,
        help="relative gain noise of the correction elements, fresh every phase",
    )
    if draws:
        return
    g.add_argument(
        "--correction",
        choices=("model", "circuit"),
        default="model",
        help="AEP's correction from the controller's model (explicit elements, with the errors "
        "above; default) or the circuit's own (reversed transconductors, exact)",
    )
    g.add_argument("--variation-seed", type=_seed, default=0, help="seed of the draw (default 0)")


def variation_options(args) -> dict | None:
    """The variation :func:`add_variation_options` declared, as JSON values (None: none).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options.

    Returns
    -------
    dict or None
        :meth:`circuitep.variation.Variation.describe` of the declared variation.

    Raises
    ------
    UsageError
        For an unknown key or bad value, named.
    """
    try:
        variation = Variation(
            gain=args.sigma_gain,
            sigma=dict(args.sigma),
            temperature=args.temperature,
            correction_gain=args.correction_gain,
            sigma_correction=args.sigma_correction,
            correction_noise=args.correction_noise,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if variation == Variation():
        return None
    return variation.describe()


def command_line(argv: list[str]) -> str:
    """The shell-quoted command ``circuitep ARGV...``, for netlist headers.

    Parameters
    ----------
    argv : list of str
        The arguments after the program name.

    Returns
    -------
    str
    """
    return shlex.join(["circuitep", *argv])


def cmd_compile(args) -> int:
    """``circuitep compile``: write a phase's netlist; returns the exit status (0)."""
    net = _with_diode(load_network(args.spec), args)
    u, y, where = _sample(net, args.inputs, args.targets, describe=True)
    if args.phase != "free" and y is None:
        raise UsageError(
            f"--phase {args.phase} nudges the outputs toward targets: pass --targets v1,v2,... "
            f"({net.n_outputs} values) or give the spec a [sample] with targets"
        )
    beta = None if args.phase == "free" else (args.beta or default_beta(net))
    # the sample's free state: the AEP correction currents K x0, and the node ranges in the comments
    try:
        state = NumpyEngine().solve(net, Phase(), u[None]).x[0]
    except ConvergenceError as exc:
        if args.phase == "aep":
            raise UsageError(
                "--phase aep needs the sample's free state for its correction currents K x0, "
                f"and it has none: {exc}"
            ) from exc
        state = None  # the header then states no measured node ranges
    compiled = compile_network(
        net,
        args.phase,
        args.form,
        beta=beta,
        cost=make_cost(args.cost, args.tau),
        inputs=u,
        targets=y,
        state=state,
        command=command_line(args.argv),
        sample=where + _seed_note(args.spec),
    )
    solver = args.solver
    if solver == "auto":  # the file says klu only where it pays; small ones keep the default
        solver = "klu" if auto_solver(len(compiled.netlist.elements())) == "klu" else None
    compiled = dataclasses.replace(
        compiled, netlist=dataclasses.replace(compiled.netlist, solver=solver)
    )
    text = compiled.spice(standalone=not args.no_analysis, dialect=args.dialect)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        _write_output(args.output, text)
        print(
            f"wrote {args.output}: {len(compiled.netlist.elements())} elements, "
            f"{len(compiled.netlist.nodes())} nodes ({args.phase} phase, {args.form} form)"
        )
    return 0


def _seed_note(spec: str) -> str:
    """For a shorthand spec, which weights it stands for."""
    return "; shorthand weights of seed 0" if ":" in spec and not Path(spec).exists() else ""


def simulate(net: Network, engine, inputs: np.ndarray) -> dict:
    """Free operating point of one sample as JSON-ready data, with its linear stability.

    Parameters
    ----------
    net : Network
        The circuit.
    engine : Engine
        Solves the free phase.
    inputs : ndarray, shape (n_inputs,)
        Primary input voltages in V.

    Returns
    -------
    dict
        ``network``, ``engine``, ``phase``, ``tolerances``, ``inputs`` (V by source node, inverted
        copies included), ``nodes`` (V by free node) and ``stable`` (:func:`is_stable`).
    """
    op = engine.solve(net, Phase(), inputs[None])
    _, jac = kcl.residual(net, net.expand_inputs(inputs[None]), op.x)
    return {
        "network": net.name,
        "engine": op.engine,
        "phase": "free",
        "tolerances": op.tolerances,
        "inputs": dict(
            zip(net.input_nodes, net.expand_inputs(inputs[None])[0].tolist(), strict=True)
        ),
        "nodes": op.voltages(0),
        "stable": bool(is_stable(net, jac)[0]),
    }


def physical_report(
    net: Network,
    engine,
    u: np.ndarray,
    y: np.ndarray | None,
    tol_v: float,
    beta: float | None = None,
    cost=None,
) -> tuple[dict, list]:
    """:func:`circuitep.report.sample_report` of one sample with the engine's own transients.

    ngspice's ``tran`` for the ngspice engine, numpy's otherwise; the AEP training phases when there
    are targets.

    Parameters
    ----------
    net : Network
        The circuit.
    engine : Engine
        Solves the operating points (and, for ngspice, the transients).
    u : ndarray, shape (n_inputs,)
        Primary input voltages in V.
    y : ndarray, shape (n_outputs,), or None
        Targets in V; None reports the free phase only.
    tol_v : float
        Settling tolerance of the free phase in V.
    beta : float, optional
        Nudge strength in S (default :func:`default_beta`).
    cost : Cost, optional
        Default squared error.

    Returns
    -------
    report : dict
        The sample report.
    transients : list of Transient
        The free phase's transients for a figure: ngspice's and numpy's when the engine is ngspice
        (the caller then also reports numpy's settling time beside ngspice's), else numpy's.
    """
    kept = []
    own = (
        circuit_report.ngspice_transients(engine)
        if isinstance(engine, NgspiceEngine)
        else circuit_report.transient
    )

    def run(*a):
        tr = own(*a)
        kept.append(tr)
        return tr

    rep = circuit_report.sample_report(
        net,
        engine,
        u,
        y,
        beta=beta or default_beta(net),
        cost=cost or make_cost("mse"),
        tol_v=tol_v,
        transients=run,
    )
    free = kept[:1]
    if isinstance(engine, NgspiceEngine):
        free.append(circuit_report.transient(net, u, np.zeros(net.n_free), t_stop=free[0].t[-1]))
    return rep, free


def cmd_simulate(args) -> int:
    """``circuitep simulate``: free operating point and physical report; returns exit status 0."""
    net = _with_diode(load_network(args.spec), args)
    u, y = _sample(net, args.inputs, None)
    engine = make_engine(args.engine, args.form, timeout=args.ngspice_timeout, solver=args.solver)
    if args.settle and not isinstance(engine, NgspiceEngine):
        raise UsageError("--settle runs an ngspice transient: use it with --engine ngspice")
    if hasattr(engine, "estimate_from_circuit"):  # transistors or Verilog-A: no model report
        return _simulate_devices(net, engine, u, args)
    result = simulate(net, engine, u)
    rep, free = physical_report(net, engine, u, y, args.settle_tol)
    x_op = np.array(list(result["nodes"].values()))
    if len(free) > 1:
        rep["settling_time_numpy_s"] = circuit_report.settling_time(free[1], x_op, args.settle_tol)
    result["report"] = rep
    if args.settle:
        final = engine.settle(net, u[None])[0]
        diff = float(np.max(np.abs(final - np.array(list(result["nodes"].values())))))
        result["settles"] = diff <= 1e-6
        result["settle_max_diff_v"] = diff
        result["settled_nodes"] = dict(zip(net.free_nodes, final.tolist(), strict=True))
    _print_op(result)
    if args.settle:
        reached = np.abs(np.array(list(result["settled_nodes"].values())))
        if result["settles"]:
            verdict = "settles at this operating point"
        elif not (np.isfinite(reached).all() and reached.max() <= MAX_VOLTS):
            verdict = (
                f"RUNS AWAY (|v| reaches {np.nanmax(reached):.1e} V): the circuit does not settle"
            )
        elif not result["stable"]:
            verdict = "LEAVES this unstable operating point (it may still be moving at the end)"
        else:
            verdict = "ends ELSEWHERE (at another operating point)"
        print(
            f"transient from rest {verdict} "
            f"(largest difference {result['settle_max_diff_v']:.1e} V)"
        )
    for line in circuit_report.summary_lines(rep):
        print(line)
    if "settling_time_numpy_s" in rep:
        print(
            "numpy's own transient settles in "
            f"{circuit_report.si(rep['settling_time_numpy_s'], 's')}"
        )
    if args.plot_settle:
        plots.settle_plot(
            free,
            x_op,
            args.settle_tol,
            args.plot_settle,
            f"{net.name}: free phase from rest, to {args.settle_tol:g} V",
        )
        print(f"wrote {args.plot_settle}")
    if args.json:
        _write_output(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _simulate_devices(net: Network, engine, u, args) -> int:
    """``simulate`` on a circuit of devices: its operating point; the model's report would lie."""
    if args.settle or args.plot_settle:
        raise UsageError(f"--settle and --plot-settle are not available on {engine.name}")
    x = engine.solve(net, Phase(), u[None]).x[0]
    print(f"{net.name}: free operating point by {engine.name}")
    for name, v in zip(net.free_nodes, x, strict=True):
        print(f"  {name:>10s} {v:+.9f} V")
    print(
        "physical report, stability and settling: not computed (their formulas are the model's "
        "elements', not these devices')"
    )
    if args.json:
        result = {
            "network": net.name,
            "engine": engine.name,
            "nodes": dict(zip(net.free_nodes, x.tolist(), strict=True)),
            "tolerances": engine.tolerance_dict,
        }
        _write_output(args.json, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _gradcheck_devices(net: Network, engine, u, y, beta: float, cost, args) -> int:
    """``gradcheck`` on a circuit of devices: AEP, VF and the model against its differences."""
    asked = [
        flag
        for flag, on in (
            ("--sens", args.sens),
            ("--check-fd", args.check_fd),
            ("--sweep-beta", args.sweep_beta),
            ("--sweep-asymmetry", args.sweep_asymmetry),
            ("--plot", args.plot),
            ("a variation", variation_options(args) is not None),
        )
        if on
    ]
    if asked:
        raise UsageError(f"{', '.join(asked)}: not available on {engine.name}")
    report = circuit_gradcheck(net, engine, u, y, beta=beta, cost=cost)
    print(
        f"{net.name}: gradients on {engine.name} ({args.samples} samples, beta = {beta:g} S); the "
        f"truth is ngspice's central finite differences of this circuit ({report['differenced']} "
        "parameters); 'model' is the numpy model's exact gradient with ideal devices"
    )
    print(f"  {'estimator':<9} {'group':<12} {'cosine':>12} {'rel_error':>10} {'sign':>6}")
    for name, r in report["estimators"].items():
        rows = [("(all)", r)] + list(r["groups"].items())
        for k, (group, g) in enumerate(rows):
            print(
                f"  {name if k == 0 else '':<9} {group:<12} {g['cosine']:>12.8f} "
                f"{g['rel_error']:>10.2e} {g['sign_agreement']:>6.2f}"
            )
    if args.json:
        _write_output(args.json, json.dumps(report, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


def _print_op(result: dict) -> None:
    print(
        f"{result['network']}: free operating point by {result['engine']} "
        f"({'stable' if result['stable'] else 'UNSTABLE: the circuit would not settle here'})"
    )
    for node, v in result["nodes"].items():
        print(f"  {node:>10s} {v:+.9f} V")


def cmd_reference(args) -> int:
    """``circuitep reference``: the reference specs' operating points; returns exit status 0."""
    engine = make_engine(args.engine, args.form, timeout=args.ngspice_timeout, solver=args.solver)
    for name in REFERENCE_SPECS:
        net = load_spec(Path(args.netlists) / f"{name}.toml")
        _print_op(simulate(net, engine, net.sample.inputs))
    return 0


def cmd_gradcheck(args) -> int:
    """``circuitep gradcheck``: estimators against the exact gradient; returns exit status 0."""
    net = _with_diode(load_network(args.spec), args)
    engine = make_engine(
        args.engine,
        args.form,
        timeout=args.ngspice_timeout,
        solver=args.solver,
        device=args.device,
    )
    beta = args.beta or default_beta(net)
    cost = make_cost(args.cost, args.tau)
    if args.sweep_asymmetry and not transconductor_pairs(net):
        raise UsageError(
            f"--sweep-asymmetry needs forward/backward transconductor pairs; {net.name!r} has none"
        )
    if args.sens and not (isinstance(engine, NgspiceEngine) and engine.form == "literal"):
        raise UsageError(
            "--sens reads ngspice's sensitivities: use it with --engine ngspice --form literal"
        )
    u, y = probe_batch(net, args.samples, args.seed)
    if hasattr(engine, "estimate_from_circuit"):  # transistors or Verilog-A: FD is the truth
        return _gradcheck_devices(net, engine, u, y, beta, cost, args)
    model, variation = net, variation_options(args)
    if variation is not None:  # the simulated circuit is the model plus a draw (DESIGN.md §7)
        d = draw(variation_from_dict(variation), model, args.variation_seed)
        try:
            net = d.circuit(model)
        except ValueError as exc:
            raise UsageError(f"the drawn circuit is not a valid one: {exc}") from None
    correction = None if variation is None or args.correction == "circuit" else d.correction(model)
    report = gradcheck(
        net,
        engine,
        u,
        y,
        beta=beta,
        cost=cost,
        centered=not args.one_sided,
        model=None if variation is None else model,
        correction=correction,
    )
    if variation is not None:
        report["variation"] = dict(variation, seed=args.variation_seed)
    print(
        f"{net.name}: gradients on {engine.name} ({args.samples} samples, beta = {beta:g} S, "
        f"tolerances {report['tolerances']})"
    )
    if variation is not None:
        print(
            "  the circuit is the model plus a variation (seed "
            f"{args.variation_seed}); the truth is the circuit's own exact gradient; 'model' is "
            "the model's gradient, 'aep_own' AEP with the circuit's own correction"
        )
    print(f"  {'estimator':<9} {'group':<12} {'cosine':>12} {'rel_error':>10} {'sign':>6}")
    for name, r in report["estimators"].items():
        print(
            f"  {name:<9} {'(all)':<12} {r['cosine']:>12.8f} {r['rel_error']:>10.2e} "
            f"{r['sign_agreement']:>6.2f}"
        )
        for group, g in r["groups"].items():
            print(
                f"  {'':<9} {group:<12} {g['cosine']:>12.8f} {g['rel_error']:>10.2e} "
                f"{g['sign_agreement']:>6.2f}"
            )
    physics, _ = physical_report(net, engine, u[0], y[0], args.settle_tol, beta, cost)
    report["physics"] = physics
    print(f"  physical report of probe sample 0 ({engine.name}):")
    for line in circuit_report.summary_lines(physics):
        print(f"    {line}")
    if args.sens:
        exact = {k: np.array(v) for k, v in report["exact"].items()}
        sens = sens_gradients(net, engine, u, y, cost)
        report["sens"] = compare(sens, {k: exact[k].reshape(sens[k].shape) for k in sens})
        print(
            f"  ngspice .sens vs exact: cosine {report['sens']['cosine']:.8f}, relative error "
            f"{report['sens']['rel_error']:.2e} (groups covered: {', '.join(sens)})"
        )
    if args.check_fd:
        exact = {k: np.array(v) for k, v in report["exact"].items()}
        fd = finite_difference_gradients(net, engine, u, y, cost)
        report["finite_differences"] = compare(fd, exact)
        print(
            f"  central finite differences of the cost on {engine.name} vs exact: relative error "
            f"{report['finite_differences']['rel_error']:.2e}"
        )
    if args.sweep_beta:
        betas = beta * np.logspace(-1, 1, 5)
        report["beta_sweep"] = beta_sweep(net, engine, u, y, betas, cost=cost)
        for name in ("vf", "aep"):
            row = report["beta_sweep"][name]
            print(
                f"  beta sweep {name}: one-sided slope {row['slope_one_sided']:.2f}, "
                f"centred slope {row['slope_centered']:.2f}"
            )
    if args.sweep_asymmetry:
        report["asymmetry_sweep"] = asymmetry_sweep(
            net, engine, u, y, np.linspace(0, 1, 6), beta=beta, cost=cost
        )
        sw = report["asymmetry_sweep"]
        for a, vf, aep, ok in zip(sw["asymmetry"], sw["vf"], sw["aep"], sw["stable"], strict=True):
            print(
                f"  asymmetry {a:.3f}: VF rel error {vf:.2e}, AEP rel error {aep:.2e}"
                f"{'' if ok else '  (free state UNSTABLE for some samples)'}"
            )
    if args.plot:
        stem = Path(args.plot)
        paths = [plots.gradient_scatter(report, stem)]
        if args.sweep_beta:
            paths.append(
                plots.beta_sweep_plot(report["beta_sweep"], stem.with_name(stem.stem + "-beta.png"))
            )
        if args.sweep_asymmetry:
            paths.append(
                plots.asymmetry_plot(
                    report["asymmetry_sweep"], stem.with_name(stem.stem + "-asymmetry.png")
                )
            )
        print("wrote " + ", ".join(str(p) for p in paths))
    if args.json:
        _write_output(args.json, json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


def _sweep(text: str) -> tuple[str, list[float]]:
    name, eq, values = text.partition("=")
    name = name.strip()
    if not eq:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got {text!r}")
    if name not in montecarlo.SWEEPS:
        raise argparse.ArgumentTypeError(
            f"unknown sweep {name!r}: NAME is one of {sorted(montecarlo.SWEEPS)}"
        )
    try:
        points = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sweep {name}: not numbers: {values!r}") from None
    if not points or not all(np.isfinite(points)):
        raise argparse.ArgumentTypeError(f"--sweep {name}: give finite values, got {values!r}")
    return name, points


def _load_run(folder: Path, args):
    """A trained run directory: (trained model, initial network, config, data)."""
    for name in ("trained.toml", "spec.toml", "config.json", "data.json"):
        if not (folder / name).is_file():
            raise UsageError(f"{folder} is not a trained run directory: no {name} in it")
    config = config_from_json((folder / "config.json").read_text())
    identity = json.loads((folder / "data.json").read_text())
    data = load_dataset(
        identity["name"],
        data_dir=args.data_dir,
        n_train=identity["n_train"],
        n_test=identity["n_test"],
        seed=config.seed,
    )
    if data_identity(data)["sha256"] != identity.get("sha256"):
        raise UsageError(
            f"the data set loaded for {folder} is not the one it was trained on ({identity}); "
            "give the right --data-dir"
        )
    return load_spec(folder / "trained.toml"), load_spec(folder / "spec.toml"), config, data


def cmd_montecarlo(args) -> int:
    """``circuitep montecarlo``: draws of a variation, each against its truth; exit status 0."""
    target = Path(args.spec)
    config, data, start = TrainConfig(), None, None
    if target.is_dir():
        model, start, config, data = _load_run(target, args)
    else:
        model = load_network(args.spec)
        if args.data:
            data = load_dataset(args.data, data_dir=args.data_dir, seed=args.seed)
    if args.train and data is None:
        raise UsageError("--train needs a trained run directory (its start, config and data)")
    if args.train_epochs:
        config = replace(config, epochs=args.train_epochs)
    base = variation_options(args)
    base = Variation() if base is None else variation_from_dict(base)
    if args.levels or args.program_noise:
        base = replace(
            base,
            storage=Storage(
                levels=args.levels, headroom=args.headroom, program_noise=args.program_noise
            ),
        )
    if data is not None:
        u, y = encode(
            data.x_train[: args.samples], data.y_train[: args.samples], data.n_classes, config
        )
        n_test = len(data.x_test) if args.n_test is None else min(args.n_test, len(data.x_test))
        test_u = encode(data.x_test[:n_test], data.y_test[:n_test], data.n_classes, config)[0]
        test_labels = data.y_test[:n_test]
        sigma = natural_scale(start if start is not None else model)
        beta, cost = config.beta_rel * sigma, make_cost(config.cost, config.tau)
    else:
        u, y = probe_batch(model, args.samples, args.seed)
        test_u = test_labels = None
        beta, cost = default_beta(model), None
    name, values = args.sweep if args.sweep else (None, [None])
    tasks = []
    for value in values:
        try:
            variation = base if name is None else montecarlo.with_sweep(base, name, value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        for k in range(args.draws):
            tasks.append(
                montecarlo.DrawTask(
                    model=model,
                    variation=variation,
                    seed=args.seed + k,
                    inputs=u,
                    targets=y,
                    beta=beta,
                    cost=cost,
                    test_inputs=test_u,
                    test_labels=test_labels,
                    engine=args.engine,
                    check_fd=args.check_fd,
                    train=config if args.train else None,
                    data=data if args.train else None,
                    start=start if args.train else None,
                    point=None if name is None else {name: value},
                )
            )
    print(
        f"{model.name}: {args.draws} draws x {len(values)} point(s) of "
        f"{plots.json_variation(base.describe())} on {args.engine}, "
        f"probe batch {len(u)}" + (f", sweep {name} over {values}" if name else "")
    )
    with cluster.client_for(args.scheduler, args.workers) as client:
        draws = montecarlo.run(tasks, client, progress=not args.no_progress)
    doc = _montecarlo_document(args, model, base, name, values, draws)
    _print_montecarlo(doc, name, values)
    if args.json:
        _write_output(args.json, json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.csv:
        _write_output(args.csv, _montecarlo_csv(draws, name))
        print(f"wrote {args.csv}")
    if args.figure:
        plots.montecarlo_figure(doc, args.figure)
        print(f"wrote {args.figure}")
    return 0


def _montecarlo_document(args, model, base, name, values, draws) -> dict:
    points = []
    for value in values:
        mine = [d for d in draws if name is None or d["point"][name] == value]
        points.append({"value": value, "summary": montecarlo.summarise(mine)})
    if name is None:
        summary = points[0]["summary"]
    else:  # per estimator, one value per sweep point
        summary = {
            est: {
                key: [p["summary"].get(est, {}).get(key) for p in points]
                for key in ("median_cosine", "worst_cosine", "q10_cosine", "q90_cosine")
            }
            for est in montecarlo.COSINES
        }
    doc = {
        "spec": args.spec,
        "model": model.name,
        "command": command_line(args.argv),
        "variation": base.describe(),
        "engine": args.engine,
        "probe_samples": args.samples,
        "draws": draws,
        "summary": summary,
        "versions": versions(),
    }
    if name is not None:
        doc["sweep"] = {"name": name, "values": values, "points": points}
    return doc


def versions() -> dict:
    """Versions of what produced a result: circuitep, numpy, dask, ngspice (None if absent)."""
    import importlib.metadata as md

    out = {}
    for pkg in ("circuitep", "numpy", "scipy", "distributed"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _print_montecarlo(doc: dict, name, values) -> None:
    points = doc["sweep"]["points"] if name else [{"value": None, "summary": doc["summary"]}]
    for p in points:
        head = f"  {name} = {p['value']:g}:" if name else "  cosine with each circuit's truth:"
        print(head)
        for est in montecarlo.COSINES:
            s = p["summary"].get(est)
            if s:
                print(
                    f"    {est:<8} median {s['median_cosine']:.6f}  worst {s['worst_cosine']:.6f}"
                )
        for key, what in (
            ("test_accuracy", "test accuracy"),
            ("trained_test_accuracy", "trained under the variation: test accuracy"),
        ):
            if key in p["summary"]:
                a = p["summary"][key]
                print(f"    {what} {100 * a['mean']:.2f} ± {100 * a['std']:.2f} %")
        if p["summary"].get("failed_draws"):
            print(
                f"    {p['summary']['failed_draws']} draw(s) had no operating point for some "
                "probe sample in some phase: their gradients were not measured (see 'error')"
            )
        if "fd_rel_error" in p["summary"]:
            print(
                "    ngspice central differences vs the circuit's exact gradient: largest relative "
                f"error {p['summary']['fd_rel_error']['best']:.2e}"  # 'best' is the max
            )


def _montecarlo_csv(draws: list[dict], name) -> str:
    import csv
    import io

    buf = io.StringIO()
    head = ([name] if name else []) + ["seed"]
    head += [f"cosine_{k}" for k in montecarlo.COSINES]
    head += ["test_accuracy", "fd_rel_error", "trained_test_accuracy", "error"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for d in draws:
        row = ([d["point"][name]] if name else []) + [d["seed"]]
        row += [d["cosine"][k] for k in montecarlo.COSINES]
        row += [d.get(k) for k in ("test_accuracy", "fd_rel_error", "trained_test_accuracy")]
        row.append(d.get("error"))
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def load_network(spec: str, seed: int = 0) -> Network:
    """A network from a TOML spec file, or from a shorthand such as ``ff:64-64-10``.

    A missing ``.toml`` path is reported as a missing file even when it holds a colon.

    Parameters
    ----------
    spec : str
        Path of a spec file, or a shorthand (see ``circuitep --help``).
    seed : int
        Seed of a shorthand's random weights.

    Returns
    -------
    Network

    Raises
    ------
    SpecError
        For a spec file that cannot be read.
    ValueError
        For an invalid shorthand.
    """
    if ":" in spec and not spec.endswith(".toml") and not Path(spec).exists():
        return from_shorthand(spec, seed=seed)
    return load_spec(spec)


def _report(summary: dict, out: Path) -> int:
    """Print what a run reached; the exit status: :data:`EXIT_DIVERGED` if it diverged, else 0."""
    _report_run(summary, out)
    if summary.get("diverged"):
        print(
            f"circuitep: training diverged in epoch {summary['diverged']['epoch']}; where and "
            f"why: {out / 'diverged.json'}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return 0


def _report_run(summary: dict, out: Path) -> None:
    if summary.get("diverged"):
        print(
            f"{summary['diverged']['message']}; stopped after epoch {summary['epochs']} "
            f"(delete {out / 'diverged.json'} to try again, e.g. with a smaller --lr)"
        )
    if summary.get("test_accuracy") is None:
        print(f"no epoch completed; run state in {out}")
        return
    print(
        f"test accuracy {100 * summary['test_accuracy']:.2f} % (train "
        f"{100 * summary['train_accuracy']:.2f} %), gradient cosine with the circuit's exact "
        f"gradient {summary['grad_cosine']:.6f}, {summary['failures']} non-converged samples "
        "skipped"
    )
    print(
        f"trained circuit: {out / 'trained.cir'} (netlist), {out / 'trained.toml'} (spec); "
        f"metrics: {out / 'metrics.json'}, {out / 'metrics.csv'}; figure: "
        f"{out / 'learning_curves.png'}"
    )


def cmd_train(args) -> int:
    """``circuitep train``: train a run; returns the exit status, 0 or :data:`EXIT_DIVERGED`."""
    net = _with_diode(load_network(args.spec, args.seed), args)
    config = TrainConfig(
        algorithm=args.algorithm,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        momentum=args.momentum,
        beta_rel=args.beta_rel,
        centered=not args.one_sided,
        cost=args.cost,
        tau=args.tau,
        seed=args.seed,
        levels=args.levels,
        levels_range=args.levels_range,
        headroom=args.headroom,
        shadow=not args.no_shadow,
        stochastic_rounding=args.stochastic_rounding,
        program_noise=args.program_noise,
        g_bounds=args.g_bounds,
        w_max=args.w_max,
        variation=variation_options(args),
        variation_seed=args.variation_seed,
        correction=args.correction,
        v_on=args.v_on,
        v_off=args.v_off,
        on_failure=args.on_failure,
        train_leak=args.train_leak,
        probe_size=args.probe_size,
        eval_train_samples=args.eval_train_samples,
        fd_elements=args.fd_elements,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        data = load_dataset(
            args.data,
            data_dir=args.data_dir,
            download=args.download,
            n_train=args.n_train,
            n_test=args.n_test,
            seed=args.seed,
            verify=not args.no_verify,
        )
    for w in caught:
        print(f"circuitep: warning: {w.message}", file=sys.stderr)
    engine = make_engine(
        args.engine,
        args.form,
        timeout=args.ngspice_timeout,
        solver=args.solver,
        device=args.device,
    )
    print(
        f"training {net.name} ({net.n_inputs} inputs, {net.n_free} free nodes) on {data.name} "
        f"({len(data.x_train)} train / {len(data.x_test)} test) with {args.algorithm} on "
        f"{engine.name}"
    )
    summary = train_run(
        net,
        data,
        engine,
        config,
        args.out,
        resume=args.resume,
        exact_engine=NumpyEngine(check_stability=False),
        progress=not args.no_progress,
        command=command_line(args.argv),
    )
    return _report(summary, Path(args.out))


def cmd_demo(args) -> int:
    """``circuitep demo``: the demo run; returns the exit status, 0 or :data:`EXIT_DIVERGED`."""
    print(
        f"demo: {DEMO_SPEC} feedforward transconductor circuit on digits, ngspice in the loop, AEP "
        f"({args.epochs or DEMO_CONFIG.epochs} epochs)"
    )
    summary = run_demo(
        args.out,
        epochs=args.epochs,
        resume=args.resume,
        progress=not args.no_progress,
        command=command_line(args.argv),
    )
    return _report(summary, Path(args.out))


def cmd_golden(args) -> int:
    """``circuitep golden``: check or write golden netlists; returns the exit status (1: drift)."""
    if args.write:
        paths = write_golden(args.netlists)
        print(f"wrote {len(paths)} golden netlists under {args.netlists}")
        return 0
    stale = check_golden(args.netlists)
    for p in stale:
        print(f"drifted or missing: {p}")
    print(
        "golden netlists up to date" if not stale else "regenerate with: circuitep golden --write"
    )
    return 1 if stale else 0


# --- parser ---------------------------------------------------------------------------------


MONTECARLO_EPILOG = """\
Each draw is one circuit: the model (SPEC, or a trained run directory's trained.toml) plus the
declared variation drawn from its seed (--seed, --seed + 1, ...). On a probe batch (a run's first
training samples, else random inputs) every estimator runs on that circuit and is compared with
the circuit's own exact gradient: aep (its correction from the model, with the correction errors
declared), ep, vf, dyadic, aep_own (the circuit's own correction) and model (the model's gradient:
what a digital twin computes). A run directory also gives the test accuracy of each circuit.

Defaults and their sources: mismatch 0 (declare it); a transconductor's current mismatch is about
2 % per device for W.L = 4 um^2 in a 130 nm process (Pelgrom, A_VT 2.2-3.9 mV.um); stored
conductances of 4-8 bits with an on/off ratio >= 10 (memristive and floating-gate devices).

--json writes {"draws": [{"seed", "cosine": {"aep", "model", ...}, "test_accuracy", ...}],
"summary": {"aep": {"median_cosine", "worst_cosine", ...}, ...}, "variation", "versions"}; with
--sweep every draw has its "point", "sweep" holds each point's summary and "summary" lists per
estimator one value per point. Draws run on a Dask LocalCluster of worker processes (one ngspice
each) or on --scheduler's cluster; a worker that dies loses no draw (it is run again).

Examples:
  circuitep montecarlo netlists/layered.toml --sigma-gain 0.2 --draws 20 --json mc.json --check-fd
  circuitep montecarlo runs/digits --sweep sigma-gain=0,0.1,0.2,0.3 --figure mc.png
  circuitep montecarlo runs/digits --sweep bits=2,3,4,6,8 --csv bits.csv
"""


def add_montecarlo_parser(sub) -> None:
    """The ``montecarlo`` subcommand's options (issue 16).

    Parameters
    ----------
    sub : argparse subparsers
        Gains ``montecarlo``.
    """
    m = sub.add_parser(
        "montecarlo",
        help="draws of a mismatch/temperature/storage/correction variation: each circuit's "
        "estimators against its own true gradient, beside the model's",
        description="Monte Carlo over circuits that are not their model (DESIGN.md §7).",
        epilog=MONTECARLO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("spec", metavar="SPEC_OR_RUN_DIR", help="a spec, shorthand or trained run")
    m.add_argument("--draws", type=_count, default=20, help="draws per point (default 20)")
    m.add_argument("--seed", type=_seed, default=0, help="seed of the first draw (default 0)")
    m.add_argument("--samples", type=_count, default=32, help="probe batch size (default 32)")
    m.add_argument(
        "--engine",
        choices=("reference", "ngspice"),
        default="reference",
        help="simulate each circuit with the numpy engine that models it (default) or ngspice",
    )
    m.add_argument(
        "--check-fd",
        action="store_true",
        help="also compare ngspice's central finite differences of each circuit's cost with "
        "its exact gradient",
    )
    m.add_argument(
        "--sweep",
        type=_sweep,
        metavar="NAME=V1,V2,...",
        help="repeat the draws at each value of one quantity: "
        + "; ".join(f"{k}: {v}" for k, v in montecarlo.SWEEPS.items()),
    )
    st = m.add_argument_group("stored weights")
    st.add_argument("--levels", type=_count, help="levels per stored weight (default: analog)")
    st.add_argument(
        "--headroom",
        type=_positive,
        default=1.0,
        help="levels over headroom x each coupling's largest |w| (default 1)",
    )
    st.add_argument(
        "--program-noise", type=_nonnegative, default=0.0, help="write error, level steps rms"
    )
    add_variation_options(m, draws=True)
    tr = m.add_argument_group("training under the variation (trained run directories)")
    tr.add_argument(
        "--train",
        action="store_true",
        help="also train each drawn circuit from the run's start with its configuration",
    )
    tr.add_argument("--train-epochs", type=_count, help="epochs of that training (default: run's)")
    m.add_argument("--data", choices=DATASETS, help="a data set for a spec (probe and test)")
    m.add_argument("--data-dir", help="folder of the MNIST IDX files")
    m.add_argument("--n-test", type=_count, help="test samples (default: all)")
    m.add_argument("--json", help="write the draws and summary as JSON")
    m.add_argument("--csv", help="write one row per draw as CSV")
    m.add_argument("--figure", help="write a PNG: cosines (and accuracy) per point")
    m.add_argument("--scheduler", help="address of an existing Dask scheduler (tcp://host:8786)")
    m.add_argument(
        "--workers", type=_count, help="LocalCluster worker processes (default: the cores)"
    )
    m.add_argument("--no-progress", action="store_true", help="no progress bar")
    m.set_defaults(func=cmd_montecarlo)


def _ngspice_options(parser, form: str) -> None:
    """Add ``--form``, ``--ngspice-timeout`` and ``--solver`` (how ngspice is run) to a command."""
    parser.add_argument(
        "--form",
        choices=FORMS,
        default=form,
        help=f"netlist form for ngspice (default {form}): literal, one element per weight; folded, "
        "input-driven elements as one Norton source per node (same voltages, much faster)",
    )
    parser.add_argument(
        "--ngspice-timeout",
        type=_positive,
        default=NGSPICE_TIMEOUT,
        metavar="SECONDS",
        help="limit on each ngspice analysis (default %(default)g s): past it the "
        "samples count as not converged",
    )
    parser.add_argument(
        "--solver",
        choices=SOLVER_CHOICES,
        default="auto",
        help="ngspice's matrix solver (default auto: KLU for circuits of "
        f"{KLU_MIN_ELEMENTS:,} elements or more where ngspice has KLU, as 46 from Debian "
        "bookworm-backports does; Sparse 1.3 otherwise, the faster there)",
    )


def _device_option(parser) -> None:
    """Add ``--device FILE[:SUBCKT]``: a user's transconductor for ``--engine ngspice-ota5t``."""
    parser.add_argument(
        "--device",
        metavar="FILE[:SUBCKT]",
        help="with --engine ngspice-ota5t: build every transconductor as this subcircuit of a "
        "device file (pins gp gn out tail vdd vss; .subckt, .ends and .model lines only, validated "
        "line by line) instead of the built-in five-transistor OTA",
    )


def _diode_option(parser) -> None:
    """Add ``--diode FILE[:MODEL]``: the clamps' diode card from a user's device file."""
    parser.add_argument(
        "--diode",
        metavar="FILE[:MODEL]",
        help="the clamps' diode model from a device file's .model NAME D(...) card (IS, N, RS, "
        "CJO, VJ, M, FC, TT, BV, IBV, NBV, EG, XTI, TNOM, TRS1, TRS2; the file is validated line "
        "by line: .subckt, .ends and .model only) instead of the spec's",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser: one subcommand per ``cmd_*`` handler, set as ``func``.

    Returns
    -------
    argparse.ArgumentParser
    """
    p = argparse.ArgumentParser(
        prog="circuitep",
        description="Compile neural networks into analog circuits (SPICE netlists), simulate them "
        "with ngspice or the numpy reference engine, and train them with Equilibrium Propagation.",
        epilog="Specs are TOML files (see netlists/*.toml). Units are SI: V, A, S, F.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser(
        "compile",
        help="write the netlist of one learning phase",
        description="Compile SPEC into an ngspice netlist for one learning phase.",
    )
    c.add_argument(
        "spec", help="network spec: TOML file, or a shorthand such as ff:4-3-2 (weights of seed 0)"
    )
    c.add_argument(
        "--phase",
        choices=PHASES,
        default="free",
        help="free; nudged (+beta toward the targets); aep (nudge plus the non-reciprocal "
        "correction around the free state, computed for the sample); dyadic (circuit plus "
        "adjoint network). Default: free",
    )
    c.add_argument(
        "--form",
        choices=FORMS,
        default="literal",
        help="literal: one element per weight (default); folded: input-driven elements replaced "
        "by one Norton source and conductance per node (same voltages, much faster)",
    )
    c.add_argument(
        "--solver",
        choices=SOLVER_CHOICES,
        default="auto",
        help="write ngspice's matrix solver into the file: klu or sparse; auto (default) writes "
        f".options klu for circuits of {KLU_MIN_ELEMENTS:,} elements or more, where KLU is the "
        "faster, and nothing otherwise (an ngspice without KLU ignores the line)",
    )
    c.add_argument(
        "--beta", type=_positive, help="nudge strength in S (default: 1e-3 x the median leak)"
    )
    c.add_argument(
        "--cost",
        choices=("mse", "xent"),
        default="mse",
        help="cost whose gradient the nudge injects",
    )
    c.add_argument(
        "--tau", type=_positive, default=0.1, help="cross-entropy temperature in V (default 0.1)"
    )
    c.add_argument(
        "--inputs",
        type=_floats,
        help="input voltages v1,v2,... (default: the spec's sample, else every input "
        f"{DEFAULT_INPUT_V:g} V)",
    )
    c.add_argument(
        "--targets",
        type=_floats,
        help="target voltages (default: the spec's sample; a nudged, aep or dyadic phase needs "
        "them)",
    )
    c.add_argument("-o", "--output", help="output file (default: standard output)")
    c.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="ngspice",
        help="simulator syntax: ngspice (default) or xyce (B-source expressions in braces, "
        ".OPTIONS DEVICE GMIN TEMP TNOM and NONLIN RELTOL/ABSTOL, diode LEVEL=1, .DC TEMP LIST "
        "<the spec's temperature> and .PRINT DC as the analysis); the Xyce form is written from "
        "the Xyce Reference Guide and checked against its grammar, not run: Xyce is not installed "
        "here",
    )
    c.add_argument(
        "--no-analysis",
        action="store_true",
        help="leave out the analysis block (.control: op and print of the node voltages) that "
        "makes the file run alone in ngspice -b, to include it in a larger deck",
    )
    _diode_option(c)
    c.set_defaults(func=cmd_compile)

    s = sub.add_parser(
        "simulate",
        help="find the free operating point of a spec's sample, and its power, "
        "settling time and energy",
        description="Simulate SPEC's free phase for one sample and print node voltages and a "
        "physical report: power absorbed by each element class (leaks, resistors, transconductors, "
        "diodes, clamp rails, bias and input sources, nudge, AEP correction; by Tellegen "
        "they sum to zero), the settling time of a transient from rest with the spec's "
        "capacitances, energy per inference (dissipated power x settling time), node and "
        "device-current ranges, headroom to the clamp rails; with targets also the AEP "
        "training phases (+-beta, from the free state) and the energy per training sample.",
    )
    s.add_argument(
        "spec", help="network spec: TOML file, or a shorthand such as ff:4-3-2 (weights of seed 0)"
    )
    s.add_argument(
        "--engine",
        choices=CIRCUIT_ENGINES,
        default="ngspice",
        help="ngspice (the simulator of record, default), numpy (the reference solver), "
        "ngspice-ota5t (ngspice, every transconductor the built-in five-transistor OTA) or "
        "ngspice-va (every resistor coupling a Verilog-A programmable resistor)",
    )
    _ngspice_options(s, form="literal")
    s.add_argument(
        "--inputs",
        type=_floats,
        help="input voltages v1,v2,... (default: the spec's sample, else every input "
        f"{DEFAULT_INPUT_V:g} V)",
    )
    s.add_argument(
        "--settle",
        action="store_true",
        help="also run an ngspice transient from rest and say whether the circuit settles at the "
        "operating point (a non-reciprocal circuit may have DC solutions it never reaches)",
    )
    s.add_argument(
        "--settle-tol",
        type=_positive,
        default=circuit_report.SETTLE_TOL_V,
        help="settling tolerance of the free phase in V (default "
        f"{circuit_report.SETTLE_TOL_V:g}); nudged phases settle to "
        f"{circuit_report.SETTLE_TOL_REL:g} of their displacement",
    )
    s.add_argument(
        "--plot-settle",
        metavar="FILE.png",
        help="PNG of the free phase's transient from rest (ngspice's and numpy's with --engine "
        "ngspice)",
    )
    s.add_argument(
        "--json",
        help="also write {engine, nodes: {name: volts}, stable, report: {power by element "
        "class, settling times, energy per inference and per training sample, ranges}} "
        "to this file",
    )
    _diode_option(s)
    s.set_defaults(func=cmd_simulate)

    r = sub.add_parser("reference", help="simulate the reference circuits in netlists/")
    r.add_argument("--engine", choices=ENGINES, default="ngspice")
    _ngspice_options(r, form="literal")
    r.add_argument("--netlists", default=str(DEFAULT_NETLISTS), help="folder of reference specs")
    r.set_defaults(func=cmd_reference)

    gc = sub.add_parser(
        "gradcheck",
        help="compare the gradients EP, VF, AEP and Dyadic EP compute with the exact one",
        description="Run every estimator on a probe batch (the spec's sample plus random samples) "
        "and compare it, per parameter group, with the exact adjoint gradient: cosine similarity, "
        "relative error, sign agreement.",
    )
    gc.add_argument(
        "spec", help="network spec: TOML file, or a shorthand such as ff:4-3-2 (weights of seed 0)"
    )
    gc.add_argument(
        "--engine",
        choices=CIRCUIT_ENGINES,
        default="ngspice",
        help="engine that finds the stationary states (default ngspice); ngspice-ota5t and "
        "ngspice-va simulate circuits of transistor OTAs or Verilog-A resistors, whose truth is "
        "ngspice's finite differences of the circuit",
    )
    _ngspice_options(gc, form="folded")
    gc.add_argument(
        "--beta", type=_positive, help="nudge strength in S (default: 1e-3 x the median leak)"
    )
    gc.add_argument(
        "--one-sided",
        action="store_true",
        help="one-sided nudging (O(beta) bias) instead of centred",
    )
    gc.add_argument("--cost", choices=("mse", "xent"), default="mse", help="cost (default mse)")
    gc.add_argument("--tau", type=_positive, default=0.1, help="cross-entropy temperature in V")
    gc.add_argument("--samples", type=_count, default=8, help="probe batch size (default 8)")
    gc.add_argument("--seed", type=_seed, default=0, help="seed of the probe batch")
    gc.add_argument(
        "--sens",
        action="store_true",
        help="also compare ngspice's own DC sensitivities (.sens) with the exact gradient "
        "(needs --engine ngspice --form literal; not for tanh transconductors)",
    )
    gc.add_argument(
        "--check-fd",
        action="store_true",
        help="also compare central finite differences of the cost, solved by --engine (with "
        "ngspice: the truth for any circuit), with the exact gradient",
    )
    add_variation_options(gc)
    gc.add_argument(
        "--sweep-beta",
        action="store_true",
        help="also measure error against beta (fits the slopes)",
    )
    gc.add_argument(
        "--sweep-asymmetry",
        action="store_true",
        help="also interpolate backward couplings from symmetric to the spec's (needs fwd/bwd "
        "pairs)",
    )
    gc.add_argument(
        "--settle-tol",
        type=_positive,
        default=circuit_report.SETTLE_TOL_V,
        help="settling tolerance (V) of the free phase in the physical report of probe sample 0 "
        "(power by element class, settling times, energy per inference and per training sample)",
    )
    gc.add_argument(
        "--json", help="write the full report (per group metrics and gradients, physics) as JSON"
    )
    gc.add_argument(
        "--plot", help="PNG of estimated vs exact gradients (sweeps add -beta.png, -asymmetry.png)"
    )
    _diode_option(gc)
    _device_option(gc)
    gc.set_defaults(func=cmd_gradcheck)

    t = sub.add_parser(
        "train",
        help="train a circuit on a data set",
        description="Train SPEC on a data set. Each epoch writes a checkpoint, metrics (JSON and "
        "CSV) and figures to --out; --resume continues an interrupted run to the same result.",
        epilog="SPEC is a TOML file or a shorthand KIND:SIZES, KIND one of: "
        + "; ".join(f"{k} = {v}" for k, v in SHORTHANDS.items())
        + ". Example: ff:784-100-10. "
        + EXIT_STATUS,
    )
    t.add_argument("spec", help="network spec: TOML file or shorthand such as ff:64-64-10")
    t.add_argument(
        "--data", default="digits", choices=DATASETS, help="data set (default digits, built in)"
    )
    t.add_argument(
        "--data-dir",
        help="folder with the IDX files for mnist / fashion-mnist (or set CIRCUITEP_MNIST_DIR / "
        "CIRCUITEP_FASHION_MNIST_DIR)",
    )
    t.add_argument(
        "--download", action="store_true", help="download missing IDX files into the cache"
    )
    t.add_argument(
        "--no-verify",
        action="store_true",
        help="use mnist / fashion-mnist IDX files that are not the published ones "
        "(their SHA-256 differs from the one built into circuitep), with a warning; by default "
        "they are refused",
    )
    t.add_argument("--n-train", type=_count, help="use only the first N training samples")
    t.add_argument("--n-test", type=_count, help="use only the first N test samples")
    t.add_argument(
        "--probe-size",
        type=_count,
        default=32,
        help="training samples in the fixed probe batch on which the gradient cosine is measured "
        "every epoch (default 32)",
    )
    t.add_argument(
        "--eval-train-samples",
        type=_count,
        help="measure the per-epoch train accuracy on the first N training samples (default: all)",
    )
    t.add_argument(
        "--fd-elements",
        type=_count,
        help="device engines (ngspice-ota5t, ngspice-va): the gradient cosine's truth, ngspice's "
        "finite differences of the circuit, covers a fixed random sample of N parameter elements "
        "(two free phases of the probe batch each; default: all)",
    )
    t.add_argument(
        "--engine",
        choices=CIRCUIT_ENGINES,
        default="layered",
        help="layered (the numpy solver exploiting the layer structure, default), numpy (the dense "
        "reference solver, any graph), ngspice (the circuit simulator in the loop) or "
        "ngspice-ota5t (ngspice with every transconductor the built-in five-transistor OTA) or "
        "ngspice-va (every resistor coupling a Verilog-A programmable resistor, through OSDI); "
        "these two: literal netlists, aep or vf, the gradient cosine against ngspice's finite "
        "differences",
    )
    _ngspice_options(t, form="folded")
    _device_option(t)
    t.add_argument(
        "--algorithm",
        choices=ALGORITHMS + tuple(ALGORITHM_ALIASES),
        default="aep",
        help="aep (default, exact for non-reciprocal circuits), ep, vf, dyadic, or "
        "exact (the exact gradient, backpropagation; bp is another name for it)",
    )
    t.add_argument("--epochs", type=_count, default=10, help="epochs (default 10)")
    t.add_argument("--batch-size", type=_count, default=32, help="mini-batch size (default 32)")
    t.add_argument(
        "--lr",
        type=_positive,
        default=0.05,
        help="learning rate, dimensionless: parameters are stepped in units of the median leak "
        "(default 0.05)",
    )
    t.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="constant (default), or cosine: the rate falls from --lr to 0 over the epochs, so "
        "that the last ones settle instead of jumping by tenths of a percent of accuracy from "
        "epoch to epoch",
    )
    t.add_argument(
        "--momentum", type=float, default=0.9, help="SGD momentum in [0, 1) (default 0.9)"
    )
    t.add_argument(
        "--beta-rel",
        type=_positive,
        default=1e-2,
        help="nudge beta in units of the median leak (default 0.01)",
    )
    t.add_argument("--one-sided", action="store_true", help="one-sided nudging instead of centred")
    t.add_argument("--cost", choices=("mse", "xent"), default="mse", help="cost (default mse)")
    t.add_argument("--tau", type=_positive, default=0.1, help="cross-entropy temperature in V")
    t.add_argument(
        "--v-on", type=float, default=1.0, help="target voltage of the right class (default 1 V)"
    )
    t.add_argument(
        "--v-off", type=float, default=0.0, help="target voltage of the other classes (default 0 V)"
    )
    st = t.add_argument_group(
        "stored weights",
        "how the circuit stores its weights (issue 16; typical devices: 4-8 bit conductances, "
        "on/off ratio >= 10)",
    )
    st.add_argument(
        "--levels",
        type=_count,
        help="store each weight as one of this many levels (default: analog; 16 = 4 bits)",
    )
    st.add_argument(
        "--levels-range",
        choices=("own", "bounds"),
        default="own",
        help="levels over each coupling's own range (its largest |w| at the start times "
        "--headroom; default) or over --g-bounds / --w-max",
    )
    st.add_argument(
        "--headroom",
        type=_positive,
        default=2.0,
        help="own range = headroom x the coupling's largest |w| at the start (default 2)",
    )
    st.add_argument(
        "--g-bounds",
        type=_pair,
        default=(0.0, 10.0),
        metavar="LO,HI",
        help="resistor conductances kept in [LO, HI] x the median leak (default 0,10)",
    )
    st.add_argument(
        "--w-max",
        type=_positive,
        default=10.0,
        help="transconductances kept within +-W_MAX x the median leak (default 10)",
    )
    st.add_argument(
        "--program-noise",
        type=_nonnegative,
        default=0.0,
        help="rms error of a write, in level steps (default 0)",
    )
    st.add_argument(
        "--no-shadow",
        action="store_true",
        help="the stored levels are the weights (default: high-precision shadow weights in the "
        "controller, written quantised after every update)",
    )
    st.add_argument(
        "--stochastic-rounding",
        action="store_true",
        help="round each write up or down at random, unbiased (use with --no-shadow)",
    )
    add_variation_options(t)
    t.add_argument("--train-leak", action="store_true", help="also learn the leak conductances")
    t.add_argument(
        "--on-failure",
        choices=("skip", "stop"),
        default="skip",
        help="a sample whose operating point does not converge is skipped and counted, or stops "
        "the run (with skip, >= 100 samples in a row without one stop it as diverged: "
        "diverged.json)",
    )
    t.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of initial weights (shorthand specs) and sample order",
    )
    t.add_argument("--out", required=True, type=_run_dir, help=RUN_DIR_HELP)
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    _diode_option(t)
    t.set_defaults(func=cmd_train)

    add_montecarlo_parser(sub)

    d = sub.add_parser(
        "demo",
        help="the main job: train a transconductor circuit on digits with ngspice",
        description=f"Train the embedded default circuit ({DEMO_SPEC}, feedforward transconductors "
        "with diode-clamped hidden nodes) on the 8x8 digits with ngspice in the loop by "
        "AEP, then report test accuracy, gradient agreement and where the outputs are.",
        epilog=EXIT_STATUS,
    )
    d.add_argument(
        "--out", default="demo-run", type=_run_dir, help=RUN_DIR_HELP + " (default demo-run)"
    )
    d.add_argument("--epochs", type=_count, help=f"epochs (default {DEMO_CONFIG.epochs})")
    d.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_demo)

    g = sub.add_parser("golden", help="check (or --write) the golden netlists in netlists/")
    g.add_argument("--write", action="store_true", help="regenerate them instead of checking")
    g.add_argument("--netlists", default=str(DEFAULT_NETLISTS), help="folder of reference specs")
    g.set_defaults(func=cmd_golden)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: the command's, or 2 after printing ``circuitep: error: ...`` for bad
        input, a convergence or ngspice failure, a file error or exhausted memory.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (SpecError, UsageError, ConvergenceError, ValueError, KeyError, OSError) as exc:
        print(f"circuitep: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # NgspiceUnavailable, NgspiceError
        print(f"circuitep: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(
            f"circuitep: error: out of memory ({exc or 'allocation failed'}): the network or data "
            "set is too large for this machine",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
