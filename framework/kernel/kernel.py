"""The kernel model facade: one object per run that joins the subsystems.

The parts follow the kernel's own files: :class:`~framework.kernel.page_alloc.PageAlloc`
(mm/page_alloc.c), :class:`~framework.kernel.directmap.DirectMap` (the direct-map page
tables), :class:`~framework.kernel.set_memory.SetMemory` (arch/x86/mm/pat/set_memory.c),
:class:`~framework.kernel.tlbflush.TlbFlush` (arch/x86/mm/tlb.c),
:class:`~framework.kernel.vmalloc.Vmalloc` (mm/vmalloc.c),
:class:`~framework.kernel.text_poke.TextPoke` (arch/x86/kernel/alternative.c) and
:class:`~framework.kernel.shrinker.Shrinkers` (mm/vmscan.c). The facade exposes their entry
points as its own attributes (the parts' bound methods, so a call costs no extra layer).
Designs call these and extend the model only through the declared points:
:meth:`add_migratetype`, :meth:`register_pageblock_flag`, :meth:`register_free_hook`,
:meth:`register_shrinker`. Nothing here knows of requests, allocations or designs.
"""

from __future__ import annotations

import random

from framework.kernel.directmap import DirectMap
from framework.kernel.faults import Faults
from framework.kernel.ledger import Ledger
from framework.kernel.page_alloc import FreeHook, PageAlloc
from framework.kernel.set_memory import SetMemory
from framework.kernel.shrinker import Shrinker, Shrinkers
from framework.kernel.text_poke import TextPoke
from framework.kernel.tlbflush import TlbFlush
from framework.kernel.vmalloc import MODULES_VADDR, MODULES_VPAGE, Vmalloc
from framework.machine.spec import MachineSpec

__all__ = ["MODULES_VADDR", "MODULES_VPAGE", "FreeHook", "Kernel", "Shrinker"]


