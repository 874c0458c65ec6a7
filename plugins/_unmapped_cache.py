"""The private buddy cache of unmapped pages that ``gfp-unmapped`` and ``unmapped-api`` share.

Models ``mm/unmapped-alloc.c`` of Mike Rapoport's ``__GFP_UNMAPPED`` v3
(20230308094106.227365-1-rppt@kernel.org, patches 1-3) and of the API-only follow-up on
rppt/linux (``unmapped-alloc/rfc-v2``, snapshot 0d73fc61): a buddy allocator of its own beside
the page allocator, one global instance (no NUMA, no zones), with

- ``free_area[MAX_ORDER]``: one LIFO free list per order (``list_add`` at the head,
  ``list_first_entry`` from the head) and the counters ``nr_free``, ``nr_cached`` (refills at
  that order) and ``nr_released`` (blocks the shrinker gave back at that order);
- free blocks marked ``PageUnmapped`` with their order in ``page_private``; its own
  ``__free_one_page`` merges with ``PageUnmapped`` buddies up to ``MAX_ORDER - 1`` (order 10),
  its own ``expand`` and ``__rmqueue_smallest``;
- the ``PB_unmapped`` pageblock bit (7): set on the pageblock of a refilled block's head page;
- one lock (``free_area->lock``, which is ``free_area[0].lock``) around every list operation.
  The shrinker takes ``free_area[order].lock`` instead, so it is not serialised against
  alloc/free for orders above 0 (a v3 bug; the model has no concurrency, so it only counts
  lock round trips in :meth:`UnmappedCache.stats`, without a contention model);
- the shrinker (patch 3): ``count_objects`` = sum of ``nr_free << order``; ``scan_objects``
  walks the orders from 0 up, releasing whole free blocks from the list heads: restore the
  direct map (``set_direct_map_default_noflush``, no flush), clear ``PB_unmapped`` when the
  order is ``pageblock_order``, ``__free_pages_ok(FPI_UNMAPPED | FPI_TO_TAIL)`` (back to the
  buddy at the tail, bypassing the free-path diversion), ``nr_released++``.

The debugfs file ``/sys/kernel/debug/unmapped_alloc`` (patches 2-3) is :meth:`debugfs`, e.g.
after one order-9 refill served 512 order-0 requests and all were freed again::

    MAX_ORDER: 11

    Order:        0     1     2     3     4     5     6     7     8     9    10
    Free:         0     0     0     0     0     0     0     0     0     1     0
    Cached:       0     0     0     0     0     0     0     0     0     1     0
    Released:     0     0     0     0     0     0     0     0     0     0     0

Per-node caches (``--set gfp-unmapped.per_node=1``, ``--set unmapped-api.per_node=1``, what
the thread asked for instead of the one global cache): :class:`CacheSet` keeps one
:class:`UnmappedCache` per node; a request is served from the cache of the allocating CPU's
node (``kernel.current_node``: the request's node, else its CPU's), a refill takes its block
from that node (``alloc_pages(..., node)``, which may still fall back to another node when
that one is short: ``numa_miss``), and a freed block goes to the cache of the node it lives
on. With either setting, a page handed to a CPU of another node is counted
(``remote_pages``) and charged ``remote_page`` cycles (category ``numa``).

Accounting in the model: every page the cache took from the buddy stays in
``kernel.allocated`` until the shrinker gives it back with ``free_pages_ok``; pages on the
cache's free lists are what :meth:`UnmappedCache.nr_pages` reports to the engine.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import attrs

from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import MAX_ORDER, MIGRATE_UNMOVABLE, PAGEBLOCK_ORDER
from framework.kernel.kernel import Kernel

PB_UNMAPPED = 7  # include/linux/pageblock-flags.h (v3): PB_unmapped = 7
TOP = MAX_ORDER - 1
# sizeof(struct unmapped_free_area): list_head 16 + spinlock 4 (+4 pad) + 3 unsigned long 24
FREE_AREA_BYTES = 48


@attrs.define(slots=True, eq=False)
class UnmappedFreeArea:
    """``struct unmapped_free_area``: one order's free list (end = list head) and counters."""

    free_list: OrderedDict[int, None] = attrs.field(factory=OrderedDict)
    nr_free: int = 0
    nr_cached: int = 0
    nr_released: int = 0


