"""Hand-derived scenarios on the v6.3 kernel model, counters derived on paper.

Common setting (``small_spec``): 4 GiB, one node, 4 CPUs (so every global flush sends 3
IPIs), gbpages, 64 MiB reserved. At boot (``init_mem_mapping``): the first 2 MiB are mapped
with 4 KiB PTEs (512 entries, one PTE table), the rest of GiB 0 with 511 PMDs, GiBs 1-3 with
three PUDs; DirectMap4k = 2048 kB, DirectMap2M = 511 * 2048 = 1046528 kB, DirectMap1G =
3 * 1048576 = 3145728 kB; two boot page-table pages (the PMD table of GiB 0, the PTE table).
The buddy holds pfns 16384.. (64 MiB = 16384 pages) in order-10 blocks, all MIGRATE_MOVABLE,
the lowest first on the list.
"""

from __future__ import annotations

from framework.kernel.consts import (
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_RW,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    PAGE_KERNEL,
)
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VM_FLUSH_RESET_PERMS
from framework.machine.costs import resolve_costs
from framework.request import Request
from framework.statusquo import StatusQuo
from tests.conftest import small_spec
from tests.helpers import counters

SECRET = Request("secretmem", 4096, "UNMAPPED", True, None, "GENERIC")
FIRST = 16384  # first free pfn after the 64 MiB reservation


def test_boot_layout(kernel: Kernel) -> None:
    """Boot counters as in the module docstring; nothing split, nothing flushed."""
    assert counters(kernel) == {
        "DirectMap4k": 2048, "DirectMap2M": 1046528, "DirectMap1G": 3145728,
        "l2": 0, "l3": 0, "pt": 2, "flush_all": 0, "flush_range": 0, "ipis": 0, "cpa": 0,
    }
    assert kernel.buddy_free_pages() == (4 << 18) - FIRST
    assert kernel.check_conservation() == 0


def test_one_secretmem_page(kernel: Kernel) -> None:
    """secretmem_fault on a fresh machine.

    alloc_page(GFP_HIGHUSER | __GFP_ZERO) is UNMOVABLE; its lists are empty, so
    __rmqueue_fallback (ALLOC_NOFRAGMENT: min_order 9) takes the largest MOVABLE block, the
    order-10 block at 16384, and steals it whole (order >= pageblock_order: both pageblocks
    become UNMOVABLE); expand() hands out pfn 16384. set_direct_map_invalid_noflush(16384):
    pfn 16384 is in GiB 0, inside the 2 MiB entry 32 (16384 >> 9), which the 1-page change
    does not cover: split_large_page takes a page-table page (the next UNMOVABLE order-0 page,
    16385, left by expand), moves 1 PMD to 512 PTEs (DirectMap2M -2048 kB, DirectMap4k +2048 kB),
    level-2 split 1, flush_tlb_all 1 (3 IPIs); then the PTE becomes non-present. The fault's
    flush_tlb_kernel_range(1 page) is a per-page flush on every CPU (3 more IPIs).
    One CPA call. Freeing (secretmem_free_folio: default, zero; then the page goes back)
    adds one CPA call and no flush; the direct map stays split.
    """
    sq = StatusQuo(kernel)
    alloc = sq.alloc(SECRET)
    assert alloc is not None and alloc.blocks == ((FIRST, 0),)
    assert counters(kernel) == {
        "DirectMap4k": 4096, "DirectMap2M": 1044480, "DirectMap1G": 3145728,
        "l2": 1, "l3": 0, "pt": 3, "flush_all": 1, "flush_range": 1, "ipis": 6, "cpa": 1,
    }
    assert kernel.pt_pfns == {FIRST + 1}
    assert not kernel.directmap.is_present(FIRST)
    assert kernel.directmap.is_present(FIRST + 1)
    assert kernel.zone_of(FIRST).get_pageblock_migratetype(FIRST) == MIGRATE_UNMOVABLE
    sq.free_generic(alloc)
    after = counters(kernel)
    assert after["cpa"] == 2 and after["flush_all"] == 1 and after["flush_range"] == 1
    assert after["DirectMap4k"] == 4096
    # restored without _PAGE_GLOBAL, as set_direct_map_default_noflush leaves it
    assert kernel.directmap.prot(FIRST) == _PAGE_PRESENT | _PAGE_RW | _PAGE_NX
    assert kernel.check_conservation() == 0
    assert kernel.nr_allocated == 1  # only the page-table page


