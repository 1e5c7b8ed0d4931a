"""Benchmarks, measured side by side in one run (the machines are shared and noisy: read ratios).

    python experiments/bench/run.py [--quick] --json FILE

1. ngspice per sample: the fast path (the default: folded netlists, up to 100 samples in one DC
   sweep of an index source driving tables), the op path (folded netlist loaded once, sources
   altered, one op per sample) and the naive path (a literal netlist rebuilt and loaded for every
   sample, as existing tools do), for the free phase and for one AEP training sample (free +
   centred nudged phases), at 64-32-10 and 784-100-10; the node voltages of all paths are compared.
2. numpy: one AEP training epoch against one backpropagation epoch (the exact adjoint gradient,
   same solver, same data, same batches) and against a plain numpy MLP's backpropagation epoch
   (same architecture, batch, data and hard sigmoid; no circuitep code) at 784-500-10, on MNIST
   when CIRCUITEP_MNIST_DIR is set (else on random images, said in the output); the full-epoch
   time of AEP on 60,000 samples.
3. numpy (layered engine) against the ngspice fast path on the same circuit: time ratio and the
   largest voltage difference.
4. ngspice memory: resident memory growth over 10,000 consecutive operating points, fast and op
   paths.
5. ngspice's matrix solvers: KLU against Sparse 1.3 on the literal 784-500-10 netlist (784-100-10
   with --quick), per alter + op through the shared library and for ``ngspice -b`` of the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from circuitep.builders import from_shorthand
from circuitep.compiler import compile_network
from circuitep.datasets import Dataset, load_dataset
from circuitep.engines.base import Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.ngspice_engine import NgspiceEngine, NgspiceError, shared_session
from circuitep.estimators import estimate
from circuitep.train import TrainConfig, Trainer, init_state


def naive_free(net, inputs: np.ndarray) -> tuple[np.ndarray, float]:
    """Free states by rebuilding and loading a literal netlist per sample; returns (x, s/sample)."""
    session = shared_session()
    x = np.empty((len(inputs), net.n_free))
    start = time.perf_counter()
    for b, u in enumerate(inputs):
        token = object()
        session.add_circuit(token, compile_network(net, "free", "literal", inputs=u).text)
        errors = session.run("op", NgspiceEngine.timeout)  # time-limited, like the engine's
        if errors is None or errors:
            why = "timed out" if errors is None else " | ".join(errors)
            raise NgspiceError(f"naive op of sample {b}: {why}")
        x[b] = [session.vector(n)[0] for n in net.free_nodes]
        session.remove(token)
        session.command("destroy all")
    return x, (time.perf_counter() - start) / len(inputs)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_ngspice(spec: str, n_fast: int, n_naive: int, beta: float) -> dict:
    net = from_shorthand(spec, seed=0)
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (n_fast, net.n_inputs))
    y = np.eye(net.n_outputs)[rng.integers(0, net.n_outputs, n_fast)]
    paths = {}
    for path, sweep in (("fast", 100), ("op", 1)):
        with NgspiceEngine(form="folded", sweep=sweep) as engine:  # its circuits go when it is done
            engine.solve(net, Phase(), u[:2])  # load the circuits once, as training does
            engine.solve(
                net,
                Phase("nudged", beta=beta, aep=True),
                u[:2],
                y[:2],
                x0=np.zeros((2, net.n_free)),
            )
            free, t_free = timed(engine.solve, net, Phase(), u)
            _, t_aep = timed(estimate, "aep", net, engine, u, y, beta=beta, x0=free.x)
        paths[path] = (free, t_free / n_fast, (t_free + t_aep) / n_fast)
    fast, t_fast_free, t_fast_train = paths["fast"]
    op, t_op_free, t_op_train = paths["op"]
    naive_x, t_naive_free = naive_free(net, u[:n_naive])
    layered = LayeredEngine()
    ref, t_layered = timed(layered.solve, net, Phase(), u)
    return {
        "spec": spec,
        "samples_fast": n_fast,
        "samples_naive": n_naive,
        "fast_free_s_per_sample": t_fast_free,
        "fast_aep_train_s_per_sample": t_fast_train,
        "op_free_s_per_sample": t_op_free,
        "op_aep_train_s_per_sample": t_op_train,
        "fast_vs_op_free_ratio": t_op_free / t_fast_free,
        "fast_vs_op_train_ratio": t_op_train / t_fast_train,
        "max_abs_diff_fast_vs_op_v": float(np.abs(fast.x - op.x).max()),
        "naive_free_s_per_sample": t_naive_free,
        # a naive AEP training sample rebuilds three netlists (free, +beta, -beta)
        "naive_aep_train_s_per_sample": 3 * t_naive_free,
        "free_ratio": t_naive_free / t_fast_free,
        "train_ratio": 3 * t_naive_free / t_fast_train,
        "max_abs_diff_fast_vs_naive_v": float(np.abs(fast.x[:n_naive] - naive_x).max()),
        "layered_free_s_per_sample": t_layered / n_fast,
        "ngspice_vs_layered_ratio": t_fast_free / (t_layered / n_fast),
        "max_abs_diff_ngspice_vs_layered_v": float(np.abs(fast.x - ref.x).max()),
    }


def bench_solvers(spec: str, rounds: int) -> dict:
    """KLU against Sparse 1.3 on one literal netlist, side by side.

    Two ways, each with both solvers in one run: the engine's path (the netlist loaded once, per
    sample the input sources altered and one ``op``; ``rounds`` samples, the solvers interleaved)
    and the standalone file in ``ngspice -b`` (parse, set up and one ``.op``, as a designer runs
    it). Node voltages of the two solvers are compared.
    """
    session = shared_session()
    if not session.klu:
        return {"spec": spec, "skipped": f"ngspice-{session.version} has no KLU"}
    net = from_shorthand(spec, seed=0)
    u = np.random.default_rng(1).uniform(0, 1, (rounds + 1, net.n_inputs))
    engines = {s: NgspiceEngine(form="literal", sweep=1, solver=s) for s in ("klu", "sparse")}
    out = {"spec": spec, "ngspice": session.version, "rounds": rounds}
    x = {}
    for solver, engine in engines.items():  # compile, load and the first operating point
        op, out[f"{solver}_first_op_s"] = timed(engine.solve, net, Phase(), u[:1])
        assert op.tolerances["solver"] == solver
    for b in range(1, rounds + 1):
        for solver, engine in engines.items():
            op, seconds = timed(engine.solve, net, Phase(), u[b : b + 1])
            out.setdefault(f"{solver}_alter_op_s", []).append(seconds)
            x.setdefault(solver, []).append(op.x)
    for engine in engines.values():
        engine.close()
    out["elements"] = len(compile_network(net, "free", "literal").netlist.elements())
    out["max_abs_diff_klu_vs_sparse_v"] = float(
        np.abs(np.concatenate(x["klu"]) - np.concatenate(x["sparse"])).max()
    )
    out["klu_vs_sparse_alter_op"] = min(out["klu_alter_op_s"]) / min(out["sparse_alter_op_s"])
    with tempfile.TemporaryDirectory(prefix="circuitep-bench-") as tmp:
        for solver in ("klu", "sparse"):
            path = Path(tmp) / f"{solver}.cir"
            text = compile_network(net, "free", "literal", inputs=u[0], solver=solver).spice()
            path.write_text(text)
            start = time.perf_counter()
            done = subprocess.run(
                ["ngspice", "-b", path.name], cwd=tmp, capture_output=True, text=True, timeout=900
            )
            out[f"{solver}_batch_op_s"] = time.perf_counter() - start
            used = "KLU" if solver == "klu" else "SPARSE"
            if done.returncode or f"Using {used}" not in done.stdout + done.stderr:
                raise RuntimeError(f"ngspice -b {solver}: {(done.stderr or done.stdout)[-500:]}")
    out["klu_vs_sparse_batch_op"] = out["klu_batch_op_s"] / out["sparse_batch_op_s"]
    return out


def mnist_or_random(n_train: int) -> tuple[Dataset, bool]:
    if os.environ.get("CIRCUITEP_MNIST_DIR"):
        return load_dataset("mnist", n_train=n_train, n_test=1000), True
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n_train + 1000, 784)) * (rng.uniform(0, 1, (n_train + 1000, 784)) < 0.2)
    labels = rng.integers(0, 10, n_train + 1000)
    return Dataset(
        "random-784", x[:n_train], labels[:n_train], x[n_train:], labels[n_train:], 10
    ), False


def mlp_epoch(
    x: np.ndarray,
    labels: np.ndarray,
    sizes: tuple[int, ...],
    batch: int,
    lr: float,
    dtype,
    seed: int = 0,
    init: float = 0.4,
) -> list[np.ndarray]:
    """One epoch of plain numpy backpropagation; returns the trained weights (bias last row).

    The circuits' network without the circuit: layers ``sizes`` (784-500-10), hard sigmoid
    ``clip(z, 0, 1)`` after every layer (the diode clamps), squared error against one-hot targets,
    minibatch SGD with momentum 0.9, Glorot-uniform weights scaled by ``init`` (0.4 and lr 0.1:
    96.0 % on MNIST after one epoch; 1.0 leaves most units clipped, 77 %). Written for speed: one
    matrix product per layer and direction, in-place elementwise work.
    """
    rng = np.random.default_rng(seed)
    ws = [
        (rng.uniform(-1, 1, (a + 1, b)) * (init * np.sqrt(6 / (a + b)))).astype(dtype)
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    vs = [np.zeros_like(w) for w in ws]
    x = np.ascontiguousarray(x, dtype=dtype)
    eye = np.eye(sizes[-1], dtype=dtype)
    step = dtype(lr / batch)
    for start in range(0, len(x) - batch + 1, batch):
        acts = [x[start : start + batch]]
        for w in ws:
            z = acts[-1] @ w[:-1]
            z += w[-1]
            np.clip(z, 0, 1, out=z)
            acts.append(z)
        delta = acts[-1] - eye[labels[start : start + batch]]
        for k in range(len(ws) - 1, -1, -1):
            a = acts[k + 1]
            delta *= (a > 0) & (a < 1)  # the hard sigmoid's slope
            grad_in = delta @ ws[k][:-1].T if k else None
            vs[k] *= 0.9
            vs[k][:-1] += acts[k].T @ delta
            vs[k][-1] += delta.sum(axis=0)
            ws[k] -= step * vs[k]
            delta = grad_in
    return ws


def mlp_accuracy(ws: list[np.ndarray], x: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of :func:`mlp_epoch`'s network."""
    a = x.astype(ws[0].dtype)
    for w in ws:
        a = np.clip(a @ w[:-1] + w[-1], 0, 1)
    return float((a.argmax(axis=1) == labels).mean())