def clear_unmapped(kernel: Kernel, pfn: int, nr: int) -> None:
    """Zero ``nr`` pages that are not present in the direct map.

    ``clear_page()`` writes through the direct map, which these pages left, so the clear goes
    through a temporary local mapping (the ``text_poke`` family's poking mm, the x86 way
    Rick Edgecombe named in the v3 thread): one map, the clear, one local TLB flush; no IPI.
    Charged as one ``text_poke`` session plus the clearing itself.
    """
    costs = kernel.costs
    kernel.ledger.charge("text_poke", costs["text_poke"] + costs["text_poke_page"] * nr)
    kernel.clear_pages(pfn, nr)
    kernel.flush_local(nr)


def alloc_refill_block(kernel: Kernel, first_order: int, order: int,
                       node: int | None = None) -> tuple[int, int]:
    """The refill's ``alloc_pages(GFP_KERNEL | __GFP_ZERO, o)`` for o = ``first_order`` down
    to ``order`` (mm/unmapped-alloc.c ``unmapped_pages_alloc()``): (pfn, o) or (NO_PAGE, -1).
    ``node`` None is the allocating CPU's node (what the global cache's refill gets)."""
    for cache_order in range(first_order, order - 1, -1):
        block = kernel.alloc_pages(cache_order, MIGRATE_UNMOVABLE, node, zero=True)
        if block != NO_PAGE:
            return block, cache_order
    return NO_PAGE, -1


