"""``new-plugin`` refusals and options, the message for a plugin that fails to import, where
``check-plugin`` keeps hypothesis's files, and a design charging its own cycles (the
example of docs/plugin-guide.md, "Charging the design's own cycles")."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from framework.allocator import Allocator
from framework.engine import Cell, freeze_sets, run_cell
from framework.kernel.callsites import StatusQuo
from framework.plugins import build_registry, plugin_manager
from framework.request import Allocation, Request
from tests.test_cli import framework_exe, one_line_error, run

HEADER = "op,id,site,size,perm,zero,node,freed_by"


@pytest.mark.parametrize(("name", "needle"), [
    ("baseline", "'baseline' is already registered"),
    ("gfp-unmapped", "already registered"),
    ("secretmem", "already registered"),  # a workload: --set secretmem.* would be ambiguous
    ("machine", "is a --set scope"),
    ("faults", "is a --set scope"),
])
def test_new_plugin_refuses_taken_names(tmp_path: Path, name: str, needle: str) -> None:
    proc = run("new-plugin", name, "--out", str(tmp_path / "p"))
    one_line_error(proc, needle)
    assert not (tmp_path / "p").exists()


def test_new_plugin_refuses_unknown_sites(tmp_path: Path) -> None:
    proc = run("new-plugin", "ok", "--out", str(tmp_path / "p"), "--covers",
               "secretmem,secretmen")
    one_line_error(proc, "unknown site 'secretmen'", "expected one of secretmem")
    assert not (tmp_path / "p").exists()


def _generate(tmp_path: Path, *extra: str) -> Path:
    out = tmp_path / "framework-my-cache"
    proc = run("new-plugin", "my-cache", "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return out


def test_new_plugin_has_no_variant_unless_asked(tmp_path: Path) -> None:
    out = _generate(tmp_path)
    module = (out / "framework_my_cache" / "__init__.py").read_text(encoding="utf-8")
    tests = (out / "tests" / "test_framework_my_cache.py").read_text(encoding="utf-8")
    ast.parse(module)
    ast.parse(tests)
    assert "variant" not in module and "variant" not in tests
    assert "    params = ()" in module
    assert "return (MyCacheAllocator, {})" in tests
    assert "ledger.charge" in module  # the skeleton says how to charge the design's work


def test_new_plugin_variants_when_asked(tmp_path: Path) -> None:
    out = _generate(tmp_path / "v", "--variants")
    module = (out / "framework_my_cache" / "__init__.py").read_text(encoding="utf-8")
    tests = (out / "tests" / "test_framework_my_cache.py").read_text(encoding="utf-8")
    ast.parse(module)
    ast.parse(tests)
    assert 'Param("variant", str, "posted"' in module
    assert '@pytest.fixture(params=["posted", "fixed"])' in tests
    assert "--set my-cache.variant=fixed" in (out / "README.md").read_text(encoding="utf-8")


def test_new_plugin_depends_on_the_installed_distribution(tmp_path: Path) -> None:
    """This repository's pyproject.toml names the distribution ``directmap-framework``,
    version 0.1.0, so the generated package requires ``directmap-framework>=0.1,<0.2``."""
    root = Path(__file__).parent.parent
    project = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert 'name = "directmap-framework"\nversion = "0.1.0"\n' in project
    out = _generate(tmp_path)
    generated = (out / "pyproject.toml").read_text(encoding="utf-8").splitlines()
    assert 'dependencies = ["directmap-framework>=0.1,<0.2"]' in generated


def test_check_plugin_keeps_hypothesis_files_in_the_cache(tmp_path: Path) -> None:
    cwd = tmp_path / "work"
    cwd.mkdir()
    cache = tmp_path / "cache"
    proc = _run_in(cwd, {"XDG_CACHE_HOME": str(cache)}, "check-plugin", "baseline",
                   "--examples", "2", "--steps", "3", "--long", "0",
                   "--workload-events", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(cwd.iterdir()) == []
    assert (cache / "framework" / "hypothesis").is_dir()


def _run_in(cwd: Path, env: dict[str, str], *args: str) -> Any:
    full = {k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"}
    full.update({"FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1", **env})
    return subprocess.run([framework_exe(), *args], capture_output=True, text=True, env=full,
                          cwd=cwd, timeout=300, check=False)


class ChargingDesign(Allocator):
    """The status quo for ``kernel`` requests plus 1000 cycles of the design's own work on
    every alloc, charged as docs/plugin-guide.md shows."""

    name = "charging"
    summary = source = "test design"
    covers = frozenset({"kernel"})

    def __init__(self, kernel: Any, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.statusquo = StatusQuo(kernel)

    def alloc(self, request: Request) -> Allocation | None:
        self.kernel.ledger.charge("slab", 1000)
        return self.statusquo.alloc(request)

    def free(self, allocation: Allocation) -> None:
        self.statusquo.free(allocation)

    def cache_pages(self) -> int:
        return self.statusquo.cache_pages()


def test_charged_cycles_show_in_latency_and_total(tmp_path: Path) -> None:
    """Three kernel allocations, each charged 1000 cycles more than the status quo's: the
    median alloc latency is 1000 cycles higher and the total 3 x 1000 higher."""
    trace = tmp_path / "t.csv"
    rows = [f"alloc,{i},kernel,4096,RW,1,,OWNER" for i in (1, 2, 3)]
    trace.write_text("\n".join([HEADER, *rows, *(f"free,{i},,,,,," for i in (1, 2, 3))])
                     + "\n", encoding="utf-8")
    reg = build_registry(plugin_manager())
    reg.allocators["charging"] = ChargingDesign
    sets = freeze_sets({"machine": {"mem_gib": "2"}, "trace": {"path": str(trace)}})
    base = run_cell(Cell("baseline", "trace", "default", 1, sets), reg)["metrics"]
    mine = run_cell(Cell("charging", "trace", "default", 1, sets), reg)["metrics"]
    assert mine["alloc_p50_cycles"] == base["alloc_p50_cycles"] + 1000
    assert mine["cycles_total"] == base["cycles_total"] + 3000
    assert mine["free_p50_cycles"] == base["free_p50_cycles"]
