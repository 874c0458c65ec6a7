"""``gfp-unmapped``: Mike Rapoport's ``__GFP_UNMAPPED`` v3 with its dedicated buddy cache.

Models the posted code of 20230308094106.227365-1-rppt@kernel.org (on v6.3-rc1 fe15c26ee26e):
``__alloc_pages()`` sends ``__GFP_UNMAPPED`` requests to ``unmapped_pages_alloc()``, a global
buddy cache of unmapped pages (:mod:`framework.designs._unmapped_cache`) refilled with
``alloc_pages(gfp | __GFP_ZERO, o)`` for o = ``refill_order`` down to the request's order and
taken out of the direct map; ``free_pages_prepare()`` diverts every generic free of a page in
a ``PB_unmapped`` pageblock back into the cache (``kernel.register_free_hook``); the v3
shrinker gives whole blocks back. Users: secretmem (``freed_by=GENERIC``) and everything x86
``module_alloc()`` serves (module sections, trampolines, BPF packs), one
``alloc_pages(gfp, 0)`` per page; allocations promise ``unmapped=True``.

Variants (``--set gfp-unmapped.variant=...``): ``posted`` (default), the code as posted: the
refill unmaps only the first ``1 << order`` pages and freed pages go back on the list unzeroed,
which the ``unmapped_present`` and ``not_zeroed`` checks catch; ``fixed``: the whole block
unmapped with one checked CPA call, pages zeroed before they enter the cache, no
``VM_FLUSH_RESET_PERMS`` for module pages. Parameter ``refill_order`` (9, the patch's
PMD_ORDER), ``per_node`` (0: the posted global cache; 1: a cache per node,
:class:`~framework.designs._unmapped_cache.CacheSet`). Stats: the
``/sys/kernel/debug/unmapped_alloc`` table, lock round trips, refills, stolen pages, pages
handed to another node's CPU (``remote_pages``).

docs/designs.md, "gfp-unmapped", has the posted code, what reviewers found, and every
modelled detail and simplification.
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
from framework.kernel.consts import PAGE_SHIFT, PAGE_SIZE, PMD_ORDER
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VM_FLUSH_RESET_PERMS, VmStruct
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import MODULE_SITES, StatusQuo

SECRETMEM = Site.SECRETMEM


class GfpUnmapped(StatusQuo):
    """``__GFP_UNMAPPED`` v3: one global unmapped buddy cache (see the module docstring)."""

    name = "gfp-unmapped"
    summary = ("v3 __GFP_UNMAPPED: global buddy cache of unmapped pages refilled 2 MiB at a "
               "time, PB_unmapped free-path diversion, shrinker; secretmem and module_alloc")
    source = "20230308094106.227365-1-rppt@kernel.org (mm/unmapped-alloc.c, v3 RFC)"
    covers = frozenset({SECRETMEM, Site.BPF_PROG, *MODULE_SITES})
    params = (
        Param("variant", str, "posted", "posted: the v3 code with its bugs; fixed: whole-block "
              "unmap, zero before caching, no VM_FLUSH_RESET_PERMS", choices=("posted", "fixed")),
        Param("refill_order", int, PMD_ORDER, "first order a refill tries (patch: PMD_ORDER)",
              min=0, max=PMD_ORDER),
        Param("per_node", bool, False, "one cache per NUMA node (the thread's request); 0: "
              "one global cache, as posted"),
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.fixed = params["variant"] == "fixed"
        self.refill_order: int = params["refill_order"]
        self.caches = CacheSet(kernel, fixed_release=self.fixed,
                               per_node=params["per_node"])
        self.cache = self.caches.caches[0]  # the global cache (node 0's with per_node)
        kernel.register_free_hook(self.caches.pb_mask, self.free_pages_prepare)
        self.caches.register_shrinkers()
        self.handed: dict[int, int] = {}  # head pfn -> order of blocks the cache handed out
        self.refills = 0
        self.stolen_pages = 0

    # -- the allocator proper (mm/unmapped-alloc.c) --------------------------------------
    def unmapped_pages_alloc(self, order: int) -> int:
        """unmapped_pages_alloc(): cache first, refill on a miss; returns a pfn or NO_PAGE.

        post_alloc_hook(page, order, GFP_KERNEL) clears nothing: the caller's __GFP_ZERO is
        lost (``posted``); in ``fixed`` every cached page is already zero.
        """
        cache, node = self.caches.local()
        pfn = cache.rmqueue_smallest(order)
        if pfn == NO_PAGE:
            pfn = self.refill(order, cache, node)
        if pfn != NO_PAGE:
            self.handed[pfn] = order
            self.caches.handed_out(pfn, order)
        return pfn

    def refill(self, order: int, cache: UnmappedCache, node: int | None) -> int:
        """The miss path of unmapped_pages_alloc(): alloc, unmap, cache, take again."""
        kernel = self.kernel
        block, cache_order = alloc_refill_block(kernel, self.refill_order, order,
                                                node)  # PMD first
        if block == NO_PAGE:
            return NO_PAGE
        if self.fixed:
            nr = 1 << cache_order
            if kernel.set_direct_map_invalid_noflush(block, nr):
                kernel.set_direct_map_default_noflush(block, nr)
                kernel.free_pages_ok(block, cache_order)
                return NO_PAGE
            kernel.flush_tlb_kernel_range(nr)
        else:
            nr = 1 << order  # (sic) the request's order, not the block's
            for pfn in range(block, block + nr):
                kernel.set_direct_map_invalid_noflush(pfn)  # FIXME in v3: may fail
            kernel.flush_tlb_kernel_range(nr)
        self.refills += 1
        cache.free_one_page(block, cache_order, cache_refill=True)
        return cache.rmqueue_smallest(order)

    def free_pages_prepare(self, pfn: int, order: int) -> bool:
        """The free-path diversion: a generic free in a PB_unmapped block enters the cache."""
        if self.handed.pop(pfn, None) is None:
            self.stolen_pages += 1 << order
        if self.fixed:
            self.scrub(pfn, order)
        self.caches.home(pfn).free_one_page(pfn, order, cache_refill=False)  # unmapped_pages_free
        return True

    def scrub(self, pfn: int, order: int) -> None:
        """``fixed``: zero the block before it goes on the list; unmap what is still present."""
        kernel = self.kernel
        dm = kernel.directmap
        nr = 1 << order
        present = {p for p in range(pfn, pfn + nr) if dm.is_present(p)}  # kernel_page_present
        if not present:
            clear_unmapped(kernel, pfn, nr)
            return
        for p in range(pfn, pfn + nr):
            if p in present:
                kernel.clear_pages(p, 1)  # still mapped: clear_page() through the direct map
                kernel.set_direct_map_invalid_noflush(p)
            else:
                clear_unmapped(kernel, p, 1)
        kernel.flush_tlb_kernel_range(len(present))

    # -- module_alloc backed by the cache (arch/x86/kernel/module.c, mm/vmalloc.c) -------
    def module_alloc(self, size: int, vm_flags: int = 0) -> VmStruct | None:
        """module_alloc(): 4 KiB pages from the cache, one allocation per page.

        ``posted`` keeps VM_FLUSH_RESET_PERMS; ``fixed`` drops it (see :meth:`vfree`).
        """
        flags = vm_flags | (0 if self.fixed else VM_FLUSH_RESET_PERMS)
        nr = -(-size >> PAGE_SHIFT)
        # vm_area_alloc_pages(): __GFP_UNMAPPED skips the bulk allocator, one page at a time
        return self.kernel.vmalloc_from(nr, flags, self.unmapped_pages_alloc)

    def vfree(self, area: VmStruct) -> None:
        """vfree(): the pages go back through the generic free path, hence into the cache.

        ``posted``: VM_FLUSH_RESET_PERMS makes each page invalid, flushes, makes it default
        (mapped) before the free. ``fixed``: no reset; the lazily freed module alias is
        purged and flushed at once (``vm_unmap_aliases``).
        """
        self.kernel.vfree(area)
        if self.fixed:
            self.kernel.vm_unmap_aliases()

    # -- the sites it changes ------------------------------------------------------------
    def alloc(self, request: Request) -> Allocation | None:
        """Module memory comes from the cache, so it is promised unmapped (the point of v3)."""
        allocation = self._by_site[request.site](request)
        if allocation is None or not allocation.blocks or request.site not in self.covers:
            return allocation
        return allocation._replace(unmapped=True)

    def secretmem_alloc(self, request: Request) -> Allocation | None:
        """secretmem_fault() per page: alloc_page(gfp | __GFP_ZERO | __GFP_UNMAPPED)."""
        blocks: list[tuple[int, int]] = []
        for _ in range(max(1, -(-request.size // PAGE_SIZE))):
            pfn = self.unmapped_pages_alloc(0)
            if pfn == NO_PAGE:
                for done, _ in blocks:
                    self.kernel.free_pages(done, 0)  # put_page(): diverted back
                return None
            blocks.append((pfn, 0))
        return Allocation(tuple(blocks), 0, request.size, True, SECRETMEM)

    def free_generic(self, allocation: Allocation) -> None:
        """__free_pages() of each block; the PB_unmapped diversion takes them (no free_folio)."""
        if allocation.handle != SECRETMEM:
            super().free_generic(allocation)
            return
        for pfn, order in allocation.blocks:
            self.kernel.free_pages(pfn, order)

    def shrink(self, nr_pages: int) -> int:
        """The v3 shrinker's scan."""
        return self.caches.scan_objects(nr_pages)

    def cache_pages(self) -> int:
        """Pages on the cache's free lists plus pages in this design's BPF packs."""
        return self.caches.nr_pages() + super().cache_pages()

    def metadata_bytes(self) -> int:
        """free_area[] and the extra pageblock bits."""
        return self.caches.metadata_bytes()

    def stats(self) -> dict[str, Any]:
        """The debugfs table plus refills and stolen pages."""
        return {**self.caches.stats(), "refills": self.refills,
                "stolen_pages": self.stolen_pages}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``gfp-unmapped``."""
    register(GfpUnmapped)
