"""The tree passes ``ruff check`` and ``ruff format --check`` (configuration: pyproject.toml).

Skipped, visibly, until the tree has been formatted once: the element-registry rewrite of issue 15
was in flight when the configuration was added, and formatting under it would have conflicted.
After merging it, run from the repository root::

    .venv/bin/ruff format .
    .venv/bin/ruff check --fix .
    # then fix by hand what is left (long strings and comments, zip(strict=...)), and set
    # LINT_CLEAN = True below
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Set to True once ``ruff format`` and ``ruff check --fix`` have been run over the tree.
LINT_CLEAN = True

pytestmark = pytest.mark.skipif(
    not LINT_CLEAN,
    reason="LINT_CLEAN = True in tests/test_lint.py: the tree is not ruff-formatted yet "
    "(run `ruff format . && ruff check --fix .`, fix the rest, then set it to True)",
)


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_ruff_check_finds_nothing():
    result = _ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, f"ruff check:\n{result.stdout}{result.stderr}"


def test_ruff_format_changes_nothing():
    result = _ruff("format", "--check", "--diff", ".")
    assert result.returncode == 0, f"ruff format --check:\n{result.stdout}{result.stderr}"
