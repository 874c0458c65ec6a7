"""``unmapped-api``: the API-only unmapped allocator that followed the v3 review.

Models ``unmapped_pages_alloc(order)`` / ``unmapped_pages_free(page, order)`` of Mike
Rapoport's API-only variant (announced 19 May 2023 in the thread of
20230308094106.227365-1-rppt@kernel.org; text read: rppt/linux snapshot 0d73fc61,
``mm/unmapped-alloc.c``) on the same cache as ``gfp-unmapped``
(:mod:`framework.designs._unmapped_cache`):
a miss refills with ``alloc_pages(GFP_KERNEL | __GFP_ZERO, o)`` and ``set_memory_np()`` over
the block; owners free explicitly; ``zero`` is per request (cleared at hand-out through a
temporary mapping, skipped for ``zero=False`` guest memory). Sites: ``secretmem``, ``guest``,
``dma_nokmap``; not page tables (PKS page tables must stay mapped) nor module or BPF memory
(without the GFP flag vmalloc cannot reach the cache).

Parameters (``--set unmapped-api.KEY=VALUE``): ``variant`` (``posted``: zeroing is per
request at hand-out, so a ``zero=0`` request, or v3's shrinker, gets a cached page still
holding its last owner's data; ``fixed``: a page not known clean is cleared at every
hand-out and before the shrinker gives it back), ``free_hook`` (0: no generic free-path
diversion, as the snapshot; 1: keep v3's), ``shrinker`` (1: v3's shrinker; 0: none, as the
snapshot), ``refill_order`` (9), ``unmap`` (``block``, or ``request``: only ``1 << order``
pages, as the snapshot literally does), ``per_node`` (0: one global cache, as the snapshot; 1:
a cache per node, :class:`~framework.designs._unmapped_cache.CacheSet`). As a page source for
other designs (``--set jit-slab.backend=unmapped-api``, ``--set
vmap-area.backend=unmapped-api``; framework/compose.py) it offers ``source_pages`` /
``return_pages`` = ``unmapped_pages_alloc`` / ``unmapped_pages_free``. Stats: the v3 debugfs
table, lock round trips, refills, stolen pages, pages zeroed at hand-out, pages handed to
another node's CPU.

docs/designs.md, "unmapped-api", has the sources, the review it answers, and every modelled
detail and simplification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.designs._unmapped_cache import (
    CacheSet,
    UnmappedCache,
    alloc_refill_block,
    clear_unmapped,
)
from framework.hookspecs import hookimpl
from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import (
    MAX_ORDER,
    PAGE_SIZE,
    PAGEBLOCK_NR_PAGES,
    PMD_ORDER,
    get_order,
)
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import BPF_CHECK_ROX, StatusQuo

SECRETMEM, GUEST, DMA_NOKMAP = Site.SECRETMEM, Site.GUEST, Site.DMA_NOKMAP


UNMAPPED_API = "unmapped-api"  # the handle of an allocation from the unmapped cache


class UnmappedApi(StatusQuo):
    """``unmapped_pages_alloc/free`` on the unmapped buddy cache (see the module docstring)."""

    name = "unmapped-api"
    summary = ("API-only unmapped_pages_alloc/free (rfc-v2): whole-block unmap at refill, "
               "per-request zeroing, optional free hook and shrinker")
    source = ("rppt/linux unmapped-alloc/rfc-v2 (snapshot 0d73fc61), announced in "
              "20230308094106.227365-1-rppt@kernel.org thread, 19 May 2023")
    covers = frozenset({SECRETMEM, GUEST, DMA_NOKMAP})
    params = (
        Param("variant", str, "posted", "posted: zero=0 requests and v3's shrinker get "
              "cached pages holding their last owner's data; fixed: such pages are cleared "
              "first",
              choices=("posted", "fixed")),
        Param("free_hook", bool, False, "keep the PB_unmapped generic free-path diversion "
              "(Babka); 0: secretmem frees explicitly"),
        Param("shrinker", bool, True, "register v3's shrinker (the snapshot has none)"),
        Param("refill_order", int, PMD_ORDER, "first order a refill tries (PMD_ORDER)",
              min=0, max=PMD_ORDER),
        Param("unmap", str, "block", "set_memory_np at refill over the whole block, or over "
              "1 << order pages as the snapshot literally does", choices=("block", "request")),
        Param("per_node", bool, False, "one cache per NUMA node (the thread's request); 0: "
              "one global cache, as the snapshot"),
        BPF_CHECK_ROX,
    )
    source_unmapped = True  # framework/compose.py PageSource: its pages leave the direct map

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.free_hook: bool = params["free_hook"]
        self.shrinker: bool = params["shrinker"]
        self.refill_order: int = params["refill_order"]
        self.whole_block = params["unmap"] == "block"
        self.caches = CacheSet(kernel, fixed_release=True, per_node=params["per_node"])
        self.cache = self.caches.caches[0]  # the global cache (node 0's with per_node)
        self.caches.set_on_release(self._forget_clean)
        if self.free_hook:
            kernel.register_free_hook(self.caches.pb_mask, self.free_pages_prepare)
        if self.shrinker:
            self.caches.register_shrinkers()
        self.fixed = params["variant"] == "fixed"
        if self.fixed:
            self.caches.set_scrub(self._scrub)
        self.clean: set[int] = set()  # cached pages cleared by the refill, not handed out since
        self.handed: dict[int, int] = {}
        self.refills = 0
        self.stolen_pages = 0
        self.zeroed_at_handout = 0
        self.scrubbed_at_release = 0

    # -- include/linux/unmapped-alloc.h --------------------------------------------------
    def unmapped_pages_alloc(self, order: int, zero: bool) -> int:
        """unmapped_pages_alloc(order), zeroing the pages when the caller asks (Sean)."""
        cache, node = self.caches.local()
        pfn = cache.rmqueue_smallest(order)
        if pfn == NO_PAGE:
            pfn = self.refill(order, cache, node)
            if pfn == NO_PAGE:
                return NO_PAGE
        self.handed[pfn] = order
        self.caches.handed_out(pfn, order)
        nr = 1 << order
        if zero or self.fixed:  # fixed: an earlier owner's data never reaches the next one
            self._zero(pfn, nr)
        if self.clean:
            self.clean.difference_update(range(pfn, pfn + nr))
        return pfn

    def _zero(self, pfn: int, nr: int) -> None:
        """Clear each run of pages not known clean, one temporary mapping per run."""
        self.zeroed_at_handout += self._clear_dirty(pfn, nr)

    def _scrub(self, pfn: int, order: int) -> None:
        """``fixed``: the shrinker clears a block's pages not known clean before they go
        back to the buddy (zeroing is per request at hand-out, so a freed page is cached
        with its owner's data)."""
        self.scrubbed_at_release += self._clear_dirty(pfn, 1 << order)

    def _clear_dirty(self, pfn: int, nr: int) -> int:
        """Clear each run of pages not known clean, one temporary mapping per run; the
        pages cleared."""
        cleared = 0
        clean = self.clean
        start = -1
        for p in range(pfn, pfn + nr + 1):
            dirty = p < pfn + nr and p not in clean
            if dirty and start < 0:
                start = p
            elif not dirty and start >= 0:
                clear_unmapped(self.kernel, start, p - start)
                cleared += p - start
                start = -1
        return cleared

    def refill(self, order: int, cache: UnmappedCache, node: int | None) -> int:
        """The miss path: GFP_KERNEL | __GFP_ZERO block, set_memory_np, into the cache."""
        kernel = self.kernel
        block, cache_order = alloc_refill_block(kernel, max(self.refill_order, order), order,
                                                node)
        if block == NO_PAGE:
            return NO_PAGE
        size = 1 << cache_order
        if not self.whole_block:
            kernel.set_memory_np(block, 1 << order)  # (sic) snapshot: unchecked, request order
        elif kernel.set_memory_np(block, size):
            kernel.set_memory_p(block, size)
            kernel.free_pages_ok(block, cache_order)
            return NO_PAGE
        self.refills += 1
        self.clean.update(range(block, block + size))
        cache.free_one_page(block, cache_order, cache_refill=True)
        for pageblock in range(block + PAGEBLOCK_NR_PAGES, block + size, PAGEBLOCK_NR_PAGES):
            cache.set_pageblock_unmapped(pageblock)  # an order-10 block spans two
        return cache.rmqueue_smallest(order)

    def unmapped_pages_free(self, pfn: int, order: int) -> None:
        """unmapped_pages_free(page, order): straight onto the cache's lists."""
        self.handed.pop(pfn, None)
        self.caches.home(pfn).free_one_page(pfn, order, cache_refill=False)

    # -- a page source for other designs (framework/compose.py) ----------------------------
    def source_pages(self, order: int, zero: bool) -> int:
        """unmapped_pages_alloc() for another design."""
        return self.unmapped_pages_alloc(order, zero)

    def return_pages(self, pfn: int, order: int) -> None:
        """unmapped_pages_free() for another design."""
        self.unmapped_pages_free(pfn, order)

    def free_pages_prepare(self, pfn: int, order: int) -> bool:
        """``free_hook=1``: a generic free in a PB_unmapped block enters the cache unmapped."""
        if self.handed.pop(pfn, None) is None:
            self.stolen_pages += 1 << order
        kernel = self.kernel
        dm = kernel.directmap
        present = [p for p in range(pfn, pfn + (1 << order)) if dm.is_present(p)]
        for p in present:
            kernel.set_direct_map_invalid_noflush(p)
        if present:
            kernel.flush_tlb_kernel_range(len(present))
        self.caches.home(pfn).free_one_page(pfn, order, cache_refill=False)
        return True

    def _forget_clean(self, pfn: int, order: int) -> None:
        if self.clean:
            self.clean.difference_update(range(pfn, pfn + (1 << order)))

    # -- the sites it serves ----------------------------------------------------------------
    def unmapped_alloc(self, request: Request) -> Allocation | None:
        """secretmem per page, guest in chunks of up to 2 MiB, dma_nokmap in one block."""
        nr_pages = max(1, -(-request.size // PAGE_SIZE))
        if request.site == SECRETMEM:
            return self._alloc_blocks(request, [0] * nr_pages)
        order = get_order(request.size)
        if request.site == DMA_NOKMAP and order < MAX_ORDER:
            return self._alloc_blocks(request, [order])
        return self._alloc_chunked(request, nr_pages)

    secretmem_alloc = unmapped_alloc  # the users of unmapped_pages_alloc() in rfc-v2
    guest_alloc = unmapped_alloc
    dma_nokmap_alloc = unmapped_alloc

    def _alloc_blocks(self, request: Request, orders: list[int]) -> Allocation | None:
        blocks: list[tuple[int, int]] = []
        for order in orders:
            pfn = self.unmapped_pages_alloc(order, request.zero)
            if pfn == NO_PAGE:
                self._undo(blocks)
                return None
            blocks.append((pfn, order))
        return Allocation(tuple(blocks), 0, request.size, True, UNMAPPED_API)

    def _alloc_chunked(self, request: Request, left: int) -> Allocation | None:
        """Largest blocks first, at most order 9, smaller when a block cannot be had."""
        blocks: list[tuple[int, int]] = []
        order = PMD_ORDER
        while left > 0:
            order = min(order, left.bit_length() - 1)
            pfn = self.unmapped_pages_alloc(order, request.zero)
            if pfn == NO_PAGE:
                if order == 0:
                    self._undo(blocks)
                    return None
                order -= 1
                continue
            blocks.append((pfn, order))
            left -= 1 << order
        return Allocation(tuple(blocks), 0, request.size, True, UNMAPPED_API)

    def _undo(self, blocks: list[tuple[int, int]]) -> None:
        for pfn, order in blocks:
            self.unmapped_pages_free(pfn, order)

    def free(self, allocation: Allocation) -> None:
        """unmapped_pages_free() of every block; other sites as v6.3 frees them."""
        if allocation.handle != UNMAPPED_API:
            super().free(allocation)
            return
        for pfn, order in allocation.blocks:
            self.unmapped_pages_free(pfn, order)

    def free_generic(self, allocation: Allocation) -> None:
        """With the hook, the generic path diverts; without, secretmem's free_folio frees."""
        if allocation.handle != UNMAPPED_API:
            super().free_generic(allocation)
            return
        if not self.free_hook:
            self.free(allocation)
            return
        for pfn, order in allocation.blocks:
            self.kernel.free_pages(pfn, order)

    def shrink(self, nr_pages: int) -> int:
        """The optional shrinker's scan."""
        return self.caches.scan_objects(nr_pages) if self.shrinker else 0

    def cache_pages(self) -> int:
        """Pages on the cache's free lists (and status-quo packs and slot pages)."""
        return self.caches.nr_pages() + super().cache_pages()

    def metadata_bytes(self) -> int:
        """free_area[] and the extra pageblock bits (the snapshot still sets PB_unmapped)."""
        return self.caches.metadata_bytes()

    def stats(self) -> dict[str, Any]:
        """The debugfs table plus refills, stolen pages and hand-out clears."""
        return {**self.caches.stats(), "refills": self.refills,
                "stolen_pages": self.stolen_pages, "zeroed_at_handout": self.zeroed_at_handout,
                **({"scrubbed_at_release": self.scrubbed_at_release} if self.fixed else {})}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``unmapped-api``."""
    register(UnmappedApi)
