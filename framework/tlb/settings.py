"""The TLB metrics of a run: parameters (``--set tlb.KEY=VALUE``) and the engine's call.

After a run, the direct map's final page mix (``DirectMap4k/2M/1G``) and the module area's
executable pages (4 KiB or 2 MiB mapped) go through :func:`framework.tlb.dtlb_reach` and
:func:`framework.tlb.itlb_reach` with the machine's TLB geometry. Kernel data accesses are
spread over all of RAM (the direct map covers it all) with the distribution below; text
fetches over the executable module-area pages. Every parameter is an estimate ``[E]``; the
defaults and their reasoning are in ``docs/validation.md``.
"""

from __future__ import annotations

from typing import Any

from framework.kernel.consts import _PAGE_NX, PAGE_SIZE
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.tlb.reach import (
    ACCESS_CYCLES,
    FETCH_CYCLES,
    FETCH_SHARE,
    MEM_SHARE,
    PT_CACHE_BYTES,
    dtlb_reach,
    itlb_reach,
)

TLB_PARAMS: tuple[Param, ...] = (
    Param("dist", str, "zipf", "distribution of kernel accesses over pages",
          choices=("zipf", "uniform")),
    Param("s", float, 1.0, "Zipf exponent", min=0.0, max=4.0),
    Param("mem_share", float, MEM_SHARE, "[E] share of kernel time in direct-map accesses",
          min=0.0, max=1.0),
    Param("access_cycles", float, ACCESS_CYCLES, "[E] cycles of one access, translation excluded",
          min=1.0, max=1e6),
    Param("fetch_share", float, FETCH_SHARE, "[E] share of kernel time fetching module text",
          min=0.0, max=1.0),
    Param("fetch_cycles", float, FETCH_CYCLES, "[E] cycles of one text fetch, translation "
          "excluded", min=1.0, max=1e6),
    Param("pt_cache_kib", int, PT_CACHE_BYTES >> 10, "[E] cache held by page-table lines, KiB",
          min=1, max=1 << 20),
)


def text_bytes(kernel: Kernel) -> tuple[int, int]:
    """Executable module-area bytes mapped by 4 KiB and by 2 MiB pages."""
    small = huge = 0
    for area in kernel.areas.values():
        n = sum(1 for prot in area.prot if not prot & _PAGE_NX)
        if area.page_order:
            huge += n * PAGE_SIZE
        else:
            small += n * PAGE_SIZE
    return small, huge


def tlb_metrics(kernel: Kernel, params: dict[str, Any]) -> dict[str, float]:
    """``dtlb_miss_rate``, ``stlb_miss_rate``, ``walk_cycles_per_access``,
    ``est_slowdown_pct`` (data, against all of RAM in 1 GiB pages, or 2 MiB without
    gbpages), ``itlb_miss_rate`` and ``itlb_est_slowdown_pct`` (text, against 2 MiB pages)."""
    dm = kernel.directmap
    spec = kernel.spec
    pt_cache = params["pt_cache_kib"] << 10
    data = dtlb_reach(
        spec.tlb_geometry, dm.nr_4k, dm.nr_2m, dm.nr_1g, distribution=params["dist"],
        s=params["s"], costs=kernel.costs, mem_share=params["mem_share"],
        access_cycles=params["access_cycles"], pt_cache_bytes=pt_cache,
        reference="1g" if spec.gbpages else "2m",
    )
    small, huge = text_bytes(kernel)
    out = {
        "dtlb_miss_rate": data.dtlb_miss_rate,
        "stlb_miss_rate": data.stlb_miss_rate,
        "walk_cycles_per_access": data.walk_cycles_per_access,
        "est_slowdown_pct": data.est_slowdown_pct,
        "itlb_miss_rate": 0.0,
        "itlb_est_slowdown_pct": 0.0,
    }
    if small or huge:
        text = itlb_reach(spec.tlb_geometry, small, huge, distribution=params["dist"],
                          s=params["s"], costs=kernel.costs, fetch_share=params["fetch_share"],
                          fetch_cycles=params["fetch_cycles"], pt_cache_bytes=pt_cache)
        out["itlb_miss_rate"] = text.itlb_miss_rate
        out["itlb_est_slowdown_pct"] = text.est_slowdown_pct
    return out
