"""Metrics of a run (names are a contract: docs/contracts.md, "Metrics and JSON results"):
how they are taken.

What each metric means (unit, direction, kind, kernel counterpart) is in
:mod:`framework.metric_defs`, re-exported here as :data:`METRICS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any, Protocol

import numpy as np

from framework.allocator import Allocator
from framework.checks import Checker
from framework.kernel.consts import PAGE_SIZE
from framework.kernel.kernel import Kernel
from framework.kernel.ledger import VMSTAT_EVENTS
from framework.metric_defs import METRIC_BY_NAME, METRICS, Kind, Metric
from framework.tlb.sampler import TlbSampler, tlb_metrics

__all__ = ["METRICS", "METRIC_BY_NAME", "Kind", "Metric", "build_metrics", "latency_by_site",
           "snapshot"]


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
        **{name: getattr(led, name) for name in VMSTAT_EVENTS},
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


class _Cell(Protocol):
    @property
    def seed(self) -> int: ...


class _RunSetup(Protocol):
    @property
    def params(self) -> dict[str, dict[str, Any]]: ...
    @property
    def cell(self) -> _Cell: ...


class FinishedRun(Protocol):
    """What :func:`build_metrics` reads of a run (:class:`framework.engine.Runner` is one).

    A protocol rather than the engine's class, so this module does not import the engine
    that imports it.
    """

    @property
    def kernel(self) -> Kernel: ...
    @property
    def allocator(self) -> Allocator: ...
    @property
    def checker(self) -> Checker: ...
    @property
    def setup(self) -> _RunSetup: ...
    @property
    def latency(self) -> Mapping[str, tuple[Any, Any]]: ...
    @property
    def events(self) -> int: ...
    @property
    def tlb_sampler(self) -> TlbSampler: ...
    @property
    def totals(self) -> dict[str, int]: ...
    def held_pages(self) -> int: ...


def build_metrics(runner: FinishedRun) -> dict[str, Any]:
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
    allocs = list(chain.from_iterable(a for a, _ in runner.latency.values()))  # site order
    frees = list(chain.from_iterable(f for _, f in runner.latency.values()))
    out.update(_percentiles(allocs, "alloc"))
    out.update(_percentiles(frees, "free"))
    out["cycles_by_category"] = dict(kernel.ledger.cycles)
    return out
