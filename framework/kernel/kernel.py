"""The kernel model facade: page allocator entry points, CPA, flushes, vmalloc, text_poke.

One :class:`Kernel` per run. Plugins call these methods (never reach into the structures
below them) and extend the model only through the declared points: :meth:`add_migratetype`,
:meth:`register_pageblock_flag`, :meth:`register_free_hook`, :meth:`register_shrinker`.
Each method names the v6.3 function it follows.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from typing import Protocol

from framework.kernel.buddy import NO_PAGE, Zone
from framework.kernel.consts import (
    _PAGE_NX,
    _PAGE_PKEY,
    _PAGE_PRESENT,
    _PAGE_RW,
    FALLBACKS,
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    MODULES_LEN_PAGES,
    NR_PAGEBLOCK_BITS,
    PAGE_KERNEL,
    PAGE_SHIFT,
    PAGEBLOCK_ORDER,
    PMD_ORDER,
    TLB_SINGLE_PAGE_FLUSH_CEILING,
)
from framework.kernel.directmap import (
    ENOMEM,
    LEVEL_1G,
    LEVEL_4K,
    PUD_PAGES,
    DirectMap,
    new_prot,
)
from framework.kernel.faults import Faults
from framework.kernel.ledger import Ledger
from framework.kernel.vmalloc import (
    VM_ALLOW_HUGE_VMAP,
    VM_FLUSH_RESET_PERMS,
    VM_NO_GUARD,
    VmapSpace,
    VmStruct,
)
from framework.machine.spec import MachineSpec

MODULES_VADDR = 0xFFFFFFFFC0000000  # __START_KERNEL_map + KERNEL_IMAGE_SIZE (1 GiB, KASLR)
MODULES_VPAGE = MODULES_VADDR >> PAGE_SHIFT
PMD_PAGES = 1 << PMD_ORDER
_PRESENT_RW = _PAGE_PRESENT | _PAGE_RW


class Shrinker(Protocol):
    """include/linux/shrinker.h: what a registered shrinker provides."""

    def count_objects(self) -> int:
        """Pages the shrinker could free now."""

    def scan_objects(self, nr_to_scan: int) -> int:
        """Free up to ``nr_to_scan`` pages; return how many were freed."""


FreeHook = Callable[[int, int], bool]


class Kernel:
    """The modelled v6.3 memory management of one machine.

    :ivar ledger: counters and cycles.
    :ivar zones: one :class:`Zone` per node.
    :ivar directmap: the direct-map page tables.
    :ivar modules: the module area's address space.
    :ivar allocated: head pfn -> order of every block the buddy handed out.
    :ivar violations: list of (rule, where, detail) the model recorded; the engine adds the
        plugin and the event index.
    """

    def __init__(self, spec: MachineSpec, costs: dict[str, float],
                 faults: Faults | None = None) -> None:
        self.spec = spec
        self.costs = costs
        self.cpus = spec.cpus
        self.ledger = Ledger()
        self.faults = faults or Faults()
        self.alloc_faults = bool(self.faults.alloc_fail_orders or self.faults.alloc_fail_rate)
        self.violations: list[tuple[str, int, str]] = []
        self.allocated: dict[int, int] = {}
        self.nr_allocated = 0
        self.pt_pfns: set[int] = set()
        self.dirty: set[int] = set()
        self.current_node = 0
        self.fallbacks: dict[int, tuple[int, ...]] = dict(FALLBACKS)
        self.nr_migratetypes = 3
        self.pageblock_bits = NR_PAGEBLOCK_BITS
        self.pageblock_flag_names: dict[str, int] = {}
        self.free_hooks: list[tuple[int, FreeHook]] = []
        self.free_hook_mask = 0
        self.shrinkers: list[Shrinker] = []
        self.reserved_pages = (spec.reserved_mib << 20) >> PAGE_SHIFT
        self.zones = self._build_zones()
        self.directmap = DirectMap(
            spec.mem_pages, spec.gbpages, self.ledger, costs,
            self._alloc_pt_page, self._free_pt_page, self.flush_tlb_all,
        )
        self.directmap.on_wx = lambda pfn: self.violation("wx_mapping", pfn, "X alias RW")
        self.modules = VmapSpace(MODULES_VPAGE, MODULES_LEN_PAGES)
        self.areas: dict[int, VmStruct] = {}
        # pfn -> how many live vmalloc areas map it (two only after a design's bug: freeing one
        # area must not hide the other from the bad_free check)
        self.vm_mapped: dict[int, int] = {}
        self.area_starts: list[int] = []
        self.lazy: list[tuple[int, int]] = []
        self.lazy_nr = 0
        self.lazy_max = (32 << 20 >> PAGE_SHIFT) * self.cpus.bit_length()  # lazy_max_pages()
        self.rng = random.Random(self.faults.seed)
        # Hot-path costs, looked up once: the cost table is fixed for a run.
        self.c_zero = costs["zero_page"]
        self.c_cpa_call = costs["cpa_call"]
        self.c_invlpg = costs["invlpg"]
        self.c_shootdown = costs["shootdown_base"] + costs["shootdown_per_cpu"] * (self.cpus - 1)
        self.cpa_faults = bool(self.faults.cpa_fail_rate)
        self.single_node = spec.nodes == 1
        self.other_cpus = self.cpus - 1

    def _build_zones(self) -> list[Zone]:
        per_node = self.spec.mem_pages // self.spec.nodes
        zones = []
        for node in range(self.spec.nodes):
            start = node * per_node
            first_free = start + (self.reserved_pages if node == 0 else 0)
            zones.append(Zone(node, start, start + per_node, first_free, self.ledger,
                              self.costs, self.nr_migratetypes, self.fallbacks))
        return zones

    # -- extension points ----------------------------------------------------------------
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

    def register_shrinker(self, shrinker: Shrinker) -> None:
        """register_shrinker()."""
        self.shrinkers.append(shrinker)

    def zone_of(self, pfn: int) -> Zone:
        """page_zone()."""
        if self.spec.nodes == 1:
            return self.zones[0]
        return self.zones[pfn * self.spec.nodes // self.spec.mem_pages]

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

    def violation(self, rule: str, where: int, detail: str) -> None:
        """Record a broken promise; the run goes on."""
        self.violations.append((rule, where, detail))

    # -- page allocator ------------------------------------------------------------------
    def alloc_pages(self, order: int, mt: int = MIGRATE_UNMOVABLE, node: int | None = None,
                    zero: bool = False) -> int:
        """__alloc_pages() -> get_page_from_freelist(): returns the head pfn or -1 (NULL).

        Tries the preferred node with ALLOC_NOFRAGMENT (v6.3 ``alloc_flags_nofragment``: no
        stealing below pageblock_order), then without it, then the other nodes in order.
        ``zero`` is ``__GFP_ZERO``: the pages are cleared in ``post_alloc_hook``.
        """
        if order >= MAX_ORDER or (self.alloc_faults and self.faults.fail_alloc(order, self.rng)):
            return NO_PAGE
        first = self.current_node if node is None or node < 0 else node
        pfn = self.zones[first].rmqueue(order, mt, True)
        if pfn == NO_PAGE:
            nodes = self.spec.nodes
            for i in range(nodes):
                pfn = self.zones[(first + i) % nodes].rmqueue(order, mt, False)
                if pfn != NO_PAGE:
                    break
            else:
                return NO_PAGE
        self.allocated[pfn] = order
        self.nr_allocated += 1 << order
        if mt == MIGRATE_MOVABLE:
            self._count_movable(pfn, 1 << order)
        if zero:
            self.clear_pages(pfn, 1 << order)
        return pfn

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
        if alloc.get(pfn) == order:  # _take_range()'s whole-block case, inlined
            del alloc[pfn]
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
        zone = self.zones[0] if self.single_node else self.zone_of(pfn)  # _free_to_buddy()
        zone.free_one_page(pfn, order, zone.pageblock_mt.get(pfn >> PAGEBLOCK_ORDER,
                                                             MIGRATE_MOVABLE), False)

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
        zone = self.zones[0] if self.single_node else self.zone_of(pfn)
        mt = zone.pageblock_mt.get(pfn >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)  # inlined getter
        zone.free_one_page(pfn, order, mt, to_tail)

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

    # -- TLB flushes (arch/x86/mm/tlb.c) -------------------------------------------------
    def flush_tlb_all(self) -> None:
        """flush_tlb_all(): full flush on every online CPU, IPIs to the others."""
        led = self.ledger
        led.tlb_flush_all += 1
        led.charge("flush_local", self.costs["flush_all_local"])
        self._shootdown()

    def _shootdown(self) -> None:
        """IPIs to every other online CPU and their modelled cost (native_flush_tlb_multi)."""
        others = self.cpus - 1
        if others:
            led = self.ledger
            led.tlb_ipis += others
            led.shootdown_cycles += self.c_shootdown
            led.total_cycles += self.c_shootdown

    def flush_tlb_kernel_range(self, nr_pages: int) -> None:
        """flush_tlb_kernel_range(): per-page INVLPG on every CPU up to the ceiling (33)."""
        if nr_pages > TLB_SINGLE_PAGE_FLUSH_CEILING:
            self.flush_tlb_all()
            return
        led = self.ledger
        led.tlb_flush_range += 1
        local = self.c_invlpg * nr_pages
        led.flush_local_cycles += local  # Ledger.charge(), inlined on the hot path
        led.total_cycles += local
        others = self.other_cpus
        if others:  # _shootdown(), inlined
            led.tlb_ipis += others
            led.shootdown_cycles += self.c_shootdown
            led.total_cycles += self.c_shootdown

    def cpa_flush(self, nr_pages: int, force_flush_all: bool) -> None:
        """set_memory.c cpa_flush(): full flush if forced or over the ceiling, else per page."""
        if force_flush_all or nr_pages > TLB_SINGLE_PAGE_FLUSH_CEILING:
            self.flush_tlb_all()
        else:
            self.flush_tlb_kernel_range(nr_pages)

    def flush_local(self, nr_pages: int) -> None:
        """A flush on this CPU only (text_poke's poking mm)."""
        self.ledger.tlb_flush_local += 1
        self.ledger.charge("flush_local", self.costs["invlpg"] * nr_pages)

    # -- CPA on the direct map -----------------------------------------------------------
    def _cpa_fails(self) -> bool:
        """``--set faults.cpa_fail_rate``: this CPA call fails with -ENOMEM before it changes
        anything (it is still counted and charged)."""
        if not self.faults.fail_cpa(self.rng):
            return False
        led = self.ledger
        led.cpa_calls += 1
        led.cpa_cycles += self.c_cpa_call
        led.total_cycles += self.c_cpa_call
        return True

    def set_direct_map_invalid_noflush(self, pfn: int, nr: int = 1) -> int:
        """set_direct_map_invalid_noflush(): clear PRESENT|RW, no flush but a split's own.

        ``nr > 1`` is ``set_direct_map_valid_noflush(page, nr, false)`` (later kernels).
        Returns 0 or -ENOMEM.
        """
        if self.cpa_faults and self._splits(pfn, nr) and self._cpa_fails():
            return ENOMEM
        return self.directmap.cpa(pfn, nr, 0, _PRESENT_RW)[1]

    def set_direct_map_default_noflush(self, pfn: int, nr: int = 1) -> int:
        """set_direct_map_default_noflush(): set PRESENT|RW (GLOBAL is not restored).

        CPA's only -ENOMEM is a split's page-table allocation. Restoring entries that are
        already 4 KiB (the set_direct_map_invalid_noflush() before it split them, as in
        secretmem_free_folio() and vm_reset_perms()) needs no split, so an injected CPA
        fault does not hit it: v6.3 ignores this call's result there, and it cannot fail.
        """
        if self.cpa_faults and self._splits(pfn, nr) and self._cpa_fails():
            return ENOMEM
        return self.directmap.cpa(pfn, nr, _PRESENT_RW, 0)[1]

    def _splits(self, pfn: int, nr: int) -> bool:
        """Would a change of ``[pfn, pfn + nr)`` split a 2 MiB or 1 GiB entry (one the range
        does not cover whole: try_preserve_large_page() keeps a fully covered one)?

        ``--set faults.cpa_fail_rate`` hits only such calls: CPA's only -ENOMEM is the page
        table of a split (split_large_page()'s alloc_pages()); a change of 4 KiB entries
        cannot fail.
        """
        level = self.directmap.level
        p, end = pfn, pfn + nr
        while p < end:
            lvl = level(p)
            if lvl == LEVEL_4K:
                p += 1
                continue
            size = PUD_PAGES if lvl == LEVEL_1G else PMD_PAGES
            head = p & ~(size - 1)
            if head < pfn or head + size > end:
                return True
            p = head + size
        return False

    def _alias_splits(self, area: VmStruct, first: int, nr: int) -> bool:
        """:meth:`_splits` over the direct-map alias, stepping as :meth:`_process_alias`."""
        i, end = first, first + nr
        while i < end:
            whole = area.page_order and i % PMD_PAGES == 0 and end - i >= PMD_PAGES
            step = PMD_PAGES if whole else 1
            if self._splits(area.pages[i], step):
                return True
            i += step
        return False

    def set_memory_np(self, pfn: int, nr: int) -> int:
        """set_memory_np() on a direct-map range: change, vm_unmap_aliases, cpa_flush."""
        return self._set_memory_direct(pfn, nr, 0, _PAGE_PRESENT)

    def set_memory_p(self, pfn: int, nr: int) -> int:
        """set_memory_p() on a direct-map range."""
        return self._set_memory_direct(pfn, nr, _PAGE_PRESENT, 0)

    def _set_memory_direct(self, pfn: int, nr: int, set_mask: int, clr_mask: int) -> int:
        """change_page_attr_set_clr() on direct-map addresses (no alias to process)."""
        self.vm_unmap_aliases()
        if self.cpa_faults and self._splits(pfn, nr) and self._cpa_fails():
            return ENOMEM
        changed, err = self.directmap.cpa(pfn, nr, set_mask, clr_mask)
        if changed:
            self.cpa_flush(nr, False)
        return err

    def set_pages_pkey(self, pfn: int, nr: int, on: bool) -> int:
        """PKS page tables (Rick Edgecombe, 2021): set or clear the PKS key on the alias."""
        return self._set_memory_direct(pfn, nr, _PAGE_PKEY if on else 0, 0 if on else _PAGE_PKEY)

    # -- vmalloc and the module area (mm/vmalloc.c) --------------------------------------
    def find_area(self, vpage: int) -> VmStruct | None:
        """find_vm_area() for any page inside an area."""
        i = bisect.bisect_right(self.area_starts, vpage) - 1
        if i < 0:
            return None
        area = self.areas[self.area_starts[i]]
        return area if vpage < area.addr + area.nr_pages else None

    def vmalloc_node_range(self, nr_pages: int, vm_flags: int, node: int | None = None,
                           align_pages: int = 1) -> VmStruct | None:
        """__vmalloc_node_range() in the module area with PAGE_KERNEL (RW, NX).

        With ``VM_ALLOW_HUGE_VMAP`` and at least 2 MiB per node, size and alignment round up
        to 2 MiB and the backing is order-9 pages (split_page'd as v6.3 does); if any order-9
        allocation fails, everything is undone and retried with 4 KiB pages.
        """
        per_node = nr_pages if node is not None else nr_pages // self.spec.nodes
        if vm_flags & VM_ALLOW_HUGE_VMAP and per_node >= PMD_PAGES:
            area = self._vmalloc_try(-(-nr_pages // PMD_PAGES) * PMD_PAGES, vm_flags, node,
                                     max(align_pages, PMD_PAGES), PMD_ORDER)
            if area is not None:
                return area
        return self._vmalloc_try(nr_pages, vm_flags, node, align_pages, 0)

    def _vmalloc_try(self, nr_pages: int, vm_flags: int, node: int | None, align: int,
                     order: int) -> VmStruct | None:
        """__vmalloc_node_range() at one page order, backed by vm_area_alloc_pages()."""
        def from_buddy(order: int) -> int:
            return self.alloc_pages(order, MIGRATE_UNMOVABLE, node)

        return self.vmalloc_from(nr_pages, vm_flags, from_buddy, align, order)

    def vmalloc_from(self, nr_pages: int, vm_flags: int, alloc_page: Callable[[int], int],
                     align: int = 1, order: int = 0) -> VmStruct | None:
        """__vmalloc_node_range() whose backing pages come from ``alloc_page(order)``.

        The buddy for plain vmalloc; a design's own source for module memory it serves (v3's
        ``__GFP_UNMAPPED`` module_alloc, which skips the bulk allocator and takes one
        ``alloc_pages(gfp, 0)`` per page). Order-9 pages are ``split_page``'d. On a failure
        the pages taken so far go back through the generic free path and None is returned.
        """
        span = nr_pages + (0 if vm_flags & VM_NO_GUARD else 1)
        addr = self.modules.alloc(span, align)
        self.ledger.charge("vmap", self.costs["vmap_area"])
        if addr < 0:
            return None
        area = VmStruct(addr, nr_pages, order, vm_flags, span)
        step = 1 << order
        for _ in range(0, nr_pages, step):  # vm_area_alloc_pages()
            pfn = alloc_page(order)
            if pfn == NO_PAGE:
                self._free_area_pages(area)
                self.modules.free(addr, span)
                return None
            if order:
                self.split_page(pfn, order)
            area.pages.extend(range(pfn, pfn + step))
        area.prot = [PAGE_KERNEL] * nr_pages
        self.ledger.charge("vmap", self.costs["vmap_page"] * (nr_pages >> order))
        self._insert_area(area)
        return area

    def _insert_area(self, area: VmStruct) -> None:
        """insert_vmap_area() + setup_vmalloc_vm(): the area is live and maps its pages."""
        self.areas[area.addr] = area
        bisect.insort(self.area_starts, area.addr)
        mapped = self.vm_mapped
        for pfn in area.pages:
            mapped[pfn] = mapped.get(pfn, 0) + 1

    def _free_area_pages(self, area: VmStruct) -> None:
        """vfree()'s page loop: __free_pages() of every backing page."""
        for pfn in area.pages:
            self.free_pages(pfn, 0)
        area.pages = []

    def module_alloc(self, size: int, vm_flags: int = 0) -> VmStruct | None:
        """arch/x86/kernel/module.c module_alloc(): 4 KiB-backed, VM_FLUSH_RESET_PERMS."""
        nr = -(-size >> PAGE_SHIFT)
        return self.vmalloc_node_range(nr, VM_FLUSH_RESET_PERMS | vm_flags)

    def vfree(self, area: VmStruct) -> None:
        """vfree() -> __vunmap(): remove_vm_area, vm_reset_perms if flagged, free the pages."""
        if self.areas.get(area.addr) is not area:
            self.violation("bad_free", area.addr << PAGE_SHIFT, "vfree of an unknown area")
            return
        del self.areas[area.addr]
        self.area_starts.remove(area.addr)
        mapped = self.vm_mapped
        for pfn in area.pages:
            left = mapped.pop(pfn, 0) - 1
            if left > 0:
                mapped[pfn] = left
        self.ledger.charge("vmap", self.costs["vmap_area"]
                           + self.costs["vmap_page"] * (area.nr_pages >> area.page_order))
        self.modules.free(area.addr, area.span)
        self.lazy.append((area.addr, area.addr + area.span))  # free_vmap_area_noflush()
        self.lazy_nr += area.span
        # (strict=False: a design's vmalloc_from() order may back more pages than it maps)
        for pfn, prot in zip(area.pages, area.prot, strict=False):
            if not prot & _PAGE_NX:  # its executable mappings go with the area
                self.directmap.exec_lost(pfn)
        if area.flags & VM_FLUSH_RESET_PERMS:
            self._vm_reset_perms(area)
        elif self.lazy_nr > self.lazy_max:
            self.vm_unmap_aliases()
        self._free_area_pages(area)

    def _vm_reset_perms(self, area: VmStruct) -> None:
        """vm_reset_perms(): every page invalid, one flush over it all, every page default."""
        for pfn in area.pages:  # set_area_direct_map(area, set_direct_map_invalid_noflush)
            self.set_direct_map_invalid_noflush(pfn)
        if area.pages:  # _vm_unmap_aliases(start, end, flush_dmap=1): purge + one flush
            self.lazy.clear()
            self.lazy_nr = 0
            self.flush_tlb_all()  # the span covers direct map and vmalloc space: > ceiling
        else:
            self.vm_unmap_aliases()
        for pfn in area.pages:
            self.set_direct_map_default_noflush(pfn)

    def vm_unmap_aliases(self) -> None:
        """vm_unmap_aliases(): purge lazily freed areas with one range flush, if any."""
        if not self.lazy:
            return
        lo = min(s for s, _ in self.lazy)
        hi = max(e for _, e in self.lazy)
        self.lazy.clear()
        self.lazy_nr = 0
        self.flush_tlb_kernel_range(hi - lo)

    # -- set_memory_* on vmalloc / module addresses (arch/x86/mm/pat/set_memory.c) -------
    def set_memory_ro(self, vpage: int, nr: int) -> int:
        """set_memory_ro(): clear RW; the direct-map alias follows (force_flush_all)."""
        return self._set_memory_vm(vpage, nr, 0, _PAGE_RW)

    def set_memory_rw(self, vpage: int, nr: int) -> int:
        """set_memory_rw(): set RW on the area and its alias."""
        return self._set_memory_vm(vpage, nr, _PAGE_RW, 0)

    def set_memory_x(self, vpage: int, nr: int) -> int:
        """set_memory_x(): clear NX; no alias check (the direct map is always NX)."""
        return self._set_memory_vm(vpage, nr, 0, _PAGE_NX)

    def set_memory_nx(self, vpage: int, nr: int) -> int:
        """set_memory_nx(): set NX; no alias check."""
        return self._set_memory_vm(vpage, nr, _PAGE_NX, 0)

    def set_memory_rox(self, vpage: int, nr: int) -> int:
        """set_memory_rox(): clear RW and NX in one call; the alias loses RW."""
        err = self._set_memory_vm(vpage, nr, 0, _PAGE_RW | _PAGE_NX)
        if self.spec.collapse and not err:
            area = self.find_area(vpage)
            if area is not None:
                first = vpage - area.addr
                self.directmap.collapse(area.pages[first:first + nr])
        return err

    def _set_memory_vm(self, vpage: int, nr: int, set_mask: int, clr_mask: int) -> int:
        """change_page_attr_set_clr() on a module/vmalloc range, with cpa_process_alias()."""
        if nr == 0:  # frob_*() of an empty section: only vm_unmap_aliases() runs
            self.ledger.cpa_calls += 1
            self.ledger.charge("cpa", self.costs["cpa_call"])
            self.vm_unmap_aliases()
            return 0
        area = self.find_area(vpage)
        if area is None or vpage + nr > area.addr + area.nr_pages:
            self.violation("bad_free", vpage << PAGE_SHIFT, "set_memory on unmapped range")
            return -22
        self.ledger.cpa_calls += 1
        self.ledger.charge("cpa", self.costs["cpa_call"])
        self.vm_unmap_aliases()
        first = vpage - area.addr
        checkalias = (set_mask | clr_mask) != _PAGE_NX
        # The module area's own entries are 4 KiB: only the alias can need a split, the one
        # place this can fail with -ENOMEM in v6.3 (see _splits)
        if (self.cpa_faults and checkalias and self._alias_splits(area, first, nr)
                and self.faults.fail_cpa(self.rng)):
            return ENOMEM
        changed, made_exec = self._change_area(area, first, nr, set_mask, clr_mask)
        err = 0
        if checkalias:
            err = self._process_alias(area, first, nr, set_mask & ~_PAGE_NX,
                                      clr_mask & ~_PAGE_NX)
        for pfn in made_exec:  # judged once the whole call, alias included, is done
            if self.directmap.prot(pfn) & (_PAGE_RW | _PAGE_PRESENT) == (
                    _PAGE_RW | _PAGE_PRESENT):
                self.violation("wx_mapping", pfn, "executable page with a writable alias")
        if changed:
            self.cpa_flush(nr, checkalias)
        return err

    def _change_area(self, area: VmStruct, first: int, nr: int, set_mask: int,
                     clr_mask: int) -> tuple[bool, list[int]]:
        """The area's own entries; returns (changed, pfns that just became executable)."""
        prots = area.prot
        changed = False
        made_exec: list[int] = []
        dm = self.directmap
        for i in range(first, first + nr):
            old = prots[i]
            new = new_prot(old, set_mask, clr_mask)
            if new == old:
                continue
            prots[i] = new
            changed = True
            pfn = area.pages[i]
            if new & _PAGE_NX:
                if not old & _PAGE_NX:
                    dm.exec_lost(pfn)
                continue
            if old & _PAGE_NX:
                dm.exec_gained(pfn)
            if new & _PAGE_RW:
                self.violation("wx_mapping", (area.addr + i) << PAGE_SHIFT, "module area RW+X")
            elif old & _PAGE_NX:
                made_exec.append(pfn)
        if changed:
            self.ledger.charge("cpa", self.costs["cpa_pte"] * nr)
        return changed, made_exec

    def _process_alias(self, area: VmStruct, first: int, nr: int, set_mask: int,
                       clr_mask: int) -> int:
        """cpa_process_alias(): the same change on the direct map, per primary step."""
        dm = self.directmap
        i, end = first, first + nr
        while i < end:
            whole = area.page_order and i % PMD_PAGES == 0 and end - i >= PMD_PAGES
            step = PMD_PAGES if whole else 1
            _, err = dm.change(area.pages[i], step, set_mask, clr_mask)
            if err:
                return err
            i += step
        return 0

    # -- text_poke (arch/x86/kernel/alternative.c) ---------------------------------------
    def text_poke(self, vpage: int, offset: int, length: int) -> None:
        """text_poke_copy(): chunks of up to two pages through the poking mm, local flush each."""
        done = 0
        pos = offset
        while done < length:
            size = min(2 * 4096 - (pos & 4095), length - done)
            pages = ((pos & 4095) + size + 4095) >> 12
            self.ledger.text_poke_calls += 1
            self.ledger.charge("text_poke", self.costs["text_poke"]
                               + self.costs["text_poke_page"] * pages)
            self.flush_local(pages)
            done += size
            pos += size
        area = self.find_area(vpage + (offset >> PAGE_SHIFT))
        if area is not None:
            a = vpage + (offset >> PAGE_SHIFT) - area.addr
            b = vpage + ((offset + max(length, 1) - 1) >> PAGE_SHIFT) - area.addr
            self.dirty.update(area.pages[a:b + 1])

    # -- shrinkers (mm/vmscan.c shrink_slab) ---------------------------------------------
    def shrink(self, nr_pages: int) -> int:
        """shrink_slab(): ask each shrinker in turn until ``nr_pages`` are freed."""
        freed = 0
        for shrinker in self.shrinkers:
            if freed >= nr_pages:
                break
            if shrinker.count_objects():
                freed += shrinker.scan_objects(nr_pages - freed)
        return freed

    # -- accounting ----------------------------------------------------------------------
    def allocated_pages(self) -> int:
        """Pages handed out by the buddy and not freed (page tables included), recounted."""
        return sum(1 << order for order in self.allocated.values())

    def check_conservation(self) -> int:
        """free + allocated + reserved == RAM. Returns the discrepancy (0 when it holds)."""
        total = self.buddy_free_pages() + self.allocated_pages() + self.reserved_pages
        return total - self.spec.mem_pages
