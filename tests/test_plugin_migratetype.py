"""The ``migratetype`` plugin (2022 MIGRATE_UNMAPPED RFC): hand-derived scenarios and properties.

Common setting (``small_spec``): 4 GiB, one node, 4 CPUs (every global or range flush sends
3 IPIs), gbpages, 64 MiB reserved. Boot: the first 2 MiB are 4 KiB-mapped, the rest of GiB 0
is 511 PMDs, GiBs 1-3 are PUDs (DirectMap4k 2048 kB, 2M 1046528 kB, 1G 3145728 kB, two boot
page-table pages). The buddy holds pfns 16384.. as untouched order-10 MOVABLE blocks, lowest
first. A "secretmem page" is one 4 KiB ``secretmem`` request (perm UNMAPPED, zero, GENERIC).

The first UNMAPPED page of a fresh zone (derived once, used below): the UNMAPPED lists are
empty, so __rmqueue_fallback (ALLOC_NOFRAGMENT: min order 9) takes the largest block of the
UNMAPPED fallback row (UNMOVABLE, RECLAIMABLE, MOVABLE): the order-10 MOVABLE block at 16384.
UNMAPPED steals single_page: only that block moves to the UNMAPPED lists, pageblocks 32 and
33 stay MOVABLE. expand() leaves 16385 (o0), 16386 (o1), ..., 16640 (o8), 16896 (o9) on the
UNMAPPED lists and hands out 16384. get_page_from_freelist -> set_pageblock_unmapped: block 32
is MOVABLE, so set_direct_map_invalid_noflush(16384) (CPA 1) splits PMD 32; the page-table
page is alloc_pages(GFP_KERNEL): UNMOVABLE lists are empty, so UNMOVABLE steals the next
untouched order-10 block, 17408, whole (blocks 34, 35 become UNMOVABLE) and gets 17408; the
split moves DirectMap2M -2048 kB / 4k +2048 kB, level-2 split 1, flush_tlb_all 1. Then
set_direct_map_default_noflush(16384) (CPA 2), block 32 becomes UNMAPPED and
move_freepages_block moves its 511 free pages (already on UNMAPPED lists). post_alloc_hook
zeroes the page, then set_direct_map_invalid_noflush (CPA 3, a PTE: no split) and
flush_tlb_kernel_range(1 page) (range flush 1). secretmem_fault adds its own 1-page flush.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from framework.designs.migratetype import Migratetype
from framework.engine import Cell, freeze_sets, run_cell
from framework.kernel.buddy import BUDDY_ORDER_MASK, TOP, Zone
from framework.kernel.consts import (
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_RW,
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    PAGEBLOCK_ORDER,
)
from framework.kernel.faults import Faults
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.plugins import build_registry
from framework.request import Allocation, Request
from framework.statusquo import StatusQuo
from tests.conftest import small_spec
from tests.helpers import counters

FIRST = 16384
SECRET = Request("secretmem", 4096, "UNMAPPED", True, None, "GENERIC")
BOOT_4K, BOOT_2M, BOOT_1G = 2048, 1046528, 3145728


def node_stats(plugin: Migratetype, node: int = 0) -> dict[str, int]:
    return plugin.stats()["nodes"][node]


def boot(mem_gib: int = 4, nodes: int = 1, faults: Faults | None = None
         ) -> tuple[Kernel, Migratetype]:
    k = Kernel(small_spec(mem_gib=mem_gib, nodes=nodes), resolve_costs({}), faults)
    return k, Migratetype(k, {})


def live_pages(allocs: list[Allocation]) -> int:
    return sum(a.nr_pages() for a in allocs)


def free_pfns_in_block(zone: Zone, block: int) -> list[int]:
    """Every buddy-free pfn of pageblock ``block`` (walking the free blocks' heads)."""
    start = block << PAGEBLOCK_ORDER
    end = start + (1 << PAGEBLOCK_ORDER)
    head = start >> TOP << TOP
    info = zone.buddy.get(head)
    if info is not None and info & BUDDY_ORDER_MASK == TOP:
        return list(range(start, end))
    out: list[int] = []
    pfn = start
    while pfn < end:
        info = zone.buddy.get(pfn)
        if info is None:
            pfn += 1
            continue
        out.extend(range(pfn, pfn + (1 << (info & BUDDY_ORDER_MASK))))
        pfn += 1 << (info & BUDDY_ORDER_MASK)
    return out


def unmapped_blocks(plugin: Migratetype, zone: Zone) -> list[int]:
    return sorted(b for b, mt in zone.pageblock_mt.items() if mt == plugin.unmapped.mt)


# -- secretmem --------------------------------------------------------------------------------
def test_512_secretmem_pages_fresh_machine() -> None:
    """512 secretmem pages: one conversion, one split, two range flushes per page.

    Page 1 as in the module docstring: CPA 3, level-2 split 1, flush_tlb_all 1, range flushes
    2. Pages 2..512 come off the UNMAPPED lists smallest order first, so in pfn order 16385..
    16895 (expand keeps the lower half): block 32 is already UNMAPPED, no conversion; each is
    zeroed, set invalid (1 CPA) and range-flushed twice (post_alloc_hook, secretmem_fault).
    Totals: conversions 1, CPA 2 + 512 = 514, level-2 splits 1, level-3 0 (GiB 0 is
    PMD-mapped), flush_tlb_all 1, range flushes 2 * 512 = 1024, IPIs 3 * (1 + 1024) = 3075,
    zeroed 512, page tables 2 + 1 = 3, DirectMap4k 4096, 2M 1044480, 1G unchanged. The
    order-9 block at 16896 (block 33, still MOVABLE) waits on the UNMAPPED lists.
    """
    k, p = boot()
    allocs = [p.alloc(SECRET) for _ in range(512)]
    assert all(a is not None and a.unmapped for a in allocs)
    got = [a.blocks[0][0] for a in allocs if a is not None]
    assert got == list(range(FIRST, FIRST + 512))
    assert counters(k) == {
        "DirectMap4k": BOOT_4K + 2048, "DirectMap2M": BOOT_2M - 2048, "DirectMap1G": BOOT_1G,
        "l2": 1, "l3": 0, "pt": 3, "flush_all": 1, "flush_range": 1024, "ipis": 3075,
        "cpa": 514,
    }
    assert k.ledger.zeroed_pages == 512
    assert k.pt_pfns == {FIRST + 1024}
    zone = k.preferred_zone()
    assert unmapped_blocks(p, zone) == [32]
    assert zone.get_pageblock_migratetype(FIRST + 512) == MIGRATE_MOVABLE
    assert zone.get_pageblock_migratetype(FIRST + 1024) == MIGRATE_UNMOVABLE
    assert list(zone.free_area[9][p.unmapped.mt]) == [FIRST + 512]
    assert not any(k.directmap.is_present(pfn) for pfn in got)
    assert node_stats(p) == {
        "node": 0, "unmapped_pageblocks": 1, "free_unmapped_pages": 512, "conversions": 1,
        "conversion_failures": 0, "pages_unmapped": 512, "remap_calls": 0,
        "pages_remapped": 0, "freed_still_unmapped": 0,
    }
    assert k.violations == []
    assert k.nr_allocated == len(k.pt_pfns) + live_pages([a for a in allocs if a])


def test_free_all_then_allocate_again_is_the_ratchet() -> None:
    """Freeing the 512 pages keeps block 32 PTE-mapped and UNMAPPED; the next 512 reuse it.

    Each free: secretmem_free_folio restores the page (CPA) and zeroes it, then
    free_pages_prepare finds block 32 UNMAPPED and calls set_direct_map_default_noflush again
    (CPA, nothing left to change: remap_calls +1, pages_remapped +0); no flush. The pages
    merge back to order 9 at 16384 and, with the free buddy 16896, to order 10 on the
    UNMAPPED list (the list of the freed page's block). After the frees: CPA 514 + 1024 =
    1538, zeroed 1024, flushes unchanged, 1024 free UNMAPPED pages, nr_allocated 1 (the page
    table). Allocating 512 again takes that order-10 block: pfns 16384..16895 again, block
    32 already UNMAPPED: no conversion, no split, no flush_tlb_all; CPA +512 = 2050, range
    flushes +1024 = 2048, IPIs 3075 + 3072 = 6147, zeroed 1536.
    """
    k, p = boot()
    allocs = [p.alloc(SECRET) for _ in range(512)]
    for a in allocs:
        assert a is not None
        p.write(a, 4096)
        p.free_generic(a)
    assert counters(k) == {
        "DirectMap4k": BOOT_4K + 2048, "DirectMap2M": BOOT_2M - 2048, "DirectMap1G": BOOT_1G,
        "l2": 1, "l3": 0, "pt": 3, "flush_all": 1, "flush_range": 1024, "ipis": 3075,
        "cpa": 1538,
    }
    zone = k.preferred_zone()
    assert list(zone.free_area[10][p.unmapped.mt]) == [FIRST]
    assert unmapped_blocks(p, zone) == [32]
    stats = node_stats(p)
    assert (stats["remap_calls"], stats["pages_remapped"], stats["free_unmapped_pages"]) == (
        512, 0, 1024)
    assert k.nr_allocated == 1 and k.check_conservation() == 0
    assert all(k.directmap.is_present(pfn) for pfn in range(FIRST, FIRST + 512))
    again = [p.alloc(SECRET) for _ in range(512)]
    assert [a.blocks[0][0] for a in again if a] == list(range(FIRST, FIRST + 512))
    assert counters(k) == {
        "DirectMap4k": BOOT_4K + 2048, "DirectMap2M": BOOT_2M - 2048, "DirectMap1G": BOOT_1G,
        "l2": 1, "l3": 0, "pt": 3, "flush_all": 1, "flush_range": 2048, "ipis": 6147,
        "cpa": 2050,
    }
    assert k.ledger.zeroed_pages == 1536 and not k.dirty
    assert node_stats(p)["conversions"] == 1
    assert k.nr_allocated == len(k.pt_pfns) + 512


# -- conversion failures ----------------------------------------------------------------------
def test_conversion_failure_by_cpa_returns_null_and_the_page() -> None:
    """Faults(cpa_fail_rate=1.0): the conversion's set_direct_map_invalid_noflush fails.

    rmqueue hands out 16384 as in the module docstring (blocks 32, 33 stay MOVABLE); CPA 1
    fails before any split, so set_pageblock_unmapped gives the page back on block 32's
    migratetype (MOVABLE) and get_page_from_freelist returns NULL. The page merges with its
    free buddies (16385 o0 ... 16896 o9) into the order-10 block 16384 on the MOVABLE list.
    Counters: CPA 1, nothing split or flushed, conversion_failures 1, conversions 0; every
    page is buddy-free again (nr_allocated 0, conservation holds). A second try repeats it.
    """
    k, p = boot(faults=Faults(seed=1, cpa_fail_rate=1.0))
    free_at_boot = k.buddy_free_pages()
    assert p.alloc(SECRET) is None
    assert counters(k) == {
        "DirectMap4k": BOOT_4K, "DirectMap2M": BOOT_2M, "DirectMap1G": BOOT_1G,
        "l2": 0, "l3": 0, "pt": 2, "flush_all": 0, "flush_range": 0, "ipis": 0, "cpa": 1,
    }
    zone = k.preferred_zone()
    assert list(zone.free_area[10][MIGRATE_MOVABLE]) == [FIRST]
    assert not any(zone.free_area[o][p.unmapped.mt] for o in range(TOP + 1))
    assert zone.pageblock_mt == {}
    assert (k.nr_allocated, k.buddy_free_pages(), k.check_conservation()) == (
        0, free_at_boot, 0)
    assert p.alloc(SECRET) is None
    stats = node_stats(p)
    assert (stats["conversions"], stats["conversion_failures"], stats["unmapped_pageblocks"]
            ) == (0, 2, 0)
    assert k.ledger.cpa_calls == 2 and k.violations == []


def test_conversion_failure_by_page_table_allocation() -> None:
    """Faults(pt_fail_rate=1.0): the split cannot get its page-table page.

    set_direct_map_invalid_noflush(16384) needs a PMD split; split_large_page's alloc_pages
    fails, so the CPA returns -ENOMEM (CPA 1, no split, no flush, no page table) and the
    request is NULL with every page back in the buddy.
    """
    k, p = boot(faults=Faults(seed=1, pt_fail_rate=1.0))
    assert p.alloc(SECRET) is None
    c = counters(k)
    assert (c["cpa"], c["l2"], c["l3"], c["pt"], c["flush_all"]) == (1, 0, 0, 2, 0)
    assert k.pt_pfns == set() and k.nr_allocated == 0 and k.check_conservation() == 0
    assert node_stats(p)["conversion_failures"] == 1


# -- modules ----------------------------------------------------------------------------------
def test_module_load_and_unload() -> None:
    """A 4-page module text section (3 pages + 100 bytes), loaded, sealed and unloaded.

    module_alloc (patch 3/3) takes each page as its own __GFP_UNMAPPED alloc_pages: page 1 is
    the module docstring's first page without the secretmem flush (CPA 3, split 1,
    flush_tlb_all 1, range flush 1), pages 16385..16387 one CPA and one range flush each:
    CPA 6, range flushes 4. Seal: set_memory_ro (CPA 7) makes the area RO; the aliases are
    non-present 4 KiB PTEs already without RW: unchanged, but cpa_process_alias forces a
    flush_tlb_all (2). set_memory_x (CPA 8): NX only, 4 pages, one range flush (5). Loaded:
    CPA 8, 1 split, 2 full, 5 range flushes, IPIs 3 * 7 = 21 (v6.3: 2 CPA, 2 full, 1 range).
    vfree with VM_FLUSH_RESET_PERMS: 4 invalid (no change), flush_tlb_all (3), 4 default
    (present again, RW), then __free_pages: block 32 is UNMAPPED, so 4 more default calls
    with nothing to change. Unloaded: CPA 20, 3 full, 5 range, IPIs 24, still 1 split.
    """
    k, p = boot()
    alloc = p.alloc(Request("module_text", 3 * 4096 + 100, "ROX", False, None, "OWNER"))
    assert alloc is not None
    assert [pfn for pfn, _ in alloc.blocks] == [FIRST, FIRST + 1, FIRST + 2, FIRST + 3]
    c = counters(k)
    assert (c["cpa"], c["l2"], c["flush_all"], c["flush_range"]) == (6, 1, 1, 4)
    p.write(alloc, 0)
    assert counters(k) == {
        "DirectMap4k": BOOT_4K + 2048, "DirectMap2M": BOOT_2M - 2048, "DirectMap1G": BOOT_1G,
        "l2": 1, "l3": 0, "pt": 3, "flush_all": 2, "flush_range": 5, "ipis": 21, "cpa": 8,
    }
    for pfn in range(FIRST, FIRST + 4):
        assert k.directmap.prot(pfn) == _PAGE_NX  # non-present, read-only, no GLOBAL
    p.free(alloc)
    c = counters(k)
    assert (c["cpa"], c["flush_all"], c["flush_range"], c["ipis"], c["l2"]) == (20, 3, 5, 24, 1)
    for pfn in range(FIRST, FIRST + 4):
        assert k.directmap.prot(pfn) == _PAGE_PRESENT | _PAGE_RW | _PAGE_NX
    stats = node_stats(p)
    assert (stats["pages_unmapped"], stats["remap_calls"], stats["pages_remapped"]) == (4, 4, 0)
    assert k.violations == [] and k.nr_allocated == 1 and not k.areas


# -- NUMA -------------------------------------------------------------------------------------
def test_two_nodes_each_zone_converts_its_own_block() -> None:
    """2 nodes x 2 GiB: node 0 is pfns 0..524287 (GiB 0-1), node 1 is 524288.. (GiB 2-3).

    1. Node 0 (current node 0): the module docstring's first page: 16384, page table 17408,
       PMD 32 split, CPA 3, flush_tlb_all 1, range flushes 2.
    2. Node 1 (current node 1, as the engine sets it): zone 1 falls back into its first
       order-10 block 524288; block 1024 needs a conversion. 524288 sits under the 1 GiB
       entry of GiB 2: split the PUD (page table: UNMOVABLE steals zone 1's next order-10
       block 525312 whole; level-3 split, DirectMap1G -1048576 kB, 2M +1048576 kB,
       flush_tlb_all 2), then the PMD (page table 525313 from the UNMOVABLE order-0 list;
       level-2 split, flush_tlb_all 3). CPA 3 more, range flushes 2.
    3. Node 1 again: 524289 from zone 1's UNMAPPED lists, no conversion: CPA 1, 2 flushes.
    4. Node 0 again: 16385 from zone 0's lists: CPA 1, 2 flushes.
    Totals: CPA 8, level-2 splits 2, level-3 1, flush_tlb_all 3, range flushes 8, IPIs
    3 * 11 = 33, page tables 2 + 3 = 5, DirectMap4k 2048 + 4096, 2M 1046528 - 4096 +
    1048576, 1G 2097152. Each node: 1 UNMAPPED block, 1 conversion, 2 pages unmapped.
    """
    k, p = boot(nodes=2)
    plan = [(0, FIRST), (1, 524288), (1, 524289), (0, FIRST + 1)]
    for node, want in plan:
        k.current_node = node
        alloc = p.alloc(Request("secretmem", 4096, "UNMAPPED", True, node, "GENERIC"))
        assert alloc is not None and alloc.blocks == ((want, 0),)
    assert counters(k) == {
        "DirectMap4k": BOOT_4K + 4096, "DirectMap2M": BOOT_2M - 4096 + 1048576,
        "DirectMap1G": BOOT_1G - 1048576, "l2": 2, "l3": 1, "pt": 5, "flush_all": 3,
        "flush_range": 8, "ipis": 33, "cpa": 8,
    }
    assert k.pt_pfns == {FIRST + 1024, 525312, 525313}
    assert unmapped_blocks(p, k.preferred_zone()) == [32]
    assert unmapped_blocks(p, k.preferred_zone(1)) == [1024]
    for node in (0, 1):
        stats = node_stats(p, node)
        assert (stats["unmapped_pageblocks"], stats["conversions"], stats["pages_unmapped"]
                ) == (1, 1, 2)
    assert k.violations == [] and k.nr_allocated == len(k.pt_pfns) + 4


# -- the latent steal-back problem (not raised by reviewers) ----------------------------------
def test_stolen_unmapped_block_frees_pages_still_unmapped() -> None:
    """A raw alloc_pages(__GFP_UNMAPPED) user whose block MOVABLE steals back (1 GiB machine).

    1. One raw UNMAPPED page: 16384 (module docstring; page table 17408, UNMOVABLE keeps
       17409 o0 .. 17920 o9). 2. MOVABLE order-10 allocations take every untouched block,
       18432.. (238 of them), the 239th is NULL. 3. UNMOVABLE allocations of order 9 down to
       0 take exactly 17920 .. 17409. 4. 255 more raw UNMAPPED pages: 16385..16639 (orders
       0..7 of block 32); 256 pages stay free (16640, o8). 5. MOVABLE order 9 takes 16896
       (UNMAPPED lists, last resort; block 33 stays MOVABLE). 6. MOVABLE order 4: no
       MOVABLE, RECLAIMABLE or UNMOVABLE page is left, so it falls back to the UNMAPPED o8
       block 16640; can_steal (order 8 >= 4) moves block 32's 256 free pages and, 256 >=
       512 / 2, claims block 32 as MOVABLE. 7. Freeing 16384: free_pages_prepare sees a
       MOVABLE block, skips the remap: freed_still_unmapped 1. 8. The next MOVABLE order-0
       page is 16384, handed out not present in the direct map (the kernel would oops
       zeroing it). secretmem and module_alloc restore their pages before the free, which
       hides this.
    """
    k, p = boot(mem_gib=1)
    um = p.unmapped
    assert um.alloc_pages(0, None, zero=False) == FIRST
    bulk = []
    while (pfn := k.alloc_pages(10, MIGRATE_MOVABLE)) >= 0:
        bulk.append(pfn)
    assert bulk == list(range(FIRST + 2048, 1 << 18, 1024))
    assert [k.alloc_pages(o, MIGRATE_UNMOVABLE) for o in range(9, -1, -1)] == [
        FIRST + 1024 + (1 << o) for o in range(9, -1, -1)]
    raw = [um.alloc_pages(0, None, zero=False) for _ in range(255)]
    assert raw == list(range(FIRST + 1, FIRST + 256))
    assert k.alloc_pages(9, MIGRATE_MOVABLE) == FIRST + 512
    assert k.alloc_pages(4, MIGRATE_MOVABLE) == FIRST + 256
    zone = k.preferred_zone()
    assert zone.get_pageblock_migratetype(FIRST) == MIGRATE_MOVABLE
    k.free_pages(FIRST, 0)
    assert node_stats(p)["freed_still_unmapped"] == 1
    assert k.alloc_pages(0, MIGRATE_MOVABLE) == FIRST
    assert not k.directmap.is_present(FIRST)
    assert node_stats(p)["conversions"] == 1


# -- whole runs -------------------------------------------------------------------------------
def test_engine_runs_keep_every_promise() -> None:
    """secretmem and modules (unloaded at the end) through the engine: no violation (the
    final check includes conservation: nr_allocated == page tables + live + cached)."""
    reg = build_registry()
    sets = {"machine": {"mem_gib": "4", "hole_mib": "0", "pcp": "0",
                        "min_free_kbytes": "0", "state": "fresh", "cpus": "4"},
            "secretmem": {"processes": "24", "concurrent": "8"},
            "modules": {"reloads": "10", "unload_at_end": "1"}}
    for workload in ("secretmem", "modules"):
        result = run_cell(Cell("migratetype", workload, "default", 3, freeze_sets(sets)), reg)
        assert result["violation_counts"] == {}, workload
        assert result["metrics"]["alloc_failures"] == 0
        nodes = result["stats"]["nodes"]
        assert nodes[0]["conversions"] >= 1 and nodes[0]["conversion_failures"] == 0


# -- property ---------------------------------------------------------------------------------
class UnmappedMachine(RuleBasedStateMachine):
    """Random secretmem (UNMAPPED) and user (MOVABLE, up to order 8) requests on a 2-node,
    2 GiB machine filled up to two free order-10 blocks per node, so that fallbacks in both
    directions, blocks stolen back and converted again, and NULLs happen. Invariants after
    every step: live UNMAPPED pages are not present; free pages of MIGRATE_UNMAPPED blocks
    are present; conservation."""

    allocs = Bundle("allocs")

    def __init__(self) -> None:
        super().__init__()
        self.k, self.p = boot(mem_gib=2, nodes=2)
        self.sq = StatusQuo(self.k)
        self.live: dict[int, tuple[Allocation, bool]] = {}
        self.next_id = 0
        self.filler = 0
        for zone in self.k.zones:  # leave two order-10 blocks per node
            for _ in range(zone.nr_free_at(TOP) - 2):
                assert self.k.alloc_pages(TOP, MIGRATE_MOVABLE, zone.node) >= 0
                self.filler += 1 << TOP

    @rule(target=allocs, pages=st.integers(1, 4), node=st.integers(0, 1),
          secret=st.booleans(), order=st.integers(0, 8))
    def alloc(self, pages: int, node: int, secret: bool, order: int) -> int:
        self.k.current_node = node
        if secret:
            req = Request("secretmem", 4096 * pages, "UNMAPPED", True, node, "GENERIC")
            alloc = self.p.alloc(req)
        else:
            alloc = self.sq.alloc(Request("user", 4096 << order, "RW", False, node))
        self.next_id += 1
        if alloc is not None:
            self.live[self.next_id] = (alloc, secret)
        return self.next_id

    @rule(aid=consumes(allocs))
    def free(self, aid: int) -> None:
        entry = self.live.pop(aid, None)
        if entry is not None:
            alloc, secret = entry
            (self.p.free_generic if secret else self.sq.free)(alloc)

    @invariant()
    def live_unmapped_not_present(self) -> None:
        dm = self.k.directmap
        for alloc, secret in self.live.values():
            if secret:
                assert not any(dm.is_present(pfn) for pfn in alloc.pfns())

    @invariant()
    def free_unmapped_pages_present(self) -> None:
        dm = self.k.directmap
        for zone in self.k.zones:
            for block in unmapped_blocks(self.p, zone):
                assert all(dm.is_present(pfn) for pfn in free_pfns_in_block(zone, block))

    @invariant()
    def conserved(self) -> None:
        k = self.k
        live = sum(a.nr_pages() for a, _ in self.live.values())
        assert k.check_conservation() == 0
        assert k.nr_allocated == len(k.pt_pfns) + live + self.filler
        assert k.violations == []


TestUnmappedMachine = UnmappedMachine.TestCase
TestUnmappedMachine.settings = settings(
    max_examples=25, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
