"""ngspice in a pool of worker processes, one ngspice each (ngspice is one instance per process).

A batch is split into one chunk per worker. A worker that crashes or hangs (in its reply, or so
that it no longer reads what is sent to it) is killed and restarted, and its chunk is sent again,
so the batch completes with the same results; after ``retries`` failures of the same chunk the
pool raises :class:`PoolError` naming the samples.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from circuitep.checks import is_integer
from circuitep.compiler import FORMS, Tolerances
from circuitep.engines.base import ConvergenceError, OperatingPoint, Phase, check_batch
from circuitep.engines.ngspice_engine import NgspiceEngine, check_timeout
from circuitep.spec import Network


class PoolError(RuntimeError):
    """A chunk of samples failed in every worker that tried it."""


def _serve(conn, form: str, tolerances: Tolerances, ngspice_timeout: float) -> None:
    """Worker loop: solve what arrives and send back the result.

    ``("ok", OperatingPoint)``, ``("convergence", (message, rows or None))`` or ``("error",
    message)``.
    """
    engine = NgspiceEngine(form=form, tolerances=tolerances, timeout=ngspice_timeout)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        net, phase, inputs, targets, x0 = job
        try:
            conn.send(("ok", engine.solve(net, phase, inputs, targets, x0)))
        except ConvergenceError as exc:
            conn.send(("convergence", (str(exc), exc.samples)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent with its type
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass(eq=False)
class _Worker:
    process: mp.Process
    conn: object


class _Sender(threading.Thread):
    """Sends one job down a pipe, so that a worker that stopped reading can be given up on.

    A worker whose pipe is full blocks ``conn.send`` until it reads, and only killing it ends that.
    """

    def __init__(self, conn, job):
        super().__init__(daemon=True)
        self.conn, self.job, self.error = conn, job, None

    def run(self):
        try:
            self.conn.send(self.job)
        except (BrokenPipeError, OSError) as exc:
            self.error = exc


@dataclass(eq=False)
class PoolEngine:
    """ngspice engine over ``workers`` processes.

    Holds state: the worker processes (``close()`` or use as a context manager). ``timeout`` (s) is
    how long a chunk may take, sent and answered, before its worker is considered hung;
    ``ngspice_timeout`` (s) is each worker's limit on one ngspice analysis
    (:class:`~circuitep.engines.ngspice_engine.NgspiceEngine`), past which those samples fail as not
    converged.
    """

    workers: int = 2
    form: str = "folded"
    tolerances: Tolerances = field(default_factory=Tolerances)
    timeout: float = 120.0
    retries: int = 2
    ngspice_timeout: float = NgspiceEngine.timeout
    name: str = "ngspice-pool"

    def __post_init__(self):
        if not is_integer(self.workers) or self.workers < 1:
            raise ValueError(f"workers = {self.workers!r} must be a positive integer")
        if self.form not in FORMS:  # checked here: a worker would only die of it at spawn
            raise ValueError(f"form = {self.form!r} is not one of {FORMS}")
        if not isinstance(self.tolerances, Tolerances):
            raise ValueError(
                f"tolerances must be a Tolerances, got {type(self.tolerances).__name__}"
            )
        check_timeout(self.timeout)
        check_timeout(self.ngspice_timeout)
        self._ctx = mp.get_context("spawn")
        self._pool = [self._start() for _ in range(self.workers)]
        self.restarts = 0

    @property
    def tolerance_dict(self) -> dict:
        """What :attr:`OperatingPoint.tolerances` reports.

        The workers' (:class:`NgspiceEngine`) and ``workers``.
        """
        return self.tolerances.as_dict() | {
            "form": self.form,
            "sweep": NgspiceEngine.sweep,
            "workers": self.workers,
        }

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_serve,
            daemon=True,
            args=(child, self.form, self.tolerances, self.ngspice_timeout),
        )
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def pids(self) -> list[int]:
        """Process ids of the workers, in slot order (they change when a worker is restarted)."""
        return [w.process.pid for w in self._pool]

    def _restart(self, k: int) -> None:
        w = self._pool[k]
        if w.process.is_alive():
            w.process.kill()
        w.process.join(5)
        w.conn.close()
        self._pool[k] = self._start()
        self.restarts += 1

    def solve(
        self, net: Network, phase: Phase, inputs, targets=None, x0=None, x_init=None
    ) -> OperatingPoint:
        """Solve a batch across the workers: contiguous chunks, one per worker.

        Same arrays and result as :meth:`NgspiceEngine.solve`; a chunk whose worker dies, hangs or
        stops reading within ``timeout`` s is solved again by a restarted worker, up to ``retries``
        times.

        Parameters
        ----------
        net : Network
            The circuit.
        phase : Phase
            Free, nudged (optionally AEP-corrected) or dyadic.
        inputs : array_like, shape (batch, n_inputs)
            Primary input voltages in V.
        targets : array_like, shape (batch, n_outputs), optional
            Targets for nudged and dyadic phases.
        x0 : array_like, shape (batch, n_free), optional
            The free state in V, for the AEP correction and the dyadic phase.
        x_init : array_like, optional
            Accepted for interface compatibility and not used.

        Returns
        -------
        OperatingPoint
            ``x`` of shape ``(batch, n_free)`` in V, rows in the order of ``inputs``.

        Raises
        ------
        ConvergenceError
            When samples of any chunk do not converge; ``samples`` gives their rows in the whole
            batch where every failing worker named them.
        PoolError
            When a worker fails otherwise, or a chunk failed more than ``retries`` times.
        """
        u_primary = np.asarray(inputs, dtype=float)
        _, y, x0 = check_batch(net, phase, u_primary, targets, x0)
        chunks = [c for c in np.array_split(np.arange(len(u_primary)), self.workers) if c.size]
        results: dict[int, OperatingPoint] = {}
        attempts = {k: 0 for k in range(len(chunks))}
        pending = list(range(len(chunks)))
        while pending:
            senders = {}
            for slot, k in enumerate(pending[: self.workers]):
                idx = chunks[k]
                job = (
                    net,
                    phase,
                    u_primary[idx],
                    None if y is None else y[idx],
                    None if x0 is None else x0[idx],
                )
                senders[slot] = _Sender(self._pool[slot].conn, job)
                senders[slot].start()
            deadline = time.monotonic() + self.timeout  # for sending and answering each chunk
            failure, failed = None, []  # raised once every reply is read: no stale replies stay
            for slot, k in enumerate(pending[: self.workers]):
                sender, conn = senders[slot], self._pool[slot].conn
                sender.join(max(0.0, deadline - time.monotonic()))
                if sender.is_alive() or sender.error is not None:
                    self._pool[slot].process.kill()  # ends a send blocked on a worker not reading
                    sender.join()
                    self._restart(slot)
                    self._retry(k, attempts, chunks, "its worker had died or stopped reading")
                    continue
                try:
                    ready = conn.poll(max(0.0, deadline - time.monotonic()))
                    reply = conn.recv() if ready else None
                except (EOFError, OSError):
                    reply = None
                if reply is None:
                    self._restart(slot)
                    self._retry(k, attempts, chunks, "its worker crashed or hung")
                    continue
                status, payload = reply
                if status == "convergence":
                    message, rows = payload
                    failure = failure or ConvergenceError(message)
                    failed.append(None if rows is None else chunks[k][list(rows)])
                elif status == "error":
                    failure = failure or PoolError(
                        f"worker failed on samples {chunks[k].tolist()[:8]}: {payload}"
                    )
                else:
                    results[k] = payload
            if failure is not None:
                if failed and all(rows is not None for rows in failed):  # rows of the whole batch
                    failure.samples = tuple(int(i) for i in np.concatenate(failed))
                raise failure
            pending = [k for k in pending if k not in results]
        ops = [results[k] for k in range(len(chunks))]
        adjoint = None if ops[0].adjoint is None else np.concatenate([o.adjoint for o in ops])
        return OperatingPoint(
            ops[0].nodes,
            np.concatenate([o.x for o in ops]),
            np.concatenate([o.converged for o in ops]),
            np.concatenate([o.iterations for o in ops]),
            self.name,
            phase,
            self.tolerance_dict,
            adjoint=adjoint,
        )

    def _retry(self, k: int, attempts: dict, chunks: list, why: str) -> None:
        attempts[k] += 1
        if attempts[k] > self.retries:
            raise PoolError(
                f"samples {chunks[k].tolist()[:8]}... failed {attempts[k]} times: {why}"
            )

    def close(self) -> None:
        """Stop every worker (asked to exit, killed after 2 s); the engine cannot solve again."""
        for w in self._pool:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            w.process.join(2)
            if w.process.is_alive():
                w.process.kill()
        self._pool = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
