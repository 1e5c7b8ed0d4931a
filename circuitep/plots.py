"""Figures (PNG, matplotlib's Agg backend): gradient agreement, bias laws, learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402

from circuitep.fileio import atomic_path  # noqa: E402
from circuitep.report import settling_time  # noqa: E402

_COLORS = {
    "ep": "tab:orange",
    "vf": "tab:red",
    "aep": "tab:blue",
    "dyadic": "tab:green",
    "bp": "black",
    "output": "tab:gray",
}


def _save(fig, path, rect=None) -> Path:
    """Lay out (within ``rect`` of the figure, when given), write and close a figure."""
    path = Path(path)
    fig.tight_layout(rect=rect)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def gradient_scatter(report: dict, path) -> Path:
    """Estimated against exact gradient, one panel per estimator, one colour per parameter group.

    Parameters
    ----------
    report : dict
        A :func:`circuitep.gradcheck.gradcheck` result.
    path : str or Path
        The PNG written (atomically).

    Returns
    -------
    Path
        ``path``.
    """
    names = list(report["estimators"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for group, exact in report["exact"].items():
            est = report["estimated"][name][group]
            ax.scatter(exact, est, s=9, label=group)
        lim = max(1e-30, max(abs(v) for g in report["exact"].values() for v in g))
        ax.plot([-lim, lim], [-lim, lim], color="gray", lw=0.8)
        r = report["estimators"][name]
        ax.set_title(f"{name}: cos {r['cosine']:.6f}, rel err {r['rel_error']:.1e}", fontsize=9)
        ax.set_xlabel("exact dC/dθ")
        ax.set_ylabel("estimated dC/dθ")
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle(f"{report['network']} on {report['engine']}, β = {report['beta']:g}", fontsize=10)
    return _save(fig, path)


def beta_sweep_plot(sweep: dict, path) -> Path:
    """Relative error against beta, log-log, one-sided (dashed) and centred (solid).

    Parameters
    ----------
    sweep : dict
        A :func:`circuitep.gradcheck.beta_sweep` result.
    path : str or Path
        The PNG written (atomically).

    Returns
    -------
    Path
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(5, 4))
    betas = sweep["betas"]
    for name, row in sweep.items():
        if name == "betas":
            continue
        c = _COLORS.get(name)
        ax.loglog(
            betas,
            row["one_sided"],
            "--o",
            color=c,
            label=f"{name} one-sided (slope {row['slope_one_sided']:.2f})",
        )
        ax.loglog(
            betas,
            row["centered"],
            "-o",
            color=c,
            label=f"{name} centred (slope {row['slope_centered']:.2f})",
        )
    ax.set_xlabel("β (S)")
    ax.set_ylabel("relative error vs exact gradient")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def asymmetry_plot(sweep: dict, path) -> Path:
    """Relative error against the asymmetry of the transconductor pairs.

    Parameters
    ----------
    sweep : dict
        A :func:`circuitep.gradcheck.asymmetry_sweep` result.
    path : str or Path
        The PNG written (atomically).

    Returns
    -------
    Path
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(5, 4))
    for name in sweep:
        if name in ("alphas", "asymmetry", "stable"):
            continue
        ax.semilogy(
            sweep["asymmetry"],
            np.maximum(sweep[name], 1e-16),
            "-o",
            color=_COLORS.get(name),
            label=name,
        )
    ax.set_xlabel("asymmetry ‖W_bwd − W_fwdᵀ‖ / ‖W_fwd‖")
    ax.set_ylabel("relative error vs exact gradient")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def learning_curves(records: list[dict], path, title: str = "") -> Path:
    """Accuracy (train, test) and gradient cosine with the exact gradient, per epoch.

    Parameters
    ----------
    records : list of dict
        Epoch records with ``epoch``, ``train_accuracy``, ``test_accuracy`` (fractions) and
        ``grad_cosine``.
    path : str or Path
        The PNG written (atomically).
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    epochs = [r["epoch"] for r in records]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6))
    a.plot(epochs, [100 * r["train_accuracy"] for r in records], "-o", label="train")
    a.plot(epochs, [100 * r["test_accuracy"] for r in records], "-o", label="test")
    a.set_xlabel("epoch")
    a.set_ylabel("accuracy (%)")
    a.legend()
    a.grid(alpha=0.3)
    b.semilogy(
        epochs, [max(1.0 - r["grad_cosine"], 1e-16) for r in records], "-o", color="tab:blue"
    )
    b.set_xlabel("epoch")
    b.set_ylabel("1 − cosine(estimated, exact gradient)")
    b.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def experiment_curves(curves: dict, path, title: str = "") -> Path:
    """Mean test accuracy, 1 - gradient cosine and the pairs' asymmetry per epoch.

    One panel each (the asymmetry panel only where some curve has forward/backward pairs), a line
    per (setting, algorithm); the legend goes below the panels.

    Parameters
    ----------
    curves : dict
        ``curves[(setting, algorithm)] = {"accuracy": [...], "cosine": [...], "asymmetry": [...] or
        None}`` and optionally ``"note"``, appended to the line's label; accuracies as fractions.
    path : str or Path
        The PNG written (atomically).
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    drift = any(c.get("asymmetry") is not None for c in curves.values())
    fig, axes = plt.subplots(1, 3 if drift else 2, figsize=(15 if drift else 10, 4.6))
    styles = {"layered": "-", "feedforward": "--"}
    for (setting, algorithm), c in curves.items():
        epochs = np.arange(1, len(c["accuracy"]) + 1)
        kw = dict(
            color=_COLORS.get(algorithm),
            ls=styles.get(setting, "-"),
            marker="o",
            ms=3,
            label=f"{setting} {algorithm}{c.get('note', '')}",
        )
        axes[0].plot(epochs, 100 * np.asarray(c["accuracy"]), **kw)
        axes[1].semilogy(epochs, np.maximum(1 - np.asarray(c["cosine"]), 1e-16), **kw)
        if drift and c.get("asymmetry") is not None:
            axes[2].plot(np.arange(len(c["asymmetry"])), c["asymmetry"], **kw)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].set_ylabel("1 − cosine(estimated, exact gradient)")
    if drift:
        axes[2].set_ylabel("asymmetry ‖W_bwd − W_fwdᵀ‖ / ‖W_fwd‖")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(title, fontsize=10)
    fig.legend(
        *axes[0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8, frameon=False
    )
    return _save(
        fig, path, rect=(0, 0.14, 1, 1)
    )  # the legend below the panels, clear of the curves


def settle_plot(transients: list, final: np.ndarray, tol: float, path, title: str = "") -> Path:
    """A settling transient: node voltages against time, and distance from the operating point.

    Left: the node voltages against time (ns; one line style per engine). Right: the largest
    distance of any node from the operating point ``final`` (V, log scale) with the tolerance and
    each engine's settling time.

    Parameters
    ----------
    transients : list
        Transients with ``t`` (s, shape (n_t,)), ``x`` (V, shape (n_t, n_free)) and ``engine``.
    final : ndarray, shape (n_free,)
        The operating point in V.
    tol : float
        Settling tolerance in V.
    path : str or Path
        The PNG written (atomically).
    title : str
        Figure title.

    Returns
    -------
    Path
        ``path``.
    """
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"ngspice": "-", "numpy": "--"}
    for tr in transients:
        ls = styles.get(tr.engine, ":")
        a.plot(tr.t * 1e9, tr.x, ls=ls, lw=0.8)
        dev = np.abs(tr.x - final[None]).max(axis=1)
        ts = settling_time(tr, final, tol)
        b.semilogy(
            tr.t * 1e9,
            np.maximum(dev, 1e-16),
            ls=ls,
            color="tab:blue" if tr.engine == "ngspice" else "tab:orange",
            label=f"{tr.engine}: settles in {ts * 1e9:.3g} ns",
        )
        if np.isfinite(ts):
            b.axvline(ts * 1e9, ls=ls, color="gray", lw=0.8)
    b.axhline(tol, color="black", lw=0.8, label=f"tolerance {tol:g} V")
    end = max(4 * max(settling_time(tr, final, tol) for tr in transients), 1e-12)
    for ax in (a, b):
        ax.set_xlim(0, min(end, transients[0].t[-1]) * 1e9)
        ax.set_xlabel("time (ns)")
        ax.grid(alpha=0.3)
    a.set_ylabel("node voltage (V)")
    b.set_ylabel("max |v(t) - v_op| (V)")
    b.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


_MC_COLORS = {**_COLORS, "model": "tab:purple", "aep_own": "tab:cyan"}


def montecarlo_figure(doc: dict, path) -> Path:
    """A Monte Carlo run (``circuitep montecarlo --json``'s document) as a figure.

    With a sweep: per estimator the median cosine with each circuit's true gradient against the
    swept value, with a band from the 10th to the 90th percentile of the draws, and (where
    measured) test accuracy, mean ± std. Without: the draws' cosines per estimator as box plots.

    Parameters
    ----------
    doc : dict
        The document (``draws``, ``summary``, optional ``sweep``).
    path : str or Path
        The PNG.

    Returns
    -------
    Path
    """
    sweep = doc.get("sweep")
    accuracy = any(d.get("test_accuracy") is not None for d in doc["draws"]) or any(
        d.get("trained_test_accuracy") is not None for d in doc["draws"]
    )
    fig, axes = plt.subplots(
        1, 2 if accuracy else 1, figsize=(11 if accuracy else 6, 4.2), sharex=bool(sweep)
    )
    axes = np.atleast_1d(axes)
    names = ("aep", "model", "aep_own", "ep", "vf")
    if sweep:
        x = np.array(sweep["values"], dtype=float)
        for name in names:
            rows = [p["summary"].get(name) for p in sweep["points"]]
            if not any(rows):
                continue
            # a point where every draw failed to converge is a gap, not a value
            med, lo, hi = (
                np.array([r[key] if r else np.nan for r in rows], dtype=float)
                for key in ("median_cosine", "q10_cosine", "q90_cosine")
            )
            style = "-" if name in ("aep", "model") else ":"
            axes[0].plot(x, med, style, marker="o", color=_MC_COLORS[name], label=name)
            axes[0].fill_between(x, lo, hi, color=_MC_COLORS[name], alpha=0.15)
        axes[0].set_xlabel(sweep["name"])
        axes[0].set_ylabel("cosine with the circuit's true gradient")
        axes[0].set_title("median over draws, 10-90 % band")
        axes[0].legend(fontsize=8)
        if accuracy:
            for key, label in (
                ("test_accuracy", "trained model on each circuit"),
                ("trained_test_accuracy", "trained under the variation"),
            ):
                rows = [p["summary"].get(key) for p in sweep["points"]]
                if any(rows):
                    m, s = (
                        100 * np.array([r[k] if r else np.nan for r in rows], dtype=float)
                        for k in ("mean", "std")
                    )
                    axes[1].errorbar(x, m, yerr=s, marker="o", capsize=3, label=label)
            axes[1].set_xlabel(sweep["name"])
            axes[1].set_ylabel("test accuracy (%)")
            axes[1].legend(fontsize=8)
    else:
        data = [[d["cosine"][n] for d in doc["draws"] if d["cosine"][n] is not None] for n in names]
        axes[0].boxplot(data, tick_labels=list(names))
        axes[0].set_ylabel("cosine with the circuit's true gradient")
        axes[0].set_title(f"{len(doc['draws'])} draws")
        if accuracy:
            acc = [
                100 * d["test_accuracy"] for d in doc["draws"] if d.get("test_accuracy") is not None
            ]
            axes[1].hist(acc, bins=min(20, max(5, len(acc) // 2)))
            axes[1].set_xlabel("test accuracy (%)")
            axes[1].set_ylabel("draws")
    for ax in axes:
        ax.grid(alpha=0.3)
    what = json_variation(doc["variation"])
    if sweep:
        what = f"{sweep['name']} swept" + ("" if what == "no variation" else f", {what}")
    fig.suptitle(f"{doc.get('model', '')}: Monte Carlo, {what}")
    return _save(fig, path, rect=(0, 0, 1, 0.94))


def json_variation(variation: dict) -> str:
    """A short label of a variation's non-zero fields (for titles).

    Parameters
    ----------
    variation : dict
        :meth:`circuitep.variation.Variation.describe`.

    Returns
    -------
    str
    """
    parts = [f"{k} {v:g}" for k, v in variation.items() if isinstance(v, float) and v]
    parts += [f"{k} {v}" for k, v in variation.get("sigma", {}).items()]
    storage = variation.get("storage")
    if storage and storage.get("levels"):
        parts.append(f"{storage['levels']} levels")
    return ", ".join(parts) or "no variation"
