"""Every metric a run reports: unit, direction, kind, what counts, and the kernel's counterpart.

This table is the one source of truth: the comparison tables read the unit and direction
from it, ``framework list --metrics`` prints it, and a test checks that ``docs/metrics.md``
describes every entry. Metric names are a contract (results JSON); where the kernel has its
own name for the same quantity, ``kernel`` gives it rather than renaming the metric.

The TLB flush counters of ``/proc/vmstat`` exist only with ``CONFIG_DEBUG_TLBFLUSH``; in
v6.3 ``flush_tlb_all()`` (arch/x86/mm/tlb.c) bumps ``nr_tlb_remote_flush`` once and runs
``do_flush_tlb_all()`` on every CPU, each bumping ``nr_tlb_remote_flush_received`` (the
sending CPU too), while ``do_kernel_range_flush()`` counts nothing.
"""

from __future__ import annotations

import enum

import attrs


class Kind(enum.Enum):
    """When a metric is taken."""

    END = "value at the end of the run"
    CUMULATIVE = "counted over the whole run"
    PEAK = "highest value reached during the run"
    LATENCY = "percentile over the workload's calls"
    ESTIMATE = "model estimate from the final direct map"


@attrs.frozen(slots=True)
class Metric:
    """A metric's name, unit, direction, kind, one-line meaning, definition and the kernel's
    counterpart (empty: the kernel has none)."""

    name: str
    unit: str
    lower_is_better: bool
    kind: Kind
    help: str
    definition: str = ""
    kernel: str = ""


_TLB_NOTE = "CONFIG_DEBUG_TLBFLUSH"

