"""mm/page_alloc.c: the zones' buddy allocator as the designs reach it.

:class:`PageAlloc` holds one :class:`~framework.kernel.buddy.Zone` per node and the page
allocator's entry points (``__alloc_pages``, ``__free_pages``, ``__free_pages_ok``,
``split_page``, ``clear_page``), the pageblock flag bits and the extension points a design
registers (an extra migratetype, a pageblock flag, a free-path hook). It also hands out the
page-table pages a direct-map split needs. It knows nothing of requests or designs.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from framework.kernel.buddy import NO_PAGE, Zone
from framework.kernel.compaction import (
    DEF_COMPACT_PRIORITY,
    INIT_COMPACT_PRIORITY,
    Compaction,
    CompactPriority,
    CompactResult,
)
from framework.kernel.consts import (
    FALLBACKS,
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    NR_PAGEBLOCK_BITS,
    PAGE_SHIFT,
    PAGEBLOCK_ORDER,
    MigrateType,
)
from framework.kernel.e820 import ZoneType, build_layout
from framework.kernel.faults import Faults
from framework.kernel.initial import StartState
from framework.kernel.ledger import Ledger, repeat_is_exact
from framework.kernel.pcp import PAGE_ALLOC_COSTLY_ORDER, zone_batchsize, zone_highsize
from framework.kernel.vmscan import MAX_RECLAIM_RETRIES, Reclaim
from framework.kernel.watermark import (
    WMARK_LOW,
    WMARK_MIN,
    setup_per_zone_lowmem_reserve,
    setup_per_zone_wmarks,
)
from framework.machine.spec import MachineSpec

#: ``hook(pfn, order) -> taken``: a design's diversion of generic frees (see
#: :meth:`PageAlloc.register_free_hook`).
FreeHook = Callable[[int, int], bool]
#: ``violation(rule, where, detail)``: how the model records a broken promise.
Violation = Callable[[str, int, str], None]


class PageAlloc:
    """The page allocator of one machine.

    :ivar zones: one :class:`Zone` per node.
    :ivar allocated: head pfn -> order of every block the buddy handed out.
    :ivar nr_allocated: pages in :attr:`allocated`.
    :ivar pt_pfns: page-table pages of the direct map (allocated too).
    :ivar dirty: pages written since they were last cleared (the memory's contents).
    :ivar current_node: the node of the CPU that allocates (``numa_node_id()``).
    """

    def __init__(self, spec: MachineSpec, costs: dict[str, float], ledger: Ledger,
                 faults: Faults, rng: random.Random, violation: Violation, dirty: set[int],
                 vm_mapped: dict[int, int], start: StartState | None = None) -> None:
        self.spec = spec
        self.costs = costs
        self.ledger = ledger
        self.faults = faults
        self.rng = rng  # one stream with the CPA and page-table faults: the draw order matters
        self.violation = violation
        self.alloc_faults = bool(faults.alloc_fail_orders or faults.alloc_fail_rate)
        self.allocated: dict[int, int] = {}
        self.nr_allocated = 0
        self.pt_pfns: set[int] = set()
        self.dirty = dirty
        # pfn -> live vmalloc areas mapping it (owned by mm/vmalloc.c's model; read here for
        # the bad_free check of a page freed while still mapped)
        self.vm_mapped = vm_mapped
        self.current_node = 0
        self.fallbacks: dict[int, tuple[int, ...]] = dict(FALLBACKS)
        self.nr_migratetypes = len(MigrateType)  # MIGRATE_PCPTYPES (no HIGHATOMIC, CMA, ISOLATE)
        self.pageblock_bits = NR_PAGEBLOCK_BITS
        self.pageblock_flag_names: dict[str, int] = {}
        self.free_hooks: list[tuple[int, FreeHook]] = []
        self.free_hook_mask = 0
        self.reserved_pages = (spec.reserved_mib << 20) >> PAGE_SHIFT
        self.layout = build_layout(spec.mem_pages, spec.nodes,
                                   (spec.hole_mib << 20) >> PAGE_SHIFT, self.reserved_pages)
        self.zones = self._build_zones()
        if start is None:
            from framework.machine.startstate import make_start_state

            start = make_start_state(spec, self.layout, faults.seed)
        self.start = start
        if start is not None:
            for zone, span in zip(self.zones, self.layout.zones, strict=True):
                zone.attach_start(start, span)
        self._zone_starts = [zone.start_pfn for zone in self.zones]
        self.last_zone = self.zones[-1]
        self.zonelists = [self._build_zonelist(node) for node in range(spec.nodes)]
        self.nofragment = [self._alloc_flags_nofragment(node) for node in range(spec.nodes)]
        self.cpus_per_node = max(1, spec.cpus // spec.nodes)
        setup_per_zone_wmarks(self.zones, spec.min_free_kbytes)
        setup_per_zone_lowmem_reserve(self.zones, spec.nodes)
        self.pcp_enabled = spec.pcp
        if spec.pcp:
            for zone in self.zones:
                zone.batch = max(1, zone_batchsize(zone.managed))
                zone.high = zone_highsize(zone.wmark[WMARK_LOW], zone.batch,
                                          self.cpus_per_node)
        self.current_cpu = 0
        self.c_zero = costs["zero_page"]  # hot-path cost, looked up once
        # mm/vmscan.c and mm/compaction.c: act only inside the slow path
        self.reclaim = Reclaim(self.zones, self.layout.zones, start, ledger, costs,
                               faults.seed)
        self.compaction = Compaction(self.zones, self.layout.zones, start, ledger, costs,
                                     self.reclaim.lru)
        self.reclaim.compaction_ready = self.compaction.compaction_ready
        self.reclaim.wakeup_kcompactd = self.compaction.wakeup_kcompactd
        self.compaction.kcompactd = spec.kcompactd


    def _build_zones(self) -> list[Zone]:
        """free_area_init(): one Zone per populated zone of each node (framework/kernel/e820.py);
        memblock_free_all() gives each everything above the reserved start of RAM."""
        zones = []
        for span in self.layout.zones:
            first_free = min(span.end_pfn, max(span.start_pfn, self.reserved_pages))
            zone = Zone(span.node, span.start_pfn, span.end_pfn, first_free, self.ledger,
                        self.costs, self.nr_migratetypes, self.fallbacks)
            zone.zone_type = span.zone_type
            zones.append(zone)
        return zones

    def _build_zonelist(self, node: int) -> list[Zone]:
        """build_zonelists() (node order): the node's zones from the highest type down, then
        each other node's in the same way, nearest (next) node first."""
        nodes = self.spec.nodes
        out: list[Zone] = []
        for i in range(nodes):
            other = (node + i) % nodes
            out.extend(sorted((z for z in self.zones if z.node == other),
                              key=lambda z: -z.zone_type))
        return out

    def _alloc_flags_nofragment(self, node: int) -> bool:
        """alloc_flags_nofragment(): ALLOC_NOFRAGMENT when the preferred zone is
        ZONE_NORMAL and, on a NUMA machine, the node also has ZONE_DMA32."""
        types = {z.zone_type for z in self.zones if z.node == node}
        if ZoneType.ZONE_NORMAL not in types:
            return False
        return self.spec.nodes == 1 or ZoneType.ZONE_DMA32 in types

    def add_migratetype(self, fallbacks: tuple[int, ...], taken_last_by: tuple[int, ...] = (),
                        steal_policy: Callable[[int, int], bool] | None = None,
                        single_page: bool = False) -> int:
        """Add a migratetype (e.g. ``MIGRATE_UNMAPPED``) with its own free lists.

        :param fallbacks: the new type's row of the ``fallbacks`` table.
        :param taken_last_by: existing types that may fall back to the new one, last.
        :param steal_policy: replaces ``can_steal_fallback()`` when given.
        :param single_page: when the new type falls back, ``steal_suitable_fallback()`` moves
            only the free block it found to the new type's lists and claims no pageblock,
            whatever the block's order (a ``goto single_page`` at its top).
        :returns: the new migratetype number.
        """
        mt = self.nr_migratetypes
        self.nr_migratetypes += 1
        for zone in self.zones:
            zone.add_migratetype()
            if steal_policy is not None:
                zone.steal_policy = steal_policy
            if single_page:
                zone.single_page_types.add(mt)
        self.fallbacks[mt] = fallbacks
        for other in taken_last_by:
            self.fallbacks[other] = (*self.fallbacks[other], mt)
        return mt

    def register_pageblock_flag(self, name: str, bit: int) -> int:
        """Claim pageblock flag bit ``bit`` (``PB_unmapped = 7``); grows NR_PAGEBLOCK_BITS.

        :returns: the mask of the bit.
        """
        self.pageblock_flag_names[name] = bit
        self.pageblock_bits = max(self.pageblock_bits, 1 << (bit.bit_length()))
        return 1 << bit

    def register_free_hook(self, mask: int, hook: FreeHook) -> None:
        """Divert generic frees of pages in pageblocks with ``mask`` set to ``hook(pfn, order)``.

        Mirrors the v3 patch's check in ``free_pages_prepare()`` / ``free_unref_page_list()``.
        The hook returns True when it took the page.
        """
        self.free_hooks.append((mask, hook))
        self.free_hook_mask |= mask

    def preferred_zone(self, node: int = 0) -> Zone:
        """The first zone of ``node``'s zonelist: where its GFP_KERNEL allocations start."""
        return self.zonelists[node][0]

    def zone_of(self, pfn: int) -> Zone:
        """page_zone()."""
        zone = self.last_zone
        if zone.start_pfn <= pfn < zone.end_pfn:
            return zone
        zone = self.last_zone = self.zones[bisect_right(self._zone_starts, pfn) - 1]
        return zone

    def get_pageblock_flags(self, pfn: int) -> int:
        """get_pfnblock_flags_mask() for the extra bits."""
        return self.zone_of(pfn).pageblock_flags.get(pfn >> PAGEBLOCK_ORDER, 0)

    def set_pageblock_flags(self, pfn: int, mask: int, value: bool) -> None:
        """set_pfnblock_flags_mask() for the extra bits."""
        flags = self.zone_of(pfn).pageblock_flags
        block = pfn >> PAGEBLOCK_ORDER
        bits = (flags.get(block, 0) | mask) if value else (flags.get(block, 0) & ~mask)
        if bits:
            flags[block] = bits
        else:
            flags.pop(block, None)

    def alloc_pages(self, order: int, mt: int = MIGRATE_UNMOVABLE, node: int | None = None,
                    zero: bool = False, highest_zone: int = ZoneType.ZONE_NORMAL) -> int:
        """__alloc_pages(): returns the head pfn or -1 (NULL).

        get_page_from_freelist() over the preferred node's zonelist at the low watermark
        (first on the node's own zones with ALLOC_NOFRAGMENT where v6.3 sets it: no stealing
        below pageblock_order), then __alloc_pages_slowpath(). ``highest_zone`` is the
        highest zone the GFP flags allow (``gfp_zone()``: ZONE_NORMAL for GFP_KERNEL).
        ``zero`` is ``__GFP_ZERO``: the pages are cleared in ``post_alloc_hook``.
        """
        if order >= MAX_ORDER or (self.alloc_faults and self.faults.fail_alloc(order, self.rng)):
            return NO_PAGE
        preferred = self.current_node if node is None or node < 0 else node
        pfn = self.get_page_from_freelist(order, mt, preferred, WMARK_LOW, highest_zone)
        if pfn == NO_PAGE:
            pfn = self.alloc_pages_slowpath(order, mt, preferred, highest_zone)
            if pfn == NO_PAGE:
                return NO_PAGE
        self.allocated[pfn] = order
        self.nr_allocated += 1 << order
        if mt == MIGRATE_MOVABLE:
            self._count_movable(pfn, 1 << order)
        if zero:
            self.clear_pages(pfn, 1 << order)
        return pfn

    def get_page_from_freelist(self, order: int, mt: int, preferred: int, mark: int,
                               highest_zone: int) -> int:
        """get_page_from_freelist(): the first zone of the zonelist above its watermark that
        has a block; ALLOC_NOFRAGMENT holds only until the walk leaves the preferred node."""
        zonelist = self.zonelists[preferred]
        if self.nofragment[preferred]:
            for zone in zonelist:
                if zone.node != preferred:
                    break
                pfn = self._try_zone(zone, order, mt, mark, highest_zone, True)
                if pfn != NO_PAGE:
                    return pfn
        for zone in zonelist:
            pfn = self._try_zone(zone, order, mt, mark, highest_zone, False)
            if pfn != NO_PAGE:
                if zone.node != preferred:  # zone_statistics()
                    self.ledger.numa_miss += 1
                    self.ledger.numa_foreign += 1
                return pfn
        return NO_PAGE

    def _try_zone(self, zone: Zone, order: int, mt: int, mark: int, highest_zone: int,
                  nofragment: bool) -> int:
        """One zone of the walk: the watermark check, then rmqueue()."""
        if zone.zone_type > highest_zone:
            return NO_PAGE
        if not zone.watermark_ok(order, zone.wmark[mark], highest_zone):
            return NO_PAGE
        if self.pcp_enabled and (order <= PAGE_ALLOC_COSTLY_ORDER or order == PAGEBLOCK_ORDER):
            return zone.rmqueue_pcplist(self.current_cpu, order, mt, nofragment)
        return zone.rmqueue(order, mt, nofragment)

    def alloc_pages_slowpath(self, order: int, mt: int, preferred: int,
                             highest_zone: int) -> int:
        """__alloc_pages_slowpath() for GFP_KERNEL-like requests (direct reclaim allowed, no
        __GFP_NORETRY or __GFP_RETRY_MAYFAIL):

        wake_all_kswapds() (kswapd runs at once: framework/kernel/vmscan.py); the free lists
        at the min watermark; for a costly order or an unmovable order > 0, async direct
        compaction; then the retry loop: kswapd again, the free lists, direct reclaim (with
        drain_all_pages() and one more try the first time it does not suffice), direct
        compaction at DEF_COMPACT_PRIORITY. A costly order gives up after one round; orders
        0-3 retry while should_reclaim_retry() or should_compact_retry() allow, at most
        MAX_RECLAIM_RETRIES rounds without progress. No OOM killer: the end is NULL.
        """
        zonelist = self.zonelists[preferred]
        costly = order > PAGE_ALLOC_COSTLY_ORDER
        self.wake_all_kswapds(order, zonelist, highest_zone)
        pfn = self.get_page_from_freelist(order, mt, preferred, WMARK_MIN, highest_zone)
        if pfn != NO_PAGE:
            return pfn
        if costly or (order and mt != MIGRATE_MOVABLE):
            pfn, _ = self.direct_compact(order, mt, preferred, highest_zone,
                                         INIT_COMPACT_PRIORITY)
            if pfn != NO_PAGE:
                return pfn
        return self._retry(order, mt, preferred, highest_zone, zonelist)

    def _retry(self, order: int, mt: int, preferred: int, highest_zone: int,
               zonelist: list[Zone]) -> int:
        """The slow path's ``retry:`` loop (alloc_pages_slowpath())."""
        no_progress_loops = compaction_retries = 0
        drained = False
        while True:
            self.wake_all_kswapds(order, zonelist, highest_zone)
            pfn = self.get_page_from_freelist(order, mt, preferred, WMARK_MIN, highest_zone)
            if pfn != NO_PAGE:
                return pfn
            progress = self.reclaim.try_to_free_pages(zonelist, order, highest_zone)
            pfn = self.get_page_from_freelist(order, mt, preferred, WMARK_MIN, highest_zone)
            if pfn == NO_PAGE and not drained:  # __alloc_pages_direct_reclaim()
                drained = True
                if self.pcp_enabled and self.drain_all_pages():
                    pfn = self.get_page_from_freelist(order, mt, preferred, WMARK_MIN,
                                                      highest_zone)
            if pfn != NO_PAGE:
                return pfn
            pfn, result = self.direct_compact(order, mt, preferred, highest_zone,
                                              DEF_COMPACT_PRIORITY)
            if pfn != NO_PAGE or order > PAGE_ALLOC_COSTLY_ORDER:
                return pfn
            no_progress_loops = 0 if progress else no_progress_loops + 1
            if no_progress_loops > MAX_RECLAIM_RETRIES:
                return NO_PAGE
            if self.should_reclaim_retry(order, zonelist, highest_zone):
                continue
            if progress and result == CompactResult.COMPACT_SUCCESS \
                    and compaction_retries < MAX_RECLAIM_RETRIES:  # should_compact_retry()
                compaction_retries += 1
                continue
            return NO_PAGE

    def drain_all_pages(self) -> int:
        """drain_all_pages(): every CPU's lists of every zone back to the buddy."""
        drained = 0
        for zone in self.zones:
            drained += zone.drain_pages()
        return drained

    def wake_all_kswapds(self, order: int, zonelist: list[Zone], highest_zone: int) -> None:
        """wake_all_kswapds(): wakeup_kswapd() for each node of the zonelist, once."""
        seen = -1
        for zone in zonelist:
            if zone.node != seen and zone.zone_type <= highest_zone:
                seen = zone.node
                self.reclaim.wakeup_kswapd(zone.node, order, highest_zone)

    def direct_compact(self, order: int, mt: int, preferred: int, highest_zone: int,
                       prio: CompactPriority) -> tuple[int, CompactResult]:
        """__alloc_pages_direct_compact(): compact_stall unless every zone was skipped, then
        the free lists; compact_success or compact_fail."""
        if not order:
            return NO_PAGE, CompactResult.COMPACT_SKIPPED
        result = self.compaction.try_to_compact_pages(self.zonelists[preferred], order, mt,
                                                      WMARK_MIN, highest_zone, prio)
        if result == CompactResult.COMPACT_SKIPPED:
            return NO_PAGE, result
        led = self.ledger
        led.compact_stall += 1
        pfn = self.get_page_from_freelist(order, mt, preferred, WMARK_MIN, highest_zone)
        if pfn != NO_PAGE:
            self.compaction.compaction_defer_reset(self.zone_of(pfn), order, True)
            led.compact_success += 1
        else:
            led.compact_fail += 1
        return pfn, result

    def should_reclaim_retry(self, order: int, zonelist: list[Zone],
                             highest_zone: int) -> bool:
        """should_reclaim_retry()'s test: would some zone meet its min watermark for the
        order if all its reclaimable pages were freed?"""
        for zone in zonelist:
            if zone.zone_type > highest_zone:
                continue
            available = zone.nr_free_pages + self.reclaim.reclaimable(zone)
            mark = zone.wmark[WMARK_MIN] + zone.lowmem_reserve[highest_zone]
            if available - ((1 << order) - 1) <= mark:
                continue
            if not order or any(zone.nr_free_at(o) for o in range(order, MAX_ORDER)):
                return True
        return False

    def _count_movable(self, pfn: int, delta: int) -> None:
        """Movable pages in use per pageblock: what steal_suitable_fallback()'s ``alike`` counts."""
        used = self.zone_of(pfn).movable_used
        block = pfn >> PAGEBLOCK_ORDER
        used[block] = used.get(block, 0) + delta

    def split_page(self, pfn: int, order: int) -> None:
        """split_page(): a high-order block becomes 1 << order order-0 pages."""
        del self.allocated[pfn]
        for p in range(pfn, pfn + (1 << order)):
            self.allocated[p] = 0

    def clear_pages(self, pfn: int, nr: int) -> None:
        """clear_page() over ``nr`` pages: charge zeroing and forget what was written."""
        led = self.ledger
        cost = self.c_zero * nr
        led.zeroing_cycles += cost
        led.total_cycles += cost
        led.zeroed_pages += nr
        dirty = self.dirty
        if dirty:
            if nr == 1:
                dirty.discard(pfn)
            else:
                dirty.difference_update(range(pfn, pfn + nr))

    def free_pages(self, pfn: int, order: int, movable: bool = False) -> None:
        """__free_pages(): the generic free path.

        ``free_pages_prepare()`` first offers pages of a pageblock with a hooked flag bit to
        the plugin's hook (the v3 ``PB_unmapped`` diversion); otherwise the block goes back
        to the buddy on its pageblock's migratetype list. Freeing pages the buddy does not
        consider handed out is recorded as ``bad_free`` and ignored.
        """
        alloc = self.allocated
        key: Any = pfn  # one int object for both dict operations (docs/performance.md)
        if alloc.get(key, -1) == order:  # _take_range()'s whole-block case, inlined
            del alloc[key]
            self.nr_allocated -= 1 << order
        elif not self._take_range(pfn, order):
            self.violation("bad_free", pfn, f"order-{order} free of pages that are not "
                           "allocated (double free, or never handed out)")
            return
        if self.vm_mapped and not self.vm_mapped.keys().isdisjoint(range(pfn, pfn + (1 << order))):
            self.violation("bad_free", pfn, "page freed while a vmalloc area still maps it")
        if movable:
            self._count_movable(pfn, -(1 << order))
        if self.free_hook_mask and self._divert(pfn, order):
            self.allocated[pfn] = order  # now held by the plugin's cache
            self.nr_allocated += 1 << order
            return
        zone = self.zone_of(pfn)
        mt = zone.pageblock_mt.get(pfn >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)
        if self.pcp_enabled and (order <= PAGE_ALLOC_COSTLY_ORDER or order == PAGEBLOCK_ORDER):
            zone.free_unref_page(self.current_cpu, pfn, order, mt)  # free_unref_page()
        else:
            zone.free_one_page(pfn, order, mt, False)  # __free_pages_ok()

    def _take_range(self, pfn: int, order: int) -> bool:
        """Remove ``[pfn, pfn + 2^order)`` from :attr:`allocated`.

        The range may be a whole allocated block, part of a bigger one (a page of a block a
        plugin split up, as ``split_page`` / ``post_alloc_hook`` allow), or several smaller
        ones (a plugin that merged its cached pages). Returns False, changing nothing, when
        any page of the range is not allocated.
        """
        alloc = self.allocated
        if alloc.get(pfn) == order:
            del alloc[pfn]
            self.nr_allocated -= 1 << order
            return True
        for big in range(order + 1, MAX_ORDER):
            head = pfn >> big << big
            if alloc.get(head) == big:
                del alloc[head]
                while big > order:  # keep the rest of the block allocated
                    big -= 1
                    half = head + (1 << big)
                    if pfn >= half:
                        alloc[head] = big
                        head = half
                    else:
                        alloc[half] = big
                self.nr_allocated -= 1 << order
                return True
        return self._take_parts(pfn, order)

    def _take_parts(self, pfn: int, order: int) -> bool:
        alloc = self.allocated
        end = pfn + (1 << order)
        parts = []
        p = pfn
        while p < end:
            o = alloc.get(p)
            if o is None or p + (1 << o) > end:
                return False
            parts.append(p)
            p += 1 << o
        for p in parts:
            del alloc[p]
        self.nr_allocated -= 1 << order
        return True

    def _divert(self, pfn: int, order: int) -> bool:
        """free_pages_prepare(): offer a block of a hooked pageblock to the plugin's hook."""
        zone = self.zone_of(pfn)
        bits = zone.pageblock_flags.get(pfn >> PAGEBLOCK_ORDER, 0)
        if not bits & self.free_hook_mask:
            return False
        for mask, hook in self.free_hooks:
            if bits & mask and hook(pfn, order):
                return True
        return False

    def free_pages_ok(self, pfn: int, order: int, to_tail: bool = False) -> None:
        """__free_pages_ok(FPI_UNMAPPED [| FPI_TO_TAIL]): back to the buddy, no hooks.

        For a plugin returning pages it holds (e.g. a shrinker); they must have come from
        :meth:`alloc_pages` or a free hook, else ``bad_free`` is recorded.
        """
        if not self._take_range(pfn, order):
            self.violation("bad_free", pfn, f"order-{order} return of pages not held")
            return
        self._free_to_buddy(pfn, order, to_tail)

    def _free_to_buddy(self, pfn: int, order: int, to_tail: bool) -> None:
        """free_one_page() on the pageblock's migratetype (get_pfnblock_migratetype())."""
        zone = self.zone_of(pfn)
        mt = zone.pageblock_mt.get(pfn >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)  # inlined getter
        zone.free_one_page(pfn, order, mt, to_tail)

    # -- bulk order-0 allocation and free (vmalloc's page loops) ------------------------
    def alloc_pages_bulk(self, nr: int, mt: int = MIGRATE_UNMOVABLE,
                         node: int | None = None) -> list[int]:
        """``nr`` order-0 pages: exactly what ``nr`` calls of ``alloc_pages(0, mt, node)`` in
        a row give, with the same state, counters and cycles after; shorter when one fails
        (the pages before it are kept, as the calls would leave them).

        v6.3 ``vm_area_alloc_pages()`` takes its 4 KiB pages this way
        (``alloc_pages_bulk_array_mempolicy()`` -> ``__alloc_pages_bulk()``: the per-cpu list
        emptied in a loop under one lock, ``rmqueue_bulk()`` refilling it). Each run of pages
        the next calls would take from one per-cpu list without a refill is taken at once
        (:meth:`_pcp_hit_zone`, :meth:`_take_pcp_run`); a refill, a fallback, a failure or an
        injected fault goes through :meth:`alloc_pages` itself, one page.
        """
        out: list[int] = []
        bulk = self.pcp_enabled and not self.alloc_faults
        preferred = self.current_node if node is None or node < 0 else node
        while len(out) < nr:
            if bulk:
                zone = self._pcp_hit_zone(preferred, mt)
                if zone is not None and self._take_pcp_run(zone, mt, preferred,
                                                            nr - len(out), out):
                    continue
            pfn = self.alloc_pages(0, mt, node)
            if pfn == NO_PAGE:
                break
            out.append(pfn)
        return out

    def _pcp_hit_zone(self, preferred: int, mt: int) -> Zone | None:
        """The zone whose per-cpu list the next ``alloc_pages(0, mt)`` takes its page from
        without touching anything else, or None when that call would refill, fall back or
        fail (or the list does not exist yet).

        get_page_from_freelist() at the low watermark tries first the first zone of the
        zonelist (ALLOC_NOFRAGMENT's pass walks a prefix of the same list) whose type GFP_KERNEL
        allows and whose watermark is met; both tests read nothing a per-cpu hit changes
        (NR_FREE_PAGES moves only when the buddy does), so the zones before it stay skipped
        for a whole run of hits.
        """
        highest = ZoneType.ZONE_NORMAL
        for zone in self.zonelists[preferred]:
            if zone.zone_type > highest:
                continue
            if not zone.watermark_ok(0, zone.wmark[WMARK_LOW], highest):
                continue
            pcp = zone.pcp.get(self.current_cpu)
            if pcp is None:
                return None
            lst = pcp.get_list(0, mt)
            return zone if lst else None
        return None

    def _take_pcp_run(self, zone: Zone, mt: int, preferred: int, want: int,
                      out: list[int]) -> bool:
        """Up to ``want`` per-cpu hits on ``zone``'s ``(0, mt)`` list, as rmqueue_pcplist()
        and alloc_pages() would take them one by one (appended to ``out``). False, taking
        nothing, when the cycles of a run would not add up bit for bit as separate charges."""
        pcp = zone.pcp[self.current_cpu]
        lst = pcp.get_list(0, mt)
        assert lst is not None  # _pcp_hit_zone() found it non-empty
        k = min(want, len(lst))
        led = self.ledger
        c_op = zone.c_op
        if not (repeat_is_exact(led.buddy_cycles, c_op, k)
                and repeat_is_exact(led.total_cycles, c_op, k)):
            return False
        alloc = self.allocated
        movable = mt == MIGRATE_MOVABLE
        for _ in range(k):
            pfn = lst.pop()[0]
            out.append(pfn)
            alloc[pfn] = 0
            if movable:
                self._count_movable(pfn, 1)
        led.buddy_cycles += c_op * k  # a pcp hit: one list operation each
        led.total_cycles += c_op * k
        pcp.free_factor >>= k
        pcp.count -= k
        self.nr_allocated += k
        if zone.node != preferred:  # zone_statistics()
            led.numa_miss += k
            led.numa_foreign += k
        return True

    def free_pages_bulk(self, pfns: list[int]) -> None:
        """``free_pages(pfn, 0)`` of each page in turn (v6.3 ``__vunmap()``'s loop of
        ``__free_pages()``), with the same state, violations, counters and cycles after.

        Each page goes to the head of its per-cpu list (free_unref_page_commit()); a run of
        pages of one zone that leaves the CPU below ``high`` is listed at once, and the page
        that reaches ``high`` (free_pcppages_bulk() then runs), a page not allocated or
        still mapped (``bad_free``), a hooked pageblock and a zone without per-cpu lists go
        through :meth:`free_pages` itself.
        """
        if not self.pcp_enabled or self.free_hook_mask:
            for pfn in pfns:
                self.free_pages(pfn, 0)
            return
        i, n = 0, len(pfns)
        while i < n:
            j = self._free_pcp_run(pfns, i)
            if j == i:
                self.free_pages(pfns[i], 0)
                j += 1
            i = j

    def _free_pcp_run(self, pfns: list[int], i: int) -> int:
        """List ``pfns[i:j]`` on the per-cpu lists of ``pfns[i]``'s zone as free_pages() would,
        stopping before a page that needs more than that; returns ``j`` (``i``: none)."""
        zone = self.zone_of(pfns[i])
        pcp = zone.pcp.get(self.current_cpu)
        if pcp is None:
            return i
        room = min(pcp.high - 1 - pcp.count, len(pfns) - i)  # frees below the trigger
        led = self.ledger
        c_op = zone.c_op
        if room <= 0 or not (repeat_is_exact(led.buddy_cycles, c_op, room)
                             and repeat_is_exact(led.total_cycles, c_op, room)):
            return i
        alloc = self.allocated
        mapped = self.vm_mapped
        pageblock_mt = zone.pageblock_mt
        lo, hi = zone.start_pfn, zone.end_pfn
        j, end = i, i + room
        while j < end:
            pfn = pfns[j]
            if not lo <= pfn < hi or alloc.get(pfn) != 0 or (mapped and pfn in mapped):
                break
            mt = pageblock_mt.get(pfn >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)
            lst = pcp.get_list(0, mt)
            if lst is None:
                break
            del alloc[pfn]
            lst.append((pfn, mt))  # free_unref_page_commit(): list_add()
            j += 1
        k = j - i
        if k:
            self.nr_allocated -= k
            pcp.count += k
            led.buddy_cycles += c_op * k
            led.total_cycles += c_op * k
        return j

    def _alloc_pt_page(self) -> int:
        """split_large_page(): alloc_pages(GFP_KERNEL, 0) for the new page table."""
        if self.faults.fail_pt(self.rng):
            return NO_PAGE
        pfn = self.alloc_pages(0, MIGRATE_UNMOVABLE)
        if pfn != NO_PAGE:
            self.pt_pfns.add(pfn)
        return pfn

    def _free_pt_page(self, pfn: int) -> None:
        """A page-table page back to the buddy (cpa_collapse_large_pages() frees them)."""
        self.pt_pfns.discard(pfn)
        self.free_pages(pfn, 0)

    def buddy_free_pages(self) -> int:
        """NR_FREE_PAGES over all zones."""
        return sum(zone.free_pages() for zone in self.zones)

    def allocated_pages(self) -> int:
        """Pages handed out by the buddy and not freed (page tables included), recounted."""
        return sum(1 << order for order in self.allocated.values())

    def pcp_pfns(self) -> set[int]:
        """Every page on the per-cpu lists: free pages the buddy hands out next."""
        out: set[int] = set()
        for zone in self.zones:
            for pcp in zone.pcp.values():
                for (order, _), lst in pcp.lists.items():
                    for pfn, _ in lst:
                        out.update(range(pfn, pfn + (1 << order)))
        return out

    def pcp_pages(self) -> int:
        """Pages on the per-cpu lists of every zone (neither buddy-free nor handed out)."""
        return sum(zone.pcp_pages() for zone in self.zones)

    def start_used_pages(self) -> int:
        """Pages the start state holds in use (page cache, anon, slab, kernel)."""
        return sum(zone.start_used_pages for zone in self.zones)

    def check_conservation(self) -> int:
        """free + per-cpu + allocated + in use from the start + reserved == RAM. Returns the
        discrepancy (0 when it holds)."""
        total = (self.buddy_free_pages() + self.pcp_pages() + self.allocated_pages()
                 + self.start_used_pages() + self.reserved_pages)
        return total - self.spec.mem_pages
