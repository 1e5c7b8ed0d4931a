"""ngspice never runs what it finds in the working directory or the user's home (issue 14)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from circuitep.builders import from_shorthand
from circuitep.engines.base import Phase
from circuitep.engines.pool import PoolEngine

pytestmark = pytest.mark.ngspice

ROOT = Path(__file__).resolve().parents[1]
INIT_FILES = (".spiceinit", "spice.rc")


def hostile_folders(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """A working directory and a home directory, each with every init file name ngspice knows,
    each file running ``shell touch`` of its own marker; returns (work, home, markers)."""
    markers = []
    for place in ("work", "home"):
        (tmp_path / place).mkdir()
        for name in INIT_FILES:
            marker = tmp_path / f"ran-{place}-{name.strip('.')}"
            (tmp_path / place / name).write_text(f"* hostile\nshell touch {marker}\n")
            markers.append(marker)
    return tmp_path / "work", tmp_path / "home", markers


def run(code: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_hostile_init_file_is_live(tmp_path):
    """Control: PySpice's own binding, started in the folder, does run its .spiceinit, so the
    tests below would see the marker if circuitep let ngspice read it."""
    work, home, markers = hostile_folders(tmp_path)
    done = run(["-c", "from PySpice.Spice.NgSpice.Shared import NgSpiceShared; NgSpiceShared()"], work, home)
    assert done.returncode == 0, done.stderr
    assert markers[0].exists(), f"ngspice did not run {work / '.spiceinit'}: the control is void"


def test_the_cli_reads_no_init_file(tmp_path):
    work, home, markers = hostile_folders(tmp_path)
    done = run(["-m", "circuitep.cli", "simulate", "ff:3-2-2", "--inputs", "0.1,0.2,0.3"], work, home)
    assert done.returncode == 0, done.stderr
    assert "out_0" in done.stdout
    assert not [m.name for m in markers if m.exists()]


def test_the_in_process_engine_restores_cwd_and_home(tmp_path):
    """Started in the hostile folder, the engine solves, and leaves cwd and HOME as they were."""
    work, home, markers = hostile_folders(tmp_path)
    code = ("import os, numpy as np; from circuitep.builders import from_shorthand; "
            "from circuitep.engines.base import Phase; from circuitep.engines.ngspice_engine import NgspiceEngine; "
            "x = NgspiceEngine().solve(from_shorthand('ff:3-2-2'), Phase(), np.full((1, 3), 0.2)).x; "
            "print(os.getcwd(), os.environ['HOME'], np.isfinite(x).all())")
    done = run(["-c", code], work, home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(work), str(home), "True"]
    assert not [m.name for m in markers if m.exists()]


def test_pool_workers_read_no_init_file(tmp_path, monkeypatch):
    work, home, markers = hostile_folders(tmp_path)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    net = from_shorthand("ff:3-2-2")
    with PoolEngine(workers=2, timeout=60) as pool:
        x = pool.solve(net, Phase(), np.full((4, 3), 0.2)).x
    assert np.isfinite(x).all()
    assert not [m.name for m in markers if m.exists()]
