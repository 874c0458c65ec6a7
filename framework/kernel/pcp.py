"""Per-cpu page lists (mm/page_alloc.c ``struct per_cpu_pages``, v6.3).

Each CPU has, per zone, one list per migratetype for orders 0..``PAGE_ALLOC_COSTLY_ORDER``
and one list for pageblock-order (THP) pages of any migratetype. An allocation of such an
order takes the head of its list, refilling an empty list with ``batch`` blocks (scaled down
by order) from the buddy (``rmqueue_bulk``); a free puts the block at the head of its list and,
once the CPU holds ``high`` pages, returns the oldest ones to the buddy round-robin over the
lists (``free_pcppages_bulk``). ``high`` and ``batch`` follow the zone's size, low watermark and
CPU count (``zone_highsize``, ``zone_batchsize``). Pages on these lists are neither free in the
buddy (NR_FREE_PAGES) nor handed out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from framework.kernel.consts import PAGEBLOCK_ORDER

PAGE_ALLOC_COSTLY_ORDER: Final = 3  # include/linux/mmzone.h
THP_ROW: Final = PAGE_ALLOC_COSTLY_ORDER + 1  # the row of PerCpuPages.by_order for the THP list
SZ_1M_PAGES: Final = 256  # SZ_1M / PAGE_SIZE

#: One per-cpu list: ``(pfn, mt)`` entries, the kernel's list head at the end, so that
#: list_add() (a free) is ``append``, the head a hit takes is ``pop()`` and the oldest entry,
#: which free_pcppages_bulk() returns first (list_last_entry()), is ``[0]``. A Python list
#: rather than a deque: the compiled core appends to and pops from a list natively, where a
#: deque's methods are calls through the Python API (docs/performance.md).
PcpList = list[tuple[int, int]]


def pcp_allowed_order(order: int) -> bool:
    """pcp_allowed_order(): orders 0..3 and the THP order."""
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == PAGEBLOCK_ORDER


def zone_batchsize(managed_pages: int) -> int:
    """zone_batchsize(): a quarter of min(managed / 1024, 1 MiB of pages), 2^n - 1."""
    batch = min(managed_pages >> 10, SZ_1M_PAGES) // 4
    batch = max(batch, 1)
    value = batch + batch // 2
    return (1 << (value.bit_length() - 1)) - 1  # rounddown_pow_of_two(...) - 1


def zone_highsize(low_wmark: int, batch: int, cpus_on_node: int) -> int:
    """zone_highsize(): the zone's low watermark shared by the node's CPUs, >= 4 batches."""
    high = low_wmark // max(1, cpus_on_node)
    return max(high, batch << 2)


class PerCpuPages:
    """One CPU's lists for one zone.

    :ivar lists: ``(order, mt)`` (or ``(PAGEBLOCK_ORDER, -1)`` for the THP list) -> list of
        ``(pfn, mt)`` with the list head at the end (:data:`PcpList`).
    :ivar by_order: the same lists by ``[order][mt]`` (row :data:`THP_ROW`, column 0 for
        the THP list), None where no list was made yet: the hot paths index it, so a lookup
        builds no ``(order, mt)`` key (a tuple and its hash per call).
    :ivar count: pages held.
    """

    __slots__ = ("batch", "by_order", "count", "free_factor", "high", "lists", "order_mt")

    def __init__(self, high: int, batch: int) -> None:
        self.high = high
        self.batch = batch
        self.count = 0
        self.free_factor = 0
        self.lists: dict[tuple[int, int], PcpList] = {}
        self.order_mt: list[tuple[int, int]] = []  # pindex order: lists in creation order
        self.by_order: list[list[PcpList | None]] = [
            [] for _ in range(THP_ROW + 1)]

    def get_list(self, order: int, mt: int) -> PcpList | None:
        """The list of ``(order, mt)`` (THP pages share one), or None if not made yet."""
        if order > PAGE_ALLOC_COSTLY_ORDER:
            row = self.by_order[THP_ROW]
            mt = 0
        else:
            row = self.by_order[order]
        return row[mt] if mt < len(row) else None

    def list_for(self, order: int, mt: int) -> PcpList:
        """order_to_pindex(): the list of ``(order, mt)``; THP pages share one list."""
        found = self.get_list(order, mt)
        if found is None:
            found = self._new_list(order, mt)
        return found

    def _new_list(self, order: int, mt: int) -> PcpList:
        key = (order, -1) if order > PAGE_ALLOC_COSTLY_ORDER else (order, mt)
        found: PcpList = []
        self.lists[key] = found
        self.order_mt.append(key)
        self.order_mt.sort()
        row = self.by_order[min(order, THP_ROW)]
        col = max(key[1], 0)
        row.extend([None] * (col + 1 - len(row)))
        row[col] = found
        return found

    def nr_pcp_free(self, high: int) -> int:
        """nr_pcp_free(): pages to return, doubling while frees come without allocations."""
        batch = self.batch
        if high < batch:
            return 1
        min_nr_free, max_nr_free = batch, high - batch
        batch <<= self.free_factor
        if batch < max_nr_free:
            self.free_factor += 1
        return max(min_nr_free, min(batch, max_nr_free))

    def free_bulk(self, count: int, first: tuple[int, int],
                  free_one: Callable[[int, int, int], None]) -> None:
        """free_pcppages_bulk(): oldest pages first, round-robin over the lists, the list
        just freed to first; ``free_one(pfn, order, mt)`` is ``__free_one_page``."""
        keys = self.order_mt
        i = keys.index(first) - 1
        while count > 0 and self.count > 0:
            while True:
                i = (i + 1) % len(keys)
                lst = self.lists[keys[i]]
                if lst:
                    break
            order = keys[i][0]
            step = 1 << order
            # list_last_entry() while count > 0: the k oldest entries, taken off the front
            # of the list at once (a pop(0) each would move the rest of it each time);
            # free_one() is the buddy's and does not read the per-cpu lists
            k = min(len(lst), (count + step - 1) >> order)
            oldest = lst[:k]
            del lst[:k]
            for pfn, mt in oldest:
                count -= step
                self.count -= step
                free_one(pfn, order, mt)

    def drain(self, free_one: Callable[[int, int, int], None]) -> int:
        """drain_pages_zone(): every page back to the buddy; returns the pages freed."""
        freed = self.count
        if freed:
            self.free_bulk(freed, self.order_mt[0], free_one)
        return freed
