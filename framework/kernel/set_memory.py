"""arch/x86/mm/pat/set_memory.c: permission changes on the direct map and module area.

:class:`SetMemory` changes protections through the direct map's CPA walk
(:class:`~framework.kernel.directmap.DirectMap`), processes the direct-map alias of module and
vmalloc addresses (``cpa_process_alias``), and flushes as ``cpa_flush`` does.
"""

from __future__ import annotations

import random
from typing import Final

from framework.kernel.consts import (
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PKEY,
    _PAGE_PRESENT,
    _PAGE_RW,
    PAGE_SHIFT,
    PMD_ORDER,
)
from framework.kernel.directmap import (
    EINVAL,
    ENOMEM,
    LEVEL_1G,
    LEVEL_4K,
    PUD_PAGES,
    DirectMap,
    new_prot,
)
from framework.kernel.faults import Faults
from framework.kernel.ledger import Ledger
from framework.kernel.page_alloc import Violation
from framework.kernel.tlbflush import TlbFlush
from framework.kernel.vmalloc import BULK_PAGES, Vmalloc, VmStruct
from framework.machine.spec import MachineSpec

PMD_PAGES: Final = 1 << PMD_ORDER
_PRESENT_RW: Final = _PAGE_PRESENT | _PAGE_RW
_NOT_GLOBAL: Final = ~_PAGE_GLOBAL


class SetMemory:
    """``set_memory_*()`` and ``set_direct_map_*()`` of one machine."""

    def __init__(self, spec: MachineSpec, costs: dict[str, float], ledger: Ledger,
                 faults: Faults, rng: random.Random, directmap: DirectMap, tlb: TlbFlush,
                 vmalloc: Vmalloc, violation: Violation) -> None:
        self.spec = spec
        self.costs = costs
        self.ledger = ledger
        self.faults = faults
        self.rng = rng
        self.directmap = directmap
        self.violation = violation
        self.cpa_flush = tlb.cpa_flush
        self.find_area = vmalloc.find_area
        self.vm_unmap_aliases = vmalloc.vm_unmap_aliases
        self.c_cpa_call = costs["cpa_call"]
        self.cpa_faults = bool(faults.cpa_fail_rate)

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
        if self.cpa_faults and self._splits(pfn, nr, 0, _PRESENT_RW) and self._cpa_fails():
            return ENOMEM
        return self.directmap.cpa(pfn, nr, 0, _PRESENT_RW)[1]

    def set_direct_map_default_noflush(self, pfn: int, nr: int = 1) -> int:
        """set_direct_map_default_noflush(): set PRESENT|RW (GLOBAL is not restored).

        CPA's only -ENOMEM is a split's page-table allocation. Restoring entries that are
        already 4 KiB (the set_direct_map_invalid_noflush() before it split them, as in
        secretmem_free_folio() and vm_reset_perms()) needs no split, so an injected CPA
        fault does not hit it: v6.3 ignores this call's result there, and it cannot fail.
        """
        if self.cpa_faults and self._splits(pfn, nr, _PRESENT_RW, 0) and self._cpa_fails():
            return ENOMEM
        return self.directmap.cpa(pfn, nr, _PRESENT_RW, 0)[1]

    def set_direct_map_pages(self, pfns: list[int], set_mask: int, clr_mask: int) -> None:
        """One ``set_direct_map_invalid_noflush(pfn)`` (``clr_mask`` PRESENT|RW) or
        ``set_direct_map_default_noflush(pfn)`` (``set_mask`` PRESENT|RW) per page, in turn
        (vm_reset_perms()' set_area_direct_map()): DirectMap.cpa_pages, the calls' own loop,
        unless CPA faults are injected (each call then draws on its own)."""
        if self.cpa_faults:
            change = (self.set_direct_map_default_noflush if set_mask
                      else self.set_direct_map_invalid_noflush)
            for pfn in pfns:
                change(pfn)
            return
        self.directmap.cpa_pages(pfns, set_mask, clr_mask)

    def _splits(self, pfn: int, nr: int, set_mask: int, clr_mask: int) -> bool:
        """Would a change of ``[pfn, pfn + nr)`` split a 2 MiB or 1 GiB entry (one the range
        does not cover whole: try_preserve_large_page() keeps a fully covered one)?

        ``--set faults.cpa_fail_rate`` hits only such calls: CPA's only -ENOMEM is the page
        table of a split (split_large_page()'s alloc_pages()); a change of 4 KiB entries
        cannot fail, nor can one that leaves a large entry's protection as it is
        (__should_split_large_page(): "If there are no changes, return", no split).
        """
        dm = self.directmap
        p, end = pfn, pfn + nr
        while p < end:
            lvl = dm.level(p)
            if lvl == LEVEL_4K:
                p += 1
                continue
            size = PUD_PAGES if lvl == LEVEL_1G else PMD_PAGES
            head = p & ~(size - 1)
            old = dm.prot(p)
            if (head < pfn or head + size > end) and new_prot(old, set_mask, clr_mask) != old:
                return True
            p = head + size
        return False

    def _alias_splits(self, area: VmStruct, first: int, nr: int, set_mask: int,
                      clr_mask: int) -> bool:
        """:meth:`_splits` over the direct-map alias, stepping as :meth:`_process_alias`."""
        i, end = first, first + nr
        while i < end:
            whole = area.page_order and i % PMD_PAGES == 0 and end - i >= PMD_PAGES
            step = PMD_PAGES if whole else 1
            if self._splits(area.pages[i], step, set_mask, clr_mask):
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
        if self.cpa_faults and self._splits(pfn, nr, set_mask, clr_mask) and self._cpa_fails():
            return ENOMEM
        changed, err = self.directmap.cpa(pfn, nr, set_mask, clr_mask)
        if changed:
            self.cpa_flush(nr, False)
        return err

    def set_pages_pkey(self, pfn: int, nr: int, on: bool) -> int:
        """PKS page tables (Rick Edgecombe, 2021): set or clear the PKS key on the alias."""
        return self._set_memory_direct(pfn, nr, _PAGE_PKEY if on else 0, 0 if on else _PAGE_PKEY)

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
            return EINVAL
        self.ledger.cpa_calls += 1
        self.ledger.charge("cpa", self.costs["cpa_call"])
        self.vm_unmap_aliases()
        first = vpage - area.addr
        checkalias = (set_mask | clr_mask) != _PAGE_NX
        # The module area's own entries are 4 KiB: only the alias can need a split, the one
        # place this can fail with -ENOMEM in v6.3 (see _splits)
        if (self.cpa_faults and checkalias
                and self._alias_splits(area, first, nr, set_mask & ~_PAGE_NX, clr_mask & ~_PAGE_NX)
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
            new = (old & ~clr_mask) | set_mask  # new_prot(), inlined: a loop over the range
            if not new & _PAGE_PRESENT:
                new &= _NOT_GLOBAL
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
        if not area.page_order and nr >= BULK_PAGES:  # one alias page per primary page
            return dm.change_pages(area.pages[first:first + nr], set_mask, clr_mask)
        i, end = first, first + nr
        while i < end:
            whole = area.page_order and i % PMD_PAGES == 0 and end - i >= PMD_PAGES
            step = PMD_PAGES if whole else 1
            _, err = dm.change(area.pages[i], step, set_mask, clr_mask)
            if err:
                return err
            i += step
        return 0
