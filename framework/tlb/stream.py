"""The access stream of one cell: what one core's loads and fetches touch, for every design.

The stream is a function of the machine, the workload's profile and the seed only, never of a
design: every design of a cell sees the same stream, and a design changes only the mapping
(which translations cover the pages the stream touches). One "access" is one independent page
pick (the reach model's unit, :mod:`framework.tlb.reach`).

Data side, mixed by share of accesses (the inputs and their sources or estimate ranges are in
``docs/hardware.md``, "Access stream"):

- user space: ``user_ws_mib`` of working set, ``user_thp`` of it in THP (2 MiB) pages, the
  rest 4 KiB; share ``1 - kernel_share``;
- the kernel through the direct map: share ``kernel_share * dm_share``, over the pages the
  kernel uses (:class:`DirectMapSet`), mapped by whatever the direct map has at that moment;
- other kernel data (vmalloc'd stacks, per-cpu areas, module data): ``vmalloc_ws_mib`` in
  4 KiB pages, share ``kernel_share * (1 - dm_share)``.

Instruction side: user text (4 KiB pages, ``user_text_mib``), the kernel image's text (2 MiB
pages, ``kernel_text_mib``) and module/BPF text (as the module area maps it), with the kernel's
fetches split by ``module_fetch_share``.

**Where the kernel's data is** (:func:`direct_map_set`). Direct-map accesses go to allocated
kernel memory with locality, not uniformly over RAM: ``kernel_ws_mib`` of it, capped at a
quarter of RAM. A share ``slab_share`` (slab, network buffers, page tables) lies in the
unmovable pageblocks. On a fresh machine those are the lowest memory of each node above the
reserved range: the buddy serves ``MIGRATE_UNMOVABLE`` there first, so this is also where
the designs' unmovable pages (secretmem, module and BPF backing pages) land. On an aged or
snapshot start they are the pageblocks the start state gives to unmovable and reclaimable
pages, scattered over the node as the seed placed them: the slab part spreads evenly over
them, and the designs' unmovable pages land in their free holes (the unmovable free lists and
the per-cpu lists refilled from them). The rest (page
cache) fills whole 2 MiB regions drawn by the seed over each node. The regions are a seeded
draw, the same for every design; which of them a design's splits hit is the design's doing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from framework.kernel.e820 import build_layout
from framework.machine.spec import MachineSpec

PAGE_SHIFT = 12
PMD_SHIFT = 9  # 4 KiB pages per 2 MiB: 2^9
PUD_SHIFT = 18  # 4 KiB pages per 1 GiB: 2^18
PMD_PAGES = 1 << PMD_SHIFT
MIB_PAGES = 256
STREAM_SPAWN_KEY = 2  # SeedSequence(seed, spawn_key=(2,)): the stream's own random numbers

IntArray = NDArray[np.int64]


@attrs.frozen(slots=True)
class DirectMapSet:
    """The direct-map pages the kernel accesses: whole 2 MiB regions plus page counts.

    :ivar pmds: sorted 2 MiB region indices (``pfn >> 9``) holding accessed pages.
    :ivar pages: accessed 4 KiB pages in each region (same order).
    """

    pmds: tuple[int, ...]
    pages: tuple[int, ...]

    @property
    def total_pages(self) -> int:
        """Accessed 4 KiB pages in all."""
        return sum(self.pages)


def direct_map_set(spec: MachineSpec, kernel_ws_mib: float, slab_share: float,
                   seed: int) -> DirectMapSet:
    """Where the kernel's direct-map working set lies (module docstring), per node.

    Each node gets an equal share. The slab part fills, in order, the lowest 2 MiB regions of
    the zone the node's GFP_KERNEL allocations start in (its highest populated zone: ZONE_NORMAL
    above 4 GiB where it exists, framework/kernel/e820.py), above the reserved start of RAM;
    the page-cache part is whole regions drawn without replacement from the rest of the node's
    RAM with ``SeedSequence(seed, spawn_key=(2,))``.
    """
    return _direct_map_set(spec.mem_gib, spec.nodes, spec.reserved_mib, spec.hole_mib,
                           float(kernel_ws_mib), float(slab_share), seed,
                           kernel_regions(spec, seed))


@functools.lru_cache(maxsize=16)
def kernel_regions(spec: MachineSpec, seed: int) -> tuple[tuple[int, ...], ...] | None:
    """Per node, the 2 MiB regions (pageblocks) of its GFP_KERNEL zone (the highest
    populated) whose migratetype at the start is ``MIGRATE_UNMOVABLE`` or
    ``MIGRATE_RECLAIMABLE``: where an aged or snapshot start keeps its slab. None for a fresh
    start. The start state is the one the kernel model builds for the run (the same machine
    and seed, framework/machine/startstate.py), design-independent."""
    from framework.kernel.consts import MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
    from framework.machine.startstate import make_start_state

    reserved = (spec.reserved_mib << 20) >> PAGE_SHIFT
    layout = build_layout(spec.mem_gib << PUD_SHIFT, spec.nodes, spec.hole_mib << 8, reserved)
    start = make_start_state(spec, layout, seed)
    if start is None:
        return None
    kernel_mts = (MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE)
    out = []
    for node in range(spec.nodes):
        table = start.table(layout.node_zones(node)[-1])
        kinds = [[j for j, mt in enumerate(t.mts) if mt in kernel_mts] for t in table.templates]
        heads = table.blocks
        out.append(tuple((heads[i] >> PMD_SHIFT) + j
                         for i, tid in enumerate(table.ids().tolist()) for j in kinds[tid]))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _direct_map_set(mem_gib: int, nodes: int, reserved_mib: int, hole_mib: int, ws_mib: float,
                    slab_share: float, seed: int,
                    kernel: tuple[tuple[int, ...], ...] | None = None) -> DirectMapSet:
    reserved = reserved_mib << 8
    layout = build_layout(mem_gib << PUD_SHIFT, nodes, hole_mib << 8, reserved)
    ws_pages = int(min(ws_mib, mem_gib * 256.0) * MIB_PAGES) // nodes
    slab = int(ws_pages * slab_share)
    cache_regions = (ws_pages - slab) // PMD_PAGES
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        seed, spawn_key=(STREAM_SPAWN_KEY,))))
    pmds: list[int] = []
    pages: list[int] = []
    for node in range(nodes):
        zones = layout.node_zones(node)
        top = zones[-1]
        first = -(-max(top.start_pfn, reserved) // PMD_PAGES)
        end = top.end_pfn >> PMD_SHIFT
        if kernel is not None and kernel[node]:
            low, counts = _spread(kernel[node], slab)
        else:
            full, part = divmod(slab, PMD_PAGES)
            low = list(range(first, min(end, first + full + (1 if part else 0))))
            counts = ([PMD_PAGES] * full + ([part] if part else []))[:len(low)]
        pmds += low
        pages += counts
        ram = np.concatenate([np.arange(-(-max(z.start_pfn, reserved) // PMD_PAGES),
                                        z.end_pfn >> PMD_SHIFT, dtype=np.int64)
                              for z in zones])
        rest = np.setdiff1d(ram, np.array(low, dtype=np.int64), assume_unique=True)
        take = min(cache_regions, len(rest))
        if take:
            drawn = rng.choice(rest, size=take, replace=False)
            pmds += [int(m) for m in drawn]
            pages += [PMD_PAGES] * take
    order = np.argsort(pmds, kind="stable")
    return DirectMapSet(tuple(int(pmds[i]) for i in order), tuple(int(pages[i]) for i in order))


def _spread(regions: tuple[int, ...], slab: int) -> tuple[list[int], list[int]]:
    """``slab`` pages spread evenly over ``regions`` (the first ``slab % n`` get one more),
    at most a region's 512 pages each; regions that get no page are left out."""
    per, extra = divmod(min(slab, len(regions) * PMD_PAGES), len(regions))
    counts = [per + (i < extra) for i in range(len(regions))]
    keep = [i for i, c in enumerate(counts) if c]
    return [regions[i] for i in keep], [counts[i] for i in keep]


