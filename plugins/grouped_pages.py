"""``grouped-pages``: Rick Edgecombe's grouped-pages cache for PKS-protected page tables.

Models "[RFC 0/9] PKS write protected page tables" (Rick Edgecombe, May 2021,
20210505003032.489164-1-rick.p.edgecombe) on the grouped-pages cache of his April 2021 RFC
(``VM_GROUP_PAGES``, 20210405203711.1095940-1-rick.p.edgecombe): a per-node ``list_lru`` of
4 KiB pages cut from order-9 blocks. A refill takes an order-9 ``MIGRATE_UNMOVABLE`` block
from the buddy (order 0 when none is free), applies the PKS key to the whole block's
direct-map alias with one CPA call (``set_memory_pks``: an aligned 2 MiB-mapped block is
changed in place, no split; the flush of 512 pages is a ``flush_tlb_all``), and puts its
pages on the node's list. Page-table pages are handed out one at a time (zeroed when asked,
through the direct map, which stays present) and come back to the list at free with the key
still set. The NUMA-aware shrinker frees single pages: it clears the key on the page (which
splits the block's 2 MiB entry the first time) and gives the page to the buddy.

Serves ``pagetable`` with ``perm=PKS``; other page-table requests and every other site stay
on the status-quo path. Parameter ``refill_order`` (9). Stats per node: refills, order-0
fallbacks, pages cached, pages released by the shrinker.

docs/designs.md, "grouped-pages", has the sources and every modelled detail and
simplification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import MIGRATE_UNMOVABLE, PMD_ORDER
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Perm, Request
from framework.statusquo import BPF_CHECK_ROX, StatusQuo

GROUPED = "grouped-pages"  # the handle of a page the cache handed out
LIST_LRU_NODE_BYTES = 64  # struct list_lru_node (lock, list_lru_one, nr_items), one per node


@attrs.define(slots=True)
class NodeCache:
    """One node's ``list_lru_one``: free keyed pages, newest last, and its counters."""

    pages: list[int] = attrs.field(factory=list)
    refills: int = 0
    order0_fallbacks: int = 0
    released: int = 0


class GroupedPages(StatusQuo):
    """PKS page tables from a per-node cache of keyed 2 MiB groups (module docstring)."""

    name = "grouped-pages"
    summary = ("Rick Edgecombe's grouped pages for PKS page tables (2021 RFC): per-node cache "
               "of 4 KiB pages cut from 2 MiB blocks keyed once, single-page shrinker")
    source = ("20210505003032.489164-1-rick.p.edgecombe (PKS page tables RFC) on "
              "20210405203711.1095940-1-rick.p.edgecombe (grouped pages)")
    covers = frozenset({"pagetable"})
    params = (
        Param("refill_order", int, PMD_ORDER, "order of the block a refill takes first "
              "(order 0 when none is free)", min=0, max=PMD_ORDER),
        BPF_CHECK_ROX,
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.refill_order: int = params["refill_order"]
        self.nodes = [NodeCache() for _ in range(kernel.spec.nodes)]
        kernel.register_shrinker(self)

    # -- the cache ------------------------------------------------------------------------
    def get_grouped_page(self, node: int) -> int:
        """A keyed page from the node's list, refilling it on a miss; NO_PAGE on failure."""
        cache = self.nodes[node]
        if not cache.pages and not self.refill(node):
            return NO_PAGE
        self.kernel.ledger.charge("slab", self.kernel.costs["slab_op"])  # list_lru_walk_one
        return cache.pages.pop()

    def refill(self, node: int) -> bool:
        """An order-``refill_order`` block (order 0 as fallback), keyed with one CPA call."""
        kernel = self.kernel
        cache = self.nodes[node]
        for order in dict.fromkeys((self.refill_order, 0)):
            pfn = kernel.alloc_pages(order, MIGRATE_UNMOVABLE, node)
            if pfn == NO_PAGE:
                continue
            nr = 1 << order
            if kernel.set_pages_pkey(pfn, nr, True):  # set_memory_pks(); -ENOMEM
                kernel.set_pages_pkey(pfn, nr, False)
                kernel.free_pages(pfn, order)
                return False
            if order:
                kernel.split_page(pfn, order)
            cache.refills += 1
            cache.order0_fallbacks += order == 0 and self.refill_order > 0
            cache.pages.extend(range(pfn + nr - 1, pfn - 1, -1))  # lowest pfn handed out first
            return True
        return False

    # -- the site -------------------------------------------------------------------------
    def pagetable_alloc(self, request: Request) -> Allocation | None:
        """PKS page tables from the node's cache; others as v6.3."""
        if request.perm is not Perm.PKS:
            return super().pagetable_alloc(request)
        node = request.node if request.node is not None else self.kernel.current_node
        pfn = self.get_grouped_page(node)
        if pfn == NO_PAGE:
            return None
        if request.zero:
            self.kernel.clear_pages(pfn, 1)  # __GFP_ZERO: the page is mapped, PKS write window
        return Allocation(((pfn, 0),), 0, request.size, False, (GROUPED, node))

    def free(self, allocation: Allocation) -> None:
        """free_grouped_page(): back on its node's list, key kept."""
        handle = allocation.handle
        if not (isinstance(handle, tuple) and handle[0] == GROUPED):
            super().free(allocation)
            return
        self.kernel.ledger.charge("slab", self.kernel.costs["slab_op"])  # list_lru_add
        pfn = allocation.blocks[0][0]
        self.nodes[self.kernel.zone_of(pfn).node].pages.append(pfn)

    # -- the shrinker (list_lru_shrink_walk, single pages) -------------------------------
    def count_objects(self) -> int:
        """Pages on every node's list."""
        return self.cache_pages_own()

    def scan_objects(self, nr_to_scan: int) -> int:
        """Free up to ``nr_to_scan`` pages, oldest first, node by node: key off, then free."""
        kernel = self.kernel
        freed = 0
        for cache in self.nodes:
            while cache.pages and freed < nr_to_scan:
                pfn = cache.pages.pop(0)
                kernel.set_pages_pkey(pfn, 1, False)  # may split the group's 2 MiB entry
                kernel.free_pages(pfn, 0)
                cache.released += 1
                freed += 1
        return freed

    def shrink(self, nr_pages: int) -> int:
        """The shrinker's scan."""
        return self.scan_objects(nr_pages)

    # -- accounting ----------------------------------------------------------------------
    def cache_pages_own(self) -> int:
        """Pages on the lists."""
        return sum(len(c.pages) for c in self.nodes)

    def cache_pages(self) -> int:
        """Pages on the lists plus the status-quo packs and slot pages."""
        return self.cache_pages_own() + super().cache_pages()

    def metadata_bytes(self) -> int:
        """One list_lru_node per node (the list head lives in the free page itself)."""
        return LIST_LRU_NODE_BYTES * len(self.nodes)

    def stats(self) -> dict[str, Any]:
        """Per node: refills, order-0 fallbacks, pages cached, pages released."""
        return {"nodes": [{"node": i, "refills": c.refills,
                           "order0_fallbacks": c.order0_fallbacks,
                           "cached": len(c.pages), "released": c.released}
                          for i, c in enumerate(self.nodes)]}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``grouped-pages``."""
    register(GroupedPages)
