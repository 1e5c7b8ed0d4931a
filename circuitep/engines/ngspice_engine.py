"""The simulator of record: ngspice through PySpice's shared-library binding.

A phase's netlist is loaded once; per sample only the sources that changed are ``alter``-ed and
``op`` is run; node voltages are read back directly from ngspice's vectors. When the network's
parameters change but its structure does not, the changed element values are ``alter``-ed into
the loaded circuit instead of rebuilding it (DESIGN.md §3).

PySpice 1.5 on Debian's ngspice needs a few fixes, made here and nowhere else:
the unversioned ``libngspice.so`` (package ``libngspice0-dev``) or ``NGSPICE_LIBRARY_PATH``; the
"Unsupported Ngspice version" warning is harmless; ``ngSpice_Command`` returns 0 even when a
command fails, so stderr lines are classified here (informational lines such as "Using SPARSE"
and "Note:" are not errors); vectors are read as float64 arrays and indexed, never ``float()``-ed.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

import numpy as np

try:
    from PySpice.Spice.NgSpice.Shared import FFI, NgSpiceShared, ffi
except ImportError:  # reported with an install hint when an engine is created
    NgSpiceShared = None

from circuitep.compiler import Compiled, Tolerances, compile_network, source_values
from circuitep.engines.base import ConvergenceError, OperatingPoint, Phase, check_batch
from circuitep.netlist import Element, spice_number, write
from circuitep.spec import Network

INSTALL_HINT = ("install ngspice's shared library: apt-get install ngspice libngspice0-dev "
                "(or set NGSPICE_LIBRARY_PATH to libngspice.so.0)")
#: stderr lines that are information, not errors (ngspice 39-44).
_INFO = re.compile(r"^(Using SPARSE|Note:|Warning:|Supplies reduced|Trying gmin|Gmin step|Source step|"
                   r"gmin stepping|source stepping|Unsupported Ngspice|\s*$)", re.IGNORECASE)
#: stderr lines saying an analysis failed to converge.
_NONCONVERGENCE = re.compile(r"(Timestep too small|singular matrix|iteration limit|gmin stepping failed|"
                             r"source stepping failed|simulation\(s\) aborted|doAnalyses|no convergence)",
                             re.IGNORECASE)
_ALTER_VALUE = {"R": "", "C": "", "V": "dc", "I": "dc", "G": "gain"}
_MAX_COMMAND = 1023


class NgspiceUnavailable(RuntimeError):
    """libngspice could not be loaded; the message says how to install it."""


class NgspiceError(RuntimeError):
    """ngspice reported an error for a command; the message quotes it."""


class _VersionFilter(logging.Filter):
    def filter(self, record):
        return "Unsupported Ngspice version" not in record.getMessage()


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
        return NgSpiceShared(ngspice_id=0, send_data=False)
    except OSError as exc:
        raise NgspiceUnavailable(f"cannot load libngspice ({exc}): {INSTALL_HINT}") from exc


class _Session:
    """Commands to the shared ngspice with stderr classified and vectors read as arrays."""

    def __init__(self):
        self.ng = shared_ngspice()
        self.lib = self.ng._ngspice_shared  # the cffi library: PySpice's own wrappers raise on info lines
        self.calls = 0

    def command(self, text: str) -> list[str]:
        """Run one command; return stderr lines that are not information. Never raises on them."""
        if len(text) > _MAX_COMMAND:
            raise ValueError(f"ngspice command longer than {_MAX_COMMAND} characters")
        self.ng.clear_output()
        self.calls += 1
        if self.calls % 5000 == 0:  # ngspice keeps every command in its history
            self.lib.ngSpice_Command(FFI.NULL)
        self.lib.ngSpice_Command(text.encode("ascii"))
        return [line for line in self.ng._stderr if not _INFO.match(line)]

    def checked(self, text: str) -> None:
        errors = self.command(text)
        if errors:
            raise NgspiceError(f"ngspice command {text[:80]!r} failed: {' | '.join(errors)}")

    def load(self, text: str) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        self.command("destroy all")
        self.ng.clear_output()
        self._circ(lines)
        errors = [line for line in self.ng._stderr if not _INFO.match(line)]
        errors += [line for line in self.ng._stdout if "error" in line.lower()]
        if errors:
            raise NgspiceError(f"ngspice rejected the netlist: {' | '.join(errors)}")

    def _circ(self, lines: list[str]) -> None:
        keep = [ffi.new("char[]", line.encode("ascii")) for line in lines] + [ffi.NULL]
        array = ffi.new("char *[]", keep)
        self.ng.clear_output()
        if self.lib.ngSpice_Circ(array):
            raise NgspiceError("ngSpice_Circ failed to load the netlist")

    def vector(self, name: str) -> np.ndarray:
        info = self.lib.ngGet_Vec_Info(name.encode("ascii"))
        if info == ffi.NULL or info.v_realdata == ffi.NULL:
            raise NgspiceError(f"ngspice has no vector {name!r}")
        n = info.v_length
        return np.frombuffer(ffi.buffer(info.v_realdata, n * 8), dtype=np.float64).copy()


@dataclass
class NgspiceEngine:
    """ngspice engine. Holds state: the loaded circuit and the source values it was last given.

    ``form`` chooses literal or folded netlists (folded: input-driven elements as Norton sources,
    much faster, same node voltages). ``tolerances`` go into every netlist's ``.options``.
    ``retry`` re-runs a failed operating point with more iterations and gmin and source stepping.
    """

    form: str = "folded"
    tolerances: Tolerances = Tolerances()
    retry: bool = True
    name: str = "ngspice"

    def __post_init__(self):
        self._session = _Session()
        self._loaded: Compiled | None = None
        self._values: dict[str, float] = {}
        self._key = None

    @property
    def tolerance_dict(self) -> dict:
        return {"reltol": self.tolerances.reltol, "vntol": self.tolerances.vntol,
                "abstol": self.tolerances.abstol, "gmin": self.tolerances.gmin, "form": self.form}

    # --- loading -------------------------------------------------------------------------

    def load(self, net: Network, phase: Phase) -> Compiled:
        """Make the circuit of ``phase`` the loaded one, altering values where only they changed."""
        kind = "aep" if phase.aep else phase.kind
        compiled = compile_network(net, kind, self.form, beta=phase.beta if kind != "free" else None,
                                   cost=phase.cost, tolerances=self.tolerances)
        key = (kind, self.form, repr(phase.cost))
        old = self._loaded
        if old is not None and self._key == key and self._same_structure(old, compiled):
            self._alter_elements(old, compiled)
        else:
            self._session.load(write(compiled.netlist))
            self._values = {el.name: el.value for el in compiled.netlist.elements()}
        self._loaded, self._key = compiled, key
        return compiled

    @staticmethod
    def _same_structure(a: Compiled, b: Compiled) -> bool:
        ea, eb = a.netlist.elements(), b.netlist.elements()
        return len(ea) == len(eb) and all(
            x.name == y.name and x.kind == y.kind and x.nodes == y.nodes and
            (x.kind not in "BD" or x.value == y.value) for x, y in zip(ea, eb))

    def _alter_elements(self, old: Compiled, new: Compiled) -> None:
        changes = [el for el in new.netlist.elements()
                   if el.kind in _ALTER_VALUE and self._values.get(el.name) != el.value
                   and not any(s.name == el.name for s in new.sources)]
        self._alter(changes)

    def _alter(self, elements: list[Element]) -> None:
        """``alter`` element values, several per command joined with ';'."""
        batch = ""
        for el in elements:
            param = _ALTER_VALUE[el.kind]
            cmd = f"alter {el.name} {param + ' ' if param else ''}= {spice_number(el.value)}"
            if len(batch) + len(cmd) + 1 > _MAX_COMMAND:
                self._session.checked(batch)
                batch = ""
            batch = f"{batch};{cmd}" if batch else cmd
            self._values[el.name] = el.value
        if batch:
            self._session.checked(batch)

    # --- solving -------------------------------------------------------------------------

    def solve(self, net: Network, phase: Phase, inputs, targets=None, x0=None, x_init=None) -> OperatingPoint:
        """Solve one phase for each sample; arrays as in :class:`circuitep.engines.base.Engine`.

        ``x_init`` is accepted for interface compatibility; ngspice starts each ``op`` from its
        previous solution, which is the warm start that matters here.
        """
        u, y, x0 = check_batch(net, phase, inputs, targets, x0)
        if phase.kind == "dyadic" and x0 is None:
            x0 = np.zeros((u.shape[0], net.n_free))
        compiled = self.load(net, phase)
        values = source_values(compiled, u, y, x0 if x0 is not None else np.zeros((u.shape[0], net.n_free)))
        names = [s.name for s in compiled.sources]
        batch = u.shape[0]
        x = np.empty((batch, net.n_free))
        d = np.empty((batch, net.n_free)) if compiled.adjoint_nodes else None
        for b in range(batch):
            changed = [Element(*self._source_spec(compiled, n), float(values[b, k]))
                       for k, n in enumerate(names) if self._values.get(n) != values[b, k]]
            self._alter(changed)
            self._op(net, phase, b)
            x[b] = [self._session.vector(n)[0] for n in compiled.free_nodes]
            if d is not None:
                d[b] = [self._session.vector(n)[0] for n in compiled.adjoint_nodes]
            if b % 200 == 199:
                self._session.command("destroy all")
        self._session.command("destroy all")
        return OperatingPoint(tuple(net.free_nodes), x, np.ones(batch, bool), np.zeros(batch, int), self.name,
                              phase, self.tolerance_dict, adjoint=d)

    @staticmethod
    def _source_spec(compiled: Compiled, name: str) -> tuple:
        el = compiled.netlist.element(name)
        return el.kind, el.name, el.nodes

    def _op(self, net: Network, phase: Phase, sample: int) -> None:
        errors = self._session.command("op")
        if not errors:
            return
        if self.retry and any(_NONCONVERGENCE.search(e) for e in errors):
            self._session.command("option itl1=1000 gminsteps=100 srcsteps=100")
            errors = self._session.command("op")
            self._session.command("option itl1=100 gminsteps=10 srcsteps=10")
            if not errors:
                return
        kind = ConvergenceError if any(_NONCONVERGENCE.search(e) for e in errors) else NgspiceError
        raise kind(f"ngspice: network {net.name!r}, phase {phase.label}, sample {sample}: operating point "
                   f"failed ({' | '.join(errors[:3])}); check the circuit has a DC path to ground at every node, "
                   f"or loosen the tolerances")


def available() -> bool:
    """Whether libngspice can be loaded in this process."""
    try:
        shared_ngspice()
    except NgspiceUnavailable:
        return False
    return True

