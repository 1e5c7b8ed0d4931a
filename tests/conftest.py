"""Shared pytest configuration: the ``--ngspice`` gate, ngspice engine fixtures, the MNIST
directory.

Simulator tests are gated, not silently skipped (STYLE.md item 11). Mark a test
``@pytest.mark.ngspice`` and choose the mode on the command line::

    pytest --ngspice=required       # CI: a missing libngspice is a test failure
    pytest --ngspice=if-available   # default: a missing libngspice is a visible skip, with why
    pytest --ngspice=disabled       # never touch ngspice (skip every ngspice test)

The fixtures below apply the same gate, so a test that asks for an ngspice engine but forgot the
marker is still gated.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

NGSPICE_MODES = ("required", "if-available", "disabled")


def pytest_addoption(parser):
    parser.addoption(
        "--ngspice",
        action="store",
        default="if-available",
        choices=NGSPICE_MODES,
        help="tests marked 'ngspice': required (fail if libngspice is missing), if-available "
        "(skip with the reason if missing; default) or disabled (skip them all)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ngspice: the test runs ngspice through its shared library; gated by --ngspice="
        "required|if-available|disabled",
    )


@functools.cache
def ngspice_status() -> tuple[bool, str]:
    """Whether libngspice loads in this process, and why not. Loads it at most once per session.

    Only the engine's own "cannot load" error (``NgspiceUnavailable``: PySpice missing or the shared
    library not found) counts as unavailable; an ImportError of circuitep itself or any other
    exception is a bug and propagates, so it can never turn into a quiet skip.
    """
    from circuitep.engines.ngspice_engine import NgspiceUnavailable, shared_ngspice

    try:
        shared_ngspice()
    except NgspiceUnavailable as exc:
        return False, f"libngspice is unavailable: {exc}"
    return True, "libngspice loaded"


def gate_ngspice(config) -> None:
    """Skip or fail the current test according to ``--ngspice`` and whether libngspice loads."""
    mode = config.getoption("--ngspice")
    if mode == "disabled":
        pytest.skip("ngspice tests disabled (--ngspice=disabled)")
    ok, why = ngspice_status()
    if ok:
        return
    if mode == "required":
        pytest.fail(f"--ngspice=required but {why}", pytrace=False)
    pytest.skip(f"{why}; run with --ngspice=required to make this a failure")


def pytest_report_header(config):
    mode = config.getoption("--ngspice")
    if mode == "disabled":
        return "ngspice: disabled"
    try:
        why = ngspice_status()[1]
    except Exception as exc:  # noqa: BLE001 - the header only reports; the tests themselves will error
        why = f"cannot check: {type(exc).__name__}: {exc}"
    return f"ngspice: {mode} ({why})"


def pytest_runtest_setup(item):
    if item.get_closest_marker("ngspice") is not None:
        gate_ngspice(item.config)


@pytest.fixture(scope="session")
def ngspice_engine_factory(request):
    """A function ``make(form="folded", **options) -> NgspiceEngine``, after the ngspice gate.

    libngspice is loaded once per process (``shared_ngspice`` caches the handle, and every engine
    shares it). Each call returns a *new* engine, which costs microseconds: an engine remembers
    which circuit it loaded last and only ``alter``s values when asked for the same structure
    again, but it does not notice when another engine has loaded a different circuit into the
    shared ngspice in between (see ``test_engines.py::test_two_engines_share_one_ngspice``). So a
    test uses one engine at a time, and engines are never shared between tests.
    """
    gate_ngspice(request.config)
    from circuitep.engines.ngspice_engine import NgspiceEngine

    def make(form: str = "folded", **options) -> NgspiceEngine:
        return NgspiceEngine(form=form, **options)

    return make


@pytest.fixture(scope="module")
def ngspice_pool(request):
    """A 2-worker :class:`~circuitep.engines.pool.PoolEngine` (folded form) shared by a module's
    tests, after the ngspice gate: spawning its workers costs about a second, so once per module.
    Each worker holds its own ngspice, so tests do not disturb one another through it."""
    gate_ngspice(request.config)
    from circuitep.engines.pool import PoolEngine

    with PoolEngine(workers=2) as pool:
        yield pool


@pytest.fixture
def ngspice_folded(ngspice_engine_factory):
    """A fresh folded-form ngspice engine for this test."""
    return ngspice_engine_factory("folded")


@pytest.fixture
def ngspice_literal(ngspice_engine_factory):
    """A fresh literal-form ngspice engine for this test."""
    return ngspice_engine_factory("literal")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory named by ``CIRCUITEP_MNIST_DIR``; skips (with the reason) when it is unset."""
    value = os.environ.get("CIRCUITEP_MNIST_DIR")
    if not value:
        pytest.skip(
            "CIRCUITEP_MNIST_DIR is unset: set it to a directory with the MNIST IDX files "
            "(e.g. ../shared/data/mnist)"
        )
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"CIRCUITEP_MNIST_DIR = {value!r} is not a directory", pytrace=False)
    return path
