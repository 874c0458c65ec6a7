"""Metrics of a run (names are a contract: docs/contracts.md, "Metrics and JSON
results").

:data:`METRICS` lists each metric with its unit and whether lower is better, which the
comparison tables use to print ``+`` for better. Names follow the kernel where it has one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from framework.kernel.consts import PAGE_SIZE
from framework.kernel.kernel import Kernel
from framework.tlb.sampler import tlb_metrics

if TYPE_CHECKING:
    from framework.engine import Runner


@attrs.frozen(slots=True)
class Metric:
    """A metric's name, unit, direction and one-line meaning."""

    name: str
    unit: str
    lower_is_better: bool
    help: str


METRICS: tuple[Metric, ...] = (
    Metric("DirectMap4k", "kB", True, "/proc/meminfo: direct map mapped with 4 KiB pages"),
    Metric("DirectMap2M", "kB", False, "/proc/meminfo: direct map mapped with 2 MiB pages"),
    Metric("DirectMap1G", "kB", False, "/proc/meminfo: direct map mapped with 1 GiB pages"),
    Metric("direct_map_level2_splits", "count", True, "/proc/vmstat: 2 MiB mappings split"),
    Metric("direct_map_level3_splits", "count", True, "/proc/vmstat: 1 GiB mappings split"),
    Metric("direct_map_level2_collapses", "count", False, "2 MiB mappings re-merged"),
    Metric("direct_map_level3_collapses", "count", False, "1 GiB mappings re-merged"),
    Metric("pagetable_pages", "pages", True, "page-table pages below the direct map's PUDs"),
    Metric("tlb_flush_all", "count", True, "flush_tlb_all on every CPU"),
    Metric("tlb_flush_range", "count", True, "per-page flushes on every CPU (<= 33 pages)"),
    Metric("tlb_flush_local", "count", True, "local-only flushes (text_poke)"),
    Metric("tlb_ipis", "count", True, "IPIs sent for TLB shootdowns"),
    Metric("cpa_calls", "count", True, "change_page_attr calls (set_memory_*, set_direct_map_*)"),
    Metric("text_poke_calls", "count", True, "text_poke chunks written"),
    Metric("alloc_failures", "count", True, "requests that got NULL"),
    Metric("cache_pages", "pages", True, "pages held in allocator caches at the end"),
    Metric("metadata_bytes", "bytes", True, "allocator bookkeeping at the end"),
    Metric("requested_bytes", "bytes", False, "peak bytes requested and live"),
    Metric("footprint_bytes", "bytes", True, "peak bytes taken from the buddy (no page tables)"),
    Metric("unmapped_served_mapped_bytes", "bytes", True,
           "bytes of UNMAPPED requests served still mapped"),
    Metric("zeroed_pages", "pages", True, "pages cleared"),
    Metric("alloc_p50_cycles", "cycles", True, "median alloc latency"),
    Metric("alloc_p99_cycles", "cycles", True, "99th percentile alloc latency"),
    Metric("alloc_max_cycles", "cycles", True, "worst alloc latency"),
    Metric("free_p50_cycles", "cycles", True, "median free latency"),
    Metric("free_p99_cycles", "cycles", True, "99th percentile free latency"),
    Metric("free_max_cycles", "cycles", True, "worst free latency"),
    Metric("cycles_total", "cycles", True, "all modelled cycles"),
    Metric("dtlb_miss_rate", "ratio", True, "L1 dTLB misses per kernel data access (model)"),
    Metric("stlb_miss_rate", "ratio", True, "STLB misses (page walks) per data access (model)"),
    Metric("walk_cycles_per_access", "cycles", True, "page-walk cycles per data access (model)"),
    Metric("est_slowdown_pct", "%", True,
           "estimated slowdown of CPU time vs the boot direct map in 1 GiB pages (model)"),
    Metric("est_slowdown_pct_low", "%", True, "est_slowdown_pct, low end of its band"),
    Metric("est_slowdown_pct_high", "%", True, "est_slowdown_pct, high end of its band"),
    Metric("itlb_miss_rate", "ratio", True, "L1 iTLB misses per instruction-page fetch (model)"),
    Metric("itlb_est_slowdown_pct", "%", True,
           "the part of est_slowdown_pct from module/BPF text not in 2 MiB pages"),
    Metric("violations", "count", True, "broken promises (see violations)"),
    Metric("events", "count", False, "events processed"),
)
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def snapshot(kernel: Kernel) -> dict[str, int]:
    """The direct-map and flush state now (for ``sample`` events and the final metrics)."""
    led = kernel.ledger
    dm = kernel.directmap
    return {
        **dm.meminfo(),
        "direct_map_level2_splits": led.direct_map_level2_splits,
        "direct_map_level3_splits": led.direct_map_level3_splits,
        "direct_map_level2_collapses": led.direct_map_level2_collapses,
        "direct_map_level3_collapses": led.direct_map_level3_collapses,
        "pagetable_pages": dm.pagetable_pages(),
        "tlb_flush_all": led.tlb_flush_all,
        "tlb_flush_range": led.tlb_flush_range,
        "tlb_flush_local": led.tlb_flush_local,
        "tlb_ipis": led.tlb_ipis,
        "cpa_calls": led.cpa_calls,
        "text_poke_calls": led.text_poke_calls,
        "zeroed_pages": led.zeroed_pages,
    }


def _percentiles(samples: Any, prefix: str) -> dict[str, float]:
    """p50, p99 (the sample at or below the percentile) and max of latency samples."""
    if len(samples) == 0:
        return {f"{prefix}_p50_cycles": 0.0, f"{prefix}_p99_cycles": 0.0,
                f"{prefix}_max_cycles": 0.0}
    arr = np.asarray(samples, dtype=np.float64)
    p50, p99 = np.percentile(arr, [50, 99], method="lower")
    return {f"{prefix}_p50_cycles": float(p50), f"{prefix}_p99_cycles": float(p99),
            f"{prefix}_max_cycles": float(arr.max())}


def latency_by_site(latency: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Alloc and free latency (p50, p99, max cycles) of each request site, refills and
    splits included (they are charged to the call that caused them)."""
    return {site: {**_percentiles(a, "alloc"), **_percentiles(f, "free"),
                   "allocs": len(a), "frees": len(f)}
            for site, (a, f) in sorted(latency.items())}


def build_metrics(runner: Runner) -> dict[str, Any]:
    """All metrics of a finished run."""
    kernel = runner.kernel
    totals = runner.totals
    out: dict[str, Any] = snapshot(kernel)
    out.update({
        "alloc_failures": totals["alloc_failures"],
        "cache_pages": runner.held_pages(),
        "metadata_bytes": runner.allocator.metadata_bytes(),
        "requested_bytes": totals["peak_requested_bytes"],
        "footprint_bytes": totals["peak_footprint_pages"] * PAGE_SIZE,
        "unmapped_served_mapped_bytes": totals["unmapped_served_mapped_bytes"],
        "cycles_total": kernel.ledger.total_cycles,
        "violations": sum(runner.checker.counts.values()),
        "events": runner.events,
    })
    out.update(tlb_metrics(runner.tlb_sampler, kernel.spec, kernel.costs,
                           runner.setup.params["tlb"], runner.setup.cell.seed))
    allocs = [s for a, _ in runner.latency.values() for s in a]
    frees = [s for _, f in runner.latency.values() for s in f]
    out.update(_percentiles(allocs, "alloc"))
    out.update(_percentiles(frees, "free"))
    out["cycles_by_category"] = dict(kernel.ledger.cycles)
    return out