class UnmappedCache:
    """The cache: free lists, ``PB_unmapped``, lock round trips, the v3 shrinker.

    :param kernel: the kernel model the cache takes pages from and gives them back to.
    :param fixed_release: the shrinker restores a released block with one
        ``set_direct_map_default_noflush`` over the block (keeping an in-place-invalidated
        2 MiB entry whole) and clears ``PB_unmapped`` on every pageblock a block of order
        >= ``pageblock_order`` covers. False is v3 as posted: one call per page, and the bit
        is cleared only when the order equals ``pageblock_order`` (order-10 releases keep it).
    """

    def __init__(self, kernel: Kernel, fixed_release: bool) -> None:
        self.kernel = kernel
        self.fixed_release = fixed_release
        self.free_area = [UnmappedFreeArea() for _ in range(MAX_ORDER)]
        self.order_of: dict[int, int] = {}  # PageUnmapped head pfn -> page_private (order)
        self.pb_mask = kernel.register_pageblock_flag("PB_unmapped", PB_UNMAPPED)
        self.lock_round_trips = 0
        self.on_release: Callable[[int, int], None] | None = None  # told of each released block
        self.scrub: Callable[[int, int], None] | None = None  # clears a block before release
        self.c_op = kernel.costs["buddy_op"]
        self.c_step = kernel.costs["buddy_step"]

    # -- locking and list primitives (mm/unmapped-alloc.c) -------------------------------
    def _lock(self) -> None:
        """spin_lock_irqsave(&free_area->lock): counted and charged like a zone->lock trip."""
        self.lock_round_trips += 1
        self.kernel.ledger.charge("buddy", self.c_op)

    def add_to_free_list(self, pfn: int, order: int) -> None:
        """add_to_free_list() + set_unmapped_order(): list_add at the head, nr_free++."""
        area = self.free_area[order]
        area.free_list[pfn] = None
        area.nr_free += 1
        self.order_of[pfn] = order

    def del_page_from_free_list(self, pfn: int, order: int) -> None:
        """del_page_from_free_list(): unlink, __ClearPageUnmapped, nr_free--."""
        area = self.free_area[order]
        del area.free_list[pfn]
        del self.order_of[pfn]
        area.nr_free -= 1

    def set_pageblock_unmapped(self, pfn: int, value: bool = True) -> None:
        """set_pageblock_unmapped() / clear_pageblock_unmapped() on ``pfn``'s pageblock."""
        self.kernel.set_pageblock_flags(pfn, self.pb_mask, value)

    def pageblock_unmapped(self, pfn: int) -> bool:
        """get_pageblock_unmapped()."""
        return bool(self.kernel.get_pageblock_flags(pfn) & self.pb_mask)

    # -- buddy operations ----------------------------------------------------------------
    def free_one_page(self, pfn: int, order: int, cache_refill: bool) -> None:
        """__free_one_page(): merge with PageUnmapped buddies up to MAX_ORDER - 1, list it.

        With ``cache_refill`` (a block fresh from the page allocator) the head's pageblock
        gets ``PB_unmapped`` and ``nr_cached[order]`` counts the refill.
        """
        self._lock()
        if cache_refill:
            self.set_pageblock_unmapped(pfn)  # only the head page's pageblock (v3)
            self.free_area[order].nr_cached += 1
        merged = 0
        order_of = self.order_of
        while order < TOP:
            buddy = pfn ^ (1 << order)  # __find_buddy_pfn()
            if order_of.get(buddy) != order:  # page_is_unmapped_buddy()
                break
            self.del_page_from_free_list(buddy, order)
            pfn &= buddy
            order += 1
            merged += 1
        if merged:
            self.kernel.ledger.charge("buddy", self.c_step * merged)
        self.add_to_free_list(pfn, order)

    def expand(self, pfn: int, low: int, high: int) -> None:
        """expand(): put the upper halves back on the lists, largest first."""
        size = 1 << high
        while high > low:
            high -= 1
            size >>= 1
            self.add_to_free_list(pfn + size, high)

    def rmqueue_smallest(self, order: int) -> int:
        """__rmqueue_smallest(): the head block of the smallest order >= ``order``, expanded."""
        self._lock()
        for current in range(order, MAX_ORDER):
            free_list = self.free_area[current].free_list
            if not free_list:
                continue
            pfn = next(reversed(free_list))  # list_first_entry_or_null()
            self.del_page_from_free_list(pfn, current)
            self.expand(pfn, order, current)
            if current > order:
                self.kernel.ledger.charge("buddy", self.c_step * (current - order))
            return pfn
        return NO_PAGE

    def nr_pages(self) -> int:
        """Pages on the free lists (what the engine's ``cache_pages`` counts)."""
        return sum(area.nr_free << order for order, area in enumerate(self.free_area))

    # -- the shrinker (patch 3) ----------------------------------------------------------
    def count_objects(self) -> int:
        """unmapped_alloc_count_objects(): sum of nr_free << order."""
        return self.nr_pages()

    def scan_objects(self, nr_to_scan: int) -> int:
        """unmapped_alloc_scan_objects(): orders 0 up until ``nr_to_scan`` pages are freed.

        As posted, the remaining target is reduced by the *running total* after each order
        (``sc->nr_to_scan -= sc->nr_scanned``), so later orders are asked for less than is
        still missing; and a whole block is released even when it overshoots the target.
        Returns the pages freed (0 where the kernel returns SHRINK_STOP).
        """
        nr_scanned = 0
        for order in range(MAX_ORDER):
            nr_scanned += self.scan_free_area(nr_to_scan, order)
            if nr_scanned >= nr_to_scan:
                break
            nr_to_scan -= nr_scanned
        return nr_scanned

    def scan_free_area(self, nr_to_scan: int, order: int) -> int:
        """scan_free_area(): release head blocks of one order until ``nr_to_scan`` pages."""
        area = self.free_area[order]
        freed = 0
        self._lock()  # spin_lock_irqsave(&area->lock): the per-order lock
        while freed < nr_to_scan and area.free_list:
            pfn = next(reversed(area.free_list))
            self.del_page_from_free_list(pfn, order)
            if not self.release(pfn, order):
                self.add_to_free_list(pfn, order)  # kept unmapped; stop scanning this order
                break
            area.nr_released += 1
            freed += 1 << order
            self._lock()  # re-taken after cond_resched()
        return freed

    def release(self, pfn: int, order: int) -> bool:
        """Give one block back: scrub, restore the direct map, PB_unmapped,
        __free_unmapped_page(). False (``fixed_release`` only): the direct map could not be
        restored (a split of a large entry that failed, -ENOMEM), the block stays cached.

        v3 ignores the restore's result and frees the pages whatever it was; a page back in
        the buddy with its direct-map entry not present faults at its next user's first
        touch (``buddy_prot``), so the fixed release checks it.
        """
        kernel = self.kernel
        nr = 1 << order
        if self.scrub is not None:
            self.scrub(pfn, order)
        if self.fixed_release:
            if kernel.set_direct_map_default_noflush(pfn, nr):
                return False
            if order >= PAGEBLOCK_ORDER:
                for block in range(pfn, pfn + nr, 1 << PAGEBLOCK_ORDER):
                    self.set_pageblock_unmapped(block, False)
        else:
            if order == PAGEBLOCK_ORDER:  # scan_free_area(): only this order clears the bit
                self.set_pageblock_unmapped(pfn, False)
            for p in range(pfn, pfn + nr):
                kernel.set_direct_map_default_noflush(p)  # no flush: making present is safe
        kernel.free_pages_ok(pfn, order, to_tail=True)  # FPI_UNMAPPED | FPI_TO_TAIL
        if self.on_release is not None:
            self.on_release(pfn, order)
        return True

    # -- debugfs (patches 2-3) -----------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """The debugfs table as data: MAX_ORDER, then Order/Free/Cached/Released per order."""
        areas = self.free_area
        return {
            "MAX_ORDER": MAX_ORDER,
            "Order": list(range(MAX_ORDER)),
            "Free": [a.nr_free for a in areas],
            "Cached": [a.nr_cached for a in areas],
            "Released": [a.nr_released for a in areas],
            "lock_round_trips": self.lock_round_trips,
        }

    def debugfs(self) -> str:
        """unmapped_alloc_debug_show(): the text of /sys/kernel/debug/unmapped_alloc."""
        table = self.stats()
        lines = [f"MAX_ORDER: {MAX_ORDER}", ""]
        for row in ("Order", "Free", "Cached", "Released"):
            cells = "".join(f"{v:5d} " for v in table[row])
            lines.append(f"{row + ':':<10s}{cells}".rstrip())
        return "\n".join(lines) + "\n"

    def metadata_bytes(self) -> int:
        """``free_area[]`` plus the 4 pageblock bits v3 adds (NR_PAGEBLOCK_BITS 4 -> 8)."""
        pageblocks = self.kernel.spec.mem_pages >> PAGEBLOCK_ORDER
        return FREE_AREA_BYTES * MAX_ORDER + pageblocks * 4 // 8


