"""The buddy page allocator of one zone (mm/page_alloc.c, v6.3).

Free blocks sit in ``free_area[order].free_list[migratetype]``. Each list is an
``OrderedDict`` keyed by the head pfn: its *end* is the kernel list's head (``list_add``
inserts there, ``get_page_from_free_area`` takes from there), its *front* is the list's tail.
That gives LIFO order, O(1) removal of a buddy during a merge, and O(1) ``add_to_free_list_tail``.

Memory a run never touched is not materialised: at boot ``memblock_free_all`` hands every
``MAX_ORDER - 1`` block to the buddy with ``FPI_TO_TAIL``, so the untouched blocks form the
tail of ``free_list[MAX_ORDER - 1][MIGRATE_MOVABLE]`` in ascending pfn order. The zone keeps
them as a range (:attr:`Zone.pristine_next` .. :attr:`Zone.pristine_end`) and takes the lowest
when the explicit part of that list is empty. Cost therefore follows what a workload touches,
not the zone's size.

A start state's used pages (page cache, anon, slab, kernel) are kept per described pageblock
as three bitmaps (:attr:`Zone.cache_bits`, :attr:`Zone.anon_bits`, :attr:`Zone.pinned_bits`,
bit ``i`` = page ``i`` of the pageblock), made when the block is described, so that reclaim
(framework/kernel/vmscan.py) and compaction (framework/kernel/compaction.py) act on them at a
cost that follows what they touch.

Not modelled: CMA, HIGHATOMIC, ISOLATE, shuffling.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from framework.kernel.consts import (
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from framework.kernel.e820 import ZoneSpan
from framework.kernel.initial import Block, StartState, Use
from framework.kernel.ledger import Ledger
from framework.kernel.pcp import PAGE_ALLOC_COSTLY_ORDER, PcpList, PerCpuPages

TOP: Final = MAX_ORDER - 1

# Zone.buddy packs a free block's order and migratetype into one int, the order in the low
# BUDDY_ORDER_BITS bits (orders 0..MAX_ORDER - 1 fit in 4) and the migratetype above them.
# The kernel keeps the order in page_private (set_buddy_order()) and reads the migratetype from
# the pageblock bitmap; one int per free block keeps a lookup to one dict access.
BUDDY_ORDER_BITS: Final = 4
BUDDY_ORDER_MASK: Final = (1 << BUDDY_ORDER_BITS) - 1
NO_PAGE: Final = -1

#: id(block) -> (block, its bitmaps): a template's Block is built once and cached, so the
#: bitmaps are too (the block is kept so that its id stays its own).
_BITS: Final[dict[int, tuple[Block, tuple[tuple[int, int, int], ...]]]] = {}


def block_bits(block: Block) -> tuple[tuple[int, int, int], ...]:
    """Per pageblock of ``block``: bitmaps (page cache, 4 KiB anon, pinned) of its used
    pages, bit ``i`` for page ``i`` of the pageblock. Pinned: kernel and slab pages, and
    every page of a folio above order 0 (a THP), which v6.3 compaction does not isolate."""
    found = _BITS.get(id(block))
    if found is not None and found[0] is block:
        return found[1]
    bits = [[0, 0, 0] for _ in range(len(block.mts))]
    for offset, order, use in block.used:
        half, page = offset >> PAGEBLOCK_ORDER, offset & (PAGEBLOCK_NR_PAGES - 1)
        mask = ((1 << (1 << order)) - 1) << page
        if order == 0 and use == Use.PAGECACHE:
            bits[half][0] |= mask
        elif order == 0 and use == Use.ANON:
            bits[half][1] |= mask
        else:
            bits[half][2] |= mask
    out = tuple((c, a, p) for c, a, p in bits)
    _BITS[id(block)] = (block, out)
    return out


#: A block's free blocks grouped by free list: (order, migratetype, buddy code, offsets).
FreeGroups = tuple[tuple[int, int, int, tuple[int, ...]], ...]
#: id(block) -> (block, its free blocks grouped by free list).
_FREE: Final[dict[int, tuple[Block, FreeGroups]]] = {}


def block_free(block: Block) -> FreeGroups:
    """``block.free`` grouped by free list: per (order, migratetype), in order of first
    appearance, the buddy code (``order | mt << BUDDY_ORDER_BITS``) and the blocks'
    offsets ascending (their order in ``block.free``). Worked out once per block."""
    found = _FREE.get(id(block))
    if found is not None and found[0] is block:
        return found[1]
    groups: dict[tuple[int, int], list[int]] = {}
    for off, order in block.free:
        groups.setdefault((order, block.mts[off >> PAGEBLOCK_ORDER]), []).append(off)
    plan = tuple((order, mt, order | (mt << BUDDY_ORDER_BITS), tuple(offs))
                 for (order, mt), offs in groups.items())
    _FREE[id(block)] = (block, plan)
    return plan


class Zone:
    """One zone (one per node in the model): free lists, pageblock bits, stealing.

    Public state a reader may inspect: ``free_area[order][mt]`` (OrderedDict of head pfns),
    ``nr_free[order]`` (explicit blocks; see :meth:`nr_free_at`), ``buddy`` (head pfn ->
    ``order | mt << BUDDY_ORDER_BITS`` of every free block), ``pageblock_mt`` (pageblock
    index -> migratetype, absent = ``MIGRATE_MOVABLE``), ``pageblock_flags`` (pageblock
    index -> extra bits).
    """

    __slots__ = (
        "after_pristine",
        "anon_bits",
        "batch",
        "buddy",
        "c_op",
        "c_step",
        "cache_bits",
        "end_pfn",
        "fallbacks",
        "find_heads",
        "find_pos",
        "free_area",
        "high",
        "ledger",
        "lowmem_reserve",
        "managed",
        "movable_used",
        "node",
        "nr_free",
        "nr_free_pages",
        "pageblock_flags",
        "pageblock_mt",
        "pcp",
        "pcp_by_cpu",
        "pinned_bits",
        "pristine_end",
        "pristine_gone",
        "pristine_next",
        "single_page_types",
        "start",
        "start_cache_pages",
        "start_cursor",
        "start_done",
        "start_pfn",
        "start_span",
        "start_used_pages",
        "steal_policy",
        "unmat",
        "unmat_total",
        "wmark",
        "zone_type",
    )

    def __init__(
        self, node: int, start_pfn: int, end_pfn: int, first_free: int, ledger: Ledger,
        costs: dict[str, float], nr_migratetypes: int, fallbacks: dict[int, tuple[int, ...]],
    ) -> None:
        self.node = node
        self.start_pfn = start_pfn
        self.end_pfn = end_pfn
        self.free_area: list[list[OrderedDict[int, None]]] = [
            [OrderedDict() for _ in range(nr_migratetypes)] for _ in range(MAX_ORDER)
        ]
        self.nr_free = [0] * MAX_ORDER
        self.buddy: dict[int, int] = {}
        self.pageblock_mt: dict[int, int] = {}
        self.pageblock_flags: dict[int, int] = {}
        self.movable_used: dict[int, int] = {}
        self.fallbacks = fallbacks
        self.steal_policy: Callable[[int, int], bool] | None = None
        self.single_page_types: set[int] = set()  # steal one free block, never a pageblock
        self.ledger = ledger
        self.c_op = costs["buddy_op"]
        self.c_step = costs["buddy_step"]
        self.after_pristine: OrderedDict[int, None] = OrderedDict()
        self.pristine_gone: set[int] = set()
        self.pristine_next = self.pristine_end = 0
        self.zone_type = 0  # ZoneType; set by the page allocator that builds the zone
        self.nr_free_pages = 0  # NR_FREE_PAGES (untouched blocks included)
        self.managed = max(0, end_pfn - max(start_pfn, first_free))  # zone_managed_pages()
        self.wmark = (0, 0, 0)  # WMARK_MIN, WMARK_LOW, WMARK_HIGH (setup_per_zone_wmarks())
        self.lowmem_reserve: list[int] = [0, 0, 0]  # by the allocation's highest zone type
        self.high, self.batch = 0, 1  # boot pageset until set_pageset_high_and_batch()
        self.pcp: dict[int, PerCpuPages] = {}  # cpu -> its lists, made on first use
        # the same by cpu (None: not made yet), for pcp_of(): a list index, no dict lookup
        self.pcp_by_cpu: list[PerCpuPages | None] = []
        self.start: StartState | None = None  # a start state other than memblock_free_all()
        self.start_span: ZoneSpan | None = None
        self.start_cursor = self.start_used_pages = 0
        self.start_done: set[int] = set()  # heads of the blocks the start state described
        self.unmat: list[list[int]] = []  # [order][mt] free blocks not yet described
        self.unmat_total: list[int] = []  # [order]: the same, summed over migratetypes
        # per free list (its buddy code): the start state's blocks holding one of its free
        # blocks (head pfns, ascending) and how far a search has gone in them
        self.find_heads: dict[int, list[int]] = {}
        self.find_pos: dict[int, int] = {}
        # the start state's used pages of each described pageblock (index -> bitmap):
        # page cache (reclaimable, migratable), 4 KiB anon (migratable), the rest (kernel,
        # slab, THP: compaction in v6.3 skips compound pages and cannot move the others)
        self.cache_bits: dict[int, int] = {}
        self.anon_bits: dict[int, int] = {}
        self.pinned_bits: dict[int, int] = {}
        self.start_cache_pages = 0  # page cache of the start state still held (LRU size)
        self._boot(first_free)
        self.nr_free_pages = self.free_pages()

    def release(self) -> None:
        """Empty the free lists and the maps, once the run's results are taken.

        The kernel model's objects refer to each other (bound methods, callbacks), so a
        finished machine is freed only by the cycle collector, which would first walk every
        entry of these containers (about a million on an aged 64 GiB machine); emptied
        here, they are freed at once and the collector has little left to walk. The zone
        is unusable afterwards."""
        self.free_area = []
        for table in (self.buddy, self.pageblock_mt, self.pageblock_flags, self.movable_used,
                      self.cache_bits, self.anon_bits, self.pinned_bits, self.pcp):
            table.clear()
        self.pcp_by_cpu.clear()
        self.after_pristine.clear()
        self.find_heads.clear()
        self.start_done.clear()
        self.pristine_gone.clear()

    # -- boot ---------------------------------------------------------------------------
    def _boot(self, first_free: int) -> None:
        """mm/memblock.c memblock_free_all -> __free_pages_core(FPI_TO_TAIL), in pfn order.

        Free memory below the first ``MAX_ORDER - 1`` boundary is freed in the largest aligned
        blocks (``__free_pages_memory``); everything above is the pristine range.
        """
        top_pages = 1 << TOP
        aligned = -(-first_free // top_pages) * top_pages
        pfn = first_free
        while pfn < min(aligned, self.end_pfn):
            order = min((pfn & -pfn).bit_length() - 1, TOP)
            while pfn + (1 << order) > aligned:
                order -= 1
            self._add(pfn, order, MIGRATE_MOVABLE, tail=True)
            pfn += 1 << order
        self.pristine_next = max(aligned, first_free)
        self.pristine_end = self.end_pfn

    # -- free-list primitives (mm/page_alloc.c names) -----------------------------------
    def _add(self, pfn: int, order: int, mt: int, tail: bool = False) -> None:
        """add_to_free_list / add_to_free_list_tail + set_buddy_order."""
        key: Any = pfn  # one int object, shared by the list and the buddy map (compiled)
        lst = self.free_area[order][mt]
        if tail and order == TOP and mt == MIGRATE_MOVABLE and self._has_pristine():
            lst = self.after_pristine
            lst[key] = None
        else:
            lst[key] = None
            if tail:
                lst.move_to_end(key, last=False)
        self.nr_free[order] += 1
        self.nr_free_pages += 1 << order
        self.buddy[key] = order | (mt << BUDDY_ORDER_BITS)

    def _del(self, pfn: int) -> tuple[int, int]:
        """del_page_from_free_list: unlink a free block by its head pfn; return (order, mt)."""
        key: Any = pfn  # boxed once (compiled), not once per dict operation
        info = self.buddy.pop(key)
        order, mt = info & BUDDY_ORDER_MASK, info >> BUDDY_ORDER_BITS
        lst = self.free_area[order][mt]
        if key in lst:
            del lst[key]
        else:
            del self.after_pristine[key]
        self.nr_free[order] -= 1
        self.nr_free_pages -= 1 << order
        return order, mt

    def _has_pristine(self) -> bool:
        return self.pristine_next < self.pristine_end

    def _take_pristine(self) -> int:
        """Materialise the lowest untouched MAX_ORDER - 1 block (the free list's next entry)."""
        step = 1 << TOP
        pfn = self.pristine_next
        while pfn in self.pristine_gone:
            self.pristine_gone.discard(pfn)
            pfn += step
        self.pristine_next = pfn + step
        while self.pristine_next in self.pristine_gone and self.pristine_next < self.pristine_end:
            self.pristine_gone.discard(self.pristine_next)
            self.pristine_next += step
        self.nr_free_pages -= step  # the caller lists it again with _add()
        return pfn

    # -- a start state (framework/kernel/initial.py) ---------------------------------------
    def attach_start(self, start: StartState, span: ZoneSpan) -> None:
        """Boot from ``start`` instead of an all-free zone: the untouched range now holds
        the start state's blocks, described (materialised) the first time anything needs
        one (a free-list search: :meth:`_describe_holding`; a page or pageblock looked at:
        :meth:`materialise`); until then the zone counts their free blocks from the
        totals."""
        totals = start.zone_start(span)
        self.start, self.start_span = start, span
        self.start_cursor = self.pristine_next
        self.pristine_next = self.pristine_end  # nothing is implicitly free any more
        self.unmat = [list(row) for row in totals.nr_free]
        self.unmat_total = [sum(row) for row in self.unmat]
        self.start_used_pages = sum(totals.used_pages)
        self.start_cache_pages = totals.used_pages[Use.PAGECACHE]
        self.nr_free_pages = self.free_pages()

    def _unmat(self, order: int, mt: int) -> int:
        row = self.unmat[order] if self.unmat else ()
        return row[mt] if mt < len(row) else 0

    def _describe_next(self) -> bool:
        """Materialise the lowest block the start state has not described yet."""
        step = 1 << TOP
        while self.start_cursor < self.end_pfn and self.start_cursor in self.start_done:
            self.start_cursor += step
        if self.start_cursor + step > self.end_pfn:
            return False
        self._describe(self.start_cursor)
        return True

    def _describe_holding(self, order: int, mt: int) -> bool:
        """Describe the lowest undescribed block that holds a free block of ``order`` on
        ``mt``'s list (the list's undescribed entries stand behind its described ones, in
        pfn order); the blocks before it that hold none stay undescribed
        (``StartState.blocks_with_free`` lists the candidates without describing them)."""
        assert self.start is not None and self.start_span is not None
        key = order | (mt << BUDDY_ORDER_BITS)
        heads = self.find_heads.get(key)
        if heads is None:
            found = self.start.blocks_with_free(self.start_span, order, mt)
            heads = self.find_heads[key] = [int(h) for h in found]
        pos = self.find_pos.get(key, 0)
        done = self.start_done
        while pos < len(heads):
            head = heads[pos]
            pos += 1
            if head not in done:
                self.find_pos[key] = pos
                self._describe(head)
                return True
        self.find_pos[key] = pos
        return False

    def _describe(self, head: int) -> None:
        """One block of the start state: its pageblocks' types, free blocks and folios."""
        assert self.start is not None and self.start_span is not None
        block = self.start.block(self.start_span, head)
        self.start_done.add(head)
        for i, mt in enumerate(block.mts):
            self.set_pageblock_migratetype(head + (i << PAGEBLOCK_ORDER), mt)
        unmat, unmat_total = self.unmat, self.unmat_total
        area, nr_free, buddy = self.free_area, self.nr_free, self.buddy
        # _add() at the head of each list, inlined: a list receives its blocks in pfn order
        # as one call per block would (lists are independent; NR_FREE_PAGES counted them)
        for order, mt, code, offs in block_free(block):
            n = len(offs)
            unmat[order][mt] -= n
            unmat_total[order] -= n
            nr_free[order] += n
            pfns = dict.fromkeys([head + off for off in offs])
            area[order][mt].update(pfns)
            buddy.update(dict.fromkeys(pfns, code))
        first = head >> PAGEBLOCK_ORDER
        for half, (cache, anon, pinned) in enumerate(block_bits(block)):
            if cache:
                self.cache_bits[first + half] = cache
            if anon:
                self.anon_bits[first + half] = anon
            if pinned:
                self.pinned_bits[first + half] = pinned

    def list_len(self, order: int, mt: int) -> int:
        """Blocks on ``free_area[order].free_list[mt]``, untouched ones included."""
        n = len(self.free_area[order][mt])
        if order == TOP and mt == MIGRATE_MOVABLE:
            n += self.nr_pristine() + len(self.after_pristine)
        return n + self._unmat(order, mt)

    def nr_pristine(self) -> int:
        """Untouched MAX_ORDER - 1 blocks still implicitly on the MOVABLE list."""
        left = max(0, self.pristine_end - self.pristine_next) >> TOP
        return left - sum(1 for p in self.pristine_gone if p >= self.pristine_next)

    def nr_free_at(self, order: int) -> int:
        """``free_area[order].nr_free`` including untouched blocks."""
        if self.unmat:
            return self.nr_free[order] + self.unmat_total[order]
        extra = self.nr_pristine() if order == TOP else 0  # after_pristine is in nr_free
        return self.nr_free[order] + extra

    def free_pages(self) -> int:
        """Free pages in the zone (NR_FREE_PAGES)."""
        return sum(self.nr_free_at(o) << o for o in range(MAX_ORDER))

    def list_empty(self, order: int, mt: int) -> bool:
        """free_area_empty(area, mt)."""
        if self.free_area[order][mt]:
            return False
        if self.unmat and self._unmat(order, mt):
            return False
        if order == TOP and mt == MIGRATE_MOVABLE:
            return not (self._has_pristine() or self.after_pristine)
        return True

    def _first(self, order: int, mt: int) -> int:
        """get_page_from_free_area: the head of the list, or NO_PAGE (not unlinked)."""
        lst = self.free_area[order][mt]
        if not lst and self.unmat and self._unmat(order, mt):
            self._describe_holding(order, mt)
        if lst:
            return next(reversed(lst))
        if order == TOP and mt == MIGRATE_MOVABLE:
            if self._has_pristine():
                pfn = self._take_pristine()
                self._add(pfn, TOP, MIGRATE_MOVABLE)
                return pfn
            if self.after_pristine:
                return next(iter(self.after_pristine))
        return NO_PAGE

    def materialise(self, pfn: int) -> None:
        """Turn the untouched block holding ``pfn`` (if any) into explicit free blocks."""
        head = pfn >> TOP << TOP
        if self.start is not None:
            if head not in self.start_done and self.start_cursor <= head < self.end_pfn:
                self._describe(head)
            return
        if head in self.buddy or not (self.pristine_next <= head < self.pristine_end):
            return
        if head in self.pristine_gone:
            return
        self.pristine_gone.add(head)
        self.nr_free_pages -= 1 << TOP  # the caller lists it again with _add()
        self._add(head, TOP, MIGRATE_MOVABLE)

    # -- allocation ---------------------------------------------------------------------
    def expand(self, pfn: int, low: int, high: int, mt: int) -> None:
        """mm/page_alloc.c expand(): put the upper halves back, largest first."""
        size = 1 << high
        while high > low:
            high -= 1
            size >>= 1
            self._add(pfn + size, high, mt)

    def rmqueue_smallest(self, order: int, mt: int) -> int:
        """__rmqueue_smallest(): first block of the smallest order >= ``order`` on ``mt``."""
        area = self.free_area
        for current in range(order, MAX_ORDER):
            lst = area[current][mt]
            if lst:  # get_page_from_free_area() + del_page_from_free_list()
                pfn = lst.popitem()[0]
                del self.buddy[pfn]
                self.nr_free[current] -= 1
                self.nr_free_pages -= 1 << current
            elif (current == TOP and mt == MIGRATE_MOVABLE) or (self.unmat and self._unmat(
                    current, mt)):  # only here can _first() find more
                pfn = self._first(current, mt)
                if pfn == NO_PAGE:
                    continue
                self._del(pfn)
            else:
                continue
            if current > order:
                self.expand(pfn, order, current, mt)
                led = self.ledger
                led.buddy_cycles += self.c_step * (current - order)  # Ledger.charge(), inlined
                led.total_cycles += self.c_step * (current - order)
            return pfn
        return NO_PAGE

    def rmqueue(self, order: int, mt: int, nofragment: bool) -> int:
        """__rmqueue(): smallest on ``mt``, else steal through the fallback table and retry."""
        led = self.ledger
        led.buddy_cycles += self.c_op  # Ledger.charge(), inlined on the hot path
        led.total_cycles += self.c_op
        pfn = self.rmqueue_smallest(order, mt)
        if pfn != NO_PAGE:
            return pfn
        while self.rmqueue_fallback(order, mt, nofragment):
            pfn = self.rmqueue_smallest(order, mt)
            if pfn != NO_PAGE:
                return pfn
        return NO_PAGE

    def can_steal_fallback(self, order: int, start_mt: int) -> bool:
        """mm/page_alloc.c can_steal_fallback()."""
        if self.steal_policy is not None:
            return self.steal_policy(order, start_mt)
        if order >= PAGEBLOCK_ORDER:
            return True
        return (
            order >= PAGEBLOCK_ORDER // 2
            or start_mt == MIGRATE_RECLAIMABLE
            or start_mt == MIGRATE_UNMOVABLE
        )

    def find_suitable_fallback(self, order: int, mt: int) -> tuple[int, bool]:
        """find_suitable_fallback(only_stealable=false): (fallback mt or -1, can_steal)."""
        if self.nr_free_at(order) == 0:
            return -1, False
        for fallback_mt in self.fallbacks.get(mt, ()):
            if self.list_empty(order, fallback_mt):
                continue
            return fallback_mt, self.can_steal_fallback(order, mt)
        return -1, False

    def rmqueue_fallback(self, order: int, start_mt: int, nofragment: bool) -> bool:
        """__rmqueue_fallback(): take the largest block of a fallback type and steal from it."""
        min_order = PAGEBLOCK_ORDER if (order < PAGEBLOCK_ORDER and nofragment) else order
        found = self._largest_fallback(order, start_mt, min_order)
        if found is None:
            return False
        current, fallback_mt, can_steal = found
        pfn = self._first(current, fallback_mt)
        self.steal_suitable_fallback(pfn, start_mt, can_steal)
        return True

    def _largest_fallback(self, order: int, start_mt: int, min_order: int
                          ) -> tuple[int, int, bool] | None:
        """__rmqueue_fallback()'s search: largest order first, ``find_smallest`` for MOVABLE."""
        for current in range(MAX_ORDER - 1, min_order - 1, -1):
            fallback_mt, can_steal = self.find_suitable_fallback(current, start_mt)
            if fallback_mt == -1:
                continue
            if not can_steal and start_mt == MIGRATE_MOVABLE and current > order:
                for smallest in range(order, MAX_ORDER):  # find_smallest:
                    fallback_mt, can_steal = self.find_suitable_fallback(smallest, start_mt)
                    if fallback_mt != -1:
                        return smallest, fallback_mt, can_steal
            return current, fallback_mt, can_steal
        return None

    def steal_suitable_fallback(self, pfn: int, start_mt: int, whole_block: bool) -> None:
        """steal_suitable_fallback(): claim whole pageblocks when enough of them is free/alike."""
        if start_mt in self.single_page_types:  # an added type's "goto single_page" first
            self._move(pfn, start_mt)
            return
        current = self.buddy[pfn] & BUDDY_ORDER_MASK
        old_mt = self.get_pageblock_migratetype(pfn)
        if current >= PAGEBLOCK_ORDER:  # Take ownership for orders >= pageblock_order
            for block in range(pfn >> PAGEBLOCK_ORDER, (pfn + (1 << current)) >> PAGEBLOCK_ORDER):
                self.set_pageblock_migratetype(block << PAGEBLOCK_ORDER, start_mt)
            self._move(pfn, start_mt)
            return
        if not whole_block:
            self._move(pfn, start_mt)
            return
        free, movable = self.move_freepages_block(pfn, start_mt)
        if start_mt == MIGRATE_MOVABLE:
            alike = movable
        elif old_mt == MIGRATE_MOVABLE:
            alike = PAGEBLOCK_NR_PAGES - (free + movable)
        else:
            alike = 0
        if free + alike >= PAGEBLOCK_NR_PAGES // 2:
            self.set_pageblock_migratetype(pfn, start_mt)

    def _move(self, pfn: int, mt: int) -> None:
        """move_to_free_list(): relink a free block onto another migratetype's list."""
        order, _ = self._del(pfn)
        self._add(pfn, order, mt)

    def move_freepages_block(self, pfn: int, mt: int) -> tuple[int, int]:
        """move_freepages_block(): move every free block of the pageblock to ``mt``'s lists.

        Returns (free pages moved, movable pages in use in the block).
        """
        start = pfn >> PAGEBLOCK_ORDER << PAGEBLOCK_ORDER
        end = start + PAGEBLOCK_NR_PAGES
        if start < self.start_pfn or end > self.end_pfn:
            return 0, 0
        self.materialise(start)
        moved = 0
        cur = start
        while cur < end:
            info = self.buddy.get(cur)
            if info is None:
                cur += 1
                continue
            order = info & BUDDY_ORDER_MASK
            self._move(cur, mt)
            moved += 1 << order
            cur += 1 << order
        return moved, self.movable_used.get(start >> PAGEBLOCK_ORDER, 0)

    def add_migratetype(self) -> int:
        """Extension point: give every order a free list for one more migratetype."""
        for area in self.free_area:
            area.append(OrderedDict())
        return len(self.free_area[0]) - 1

    # -- per-cpu lists (framework/kernel/pcp.py) -----------------------------------------
    def pcp_of(self, cpu: int) -> PerCpuPages:
        """``per_cpu_ptr(zone->per_cpu_pageset, cpu)``, made on first use."""
        by_cpu = self.pcp_by_cpu
        if cpu < len(by_cpu):
            found = by_cpu[cpu]
            if found is not None:
                return found
        else:
            by_cpu.extend([None] * (cpu + 1 - len(by_cpu)))
        pcp = self.pcp[cpu] = PerCpuPages(self.high, self.batch)
        by_cpu[cpu] = pcp
        return pcp

    def rmqueue_pcplist(self, cpu: int, order: int, mt: int, nofragment: bool) -> int:
        """rmqueue_pcplist(): the head of the CPU's list, refilled by rmqueue_bulk() when
        empty (``batch`` blocks scaled down by order, each at the list's tail)."""
        pcp = self.pcp_of(cpu)
        lst = pcp.list_for(order, mt)
        if not lst:
            batch = pcp.batch
            if batch > 1:
                batch = max(batch >> order, 2)
            taken: PcpList = []
            for _ in range(batch):  # rmqueue_bulk()
                pfn = self.rmqueue(order, mt, nofragment)
                if pfn == NO_PAGE:
                    break
                taken.append((pfn, mt))  # set_pcppage_migratetype(mt)
                pcp.count += 1 << order
            if not taken:
                return NO_PAGE
            taken.reverse()  # list_add_tail() of each: the first taken is the head (the end)
            lst.extend(taken)
        else:
            led = self.ledger
            led.buddy_cycles += self.c_op  # a pcp hit: one list operation
            led.total_cycles += self.c_op
        pcp.free_factor >>= 1
        pcp.count -= 1 << order
        return lst.pop()[0]

    def free_unref_page(self, cpu: int, pfn: int, order: int, mt: int) -> None:
        """free_unref_page_commit(): to the head of the CPU's list; at ``high`` pages, the
        oldest go back to the buddy (free_pcppages_bulk())."""
        pcp = self.pcp_of(cpu)
        pcp.list_for(order, mt).append((pfn, mt))  # list_add(): the head
        pcp.count += 1 << order
        led = self.ledger
        led.buddy_cycles += self.c_op
        led.total_cycles += self.c_op
        free_high = bool(pcp.free_factor and 0 < order <= PAGE_ALLOC_COSTLY_ORDER)
        high = 0 if free_high else pcp.high  # nr_pcp_high()
        if pcp.count >= high:
            count = pcp.count if free_high else pcp.nr_pcp_free(high)
            key = (order, -1) if order > PAGE_ALLOC_COSTLY_ORDER else (order, mt)
            pcp.free_bulk(count, key, self._free_one)

    def _free_one(self, pfn: int, order: int, mt: int) -> None:
        self.free_one_page(pfn, order, mt, False)

    def drain_pages(self) -> int:
        """drain_pages_zone() on every CPU: all their pages back to the buddy."""
        return sum(pcp.drain(self._free_one) for pcp in self.pcp.values() if pcp.count)

    def pcp_pages(self) -> int:
        """Pages held on the CPUs' lists of this zone."""
        return sum(pcp.count for pcp in self.pcp.values())

    def watermark_ok(self, order: int, mark: int, highest_zone: int) -> bool:
        """__zone_watermark_ok(): free pages above the mark plus the lowmem reserve, and for
        order > 0 a free block of at least that order on some list."""
        free = self.nr_free_pages - ((1 << order) - 1)
        if free <= mark + self.lowmem_reserve[highest_zone]:
            return False
        if not order:
            return True
        for o in range(order, MAX_ORDER):
            if self.nr_free_at(o):
                return True
        return False

    # -- pageblocks ---------------------------------------------------------------------
    def get_pageblock_migratetype(self, pfn: int) -> int:
        """get_pageblock_migratetype(); untouched blocks are MIGRATE_MOVABLE from boot."""
        return self.pageblock_mt.get(pfn >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)

    def set_pageblock_migratetype(self, pfn: int, mt: int) -> None:
        """set_pageblock_migratetype()."""
        block = pfn >> PAGEBLOCK_ORDER
        if mt == MIGRATE_MOVABLE:
            self.pageblock_mt.pop(block, None)
        else:
            self.pageblock_mt[block] = mt

    # -- freeing ------------------------------------------------------------------------
    def free_one_page(self, pfn: int, order: int, mt: int, to_tail: bool = False) -> None:
        """__free_one_page(): merge with free buddies up to MAX_ORDER - 1, then list it."""
        buddy = self.buddy
        led = self.ledger
        led.buddy_cycles += self.c_op  # Ledger.charge(), inlined on the hot path
        led.total_cycles += self.c_op
        merged = 0
        while order < TOP:
            buddy_pfn = pfn ^ (1 << order)  # __find_buddy_pfn()
            info = buddy.get(buddy_pfn)
            if info is None or info & BUDDY_ORDER_MASK != order:  # page_is_buddy()
                break
            self._del(buddy_pfn)
            pfn &= buddy_pfn
            order += 1
            merged += 1
        if merged:
            led.buddy_cycles += self.c_step * merged
            led.total_cycles += self.c_step * merged
        if not to_tail and order < MAX_ORDER - 2:  # FPI_TO_TAIL, else buddy_merge_likely():
            # is the next-higher buddy free? Then list at the tail.
            info = buddy.get((pfn & ~((2 << order) - 1)) ^ (2 << order))
            to_tail = info is not None and info & BUDDY_ORDER_MASK == order + 1
        self._add(pfn, order, mt, to_tail)

    def free_pages_order0(self, pfns: list[int], mt: int) -> None:
        """``free_one_page(pfn, 0, mt)`` for each of ``pfns`` in turn (reclaim's
        free_unref_page_list() of a shrink batch, compaction's putback and
        release_freepages()): the same merges, list positions and counters as one call per
        page. A page whose buddy is not free (the common case) is listed inline
        (``__free_one_page`` without a merge, ``buddy_merge_likely``,
        ``add_to_free_list[_tail]``); one that merges goes through :meth:`free_one_page`."""
        buddy = self.buddy
        nr_free = self.nr_free
        c_op = self.c_op
        led = self.ledger
        bcyc, tcyc = led.buddy_cycles, led.total_cycles  # the same additions, in order
        list0 = self.free_area[0][mt]
        code0 = mt << BUDDY_ORDER_BITS
        singles = 0  # order-0 blocks listed inline, counted at the end
        boxed: list[Any] = pfns  # compiled: keep each pfn's int object as the dicts' key
        for key in boxed:
            pfn: int = key
            info = buddy.get(pfn ^ 1)  # __find_buddy_pfn(), page_is_buddy() at order 0
            if info is not None and not info & BUDDY_ORDER_MASK:  # it merges
                nr_free[0] += singles
                self.nr_free_pages += singles
                singles = 0
                led.buddy_cycles, led.total_cycles = bcyc, tcyc
                self.free_one_page(pfn, 0, mt)
                bcyc, tcyc = led.buddy_cycles, led.total_cycles
                continue
            bcyc += c_op
            tcyc += c_op
            info = buddy.get((pfn & ~1) ^ 2)  # buddy_merge_likely(): the order-1 buddy
            list0[key] = None
            if info is not None and info & BUDDY_ORDER_MASK == 1:
                list0.move_to_end(key, last=False)
            buddy[key] = code0
            singles += 1
        nr_free[0] += singles
        self.nr_free_pages += singles
        led.buddy_cycles, led.total_cycles = bcyc, tcyc

    def block_is_free(self, pfn: int) -> bool:
        """Is ``pfn`` inside a free block (PageBuddy on its head at some order)?"""
        if self.start is not None:
            head = pfn >> TOP << TOP
            if head not in self.start_done:  # materialise(), its cheap test inlined
                self.materialise(pfn)
        buddy = self.buddy
        for order in range(MAX_ORDER):
            info = buddy.get(pfn >> order << order)
            if info is not None and info & BUDDY_ORDER_MASK >= order:
                return True
        head = pfn >> TOP << TOP
        return (
            self.pristine_next <= head < self.pristine_end and head not in self.pristine_gone
        )
