"""``circuitep montecarlo`` on a real Dask LocalCluster (DESIGN.md §7, issue 16 items 4 and 5):
the document it writes, a worker killed mid-run losing no draw, an existing scheduler, bad input,
and a trained run directory as its subject."""

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from circuitep import cluster as cluster_module
from circuitep import montecarlo
from circuitep.cli import default_beta, load_network, main
from circuitep.cluster import ClusterError, client_for, map_tasks
from circuitep.gradcheck import probe_batch
from circuitep.variation import Variation

ROOT = Path(__file__).resolve().parents[1]
LAYERED = str(ROOT / "netlists" / "layered.toml")
RUN_DIR = ROOT / "experiments" / "variation" / "digits-layered"


def tasks(n, sigma=0.2, samples=8):
    model = load_network(LAYERED)
    u, y = probe_batch(model, samples, 0)
    return [
        montecarlo.DrawTask(
            model=model,
            variation=Variation(gain=sigma),
            seed=s,
            inputs=u,
            targets=y,
            beta=default_beta(model),
        )
        for s in range(n)
    ]


def test_the_json_csv_and_figure(tmp_path):
    out = tmp_path / "mc.json"
    code = main(
        [
            "montecarlo",
            LAYERED,
            "--sigma-gain",
            "0.2",
            "--draws",
            "3",
            "--workers",
            "2",
            "--no-progress",
            "--json",
            str(out),
            "--csv",
            str(tmp_path / "mc.csv"),
            "--figure",
            str(tmp_path / "mc.png"),
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    assert [d["seed"] for d in doc["draws"]] == [0, 1, 2]
    for d in doc["draws"]:
        assert set(d["cosine"]) == set(montecarlo.COSINES)
        assert "test_accuracy" in d  # None: a spec has no test set
        # the circuit's own correction (reversed transconductors of the drawn circuit) makes AEP
        # exact up to its beta^2 bias, which is ~1e-7 in the cosine at the default beta
        assert d["cosine"]["aep_own"] >= 0.99999
        assert d["cosine"]["dyadic"] >= 0.99999
    for name in ("aep", "model"):
        s = doc["summary"][name]
        cosines = [d["cosine"][name] for d in doc["draws"]]
        assert s["median_cosine"] == pytest.approx(float(np.median(cosines)), abs=1e-15)
        assert s["worst_cosine"] == min(cosines)
    assert doc["variation"]["gain"] == 0.2
    rows = list(csv.DictReader((tmp_path / "mc.csv").read_text().splitlines()))
    assert len(rows) == 3 and float(rows[1]["cosine_aep"]) == doc["draws"][1]["cosine"]["aep"]
    assert (tmp_path / "mc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_worker_killed_mid_run_loses_no_draw():
    work = tasks(8)
    with client_for(workers=2) as client:
        undisturbed = montecarlo.run(work, client, progress=False)
        pids = client.run(os.getpid)  # worker address -> process id
        killed = []

        def kill_a_busy_worker():
            # wait until a worker is computing a draw, then kill its process (SIGKILL: no
            # goodbye to the scheduler); its nanny starts a new one
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    time.sleep(0.2)
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(pids[busy[0]])
                time.sleep(0.02)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        disturbed = montecarlo.run(work, client, progress=False)
        killer.join()
        assert killed, "no worker was busy: nothing was killed"
        with pytest.raises(ProcessLookupError):
            os.kill(killed[0], 0)  # that worker is gone
        assert killed[0] not in client.run(os.getpid).values()
    assert [d["seed"] for d in disturbed] == list(range(8))
    for a, b in zip(undisturbed, disturbed, strict=True):
        # the same pure computation on a fresh worker process: the same numbers
        assert a["cosine"] == pytest.approx(b["cosine"], rel=1e-12, abs=0)


def _die(x):
    os._exit(3)


def test_a_task_that_always_kills_its_worker_is_a_clear_error():
    with client_for(workers=1) as client:
        with pytest.raises(ClusterError, match="workers that died"):
            map_tasks(client, _die, [1], progress=False)


def test_an_existing_scheduler(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        out = tmp_path / "mc.json"
        code = main(
            [
                "montecarlo",
                LAYERED,
                "--sigma-gain",
                "0.1",
                "--draws",
                "2",
                "--scheduler",
                cluster.scheduler_address,
                "--no-progress",
                "--json",
                str(out),
            ]
        )
        assert code == 0
        assert len(json.loads(out.read_text())["draws"]) == 2
        assert cluster.scheduler.workers  # the CLI left the user's cluster running


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sweep", "foo=1,2"], "unknown sweep 'foo'"),
        (["--sweep", "bits=2.5"], "not a positive whole number"),
        (["--sigma", "nonsense=0.1"], "nonsense"),
        (["--sigma-gain", "-0.1"], "-0.1"),
        (["--draws", "0"], "draws"),
    ],
)
def test_bad_options_are_named(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        code = main(["montecarlo", LAYERED, "--workers", "1", *flags])
        raise SystemExit(code)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_an_unreachable_scheduler_is_named(capsys, monkeypatch):
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2)
    t = time.monotonic()
    code = main(["montecarlo", LAYERED, "--draws", "1", "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'" in capsys.readouterr().err
    assert time.monotonic() - t < 30


def test_a_trained_run_directory(tmp_path):
    """Without a variation the drawn circuit is the trained model itself: its test accuracy is the
    one the run recorded, the model's gradient is the circuit's (cosine 1), and AEP with the
    model's correction is AEP with the circuit's own."""
    out = tmp_path / "mc.json"
    code = main(
        ["montecarlo", str(RUN_DIR), "--draws", "1", "--workers", "1", "--no-progress"]
        + ["--json", str(out)]
    )
    assert code == 0
    draw = json.loads(out.read_text())["draws"][0]
    recorded = json.loads((RUN_DIR / "metrics.json").read_text())[-1]["test_accuracy"]
    assert draw["test_accuracy"] == pytest.approx(recorded, abs=1e-12)
    assert draw["cosine"]["model"] == pytest.approx(1.0, abs=1e-12)
    assert draw["cosine"]["aep"] == pytest.approx(draw["cosine"]["aep_own"], abs=1e-12)


def test_ngspice_workers_agree_with_the_numpy_engines(tmp_path):
    """One ngspice per worker: the same draws simulated in ngspice give the numpy engines'
    cosines: their states agree to ~1e-12 V, so the cosines do to ~1e-12 (measured 4e-14 over 32
    samples; 1e-9 leaves room for ngspice's RELTOL on other platforms)."""
    cosines = {}
    for engine in ("reference", "ngspice"):
        out = tmp_path / f"{engine}.json"
        code = main(
            ["montecarlo", LAYERED, "--sigma-gain", "0.2", "--draws", "2", "--samples", "4"]
            + ["--workers", "2", "--engine", engine, "--no-progress", "--json", str(out)]
        )
        assert code == 0
        cosines[engine] = [d["cosine"] for d in json.loads(out.read_text())["draws"]]
    for a, b in zip(cosines["reference"], cosines["ngspice"], strict=True):
        assert a == pytest.approx(b, abs=1e-9)


def test_a_draw_without_an_operating_point_is_recorded_not_fatal(tmp_path, capsys):
    """The trained digits circuit stored at 4 levels: the layered engine finds no nudged operating
    point for probe sample 16 (Newton and pseudo-transient both fail; ngspice finds one where the
    Jacobian is near singular: aep_own's cosine there is -0.14). That draw's gradients are None
    with the reason, its test accuracy is still measured, and the run goes on."""
    out = tmp_path / "mc.json"
    code = main(
        ["montecarlo", str(RUN_DIR), "--levels", "4", "--draws", "1", "--workers", "1"]
        + ["--no-progress", "--json", str(out), "--csv", str(tmp_path / "mc.csv")]
        + ["--figure", str(tmp_path / "mc.png")]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    (d,) = doc["draws"]
    assert "converge" in d["error"]
    assert set(d["cosine"].values()) == {None}
    assert 0.05 < d["test_accuracy"] < 1
    assert doc["summary"]["failed_draws"] == 1
    assert "gradients were not measured" in capsys.readouterr().out
    row = next(csv.DictReader((tmp_path / "mc.csv").read_text().splitlines()))
    assert row["cosine_aep"] == "" and "converge" in row["error"]
