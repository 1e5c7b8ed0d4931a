"""Dask distributed for Monte Carlo draws, sweeps and data-parallel evaluation (DESIGN.md §7).

A LocalCluster of worker *processes* by default (ngspice keeps global state: one ngspice per
process, one thread per worker), or an existing cluster by its scheduler address. Tasks are pure
functions of their arguments, so a task whose worker dies is simply run again elsewhere: the
scheduler reschedules it (``distributed.scheduler.allowed-failures``, set here to
:data:`ALLOWED_FAILURES` for the clusters this module starts) and no result is lost. A task that
raises stops the map with its error (a deterministic task fails again on a retry).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence

ALLOWED_FAILURES = 5  # a task survives this many worker deaths before the map gives up
CONNECT_TIMEOUT_S = 20  # connecting to a scheduler given by address


class ClusterError(RuntimeError):
    """A cluster that cannot be reached or started, or a task that could not be completed."""


def default_workers() -> int:
    """Worker processes of a LocalCluster by default: the cores this process may use (>= 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # (not on Linux)
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def client_for(scheduler: str | None = None, workers: int | None = None) -> Iterator:
    """A Dask client: of the cluster at ``scheduler``, or of a new LocalCluster of processes.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing scheduler (``tcp://host:8786``); ``None`` starts a LocalCluster,
        closed on exit.
    workers : int, optional
        Worker processes of the LocalCluster (default :func:`default_workers`), one thread each.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ClusterError
        When the scheduler cannot be reached or the cluster not started.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT_S} s: "
                f"{exc}"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    n = default_workers() if workers is None else workers
    if n < 1:
        raise ClusterError(f"workers = {n} must be at least 1")
    # one BLAS thread per worker process: the workers are the parallelism
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        try:
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
        except (OSError, RuntimeError) as exc:
            raise ClusterError(f"cannot start a LocalCluster of {n} workers: {exc}") from None
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()


def map_tasks(
    client,
    function: Callable,
    tasks: Sequence,
    *,
    desc: str = "tasks",
    progress: bool = True,
) -> list:
    """``[function(t) for t in tasks]`` on the cluster, in the order of ``tasks``.

    Parameters
    ----------
    client : distributed.Client
        From :func:`client_for`.
    function : callable
        A pure, picklable function of one task (module level).
    tasks : sequence
        Picklable arguments.
    desc : str
        The progress bar's label.
    progress : bool
        Show a progress bar (tqdm, on stderr) as tasks complete.

    Returns
    -------
    list
        The results, one per task, in order.

    Raises
    ------
    ClusterError
        When a task was lost more often than the scheduler allows (its workers kept dying).
    Exception
        The first error a task raised, as it raised it.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker
    from tqdm.auto import tqdm

    futures = client.map(function, list(tasks), pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    with tqdm(total=len(futures), desc=desc, disable=not progress, unit="task") as bar:
        try:
            for future in as_completed(futures):
                try:
                    results[index[future.key]] = future.result()
                except KilledWorker as exc:
                    raise ClusterError(
                        f"a task was lost with {ALLOWED_FAILURES} workers that died running it "
                        f"({exc}); is a worker running out of memory?"
                    ) from None
                bar.update(1)
        finally:
            for f in futures:
                f.release()
    return results