def test_set_memory_np_exact_2m_is_in_place(kernel: Kernel) -> None:
    """A 2 MiB-aligned set_memory_np over exactly 2 MiB in GiB 0 (2 MiB-mapped).

    __should_split_large_page: the request covers the whole PMD from its start, so the PMD
    is changed in place: no split, no page-table page. cpa_flush: 512 pages > 33, so one
    flush_tlb_all (3 IPIs). The next 2 MiB stay present.
    """
    pfn = 40 << 9
    assert kernel.set_memory_np(pfn, 512) == 0
    assert counters(kernel) == {
        "DirectMap4k": 2048, "DirectMap2M": 1046528, "DirectMap1G": 3145728,
        "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0, "ipis": 3, "cpa": 1,
    }
    assert not kernel.directmap.is_present(pfn) and not kernel.directmap.is_present(pfn + 511)
    assert kernel.directmap.is_present(pfn + 512)


def test_set_memory_np_2m_inside_a_1g_page(kernel: Kernel) -> None:
    """The same 2 MiB, but in GiB 1 (a 1 GiB entry).

    The PUD is not fully covered: split it (1 PUD -> 512 PMDs: DirectMap1G -1048576 kB,
    DirectMap2M +1048576 kB, level-3 split 1, one page-table page, flush_tlb_all), then the
    2 MiB PMD is fully covered and changes in place; cpa_flush adds a second flush_tlb_all.
    """
    pfn = (1 << 18) + (2 << 9)
    assert kernel.set_memory_np(pfn, 512) == 0
    assert counters(kernel) == {
        "DirectMap4k": 2048, "DirectMap2M": 1046528 + 1048576, "DirectMap1G": 2097152,
        "l2": 0, "l3": 1, "pt": 3, "flush_all": 2, "flush_range": 0, "ipis": 6, "cpa": 1,
    }


def test_module_text_load_and_unload(kernel: Kernel) -> None:
    """One module text section of 3 pages + 100 bytes (4 pages), loaded and unloaded.

    module_alloc: four order-0 UNMOVABLE pages: 16384 (stealing the order-10 block at 16384),
    then 16385, 16386 (from the order-1 buddy) and 16387: all in 2 MiB entry 32.
    Seal (loader copy, then module_enable_ro + module_enable_x):
    - set_memory_ro(4 pages): the alias of 16384 needs a split of PMD 32 (page-table page
      16388, taken from the order-2 block at 16388; flush_tlb_all #1), then 4 PTEs lose RW;
      the alias sets force_flush_all: flush_tlb_all #2.
    - set_memory_x(4 pages): NX only, no alias; 4 <= 33 pages: one per-page flush.
    After load: 2 CPA calls, 1 level-2 split, 2 full flushes, 1 range flush, 9 IPIs.
    vfree (VM_FLUSH_RESET_PERMS): 4 set_direct_map_invalid_noflush (no split: PTEs), one
    flush_tlb_all over the direct-map + vmalloc span, 4 set_direct_map_default_noflush.
    After unload: 10 CPA calls, 3 full flushes, 1 range flush, 12 IPIs, still 1 split.
    """
    sq = StatusQuo(kernel)
    req = Request("module_text", 3 * 4096 + 100, "ROX", False, None, "OWNER")
    alloc = sq.alloc(req)
    assert alloc is not None
    assert [p for p, _ in alloc.blocks] == [FIRST, FIRST + 1, FIRST + 2, FIRST + 3]
    sq.write(alloc, 0)
    assert counters(kernel) == {
        "DirectMap4k": 4096, "DirectMap2M": 1044480, "DirectMap1G": 3145728,
        "l2": 1, "l3": 0, "pt": 3, "flush_all": 2, "flush_range": 1, "ipis": 9, "cpa": 2,
    }
    assert kernel.pt_pfns == {FIRST + 4}
    for p in range(FIRST, FIRST + 4):
        assert kernel.directmap.prot(p) == _PAGE_PRESENT | _PAGE_NX | _PAGE_GLOBAL
    sq.free(alloc)
    after = counters(kernel)
    assert (after["cpa"], after["flush_all"], after["flush_range"], after["ipis"], after["l2"]
            ) == (10, 3, 1, 12, 1)
    assert kernel.violations == []
    assert kernel.nr_allocated == 1


def test_module_data_nx_is_a_noop_call(kernel: Kernel) -> None:
    """set_memory_nx on data already NX: one CPA call, nothing changes, no flush, no split."""
    sq = StatusQuo(kernel)
    alloc = sq.alloc(Request("module_data", 4096, "RW", False, None, "OWNER"))
    assert alloc is not None
    sq.write(alloc, 0)
    c = counters(kernel)
    assert (c["cpa"], c["flush_all"], c["flush_range"], c["l2"]) == (1, 0, 0, 0)


