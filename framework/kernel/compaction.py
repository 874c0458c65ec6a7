"""mm/compaction.c: direct compaction and kcompactd over the start state's movable pages (v6.3).

What moves: the start state's order-0 page cache and anon pages (``Use.PAGECACHE``,
``Use.ANON``). THPs do not (v6.3's ``isolate_migratepages_block()`` skips compound pages
outside ``alloc_contig_range()``), nor do kernel and slab pages, nor anything the run
allocated (the designs' pages are unmovable kernel memory; a movable page a workload
allocated is not on an LRU in the model), nor pages on a per-cpu list.

- :meth:`Compaction.try_to_compact_pages`: ``try_to_compact_pages()`` over the zonelist's
  eligible zones: ``compaction_deferred()`` (skipped below ``MIN_COMPACT_PRIORITY``),
  ``compact_zone()``, ``defer_compaction()`` after a sync run that ended
  ``COMPACT_COMPLETE``, ``compaction_defer_reset()`` after a success.
- :meth:`Compaction.compaction_suitable`: ``compaction_suitable()``: ``COMPACT_SUCCESS``
  when the order's watermark is already met, ``COMPACT_SKIPPED`` without ``compact_gap``
  free pages above the low (costly) or min watermark, or when the fragmentation index of a
  costly order is at most ``sysctl_extfrag_threshold`` (500: failure for lack of memory).
- :meth:`Compaction.compact_zone`: the migrate scanner walks up the zone from its cached pfn
  (one per async/sync mode, as ``compact_cached_migrate_pfn[]``) over the pageblocks that
  held movable pages at the start (found without describing blocks); async mode takes only
  pageblocks of the request's migratetype (``suitable_migration_source()``) and gives up on
  a pageblock at its first page it cannot isolate (``skip_on_failure``); sync mode migrates
  every movable page of it. Each migrated page takes a free page as the free scanner gives
  them (modelled as ``fast_isolate_freepages()``'s free-list search: MOVABLE free lists from
  ``order - 1`` down, blocks split to order 0, in MOVABLE pageblocks above the migrate
  scanner; a start state's blocks not yet described are looked at only when the described
  ones offer nothing); its old page is freed and merges. The run succeeds when a free block of the
  order is on the request's list or could be stolen (``__compact_finished()``), ends
  ``COMPACT_COMPLETE`` when the scanners meet (the free scanner finds nothing above the
  migrate scanner, or the migrate scanner passes the last pageblock), and puts the unused
  free pages back (``release_freepages()``).

- :meth:`Compaction.wakeup_kcompactd`: ``wakeup_kcompactd()``, called by kswapd before it
  sleeps after a high-order wake (framework/kernel/vmscan.py): nothing for order 0, nor when
  no zone of the node up to the request's highest zone is suitable
  (``kcompactd_node_suitable()``: ``compaction_suitable()`` at the min watermark, the
  ``alloc_flags`` of 0 that kcompactd passes). Otherwise kcompactd runs at once, inside the
  allocation whose kswapd wake led to it, as kswapd does (deterministic):
  ``kcompactd_do_work()`` counts ``compact_daemon_wake`` and compacts each zone of the node
  from ZONE_DMA up to the highest zone in MIGRATE_SYNC_LIGHT mode for the order, as a
  GFP_KERNEL request (``MIGRATE_UNMOVABLE``, which ends a run on a free block of the order in
  any list it could steal from): a zone is skipped when ``compaction_deferred()`` or when
  ``compaction_suitable()`` (min watermark, the zone's own index) is not
  ``COMPACT_CONTINUE`` (the order's watermark is met, too little free memory, or a costly
  order's fragmentation index at most 500); a success resets the deferral
  (``compaction_defer_reset(zone, order, false)``), a run ending ``COMPACT_COMPLETE`` drains
  the zone's per-cpu lists (``drain_all_pages(zone)``) and defers like sync direct
  compaction. Each page kcompactd migrates counts ``pgmigrate_success`` and is charged as
  direct compaction charges it (``migrate_page``, ``compact_scan_block``, category
  ``compaction``), when it runs: as kswapd's reclaim, it counts in ``cycles_total`` and in
  ``Ledger.daemon_cycles``, which the engine takes out of the latency of the allocation
  whose wake led to it (the kernel's kcompactd runs on its own CPU). kcompactd's
  ``kcompactd_max_order``/``kcompactd_highest_zoneidx`` are the wake's own values: it runs
  before anything could raise them. ``machine.kcompactd=0``
  (:attr:`Compaction.kcompactd` off) leaves kcompactd asleep.

Not modelled: proactive compaction (``sysctl_compaction_proactiveness``, 20 by default:
kcompactd's timer every 500 ms compares ``fragmentation_score_node()`` with
``fragmentation_score_wmark()``; the model's events carry no time, so there is no timer to
run it on); ``compact_daemon_migrate_scanned`` and ``compact_daemon_free_scanned`` (the
model counts pageblocks scanned, not pages); the pageblock skip hints (``PB_migrate_skip``;
the cached scanner positions carry the same "do not rescan" effect within a pass); the
linear free scanner (only its free-list search); ``COMPACT_CONTENDED``;
``COMPACT_PARTIAL_SKIPPED`` (a pass that did not start at the zone's start ends
``COMPACT_COMPLETE`` too); capture (the page is taken from the free lists right after, as
without ``capture_control``); the wake of kcompactd at the end of a boosted
``balance_pgdat()`` (no watermark boosting).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Final

import numpy as np

from framework.kernel.buddy import BUDDY_ORDER_MASK, Zone
from framework.kernel.consts import (
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from framework.kernel.e820 import ZoneSpan
from framework.kernel.initial import StartState, Use
from framework.kernel.ledger import Ledger
from framework.kernel.pcp import PAGE_ALLOC_COSTLY_ORDER
from framework.kernel.vmscan import Lru, compact_gap
from framework.kernel.watermark import WMARK_HIGH, WMARK_LOW, WMARK_MIN

COMPACT_MAX_DEFER_SHIFT: Final = 6  # mm/compaction.c
SYSCTL_EXTFRAG_THRESHOLD: Final = 500  # vm.extfrag_threshold
FREELIST_SCAN_LIMIT: Final = 32  # freelist_scan_limit() without failures
COMPACT_CLUSTER_MAX: Final = 32
_PB_MASK: Final = PAGEBLOCK_NR_PAGES - 1


class CompactResult(IntEnum):
    """include/linux/compaction.h enum compact_result (the values the model reaches)."""

    COMPACT_SKIPPED = 1
    COMPACT_DEFERRED = 2
    COMPACT_CONTINUE = 4
    COMPACT_COMPLETE = 5
    COMPACT_SUCCESS = 8


class CompactPriority(IntEnum):
    """include/linux/compaction.h enum compact_priority."""

    COMPACT_PRIO_SYNC_FULL = 0
    COMPACT_PRIO_SYNC_LIGHT = 1
    COMPACT_PRIO_ASYNC = 2


MIN_COMPACT_PRIORITY: Final = CompactPriority.COMPACT_PRIO_SYNC_LIGHT  # MIN_COMPACT_PRIORITY
INIT_COMPACT_PRIORITY: Final = CompactPriority.COMPACT_PRIO_ASYNC
DEF_COMPACT_PRIORITY: Final = CompactPriority.COMPACT_PRIO_SYNC_LIGHT

#: The zone's LRU (framework/kernel/vmscan.py), which page cache moved by compaction joins.
LruOf = Callable[[Zone], Lru]


class ZoneCompact:
    """One zone's compaction state (``struct zone``'s compact_* fields)."""

    __slots__ = ("cached_migrate", "considered", "defer_shift", "order_failed", "sources")

    def __init__(self, zone: Zone) -> None:
        self.considered = 0  # compact_considered
        self.defer_shift = 0  # compact_defer_shift
        self.order_failed = MAX_ORDER  # compact_order_failed
        self.cached_migrate = [zone.start_pfn, zone.start_pfn]  # [async, sync]
        self.sources: list[int] | None = None  # pageblocks with movable pages at the start


def fragmentation_index(zone: Zone, order: int) -> int:
    """mm/vmstat.c fragmentation_index() (x1000): -1000 when a block of the order is free,
    towards 0 when a request fails for lack of memory, towards 1000 for fragmentation."""
    total = pages = suitable = 0
    for o in range(MAX_ORDER):  # fill_contig_page_info()
        blocks = zone.nr_free_at(o)
        total += blocks
        pages += blocks << o
        if o >= order:
            suitable += blocks << (o - order)
    if not total:
        return 0
    if suitable:
        return -1000
    return 1000 - (1000 + pages * 1000 // (1 << order)) // total


class Compaction:
    """Direct compaction and kcompactd of one machine (module docstring).

    :ivar kcompactd: kcompactd runs when kswapd wakes it (on by default, as in v6.3).
    """

    def __init__(self, zones: Sequence[Zone], spans: Sequence[ZoneSpan],
                 start: StartState | None, ledger: Ledger, costs: dict[str, float],
                 lru_of: LruOf) -> None:
        self.zones = zones
        self.spans = dict(zip((id(z) for z in zones), spans, strict=True))
        self.start = start
        self.ledger = ledger
        self.c_migrate = costs["migrate_page"]
        self.c_scan = costs["compact_scan_block"]
        self.lru_of = lru_of
        self.state = {id(z): ZoneCompact(z) for z in zones}
        self.kcompactd = True

    # -- deferral (mm/compaction.c) ---------------------------------------------------------
    def compaction_deferred(self, zone: Zone, order: int) -> bool:
        """compaction_deferred(): skip all but every ``1 << defer_shift``-th attempt."""
        st = self.state[id(zone)]
        if order < st.order_failed:
            return False
        st.considered += 1
        limit = 1 << st.defer_shift
        if st.considered >= limit:
            st.considered = limit
            return False
        return True

    def defer_compaction(self, zone: Zone, order: int) -> None:
        """defer_compaction()."""
        st = self.state[id(zone)]
        st.considered = 0
        st.defer_shift = min(st.defer_shift + 1, COMPACT_MAX_DEFER_SHIFT)
        st.order_failed = min(st.order_failed, order)

    def compaction_defer_reset(self, zone: Zone, order: int, alloc_success: bool) -> None:
        """compaction_defer_reset()."""
        st = self.state[id(zone)]
        if alloc_success:
            st.considered = 0
            st.defer_shift = 0
        if order >= st.order_failed:
            st.order_failed = order + 1

    # -- suitability ------------------------------------------------------------------------
    @staticmethod
    def compaction_suitable(zone: Zone, order: int, mark: int, highest_zone: int
                            ) -> CompactResult:
        """compaction_suitable() with the allocation's watermark ``mark`` (pages)."""
        if zone.watermark_ok(order, mark, highest_zone):
            return CompactResult.COMPACT_SUCCESS
        # __compaction_suitable(): low_wmark_pages for costly orders, else min_wmark_pages
        base = zone.wmark[WMARK_LOW] if order > PAGE_ALLOC_COSTLY_ORDER else zone.wmark[WMARK_MIN]
        if not zone.watermark_ok(0, base + compact_gap(order), highest_zone):
            return CompactResult.COMPACT_SKIPPED
        if order > PAGE_ALLOC_COSTLY_ORDER:
            index = fragmentation_index(zone, order)
            if 0 <= index <= SYSCTL_EXTFRAG_THRESHOLD:
                return CompactResult.COMPACT_SKIPPED  # COMPACT_NOT_SUITABLE_ZONE
        return CompactResult.COMPACT_CONTINUE

    def compaction_ready(self, zone: Zone, order: int, highest_zone: int) -> bool:
        """mm/vmscan.c compaction_ready(): enough free above the high watermark and
        compaction_suitable() says go on: reclaim leaves the zone to compaction."""
        mark = zone.wmark[WMARK_HIGH] + compact_gap(order)
        if not zone.watermark_ok(0, mark, highest_zone):
            return False
        return self.compaction_suitable(zone, order, zone.wmark[WMARK_LOW],
                                        highest_zone) == CompactResult.COMPACT_CONTINUE

    # -- the entry point --------------------------------------------------------------------
    def try_to_compact_pages(self, zonelist: Sequence[Zone], order: int, mt: int,
                             mark: int, highest_zone: int, prio: CompactPriority
                             ) -> CompactResult:
        """try_to_compact_pages(): the best result over the eligible zones; ``mark`` is the
        allocation's watermark (WMARK_MIN in the slow path)."""
        rc = CompactResult.COMPACT_SKIPPED
        for zone in zonelist:
            if zone.zone_type > highest_zone:
                continue
            if prio > MIN_COMPACT_PRIORITY and self.compaction_deferred(zone, order):
                rc = max(rc, CompactResult.COMPACT_DEFERRED)
                continue
            status = self.compact_zone(zone, order, mt, zone.wmark[mark], highest_zone,
                                       prio != CompactPriority.COMPACT_PRIO_ASYNC)
            rc = max(rc, status)
            if status == CompactResult.COMPACT_SUCCESS:
                self.compaction_defer_reset(zone, order, False)
                break
            if (prio != CompactPriority.COMPACT_PRIO_ASYNC
                    and status == CompactResult.COMPACT_COMPLETE):
                self.defer_compaction(zone, order)
        return rc

    # -- kcompactd --------------------------------------------------------------------------
    def wakeup_kcompactd(self, node: int, order: int, highest_zone: int) -> None:
        """wakeup_kcompactd(): kcompactd of ``node`` runs kcompactd_do_work() at once when
        the order is above 0 and some zone of the node is suitable."""
        if not order or not self.kcompactd:
            return
        zones = sorted((z for z in self.zones if z.node == node and z.zone_type <= highest_zone),
                       key=lambda z: z.zone_type)
        if self.kcompactd_node_suitable(zones, order, highest_zone):
            self.kcompactd_do_work(zones, order, highest_zone)

    def kcompactd_node_suitable(self, zones: Sequence[Zone], order: int, highest_zone: int
                                ) -> bool:
        """kcompactd_node_suitable(): compaction_suitable() says COMPACT_CONTINUE for some
        zone at the min watermark (alloc_flags 0)."""
        return any(self.compaction_suitable(z, order, z.wmark[WMARK_MIN], highest_zone)
                   == CompactResult.COMPACT_CONTINUE for z in zones)

    def kcompactd_do_work(self, zones: Sequence[Zone], order: int, highest_zone: int) -> None:
        """kcompactd_do_work(): ``compact_daemon_wake``, then each zone from the lowest up in
        MIGRATE_SYNC_LIGHT mode for a GFP_KERNEL request of ``order`` (module docstring)."""
        self.ledger.compact_daemon_wake += 1
        for zone in zones:
            if self.compaction_deferred(zone, order):
                continue
            mark = zone.wmark[WMARK_MIN]
            if (self.compaction_suitable(zone, order, mark, zone.zone_type)
                    != CompactResult.COMPACT_CONTINUE):
                continue
            status = self.compact_zone(zone, order, MIGRATE_UNMOVABLE, mark, highest_zone, True)
            if status == CompactResult.COMPACT_SUCCESS:
                self.compaction_defer_reset(zone, order, False)
            elif status == CompactResult.COMPACT_COMPLETE:
                zone.drain_pages()  # drain_all_pages(zone): pages stranded on pcp lists
                self.defer_compaction(zone, order)

    # -- compact_zone -----------------------------------------------------------------------
    def sources(self, zone: Zone) -> list[int]:
        """The zone's pageblocks that held page cache or 4 KiB anon at the start, ascending."""
        st = self.state[id(zone)]
        if st.sources is None:
            finder = getattr(self.start, "pageblocks_with", None)
            found: np.ndarray = np.zeros(0, dtype=np.int64)
            if finder is not None and zone.start_used_pages:
                found = finder(self.spans[id(zone)],
                               frozenset({int(Use.PAGECACHE), int(Use.ANON)}))
            st.sources = [int(b) for b in found]
        return st.sources

    def compact_zone(self, zone: Zone, order: int, mt: int, mark: int, highest_zone: int,
                     sync: bool) -> CompactResult:
        """compact_zone() (module docstring)."""
        ret = self.compaction_suitable(zone, order, mark, highest_zone)
        if ret != CompactResult.COMPACT_CONTINUE:
            return ret
        st = self.state[id(zone)]
        run = _Run(zone, order)
        if not sync and mt != MIGRATE_MOVABLE:
            # suitable_migration_source(): only pageblocks of the request's type; the start
            # state's are all kernel or slab, so only pageblocks the run converted qualify
            cache, anon = zone.cache_bits, zone.anon_bits
            blocks = [b for b, t in zone.pageblock_mt.items()
                      if t == mt and (b in cache or b in anon)]
            blocks.sort()
        else:
            blocks = self.sources(zone)
        i = bisect_left(blocks, st.cached_migrate[sync] >> PAGEBLOCK_ORDER)
        result = CompactResult.COMPACT_COMPLETE
        while i < len(blocks):
            block = blocks[i]
            i += 1
            if (block + 1) << PAGEBLOCK_ORDER > run.free_floor:
                break  # the scanners met
            st.cached_migrate[sync] = (block + 1) << PAGEBLOCK_ORDER
            if not self._migrate_block(run, block, mt, sync):
                break  # no free page left above the migrate scanner: the scanners met
            if _finished(zone, order, mt):
                result = CompactResult.COMPACT_SUCCESS
                break
        run.release()
        cost = self.c_scan * run.scanned + self.c_migrate * run.migrated
        led = self.ledger
        led.pgmigrate_success += run.migrated
        led.compaction_cycles += cost
        led.total_cycles += cost
        if result == CompactResult.COMPACT_COMPLETE:  # reset_cached_positions()
            st.cached_migrate = [zone.start_pfn, zone.start_pfn]
        return result

    def _migrate_block(self, run: _Run, block: int, mt: int, sync: bool) -> bool:
        """isolate_migratepages_block() + migrate_pages() over one pageblock; False when the
        free scanner ran out."""
        zone = run.zone
        zone.materialise(block << PAGEBLOCK_ORDER)
        if not sync and zone.pageblock_mt.get(block, MIGRATE_MOVABLE) != mt:
            return True  # suitable_migration_source()
        run.scanned += 1
        cache = zone.cache_bits.get(block, 0)
        anon = zone.anon_bits.get(block, 0)
        if not cache | anon:
            return True
        if not sync and (zone.pinned_bits.get(block, 0) or _others(zone, block, cache | anon)):
            return True  # skip_on_failure: the pageblock cannot become free
        base = block << PAGEBLOCK_ORDER
        lru = self.lru_of(zone) if cache else None
        freepages, put_back = run.freepages, run.put_back
        for bits, table in ((cache, zone.cache_bits), (anon, zone.anon_bits)):
            joins = lru if lru is not None and table is zone.cache_bits else None
            while bits:
                low = bits & -bits
                if not freepages and not run.isolate(block):  # compaction_alloc()
                    _store(table, block, bits)
                    return False
                target = freepages.pop()
                bits ^= low
                tblock = target >> PAGEBLOCK_ORDER
                table[tblock] = table.get(tblock, 0) | 1 << (target & _PB_MASK)
                if joins is not None and tblock not in joins.members:
                    joins.add(tblock)
                run.migrated += 1
                put_back.append(base + low.bit_length() - 1)
            _store(table, block, bits)
        run.free_sources()
        return True


