"""The x86-64 direct map: PUD (1 GiB), PMD (2 MiB) and PTE (4 KiB) entries with protections.

Only what differs from the boot layout is stored: the set of split PUDs and PMDs and the
entries whose protection is not ``PAGE_KERNEL``. Memory is proportional to what was split or
changed, never to the machine's size.

Boot layout (arch/x86/mm/init.c ``init_mem_mapping`` / ``split_mem_range`` over the E820 RAM
ranges only, framework/kernel/e820.py): the ISA range and the rest of the first 2 MiB are mapped
with 4 KiB pages, the rest of the first GiB with 2 MiB pages, every GiB wholly RAM above it with
a 1 GiB page when ``gbpages`` (else 2 MiB pages), and a GiB only partly RAM (next to the MMIO
hole) with 2 MiB pages over its RAM. The hole has no entries at all. ``boot_4k`` maps all RAM
with 4 KiB pages (``machine.directmap=4k``: the debug setting of Xing Zhengjun's report,
docs/hardware.md "Published results"; its PTE tables are boot tables).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from framework.kernel.consts import (
    _PAGE_GLOBAL,
    _PAGE_PRESENT,
    _PAGE_RW,
    PAGE_KERNEL,
    PMD_ORDER,
    PTRS_PER_TABLE,
    PUD_ORDER,
)
from framework.kernel.ledger import Ledger, repeat_is_exact

_NOT_GLOBAL: Final = ~_PAGE_GLOBAL

PMD_PAGES: Final = 1 << PMD_ORDER
PUD_PAGES: Final = 1 << PUD_ORDER
ENOMEM: Final = -12  # -ENOMEM, include/uapi/asm-generic/errno-base.h
EINVAL: Final = -22  # -EINVAL

LEVEL_4K: Final = 1
LEVEL_2M: Final = 2
LEVEL_1G: Final = 3


def new_prot(old: int, set_mask: int, clr_mask: int) -> int:
    """Apply a CPA request to one entry's protection.

    set_memory.c: ``(old & ~clr) | set`` then ``pgprot_clear_protnone_bits()``, which drops
    ``_PAGE_GLOBAL`` from a non-present entry (and nothing puts it back on restore).
    """
    prot = (old & ~clr_mask) | set_mask
    if not prot & _PAGE_PRESENT:
        prot &= ~_PAGE_GLOBAL
    return prot


class DirectMap:
    """The direct-map page tables and their ``/proc/meminfo`` / ``/proc/vmstat`` counters.

    ``nr_4k``, ``nr_2m``, ``nr_1g`` count entries of each size (``direct_pages_count``);
    :meth:`meminfo` turns them into ``DirectMap4k/2M/1G`` in kB.
    """

    __slots__ = (
        "alloc_pt_page",
        "boot_pt_pages",
        "c_call",
        "c_pte",
        "c_split",
        "changes",
        "exec_pfns",
        "flush_tlb_all",
        "free_pt_page",
        "gbpages",
        "ledger",
        "mem_pages",
        "nr_1g",
        "nr_2m",
        "nr_4k",
        "on_wx",
        "pmd_prot",
        "pt_pages",
        "pte_prot",
        "pud_prot",
        "ram_pmds",
        "split_pmd",
        "split_pud",
    )

    def __init__(
        self, mem_pages: int, gbpages: bool, ledger: Ledger, costs: dict[str, float],
        alloc_pt_page: Callable[[], int], free_pt_page: Callable[[int], None],
        flush_tlb_all: Callable[[], None], boot_4k: bool = False,
        ram: tuple[tuple[int, int], ...] | None = None,
    ) -> None:
        ram = ram or ((0, mem_pages),)
        self.mem_pages = ram[-1][1]  # max_pfn: the span the direct map covers
        self.gbpages = gbpages = gbpages and not boot_4k
        self.ram_pmds = _ram_pmds_by_gib(ram)  # GiB -> its 2 MiB regions that are RAM
        full = {g for g, n in self.ram_pmds.items() if n == PTRS_PER_TABLE and g}
        self.split_pud: set[int] = set(self.ram_pmds) - full if gbpages else set(self.ram_pmds)
        self.split_pud.add(0)
        self.split_pmd: set[int] = {0}
        # (level, index, +1 split / -1 collapse) in order: the TLB cost model replays it to
        # know the map at each sample (framework/tlb/sampler.py)
        self.changes: list[tuple[int, int, int]] = []
        self.pud_prot: dict[int, int] = {}
        self.pmd_prot: dict[int, int] = {}
        # the protections that differ from PAGE_KERNEL, by level; pte_prot holds entries of
        # split PMDs only (split() adds them, _collapse_pmd() removes them before the PMD
        # leaves split_pmd), so an entry found there answers without the split_pmd lookup
        self.pte_prot: dict[int, int] = {}
        self.nr_4k = PTRS_PER_TABLE
        self.nr_1g = len(full) if gbpages else 0
        self.nr_2m = sum(self.ram_pmds[g] for g in self.split_pud) - 1
        self.boot_pt_pages = 1 + len(self.split_pud)  # one PTE table + the PMD tables
        if boot_4k:  # every RAM PMD is a boot PTE table
            self.split_pmd = {m for start, end in ram
                              for m in range(start >> PMD_ORDER, -(-end >> PMD_ORDER))}
            self.nr_4k, self.nr_2m = len(self.split_pmd) * PTRS_PER_TABLE, 0
            self.boot_pt_pages = len(self.split_pud) + len(self.split_pmd)
        self.pt_pages: dict[tuple[int, int], int] = {}
        self.ledger = ledger
        self.alloc_pt_page = alloc_pt_page
        self.free_pt_page = free_pt_page
        self.flush_tlb_all = flush_tlb_all
        # pfn -> how many module-area mappings of it are executable (two after a design maps
        # one page twice: making one of them NX must not hide the other from W^X checks)
        self.exec_pfns: dict[int, int] = {}
        self.on_wx: Callable[[int], None] | None = None
        self.c_pte = costs["cpa_pte"]
        self.c_call = costs["cpa_call"]
        self.c_split = costs["split_large_page"]

    def presplit(self, pmds: frozenset[int]) -> None:
        """The splits a start state already carries (boot and module loading on a machine
        that has been up): each 2 MiB region in ``pmds`` mapped with 4 KiB pages, its GiB
        with 2 MiB pages. Boot-time page tables: no buddy page, no flush, no vmstat count."""
        for m in sorted(pmds):
            g = m >> (PUD_ORDER - PMD_ORDER)
            if m in self.split_pmd or g not in self.ram_pmds:
                continue
            if self.gbpages and g not in self.split_pud:
                self.split_pud.add(g)
                self.nr_1g -= 1
                self.nr_2m += self.ram_pmds[g]
                self.boot_pt_pages += 1
            self.split_pmd.add(m)
            self.nr_2m -= 1
            self.nr_4k += PTRS_PER_TABLE
            self.boot_pt_pages += 1

    # -- lookups (set_memory.c lookup_address) -------------------------------------------
    def is_1g(self, pfn: int) -> bool:
        """Is ``pfn`` mapped by a PUD (1 GiB) entry?"""
        return self.gbpages and (pfn >> PUD_ORDER) not in self.split_pud

    def level(self, pfn: int) -> int:
        """LEVEL_1G, LEVEL_2M or LEVEL_4K: the size of the entry mapping ``pfn``."""
        if self.is_1g(pfn):
            return LEVEL_1G
        return LEVEL_4K if (pfn >> PMD_ORDER) in self.split_pmd else LEVEL_2M

    def prot(self, pfn: int) -> int:
        """The protection bits of the entry mapping ``pfn``."""
        if self.is_1g(pfn):
            return self.pud_prot.get(pfn >> PUD_ORDER, PAGE_KERNEL)
        m = pfn >> PMD_ORDER
        if m in self.split_pmd:
            return self.pte_prot.get(pfn, PAGE_KERNEL)
        return self.pmd_prot.get(m, PAGE_KERNEL)

    def is_present(self, pfn: int) -> bool:
        """Is ``pfn`` present (readable through the direct map)? (:meth:`prot`, inlined)"""
        found = self.pte_prot.get(pfn)  # an entry there: its PMD is split (see __init__)
        if found is not None:
            prot = found
        elif (pfn >> PMD_ORDER) in self.split_pmd:  # 4 KiB first: a split PMD is in a split PUD
            prot = PAGE_KERNEL
        elif self.gbpages and (pfn >> PUD_ORDER) not in self.split_pud:
            prot = self.pud_prot.get(pfn >> PUD_ORDER, PAGE_KERNEL)
        else:
            prot = self.pmd_prot.get(pfn >> PMD_ORDER, PAGE_KERNEL)
        return prot & _PAGE_PRESENT != 0

    def meminfo(self) -> dict[str, int]:
        """``DirectMap4k/2M/1G`` in kB as arch/x86/mm/pat/set_memory.c arch_report_meminfo."""
        return {
            "DirectMap4k": self.nr_4k * 4,
            "DirectMap2M": self.nr_2m * 2048,
            "DirectMap1G": self.nr_1g * 1048576,
        }

    # -- change_page_attr ----------------------------------------------------------------
    def cpa(self, pfn: int, numpages: int, set_mask: int, clr_mask: int) -> tuple[bool, int]:
        """change_page_attr_set_clr() on direct-map addresses: the call's own cost, then
        :meth:`change`. Same return value.

        One page already mapped by a PTE (every secretmem fault and free) takes
        :meth:`change_pte`'s steps inline: this is the model's hottest path.
        """
        led = self.ledger
        led.cpa_calls += 1
        led.cpa_cycles += self.c_call
        led.total_cycles += self.c_call
        if numpages != 1:
            return self.change(pfn, numpages, set_mask, clr_mask)
        pte_prot = self.pte_prot  # change_pte(), inlined
        key: Any = pfn  # one int object for the dict operations (docs/performance.md)
        found = pte_prot.get(key)  # an entry there: its PMD is split (see __init__)
        if found is not None:
            old = found
        elif (pfn >> PMD_ORDER) in self.split_pmd:
            old = PAGE_KERNEL
        else:
            return self.change(pfn, numpages, set_mask, clr_mask)
        new = (old & ~clr_mask) | set_mask
        if not new & _PAGE_PRESENT:
            new &= _NOT_GLOBAL
        if new == old:
            return False, 0
        if new == PAGE_KERNEL:
            del pte_prot[key]
        else:
            pte_prot[key] = new
        led.cpa_cycles += self.c_pte
        led.total_cycles += self.c_pte
        if self.exec_pfns and new & _PAGE_RW and new & _PAGE_PRESENT and pfn in self.exec_pfns:
            self._wx(pfn, 1)
        return True, 0

    def change(self, pfn: int, numpages: int, set_mask: int, clr_mask: int) -> tuple[bool, int]:
        """__change_page_attr_set_clr() over ``numpages`` direct-map pages from ``pfn``.

        Returns (something changed, so CPA_FLUSHTLB; error: 0 or ENOMEM when a split could
        not get its page-table page). As in the kernel, entries changed before a failure stay
        changed. No call cost: :meth:`cpa` charges it; alias processing reuses this.
        """
        end = pfn + numpages
        changed = 0
        while pfn < end:
            if self.gbpages and (pfn >> PUD_ORDER) not in self.split_pud:
                step = self._change_large(pfn, end, set_mask, clr_mask, PUD_ORDER)
            elif (pfn >> PMD_ORDER) not in self.split_pmd:
                step = self._change_large(pfn, end, set_mask, clr_mask, PMD_ORDER)
            else:
                step = self.change_pte(pfn, set_mask, clr_mask)
            if step == ENOMEM:
                return bool(changed), ENOMEM
            if step > 0:
                changed += 1
                pfn += step
            elif step < 0:
                pfn -= step  # same protection: skipped, nothing changed
        return bool(changed), 0

    def change_pte(self, pfn: int, set_mask: int, clr_mask: int) -> int:
        """__change_page_attr() on a 4 KiB entry. Returns 1 if changed, -1 if unchanged."""
        pte_prot = self.pte_prot
        old = pte_prot.get(pfn, PAGE_KERNEL)
        new = (old & ~clr_mask) | set_mask  # new_prot(), inlined on the hot path
        if not new & _PAGE_PRESENT:
            new &= _NOT_GLOBAL
        if new == old:
            return -1
        if new == PAGE_KERNEL:
            del pte_prot[pfn]
        else:
            pte_prot[pfn] = new
        led = self.ledger
        led.cpa_cycles += self.c_pte
        led.total_cycles += self.c_pte
        if self.exec_pfns and new & _PAGE_RW and new & _PAGE_PRESENT and pfn in self.exec_pfns:
            self._wx(pfn, 1)
        return 1

    # -- the same calls over many pages (vm_reset_perms, cpa_process_alias) --------------
    def cpa_pages(self, pfns: list[int], set_mask: int, clr_mask: int) -> None:
        """``cpa(pfn, 1, set_mask, clr_mask)`` of each page in turn (vm_reset_perms()' one
        ``set_direct_map_*_noflush()`` call per page), with the same state, counters, cycles
        and W^X reports after: :meth:`_pte_run` over the 4 KiB entries, :meth:`cpa` for
        the others."""
        i, n = 0, len(pfns)
        while i < n:
            j = self._pte_run(pfns, i, set_mask, clr_mask, True)
            if j == i:
                self.cpa(pfns[i], 1, set_mask, clr_mask)
                j += 1
            i = j

    def change_pages(self, pfns: list[int], set_mask: int, clr_mask: int) -> int:
        """``change(pfn, 1, set_mask, clr_mask)`` of each page in turn until one fails
        (cpa_process_alias() of a 4 KiB-mapped area: one alias page per primary page).
        Returns 0 or ENOMEM, as the first failing call would; pages after it are untouched."""
        i, n = 0, len(pfns)
        while i < n:
            j = self._pte_run(pfns, i, set_mask, clr_mask, False)
            if j == i:
                _, err = self.change(pfns[i], 1, set_mask, clr_mask)
                if err:
                    return err
                j += 1
            i = j
        return 0

    def _pte_run(self, pfns: list[int], i: int, set_mask: int, clr_mask: int,
                 call: bool) -> int:
        """change_pte() (and with ``call`` the cost of one CPA call each) for ``pfns[i:j]``,
        the pages from ``i`` on mapped by 4 KiB entries; returns ``j``. Nothing when the
        cycles of the run would not add up bit for bit as separate charges (``j == i``)."""
        c_call = self.c_call if call else 0.0
        c_pte = self.c_pte
        led = self.ledger
        most = len(pfns) - i
        if not (float(c_call).is_integer()
                and repeat_is_exact(led.cpa_cycles, c_call + c_pte, most)
                and repeat_is_exact(led.total_cycles, c_call + c_pte, most)):
            return i
        split_pmd = self.split_pmd
        pte_prot = self.pte_prot
        exec_pfns = self.exec_pfns
        j, n, changed = i, len(pfns), 0
        while j < n:
            pfn = pfns[j]
            if (pfn >> PMD_ORDER) not in split_pmd:
                break
            j += 1
            old = pte_prot.get(pfn, PAGE_KERNEL)  # change_pte(), inlined
            new = (old & ~clr_mask) | set_mask
            if not new & _PAGE_PRESENT:
                new &= _NOT_GLOBAL
            if new == old:
                continue
            if new == PAGE_KERNEL:
                del pte_prot[pfn]
            else:
                pte_prot[pfn] = new
            changed += 1
            if exec_pfns and new & _PAGE_RW and new & _PAGE_PRESENT and pfn in exec_pfns:
                self._wx(pfn, 1)
        calls = (j - i) if call else 0
        if calls:
            led.cpa_calls += calls
        cost = c_call * calls + c_pte * changed
        if cost:
            led.cpa_cycles += cost
            led.total_cycles += cost
        return j

    def _change_large(self, pfn: int, end: int, set_mask: int, clr_mask: int, order: int) -> int:
        """__should_split_large_page(): in place when fully covered, skip when same, else split.

        Returns the pages advanced (> 0 changed, < 0 unchanged), 0 after a split (the caller
        looks the address up again), or ENOMEM.
        """
        size = 1 << order
        index = pfn >> order
        table = self.pud_prot if order == PUD_ORDER else self.pmd_prot
        old = table.get(index, PAGE_KERNEL)
        new = new_prot(old, set_mask, clr_mask)
        span = min(size - (pfn & (size - 1)), end - pfn)
        if new == old:
            return -span
        if pfn & (size - 1) == 0 and span == size:  # whole large page: update it in place
            if new == PAGE_KERNEL:
                table.pop(index, None)
            else:
                table[index] = new
            self.ledger.charge("cpa", self.c_pte)
            if self.exec_pfns and new & _PAGE_RW and new & _PAGE_PRESENT:
                self._wx(pfn, size)
            return size
        return ENOMEM if not self.split(pfn, order) else 0

    def exec_gained(self, pfn: int) -> None:
        """A module-area mapping of ``pfn`` became executable."""
        self.exec_pfns[pfn] = self.exec_pfns.get(pfn, 0) + 1

    def exec_lost(self, pfn: int) -> None:
        """A module-area mapping of ``pfn`` stopped being executable (NX, or unmapped)."""
        left = self.exec_pfns.get(pfn, 0) - 1
        if left > 0:
            self.exec_pfns[pfn] = left
        else:
            self.exec_pfns.pop(pfn, None)

    def exec_lost_pages(self, pfns: list[int]) -> None:
        """:meth:`exec_lost` of each page in turn (an executable area unmapped)."""
        exec_pfns = self.exec_pfns
        for pfn in pfns:
            left = exec_pfns.get(pfn, 0) - 1
            if left > 0:
                exec_pfns[pfn] = left
            else:
                exec_pfns.pop(pfn, None)

    def _wx(self, pfn: int, numpages: int) -> None:
        """The W^X rule as CONFIG_DEBUG_WX's ptdump_check_wx() would report it, per page."""
        if self.on_wx is None:
            return
        for p in sorted(self.exec_pfns):
            if pfn <= p < pfn + numpages:
                self.on_wx(p)

    # -- split and collapse --------------------------------------------------------------
    def split(self, pfn: int, order: int) -> bool:
        """split_large_page() + __split_large_page(): 512 entries of the next level.

        Takes one page-table page from the buddy (``GFP_KERNEL``, may fail), moves the
        DirectMap counters as ``split_page_count()``, bumps the vmstat split counter and does
        the ``flush_tlb_all()`` the kernel does before the change proceeds.
        """
        pt = self.alloc_pt_page()
        if pt < 0:
            return False
        self.ledger.charge("split", self.c_split)
        if order == PUD_ORDER:
            g = pfn >> PUD_ORDER
            prot = self.pud_prot.pop(g, PAGE_KERNEL)
            if prot != PAGE_KERNEL:
                base = g << (PUD_ORDER - PMD_ORDER)
                for m in range(base, base + PTRS_PER_TABLE):
                    self.pmd_prot[m] = prot
            self.split_pud.add(g)
            self.pt_pages[(LEVEL_1G, g)] = pt
            self.nr_1g -= 1
            self.nr_2m += PTRS_PER_TABLE
            self.ledger.direct_map_level3_splits += 1
            self.changes.append((LEVEL_1G, g, 1))
        else:
            m = pfn >> PMD_ORDER
            prot = self.pmd_prot.pop(m, PAGE_KERNEL)
            if prot != PAGE_KERNEL:
                base = m << PMD_ORDER
                for p in range(base, base + PMD_PAGES):
                    self.pte_prot[p] = prot
            self.split_pmd.add(m)
            self.pt_pages[(LEVEL_2M, m)] = pt
            self.nr_2m -= 1
            self.nr_4k += PTRS_PER_TABLE
            self.ledger.direct_map_level2_splits += 1
            self.changes.append((LEVEL_2M, m, 1))
        self.flush_tlb_all()
        return True

    def collapse(self, pfns: list[int]) -> int:
        """cpa_collapse_large_pages() (2025, 41d88484c71c): re-merge uniform page tables.

        For every PMD that ``pfns`` touch: collapse when all 512 PTEs are present and equal
        (they are contiguous by construction); then every PUD whose 512 PMDs are large,
        present and equal. Only tables a split created are collapsed (boot tables keep their
        ``_PAGE_KERNEL_4K`` layout). Frees the page-table pages; one ``flush_tlb_all`` if
        anything collapsed. Returns the number of collapses.
        """
        done = 0
        for m in sorted({p >> PMD_ORDER for p in pfns}):
            done += self._collapse_pmd(m)
        if self.gbpages:
            for g in sorted({p >> PUD_ORDER for p in pfns}):
                done += self._collapse_pud(g)
        if done:
            self.flush_tlb_all()
        return done

    def _collapse_pmd(self, m: int) -> int:
        """collapse_pmd_page(): 512 equal present PTEs of a split PMD become one 2 MiB entry."""
        pt = self.pt_pages.get((LEVEL_2M, m))
        if pt is None:
            return 0
        base = m << PMD_ORDER
        first = self.pte_prot.get(base, PAGE_KERNEL)
        if not first & _PAGE_PRESENT:
            return 0
        for p in range(base + 1, base + PMD_PAGES):
            if self.pte_prot.get(p, PAGE_KERNEL) != first:
                return 0
        for p in range(base, base + PMD_PAGES):
            self.pte_prot.pop(p, None)
        if first != PAGE_KERNEL:
            self.pmd_prot[m] = first
        self.split_pmd.discard(m)
        del self.pt_pages[(LEVEL_2M, m)]
        self.free_pt_page(pt)
        self.nr_4k -= PTRS_PER_TABLE
        self.nr_2m += 1
        self.ledger.direct_map_level2_collapses += 1
        self.changes.append((LEVEL_2M, m, -1))
        return 1

    def _collapse_pud(self, g: int) -> int:
        """collapse_pud_page(): 512 equal present 2 MiB entries become one 1 GiB entry."""
        pt = self.pt_pages.get((LEVEL_1G, g))
        if pt is None:
            return 0
        base = g << (PUD_ORDER - PMD_ORDER)
        first = self.pmd_prot.get(base, PAGE_KERNEL)
        if not first & _PAGE_PRESENT:
            return 0
        for m in range(base, base + PTRS_PER_TABLE):
            if m in self.split_pmd or self.pmd_prot.get(m, PAGE_KERNEL) != first:
                return 0
        for m in range(base, base + PTRS_PER_TABLE):
            self.pmd_prot.pop(m, None)
        if first != PAGE_KERNEL:
            self.pud_prot[g] = first
        self.split_pud.discard(g)
        del self.pt_pages[(LEVEL_1G, g)]
        self.free_pt_page(pt)
        self.nr_2m -= PTRS_PER_TABLE
        self.nr_1g += 1
        self.ledger.direct_map_level3_collapses += 1
        self.changes.append((LEVEL_1G, g, -1))
        return 1

    # -- consistency ---------------------------------------------------------------------
    def recount(self) -> tuple[int, int, int]:
        """Count entries of each size from the tables themselves (for the ``counters`` check)."""
        nr_1g = 0 if not self.gbpages else sum(
            1 for g in self.ram_pmds if g not in self.split_pud)
        nr_4k = len(self.split_pmd) * PTRS_PER_TABLE
        nr_2m = sum(self.ram_pmds[g] for g in self.split_pud) - len(self.split_pmd)
        return nr_4k, nr_2m, nr_1g

    def pagetable_pages(self) -> int:
        """Page-table pages below the PUD level: boot ones plus one per split."""
        return self.boot_pt_pages + len(self.pt_pages)