class CacheSet:
    """The design's caches: one global :class:`UnmappedCache`, or one per node.

    :param per_node: one cache per node (``per_node=1``); False is the posted single cache.
    """

    def __init__(self, kernel: Kernel, fixed_release: bool, per_node: bool) -> None:
        self.kernel = kernel
        self.per_node = per_node
        self.caches = [UnmappedCache(kernel, fixed_release)
                       for _ in range(kernel.spec.nodes if per_node else 1)]
        self.pb_mask = self.caches[0].pb_mask
        self.numa = kernel.spec.nodes > 1
        self.remote_pages = 0
        self.c_remote = kernel.costs["remote_page"]

    def local(self) -> tuple[UnmappedCache, int | None]:
        """The cache serving the allocating CPU and the node its refills take pages from
        (None: the global cache refills from whatever node the CPU is on)."""
        if not self.per_node:
            return self.caches[0], None
        node = self.kernel.current_node % len(self.caches)
        return self.caches[node], node

    def home(self, pfn: int) -> UnmappedCache:
        """The cache a freed block goes back to: its node's (the only one when global)."""
        if not self.per_node:
            return self.caches[0]
        return self.caches[self.kernel.zone_of(pfn).node % len(self.caches)]

    def handed_out(self, pfn: int, order: int) -> None:
        """Count and charge a hand-out of pages of another node than the allocating CPU's."""
        if self.numa and self.kernel.zone_of(pfn).node != self.kernel.current_node:
            nr = 1 << order
            self.remote_pages += nr
            self.kernel.ledger.charge("numa", self.c_remote * nr)

    def set_on_release(self, hook: Callable[[int, int], None]) -> None:
        """Tell every cache's shrinker to report each released block to ``hook``."""
        for cache in self.caches:
            cache.on_release = hook

    def set_scrub(self, scrub: Callable[[int, int], None]) -> None:
        """Have every cache's shrinker clear each block with ``scrub`` before it goes back."""
        for cache in self.caches:
            cache.scrub = scrub

    def register_shrinkers(self) -> None:
        """register_shrinker() for each cache (a NUMA-aware shrinker, one list per node)."""
        for cache in self.caches:
            self.kernel.register_shrinker(cache)

    def scan_objects(self, nr_to_scan: int) -> int:
        """Each cache's shrinker in node order until ``nr_to_scan`` pages are freed."""
        freed = 0
        for cache in self.caches:
            if freed >= nr_to_scan:
                break
            freed += cache.scan_objects(nr_to_scan - freed)
        return freed

    def nr_pages(self) -> int:
        """Pages on every cache's free lists."""
        return sum(cache.nr_pages() for cache in self.caches)

    def metadata_bytes(self) -> int:
        """Every cache's ``free_area[]``; the pageblock bits once."""
        extra = FREE_AREA_BYTES * MAX_ORDER * (len(self.caches) - 1)
        return self.caches[0].metadata_bytes() + extra

    def stats(self) -> dict[str, Any]:
        """The debugfs table summed over the caches, ``remote_pages``, and with
        ``per_node`` each node's table under ``nodes``."""
        if len(self.caches) == 1:
            out = self.caches[0].stats()
        else:
            tables = [cache.stats() for cache in self.caches]
            out = {"MAX_ORDER": MAX_ORDER, "Order": list(range(MAX_ORDER))}
            for row in ("Free", "Cached", "Released"):
                out[row] = [sum(t[row][o] for t in tables) for o in range(MAX_ORDER)]
            out["lock_round_trips"] = sum(t["lock_round_trips"] for t in tables)
            out["nodes"] = tables
        out["remote_pages"] = self.remote_pages
        return out
