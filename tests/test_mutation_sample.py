"""Tests written for the survivors of the seeded mutation sample (scripts/mutate.py,
docs/testing.md): each pins, by hand, what a one-line bug changed without any test noticing.

The kit machine (framework/testing/factories.py ``small_machine``): 4 GiB of RAM, one node,
4 CPUs; E820 puts 3 GiB below the 4 GiB MMIO hole and 1 GiB above it; the boot direct map
has 4 KiB entries over the first 2 MiB, 2 MiB entries over the rest of the first GiB and
1 GiB entries over every other GiB of RAM (arch/x86/mm/init.c, framework/kernel/directmap.py).
"""

from __future__ import annotations

from framework.kernel.consts import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from framework.kernel.directmap import MAP_1G, MAP_2M, MAP_4K, MAP_NP, region_map
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.testing import small_machine


def _kernel(**overrides: object) -> Kernel:
    return Kernel(small_machine(**overrides), resolve_costs({}))


# -- the buddy and the page allocator (framework/kernel/buddy.py, page_alloc.py) -------------
def test_nr_free_pages_follows_an_order_4_block_out_and_back() -> None:
    """NR_FREE_PAGES of the zone an order-4 block comes from drops by 16 (order 4 is above
    PAGE_ALLOC_COSTLY_ORDER, so no per-CPU list is involved) and is back where it was once
    the block is freed (the free merges it with its free buddy: -16 for the buddy taken off
    its list, +32 for the merged block: +16 in all)."""
    kernel = _kernel()
    before = {id(z): z.nr_free_pages for z in kernel.zones}
    pfn = kernel.alloc_pages(4)
    zone = kernel.zone_of(pfn)
    assert zone.nr_free_pages == before[id(zone)] - 16
    kernel.free_pages(pfn, 4)
    assert zone.nr_free_pages == before[id(zone)]


def test_move_freepages_block_moves_the_free_block_of_a_fresh_pageblock() -> None:
    """At boot everything above the kernel is free in order-10 blocks (1024 pages, two
    pageblocks, MIGRATE_MOVABLE). move_freepages_block() on the pageblock at pfn 0x20000
    (512 MiB, an order-10 head) moves that block, 1024 free pages, to the unmovable lists;
    no movable page is in use there: (1024, 0). On the next pageblock, 0x20200, no free
    block starts: (0, 0)."""
    kernel = _kernel()
    zone = kernel.zone_of(0x20000)
    assert zone.move_freepages_block(0x20000, MIGRATE_UNMOVABLE) == (1024, 0)
    assert zone.list_len(10, MIGRATE_UNMOVABLE) >= 1
    assert zone.move_freepages_block(0x20200, MIGRATE_UNMOVABLE) == (0, 0)


def test_a_merged_free_of_two_order_0_allocations() -> None:
    """Two order-0 allocations in a row come off the CPU's list in ascending order (the
    list is refilled by rmqueue_bulk() from one expanded block, lowest page first, and
    list_add_tail keeps that order): pfn and pfn + 1. A plugin that merged them frees them as
    one order-1 block: both pages leave ``allocated``, none else, and nothing is recorded.
    Then the page after them is still free to allocate, and freeing pfn + 2 as order 0 is a
    bad_free (it was never handed out)."""
    kernel = _kernel()
    p0 = kernel.alloc_pages(0)
    p1 = kernel.alloc_pages(0)
    assert p1 == p0 + 1 and p0 % 2 == 0
    held = kernel.nr_allocated
    kernel.free_pages(p0, 1)
    assert kernel.nr_allocated == held - 2
    assert kernel.violations == []
    kernel.free_pages(p0 + 2, 0)
    assert [v[0] for v in kernel.violations] == ["bad_free"]


def test_free_pages_ok_of_pages_not_held_is_a_bad_free() -> None:
    """__free_pages_ok() of a page nobody holds (a shrinker giving back what it never took)
    is recorded once, at that pfn, and the page is not freed twice."""
    kernel = _kernel()
    pfn = kernel.alloc_pages(4)
    kernel.free_pages(pfn, 4)
    kernel.free_pages_ok(pfn, 0)
    assert kernel.violations == [("bad_free", pfn, "order-0 return of pages not held")]


def test_freeing_a_block_a_vmalloc_area_maps_through_its_second_page() -> None:
    """An order-1 block whose second page, pfn + 1, a live vmalloc area maps: freeing the
    block is one bad_free ("page freed while a vmalloc area still maps it") at pfn."""
    kernel = _kernel()
    pfn = kernel.alloc_pages(1)
    area = kernel.vmalloc_from(1, 0, lambda _order: pfn + 1)
    assert area is not None
    kernel.free_pages(pfn, 1)
    assert [(v[0], v[1]) for v in kernel.violations] == [("bad_free", pfn)]
    assert "vmalloc area still maps it" in kernel.violations[0][2]