def test_vfree_flush_reset_perms_resplits_what_is_large(kernel: Kernel) -> None:
    """vfree of a VM_FLUSH_RESET_PERMS area whose alias was never changed.

    One page (16384) in the 2 MiB entry 32, still large: vm_reset_perms sets it invalid,
    which splits PMD 32 (page table 16385; flush_tlb_all #1), then one flush_tlb_all (#2) for
    the span, then default. 2 CPA calls, 1 level-2 split, 6 IPIs.
    """
    area = kernel.vmalloc_node_range(1, VM_FLUSH_RESET_PERMS)
    assert area is not None and area.pages == [FIRST]
    kernel.vfree(area)
    c = counters(kernel)
    assert (c["cpa"], c["l2"], c["flush_all"], c["flush_range"], c["ipis"]) == (2, 1, 2, 0, 6)
    assert kernel.directmap.is_present(FIRST)


def test_flush_ceiling_either_side(kernel: Kernel) -> None:
    """tlb_single_page_flush_ceiling = 33: 33 pages is a range flush, 34 a full flush."""
    kernel.flush_tlb_kernel_range(33)
    assert (kernel.ledger.tlb_flush_range, kernel.ledger.tlb_flush_all) == (1, 0)
    kernel.flush_tlb_kernel_range(34)
    assert (kernel.ledger.tlb_flush_range, kernel.ledger.tlb_flush_all) == (1, 1)
    assert kernel.ledger.tlb_ipis == 6


def test_set_memory_x_ceiling_through_cpa_flush() -> None:
    """set_memory_x (no alias) over 33 pages flushes per page; over 34 pages, fully."""
    for nr, expect_range, expect_all in ((33, 1, 0), (34, 0, 1)):
        k = Kernel(small_spec(), resolve_costs({}))
        area = k.vmalloc_node_range(nr, VM_FLUSH_RESET_PERMS)
        assert area is not None
        k.set_memory_x(area.addr, nr)
        assert (k.ledger.tlb_flush_range, k.ledger.tlb_flush_all) == (expect_range, expect_all)


def test_single_cpu_sends_no_ipis() -> None:
    """With one CPU a global flush is local: no IPI, no shootdown cycles."""
    k = Kernel(small_spec(cpus=1), resolve_costs({}))
    k.flush_tlb_all()
    assert k.ledger.tlb_ipis == 0 and k.ledger.cycles["shootdown"] == 0


def test_nogbpages_boot_and_split() -> None:
    """Without gbpages every GiB above the first is 512 PMDs: DirectMap1G is 0 and a 1-page
    change splits only a PMD (level 2), never a PUD."""
    k = Kernel(small_spec(gbpages=False), resolve_costs({}))
    assert k.directmap.meminfo() == {"DirectMap4k": 2048,
                                     "DirectMap2M": (4 * 512 - 1) * 2048, "DirectMap1G": 0}
    k.set_direct_map_invalid_noflush((2 << 18) + 7)
    assert (k.ledger.direct_map_level2_splits, k.ledger.direct_map_level3_splits) == (1, 0)


def test_collapse_switch_remerges_after_rox() -> None:
    """With the 2025 collapse switch, set_memory_rox over a 2 MiB huge-vmalloc area whose
    alias PMD was split before re-merges it: the alias was split by a 1-page change
    (level-2 split), then rox changes all 512 PTEs to the same RO prot; the PMD collapses
    (level-2 collapse, page table freed, one more flush_tlb_all)."""
    from framework.kernel.vmalloc import VM_ALLOW_HUGE_VMAP

    k = Kernel(small_spec(collapse=True), resolve_costs({}))
    area = k.vmalloc_node_range(512, VM_FLUSH_RESET_PERMS | VM_ALLOW_HUGE_VMAP)
    assert area is not None and area.page_order == 9
    head = area.pages[0]
    assert head % 512 == 0
    k.directmap.change(head + 3, 1, 0, _PAGE_RW)  # split the alias PMD first
    assert k.ledger.direct_map_level2_splits == 1
    k.directmap.change(head + 3, 1, _PAGE_RW, 0)
    k.set_memory_rox(area.addr, 512)
    assert k.ledger.direct_map_level2_collapses == 1
    assert k.directmap.level(head) == 2
    assert k.directmap.prot(head) == PAGE_KERNEL & ~_PAGE_RW


