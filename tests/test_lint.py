"""The tree stays ruff-clean and mypy --strict clean (the configuration is in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean() -> None:
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff")
    assert ruff, "ruff is part of the test extra"
    proc = subprocess.run([ruff, "check", "--quiet", str(ROOT)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_clean() -> None:
    """``mypy --strict`` over framework/, plugins/, workloads/, benchmarks/ and scripts/
    (configured in pyproject.toml, ``[tool.mypy]``)."""
    beside = Path(sys.executable).parent / "mypy"
    mypy = str(beside) if beside.exists() else shutil.which("mypy")
    assert mypy, "mypy is part of the test extra"
    proc = subprocess.run([mypy, "--no-error-summary", "--cache-dir",
                           str(ROOT / ".mypy_cache")], capture_output=True, text=True,
                          check=False, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
