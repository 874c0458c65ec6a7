"""The TLB metrics of a run: parameters (``--set tlb.KEY=VALUE``) and the engine's calls.

One core's access stream (:mod:`framework.tlb.stream`: user pages, the kernel's direct-map
working set placed where the kernel's memory is, vmalloc, text) is the same for every design
of a cell. :class:`~framework.tlb.sampler.TlbSampler` samples the direct map and the executable
module text during the run; each sample's mapping goes through the competing-translations model
(:mod:`framework.tlb.mix`) on the machine's TLB geometry, and the metrics are time averages
(weighted by events) over the samples. ``est_slowdown_pct`` compares against the same stream
on the same machine's boot direct map with 1 GiB pages and the module text in 2 MiB pages;
``est_slowdown_pct_low`` / ``_high`` are its band over the estimates' ranges
(:data:`BAND`). Every parameter is an estimate ``[E]``; the values, ranges and reasoning are in
``docs/hardware.md``, "Access stream".
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from framework.params import Param, resolve
from framework.tlb.reach import PT_CACHE_BYTES, STLB_SHARE
from framework.tlb.stream import workload_profile

TLB_PARAMS: tuple[Param, ...] = (
    Param("dist", str, "zipf", "distribution of accesses over each population's pages",
          choices=("zipf", "uniform")),
    Param("s", float, 1.0, "Zipf exponent", min=0.0, max=4.0),
    Param("kernel_share", float, 0.3, "[E] share of accesses made in the kernel", min=0.0,
          max=1.0),
    Param("dm_share", float, 0.6, "[E] share of kernel data accesses through the direct map",
          min=0.0, max=1.0),
    Param("user_ws_mib", float, 1024.0, "[E] user data working set of one core's stream, MiB",
          min=0.0, max=1 << 24),
    Param("user_thp", float, 0.8, "[E] share of the user working set in THP (2 MiB) pages",
          min=0.0, max=1.0),
    Param("kernel_ws_mib", float, 4096.0, "[E] kernel direct-map working set, MiB (at most "
          "RAM/4)", min=0.0, max=1 << 24),
    Param("slab_share", float, 0.25, "[E] share of it in the unmovable pageblocks (slab, "
          "network buffers)", min=0.0, max=1.0),
    Param("vmalloc_ws_mib", float, 64.0, "[E] other kernel data in 4 KiB pages (stacks, "
          "per-cpu, module data), MiB", min=0.0, max=1 << 20),
    Param("mem_share", float, 0.3, "[E] share of CPU time in data accesses", min=0.0, max=1.0),
    Param("access_cycles", float, 400.0, "[E] cycles of memory work per independent page "
          "pick, translation excluded", min=1.0, max=1e6),
    Param("fetch_share", float, 0.1, "[E] share of CPU time fetching instructions", min=0.0,
          max=1.0),
    Param("fetch_cycles", float, 400.0, "[E] cycles of fetch work per independent text page "
          "pick, translation excluded", min=1.0, max=1e6),
    Param("module_fetch_share", float, 0.02, "[E] share of kernel fetches in module/BPF text",
          min=0.0, max=1.0),
    Param("kernel_text_mib", float, 16.0, "[E] kernel image text (2 MiB pages), MiB", min=0.0,
          max=1 << 12),
    Param("user_text_mib", float, 8.0, "[E] user text (4 KiB pages), MiB", min=0.0,
          max=1 << 16),
    Param("stlb_share", float, STLB_SHARE, "[E] share of the STLB holding text translations",
          min=0.0, max=1.0),
    Param("pt_cache_kib", int, PT_CACHE_BYTES >> 10, "[E] cache held by page-table lines, KiB",
          min=1, max=1 << 20),
    Param("mix_band", bool, False, "widen the band over kernel_share and dm_share too "
          "(three times the evaluations)"),
    Param("samples", int, 8, "samples of the mapping over the run (1: the end state only)",
          min=1, max=4096),
)

# [E] ranges of the estimates that scale translation cycles into time: (low, high) as factors
# of the value in use (docs/hardware.md, "Access stream" and "Translation costs").
BAND: dict[str, tuple[float, float]] = {
    "mem_share": (0.2 / 0.3, 0.4 / 0.3),
    "access_cycles": (0.5, 2.0),
    "fetch_share": (0.5, 2.0),
    "fetch_cycles": (0.5, 2.0),
    "stlb_hit": (7 / 8, 9 / 8),
    "walk_cached": (0.5, 1.5),
    "walk_dram": (290 / 300, 350 / 300),
}

# [E] ranges of the estimates that shape the access mix (docs/hardware.md, "Access stream"),
# as factors of the value in use (capped at 1): taken together at their low, then high end.
MIX_BAND: dict[str, tuple[float, float]] = {
    "kernel_share": (1 / 3, 5 / 3),
    "dm_share": (0.4 / 0.6, 0.8 / 0.6),
}


def resolve_tlb(workload: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``--set tlb.*`` over the workload's profile (stream.WORKLOAD_PROFILES) over defaults.

    :raises UnknownName, BadParameter: for bad keys or values.
    """
    return resolve("tlb", TLB_PARAMS, given, workload_profile(workload))


def slowdown_pct(data: tuple[float, float], text: tuple[float, float],
                 values: Mapping[str, float]) -> float:
    """``100 * (mem_share * (c - r) / (access_cycles + r) + fetch_share * (ct - rt) /
    (fetch_cycles + rt))`` for data ``(c, r)`` and text ``(ct, rt)`` cycles per access
    (Amdahl: only the time in accesses changes)."""
    (c, r), (ct, rt) = data, text
    out = values["mem_share"] * (c - r) / (values["access_cycles"] + r)
    out += values["fetch_share"] * (ct - rt) / (values["fetch_cycles"] + rt)
    return 100.0 * out


Pair = tuple[float, float]


def band(cycles: Callable[[dict[str, float]], tuple[Pair, Pair]],
         values: Mapping[str, float]) -> tuple[float, float]:
    """Lowest and highest slowdown over every corner of :data:`BAND`.

    :param cycles: ``cycles(costs) -> ((c, r), (ct, rt))`` for a cost table.
    """
    names = tuple(BAND)
    found = []
    for corner in itertools.product((0, 1), repeat=len(names)):
        v = dict(values)
        for name, end in zip(names, corner, strict=True):
            v[name] = values[name] * BAND[name][end]
        data, text = cycles(v)
        found.append(slowdown_pct(data, text, v))
    return min(found), max(found)