def test_kprobe_insn_slots_share_a_page(kernel: Kernel) -> None:
    """kernel/kprobes.c: 16 B slots, 4096 / 16 = 256 per page. 257 slots need two pages
    (alloc_insn_page: module_alloc(PAGE_SIZE) + set_memory_rox each: 2 CPA calls). Page 1 is
    16384 (its rox splits PMD 32: page table 16385), page 2 is 16386 (PTE already split).
    Freeing every slot frees page 2 (vfree: invalid + flush_tlb_all + default: 2 CPA calls)
    and keeps page 1, the cache's last (collect_one_slot): 1 page held."""
    sq = StatusQuo(kernel)
    req = Request("trampoline", 16, "ROX", False, None, "OWNER")
    slots = [sq.alloc(req) for _ in range(257)]
    assert all(s is not None and s.blocks == () for s in slots)
    assert slots[255].vaddr - slots[0].vaddr == 255 * 16
    assert [p.area.pages for p in sq.insn_pages] == [[FIRST], [FIRST + 2]]
    assert kernel.ledger.cpa_calls == 2 and sq.cache_pages() == 2
    for slot in slots:
        sq.free(slot)  # type: ignore[arg-type]
    assert kernel.ledger.cpa_calls == 4 and sq.cache_pages() == 1
    assert kernel.violations == []


def test_order10_to_tail_while_untouched_blocks_remain() -> None:
    """__free_pages_ok(FPI_TO_TAIL) of an order-10 block while boot blocks are still
    untouched lists it after them; counted once: free + allocated + reserved == RAM."""
    k = Kernel(small_spec(mem_gib=1), resolve_costs({}))
    free_before = k.buddy_free_pages()
    pfn = k.alloc_pages(10, MIGRATE_MOVABLE)
    assert pfn == FIRST
    k.free_pages_ok(pfn, 10, to_tail=True)
    assert k.check_conservation() == 0
    assert k.buddy_free_pages() == free_before
    assert k.preferred_zone().nr_free_at(10) == free_before >> 10


def test_added_migratetype_single_page_steal_claims_no_pageblock() -> None:
    """An added type with ``single_page=True`` falling back on a fresh machine.

    Its lists are empty, so __rmqueue_fallback (ALLOC_NOFRAGMENT: min_order 9) finds the
    largest MOVABLE block, the order-10 block at 16384 (64 MiB reserved), as in
    ``test_one_secretmem_page``. Without the switch, an order >= pageblock_order steal claims
    both pageblocks (32 and 33) for the new type; with it, only the free block moves to the
    new type's lists and both pageblocks stay MOVABLE. Either way expand() hands out 16384
    and leaves one free block of each order 0..9 on the new type's lists (1023 pages).
    """
    for single_page, claimed in ((False, {32: 3, 33: 3}), (True, {})):
        k = Kernel(small_spec(), resolve_costs({}))
        mt = k.add_migratetype(fallbacks=(MIGRATE_MOVABLE,), single_page=single_page)
        assert mt == 3
        assert k.alloc_pages(0, mt) == FIRST
        zone = k.preferred_zone()
        assert {b: t for b, t in zone.pageblock_mt.items() if b in (32, 33)} == claimed
        assert [len(zone.free_area[o][mt]) for o in range(10)] == [1] * 10
        assert zone.free_area[9][mt] and next(iter(zone.free_area[9][mt])) == FIRST + 512


def test_two_mappings_of_one_page_are_both_tracked(kernel: Kernel) -> None:
    """A buggy design maps pfn 16384 (the first UNMOVABLE page) in two module areas A and B
    (``vmalloc_from`` with a source that returns the same page twice), makes both ROX, then
    B NX again. A still maps the page executable, so making its direct-map alias writable
    (``set_direct_map_default_noflush``: PRESENT | RW) is a W^X violation: one
    ``wx_mapping`` at 16384. ``vfree(A)`` gives the page back to the buddy while B still
    maps it: one ``bad_free``. After that nothing maps it executable, and the same alias
    change records nothing more."""
    pfn = kernel.alloc_pages(0, MIGRATE_UNMOVABLE)
    assert pfn == FIRST
    a = kernel.vmalloc_from(1, 0, lambda order: pfn)
    b = kernel.vmalloc_from(1, 0, lambda order: pfn)
    assert a is not None and b is not None
    assert kernel.set_memory_rox(a.addr, 1) == 0 and kernel.set_memory_rox(b.addr, 1) == 0
    assert kernel.violations == []
    kernel.set_memory_nx(b.addr, 1)
    kernel.set_direct_map_default_noflush(pfn)
    assert [(rule, where) for rule, where, _ in kernel.violations] == [("wx_mapping", pfn)]
    kernel.vfree(a)  # no VM_FLUSH_RESET_PERMS (flags 0): no alias reset
    kernel.set_direct_map_invalid_noflush(pfn)
    kernel.set_direct_map_default_noflush(pfn)
    assert [(rule, where) for rule, where, _ in kernel.violations] == [
        ("wx_mapping", pfn), ("bad_free", pfn)]