class Kernel:
    """The modelled v6.3 memory management of one machine.

    :ivar ledger: counters and cycles.
    :ivar zones: one :class:`~framework.kernel.buddy.Zone` per node.
    :ivar directmap: the direct-map page tables.
    :ivar modules: the module area's address space.
    :ivar allocated: head pfn -> order of every block the buddy handed out.
    :ivar dirty: pages written since last cleared (the memory's contents, which the
        ``not_zeroed`` check reads).
    :ivar violations: list of (rule, where, detail) the model recorded; the engine adds the
        design and the event index.
    """

    def __init__(self, spec: MachineSpec, costs: dict[str, float],
                 faults: Faults | None = None) -> None:
        self.spec = spec
        self.costs = costs
        self.cpus = spec.cpus
        self.ledger = ledger = Ledger()
        self.faults = faults = faults or Faults()
        self.violations: list[tuple[str, int, str]] = []
        self.dirty: set[int] = set()
        rng = random.Random(faults.seed)  # one stream for every injected fault, in call order
        vm_mapped: dict[int, int] = {}
        pa = self.page_alloc = PageAlloc(spec, costs, ledger, faults, rng, self.violation,
                                         self.dirty, vm_mapped)
        tlb = self.tlb = TlbFlush(spec.cpus, costs, ledger)
        dm = self.directmap = DirectMap(spec.mem_pages, spec.gbpages, ledger, costs,
                                        pa._alloc_pt_page, pa._free_pt_page, tlb.flush_tlb_all,
                                        boot_4k=spec.directmap == "4k", ram=pa.layout.ram)
        dm.on_wx = self._wx_alias
        if pa.start is not None:  # the start state's direct map (framework/kernel/initial.py)
            dm.presplit(pa.start.split_pmds(pa.layout))
        vm = self.vmalloc = Vmalloc(spec, costs, ledger, pa, tlb, dm, self.violation,
                                    vm_mapped)
        sm = self.set_memory = SetMemory(spec, costs, ledger, faults, rng, dm, tlb, vm,
                                         self.violation)
        vm.set_direct_map_invalid_noflush = sm.set_direct_map_invalid_noflush
        vm.set_direct_map_default_noflush = sm.set_direct_map_default_noflush
        vm.set_direct_map_pages = sm.set_direct_map_pages
        self.shrinker = Shrinkers()
        self._expose(pa, tlb, vm, sm, TextPoke(costs, ledger, tlb.flush_local, vm.find_area,
                                               self.dirty))

    def _expose(self, pa: PageAlloc, tlb: TlbFlush, vm: Vmalloc, sm: SetMemory,
                tp: TextPoke) -> None:
        """The parts' state and entry points as the facade's attributes."""
        self.zones = pa.zones
        self.allocated = pa.allocated
        self.pt_pfns = pa.pt_pfns
        self.free_hooks = pa.free_hooks
        self.reserved_pages = pa.reserved_pages
        self.modules = vm.modules
        self.areas = vm.areas
        self.shrinkers = self.shrinker.shrinkers
        # mm/page_alloc.c
        self.add_migratetype = pa.add_migratetype
        self.register_pageblock_flag = pa.register_pageblock_flag
        self.register_free_hook = pa.register_free_hook
        self.zone_of = pa.zone_of
        self.preferred_zone = pa.preferred_zone
        self.get_pageblock_flags = pa.get_pageblock_flags
        self.set_pageblock_flags = pa.set_pageblock_flags
        self.alloc_pages = pa.alloc_pages
        self.split_page = pa.split_page
        self.clear_pages = pa.clear_pages
        self.free_pages = pa.free_pages
        self.free_pages_ok = pa.free_pages_ok
        self.buddy_free_pages = pa.buddy_free_pages
        self.allocated_pages = pa.allocated_pages
        self.check_conservation = pa.check_conservation
        # arch/x86/mm/tlb.c
        self.flush_tlb_all = tlb.flush_tlb_all
        self.flush_tlb_kernel_range = tlb.flush_tlb_kernel_range
        self.cpa_flush = tlb.cpa_flush
        self.flush_local = tlb.flush_local
        # arch/x86/mm/pat/set_memory.c
        self.set_direct_map_invalid_noflush = sm.set_direct_map_invalid_noflush
        self.set_direct_map_default_noflush = sm.set_direct_map_default_noflush
        self.set_memory_np = sm.set_memory_np
        self.set_memory_p = sm.set_memory_p
        self.set_pages_pkey = sm.set_pages_pkey
        self.set_memory_ro = sm.set_memory_ro
        self.set_memory_rw = sm.set_memory_rw
        self.set_memory_x = sm.set_memory_x
        self.set_memory_nx = sm.set_memory_nx
        self.set_memory_rox = sm.set_memory_rox
        # mm/vmalloc.c, arch/x86/kernel/alternative.c, mm/vmscan.c
        self.find_area = vm.find_area
        self.vmalloc_node_range = vm.vmalloc_node_range
        self.vmalloc_from = vm.vmalloc_from
        self.module_alloc = vm.module_alloc
        self.vfree = vm.vfree
        self.vmap = vm.vmap
        self.vunmap = vm.vunmap
        self.vm_unmap_aliases = vm.vm_unmap_aliases
        self.text_poke = tp.text_poke
        self.register_shrinker = self.shrinker.register_shrinker
        self.shrink = self.shrinker.shrink

    @property
    def nr_allocated(self) -> int:
        """Pages the buddy handed out and that are not free (page tables included)."""
        return self.page_alloc.nr_allocated

    @property
    def current_node(self) -> int:
        """The node of the allocating CPU (``numa_node_id()``)."""
        return self.page_alloc.current_node

    @current_node.setter
    def current_node(self, node: int) -> None:
        self.page_alloc.current_node = node

    def release(self) -> None:
        """End of a run: empty every zone's free lists and maps (:meth:`Zone.release`)."""
        for zone in self.zones:
            zone.release()
        self.dirty.clear()

    def violation(self, rule: str, where: int, detail: str) -> None:
        """Record a broken promise; the run goes on."""
        self.violations.append((rule, where, detail))

    def _wx_alias(self, pfn: int) -> None:
        """DirectMap.on_wx: an executable page's direct-map alias became writable."""
        self.violation("wx_mapping", pfn, "X alias RW")