def _store(table: dict[int, int], block: int, bits: int) -> None:
    if bits:
        table[block] = bits
    else:
        table.pop(block, None)


def _others(zone: Zone, block: int, movable: int) -> bool:
    """Does the pageblock hold pages that are neither free in the buddy nor the start
    state's (pages the run allocated, or pages on a per-cpu list)?"""
    base = block << PAGEBLOCK_ORDER
    free = 0
    pfn = base
    end = base + PAGEBLOCK_NR_PAGES
    buddy = zone.buddy
    while pfn < end:
        info = buddy.get(pfn)
        if info is None:
            pfn += 1
            continue
        size = 1 << (info & BUDDY_ORDER_MASK)
        free += size
        pfn += size
    used = (movable | zone.pinned_bits.get(block, 0)).bit_count()
    return free + used < PAGEBLOCK_NR_PAGES


def _finished(zone: Zone, order: int, mt: int) -> bool:
    """__compact_finished(): a free block of ``order`` or more on ``mt``'s list, or one the
    allocation could steal (find_suitable_fallback(only_stealable))."""
    for o in range(order, MAX_ORDER):
        if not zone.list_empty(o, mt):
            return True
        fallback, can_steal = zone.find_suitable_fallback(o, mt)
        if fallback != -1 and can_steal:
            return True
    return False