@attrs.frozen(slots=True)
class ClassCounts:
    """Direct-map translations touched by the stream: entries and accessed pages per size."""

    entries_4k: int
    pages_4k: int
    entries_2m: int
    pages_2m: int
    entries_1g: int
    pages_1g: int


def classify(dms: DirectMapSet, gbpages: bool, split_pud: set[int] | frozenset[int],
             split_pmd: set[int] | frozenset[int]) -> ClassCounts:
    """Which entries cover the accessed pages under a direct map given by its split sets.

    A region in a split PMD is reached through 4 KiB entries (one per accessed page); in an
    unsplit PMD of a split (or, without gbpages, any) GiB through one 2 MiB entry; otherwise
    through its GiB's 1 GiB entry (one per GiB however many regions it holds).
    """
    pmds, pages = _arrays(dms)
    small = np.isin(pmds, np.fromiter(split_pmd, np.int64, len(split_pmd)))
    gib = pmds >> PMD_SHIFT
    if gbpages:
        big = ~small & ~np.isin(gib, np.fromiter(split_pud, np.int64, len(split_pud)))
    else:
        big = np.zeros_like(small)
    mid = ~small & ~big
    p4, p2, p1 = (int(pages[mask].sum()) for mask in (small, mid, big))
    return ClassCounts(p4, p4, int(mid.sum()), p2, int(np.unique(gib[big]).size), p1)


@functools.lru_cache(maxsize=64)
def _arrays(dms: DirectMapSet) -> tuple[IntArray, IntArray]:
    """The set as numpy arrays (cached: the set is the same for every design of a cell)."""
    return np.array(dms.pmds, dtype=np.int64), np.array(dms.pages, dtype=np.int64)


def boot_classes(dms: DirectMapSet) -> ClassCounts:
    """The reference: the boot direct map with 1 GiB pages (GiB 0: 4 KiB head, then 2 MiB)."""
    return classify(dms, True, frozenset({0}), frozenset({0}))


def workload_profile(name: str) -> Mapping[str, Any]:
    """The estimates a workload changes from the defaults (docs/hardware.md, "Access
    stream", table of profiles); empty for a workload without one."""
    return WORKLOAD_PROFILES.get(name, {})


# [E] docs/hardware.md, "Access stream": how much of the time each workload's host spends in
# the kernel, anchored on the kinds of benchmark of Xing Zhengjun's report.
WORKLOAD_PROFILES: dict[str, dict[str, Any]] = {
    "secretmem": {"kernel_share": 0.2},
    "modules": {"kernel_share": 0.2},
    "bpf": {"kernel_share": 0.4, "module_fetch_share": 0.05},
    "trampolines": {"kernel_share": 0.3, "module_fetch_share": 0.1},
    "pks-pagetables": {"kernel_share": 0.3},
    "guest": {"kernel_share": 0.1, "user_ws_mib": 8192.0},
    "dma-nokmap": {"kernel_share": 0.5},
    "background": {"kernel_share": 0.3},
    "server-mix": {"kernel_share": 0.4},
}