def _ram_pmds_by_gib(ram: tuple[tuple[int, int], ...]) -> dict[int, int]:
    """GiB index -> how many of its 512 2 MiB regions are RAM (ranges are 2 MiB aligned)."""
    out: dict[int, int] = {}
    for start, end in ram:
        m0, m1 = start >> PMD_ORDER, -(-end >> PMD_ORDER)
        for g in range(m0 // PTRS_PER_TABLE, -(-m1 // PTRS_PER_TABLE)):
            lo, hi = max(m0, g * PTRS_PER_TABLE), min(m1, (g + 1) * PTRS_PER_TABLE)
            out[g] = out.get(g, 0) + hi - lo
    return out


MAP_1G: Final = 0
MAP_2M: Final = 1
MAP_4K: Final = 2
MAP_4K_NP: Final = 3
MAP_NP: Final = 4
MAP_STATES: Final[tuple[str, ...]] = ("1G", "2M", "4K", "4K, partly not present", "not present")


def region_map(dm: DirectMap) -> list[list[int]]:
    """How each 2 MiB region is mapped, run-length encoded as ``[[state, count], ...]``.

    States index :data:`MAP_STATES`. Unsplit GiBs are one run each, so the cost follows what
    was split, not the machine's size.
    """
    runs: list[list[int]] = []
    holes = {p >> PMD_ORDER for p, prot in dm.pte_prot.items() if not prot & _PAGE_PRESENT}

    def push(state: int, count: int) -> None:
        if runs and runs[-1][0] == state:
            runs[-1][1] += count
        else:
            runs.append([state, count])

    for g in range(-(-dm.mem_pages >> PUD_ORDER)):
        if g not in dm.ram_pmds:  # the MMIO hole: no entries
            push(MAP_NP, PTRS_PER_TABLE)
            continue
        if dm.gbpages and g not in dm.split_pud:
            present = dm.pud_prot.get(g, PAGE_KERNEL) & _PAGE_PRESENT
            push(MAP_1G if present else MAP_NP, PTRS_PER_TABLE)
            continue
        for m in range(g * PTRS_PER_TABLE, (g + 1) * PTRS_PER_TABLE):  # the PMDs of PUD g
            push(_pmd_state(dm, m, holes), 1)
    return runs


def _pmd_state(dm: DirectMap, m: int, holes: set[int]) -> int:
    """The state of PMD ``m``; ``holes``: the PMDs with a not-present 4 KiB entry."""
    if m not in dm.split_pmd:
        return MAP_2M if dm.pmd_prot.get(m, PAGE_KERNEL) & _PAGE_PRESENT else MAP_NP
    return MAP_4K_NP if m in holes else MAP_4K
