"""The engine's handling of NULL allocations, per-site latency and workload stats."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.engine import Cell, freeze_sets, run_cell
from framework.kernel.ledger import Ledger
from framework.plugins import get_registry

HEADER = "op,id,site,size,perm,zero,node,freed_by\n"


def run_trace(tmp_path: Path, rows: str, **sets: dict[str, str]) -> dict:  # type: ignore[type-arg]
    path = tmp_path / "t.csv"
    path.write_text(HEADER + rows)
    all_sets = {"machine": {"mem_gib": "4"}, "trace": {"path": str(path)}, **sets}
    return run_cell(Cell("baseline", "trace", "default", 1, freeze_sets(all_sets)),
                    get_registry())


def test_null_allocation_is_counted_and_its_write_and_free_skipped(tmp_path: Path) -> None:
    """An order-10 buddy failure injected for every order-10 request: the 4 MiB kernel
    allocation (get_order = 10) gets NULL; its write and free are skipped, the run goes on and
    the next allocation succeeds."""
    result = run_trace(tmp_path, "alloc,1,kernel,4194304,RW,1,,\n"
                                 "write,1,,,,,,\n"
                                 "free,1,,,,,,\n"
                                 "alloc,2,kernel,4096,RW,1,,\n"
                                 "free,2,,,,,,\n",
                       faults={"alloc_fail_orders": "10"})
    assert result["metrics"]["alloc_failures"] == 1
    assert result["violation_counts"] == {}
    assert result["latency_by_site"]["kernel"]["allocs"] == 2
    assert result["latency_by_site"]["kernel"]["frees"] == 1


def test_latency_by_site(tmp_path: Path) -> None:
    """Each site gets its own samples. The first secretmem fault steals a block and splits a
    PMD (see test_kernel_scenarios), so its cycles include a split; the plain kernel page's
    do not: the secretmem alloc p50 is above the kernel one."""
    result = run_trace(tmp_path, "alloc,1,secretmem,4096,UNMAPPED,1,,GENERIC\n"
                                 "alloc,2,kernel,4096,RW,0,,\n"
                                 "free,1,,,,,,\n"
                                 "free,2,,,,,,\n")
    sites = result["latency_by_site"]
    assert set(sites) == {"secretmem", "kernel"}
    assert sites["secretmem"]["alloc_p50_cycles"] > sites["kernel"]["alloc_p50_cycles"] > 0
    assert result["metrics"]["alloc_max_cycles"] == sites["secretmem"]["alloc_max_cycles"]


def test_ftrace_workload_stats_reach_the_result(tmp_path: Path) -> None:
    trace = tmp_path / "k.txt"
    trace.write_text("bash-1 [000] ..... 1.000000: mm_page_alloc: page=0 pfn=0x1000 order=0 "
                     "migratetype=0 gfp_flags=GFP_KERNEL\n"
                     "bash-1 [000] ..... 1.000001: mm_page_free: page=0 pfn=0x1000 order=0\n"
                     "bash-1 [000] ..... 1.000002: mm_page_free: page=0 pfn=0x2000 order=0\n")
    sets = {"machine": {"mem_gib": "4"}, "ftrace": {"path": str(trace)}}
    result = run_cell(Cell("baseline", "ftrace", "default", 1, freeze_sets(sets)),
                      get_registry())
    stats = result["workload_stats"]
    assert (stats["allocs"], stats["frees"], stats["unknown_frees"]) == (1, 1, 1)


def test_ledger_charges_reach_category_and_total_and_reject_unknown_names() -> None:
    """Ledger.charge: 400 + 150 to ``cpa`` and 897 to ``zeroing`` give cpa 550, zeroing 897,
    total 1447; the category map is read-only, and a counter name is not a category."""
    led = Ledger()
    led.charge("cpa", 400)
    led.charge("cpa", 150)
    led.charge("zeroing", 897)
    assert (led.cycles["cpa"], led.cycles["zeroing"], led.total_cycles) == (550, 897, 1447)
    assert sum(led.cycles.values()) == led.total_cycles
    with pytest.raises(TypeError):
        led.cycles["cpa"] += 1  # type: ignore[index]
    with pytest.raises(KeyError):
        led.charge("cpa_calls", 1)