METRICS: tuple[Metric, ...] = (
    Metric("DirectMap4k", "kB", True, Kind.END, "direct map mapped with 4 KiB pages",
           "Bytes of the direct map mapped by 4 KiB PTEs (present or not), in kB; moves only "
           "when a mapping is split or collapsed.", "/proc/meminfo DirectMap4k"),
    Metric("DirectMap2M", "kB", False, Kind.END, "direct map mapped with 2 MiB pages",
           "Bytes of the direct map mapped by 2 MiB PMD entries, in kB.",
           "/proc/meminfo DirectMap2M"),
    Metric("DirectMap1G", "kB", False, Kind.END, "direct map mapped with 1 GiB pages",
           "Bytes of the direct map mapped by 1 GiB PUD entries, in kB.",
           "/proc/meminfo DirectMap1G"),
    Metric("direct_map_level2_splits", "count", True, Kind.CUMULATIVE, "2 MiB mappings split",
           "PMD entries split into 512 PTEs (a 1 GiB split down to 4 KiB counts one level-3 "
           "and one level-2 split).", "/proc/vmstat direct_map_level2_splits"),
    Metric("direct_map_level3_splits", "count", True, Kind.CUMULATIVE, "1 GiB mappings split",
           "PUD entries split into 512 PMD entries.",
           "/proc/vmstat direct_map_level3_splits"),
    Metric("direct_map_level2_collapses", "count", False, Kind.CUMULATIVE,
           "2 MiB mappings re-merged",
           "512 equal PTEs re-merged into one PMD entry (only with the collapse switch; v6.3 "
           "never re-merges).", "/proc/vmstat direct_map_level2_collapses (not in v6.3)"),
    Metric("direct_map_level3_collapses", "count", False, Kind.CUMULATIVE,
           "1 GiB mappings re-merged", "512 equal PMD entries re-merged into one PUD entry.",
           "/proc/vmstat direct_map_level3_collapses (not in v6.3)"),
    Metric("pagetable_pages", "pages", True, Kind.END, "page-table pages below the PUDs",
           "Page-table pages below the direct map's PUD level: those mapped at boot plus one "
           "per split, minus those freed by collapse.",
           "none (split_large_page()'s pages are not in /proc/meminfo PageTables)"),
    Metric("tlb_flush_all", "count", True, Kind.CUMULATIVE, "flush_tlb_all calls",
           "Full flushes on every online CPU: flush_tlb_all(), a split's own flush, and "
           "range flushes over the 33-page ceiling.",
           f"/proc/vmstat nr_tlb_remote_flush (as flush_tlb_all() counts it; {_TLB_NOTE})"),
    Metric("tlb_flush_range", "count", True, Kind.CUMULATIVE, "per-page flushes on every CPU",
           "flush_tlb_kernel_range() calls of 33 pages or fewer, done page by page on every "
           "CPU.", "none (do_kernel_range_flush() counts nothing)"),
    Metric("tlb_flush_local", "count", True, Kind.CUMULATIVE, "local-only flushes",
           "Flushes on the calling CPU only (text_poke's poking mm); no IPI.",
           f"/proc/vmstat nr_tlb_local_flush_one + nr_tlb_local_flush_all ({_TLB_NOTE})"),
    Metric("tlb_ipis", "count", True, Kind.CUMULATIVE, "TLB-shootdown IPIs sent",
           "IPIs to the other online CPUs, (CPUs - 1) per full or range flush.",
           "/proc/vmstat nr_tlb_remote_flush_received, less the sender's own count "
           f"({_TLB_NOTE})"),
    Metric("cpa_calls", "count", True, Kind.CUMULATIVE, "change_page_attr calls",
           "set_memory_*() and set_direct_map_*() calls, each counted once whatever its "
           "length (failed ones too).", "none"),
    Metric("text_poke_calls", "count", True, Kind.CUMULATIVE, "text_poke chunks written",
           "Chunks of up to two pages written through text_poke_copy()'s poking mm.", "none"),
    Metric("alloc_failures", "count", True, Kind.CUMULATIVE, "requests that got NULL",
           "Allocations of the workload (and its background load) that returned NULL.",
           "none"),
    Metric("cache_pages", "pages", True, Kind.END, "pages held in allocator caches",
           "Pages taken from the buddy and held in the design's (and the status-quo path's) "
           "caches, not handed out, at the end of the run.",
           "none (gfp-unmapped: the Cached column of its debugfs table)"),
    Metric("metadata_bytes", "bytes", True, Kind.END, "allocator bookkeeping",
           "Bytes of the design's own bookkeeping (bitmaps, tree nodes, slab headers) at the "
           "end.", "none"),
    Metric("requested_bytes", "bytes", False, Kind.PEAK, "peak bytes requested and live",
           "Highest sum of the sizes of the workload's live allocations.", "none"),
    Metric("footprint_bytes", "bytes", True, Kind.PEAK, "peak bytes taken from the buddy",
           "Highest number of pages allocated from the buddy (cached ones included; direct-map "
           "page tables and the background load excluded), in bytes.", "none"),
    Metric("unmapped_served_mapped_bytes", "bytes", True, Kind.CUMULATIVE,
           "UNMAPPED requests served still mapped",
           "Bytes of requests asking for UNMAPPED memory that were handed out still present in "
           "the direct map.", "none"),
    Metric("zeroed_pages", "pages", True, Kind.CUMULATIVE, "pages cleared",
           "Pages cleared by clear_page() (at allocation, free or refill).", "none"),
    Metric("numa_miss", "count", True, Kind.CUMULATIVE, "allocations served off-node",
           "Allocations served by a zone of another node than the preferred one "
           "(zone_statistics()).", "/proc/vmstat numa_miss"),
    Metric("numa_foreign", "count", True, Kind.CUMULATIVE, "allocations meant for a node, "
           "served elsewhere", "Allocations whose preferred node could not serve them; equals "
           "numa_miss summed over nodes.", "/proc/vmstat numa_foreign"),
    Metric("allocstall", "count", True, Kind.CUMULATIVE, "direct reclaim entries",
           "Allocations that entered direct reclaim (__alloc_pages_direct_reclaim()).",
           "/proc/vmstat allocstall_normal (summed over zones)"),
    Metric("pgscan_direct", "pages", True, Kind.CUMULATIVE, "pages scanned by direct reclaim",
           "Page-cache pages direct reclaim looked at.", "/proc/vmstat pgscan_direct"),
    Metric("pgsteal_direct", "pages", True, Kind.CUMULATIVE, "pages freed by direct reclaim",
           "Page-cache pages direct reclaim freed.", "/proc/vmstat pgsteal_direct"),
    Metric("pgscan_kswapd", "pages", True, Kind.CUMULATIVE, "pages scanned by kswapd",
           "Page-cache pages kswapd looked at while bringing a zone to its high watermark.",
           "/proc/vmstat pgscan_kswapd"),
    Metric("pgsteal_kswapd", "pages", True, Kind.CUMULATIVE, "pages freed by kswapd",
           "Page-cache pages kswapd freed.", "/proc/vmstat pgsteal_kswapd"),
    Metric("compact_stall", "count", True, Kind.CUMULATIVE, "direct compactions",
           "Allocations that ran direct compaction.", "/proc/vmstat compact_stall"),
    Metric("compact_success", "count", True, Kind.CUMULATIVE, "direct compactions that "
           "formed the block", "Direct compactions after which the allocation succeeded.",
           "/proc/vmstat compact_success"),
    Metric("compact_fail", "count", True, Kind.CUMULATIVE, "direct compactions that failed",
           "Direct compactions that could not form a free block of the order asked.",
           "/proc/vmstat compact_fail"),
    Metric("pgmigrate_success", "pages", True, Kind.CUMULATIVE, "pages migrated",
           "Pages compaction moved to form free blocks (each one charged).",
           "/proc/vmstat pgmigrate_success"),
    Metric("compact_daemon_wake", "count", True, Kind.CUMULATIVE, "kcompactd runs",
           "Times kcompactd ran, woken by kswapd after it reclaimed for a high-order request "
           "(kcompactd_do_work()); the pages it moves count in pgmigrate_success.",
           "/proc/vmstat compact_daemon_wake"),
    Metric("alloc_p50_cycles", "cycles", True, Kind.LATENCY, "median alloc latency",
           "Median modelled cycles of one allocation, refills, splits, direct reclaim and "
           "direct compaction it caused included; kswapd's and kcompactd's work (their own "
           "CPUs) excluded.",
           "none (modelled cycles, not time)"),
    Metric("alloc_p99_cycles", "cycles", True, Kind.LATENCY, "99th percentile alloc latency",
           "99th percentile (the sample at or below it) of the allocation cycles.", "none"),
    Metric("alloc_max_cycles", "cycles", True, Kind.LATENCY, "worst alloc latency",
           "Most cycles one allocation took.", "none"),
    Metric("free_p50_cycles", "cycles", True, Kind.LATENCY, "median free latency",
           "Median modelled cycles of one free, flushes it caused included.", "none"),
    Metric("free_p99_cycles", "cycles", True, Kind.LATENCY, "99th percentile free latency",
           "99th percentile of the free cycles.", "none"),
    Metric("free_max_cycles", "cycles", True, Kind.LATENCY, "worst free latency",
           "Most cycles one free took.", "none"),
    Metric("cycles_total", "cycles", True, Kind.CUMULATIVE, "all modelled cycles",
           "Every modelled cycle charged during the run (buddy, zeroing, CPA, splits, flushes, "
           "IPIs, vmap, text_poke, ...); cycles_by_category in the JSON splits it.", "none"),
    Metric("dtlb_miss_rate", "ratio", True, Kind.ESTIMATE, "L1 dTLB misses per data access",
           "L1 dTLB misses per kernel data access under the final direct map (TLB model, "
           "docs/validation.md).", "closest measurement: perf dTLB-load-misses / dTLB-loads"),
    Metric("stlb_miss_rate", "ratio", True, Kind.ESTIMATE, "STLB misses per data access",
           "Page walks (STLB misses) per kernel data access.",
           "closest measurement: perf dtlb_load_misses.walk_completed / dTLB-loads"),
    Metric("walk_cycles_per_access", "cycles", True, Kind.ESTIMATE,
           "page-walk cycles per data access",
           "Translation cycles per kernel data access (STLB hits and walks).",
           "closest measurement: perf dtlb_load_misses.walk_active / dTLB-loads"),
    Metric("est_slowdown_pct", "%", True, Kind.ESTIMATE, "estimated CPU-time slowdown",
           "Estimated slowdown of CPU time against the same machine's boot direct map in 1 GiB "
           "pages, under the same access stream (user and kernel translations competing for "
           "the TLB), integrated over the run (docs/validation.md).", "none"),
    Metric("est_slowdown_pct_low", "%", True, Kind.ESTIMATE, "low end of the slowdown band",
           "est_slowdown_pct with the estimated inputs at the ends of their documented ranges "
           "that give the lowest figure (docs/hardware.md, 'Access stream').", "none"),
    Metric("est_slowdown_pct_high", "%", True, Kind.ESTIMATE, "high end of the slowdown band",
           "est_slowdown_pct with the estimated inputs at the ends of their documented ranges "
           "that give the highest figure.", "none"),
    Metric("itlb_miss_rate", "ratio", True, Kind.ESTIMATE, "iTLB misses per text fetch",
           "iTLB misses per module-text fetch under the final module mappings.",
           "closest measurement: perf iTLB-load-misses / iTLB-loads"),
    Metric("itlb_est_slowdown_pct", "%", True, Kind.ESTIMATE, "estimated text-fetch slowdown",
           "The part of est_slowdown_pct from module, BPF and trampoline text not in 2 MiB "
           "pages.", "none"),
    Metric("violations", "count", True, Kind.CUMULATIVE, "broken promises",
           "Violations of the checked rules (docs/checks.md), every occurrence counted.",
           "none"),
    Metric("events", "count", False, Kind.CUMULATIVE, "events processed",
           "Workload events fed through the design (alloc, free, write, pressure, sample).",
           "none"),
)
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def metrics_table() -> list[tuple[str, str, str, str, str]]:
    """Rows of ``framework list --metrics``: name, unit, kind, definition, kernel."""
    return [(m.name, m.unit, m.kind.name.lower(), m.definition, m.kernel) for m in METRICS]
