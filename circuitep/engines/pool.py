"""ngspice in a pool of worker processes, one ngspice each (ngspice is one instance per process).

A batch is split into one chunk per worker. A worker that crashes or hangs is killed and
restarted, and its chunk is sent again, so the batch completes with the same results; after
``retries`` failures of the same chunk the pool raises :class:`PoolError` naming the samples.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass, field

import numpy as np

from circuitep.compiler import FORMS, Tolerances
from circuitep.engines.base import ConvergenceError, OperatingPoint, Phase, check_batch
from circuitep.engines.ngspice_engine import NgspiceEngine
from circuitep.spec import Network


class PoolError(RuntimeError):
    """A chunk of samples failed in every worker that tried it."""


def _serve(conn, form: str, tolerances: Tolerances) -> None:
    """Worker loop: solve what arrives, send back ``("ok", OperatingPoint)`` or ``("error", ...)``."""
    engine = NgspiceEngine(form=form, tolerances=tolerances)
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
            conn.send(("convergence", str(exc)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent with its type
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


@dataclass(eq=False)
class _Worker:
    process: mp.Process
    conn: object


@dataclass(eq=False)
class PoolEngine:
    """ngspice engine over ``workers`` processes. Holds state: the worker processes (``close()``
    or use as a context manager). ``timeout`` (s) is how long a chunk may take before its worker
    is considered hung."""

    workers: int = 2
    form: str = "folded"
    tolerances: Tolerances = field(default_factory=Tolerances)
    timeout: float = 120.0
    retries: int = 2
    name: str = "ngspice-pool"

    def __post_init__(self):
        if isinstance(self.workers, bool) or not isinstance(self.workers, (int, np.integer)) or self.workers < 1:
            raise ValueError(f"workers = {self.workers!r} must be a positive integer")
        if self.form not in FORMS:  # checked here: a worker would only die of it at spawn
            raise ValueError(f"form = {self.form!r} is not one of {FORMS}")
        if not isinstance(self.tolerances, Tolerances):
            raise ValueError(f"tolerances must be a Tolerances, got {type(self.tolerances).__name__}")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or not 0 < self.timeout < np.inf:
            raise ValueError(f"timeout = {self.timeout!r} must be a positive number of seconds")
        self._ctx = mp.get_context("spawn")
        self._pool = [self._start() for _ in range(self.workers)]
        self.restarts = 0

    @property
    def tolerance_dict(self) -> dict:
        """What :attr:`OperatingPoint.tolerances` reports: the workers' (:class:`NgspiceEngine`)
        and ``workers``."""
        return self.tolerances.as_dict() | {"form": self.form, "sweep": NgspiceEngine.sweep,
                                            "workers": self.workers}

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_serve, args=(child, self.form, self.tolerances), daemon=True)
        proc.start()
        child.close()
        return _Worker(proc, parent)

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._pool]

    def _restart(self, k: int) -> None:
        w = self._pool[k]
        if w.process.is_alive():
            w.process.kill()
        w.process.join(5)
        w.conn.close()
        self._pool[k] = self._start()
        self.restarts += 1

    def solve(self, net: Network, phase: Phase, inputs, targets=None, x0=None, x_init=None) -> OperatingPoint:
        """Solve a batch across the workers; same arrays and result as :class:`NgspiceEngine`."""
        u_primary = np.asarray(inputs, dtype=float)
        _, y, x0 = check_batch(net, phase, u_primary, targets, x0)
        chunks = [c for c in np.array_split(np.arange(len(u_primary)), self.workers) if c.size]
        results: dict[int, OperatingPoint] = {}
        attempts = {k: 0 for k in range(len(chunks))}
        pending = list(range(len(chunks)))
        while pending:
            sent = {}
            for slot, k in enumerate(pending[: self.workers]):
                idx = chunks[k]
                job = (net, phase, u_primary[idx], None if y is None else y[idx], None if x0 is None else x0[idx])
                try:
                    self._pool[slot].conn.send(job)
                    sent[slot] = k
                except (BrokenPipeError, OSError):
                    self._restart(slot)
                    self._retry(k, attempts, chunks, "its worker had died")
            failure = None  # raised only after every sent chunk's reply is read: no stale replies stay in a pipe
            for slot, k in sent.items():
                conn = self._pool[slot].conn
                try:
                    ready = conn.poll(self.timeout)
                    reply = conn.recv() if ready else None
                except (EOFError, OSError):
                    reply = None
                if reply is None:
                    self._restart(slot)
                    self._retry(k, attempts, chunks, "its worker crashed or hung")
                    continue
                status, payload = reply
                if status == "convergence":
                    failure = failure or ConvergenceError(payload)
                elif status == "error":
                    failure = failure or PoolError(f"worker failed on samples {chunks[k].tolist()[:8]}: {payload}")
                else:
                    results[k] = payload
            if failure is not None:
                raise failure
            pending = [k for k in pending if k not in results]
        ops = [results[k] for k in range(len(chunks))]
        adjoint = None if ops[0].adjoint is None else np.concatenate([o.adjoint for o in ops])
        return OperatingPoint(ops[0].nodes, np.concatenate([o.x for o in ops]),
                              np.concatenate([o.converged for o in ops]), np.concatenate([o.iterations for o in ops]),
                              self.name, phase, self.tolerance_dict, adjoint=adjoint)

    def _retry(self, k: int, attempts: dict, chunks: list, why: str) -> None:
        attempts[k] += 1
        if attempts[k] > self.retries:
            raise PoolError(f"samples {chunks[k].tolist()[:8]}... failed {attempts[k]} times: {why}")

    def close(self) -> None:
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