def test_an_explicit_node_0_is_not_the_current_node() -> None:
    """Two nodes of 2 GiB; the allocating CPU is on node 1. alloc_pages(..., node=0) asks
    for node 0 (NUMA_NO_NODE is -1, not 0) and gets a page of node 0; without a node it
    gets one of node 1."""
    kernel = _kernel(nodes=2)
    kernel.current_node = 1
    assert kernel.zone_of(kernel.alloc_pages(0, MIGRATE_UNMOVABLE, 0)).node == 0
    assert kernel.zone_of(kernel.alloc_pages(0, MIGRATE_UNMOVABLE)).node == 1


# -- the direct map (framework/kernel/directmap.py) ------------------------------------------
def test_set_memory_np_after_an_unchanged_4k_entry() -> None:
    """pfn 0x100 is in the first 2 MiB (4 KiB entries) and already not present; one
    set_memory_np over 0x100 and 0x101 skips the first entry (same protection) and must
    still clear the second: both not present."""
    kernel = _kernel()
    dm = kernel.directmap
    assert kernel.set_direct_map_invalid_noflush(0x100) == 0
    assert kernel.set_memory_np(0x100, 2) == 0
    assert not dm.is_present(0x100) and not dm.is_present(0x101)


def test_region_map_of_the_boot_layout() -> None:
    """Runs of [state, 2 MiB regions]: GiB 0 is one PMD of 4 KiB entries then 511 2 MiB
    entries; GiB 1 and 2 are 1 GiB entries (512 regions each, one run); GiB 3 is the MMIO
    hole (no entries: not present); GiB 4, RAM above the hole, a 1 GiB entry."""
    kernel = _kernel()
    assert region_map(kernel.directmap) == [[MAP_4K, 1], [MAP_2M, 511], [MAP_1G, 1024],
                                            [MAP_NP, 512], [MAP_1G, 512]]


def test_zone_highsize_is_at_least_four_batches() -> None:
    """zone_highsize(): low watermark 100 over 4 CPUs is 25 pages each, below 4 batches of
    63 (252): 252. A watermark of 4000 over 4 CPUs (1000) is above it: 1000."""
    from framework.kernel.pcp import zone_highsize

    assert zone_highsize(100, 63, 4) == 252
    assert zone_highsize(4000, 63, 4) == 1000


def test_free_bulk_frees_what_is_asked_oldest_first() -> None:
    """Three order-0 pages on one list (the head at the end: 3 was freed last); freeing
    one page returns the oldest, pfn 1 (list_last_entry), and leaves 2 and 3 on the list."""
    from framework.kernel.pcp import PerCpuPages

    pcp = PerCpuPages(high=100, batch=7)
    lst = pcp.list_for(0, MIGRATE_UNMOVABLE)
    lst.extend([(1, MIGRATE_UNMOVABLE), (2, MIGRATE_UNMOVABLE), (3, MIGRATE_UNMOVABLE)])
    pcp.count = 3
    freed: list[int] = []
    pcp.free_bulk(1, (0, MIGRATE_UNMOVABLE), lambda pfn, _order, _mt: freed.append(pfn))
    assert freed == [1]
    assert pcp.count == 2 and list(lst) == [(2, MIGRATE_UNMOVABLE), (3, MIGRATE_UNMOVABLE)]


def test_a_range_flush_charges_its_shootdown() -> None:
    """flush_tlb_kernel_range(1) on the kit's 4 CPUs: one INVLPG here and an IPI to the
    3 others. total_cycles grows by the cost table's invlpg plus shootdown_base plus
    3 x shootdown_per_cpu (the shootdown's own counter grows by the latter two)."""
    kernel = _kernel()
    costs = resolve_costs({})
    led = kernel.ledger
    total, ipis = led.total_cycles, led.tlb_ipis
    kernel.flush_tlb_kernel_range(1)
    shootdown = costs["shootdown_base"] + 3 * costs["shootdown_per_cpu"]
    assert led.tlb_ipis == ipis + 3
    assert led.total_cycles == total + costs["invlpg"] + shootdown


def test_vmap_space_packs_unaligned_requests() -> None:
    """A 100-page space at 1000: 3 pages at 1000, then 1 page right after, at 1003 (no
    alignment asked: any page will do), then 4 pages aligned to 4 at 1004."""
    from framework.kernel.vmalloc import VmapSpace

    space = VmapSpace(1000, 100)
    assert space.alloc(3) == 1000
    assert space.alloc(1) == 1003
    assert space.alloc(4, 4) == 1004


