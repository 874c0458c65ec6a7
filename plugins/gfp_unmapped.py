"""``gfp-unmapped``: Mike Rapoport's ``__GFP_UNMAPPED`` v3 with its dedicated buddy cache.

Models: "[RFC PATCH 0/5] Prototype for direct map awareness in page allocator", v3
(20230308094106.227365-1-rppt@kernel.org, on v6.3-rc1 fe15c26ee26e), from the posted code:

- ``__alloc_pages()`` sends ``__GFP_UNMAPPED`` requests to ``unmapped_pages_alloc()``: take a
  block from the cache (:mod:`plugins._unmapped_cache`); on a miss refill by trying
  ``alloc_pages(gfp | __GFP_ZERO, o)`` for o = ``refill_order`` (PMD_ORDER = 9 in the patch)
  down to the request's order, remove it from the direct map, put the whole block in the cache
  (which sets ``PB_unmapped`` on its pageblock and counts ``nr_cached``), take again; then
  ``post_alloc_hook(page, order, GFP_KERNEL)``.
- pcp bypass: ``pcp_allowed()`` keeps ``__GFP_UNMAPPED`` off the per-cpu lists. The model has
  no pcp lists at all (every order-0 page goes through the buddy), so there is nothing to
  bypass; the cache's own lock round trips are counted in :meth:`GfpUnmapped.stats`.
- ``free_pages_prepare()`` / ``free_unref_page_list()`` divert every generic free of a page in
  a ``PB_unmapped`` pageblock into the cache (``kernel.register_free_hook``): no remap, no
  zeroing. Pages of such a block that some other user held are "stolen" into the cache (Mike:
  intended, the block's PMD is split anyway); :meth:`GfpUnmapped.stats` counts them.
- The shrinker and the debugfs table (patches 2-3), see :mod:`plugins._unmapped_cache`.
- Users (patches 4-5). secretmem: ``alloc_page(gfp | __GFP_ZERO | __GFP_UNMAPPED)`` and no
  ``set_direct_map_*``, flush or ``free_folio`` of its own; pages come back through the page
  cache's generic free, which the diversion catches (``freed_by=GENERIC``). x86
  ``module_alloc()`` adds ``__GFP_UNMAPPED``, so ``vm_area_alloc_pages()`` skips the bulk
  allocator and takes one ``alloc_pages(gfp, 0)`` per page from the cache. Everything
  ``module_alloc`` serves in v6.3 is covered: module sections, trampolines and
  ``bpf_prog_pack`` packs and big BPF images (:class:`UnmappedModuleKernel`). The
  STRICT_MODULE_RWX ``set_memory_*`` calls still run on the module address; their alias
  processing meets 4 KiB direct-map entries that are already not present (or, for
  ``variant=fixed``, a whole 2 MiB entry invalidated in place) and changes nothing there.
  ``VM_FLUSH_RESET_PERMS`` stays set, so ``vfree`` makes every page invalid then *default*
  before the generic free puts it back in the cache: cached module pages are mapped (Rick
  Edgecombe's finding in the thread).

Allocations from the cache promise ``unmapped=True`` (the point of ``__GFP_UNMAPPED``), module
and BPF ones included; the engine checks it.

Variants (``--set gfp-unmapped.variant=...``):

- ``posted`` (default), the code as posted, with the two bugs reviewers found: the refill
  calls ``set_direct_map_invalid_noflush`` (unchecked: "FIXME ... may fail") on only the first
  ``1 << order`` pages and ``flush_tlb_kernel_range`` over them, so the rest of the block sits
  in the cache *mapped* and is later handed out unmapped in name only (the engine's
  ``unmapped_present`` check catches it); freed pages are not zeroed before going back on the
  list and ``post_alloc_hook(..., GFP_KERNEL)`` drops the caller's ``__GFP_ZERO`` (Rick: "The
  page has to be zeroed before it goes back on the list"; Mike: "You are right, I missed
  it"), so ``not_zeroed`` catches a secretmem page written by one owner and given to the next.
  Cached pages remapped by ``VM_FLUSH_RESET_PERMS`` or stolen while mapped are handed out
  mapped as well.
- ``fixed``: the refill makes the whole block invalid with one CPA call
  (``set_direct_map_invalid_noflush(page, 1 << order)``, i.e. later kernels'
  ``set_direct_map_valid_noflush``; checked, the block goes back to the buddy on failure) and
  one flush over the block; a 2 MiB-aligned order-9 block is changed in place, no split.
  Pages are zeroed *before they go back on the list* (every page entering the cache other
  than from a ``__GFP_ZERO`` refill), so the cache only ever holds zeroed pages (Mike's
  stated intent: ``__GFP_ZERO`` implicit); an unmapped page is cleared through a temporary
  local mapping (:func:`plugins._unmapped_cache.clear_unmapped`). A page entering the cache
  still present (a stolen one) is cleared through the direct map, then made invalid and
  flushed (``kernel_page_present()`` decides). ``module_alloc`` drops
  ``VM_FLUSH_RESET_PERMS`` (Rick: "modules shouldn't set VM_FLUSH_RESET_PERMS if it uses
  this") and flushes the module alias at ``vfree`` with ``vm_unmap_aliases()`` instead, so
  stale executable TLB entries never reach the next owner. The shrinker restores a block with
  one CPA call and clears ``PB_unmapped`` on every pageblock a block of order >= 9 covers.

Parameters: ``variant`` (posted|fixed), ``refill_order`` (first order tried on a refill; 9 is
the patch's PMD_ORDER; lower values model a machine without free 2 MiB blocks, where
``set_pageblock_unmapped`` marks a whole pageblock of which the cache owns only part).

Simplified: one lock and no concurrency (the refill race FIXME and the alloc-vs-shrinker
locking are unmodelled; round trips are counted); no memcg, watermarks or reclaim; the cache
is global as posted (no NUMA). ``init_on_alloc`` is off. In ``fixed`` the module alias flush
runs right after ``vfree`` has freed the pages (the model has no concurrency, so no one can
take them in between; a kernel would flush first).

Stats (:meth:`GfpUnmapped.stats`): the debugfs table (MAX_ORDER; Order / Free / Cached /
Released for orders 0..10), ``lock_round_trips``, ``refills``, ``stolen_pages`` (pages the
diversion took that the cache had not handed out; model bookkeeping, the kernel cannot tell).
``cache.debugfs()`` prints it as ``/sys/kernel/debug/unmapped_alloc`` does; after 512
secretmem pages were faulted, freed and the shrinker ran on a fresh machine::

    MAX_ORDER: 11

    Order:        0     1     2     3     4     5     6     7     8     9    10
    Free:         0     0     0     0     0     0     0     0     0     0     0
    Cached:       0     0     0     0     0     0     0     0     0     1     0
    Released:     0     0     0     0     0     0     0     0     0     1     0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import PAGE_SHIFT, PAGE_SIZE, PMD_ORDER
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VM_FLUSH_RESET_PERMS, VmStruct
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import MODULE_SITES, StatusQuo
from plugins._unmapped_cache import UnmappedCache, alloc_refill_block, clear_unmapped

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
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.fixed = params["variant"] == "fixed"
        self.refill_order: int = params["refill_order"]
        self.cache = UnmappedCache(kernel, fixed_release=self.fixed)
        kernel.register_free_hook(self.cache.pb_mask, self.free_pages_prepare)
        kernel.register_shrinker(self.cache)
        self.handed: dict[int, int] = {}  # head pfn -> order of blocks the cache handed out
        self.refills = 0
        self.stolen_pages = 0

    # -- the allocator proper (mm/unmapped-alloc.c) --------------------------------------
    def unmapped_pages_alloc(self, order: int) -> int:
        """unmapped_pages_alloc(): cache first, refill on a miss; returns a pfn or NO_PAGE.

        post_alloc_hook(page, order, GFP_KERNEL) clears nothing: the caller's __GFP_ZERO is
        lost (``posted``); in ``fixed`` every cached page is already zero.
        """
        pfn = self.cache.rmqueue_smallest(order)
        if pfn == NO_PAGE:
            pfn = self.refill(order)
        if pfn != NO_PAGE:
            self.handed[pfn] = order
        return pfn

    def refill(self, order: int) -> int:
        """The miss path of unmapped_pages_alloc(): alloc, unmap, cache, take again."""
        kernel = self.kernel
        block, cache_order = alloc_refill_block(kernel, self.refill_order, order)  # PMD first
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
        self.cache.free_one_page(block, cache_order, cache_refill=True)
        return self.cache.rmqueue_smallest(order)

    def free_pages_prepare(self, pfn: int, order: int) -> bool:
        """The free-path diversion: a generic free in a PB_unmapped block enters the cache."""
        if self.handed.pop(pfn, None) is None:
            self.stolen_pages += 1 << order
        if self.fixed:
            self.scrub(pfn, order)
        self.cache.free_one_page(pfn, order, cache_refill=False)  # unmapped_pages_free()
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
        return self.cache.scan_objects(nr_pages)

    def cache_pages(self) -> int:
        """Pages on the cache's free lists plus pages in this design's BPF packs."""
        return self.cache.nr_pages() + super().cache_pages()

    def metadata_bytes(self) -> int:
        """free_area[] and the extra pageblock bits."""
        return self.cache.metadata_bytes()

    def stats(self) -> dict[str, Any]:
        """The debugfs table plus refills and stolen pages."""
        return {**self.cache.stats(), "refills": self.refills,
                "stolen_pages": self.stolen_pages}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``gfp-unmapped``."""
    register(GfpUnmapped)
