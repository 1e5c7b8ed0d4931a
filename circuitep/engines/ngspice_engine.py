"""The simulator of record: ngspice through PySpice's shared-library binding.

A batch of a circuit with one operating point (reciprocal, or feedforward) is solved in groups of
samples, one DC sweep each: the per-sample sources become tables indexed by a swept source, so
that ngspice sets up its matrix once per group (DESIGN.md §3). Other circuits, a single sample or a
group the sweep does not solve go the other way: the phase's netlist is
loaded once, per sample only the sources that changed are ``alter``-ed and ``op`` is run (with
gmin and source stepping on failure); when the network's parameters change but its structure does
not, the changed element values are ``alter``-ed into the loaded circuit instead of rebuilding it.
Node voltages are read back directly from ngspice's vectors.

PySpice 1.5 on Debian's ngspice needs a few fixes, made here and nowhere else:
the unversioned ``libngspice.so`` (package ``libngspice0-dev``) or ``NGSPICE_LIBRARY_PATH``; the
"Unsupported Ngspice version" warning is harmless; ``ngSpice_Command`` returns 0 even when a
command fails, so stderr lines are classified here (informational lines such as "Using SPARSE"
and "Note:" are not errors); vectors are read as float64 arrays and indexed, never ``float()``-ed.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import os
import re
import shutil
import tempfile
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter

import numpy as np

try:
    from PySpice.Spice.NgSpice.Shared import FFI, NgSpiceShared, ffi
except ImportError:  # reported with an install hint when an engine is created
    NgSpiceShared = None

from circuitep.checks import is_integer, is_number
from circuitep.compiler import Compiled, Tolerances, compile_network, source_values
from circuitep.elements.registry import kind as kind_of
from circuitep.engines.base import ConvergenceError, OperatingPoint, Phase, check_batch, unsolved
from circuitep.netlist import OSDI_PATH, SWEEP_SOURCE, spice_number, write, write_sweep
from circuitep.spec import MAX_VOLTS, Network

INSTALL_HINT = (
    "install ngspice's shared library: apt-get install ngspice libngspice0-dev "
    "(or set NGSPICE_LIBRARY_PATH to libngspice.so.0)"
)
#: stderr lines that are information, not errors (ngspice 39-44).
_INFO = re.compile(
    r"^(Using SPARSE|Note:|Warning:|Supplies reduced|Trying gmin|Gmin step|Source step|"
    r"gmin stepping|source stepping|Unsupported Ngspice|\s*$)",
    re.IGNORECASE,
)
#: stderr lines saying an analysis failed to converge.
#: ``rusage totiter``'s answer (ngspice 39): the current circuit's Newton iterations, all analyses.
_TOTITER = re.compile(r"^\s*Total iterations\s*=\s*(\d+)\s*$")
#: ``OperatingPoint.iterations`` of a sample ngspice cannot give a count for: one solved within a
#: DC sweep (ngspice counts the whole sweep's iterations, not each point's).
UNKNOWN_ITERATIONS = -1
_NONCONVERGENCE = re.compile(
    r"(Timestep too small|singular matrix|iteration limit|gmin stepping failed|"
    r"source stepping failed|simulation\(s\) aborted|doAnalyses|no convergence)",
    re.IGNORECASE,
)
_ALTER_VALUE = {"R": "", "C": "", "V": "dc", "I": "dc", "G": "gain", "N": "g"}
_MAX_COMMAND = 1023


class NgspiceUnavailable(RuntimeError):
    """libngspice could not be loaded; the message says how to install it."""


class NgspiceError(RuntimeError):
    """ngspice reported an error for a command; the message quotes it."""


class NgspiceTimeout(ConvergenceError):
    """An ngspice analysis ran past the engine's time limit.

    The message names the network, the phase and the samples, which ``samples`` holds (rows of the
    batch). A convergence failure to callers: training counts those samples as failed.
    """


#: How long (s) ngspice is given to honour ``bg_halt``. It checks its interrupt flag between time
#: steps and sweep points, and stops within milliseconds there; measured (ngspice 39): a DC sweep
#: spinning inside one point (xent AEP phase of ff:2-3-2 at gain 1e5, 30+ samples) never stopped.
HALT_GRACE = 2.0


class _VersionFilter(logging.Filter):
    def filter(self, record):
        return "Unsupported Ngspice version" not in record.getMessage()


#: Which matrix solver an :class:`NgspiceEngine` asks for: ``auto`` (KLU where the library has
#: it, else Sparse), ``klu`` or ``sparse``.
SOLVER_CHOICES = ("auto", "klu", "sparse")
#: The first ngspice with ``ngSpice_nospiceinit`` and OSDI (Verilog-A compact models).
NGSPICE_OSDI = 43


def _build_info(banner: list[str]) -> tuple[int | None, bool]:
    """Ngspice's major version and whether it was compiled with KLU, from ``version -f``."""
    version = None
    for line in banner:
        m = re.match(r"\*\* ngspice-(\d+)", line)
        if m:
            version = int(m.group(1))
    return version, any("Compiled with KLU" in line for line in banner)


#: ``auto`` chooses KLU for circuits of at least this many elements. Measured on ngspice 46
#: (Debian bookworm-backports), time per ``op`` KLU / Sparse: folded 64-32-10 1.27, folded
#: 784-100-10 1.35 (~1k elements), literal ff:128-32-10 1.38 (4.7k), literal ff:256-64-10 0.91
#: (17.6k), literal ff:784-32-10 1.06 (26k), literal ff:784-100-10 0.67 (79k); DC sweeps of the
#: folded form 1.07-1.13. Sparse re-orders on every analysis, which is what grows with size.
KLU_MIN_ELEMENTS = 40_000


def auto_solver(elements: int) -> str:
    """The faster matrix solver for a circuit of this size, where ngspice has KLU.

    Parameters
    ----------
    elements : int
        The circuit's number of elements.

    Returns
    -------
    str
        ``"klu"`` from :data:`KLU_MIN_ELEMENTS` elements on, else ``"sparse"``.
    """
    return "klu" if elements >= KLU_MIN_ELEMENTS else "sparse"