def test_buddy_merge_likely_and_fpi_to_tail() -> None:
    """__free_one_page()'s choice of list end (head first below). In a fresh zone, MOVABLE:

    - take P (order 0: splits the first free order-10 block at P; P+1, P+2 (order 1),
      P+4 (order 2), ... stay free), then P+1 (order 0), then the order-2 block P+4;
    - free P+5 alone: no free buddy (P+4 is taken); the order-1 block holding it, P+4,
      has its buddy P+6 taken too, so no merge is likely: the head. List: [P+5];
    - free P+1: its buddy P is taken; the order-1 block holding it, P, has its order-1
      buddy P+2 free: buddy_merge_likely(), so the tail. List: [P+5, P+1];
    - free P+7 with FPI_TO_TAIL: the tail whatever merge is likely (none is: P+4 is
      taken). List: [P+5, P+1, P+7]."""
    kernel = _kernel()
    zone = kernel.zone_of(0x100000)
    mt = MIGRATE_MOVABLE
    p = zone.rmqueue_smallest(0, mt)
    assert p % 1024 == 0
    assert zone.rmqueue_smallest(0, mt) == p + 1
    assert zone.rmqueue_smallest(2, mt) == p + 4
    zone.free_one_page(p + 5, 0, mt)
    zone.free_one_page(p + 1, 0, mt)
    zone.free_one_page(p + 7, 0, mt, to_tail=True)
    head_first = list(reversed(zone.free_area[0][mt]))
    assert head_first == [p + 5, p + 1, p + 7]


def test_a_pageblock_set_back_to_movable_reads_movable() -> None:
    """set_pageblock_migratetype() to UNMOVABLE, then back to MOVABLE (a pageblock stolen
    and returned): it reads MOVABLE again; its neighbour was never changed: MOVABLE."""
    kernel = _kernel()
    zone = kernel.zone_of(0x20000)
    zone.set_pageblock_migratetype(0x20000, MIGRATE_UNMOVABLE)
    assert zone.get_pageblock_migratetype(0x20000) == MIGRATE_UNMOVABLE
    zone.set_pageblock_migratetype(0x20000, MIGRATE_MOVABLE)
    assert zone.get_pageblock_migratetype(0x20000) == MIGRATE_MOVABLE
    assert zone.get_pageblock_migratetype(0x20200) == MIGRATE_MOVABLE


def test_boot_4k_maps_every_ram_pmd_with_ptes() -> None:
    """``machine.directmap=4k`` (the debug setting): every 2 MiB region with RAM is a PTE
    table at boot. The kit's 4 GiB of RAM sit in 2048 such regions (1536 below the MMIO
    hole, 512 above it), 512 entries each: DirectMap4k 2048 x 512 x 4 kB = 4194304 kB,
    nothing mapped with 2 MiB or 1 GiB entries."""
    kernel = _kernel(directmap="4k")
    info = kernel.directmap.meminfo()
    assert (info["DirectMap4k"], info["DirectMap2M"], info["DirectMap1G"]) == (4194304, 0, 0)


def test_freeing_part_of_a_bigger_block() -> None:
    """An order-2 block at pfn (4 pages). Freeing its upper half, order 1 at pfn + 2 (a
    plugin that split the block, as split_page() allows), takes 2 pages out of ``allocated``
    and keeps pfn as an order-1 allocation; freeing that too leaves nothing held and
    nothing recorded."""
    kernel = _kernel()
    pfn = kernel.alloc_pages(2)
    held = kernel.nr_allocated
    kernel.free_pages(pfn + 2, 1)
    assert kernel.nr_allocated == held - 2 and kernel.allocated.get(pfn) == 1
    kernel.free_pages(pfn, 1)
    assert kernel.nr_allocated == held - 4 and pfn not in kernel.allocated
    assert kernel.violations == []


def test_pcp_allowed_orders() -> None:
    """v6.3 pcp_allowed_order(): orders 0 to PAGE_ALLOC_COSTLY_ORDER (3) and the THP order
    (pageblock_order, 9) go through the per-CPU lists; 4 to 8 and 10 do not."""
    from framework.kernel.pcp import pcp_allowed_order

    assert [o for o in range(11) if pcp_allowed_order(o)] == [0, 1, 2, 3, 9]


