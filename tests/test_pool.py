"""The ngspice worker pool and the ngspice engine's memory over many operating points."""

import os
import signal
import threading
import time

import numpy as np
import pytest

from circuitep import builders
from circuitep.builders import from_shorthand
from circuitep.engines.base import ConvergenceError, Phase
from circuitep.engines.layered import LayeredEngine
from circuitep.engines.pool import PoolEngine

pytestmark = pytest.mark.ngspice

# ngspice (reltol 1e-10, vntol 1e-12 V) agrees with the numpy solver to ~1e-11 V on these circuits;
# 1e-6 V is the project's engine-agreement bar.
TOL_V = 1e-6


@pytest.fixture(scope="module")
def pool():
    with PoolEngine(workers=2, timeout=30) as p:
        yield p


def test_pool_matches_numpy_in_every_phase(pool):
    net = from_shorthand("layered:12-8-4", seed=1)
    rng = np.random.default_rng(0)
    u, y = rng.uniform(0, 1, (9, 12)), rng.uniform(0, 1, (9, 4))
    ref_engine = LayeredEngine()
    x0 = ref_engine.solve(net, Phase(), u).x
    for phase in (
        Phase(),
        Phase("nudged", beta=1e-6),
        Phase("nudged", beta=-1e-6, aep=True),
        Phase("dyadic", beta=1e-4),
    ):
        got = pool.solve(net, phase, u, y, x0=x0)
        ref = ref_engine.solve(net, phase, u, y, x0=x0)
        assert got.x.shape == ref.x.shape
        assert np.abs(got.x - ref.x).max() <= TOL_V, (phase.label, got.x, ref.x)
        if ref.adjoint is not None:
            assert np.abs(got.adjoint - ref.adjoint).max() <= TOL_V


def test_pool_survives_a_killed_worker(pool):
    """A worker killed while it works on its chunk is restarted and the chunk sent again."""
    net = from_shorthand("ff:64-32-10", seed=0)
    u = np.random.default_rng(1).uniform(0, 1, (600, 64))
    ref = LayeredEngine().solve(net, Phase(), u).x
    pool.solve(net, Phase(), u[:4])  # circuits loaded in both workers
    restarts = pool.restarts
    victim = pool.pids()[1]
    timer = threading.Timer(0.05, os.kill, (victim, signal.SIGKILL))
    timer.start()
    got = pool.solve(net, Phase(), u)
    timer.join()
    assert pool.restarts == restarts + 1, "the killed worker was not restarted"
    assert victim not in pool.pids()
    assert np.abs(got.x - ref).max() <= TOL_V


def test_pool_survives_a_worker_that_died_between_batches(pool):
    net = from_shorthand("ff:16-8-4", seed=0)
    u = np.random.default_rng(2).uniform(0, 1, (10, 16))
    victim = pool.pids()[0]
    os.kill(victim, signal.SIGKILL)
    got = pool.solve(net, Phase(), u)
    assert np.abs(got.x - LayeredEngine().solve(net, Phase(), u).x).max() <= TOL_V


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_memory_stays_flat_over_10000_operating_points(ngspice_engine_factory):
    """ngspice keeps every plot and command unless told otherwise; the engine destroys plots and
    flushes the history, so 10,000 operating points may grow resident memory by < 50 MB."""
    engine = ngspice_engine_factory("folded")
    net = from_shorthand("ff:16-8-4", seed=0)
    rng = np.random.default_rng(0)
    engine.solve(
        net, Phase(), rng.uniform(0, 1, (500, 16))
    )  # warm-up: circuit loaded, arenas grown
    before = _rss_mb()
    for _ in range(20):
        engine.solve(net, Phase(), rng.uniform(0, 1, (500, 16)))
    growth = _rss_mb() - before
    assert growth < 50, f"resident memory grew by {growth:.1f} MB over 10,000 operating points"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(form="Folded"), r"form = 'Folded' is not one of"),
        (dict(timeout=0), r"timeout = 0 must be a positive number of seconds"),
        (dict(tolerances=None), r"tolerances must be a Tolerances, got NoneType"),
    ],
)
def test_pool_options_are_checked_before_workers_start(kwargs, message):
    """A bad form used to kill every worker at spawn, then read 'its worker crashed or hung'."""
    with pytest.raises(ValueError, match=message):
        PoolEngine(**kwargs)


def test_pool_gives_up_on_a_worker_that_stopped_reading():
    """A SIGSTOPped worker cannot read a job larger than the pipe's buffer (here 627 kB): the
    send blocked for over 60 s with timeout=10. The timeout now bounds sending too: the worker is
    killed and restarted, and its samples are solved again."""
    net = from_shorthand("ff:784-100-10", seed=0)
    u = np.random.default_rng(4).uniform(0, 1, (200, 784))
    with PoolEngine(workers=2, timeout=3) as pool:
        pool.solve(net, Phase(), u[:2])  # workers started, circuits loaded
        victim = pool.pids()[1]
        os.kill(victim, signal.SIGSTOP)
        try:
            start = time.monotonic()
            got = pool.solve(net, Phase(), u)
            took = time.monotonic() - start
        finally:
            if victim in pool.pids():  # not given up on: never leave a stopped process behind
                os.kill(victim, signal.SIGKILL)
        assert pool.restarts == 1 and victim not in pool.pids()
    assert took < 20, f"solve took {took:.1f} s with timeout=3"
    assert np.abs(got.x - LayeredEngine().solve(net, Phase(), u).x).max() <= TOL_V


def test_pool_names_the_samples_that_did_not_converge():
    """Rows a worker's engine names come back as rows of the whole batch (training drops them)."""
    g = 1e-4
    net = builders.layered([2, 1, 2], forward="vccs", backward="vccs", clamp=None, seed=0)
    net = net.with_params({"fwd2": np.array([[2 * g], [0.0]]), "bwd2": np.array([[g / 2, 0.0]])})
    u = np.array([[0.0, 0.0], [0.3, 0.1], [0.0, 0.0], [0.0, 0.0], [1.0, 0.5], [0.0, 0.0]])
    with PoolEngine(workers=2, timeout=30) as pool, pytest.raises(ConvergenceError) as caught:
        pool.solve(net, Phase(), u)
    assert caught.value.samples == (1, 4)