class _Run:
    """One compact_zone() pass: the isolated free pages (``cc->freepages``), the free
    scanner's lowest pageblock, the pages migrated and the sources to free."""

    __slots__ = ("free_floor", "freepages", "migrated", "order", "put_back", "scanned", "zone")

    def __init__(self, zone: Zone, order: int) -> None:
        self.zone = zone
        self.order = order
        self.freepages: list[int] = []
        self.free_floor = zone.end_pfn
        self.migrated = 0
        self.scanned = 0
        self.put_back: list[int] = []

    def isolate(self, source_block: int) -> bool:
        """fast_isolate_freepages(): the first suitable block in the first
        FREELIST_SCAN_LIMIT entries of the MOVABLE lists, order - 1 down to 0, split into
        order-0 pages (split_map_pages()). The lists' explicit part first (blocks already
        described); only when it has no suitable block, the start state's next blocks are
        described, smallest order first (the commonest, so that few blocks are described)."""
        zone = self.zone
        floor = (source_block + 1) << PAGEBLOCK_ORDER
        top = min(self.order, PAGEBLOCK_ORDER) - 1
        for order in range(top, -1, -1):
            if self._take(order, floor):
                return True
        if not zone.unmat:
            return False
        for order in range(top + 1):
            while zone.unmat[order][MIGRATE_MOVABLE] and zone._describe_next():
                if self._take(order, floor):
                    return True
        return False

    def _take(self, order: int, floor: int) -> bool:
        """Isolate the first block of ``free_area[order][MOVABLE]`` at or above ``floor`` in
        a MOVABLE pageblock, looking at FREELIST_SCAN_LIMIT entries at most."""
        zone = self.zone
        types = zone.pageblock_mt
        for n, pfn in enumerate(reversed(zone.free_area[order][MIGRATE_MOVABLE])):
            if n >= FREELIST_SCAN_LIMIT:
                return False
            if pfn < floor or types.get(pfn >> PAGEBLOCK_ORDER,
                                        MIGRATE_MOVABLE) != MIGRATE_MOVABLE:
                continue
            zone._del(pfn)
            self.freepages.extend(range(pfn + (1 << order) - 1, pfn - 1, -1))
            self.free_floor = min(self.free_floor, pfn >> PAGEBLOCK_ORDER << PAGEBLOCK_ORDER)
            return True
        return False

    def free_sources(self) -> None:
        """putback of migrated folios' old pages: freed to the buddy, where they merge."""
        _free_runs(self.zone, self.put_back)
        self.put_back.clear()

    def release(self) -> None:
        """release_freepages(): isolated free pages not used go back to the buddy."""
        self.free_sources()
        _free_runs(self.zone, self.freepages)
        self.freepages.clear()


def _free_runs(zone: Zone, pfns: list[int]) -> None:
    """free_one_page(pfn, 0, its pageblock's migratetype) for each of ``pfns`` in order,
    a run of pages of one pageblock at a time (Zone.free_pages_order0())."""
    types = zone.pageblock_mt
    i, n = 0, len(pfns)
    while i < n:
        block = pfns[i] >> PAGEBLOCK_ORDER
        j = i + 1
        while j < n and pfns[j] >> PAGEBLOCK_ORDER == block:
            j += 1
        zone.free_pages_order0(pfns[i:j], types.get(block, MIGRATE_MOVABLE))
        i = j