def test_pcp_high_shares_the_low_watermark_among_the_node_cpus() -> None:
    """zone_highsize(): a zone's low watermark divided among the CPUs of its node, at least
    4 batches (batch 63 here: 252). The kit's zones have low watermarks in the thousands:
    with 1 CPU the whole watermark, with 4 CPUs a quarter of it (rounded down)."""
    from framework.kernel.watermark import WMARK_LOW

    for cpus in (1, 4):
        kernel = _kernel(cpus=cpus)
        for zone in kernel.zones:
            if zone.managed:
                low = zone.wmark[WMARK_LOW]
                assert low // cpus > 4 * zone.batch
                assert zone.high == low // cpus, (cpus, zone.zone_type)


def test_huge_area_alias_changed_per_2m_entry() -> None:
    """A 2 MiB vmalloc area mapped with one PMD (page_order 9) over an order-9 block, on a
    machine without 1 GiB entries (``directmap=2m``), every CPA split failing
    (cpa_fail_rate=1). set_memory_ro() changes the alias one whole 2 MiB entry at a time
    (cpa_process_alias() steps by the primary's page size): in place, no split, so it
    cannot fail: 0, the alias still one 2 MiB entry, now read-only, no split counted."""
    from framework.kernel.consts import _PAGE_RW
    from framework.kernel.directmap import LEVEL_2M
    from framework.kernel.faults import Faults

    kernel = Kernel(small_machine(directmap="2m"), resolve_costs({}),
                    Faults(seed=1, cpa_fail_rate=1.0))
    pfn = kernel.alloc_pages(9)
    area = kernel.vmap(list(range(pfn, pfn + 512)), 0, 512, 9)
    assert area is not None
    splits = kernel.ledger.direct_map_level2_splits
    assert kernel.set_memory_ro(area.addr, 512) == 0
    dm = kernel.directmap
    assert dm.level(pfn) == LEVEL_2M and not dm.prot(pfn + 511) & _PAGE_RW
    assert kernel.ledger.direct_map_level2_splits == splits


def test_text_poke_flushes_its_poking_mapping() -> None:
    """text_poke_copy() of 100 bytes at offset 0: one chunk, one page, one local flush of
    the poking mm (no IPI)."""
    kernel = _kernel()
    pfn = kernel.alloc_pages(0)
    area = kernel.vmap([pfn], 0)
    assert area is not None
    led = kernel.ledger
    local, ipis = led.tlb_flush_local, led.tlb_ipis
    kernel.text_poke(area.addr, 0, 100)
    assert (led.tlb_flush_local, led.tlb_ipis) == (local + 1, ipis)


# -- the checks (framework/checks.py) --------------------------------------------------------
def test_handing_out_a_free_order_1_block_breaks_conservation() -> None:
    """A design hands out an order-1 block at 0x20000 that nobody allocated: both pages are
    free in the buddy (a fresh order-10 block): 2 conservation violations, one per page."""
    from framework.checks import Checker
    from framework.request import Allocation, Request

    kernel = _kernel()
    checker = Checker(kernel)
    checker.on_alloc(1, Allocation(((0x20000, 1),), 0, 8192, False, None),
                     Request("kernel", 8192, "RW"))
    assert checker.counts["conservation"] == 2
    assert [v.where for v in checker.kept] == [0x20000, 0x20001]


def test_zero_is_checked_on_every_page_of_a_block() -> None:
    """An order-1 block whose second page holds an earlier owner's data, handed out for a
    request asking for zero: one not_zeroed, at pfn + 1."""
    from framework.checks import Checker
    from framework.request import Allocation, Request

    kernel = _kernel()
    pfn = kernel.alloc_pages(1)
    kernel.dirty.add(pfn + 1)
    checker = Checker(kernel)
    checker.on_alloc(1, Allocation(((pfn, 1),), 0, 8192, False, None),
                     Request("kernel", 8192, "RW", True))
    assert checker.counts["not_zeroed"] == 1
    assert [v.where for v in checker.kept] == [pfn + 1]


# -- the summary table (framework/summary.py) -------------------------------------------------
def test_plain_summary_rows_workload_then_wrapped_designs() -> None:
    """The 80-column table: the header and rule, then per workload its name on a line of
    its own, then each row of designs. Three designs sharing a row wrap at 15 columns:
    "gfp-unmapped," then "unmapped-api," then "migratetype", each indented two spaces, the
    cells on the first line only."""
    from framework.summary import HEADERS, Group, Line, render_summary

    cells = ("1", "0", "2", "3", "0.1", "0")
    group = Group("secretmem", ("secretmem",),
                  (Line(("gfp-unmapped", "unmapped-api", "migratetype"), cells),))
    table = render_summary([group], "simple", 1).split("\n\n", 1)[1].splitlines()
    assert len(HEADERS) == len(cells)
    assert table[2] == "secretmem"
    assert table[3].startswith("  gfp-unmapped, ") and table[3].endswith(" 0")
    assert table[4:] == ["  unmapped-api,", "  migratetype"]


