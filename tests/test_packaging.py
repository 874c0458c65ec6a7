"""The installed distribution takes one top-level name, ``framework``.

The repository keeps its ``plugins/`` and ``workloads/`` folders; they install as
``framework.designs`` and ``framework.workloads`` (the symlinks of those names in
``framework/``), so no generic ``plugins`` or ``workloads`` package lands in site-packages.
A generated plugin package depends on this distribution by its real name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from framework import DISTRIBUTION
from framework.testing.scaffold import write_package

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_one_top_level_package(tmp_path: Path) -> None:
    """The plain-Python wheel (FRAMEWORK_NO_COMPILE=1: a minute less; the compiled one, as
    installed, is held to the same by tests/test_compiled.py)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300,
                   env={**os.environ, "FRAMEWORK_NO_COMPILE": "1"})
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith(DISTRIBUTION.replace("-", "_") + "-")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"framework"}
    assert "framework/designs/gfp_unmapped.py" in names
    assert "framework/workloads/secretmem.py" in names
    assert any(n.startswith("framework/workloads/data/") for n in names)


def test_the_source_folders_are_the_installed_subpackages() -> None:
    assert (ROOT / "framework" / "designs").resolve() == (ROOT / "plugins").resolve()
    assert (ROOT / "framework" / "workloads").resolve() == (ROOT / "workloads").resolve()


def test_scaffold_depends_on_the_real_distribution(tmp_path: Path) -> None:
    write_package("my-cache", tmp_path / "pkg", ("secretmem",))
    text = (tmp_path / "pkg" / "pyproject.toml").read_text()
    assert f'dependencies = ["{DISTRIBUTION}>=0.1,<0.2"]' in text