def resolve_solver(requested: str, version: int | None, klu: bool, elements: int = 0) -> str:
    """The matrix solver for one circuit: ``klu`` or ``sparse``.

    Parameters
    ----------
    requested : {"auto", "klu", "sparse"}
        ``auto``: KLU where the library was compiled with it and the circuit is large enough for
        KLU to be the faster (:data:`KLU_MIN_ELEMENTS`), Sparse 1.3 otherwise.
    version : int or None
        ngspice's major version (for the message).
    klu : bool
        Whether the loaded library was compiled with KLU.
    elements : int
        The circuit's number of elements.

    Returns
    -------
    str
        ``"klu"`` or ``"sparse"``.

    Raises
    ------
    ValueError
        For another choice, or ``klu`` on an ngspice without it.
    """
    if requested not in SOLVER_CHOICES:
        raise ValueError(f"solver {requested!r} is not one of {', '.join(SOLVER_CHOICES)}")
    if requested == "auto":
        return auto_solver(elements) if klu else "sparse"
    if requested == "klu" and not klu:
        raise ValueError(
            f"solver 'klu': this ngspice (ngspice-{version}) was compiled without KLU; "
            "./setup.sh installs ngspice 46 with KLU from Debian bookworm-backports, or use "
            "solver 'sparse'"
        )
    return requested


@functools.cache
def shared_session() -> _Session:
    """The process's one ngspice session (ngspice keeps global state)."""
    return _Session()


@contextmanager
def _private_startup_dir():
    """Run with the working directory and ``HOME`` in a fresh private directory.

    It holds an empty ``.spiceinit``; both are restored afterwards.

    ``ngSpice_Init`` of ngspice 39 (Debian bookworm; strace: ``access(".spiceinit")`` then
    ``access("/root/.spiceinit")``) sources ``.spiceinit`` from the working directory, else from
    the passwd home directory (not ``$HOME``); builds without ``pwd.h`` also look for ``spice.rc``
    and in ``$HOME``. Started here, it finds only this empty file and stops looking, so nothing
    from the user's folder or home is ever executed. The working directory is process-wide state:
    this runs only while an ngspice starts (once per process, and after :meth:`_Session.restart`).
    """
    home = os.environ.get("HOME")
    back = os.open(".", os.O_RDONLY)
    try:
        with tempfile.TemporaryDirectory(prefix="circuitep-ngspice-") as private:
            with open(os.path.join(private, ".spiceinit"), "w") as fh:
                fh.write("* circuitep: ngspice reads no user init file\n")
            os.chdir(private)
            os.environ["HOME"] = private
            try:
                yield
            finally:
                os.fchdir(back)
                if home is None:
                    os.environ.pop("HOME", None)
                else:
                    os.environ["HOME"] = home
    finally:
        os.close(back)


if NgSpiceShared is not None:

    class _NgSpice(NgSpiceShared):
        """PySpice's binding with what circuitep needs before ngspice starts.

        No user init file is read (:func:`_private_startup_dir`; ``ngSpice_nospiceinit`` is not
        called: ngspice 46 as Debian bookworm-backports ships it segfaults in it), and the
        background-thread callback returns an int (PySpice's returns None, which cffi reports on
        every analysis) and sets ``finished`` when an analysis started with ``bg_`` ends.
        """

        def __init__(self, copy: str | None = None):
            self._copy = copy  # a private copy of the library: a second, independent ngspice
            self.thread: int | None = None  # OS id of the thread running the last bg_ analysis
            super().__init__(ngspice_id=0, send_data=False)

        @property
        def library_path(self):
            return self._copy or super().library_path

        def _load_library(self, verbose):
            if self._copy is None:
                super()._load_library(verbose)
            else:  # PySpice's C declarations are made once per process, by the first instance
                self._ngspice_shared = ffi.dlopen(self._copy)
            # held open for the life of the process (ctypes never unloads): at exit cffi unloads
            # the library, which crashed (SIGSEGV) the thread of an analysis that never stopped
            self._pin = ctypes.CDLL(self.library_path)

        def _init_ngspice(self, send_data):
            self.finished = threading.Event()
            self.finished.set()
            with _private_startup_dir():
                super()._init_ngspice(send_data)

        @staticmethod
        def _background_thread_running(exited, ngspice_id, user_data):
            # ngspice passes its "exited" flag: false when the thread starts, true when it ends
            self = ffi.from_handle(user_data)
            if exited:
                self.finished.set()
            else:
                self.thread = threading.get_native_id()
            return 0


@functools.cache
def shared_ngspice():
    """The process's ngspice handle (ngspice keeps global state: one instance per process)."""
    if NgSpiceShared is None:
        raise NgspiceUnavailable("PySpice is not installed: pip install 'PySpice==1.5'")
    log = logging.getLogger("PySpice")
    log.addFilter(_VersionFilter())
    for name in ("PySpice.Spice.NgSpice.Shared.NgSpiceShared", "PySpice.Spice.NgSpice.Shared"):
        logging.getLogger(name).addFilter(_VersionFilter())
        logging.getLogger(name).setLevel(logging.CRITICAL)  # errors are classified by _Session
    try:
        return _NgSpice()
    except OSError as exc:
        raise NgspiceUnavailable(f"cannot load libngspice ({exc}): {INSTALL_HINT}") from exc