# -- the TLB model (framework/tlb) ------------------------------------------------------------
def test_tlb_array_share() -> None:
    """64 entries, 4 ways: 16 sets of 4. With share 0.5 each set gives the modelled
    translations 2 entries; share 0 leaves none: no array."""
    from framework.tlb.reach import tlb_array

    half = tlb_array("stlb", 64, 4, ("4k",), share=0.5)
    assert half is not None and (half.sets, half.per_set) == (16, 2.0)
    assert tlb_array("stlb", 64, 4, ("4k",), share=0.0) is None


def test_fmt_pct_keeps_two_significant_digits() -> None:
    """Two significant digits below 10, trailing zero kept: 1.0 %, 2.5 %, 0.5 %; from 10
    up, whole numbers: 27 %."""
    from framework.summary import fmt_pct

    assert [fmt_pct(v) for v in (1.0, 2.5, 0.5, 27.2)] == ["1.0", "2.5", "0.5", "27"]


def test_alloc_nofragment_prefers_the_next_zone_to_a_small_steal() -> None:
    """ALLOC_NOFRAGMENT (one node with ZONE_DMA32 and ZONE_NORMAL): on the first walk a
    zone may only steal whole pageblocks from another migratetype (min_order
    pageblock_order); a smaller steal waits for the walk without it.

    ZONE_NORMAL (1 GiB above the hole, 256 free order-10 MOVABLE blocks) is emptied, then
    two non-buddy order-8 blocks of each of 16 of its order-10 blocks are freed back:
    8192 free pages, above its low watermark, all MOVABLE and below pageblock order.
    An UNMOVABLE order-4 request (above the per-CPU orders): ZONE_NORMAL has nothing
    unmovable and nothing to steal whole, so the first walk goes on to ZONE_DMA32, which
    steals from a free order-10 MOVABLE block: the page comes from ZONE_DMA32."""
    from framework.kernel.e820 import ZoneType

    kernel = _kernel()
    normal = next(z for z in kernel.zones if z.zone_type == ZoneType.ZONE_NORMAL)
    taken = [normal.rmqueue_smallest(10, MIGRATE_MOVABLE) for _ in range(256)]
    assert normal.nr_free_pages == 0 and -1 not in taken
    for head in taken[:16]:
        normal.free_one_page(head, 8, MIGRATE_MOVABLE)
        normal.free_one_page(head + 512, 8, MIGRATE_MOVABLE)
    assert normal.nr_free_pages == 8192
    pfn = kernel.alloc_pages(4, MIGRATE_UNMOVABLE)
    assert kernel.zone_of(pfn).zone_type == ZoneType.ZONE_DMA32


def test_migratetype_constants_are_the_enum_values() -> None:
    """The MIGRATE_* constants the model compares with are int literals (inlined by the
    compiler); they must stay the values of include/linux/mmzone.h's enum, MigrateType."""
    from framework.kernel.consts import (
        MIGRATE_MOVABLE,
        MIGRATE_RECLAIMABLE,
        MIGRATE_UNMOVABLE,
        MigrateType,
    )

    assert (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE) == (0, 1, 2)
    assert [m.value for m in MigrateType] == [0, 1, 2]
    assert [m.name for m in MigrateType] == ["MIGRATE_UNMOVABLE", "MIGRATE_MOVABLE",
                                             "MIGRATE_RECLAIMABLE"]


def test_free_bulk_of_a_higher_order_list_frees_whole_blocks() -> None:
    """free_pcppages_bulk() takes whole entries while count > 0: three order-1 blocks on one
    list (10 the oldest, 14 freed last), 6 pages held; asking for 3 pages frees the two
    oldest blocks (3 - 2 = 1 > 0, then 1 - 2 < 0: stop), 4 pages, leaving 14 and 2 pages."""
    from framework.kernel.pcp import PerCpuPages

    pcp = PerCpuPages(high=100, batch=7)
    lst = pcp.list_for(1, MIGRATE_UNMOVABLE)
    lst.extend([(10, MIGRATE_UNMOVABLE), (12, MIGRATE_UNMOVABLE), (14, MIGRATE_UNMOVABLE)])
    pcp.count = 6
    freed: list[tuple[int, int]] = []
    pcp.free_bulk(3, (1, MIGRATE_UNMOVABLE),
                  lambda pfn, order, _mt: freed.append((pfn, order)))
    assert freed == [(10, 1), (12, 1)]
    assert pcp.count == 2 and lst == [(14, MIGRATE_UNMOVABLE)]
