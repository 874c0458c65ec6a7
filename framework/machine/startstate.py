"""Start states: what memory holds when a run starts (``framework.kernel.initial``).

- :class:`FreshState`: a just-booted machine (``memblock_free_all``): every block one free
  order-10 ``MIGRATE_MOVABLE`` block, no direct-map split.
- :class:`AgedState`: a server up for days: most RAM in page cache, anon memory (4 KiB and
  THP) and slab; a few per cent free, nearly all in orders 0-3; the direct map carrying the
  splits boot and module loading leave. Knobs: :data:`AGED_PARAMS`; calibration against the
  real snapshots in ``tests/data/snapshots/``: docs/model.md, "The start state".
- :class:`SnapshotState`: the user's ``/proc`` text (:mod:`framework.machine.procfs`): the
  zones' free blocks per order exactly as the file says.

All three are lazy and cheap: a zone's content is a short list of 4 MiB block templates
(:mod:`framework.machine.pack`) and one template id per block (a numpy array, 2 bytes a block,
in an order drawn from the seed), built the first time the zone is asked about. ``block()`` is
an array lookup; ``zone_start()`` sums the templates' totals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np

from framework.errors import InputError
from framework.kernel.consts import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from framework.kernel.e820 import (
    FOUR_GIB_PFN,
    ZONE_NAMES,
    Layout,
    ZoneSpan,
    ZoneType,
    build_layout,
)
from framework.kernel.initial import BLOCK_ORDER, BLOCK_PAGES, FREE_BLOCK, Block, Use, ZoneStart
from framework.machine.pack import (
    FREE_TEMPLATE,
    NR_MT,
    NR_ORDERS,
    PackError,
    Template,
    ZoneTarget,
    pack,
)
from framework.machine.procfs import MIGRATETYPE_NAMES, ProcSnapshot, ZoneRecord
from framework.params import Param

PMD_SHIFT_PAGES = 9  # a 2 MiB region is pfn >> 9
PB_SHIFT = 9  # pageblock_order: a pageblock is pfn >> 9
GIB_PAGES = 1 << 18
KIB_PER_PAGE = 4


# --- zone tables ------------------------------------------------------------------------------
def usable_blocks(layout: Layout, zone: ZoneSpan) -> range:
    """Head pfns of the zone's blocks a provider describes: those above the reserved range."""
    reserved_end = -(-layout.reserved_pages // BLOCK_PAGES) * BLOCK_PAGES
    first = max(zone.start_pfn, reserved_end)
    first = -(-first // BLOCK_PAGES) * BLOCK_PAGES
    return range(first, zone.end_pfn - BLOCK_PAGES + 1, BLOCK_PAGES)


class ZoneTable:
    """A zone's block templates, its totals, and (built on the first :meth:`block`) one
    template id per usable block in an order drawn from the seed."""

    __slots__ = ("_counts", "_ids", "_seed", "blocks", "start", "templates")

    def __init__(self, blocks: range, templates: Sequence[tuple[Template, int]], seed: int
                 ) -> None:
        if sum(c for _, c in templates) != len(blocks):
            raise ValueError(f"templates for {sum(c for _, c in templates)} blocks, the zone "
                             f"has {len(blocks)}")
        self.blocks = blocks
        self.templates = tuple(b for b, _ in templates)
        self._counts = [c for _, c in templates]
        self._seed = seed
        self._ids: np.ndarray | None = None
        nr_free = [[0] * NR_MT for _ in range(NR_ORDERS)]
        used = [0] * len(Use)
        for template, count in templates:
            free, pages = template.totals()
            for order in range(NR_ORDERS):
                for mt in range(NR_MT):
                    nr_free[order][mt] += free[order][mt] * count
            for use in range(len(Use)):
                used[use] += pages[use] * count
        self.start = ZoneStart(tuple(tuple(row) for row in nr_free), tuple(used))

    def ids(self) -> np.ndarray:
        """Template id per block, in pfn order (uint16)."""
        if self._ids is None:
            counts = np.array(self._counts, dtype=np.int64)
            ids = np.repeat(np.arange(len(self._counts), dtype=np.uint16), counts)
            np.random.Generator(np.random.PCG64(self._seed)).shuffle(ids)
            self._ids = ids
        return self._ids

    def pageblocks_with(self, uses: frozenset[int]) -> np.ndarray:
        """Indices (pfn >> pageblock_order) of the zone's pageblocks whose used pages are of
        one of ``uses`` (:class:`Use` values, :data:`~framework.machine.pack.THP`), in pfn
        order (int64). A vector operation over the template ids: no block is described."""
        ids = self.ids()
        base = np.arange(len(ids), dtype=np.int64) * 2 + (self.blocks.start >> PB_SHIFT)
        out = []
        for half in (0, 1):
            hit = np.array([t.uses[half] in uses for t in self.templates], dtype=bool)
            out.append(base[hit[ids]] + half if len(ids) else base[:0])
        return np.sort(np.concatenate(out))

    def blocks_with_free(self, order: int, mt: int) -> np.ndarray:
        """Head pfns of the zone's blocks that hold a free block of ``order`` on ``mt``'s
        list at the start, in pfn order (int64): a vector operation over the template ids,
        so a free-list search need not describe the blocks that hold none."""
        ids = self.ids()
        hit = np.array([_holds(t.block(), order, mt) for t in self.templates], dtype=bool)
        found = np.flatnonzero(hit[ids]) if len(ids) else np.zeros(0, dtype=np.int64)
        return found.astype(np.int64) * BLOCK_PAGES + self.blocks.start

    def block(self, head_pfn: int) -> Block:
        """The block at ``head_pfn``."""
        index = (head_pfn - self.blocks.start) // BLOCK_PAGES
        if head_pfn not in self.blocks:
            raise ValueError(f"pfn {head_pfn:#x} is not the head of a usable block of the zone")
        return self.templates[int(self.ids()[index])].block()


def _holds(block: Block, order: int, mt: int) -> bool:
    """Does ``block`` have a free block of ``order`` in a pageblock of type ``mt``?"""
    return any(o == order and block.mts[off >> PB_SHIFT] == mt for off, o in block.free)


class _Tables:
    """Per-zone tables built on first use (the mixin of the three providers)."""

    def __init__(self, layout: Layout, seed: int) -> None:
        self.layout = layout
        self.seed = seed
        self._tables: dict[tuple[int, int], ZoneTable] = {}

    def table(self, zone: ZoneSpan) -> ZoneTable:
        key = (zone.node, int(zone.zone_type))
        table = self._tables.get(key)
        if table is None:
            blocks = usable_blocks(self.layout, zone)
            zone_seed = (self.seed * 1_000_003 + zone.node * 8 + int(zone.zone_type)) % (1 << 63)
            table = ZoneTable(blocks, self.templates(zone, len(blocks)), zone_seed)
            self._tables[key] = table
        return table

    def templates(self, zone: ZoneSpan, n: int) -> list[tuple[Template, int]]:
        raise NotImplementedError

    def zone_start(self, zone: ZoneSpan) -> ZoneStart:
        """The zone's totals: the sums over its blocks."""
        return self.table(zone).start

    def block(self, zone: ZoneSpan, head_pfn: int) -> Block:
        """The block at ``head_pfn`` of ``zone``."""
        return self.table(zone).block(head_pfn)

    def pageblocks_with(self, zone: ZoneSpan, uses: frozenset[int]) -> np.ndarray:
        """The zone's pageblocks (index = pfn >> pageblock_order) whose used pages are of one
        of ``uses`` at the start, ascending (:meth:`ZoneTable.pageblocks_with`): where reclaim
        finds page cache and compaction finds pages to migrate, found without describing."""
        return self.table(zone).pageblocks_with(uses)

    def blocks_with_free(self, zone: ZoneSpan, order: int, mt: int) -> np.ndarray:
        """Head pfns of ``zone``'s blocks holding a free block of ``order`` on ``mt``'s
        list at the start, ascending (:meth:`ZoneTable.blocks_with_free`)."""
        return self.table(zone).blocks_with_free(order, mt)


# --- fresh ------------------------------------------------------------------------------------
class FreshState(_Tables):
    """A just-booted machine: ``memblock_free_all`` frees every block as one order-10
    ``MIGRATE_MOVABLE`` block; no direct-map region is split."""

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout, 0)

    def templates(self, zone: ZoneSpan, n: int) -> list[tuple[Template, int]]:
        return [(FREE_TEMPLATE, n)] if n else []

    def block(self, zone: ZoneSpan, head_pfn: int) -> Block:
        """Always :data:`FREE_BLOCK`."""
        return FREE_BLOCK

    def split_pmds(self, layout: Layout) -> frozenset[int]:
        """None."""
        return frozenset()


# --- aged -------------------------------------------------------------------------------------
#: The aged state's knobs (registered as ``machine.*``); sources in docs/model.md.
AGED_PARAMS: tuple[Param, ...] = (
    Param("aged_free_pct", float, 4.0,
          "aged: free memory, % of RAM (snapshots: 1-10% on aged servers; [E] 4)",
          min=0.0, max=100.0),
    Param("aged_high_order_pct", float, 1.5,
          "aged: share of free memory in order-9/10 blocks, % (snapshots: 0-3% aged)",
          min=0.0, max=100.0),
    Param("aged_pagecache_pct", float, 55.0,
          "aged: page cache, % of RAM (meminfo below-fixture-56g: 65%; [E] 55)",
          min=0.0, max=100.0),
    Param("aged_anon_pct", float, 25.0,
          "aged: anon memory incl. THP, % of RAM ([E] 25; dom0 68%, below 12%)",
          min=0.0, max=100.0),
    Param("aged_thp_pct", float, 30.0,
          "aged: share of anon memory in THPs, % ([E] 30; desktop 30%, ncsa 63%, below 1%)",
          min=0.0, max=100.0),
    Param("aged_slab_reclaimable_pct", float, 7.0,
          "aged: reclaimable slab, % of RAM (below-fixture 10%, dom0 1.3%; [E] 7)",
          min=0.0, max=100.0),
    Param("aged_boot_pmd_splits", int, 350,
          "aged: 2 MiB direct-map regions split at boot and module load (LKP 128 GiB: 340-359)",
          min=0, max=1 << 20),
    Param("aged_split_span_gib", int, 4,
          "aged: the module-load splits lie in this many GiB at the start of ZONE_NORMAL [E]",
          min=1, max=1 << 16),
)
#: Share of free pages of orders 0..8 in each order (aged Normal zones of buddyinfo-aws-ec2-
#: xen-hvm-aged, -xen-dom0-19g-316d, -xen-dom0-801d-a-before, -hotsos-node1-normal-yaml,
#: rounded; see docs/model.md).
AGED_ORDER_SHARE: tuple[float, ...] = (0.46, 0.40, 0.09, 0.035, 0.01, 0.003, 0.001, 0.0005,
                                       0.0005)
#: Free pages per migratetype (unmovable, movable, reclaimable): pagetypeinfo-ubuntu-vps-1g-3d
#: (aged 3 days) DMA32, HighAtomic counted as unmovable.
AGED_FREE_MT: tuple[float, float, float] = (0.06, 0.90, 0.04)
#: Unmovable kernel memory (page tables, unreclaimable slab, stacks, vmalloc), % of RAM: what
#: the other shares leave, at least this (meminfo: SUnreclaim + PageTables + KernelStack is
#: 3.3% in below-fixture-56g, 7.3% in xen-dom0-19g-316d).
AGED_MIN_KERNEL_PCT = 3.0


def _aged_default(name: str) -> Any:
    """The default of ``machine.aged_<name>``: written once, in :data:`AGED_PARAMS`."""
    return next(p.default for p in AGED_PARAMS if p.name == "aged_" + name)


@attrs.frozen(slots=True)
class AgedConfig:
    """Resolved :data:`AGED_PARAMS` (the ``aged_`` prefix dropped; defaults from there)."""

    free_pct: float = _aged_default("free_pct")
    high_order_pct: float = _aged_default("high_order_pct")
    pagecache_pct: float = _aged_default("pagecache_pct")
    anon_pct: float = _aged_default("anon_pct")
    thp_pct: float = _aged_default("thp_pct")
    slab_reclaimable_pct: float = _aged_default("slab_reclaimable_pct")
    boot_pmd_splits: int = _aged_default("boot_pmd_splits")
    split_span_gib: int = _aged_default("split_span_gib")

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> AgedConfig:
        """From resolved ``machine.*`` values (other keys ignored)."""
        fields = {a.name for a in attrs.fields(cls)}
        return cls(**{k[len("aged_"):]: v for k, v in values.items()
                      if k.startswith("aged_") and k[len("aged_"):] in fields})


def aged_target(config: AgedConfig, zone: ZoneSpan, n: int) -> ZoneTarget:
    """The zone's composition under ``config`` (ZONE_DMA stays free: lowmem_reserve keeps
    ordinary allocations out of it, and every snapshot shows it nearly all free)."""
    free = [[0] * NR_MT for _ in range(NR_ORDERS)]
    if zone.zone_type == ZoneType.ZONE_DMA:
        free[BLOCK_ORDER][MIGRATE_MOVABLE] = n
        return ZoneTarget(n, tuple(tuple(r) for r in free))
    pages = n * BLOCK_PAGES
    free_pages = pages * config.free_pct / 100
    high = free_pages * config.high_order_pct / 100
    free[BLOCK_ORDER][MIGRATE_MOVABLE] = int(high / 2 / BLOCK_PAGES)
    free[BLOCK_ORDER - 1][MIGRATE_MOVABLE] = int(high / 2 / (BLOCK_PAGES // 2))
    low = free_pages - high
    for order, share in enumerate(AGED_ORDER_SHARE):
        blocks = int(low * share / (1 << order))
        for mt, mt_share in enumerate(AGED_FREE_MT):
            free[order][mt] = int(blocks * mt_share)
    kernel = max(AGED_MIN_KERNEL_PCT, 100 - config.free_pct - config.pagecache_pct
                 - config.anon_pct - config.slab_reclaimable_pct)
    used = kernel + config.slab_reclaimable_pct + config.pagecache_pct + config.anon_pct
    pb = [0.0] * NR_MT
    pb[MIGRATE_UNMOVABLE] = kernel / used
    pb[MIGRATE_RECLAIMABLE] = config.slab_reclaimable_pct / used
    pb[MIGRATE_MOVABLE] = 1 - pb[0] - pb[2]
    thp = config.anon_pct * config.thp_pct / 100
    movable = (config.pagecache_pct, config.anon_pct - thp, thp)
    return ZoneTarget(n, tuple(tuple(r) for r in free),
                      (pb[0], pb[1], pb[2]), movable)


class AgedState(_Tables):
    """A server up for days (module docstring; ``config`` from :data:`AGED_PARAMS`)."""

    def __init__(self, layout: Layout, seed: int, config: AgedConfig | None = None) -> None:
        super().__init__(layout, seed)
        self.config = config or AgedConfig()

    def templates(self, zone: ZoneSpan, n: int) -> list[tuple[Template, int]]:
        if not n:
            return []
        return pack(aged_target(self.config, zone, n))

    def split_pmds(self, layout: Layout) -> frozenset[int]:
        """Boot and module-load splits: the kernel image's section boundaries (the image at
        ``CONFIG_PHYSICAL_START`` = 16 MiB) and ``boot_pmd_splits`` regions drawn from the
        first ``split_span_gib`` GiB of node 0's ZONE_NORMAL (DMA32 without one), where the
        buddy hands out the boot-time module pages."""
        return boot_splits(layout, self.config.boot_pmd_splits, self.config.split_span_gib,
                           self.seed)


#: 2 MiB regions of the kernel image split at boot: 16 MiB (the image start, below it the
#: decompressor's leftovers), then _etext, __end_rodata and _end of a ~40 MiB image [E].
KERNEL_IMAGE_REGIONS = (8, 16, 20, 27)


def boot_splits(layout: Layout, count: int, span_gib: int, seed: int) -> frozenset[int]:
    """``count`` split 2 MiB regions (see :meth:`AgedState.split_pmds`)."""
    image = [r for r in KERNEL_IMAGE_REGIONS if layout.is_ram(r << PMD_SHIFT_PAGES)]
    chosen = set(image[:count])
    zones = [z for z in layout.node_zones(0) if z.zone_type == ZoneType.ZONE_NORMAL] \
        or [z for z in layout.node_zones(0) if z.zone_type == ZoneType.ZONE_DMA32]
    if not zones or count <= len(chosen):
        return frozenset(chosen)
    zone = zones[0]
    lo = max(zone.start_pfn, layout.reserved_pages) >> PMD_SHIFT_PAGES
    hi = min(zone.end_pfn, zone.start_pfn + span_gib * GIB_PAGES) >> PMD_SHIFT_PAGES
    regions = np.arange(lo, hi, dtype=np.int64)
    regions = regions[~np.isin(regions, list(chosen))]
    take = min(count - len(chosen), len(regions))
    rng = np.random.Generator(np.random.PCG64(seed + 0x5EED))
    chosen.update(int(r) for r in rng.choice(regions, size=take, replace=False))
    return frozenset(chosen)


# --- snapshot ---------------------------------------------------------------------------------
#: pagetypeinfo columns -> the model's migratetypes: MIGRATE_HIGHATOMIC blocks serve
#: unmovable high-order atomic requests; CMA and isolated pageblocks hold movable pages.
MT_OF_NAME = {"Unmovable": MIGRATE_UNMOVABLE, "Movable": MIGRATE_MOVABLE,
              "Reclaimable": MIGRATE_RECLAIMABLE, "HighAtomic": MIGRATE_UNMOVABLE,
              "CMA": MIGRATE_MOVABLE, "Isolate": MIGRATE_MOVABLE}
assert set(MT_OF_NAME) == set(MIGRATETYPE_NAMES)


class SnapshotState(_Tables):
    """The machine of a :class:`~framework.machine.procfs.ProcSnapshot`.

    - Free blocks per order per zone exactly as buddyinfo (else pagetypeinfo) says; per
      migratetype as pagetypeinfo says, its counts scaled to buddyinfo's order by order when
      both are given (largest remainder); without pagetypeinfo in :data:`AGED_FREE_MT`
      shares, orders 9 and 10 all movable.
    - Pageblock migratetypes in pagetypeinfo's shares where given (as far as the free blocks
      allow), else the aged shares.
    - Used movable pages split into page cache, 4 KiB anon and THP as meminfo's ``Cached``,
      ``AnonPages - AnonHugePages`` and ``AnonHugePages`` (pageblock granularity).
    - Split 2 MiB regions so that DirectMap4k matches meminfo (beyond the boot 4 KiB head,
      the first 2 MiB), spread so that as many GiBs stay 1 GiB-mapped as DirectMap1G says
      where possible; without DirectMap lines, the aged boot splits.

    :raises InputError: (at construction) one line, when the snapshot contradicts the
        machine: another node count, a zone the layout lacks, more free pages than a zone's
        usable blocks hold.
    """

    def __init__(self, layout: Layout, snapshot: ProcSnapshot, seed: int = 0,
                 source: str = "snapshot") -> None:
        super().__init__(layout, seed)
        self.snapshot = snapshot
        self.source = source
        self.records = _match_zones(layout, snapshot, source)
        self._packed: dict[tuple[int, int], list[tuple[Template, int]]] = {}
        for zone in layout.zones:  # pack every zone now: a bad snapshot fails at once
            key = (zone.node, int(zone.zone_type))
            self._packed[key] = self._pack(zone, len(usable_blocks(layout, zone)))

    def _pack(self, zone: ZoneSpan, n: int) -> list[tuple[Template, int]]:
        rec = self.records.get((zone.node, int(zone.zone_type)))
        target = snapshot_target(self.snapshot, rec, n)
        try:
            return pack(target) if n else []
        except PackError as exc:
            raise InputError(f"{self.source}: node {zone.node} zone {zone.name}: {exc} "
                             "(the machine is too small for the snapshot)") from None

    def templates(self, zone: ZoneSpan, n: int) -> list[tuple[Template, int]]:
        return self._packed[(zone.node, int(zone.zone_type))]

    def split_pmds(self, layout: Layout) -> frozenset[int]:
        """Regions matching meminfo's DirectMap lines (class docstring)."""
        mem = self.snapshot.meminfo
        if mem is None or mem.direct_map_4k is None:
            return boot_splits(layout, AgedConfig().boot_pmd_splits,
                               AgedConfig().split_span_gib, self.seed)
        count = max(0, mem.direct_map_4k // 2048 - 1)  # the first 2 MiB is 4 KiB at boot
        gib_1g = None if mem.direct_map_1g is None else mem.direct_map_1g >> 20
        return directmap_splits(layout, count, gib_1g)


def directmap_splits(layout: Layout, count: int, keep_1g: int | None) -> frozenset[int]:
    """``count`` split 2 MiB regions, spread over the GiBs above the first so that
    ``keep_1g`` GiBs keep their 1 GiB mapping (all GiBs used when None or unreachable)."""
    gibs = [g for g in range(1, -(-layout.max_pfn // GIB_PAGES))
            if layout.is_ram(g * GIB_PAGES) and layout.is_ram((g + 1) * GIB_PAGES - 1)]
    if not gibs or count == 0:
        return frozenset()
    split_gibs = len(gibs) if keep_1g is None else max(1, len(gibs) - keep_1g)
    split_gibs = min(split_gibs, count, len(gibs))
    step = len(gibs) / split_gibs
    targets = [gibs[int(i * step)] for i in range(split_gibs)]
    per = _even(count, split_gibs)
    out: set[int] = set()
    for gib, k in zip(targets, per, strict=True):
        base = gib * GIB_PAGES >> PMD_SHIFT_PAGES
        out.update(base + j for j in range(min(k, GIB_PAGES >> PMD_SHIFT_PAGES)))
    return frozenset(out)


def _even(total: int, parts: int) -> list[int]:
    return [total // parts + (i < total % parts) for i in range(parts)]


def _match_zones(layout: Layout, snap: ProcSnapshot, source: str
                 ) -> dict[tuple[int, int], ZoneRecord]:
    """The snapshot's zone records by (node, zone type); InputError on a contradiction."""
    nodes = len({z.node for z in layout.zones})
    if snap.nodes and snap.nodes != nodes:
        raise InputError(f"{source}: the snapshot has {snap.nodes} node(s), the machine "
                         f"{nodes} (set machine.nodes={snap.nodes})")
    names = {(z.node, z.name): z for z in layout.zones}
    out: dict[tuple[int, int], ZoneRecord] = {}
    for rec in snap.zones:
        pages = rec.free_pages()
        span = names.get((rec.node, rec.zone))
        if span is None:
            if pages or (rec.info is not None and rec.info.present):
                raise InputError(f"{source}: node {rec.node} zone {rec.zone} holds pages, "
                                 "the machine has no such zone")
            continue
        out[(rec.node, int(span.zone_type))] = rec
    return out


def _mt_split(rec: ZoneRecord, names: Sequence[str], counts: Sequence[int]
              ) -> list[list[int]]:
    """free[order][mt] from the record: pagetypeinfo's split (columns ``names``) scaled to
    ``counts``."""
    free = [[0] * NR_MT for _ in range(NR_ORDERS)]
    for order, total in enumerate(counts):
        shares = [0.0] * NR_MT
        if rec.by_mt is not None:
            for col, row in enumerate(rec.by_mt):
                shares[MT_OF_NAME[names[col]]] += row[order]
        if not any(shares):
            shares = list(AGED_FREE_MT) if order < BLOCK_ORDER - 1 else [0.0, 1.0, 0.0]
        free[order] = _largest_remainder(total, shares)
    return free


def _largest_remainder(total: int, shares: Sequence[float]) -> list[int]:
    weight = sum(shares)
    raw = [total * s / weight for s in shares]
    out = [math.floor(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[: total - sum(out)]:
        out[i] += 1
    return out


def snapshot_target(snap: ProcSnapshot, rec: ZoneRecord | None, n: int) -> ZoneTarget:
    """The zone's composition from its record (all used when the snapshot lacks the zone)."""
    counts = None if rec is None else rec.free_counts()
    if rec is None or counts is None:
        return ZoneTarget(n, tuple((0,) * NR_MT for _ in range(NR_ORDERS)),
                          _aged_shares(), _movable_use(snap))
    free = _mt_split(rec, snap.mt_names, counts)
    share = _aged_shares()
    if rec.blocks is not None and any(rec.blocks):
        acc = [0.0] * NR_MT
        for name, count in zip(snap.mt_names, rec.blocks, strict=True):
            acc[MT_OF_NAME[name]] += count
        share = (acc[0] / sum(acc), acc[1] / sum(acc), acc[2] / sum(acc))
    return ZoneTarget(n, tuple(tuple(r) for r in free), share, _movable_use(snap))


def _aged_shares() -> tuple[float, float, float]:
    t = aged_target(AgedConfig(), ZoneSpan(0, ZoneType.ZONE_NORMAL, 0, 0), 1)
    return t.pb_share


def _movable_use(snap: ProcSnapshot) -> tuple[float, float, float]:
    mem = snap.meminfo
    if mem is None or mem.cached is None or mem.anon_pages is None:
        cfg = AgedConfig()
        thp = cfg.anon_pct * cfg.thp_pct / 100
        return (cfg.pagecache_pct, cfg.anon_pct - thp, thp)
    thp = min(mem.anon_huge_pages or 0, mem.anon_pages)
    return (float(mem.cached), float(mem.anon_pages - thp), float(thp))


# --- sizing a machine for a snapshot ----------------------------------------------------------
@attrs.frozen(slots=True)
class MachineFit:
    """A machine that holds a snapshot: ``--set machine.KEY=VALUE`` values.

    :ivar hole_mib: the MMIO hole below 4 GiB (it matters only above 4 GiB of RAM).
    :ivar reserved_mib: 0: the snapshot's used pages stand for the kernel image too, and the
        whole of ZONE_DMA must be usable for its free blocks.
    """

    mem_gib: int
    nodes: int
    hole_mib: int
    reserved_mib: int = 0


DEFAULT_HOLE_MIB = 512  # [E] the MMIO hole when the snapshot has no zoneinfo
MAX_FIT_STEPS = 64


def machine_for_snapshot(snap: ProcSnapshot) -> MachineFit:
    """Propose mem_gib/nodes/hole for a machine that fits ``snap``.

    RAM is MemTotal (else the zones' present pages) rounded up to whole GiB per node, and at
    least what each zone's free blocks need (their pages plus one used page per block below
    order 9, the buddy each of them needs); then grown a GiB per node at a time until every
    zone packs. The hole is what RAM below 4 GiB lacks per zoneinfo (DMA + DMA32 present
    pages, rounded to 4 MiB), else :data:`DEFAULT_HOLE_MIB`, shrunk if DMA32's free blocks
    need the room.

    :raises InputError: when no machine up to 64 GiB per node larger fits.
    """
    nodes = max(1, snap.nodes)
    hole = _fit_hole(snap, _hole_mib(snap))
    low_pages = FOUR_GIB_PFN - (hole << 8)
    per_node = -(-_ram_kib(snap) // (nodes << 20))
    for node in range(nodes):
        normal = snap.zone(node, "Normal")
        need = 0 if normal is None else max(_need_pages(normal), BLOCK_PAGES)
        if node == 0 and need:  # ZONE_NORMAL starts above the RAM below 4 GiB
            need += low_pages
        per_node = max(per_node, -(-need // GIB_PAGES), 1)
    for _ in range(MAX_FIT_STEPS):
        fit = MachineFit(per_node * nodes, nodes, hole)
        failed = _misfit(snap, fit)
        if failed is None:
            return fit
        if failed in (ZoneType.ZONE_DMA, ZoneType.ZONE_DMA32):
            if hole == 0:
                raise InputError(f"snapshot: node 0 zone {ZONE_NAMES[failed]}: its free "
                                 "blocks do not fit below 4 GiB")
            hole = max(0, hole - 256)  # DMA32 needs room: a smaller hole gives it
        else:
            per_node += 1
    raise InputError(f"snapshot: no machine of up to {per_node * nodes} GiB holds its free "
                     "blocks")


def _need_pages(rec: ZoneRecord) -> int:
    counts = rec.free_counts() or (0,) * NR_ORDERS
    return sum((c << o) + (c if o < BLOCK_ORDER - 1 else 0) for o, c in enumerate(counts))


def _fit_hole(snap: ProcSnapshot, hole: int | None) -> int:
    hole = DEFAULT_HOLE_MIB if hole is None else hole
    low = [snap.zone(0, "DMA"), snap.zone(0, "DMA32")]
    need = sum(_need_pages(r) for r in low if r is not None)
    room = FOUR_GIB_PFN - (-(-need // BLOCK_PAGES) * BLOCK_PAGES)
    return max(0, min(hole, room >> 8))


def _misfit(snap: ProcSnapshot, fit: MachineFit) -> ZoneType | None:
    """The type of a zone of the machine ``fit`` that cannot hold the snapshot's, or None."""
    layout = build_layout(fit.mem_gib * GIB_PAGES, fit.nodes, fit.hole_mib << 8,
                          fit.reserved_mib << 8)
    try:
        records = _match_zones(layout, snap, "snapshot")
    except InputError:
        return ZoneType.ZONE_NORMAL
    for zone in layout.zones:
        n = len(usable_blocks(layout, zone))
        try:
            pack(snapshot_target(snap, records.get((zone.node, int(zone.zone_type))), n))
        except PackError:
            return zone.zone_type
    return None


def _ram_kib(snap: ProcSnapshot) -> int:
    if snap.meminfo is not None and snap.meminfo.mem_total is not None:
        return snap.meminfo.mem_total
    present = [r.info.present for r in snap.zones if r.info is not None
               and r.info.present is not None]
    return sum(present) * KIB_PER_PAGE


def _hole_mib(snap: ProcSnapshot) -> int | None:
    low = [snap.zone(0, name) for name in ("DMA", "DMA32")]
    if any(r is None or r.info is None or r.info.present is None for r in low):
        return None
    present = sum(r.info.present for r in low if r is not None and r.info is not None
                  and r.info.present is not None)
    low_pages = -(-present // BLOCK_PAGES) * BLOCK_PAGES
    return max(0, (FOUR_GIB_PFN - low_pages) * KIB_PER_PAGE // 1024)


def make_start_state(spec: Any, layout: Layout, seed: int) -> FreshState | AgedState | \
        SnapshotState | None:
    """The start state a machine asks for: ``machine.snapshot`` (the user's /proc text),
    else ``machine.state``: ``aged`` (:class:`AgedState` from the ``aged_*`` parameters) or
    ``fresh`` (None: the zones boot all free, memblock_free_all())."""
    if getattr(spec, "snapshot", ""):
        from framework.machine.procfs import read_snapshot

        return SnapshotState(layout, read_snapshot(spec.snapshot), seed, source=spec.snapshot)
    if getattr(spec, "state", "fresh") == "aged":
        return AgedState(layout, seed, AgedConfig.from_params(attrs.asdict(spec)))
    return None