class _Session:
    """The process's ngspice: commands, vectors and the circuits it holds.

    Commands have their stderr classified and vectors are read as arrays. ngspice numbers loaded
    circuits newest first; ``order`` keeps them oldest first as opaque tokens so that every engine
    in the process can select its own.

    ``generation`` counts fresh starts: an analysis that ran past its limit and an error ngspice
    "cannot recover" from leave ngspice unusable, so the session drops every circuit (engines
    reload theirs when ``generation`` changed) or, where ngspice cannot be stopped or recovered,
    loads a private copy of the library, an independent second ngspice (:meth:`restart`).
    ``garbage`` holds circuits of engines that were garbage-collected: removed at the next
    :meth:`select` or :meth:`add_circuit`, never in the middle of another engine's solve.
    """

    def __init__(self):
        self.ng = shared_ngspice()
        self.lib = (
            self.ng._ngspice_shared
        )  # the cffi library: PySpice's own wrappers raise on info lines
        self.calls = 0
        self.order: list[object] = []
        self.current: object | None = None
        self.generation = 0
        self.garbage: list[object] = []
        self.abandoned: list[object] = []  # stuck instances: their threads may call back
        self.version, self.klu = _build_info(self.command_output("version -f"))
        self.osdi: set[str] = set()  # OSDI libraries loaded into this ngspice

    def load_osdi(self, path: str) -> None:
        """Load an OSDI library (compiled Verilog-A) into this ngspice, once.

        Parameters
        ----------
        path : str
            A plain absolute ``.osdi`` path (:data:`circuitep.netlist.OSDI_PATH`).
        """
        if path in self.osdi:
            return
        if not OSDI_PATH.fullmatch(path):
            raise ValueError(f"OSDI library {path!r} is not a plain absolute .osdi path")
        if self.version is not None and self.version < NGSPICE_OSDI:
            raise NgspiceError(
                f"Verilog-A devices need ngspice >= {NGSPICE_OSDI} (OSDI); this is "
                f"{self.version}: ./setup.sh installs 46 from Debian bookworm-backports"
            )
        errors = self.command(f"osdi {path}")
        if errors or any("error" in line.lower() for line in self.ng._stdout):
            raise NgspiceError(f"ngspice could not load {path}: {' | '.join(errors)}")
        self.osdi.add(path)

    def command_output(self, text: str) -> list[str]:
        """Run one command and return what it printed on stdout, line by line."""
        self.command(text)
        return list(self.ng._stdout)

    def add_circuit(self, token: object, text: str) -> None:
        """Load a netlist as a new circuit, which becomes the current one.

        ngspice adds some faulty netlists and refuses others; the circuit list is counted before
        and after so that ``order`` always matches what ngspice holds.
        """
        self.collect()
        before = self.count()
        try:
            errors = self.load(text)
        except NgspiceError:
            self.current = None
            raise
        if self.count() > before:
            self.order.append(token)
            self.current = token
            if errors:
                self.remove(token)
        else:
            self.current = None  # ngspice has no current circuit after a refused one
        if errors:
            raise NgspiceError(f"ngspice rejected the netlist: {' | '.join(errors)}")

    def count(self) -> int:
        """How many circuits ngspice holds (from its ``setcirc`` listing)."""
        self.command("setcirc")
        return sum(1 for line in self.ng._stdout if re.match(r"(Current\t)?\d+\t", line))

    def select(self, token: object) -> None:
        self.collect()
        if self.current is not token:
            self.checked(f"setcirc {len(self.order) - self.order.index(token)}")
            self.current = token

    def remove(self, token: object) -> None:
        self.select(token)
        self.checked("remcirc")
        self.order.remove(token)
        self.current = None

    def collect(self) -> None:
        """Remove the circuits of engines that were garbage-collected."""
        while self.garbage:
            token = self.garbage.pop()
            if token in self.order:
                self.remove(token)

    def command(self, text: str) -> list[str]:
        """Run one command; return stderr lines that are not information. Never raises on them."""
        if len(text) > _MAX_COMMAND:
            raise ValueError(f"ngspice command longer than {_MAX_COMMAND} characters")
        self._count_call()
        self.lib.ngSpice_Command(text.encode("ascii"))
        return [line for line in self.ng._stderr if not _INFO.match(line)]

    def _count_call(self) -> None:
        self.calls += 1
        if self.calls % 5000 == 0:  # ngspice keeps every command in its history
            self.lib.ngSpice_Command(FFI.NULL)
        self.ng.clear_output()

    def run(self, analysis: str, timeout: float) -> list[str] | None:
        """Run an analysis in ngspice's background thread, waiting at most ``timeout`` s.

        The analysis is ``op``, ``dc ...``, ``tran ...`` or ``sens ...``. Returns its stderr lines
        that are not information, or None when it ran past the limit. Then ngspice is halted and
        every circuit dropped (none is used again half-solved), or, where it does not stop, replaced
        (:meth:`restart`).
        """
        if len(analysis) + 3 > _MAX_COMMAND:
            raise ValueError(f"ngspice command longer than {_MAX_COMMAND} characters")
        self._count_call()
        self.ng.finished.clear()
        self.lib.ngSpice_Command(f"bg_{analysis}".encode("ascii"))
        if self.ng.finished.wait(timeout):
            return [line for line in self.ng._stderr if not _INFO.match(line)]
        self.lib.ngSpice_Command(b"bg_halt")
        if self.ng.finished.wait(HALT_GRACE):
            self.command("destroy all")
            for token in list(self.order):
                self.remove(token)
            self.generation += 1
        else:
            self.restart()
        return None

    def restart(self) -> None:
        """Continue on a fresh ngspice: a private copy of the library, loaded beside the old one.

        ngspice keeps global state, so a second file is a second, independent instance. A thread
        still spinning in the old one is kept at idle priority until the process ends.
        """
        old = self.ng
        if old.thread is not None and not old.finished.is_set():
            try:
                os.sched_setscheduler(old.thread, os.SCHED_IDLE, os.sched_param(0))
            except (AttributeError, OSError):  # not Linux: it keeps its priority
                pass
        self.abandoned.append(old)
        with tempfile.TemporaryDirectory(prefix="circuitep-ngspice-") as private:
            copy = os.path.join(private, "libngspice-copy.so")
            shutil.copyfile(_library_file(), copy)
            self.ng = _NgSpice(copy)  # mapped: the file may go
        self.lib = self.ng._ngspice_shared
        self.order, self.current, self.garbage = [], None, []
        self.osdi = set()  # a fresh ngspice has none loaded
        self.generation += 1

    def checked(self, text: str) -> None:
        errors = self.command(text)
        if errors:
            raise NgspiceError(f"ngspice command {text[:80]!r} failed: {' | '.join(errors)}")

    def load(self, text: str) -> list[str]:
        """Hand a netlist to ngspice; return the error lines it printed on stderr.

        A ``.control`` block (a standalone netlist's analysis,
        :func:`circuitep.netlist.analysis_block`) is left out: the shared library would run it, and
        its ``quit`` would detach ngspice. Where ngspice refuses the netlist outright, raises with
        ngspice's own lines (and, where ngspice says it cannot recover, continues on a fresh
        instance: :meth:`restart`).
        """
        lines = [line for line in _without_control(text.split("\n")) if line.strip()]
        if self.order:
            self.command("destroy all")
        keep = [ffi.new("char[]", line.encode("ascii")) for line in lines] + [ffi.NULL]
        array = ffi.new("char *[]", keep)
        self.ng.clear_output()
        failed = self.lib.ngSpice_Circ(array)
        errors = [line for line in self.ng._stderr if not _INFO.match(line)]
        if failed:
            said = " | ".join(errors) or "no message"
            if any("cannot recover" in line for line in errors):
                self.restart()
            raise NgspiceError(f"ngspice refused the netlist: {said}")
        return errors

    def total_iterations(self) -> int:
        """The current circuit's Newton iterations so far, over all its analyses.

        ngspice's ``rusage totiter``, or :data:`UNKNOWN_ITERATIONS` where its answer cannot be read.
        """
        if self.command("rusage totiter"):
            return UNKNOWN_ITERATIONS
        counts = [int(m.group(1)) for m in map(_TOTITER.match, self.ng._stdout) if m]
        return counts[-1] if counts else UNKNOWN_ITERATIONS

    def vector(self, name: str) -> np.ndarray:
        info = self.lib.ngGet_Vec_Info(name.encode("ascii"))
        if info == ffi.NULL or info.v_realdata == ffi.NULL:
            raise NgspiceError(f"ngspice has no vector {name!r}")
        n = info.v_length
        return np.frombuffer(ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()


def _without_control(lines: list[str]) -> list[str]:
    """The lines outside ``.control`` ... ``.endc`` blocks."""
    out, inside = [], False
    for line in lines:
        word = line.strip().lower()
        if word.startswith(".control"):
            inside = True
        elif word.startswith(".endc"):
            inside = False
        elif not inside:
            out.append(line)
    return out


def _library_file() -> str:
    """The file of the libngspice this process loaded first (from ``/proc/self/maps``)."""
    with open("/proc/self/maps") as fh:
        for line in fh:
            path = line.split(maxsplit=5)[-1].strip()
            if os.path.basename(path).startswith("libngspice") and os.path.isfile(path):
                return path
    raise NgspiceError("cannot find the loaded libngspice to start a fresh ngspice")


@dataclass(eq=False)
class _Circuit:
    """A circuit loaded in ngspice: what it was compiled from and the values it holds now."""

    compiled: Compiled
    values: dict[str, float]
    net: Network
    beta: float


@dataclass
class NgspiceEngine:
    """The ngspice engine. Holds state: the circuits loaded in ngspice and their element values.

    One circuit per phase kind (free, nudged, aep, dyadic), switched with ``setcirc``.

    ``form`` chooses literal or folded netlists (folded: input-driven elements as Norton sources,
    much faster, same node voltages). ``tolerances`` go into every netlist's ``.options``.
    ``retry`` re-runs a failed operating point with more iterations and gmin and source stepping.
    ``sweep``: samples per DC sweep where the circuit has one operating point (1: one ``op`` per
    sample always). Nudged phases of either sign share one circuit (the nudge gains, or the source
    holding beta for the cross-entropy nudge, are altered), and new parameters of the same structure
    are altered into every loaded circuit, never rebuilt. ``timeout`` (s) limits every ngspice
    analysis (op, DC sweep, transient, sensitivity): past it the samples fail with
    :class:`NgspiceTimeout` and ngspice is made clean for the next call (:meth:`_Session.run`); a
    sweep's samples are solved again one ``op`` each, and that phase is never swept again by this
    engine (the sweep that spun for good solved in 8 ms by ``op``).

    An operating point ngspice returns counts only if its voltages are finite and within
    :data:`~circuitep.spec.MAX_VOLTS` and it satisfies the phase's KCL
    (:func:`~circuitep.engines.base.unsolved`);
    other samples raise :class:`~circuitep.engines.base.ConvergenceError` naming them.

    Use as a context manager, or ``close()``: the engine's circuits are removed from ngspice then,
    or once the engine is garbage-collected.
    """

    form: str = "folded"
    tolerances: Tolerances = field(default_factory=Tolerances)
    retry: bool = True
    sweep: int = 100
    timeout: float = 60.0
    solver: str = "auto"
    name: str = "ngspice"

    def __post_init__(self):
        if self.form not in ("literal", "folded"):
            raise ValueError(f"form {self.form!r} is not literal or folded")
        if not is_integer(self.sweep) or self.sweep < 1:
            raise ValueError(
                f"sweep = {self.sweep!r} must be a positive integer (1: one op per sample)"
            )
        check_timeout(self.timeout)
        self._session = shared_session()
        resolve_solver(self.solver, self._session.version, self._session.klu)  # checks the choice
        self._circuits: dict[tuple, _Circuit] = {}
        self._generation = self._session.generation
        self._unswept: set[tuple] = set()  # phases whose sweep ran past the time limit
        self._last_sweep_timed_out = False
        self.loads = 0  # circuits loaded from text (for tests and benchmarks)
        self.sweeps = 0  # groups of samples solved in one analysis
        self.alters = 0  # element values altered
        self.solvers_used: set[str] = set()  # matrix solvers of the circuits compiled so far
        self._arm()

    def _arm(self) -> None:
        """Free the circuits when this engine is garbage-collected (again, if used after close)."""
        self._finalizer = weakref.finalize(self, _discard, self._session, self._circuits)
        self._finalizer.atexit = False  # at exit ngspice goes with the process

    @property
    def tolerance_dict(self) -> dict:
        """What :attr:`OperatingPoint.tolerances` reports.

        The netlists' ``.options`` (``reltol``, ``vntol`` V, ``abstol`` A, ``gmin`` S), ``form``,
        ``sweep``, the matrix ``solver`` asked for (an operating point says which one its circuit
        used: ``klu`` or ``sparse``) and the ``ngspice`` major version.
        """
        return self.tolerances.as_dict() | {
            "form": self.form,
            "sweep": self.sweep,
            "solver": self.solver,
            "ngspice": self._session.version,
        }

    # --- loading -------------------------------------------------------------------------

    def load(self, net: Network, phase: Phase) -> Compiled:
        """Make the circuit of ``phase`` current, altering values where only they changed.

        Parameters
        ----------
        net : Network
            The circuit; new parameters of an already loaded structure are altered in, not reloaded.
        phase : Phase
            Chooses the loaded circuit (one per kind: free, nudged, aep, dyadic, and cost); nudged
            phases of either sign share one.

        Returns
        -------
        Compiled
            The compiled netlist of the current circuit.
        """
        if self._generation != self._session.generation:  # ngspice was reset: nothing is loaded
            self._circuits.clear()
            self._generation = self._session.generation
        key = _phase_key(phase.kind, phase.cost)
        circuit = self._circuits.get(key)
        if circuit is not None and circuit.net is net and circuit.beta == phase.beta:
            self._session.select(circuit)
            return circuit.compiled
        compiled = self._compile(net, phase)
        if circuit is not None and _same_structure(circuit.compiled, compiled):
            self._session.select(circuit)
            sources = {s.name for s in compiled.sources}
            self._alter(
                [
                    (el.name, el.letter, el.value)
                    for el in compiled.netlist.elements()
                    if el.letter in _ALTER_VALUE
                    and el.name not in sources
                    and circuit.values.get(el.name) != el.value
                ],
                circuit.values,
            )
            circuit.compiled, circuit.net, circuit.beta = compiled, net, phase.beta
            return compiled
        if circuit is not None:
            self._session.remove(circuit)
        circuit = _Circuit(
            compiled, {el.name: el.value for el in compiled.netlist.elements()}, net, phase.beta
        )
        self._session.add_circuit(circuit, write(compiled.netlist, standalone=False))
        self._circuits[key] = circuit
        if not self._finalizer.alive:
            self._arm()
        self.loads += 1
        return compiled

    def _unsolved(self, net, phase, u, y, x0, x, d) -> np.ndarray:
        """Samples whose returned state is no operating point of the circuit (model KCL here)."""
        return unsolved(net, phase, u, y, x0, x, d)

    def _realise(self, compiled: Compiled, **options) -> Compiled:
        """The circuit that is simulated for a compiled phase: the model's own here.

        A subclass builds other devices (:class:`circuitep.engines.ota.OtaEngine`).
        """
        return compiled

    def _compile(self, net: Network, phase: Phase, **options) -> Compiled:
        compiled = compile_network(
            net,
            phase.kind,
            self.form,
            beta=phase.beta if phase.kind != "free" else None,
            cost=phase.cost,
            tolerances=self.tolerances,
            correction=phase.correction,
        )
        compiled = self._realise(compiled, **options)
        session = self._session
        solver = resolve_solver(
            self.solver, session.version, session.klu, len(compiled.netlist.elements())
        )
        self.solvers_used.add(solver)
        return dataclasses.replace(
            compiled, netlist=dataclasses.replace(compiled.netlist, solver=solver)
        )

    def _alter(self, changes: list[tuple[str, str, float]], values: dict[str, float]) -> None:
        """``alter`` element values of the current circuit, several per command joined with ';'."""
        batch, pending = "", {}
        for name, kind, value in changes:
            param = _ALTER_VALUE[kind]
            cmd = f"alter {name} {param + ' ' if param else ''}= {spice_number(value)}"
            if len(batch) + len(cmd) + 1 > _MAX_COMMAND:
                self._session.checked(batch)
                values.update(pending)
                batch, pending = "", {}
            batch = f"{batch};{cmd}" if batch else cmd
            pending[name] = value
        if batch:
            self._session.checked(batch)
            values.update(pending)  # only once ngspice has taken them
        self.alters += len(changes)

    def _drive(self, circuit: _Circuit, values: np.ndarray) -> None:
        """Set the per-sample sources of the current circuit to one sample's ``values``."""
        self._alter(
            [
                (src.name, src.kind, float(v))
                for src, v in zip(circuit.compiled.sources, values, strict=True)
                if circuit.values.get(src.name) != v
            ],
            circuit.values,
        )

    def close(self) -> None:
        """Remove this engine's circuits from ngspice (the shared library itself stays loaded)."""
        self._finalizer()
        self._session.collect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _timeout(self, what: str, samples) -> NgspiceTimeout:
        rows = [int(k) for k in samples]
        return NgspiceTimeout(
            f"ngspice: {what} ran past the time limit of {self.timeout:g} s "
            f"(sample(s) {rows[:10]}); raise timeout (--ngspice-timeout) if the "
            f"circuit is just large, else it does not converge",
            samples=rows,
        )

    # --- solving -------------------------------------------------------------------------

    def _run(self, analysis: str, what: str, samples) -> list[str]:
        """One analysis within ``timeout``: its error lines, or :class:`NgspiceTimeout`."""
        errors = self._session.run(analysis, self.timeout)
        if errors is None:
            raise self._timeout(what, samples)
        return errors

    def solve(
        self, net: Network, phase: Phase, inputs, targets=None, x0=None, x_init=None
    ) -> OperatingPoint:
        """Solve one phase for each sample (DESIGN.md §3).

        Where the circuit has one operating point (:func:`one_operating_point`), up to ``sweep``
        samples go through one analysis (:meth:`_sweep`); other circuits, a group the sweep does
        not solve and a batch of one are solved one ``op`` per sample, each from scratch, so that a
        sample's answer never depends on the others in its batch.

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
            ``x`` of shape ``(batch, n_free)`` in V. ``iterations`` per sample are ngspice's own
            count for the sample's ``op`` (the change in ``rusage totiter``, gmin and source
            stepping of a retry included), and :data:`UNKNOWN_ITERATIONS` (-1) for the samples
            solved within a sweep, whose iterations ngspice counts only for the sweep as a whole.
            ``converged`` is True for every sample.

        Raises
        ------
        ConvergenceError
            For samples without an operating point (not found by ngspice, or refused by
            :func:`~circuitep.engines.base.unsolved`); ``samples`` names them.
        NgspiceTimeout
            When an analysis runs past ``timeout`` seconds.
        NgspiceError
            For other ngspice errors.
        """
        u, y, x0 = check_batch(net, phase, inputs, targets, x0)
        batch = u.shape[0]
        x = np.empty((batch, net.n_free))
        d = np.empty((batch, net.n_free)) if phase.dyadic else None
        x0 = x0 if x0 is not None else np.zeros((batch, net.n_free))
        iterations = np.full(batch, UNKNOWN_ITERATIONS)
        alone = np.arange(batch)
        key = _phase_key(phase.kind, phase.cost)
        sweepable = (
            self.sweep > 1
            and batch > 1
            and key not in self._unswept
            and one_operating_point(net, phase)
        )
        if sweepable:
            compiled = self._compile(net, phase)
            if compiled.sources:  # else every sample is the same circuit: one op each is as fast
                values = source_values(compiled, u, y, x0)
                groups = [alone[k : k + self.sweep] for k in range(0, batch, self.sweep)]
                alone = np.concatenate(
                    [rows for rows in groups if not self._sweep(compiled, values[rows], x, d, rows)]
                    + [np.zeros(0, int)]
                )
        if alone.size:
            compiled = self.load(net, phase)
            circuit = self._session.current
            values = source_values(compiled, u, y, x0)
            before = self._session.total_iterations()
            for k, b in enumerate(alone):
                self._drive(circuit, values[b])
                self._op(net, phase, b)
                after = self._session.total_iterations()
                if 0 <= before <= after:
                    iterations[b] = after - before
                before = after
                x[b] = [self._session.vector(n)[0] for n in compiled.free_nodes]
                if d is not None:
                    d[b] = [self._session.vector(n)[0] for n in compiled.adjoint_nodes]
                if k % 200 == 199:
                    self._session.command("destroy all")
            self._session.command("destroy all")
        bad = self._unsolved(net, phase, u, y, x0, x, d)
        if bad.size:
            raise ConvergenceError(
                f"ngspice engine: network {net.name!r}, phase {phase.label}: what ngspice returned "
                f"for sample(s) {bad[:10].tolist()} is no operating point (voltages up to "
                f"{np.nanmax(np.abs(x[bad])):.3g} V, beyond +-{MAX_VOLTS:g} V or off KCL): the "
                f"circuit is singular or runs away there",
                samples=bad,
            )
        return OperatingPoint(
            tuple(net.free_nodes),
            x,
            np.ones(batch, bool),
            iterations,
            self.name,
            phase,
            self.tolerance_dict | {"solver": compiled.netlist.solver},  # the one that solved
            adjoint=d,
        )

    def _sweep(
        self,
        compiled: Compiled,
        values: np.ndarray,
        x: np.ndarray,
        d: np.ndarray | None,
        rows: np.ndarray,
    ) -> bool:
        """Solve ``len(rows)`` samples in one analysis.

        The per-sample sources read their values from tables indexed by a swept source
        (:func:`circuitep.netlist.write_sweep`), so ngspice sets up and orders its matrix once, not
        once per sample. Writes ``x[rows]`` (and ``d[rows]``) and returns True; returns False where
        the sweep does not converge (the caller then solves those samples one by one, with ``op``'s
        retries).
        """
        if len(rows) < 2:
            return False
        text = write_sweep(
            compiled.netlist, {s.name: values[:, k] for k, s in enumerate(compiled.sources)}
        )
        names = list(compiled.free_nodes) + (list(compiled.adjoint_nodes) if d is not None else [])
        what = f"network {compiled.network.name!r}, {compiled.phase} phase"
        got = self.sweep_vectors(text, len(rows), names, what)
        if got is None:
            if self._last_sweep_timed_out:  # solved again one op each, nor swept again
                self._unswept.add(_phase_key(compiled.phase, compiled.cost))
            return False
        x[rows] = np.stack([got[n] for n in compiled.free_nodes], axis=1)
        if d is not None:
            d[rows] = np.stack([got[n] for n in compiled.adjoint_nodes], axis=1)
        return True

    def sweep_vectors(
        self, text: str, n: int, names: list[str], what: str
    ) -> dict[str, np.ndarray] | None:
        """Load a sweep netlist (:func:`circuitep.netlist.write_sweep`), run its ``n`` points, read.

        Parameters
        ----------
        text : str
            The netlist, swept by :data:`~circuitep.netlist.SWEEP_SOURCE` over ``0 .. n-1``.
        n : int
            Points (samples), >= 2.
        names : list of str
            Vectors to read: node voltages and saved device parameters.
        what : str
            The circuit, for error messages.

        Returns
        -------
        dict of str to numpy.ndarray or None
            Each vector ``(n,)``; None where the sweep does not converge, ends early or runs past
            ``timeout`` (then :attr:`_last_sweep_timed_out` is set).

        Raises
        ------
        NgspiceError
            For other ngspice errors.
        """
        self._last_sweep_timed_out = False
        token = object()
        self._session.add_circuit(token, text)
        try:
            errors = self._session.run(f"dc {SWEEP_SOURCE} 0 {n - 1} 1", self.timeout)
            if errors is None:  # solved again one op each, each with its own time limit
                self._last_sweep_timed_out = True
                return None
            if errors:
                if any(_NONCONVERGENCE.search(e) for e in errors):
                    return None
                raise NgspiceError(
                    f"ngspice: {what}, sweep over {n} samples: {' | '.join(errors[:3])}"
                )
            got = {name: self._session.vector(name) for name in names}
            if any(v.shape[0] != n for v in got.values()):  # cut short without an error line
                return None
            self.sweeps += 1
            return got
        finally:
            if token in self._session.order:  # else ngspice was reset after a timeout
                self._session.command("destroy all")
                self._session.remove(token)

    def settle(self, net: Network, inputs, t_stop: float | None = None) -> np.ndarray:
        """Free-node voltages at the end of a transient from rest (all capacitors discharged).

        Confirms a DC operating point physically: a non-reciprocal circuit can have a DC solution
        it never settles into.

        Parameters
        ----------
        net : Network
            The circuit, free phase.
        inputs : array_like, shape (batch, n_inputs)
            Primary input voltages in V.
        t_stop : float, optional
            End time in s; default 200 of the slowest node time constants ``C / G_leak``.

        Returns
        -------
        ndarray, shape (batch, n_free)
            Voltages in V at ``t_stop``.

        Raises
        ------
        NgspiceError
            When the transient fails (the message names the sample).
        """
        u, _, _ = check_batch(net, Phase(), inputs, None, None)
        compiled = self.load(net, Phase())
        circuit = self._session.current
        if t_stop is None:
            cap = np.concatenate([g.capacitance for g in net.free_groups])
            leak = np.concatenate([g.leak for g in net.free_groups])
            t_stop = 200 * float(np.max(cap / np.maximum(leak, 1e-12)))
        values = source_values(compiled, u, None, np.zeros((u.shape[0], net.n_free)))
        x = np.empty((u.shape[0], net.n_free))
        for b in range(u.shape[0]):
            self._drive(circuit, values[b])
            errors = self._run(
                f"tran {spice_number(t_stop / 1000)} {spice_number(t_stop)} uic",
                f"network {net.name!r}, transient from rest",
                [b],
            )
            if errors:
                raise NgspiceError(
                    f"ngspice: network {net.name!r}, transient from rest, sample {b}: "
                    f"{' | '.join(errors[:3])}"
                )
            x[b] = [self._session.vector(n)[-1] for n in compiled.free_nodes]
            self._session.command("destroy all")
        return x

    def transient(
        self,
        net: Network,
        phase: Phase,
        inputs,
        targets=None,
        x0=None,
        x_start=None,
        t_stop: float = 1e-6,
        steps: int = 10000,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Transient of one sample of ``phase`` by ngspice (``tran t_stop/steps t_stop uic``).

        The capacitors' initial conditions are set to 0 again afterwards (:meth:`settle` starts from
        rest).

        Parameters
        ----------
        net : Network
            The circuit.
        phase : Phase
            Free or nudged (AEP included); the dyadic circuit is not supported.
        inputs : array_like, shape (1, n_inputs)
            Primary input voltages in V.
        targets, x0 : array_like, optional
            As in :meth:`solve`.
        x_start : array_like, shape (1, n_free) or (n_free,), optional
            Every capacitor's starting voltage in V (default: at rest, 0 V).
        t_stop : float
            End time in s.
        steps : int
            Number of time steps (the step is ``t_stop / steps``).

        Returns
        -------
        t : ndarray, shape (n_t,)
            Times in s, from 0.
        x : ndarray, shape (n_t, n_free)
            Free-node voltages in V.

        Raises
        ------
        ValueError
            For a dyadic phase, a batch of more than one sample or a bad ``x_start``.
        NgspiceError
            When the transient fails.
        """
        if phase.dyadic:
            raise ValueError("a transient of the dyadic (doubled) circuit is not supported")
        u, y, x0 = check_batch(net, phase, inputs, targets, x0)
        if u.shape[0] != 1:
            raise ValueError(f"a transient is of one sample, got a batch of {u.shape[0]}")
        start = (
            np.zeros(net.n_free)
            if x_start is None
            else np.asarray(x_start, dtype=float).reshape(-1)
        )
        if start.shape != (net.n_free,) or not np.isfinite(start).all():
            raise ValueError(f"x_start has shape {start.shape}, expected finite ({net.n_free},)")
        compiled = self.load(net, phase)
        circuit = self._session.current
        self._drive(
            circuit,
            source_values(compiled, u, y, x0 if x0 is not None else np.zeros((1, net.n_free)))[0],
        )
        index = {n: k for k, n in enumerate(compiled.free_nodes)}
        caps = [
            (el.name, index[el.nodes[0]])
            for el in compiled.netlist.elements()
            if el.letter == "C" and el.nodes[0] in index
        ]
        what = f"network {net.name!r}, phase {phase.label}, transient"
        self._initial_conditions([(name, start[k]) for name, k in caps])
        # past the time limit ngspice is halted and its circuits dropped: nothing left to reset
        errors = self._run(
            f"tran {spice_number(t_stop / steps)} {spice_number(t_stop)} uic", what, [0]
        )
        try:
            if errors:
                raise NgspiceError(f"ngspice: {what}: {' | '.join(errors[:3])}")
            t = self._session.vector("time")
            x = np.stack([self._session.vector(n) for n in compiled.free_nodes], axis=1)
        finally:
            self._session.command("destroy all")
            self._initial_conditions([(name, 0.0) for name, _ in caps])
        if t[0] > 0:  # ngspice's vectors may start after t = 0
            t, x = np.concatenate([[0.0], t]), np.concatenate([start[None], x])
        return t, x

    def _initial_conditions(self, values: list[tuple[str, float]]) -> None:
        """``alter`` the ``ic`` of capacitors, several per command."""
        batch = ""
        for name, v in values:
            cmd = f"alter {name} ic = {spice_number(float(v))}"
            if batch and len(batch) + len(cmd) + 1 > _MAX_COMMAND:
                self._session.checked(batch)
                batch = ""
            batch = f"{batch};{cmd}" if batch else cmd
        if batch:
            self._session.checked(batch)

    def sensitivities(self, net: Network, inputs) -> dict[str, np.ndarray]:
        """DC sensitivities of the output voltages by ngspice (``sens v(o)``), free phase.

        Parameters
        ----------
        net : Network
            The circuit (best compiled with ``form="literal"``, whose elements are the network's).
        inputs : array_like, shape (batch, n_inputs)
            Primary input voltages in V.

        Returns
        -------
        dict of str to ndarray, shape (batch, n_out)
            ``d v_o / d value`` for every resistor (V per Ohm), VCCS (V per S of gain) and current
            source (V per A) of the loaded netlist, by element name.

        Raises
        ------
        NgspiceError
            When an analysis fails.
        """
        u, _, _ = check_batch(net, Phase(), inputs, None, None)
        # A circuit of its own, removed afterwards: measured on ngspice 46, a second ``sens`` on one
        # circuit sets every VCCS gain to zero for good (``alter`` cannot set it again), and later
        # operating points of that circuit are wrong. ``reset`` restores the netlist's values (39
        # and 46), so every ``sens`` runs on a reset circuit with the sample's sources altered in.
        # Measured on ngspice 39: the first ``sens`` after an ``alter`` linearises the diodes at the
        # previous state (errors up to 100 % on clamped nodes); a second one is right, so 39 (and
        # anything older than 46, not measured) gets a warm-up ``sens`` first.
        warm_up = self._session.version is None or self._session.version < 46
        compiled = self._compile(net, Phase())
        circuit = _Circuit(compiled, {}, net, 0.0)
        self._session.add_circuit(circuit, compiled.text)
        self.loads += 1
        generation = self._session.generation
        values = source_values(compiled, u, None, np.zeros((u.shape[0], net.n_free)))
        outs = [net.free_nodes[k] for k in net.output_index()]
        elements = [el for el in compiled.netlist.elements() if el.letter in "RGI"]
        result = {el.name: np.empty((u.shape[0], len(outs))) for el in elements}
        what = f"network {net.name!r}, free phase, sensitivities"
        try:
            for b in range(u.shape[0]):
                for k, node in enumerate(outs):
                    self._session.command("reset")
                    circuit.values = {}  # the netlist's again: every source is altered
                    self._drive(circuit, values[b])
                    if warm_up:
                        self._run(f"sens v({node})", what, [b])
                        self._session.command("destroy all")
                    errors = self._run(f"sens v({node})", what, [b])
                    if errors:
                        raise NgspiceError(
                            f"ngspice: network {net.name!r}, sens v({node}), sample {b}: "
                            f"{' | '.join(errors[:3])}"
                        )
                    for el in elements:
                        result[el.name][b, k] = self._session.vector(
                            f"{el.name}_gain" if el.letter == "G" else el.name
                        )[0]
                    self._session.command("destroy all")
        finally:
            if self._session.generation == generation and circuit in self._session.order:
                self._session.remove(circuit)
        return result

    def _op(self, net: Network, phase: Phase, sample: int) -> None:
        what = f"network {net.name!r}, phase {phase.label}, operating point"
        errors = self._run("op", what, [sample])
        if not errors:
            return
        if self.retry and any(_NONCONVERGENCE.search(e) for e in errors):
            self._session.command("option itl1=1000 gminsteps=100 srcsteps=100")
            try:
                errors = self._run("op", f"{what} with gmin and source stepping", [sample])
            finally:
                if self._generation == self._session.generation:
                    self._session.command("option itl1=100 gminsteps=10 srcsteps=10")
            if not errors:
                return
        kind = ConvergenceError if any(_NONCONVERGENCE.search(e) for e in errors) else NgspiceError
        raise kind(
            f"ngspice: network {net.name!r}, phase {phase.label}, sample {sample}: operating point "
            f"failed ({' | '.join(errors[:3])}); check the circuit has a DC path to ground at "
            "every node, "
            f"or loosen the tolerances"
        )


def one_operating_point(net: Network, phase: Phase) -> bool:
    """Whether the circuit of ``phase`` has a single operating point by its structure alone.

    This is when :meth:`NgspiceEngine.solve` may sweep: a sweep starts each sample from the previous
    one's solution, so on a multistable circuit its answers would depend on the order of the batch
    (measured on layered:12-8-4 at gain 1: shuffling 100 samples changed 43 of them, by up to
    3.2 V). True when the couplings between free groups are all resistors (a reciprocal network of
    monotone elements), or all transconductors forming no loop (a feedforward network: its AEP
    correction reverses each linear transconductor, which forms none either, but a tanh one keeps
    its forward drive beside the transposed linearisation). The nudge only adds monotone terms at
    the outputs, and the dyadic phase's adjoint half is linear.

    Parameters
    ----------
    net : Network
        The circuit.
    phase : Phase
        The phase to be solved (an AEP-corrected tanh network is not swept).

    Returns
    -------
    bool
    """
    if phase.correction is not None and phase.correction.form == "explicit":
        return False  # correction elements drive every coupling both ways: loops of any gain
    links = [c for c in net.couplings if net.group(c.src).free and net.group(c.dst).free]
    reciprocal = [kind_of(c).RECIPROCAL for c in links]
    if all(reciprocal):
        return True
    if (
        any(reciprocal)
        or (phase.aep and not all(kind_of(c).LINEAR for c in links))
        or any(c.src == c.dst for c in links)
    ):
        return False
    graph: dict[str, set[str]] = {}
    for c in links:
        graph.setdefault(c.dst, set()).add(c.src)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return False
    return True


def _phase_key(kind: str, cost) -> tuple:
    """Which loaded circuit a phase uses: one per kind (free, nudged, aep, dyadic) and cost."""
    return kind, repr(cost)


def check_timeout(timeout) -> None:
    """Check a time limit.

    Parameters
    ----------
    timeout : object
        The limit in s; must be a positive finite number (:func:`circuitep.checks.is_number`).

    Raises
    ------
    ValueError
        Naming ``timeout`` and the value otherwise.
    """
    if not is_number(timeout) or not 0 < timeout < np.inf:
        raise ValueError(f"timeout = {timeout!r} must be a positive number of seconds")


def _discard(session: _Session, circuits: dict) -> None:
    """An engine's circuits, for the session to remove at its next safe point."""
    session.garbage.extend(circuits.values())
    circuits.clear()


def available() -> bool:
    """Whether libngspice can be loaded in this process."""
    try:
        shared_ngspice()
    except NgspiceUnavailable:
        return False
    return True


def _same_structure(a: Compiled, b: Compiled) -> bool:
    """Same elements, nodes, models and expressions: only alterable values may differ."""
    ea, eb = a.netlist.elements(), b.netlist.elements()
    return (
        len(ea) == len(eb)
        and a.netlist.options == b.netlist.options
        and a.netlist.models == b.netlist.models
        and all(
            x.name == y.name
            and x.letter == y.letter
            and x.nodes == y.nodes
            and (x.letter not in "BD" or x.value == y.value)
            for x, y in zip(ea, eb, strict=True)
        )
    )
