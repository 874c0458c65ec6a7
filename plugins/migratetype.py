"""``migratetype``: the 2022 ``MIGRATE_UNMAPPED`` RFC (a migratetype inside the buddy).

Models Mike Rapoport's RFC 20220127085608.306306-1-rppt@kernel.org (patches -2 page allocator,
-3 secretmem, -4 x86 ``module_alloc``) on the v6.3 kernel model: ``MIGRATE_UNMAPPED`` is one
more migratetype with its own free lists in every zone (``Kernel.add_migratetype``, with the
``steal_suitable_fallback()`` jump to ``single_page``); ``set_pageblock_unmapped()`` in
``get_page_from_freelist()`` splits the pageblock's direct-map entry and moves its free pages
(``move_freepages_block()``); free pages stay mapped at 4 KiB, ``post_alloc_hook()`` unmaps an
allocation after zeroing and flushes, ``free_pages_prepare()`` restores each freed page
without a flush. Blocks never convert back. Sites: secretmem, and everything ``module_alloc()``
serves (module sections, trampolines, BPF packs), one page at a time.

No parameters (no reviewer-found bug, so no ``variant``). Stats per node: pageblock conversions
(and failures), pages unmapped and remapped, pages freed while still unmapped
(``freed_still_unmapped``).

docs/designs.md, "migratetype", has the sources, the review, and every modelled detail and
simplification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.buddy import NO_PAGE, Zone
from framework.kernel.consts import (
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    PAGE_SHIFT,
    PAGEBLOCK_ORDER,
)
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VM_FLUSH_RESET_PERMS, VmStruct
from framework.request import Site
from framework.statusquo import MODULE_SITES, StatusQuo

# The RFC adds no pageblock bit (MIGRATE_UNMAPPED fits the 3 migratetype bits). The model keeps
# migratetypes apart from pageblock_flags, so this marker (the third migratetype bit, which
# keeps NR_PAGEBLOCK_BITS at 4) only routes frees of converted blocks to the hook.
PB_MARKER_BIT = 2
LIST_HEAD_BYTES = 16
NR_PCP_ORDERS = 5  # include/linux/mmzone.h NR_PCP_LISTS / MIGRATE_PCPTYPES (orders 0-3 + THP)


@attrs.define(slots=True)
class NodeStats:
    """What the RFC did on one node."""

    conversions: int = 0
    conversion_failures: int = 0
    pages_unmapped: int = 0
    remap_calls: int = 0
    pages_remapped: int = 0
    freed_still_unmapped: int = 0


class UnmappedMigratetype:
    """mm/page_alloc.c with RFC patch 1/3: ``MIGRATE_UNMAPPED`` and ``__GFP_UNMAPPED``.

    :ivar mt: the ``MIGRATE_UNMAPPED`` number in the kernel model.
    :ivar nodes: one :class:`NodeStats` per node.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.mt = -1  # set below; can_steal_fallback() is not called before
        self.mt = kernel.add_migratetype(
            fallbacks=(MIGRATE_UNMOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
            taken_last_by=(MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE),
            steal_policy=self.can_steal_fallback,
            single_page=True,  # steal_suitable_fallback(): is_migrate_unmapped -> single_page
        )
        self.marker = kernel.register_pageblock_flag("migrate_unmapped", PB_MARKER_BIT)
        kernel.register_free_hook(self.marker, self.free_pages_prepare)
        self.nodes = [NodeStats() for _ in range(kernel.spec.nodes)]

    # -- fallback ------------------------------------------------------------------------
    def can_steal_fallback(self, order: int, start_mt: int) -> bool:
        """mm/page_alloc.c can_steal_fallback() for every type, UNMAPPED included.

        The RFC answers true for UNMAPPED, then ``steal_suitable_fallback()`` goes to
        ``single_page`` for it before anything uses the answer (``single_page=True`` above),
        so the answer for UNMAPPED changes nothing; it is false here, as it was before the
        model had that switch.
        """
        if start_mt == self.mt:
            return False
        if order >= PAGEBLOCK_ORDER:
            return True
        return (order >= PAGEBLOCK_ORDER // 2 or start_mt == MIGRATE_RECLAIMABLE
                or start_mt == MIGRATE_UNMOVABLE)

    # -- allocation ----------------------------------------------------------------------
    def alloc_pages(self, order: int, node: int | None, zero: bool) -> int:
        """__alloc_pages(gfp | __GFP_UNMAPPED): the head pfn, unmapped, or NO_PAGE (NULL)."""
        kernel = self.kernel
        pfn = kernel.alloc_pages(order, self.mt, node)  # rmqueue(); zeroing comes below
        if pfn == NO_PAGE:
            return NO_PAGE
        zone = kernel.zone_of(pfn)
        if self.set_pageblock_unmapped(zone, pfn, order):  # get_page_from_freelist()
            return NO_PAGE
        if zero:
            kernel.clear_pages(pfn, 1 << order)  # prep_new_page(): __GFP_ZERO
        self.unmap_pages(zone, pfn, 1 << order)  # end of post_alloc_hook()
        return pfn

    def set_pageblock_unmapped(self, zone: Zone, pfn: int, order: int) -> int:
        """mm/page_alloc.c set_pageblock_unmapped(): PTE-map the block and claim it.

        Returns 0, or the CPA error after giving the page back (the allocation is NULL).
        """
        if zone.get_pageblock_migratetype(pfn) == self.mt:
            return 0
        kernel = self.kernel
        stats = self.nodes[zone.node]
        err = kernel.set_direct_map_invalid_noflush(pfn)  # splits the PMD (and PUD), may fail
        if err:
            stats.conversion_failures += 1
            kernel.free_pages_ok(pfn, order)  # move_to_free_list(page, ..., migratetype)
            return err
        kernel.set_direct_map_default_noflush(pfn)
        zone.set_pageblock_migratetype(pfn, self.mt)
        kernel.set_pageblock_flags(pfn, self.marker, True)
        zone.move_freepages_block(pfn, self.mt)
        stats.conversions += 1
        return 0

    def unmap_pages(self, zone: Zone, pfn: int, nr: int) -> None:
        """migrate_unmapped_unmap_pages(): invalid per page, one range flush."""
        if zone.get_pageblock_migratetype(pfn) != self.mt:  # is_migrate_unmapped_page()
            return
        kernel = self.kernel
        for p in range(pfn, pfn + nr):
            kernel.set_direct_map_invalid_noflush(p)  # cannot split: the block is PTE-mapped
        kernel.flush_tlb_kernel_range(nr)
        self.nodes[zone.node].pages_unmapped += nr

    # -- free ----------------------------------------------------------------------------
    def free_pages_prepare(self, pfn: int, order: int) -> bool:
        """migrate_unmapped_map_pages() in free_pages_prepare(): default per page, no flush.

        A free hook that never takes the page: it goes on to the buddy afterwards.
        """
        kernel = self.kernel
        zone = kernel.zone_of(pfn)
        stats = self.nodes[zone.node]
        nr = 1 << order
        present = kernel.directmap.is_present
        if zone.get_pageblock_migratetype(pfn) != self.mt:  # the block was stolen back
            stats.freed_still_unmapped += sum(1 for p in range(pfn, pfn + nr)
                                              if not present(p))
            return False
        for p in range(pfn, pfn + nr):
            if not present(p):
                stats.pages_remapped += 1
            kernel.set_direct_map_default_noflush(p)
        stats.remap_calls += nr
        return False

    # -- vmalloc with __GFP_UNMAPPED (RFC patch 3/3) --------------------------------------
    def module_alloc(self, size: int, vm_flags: int = 0) -> VmStruct | None:
        """arch/x86/kernel/module.c module_alloc() with ``gfp_mask | __GFP_UNMAPPED``."""
        nr = -(-size >> PAGE_SHIFT)
        return self.vmalloc_node_range(nr, VM_FLUSH_RESET_PERMS | vm_flags)

    def vmalloc_node_range(self, nr_pages: int, vm_flags: int) -> VmStruct | None:
        """__vmalloc_node_range() in the module area with 4 KiB pages of MIGRATE_UNMAPPED.

        mm/vmalloc.c vm_area_alloc_pages(): the bulk allocator fails ``__GFP_UNMAPPED``, so
        every page is its own ``alloc_pages()`` (unmapped and flushed one by one).
        """
        return self.kernel.vmalloc_from(nr_pages, vm_flags, self._vmalloc_page)

    def _vmalloc_page(self, order: int) -> int:
        """alloc_pages_node(NUMA_NO_NODE, GFP_KERNEL | __GFP_UNMAPPED, order)."""
        return self.alloc_pages(order, None, zero=False)

    # -- reporting -----------------------------------------------------------------------
    def node_stats(self) -> list[dict[str, int]]:
        """Per node: UNMAPPED pageblocks, free pages on UNMAPPED lists, and the counters."""
        mt = self.mt
        out = []
        for node, stats in enumerate(self.nodes):
            zones = [z for z in self.kernel.zones if z.node == node]
            blocks = sum(1 for z in zones for t in z.pageblock_mt.values() if t == mt)
            free = sum(len(z.free_area[o][mt]) << o for z in zones for o in range(MAX_ORDER))
            out.append({"node": node, "unmapped_pageblocks": blocks,
                        "free_unmapped_pages": free, **attrs.asdict(stats)})
        return out


class Migratetype(StatusQuo):
    """The RFC's buddy-side grouping; secretmem and every module_alloc-backed site use it.

    Patch 2/3 changes :meth:`secretmem_fault`, patch 3/3 :meth:`module_alloc`; every other
    path is the status quo's.
    """

    name = "migratetype"
    summary = ("2022 RFC: MIGRATE_UNMAPPED pageblocks, PTE-mapped once per block, "
               "unmapped per allocation (secretmem, module_alloc)")
    source = "20220127085608.306306-1-rppt@kernel.org (RFC 0/3, patches -2, -3, -4)"
    covers = frozenset({Site.SECRETMEM, Site.BPF_PROG, *MODULE_SITES})

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.unmapped = UnmappedMigratetype(kernel)

    def secretmem_fault(self, node: int | None) -> int:
        """secretmem_fault() with ``alloc_page(gfp | __GFP_ZERO | __GFP_UNMAPPED)``.

        The page arrives unmapped and flushed; the fault's own 1-page flush stays (the patch
        removed only ``set_direct_map_invalid_noflush()``).
        """
        pfn = self.unmapped.alloc_pages(0, node, zero=True)
        if pfn == NO_PAGE:
            return NO_PAGE
        self.kernel.flush_tlb_kernel_range(1)
        return pfn

    def module_alloc(self, size: int, vm_flags: int = 0) -> VmStruct | None:
        """module_alloc() with ``__GFP_UNMAPPED`` (RFC patch 3/3)."""
        return self.unmapped.module_alloc(size, vm_flags)

    def metadata_bytes(self) -> int:
        """The extra list heads: one per order in free_area, NR_PCP_ORDERS per CPU (pcp)."""
        per_zone = MAX_ORDER + NR_PCP_ORDERS * self.kernel.cpus
        return LIST_HEAD_BYTES * per_zone * len(self.kernel.zones)

    def stats(self) -> dict[str, Any]:
        """Per node: UNMAPPED pageblocks, conversions (and failures), pages unmapped/remapped."""
        return {"nodes": self.unmapped.node_stats()}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``migratetype``."""
    register(Migratetype)