def bench_epochs(n_train: int) -> dict:
    data, real = mnist_or_random(n_train)
    net = from_shorthand("ff:784-500-10", seed=0)
    out = {
        "data": data.name if real else "random images (set CIRCUITEP_MNIST_DIR for MNIST)",
        "samples": n_train,
        "blas": [
            {k: i.get(k) for k in ("internal_api", "version", "num_threads")}
            for i in threadpool_info()
        ],
    }
    for _ in range(2):  # interleaved twice: load on the machine hits all alike
        for algorithm in ("mlp", "mlp32", "bp", "aep"):
            if algorithm.startswith("mlp"):
                dtype = np.float32 if algorithm == "mlp32" else np.float64
                args = (data.x_train, data.y_train, (784, 500, 10), 100, 0.1, dtype)
                ws, seconds = timed(mlp_epoch, *args)
                out[f"{algorithm}_test_accuracy"] = mlp_accuracy(ws, data.x_test, data.y_test)
            else:
                config = TrainConfig(algorithm=algorithm, epochs=1, batch_size=100, lr=0.05)
                trainer = Trainer(net, data, LayeredEngine(), config)
                _, seconds = timed(trainer.run_epoch, init_state(net, config))
            out.setdefault(f"{algorithm}_epoch_s", []).append(seconds)
    best = {a: min(out[f"{a}_epoch_s"]) for a in ("mlp", "mlp32", "bp", "aep")}
    out["aep_vs_bp_epoch"] = best["aep"] / best["bp"]
    out["aep_vs_mlp_bp_epoch"] = best["aep"] / best["mlp"]
    out["exact_vs_mlp_bp_epoch"] = best["bp"] / best["mlp"]
    out["mlp32_vs_mlp_bp_epoch"] = best["mlp32"] / best["mlp"]
    out["aep_epoch_60000_s"] = best["aep"] * 60000 / n_train
    out["extrapolated"] = n_train != 60000
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_memory(n_ops: int) -> dict:
    out = {"operating_points": n_ops}
    for path, sweep in (("fast", 100), ("op", 1)):
        net = from_shorthand("ff:16-8-4", seed=0)
        with NgspiceEngine(form="folded", sweep=sweep) as engine:
            rng = np.random.default_rng(0)
            engine.solve(net, Phase(), rng.uniform(0, 1, (500, net.n_inputs)))  # warm up
            before = rss_mb()
            for _ in range(n_ops // 500):
                engine.solve(net, Phase(), rng.uniform(0, 1, (500, net.n_inputs)))
            out[f"{path}_rss_growth_mb"] = rss_mb() - before
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="fewer samples (a few minutes); extrapolates the epoch"
    )
    p.add_argument("--json", required=True, help="write the figures here")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads for the epoch comparison (default 1: numpy's elementwise work is "
        "single-threaded, so one thread compares like with like); recorded in the JSON",
    )
    args = p.parse_args(argv)
    if args.blas_threads < 1:
        p.error("--blas-threads must be at least 1")
    if not Path(args.json).resolve().parent.is_dir():  # found out now, not after the benchmark
        p.error(f"--json {args.json}: its directory does not exist")
    beta = 1e-6
    results = {"quick": args.quick, "python": sys.version.split()[0]}
    print("ngspice fast vs naive ...", flush=True)
    results["ngspice_small"] = bench_ngspice("ff:64-32-10", 200, 20, beta)
    results["ngspice_large"] = bench_ngspice(
        "ff:784-100-10", 50 if args.quick else 200, 1 if args.quick else 3, beta
    )
    print("ngspice KLU vs Sparse ...", flush=True)
    results["ngspice_solvers"] = bench_solvers(
        "ff:784-100-10" if args.quick else "ff:784-500-10", 2
    )
    print("numpy AEP vs BP epoch ...", flush=True)
    with threadpool_limits(args.blas_threads):
        results["epochs"] = bench_epochs(3000 if args.quick else 60000)
    print("ngspice memory ...", flush=True)
    results["memory"] = bench_memory(10000)
    large = results["ngspice_large"]
    results |= {
        "ngspice_fast_vs_naive": large["train_ratio"],
        "aep_vs_bp_epoch": results["epochs"]["aep_vs_bp_epoch"],
        "aep_vs_mlp_bp_epoch": results["epochs"]["aep_vs_mlp_bp_epoch"],
        "exact_vs_mlp_bp_epoch": results["epochs"]["exact_vs_mlp_bp_epoch"],
        "mnist_aep_epoch_s": results["epochs"]["aep_epoch_60000_s"],
        "ngspice_fast_vs_op": large["fast_vs_op_train_ratio"],
        "max_abs_diff_v": max(
            r[k]
            for r in (large, results["ngspice_small"])
            for k in (
                "max_abs_diff_fast_vs_naive_v",
                "max_abs_diff_fast_vs_op_v",
                "max_abs_diff_ngspice_vs_layered_v",
            )
        ),
    }
    for key in ("ngspice_small", "ngspice_large"):
        r = results[key]
        print(
            f"{r['spec']}: ngspice fast {1e3 * r['fast_free_s_per_sample']:.2f} ms/sample free, "
            f"{1e3 * r['fast_aep_train_s_per_sample']:.2f} ms per AEP training sample (op path: x"
            f"{r['fast_vs_op_free_ratio']:.1f} free, x{r['fast_vs_op_train_ratio']:.1f} training); "
            "naive "
            f"{1e3 * r['naive_free_s_per_sample']:.1f} ms/sample free -> x{r['free_ratio']:.0f} "
            "(free), "
            f"x{r['train_ratio']:.0f} (training); layered numpy is "
            f"x{r['ngspice_vs_layered_ratio']:.1f} faster "
            f"than ngspice; max |dV| {max(r[k] for k in r if k.startswith('max_abs_diff')):.1e} V"
        )
    r = results["ngspice_solvers"]
    if "skipped" in r:
        print(f"KLU vs Sparse: skipped ({r['skipped']})")
    else:
        print(
            f"{r['spec']} literal ({r['elements']} elements), ngspice-{r['ngspice']}: KLU / Sparse "
            f"time per alter + op {r['klu_vs_sparse_alter_op']:.3f} "
            f"({min(r['klu_alter_op_s']):.2f} s / {min(r['sparse_alter_op_s']):.2f} s), "
            f"ngspice -b of the file {r['klu_vs_sparse_batch_op']:.3f} "
            f"({r['klu_batch_op_s']:.1f} s / {r['sparse_batch_op_s']:.1f} s); "
            f"max |dV| {r['max_abs_diff_klu_vs_sparse_v']:.1e} V"
        )
        results["klu_vs_sparse_alter_op"] = r["klu_vs_sparse_alter_op"]
    e = results["epochs"]
    threads = ", ".join(f"{b['internal_api']} {b['num_threads']}" for b in e["blas"])
    print(
        f"784-500-10 on {e['data']} ({e['samples']} samples, BLAS threads: {threads}): "
        f"AEP epoch / plain numpy MLP backprop epoch = {e['aep_vs_mlp_bp_epoch']:.1f}, exact "
        f"gradient epoch / MLP = {e['exact_vs_mlp_bp_epoch']:.1f}, float32 MLP / float64 MLP = "
        f"{e['mlp32_vs_mlp_bp_epoch']:.2f} (MLP test accuracy after the epoch "
        f"{100 * e['mlp_test_accuracy']:.2f} %)"
    )
    print(
        f"784-500-10 on {e['data']} ({e['samples']} samples): AEP epoch / BP epoch = "
        f"{e['aep_vs_bp_epoch']:.2f}; "
        "AEP epoch of 60,000 samples "
        f"{'(extrapolated) ' if e['extrapolated'] else ''}{e['aep_epoch_60000_s']:.0f} s"
    )
    m = results["memory"]
    print(
        f"memory over {m['operating_points']} ngspice operating points: "
        f"{m['fast_rss_growth_mb']:.1f} MB growth "
        f"(fast path), {m['op_rss_growth_mb']:.1f} MB (op path)"
    )
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
