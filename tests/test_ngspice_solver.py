"""ngspice's matrix solver: KLU where it is compiled in and faster, Sparse 1.3 otherwise."""

import subprocess

import numpy as np
import pytest

from circuitep.builders import from_shorthand
from circuitep.compiler import compile_network
from circuitep.engines.base import Phase
from circuitep.engines.ngspice_engine import (
    KLU_MIN_ELEMENTS,
    NgspiceEngine,
    resolve_solver,
    shared_session,
)
from circuitep.netlist import Netlist


def test_auto_takes_klu_for_large_circuits_where_it_is_compiled_in():
    assert resolve_solver("auto", 46, True, KLU_MIN_ELEMENTS) == "klu"
    assert resolve_solver("auto", 46, True, KLU_MIN_ELEMENTS - 1) == "sparse"
    assert resolve_solver("auto", 39, False, 10 * KLU_MIN_ELEMENTS) == "sparse"
    assert resolve_solver("sparse", 46, True, 10 * KLU_MIN_ELEMENTS) == "sparse"
    assert resolve_solver("klu", 46, True, 1) == "klu"


def test_klu_without_klu_is_a_named_error():
    with pytest.raises(ValueError, match=r"ngspice-39\) was compiled without KLU.*setup.sh"):
        resolve_solver("klu", 39, False)
    with pytest.raises(ValueError, match="solver 'umfpack' is not one of auto, klu, sparse"):
        resolve_solver("umfpack", 46, True)


def test_the_netlist_says_which_solver():
    net = from_shorthand("ff:4-3-2")
    compiled = compile_network(net, "free", "literal", solver="klu")
    assert ".options klu" in compiled.text.splitlines()
    assert ".options" not in " ".join(
        line for line in compile_network(net).text.splitlines() if "klu" in line or "sparse" in line
    )
    with pytest.raises(ValueError, match="solver 'fast' is not one of klu, sparse"):
        Netlist("* t", (), solver="fast")


@pytest.mark.ngspice
def test_klu_and_sparse_solve_the_same_circuit(tmp_path):
    """Same voltages from both (1e-11 V: ngspice's reltol 1e-10 on ~0.1 V), and ngspice says KLU."""
    session = shared_session()
    if not session.klu:
        pytest.skip(f"ngspice-{session.version} has no KLU")
    net = from_shorthand("layered:16-8-4", seed=2)
    u = np.random.default_rng(0).uniform(0, 1, (6, 16))
    got = {}
    for solver in ("sparse", "klu"):
        for sweep in (1, 100):
            op = NgspiceEngine(form="literal", sweep=sweep, solver=solver).solve(net, Phase(), u)
            assert op.tolerances["solver"] == solver
            assert op.tolerances["ngspice"] == session.version
            got[solver, sweep] = op.x
    for x in got.values():
        np.testing.assert_allclose(x, got["sparse", 1], rtol=0, atol=1e-11)
    # the standalone file: ngspice -b says which solver it used
    path = tmp_path / "klu.cir"
    path.write_text(compile_network(net, "free", "literal", solver="klu").spice())
    out = subprocess.run(
        ["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert "Using KLU as Direct Linear Solver" in out.stdout + out.stderr


@pytest.mark.ngspice
def test_auto_records_the_solver_of_each_circuit():
    session = shared_session()
    op = NgspiceEngine().solve(from_shorthand("ff:4-3-2"), Phase(), np.full((2, 4), 0.5))
    assert op.tolerances["solver"] == "sparse"  # small: Sparse is the faster
    assert NgspiceEngine().tolerance_dict["solver"] == "auto"
    if session.klu:
        with NgspiceEngine(solver="klu") as engine:
            op = engine.solve(from_shorthand("ff:4-3-2"), Phase(), np.full((2, 4), 0.5))
        assert op.tolerances["solver"] == "klu"
