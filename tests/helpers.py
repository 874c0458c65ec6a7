"""Helpers shared by the design tests: counter snapshots, debugfs rows, event lists, cells."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from framework.engine import Cell, freeze_sets, run_cell
from framework.kernel.kernel import Kernel
from framework.plugins import get_registry
from framework.request import ALLOC, WRITE, Allocation, Event, Request

SECRET = Request("secretmem", 4096, "UNMAPPED", True, None, "GENERIC")
BPF512 = Request("bpf_prog", 512, "ROX", False)


def counters(k: Kernel) -> dict[str, int]:
    """DirectMap, splits, page tables, full and range flushes, IPIs, CPA calls."""
    led = k.ledger
    return {
        **k.directmap.meminfo(),
        "l2": led.direct_map_level2_splits, "l3": led.direct_map_level3_splits,
        "pt": k.directmap.pagetable_pages(), "flush_all": led.tlb_flush_all,
        "flush_range": led.tlb_flush_range, "ipis": led.tlb_ipis, "cpa": led.cpa_calls,
    }


def unmapped_counters(k: Kernel) -> dict[str, int]:
    """DirectMap, splits, page tables, flushes by kind, IPIs, CPA calls, zeroed pages."""
    led = k.ledger
    return {
        **k.directmap.meminfo(), "l2": led.direct_map_level2_splits,
        "l3": led.direct_map_level3_splits, "pt": k.directmap.pagetable_pages(),
        "flush_all": led.tlb_flush_all, "flush_range": led.tlb_flush_range,
        "flush_local": led.tlb_flush_local, "ipis": led.tlb_ipis, "cpa": led.cpa_calls,
        "zeroed": led.zeroed_pages,
    }


def row(order: int, value: int = 1) -> list[int]:
    """A debugfs row with ``value`` at ``order`` and 0 elsewhere."""
    return [value if o == order else 0 for o in range(11)]


def secret_pages(n: int, start: int = 1) -> list[Event]:
    """``n`` secretmem faults, each written, ids from ``start``."""
    out = []
    for i in range(start, start + n):
        out += [Event(ALLOC, i, SECRET), Event(WRITE, i, None, 4096)]
    return out


def load_1000(alloc: Any) -> list[Allocation]:
    """1,000 BPF programs of 512 B, each written once through the design."""
    progs = []
    for _ in range(1000):
        prog = alloc.alloc(BPF512)
        assert prog is not None
        alloc.write(prog, 0)
        progs.append(prog)
    return progs


SMALL_MEM_GIB = {"background": "1"}  # workloads that fill the whole machine first


def cell_result(plugin: str, workload: str, sets: dict[str, dict[str, str]]) -> dict[str, Any]:
    """One cell on a 4 GiB default machine (1 GiB for the machine-filling ``background``)."""
    mem = SMALL_MEM_GIB.get(workload, "4")
    cell = Cell(plugin, workload, "default", 1, freeze_sets({**sets, "machine": {"mem_gib": mem}}))
    return run_cell(cell, get_registry())


FIXTURES = Path(__file__).parent / "fixtures"


def load_file(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` (not in a package: fixtures, scripts, benchmarks) as a new
    module called ``name``, not registered in ``sys.modules``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_broken_allocators() -> ModuleType:
    """tests/fixtures/broken_allocators.py as a module (once per process)."""
    module = load_file(FIXTURES / "broken_allocators.py", "broken_allocators")
    sys.modules.setdefault("broken_allocators", module)
    return module


def first_difference(want: str, got: str, context: int = 3) -> str:
    """The first line that differs, with ``context`` lines before it from both sides.
    (A line-by-line scan: difflib's matcher is quadratic on two large, mostly different
    JSON texts and would take minutes to say that they differ.)"""
    old, new = want.splitlines(), got.splitlines()
    pairs = enumerate(zip(old, new, strict=False))  # the shorter text may end first
    at = next((i for i, (a, b) in pairs if a != b), min(len(old), len(new)))
    lo = max(0, at - context)
    return "\n".join([f"first difference at line {at + 1}:",
                      *(f"  golden: {line}" for line in old[lo:at + 1]),
                      *(f"  now:    {line}" for line in new[lo:at + 1])])


def same_text(want: str, got: str) -> None:
    """Fail with :func:`first_difference` unless the texts are equal (not a bare ``==``
    assert: pytest's own explanation diffs the whole texts, quadratic on large JSON)."""
    if want != got:
        pytest.fail(first_difference(want, got), pytrace=False)
