"""``gfp-unmapped`` (v3 ``__GFP_UNMAPPED``): hand-derived scenarios and invariants.

Common setting (as tests/test_kernel_scenarios.py): 4 GiB, one node, 4 CPUs (every flush that
reaches all CPUs sends 3 IPIs), gbpages, 64 MiB reserved. Boot: DirectMap4k 2048 kB,
DirectMap2M 511 * 2048 = 1046528 kB, DirectMap1G 3 * 1048576 = 3145728 kB, 2 page-table
pages; the buddy holds pfns 16384.. in order-10 MOVABLE blocks, lowest first.

The first refill on a fresh machine (derived once, used below): ``alloc_pages(GFP_KERNEL |
__GFP_ZERO, 9)`` is UNMOVABLE, whose lists are empty; ``__rmqueue_fallback`` takes the order-10
MOVABLE block at 16384 and steals it whole (both pageblocks become UNMOVABLE); ``expand``
leaves 16896 (order 9) on the UNMOVABLE list and returns 16384; the 512 pages are zeroed.
The cache gets the order-9 block 16384 (``PB_unmapped`` on pageblock 32, ``nr_cached[9]``
= 1), then serves order-0 requests in ascending pfn order: the first ``rmqueue`` expands
16384 into 16385 (o0), 16386 (o1), ..., 16640 (o8) and returns 16384; the next returns the
order-0 head 16385; then 16386 is split into 16386 + 16387, and so on: request i gets
16384 + i. Lock round trips: a miss is 3 (rmqueue miss, the refill's ``__free_one_page``,
rmqueue again), a hit 1, a free 1.

- ``posted`` unmaps only the first page: ``set_direct_map_invalid_noflush(16384)`` splits
  PMD 32 (one page-table page, the next UNMOVABLE order-0 page: the order-9 block 16896 is
  expanded and its head 16896 taken, leaving 16897 (o0), 16898 (o1), ..., 17152 (o8);
  level-2 split 1; DirectMap2M -2048 kB, DirectMap4k +2048 kB; ``flush_tlb_all``), then
  ``flush_tlb_kernel_range`` of 1 page. Pages 16385..16895 stay present.
- ``fixed`` makes all 512 pages invalid with one CPA call: the 2 MiB entry 32 is covered
  exactly, so it is changed in place (no split, no page-table page), and the flush of 512
  pages (> 33) is a ``flush_tlb_all``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.designs.gfp_unmapped import GfpUnmapped
from framework.engine import Cell, Runner, freeze_sets, prepare
from framework.kernel.buddy import BUDDY_ORDER_MASK
from framework.kernel.consts import _PAGE_GLOBAL, _PAGE_NX, _PAGE_PRESENT, _PAGE_RW, PAGE_KERNEL
from framework.kernel.kernel import MODULES_VPAGE, Kernel
from framework.machine.costs import resolve_costs
from framework.params import resolve
from framework.plugins import get_registry
from framework.request import ALLOC, FREE, PRESSURE, WRITE, Event, Request
from framework.statusquo import StatusQuo
from tests.conftest import small_spec
from tests.helpers import SECRET, cell_result, row, secret_pages
from tests.helpers import unmapped_counters as counters

FIRST = 16384  # first free pfn after the 64 MiB reservation
GIB1 = 262144  # first pfn of GiB 1 (first free pfn with 1024 MiB reserved)
KPAGE = Request("kernel", 4096, "RW", True, None, "OWNER")
PB_MASK = 1 << 7
BOOT = {"DirectMap4k": 2048, "DirectMap2M": 1046528, "DirectMap1G": 3145728}


def run(events: list[Event], variant: str = "posted", reserved_mib: int = 64,
        **extra: Any) -> tuple[Runner, dict[str, Any]]:
    """Run ``events`` through the engine (checks on) on a fresh 4 GiB, 4-CPU machine."""
    sets = {"machine": {"mem_gib": "4", "hole_mib": "0", "pcp": "0",
                        "min_free_kbytes": "0", "state": "fresh", "cpus": "4", "nodes": "1",
                        "reserved_mib": str(reserved_mib)},
            "gfp-unmapped": {"variant": variant, **{k: str(v) for k, v in extra.items()}}}
    setup = prepare(Cell("gfp-unmapped", "secretmem", "default", 0, freeze_sets(sets)),
                    get_registry())
    setup.events = iter(events)
    runner = Runner(setup)
    return runner, runner.run()


def where(result: dict[str, Any], rule: str) -> list[int]:
    return [int(v["where"], 16) for v in result["violations"] if v["rule"] == rule]


# -- 512 secretmem pages on a fresh machine ------------------------------------------------
def test_512_secretmem_posted() -> None:
    """One refill; only page 16384 leaves the direct map.

    Counters: 1 CPA call, 1 level-2 split (page-table page 16896), ``flush_tlb_all`` 1 (the
    split's), range flush 1 (the refill's 1-page flush): 2 flushes x 3 IPIs = 6. DirectMap4k
    2048 + 2048 = 4096 kB, DirectMap2M 1046528 - 2048 = 1044480 kB, 3 page-table pages,
    512 pages zeroed by ``__GFP_ZERO``. Requests 2..512 get 16385..16895, all still present:
    511 ``unmapped_present`` violations, one per page, none for 16384. The pages were zero
    from the refill, so no ``not_zeroed``. debugfs: Free all 0 (the block is used up), Cached
    1 at order 9; lock round trips 3 + 511 = 514. Conservation: 512 owned + 0 cached + 1
    page table = nr_allocated 513.
    """
    runner, result = run(secret_pages(512))
    k = runner.kernel
    assert counters(k) == {
        "DirectMap4k": 4096, "DirectMap2M": 1044480, "DirectMap1G": 3145728, "l2": 1, "l3": 0,
        "pt": 3, "flush_all": 1, "flush_range": 1, "flush_local": 0, "ipis": 6, "cpa": 1,
        "zeroed": 512,
    }
    assert k.pt_pfns == {16896}
    assert result["violation_counts"] == {"unmapped_present": 511}
    assert runner.checker.pages().keys() == set(range(FIRST, FIRST + 512))
    stats = result["stats"]
    assert stats["Free"] == [0] * 11 and stats["Cached"] == row(9)
    assert stats["Released"] == [0] * 11
    assert stats["lock_round_trips"] == 514 and stats["refills"] == 1
    assert k.nr_allocated == 513 and result["metrics"]["cache_pages"] == 0
    assert not k.directmap.is_present(FIRST) and k.directmap.is_present(FIRST + 1)


def test_512_secretmem_fixed() -> None:
    """One refill made invalid in place: no split, 1 CPA call, one ``flush_tlb_all`` (3 IPIs).

    DirectMap counters stay at boot values, 2 page-table pages, 512 zeroed, no violation.
    """
    runner, result = run(secret_pages(512), "fixed")
    k = runner.kernel
    assert counters(k) == {
        **BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
        "flush_local": 0, "ipis": 3, "cpa": 1, "zeroed": 512,
    }
    assert result["violation_counts"] == {}
    assert result["stats"]["Cached"] == row(9) and result["stats"]["lock_round_trips"] == 514
    assert k.directmap.pmd_prot[FIRST >> 9] == _PAGE_NX  # PRESENT, RW and GLOBAL gone
    assert k.nr_allocated == 512


@pytest.mark.parametrize("variant, expected, present", [
    # posted: PUD 1 split (level 3, page-table page 262656 from expanding the order-9 buddy
    # 262656, flush_tlb_all), then PMD 512 split (level 2, page-table page 262657, the
    # order-0 head left by that expand, flush_tlb_all), then the 1-page range flush:
    # 3 flushes, 9 IPIs. DirectMap1G 2 x 1048576; DirectMap2M (511 + 512 - 1) x 2048 =
    # 2093056; DirectMap4k 2048 + 2048.
    ("posted", {"DirectMap4k": 4096, "DirectMap2M": 2093056, "DirectMap1G": 2097152,
                "l2": 1, "l3": 1, "pt": 4, "flush_all": 2, "flush_range": 1, "flush_local": 0,
                "ipis": 9, "cpa": 1, "zeroed": 512}, 511),
    # fixed: the 512-page change does not cover PUD 1, so it is split (level 3, page-table
    # page 262656, flush_tlb_all); PMD 512 is then covered exactly and changed in place; the
    # 512-page flush is a flush_tlb_all: 2 flushes, 6 IPIs. DirectMap2M (511 + 512) x 2048.
    ("fixed", {"DirectMap4k": 2048, "DirectMap2M": 2095104, "DirectMap1G": 2097152,
               "l2": 0, "l3": 1, "pt": 3, "flush_all": 2, "flush_range": 0, "flush_local": 0,
               "ipis": 6, "cpa": 1, "zeroed": 512}, 0),
])
def test_512_secretmem_in_a_1g_mapping(variant: str, expected: dict[str, int],
                                       present: int) -> None:
    """With 1024 MiB reserved the first refill is block 262144, inside the 1 GiB entry of GiB 1.

    The fallback steals the order-10 block 262144 and leaves 262656 (order 9) UNMOVABLE.
    """
    runner, result = run(secret_pages(512), variant, reserved_mib=1024)
    assert counters(runner.kernel) == expected
    assert result["violation_counts"].get("unmapped_present", 0) == present
    if present:
        assert where(result, "unmapped_present")[0] == GIB1 + 1
        assert runner.kernel.pt_pfns == {262656, 262657}


# -- free, then allocate again ---------------------------------------------------------------
def test_free_then_realloc_posted_is_not_zeroed() -> None:
    """Page 16384 is written, freed through the page cache and handed to the next owner.

    The free is diverted (PB_unmapped) with no zeroing; it merges with 16385 (o0), 16386
    (o1), ..., 16640 (o8) back into the order-9 block 16384 (its buddy 16896 is not cached).
    The next fault expands it and gets 16384 again: not present (fine) but written by the
    previous owner: one ``not_zeroed`` at 16384, at event 3, and, since the data was an
    UNMAPPED owner's, one ``stale_data`` there too. Locks: 3 + 1 + 1 = 5.
    """
    events = [Event(ALLOC, 1, SECRET), Event(WRITE, 1, None, 4096), Event(FREE, 1),
              Event(ALLOC, 2, SECRET)]
    runner, result = run(events)
    assert result["violation_counts"] == {"not_zeroed": 1, "stale_data": 1}
    assert {(v["where"], v["event"]) for v in result["violations"]} == {(hex(FIRST), 3)}
    assert result["stats"]["lock_round_trips"] == 5 and result["stats"]["stolen_pages"] == 0
    assert counters(runner.kernel)["zeroed"] == 512


def test_free_then_realloc_fixed_is_clean() -> None:
    """``fixed`` clears 16384 before it goes back on the list, through a temporary mapping.

    One more zeroed page (513) and one local flush; no IPI beyond the refill's 3.
    """
    events = [Event(ALLOC, 1, SECRET), Event(WRITE, 1, None, 4096), Event(FREE, 1),
              Event(ALLOC, 2, SECRET)]
    runner, result = run(events, "fixed")
    assert result["violation_counts"] == {}
    assert runner.checker.pages() == {FIRST: 2}
    assert counters(runner.kernel) == {
        **BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
        "flush_local": 1, "ipis": 3, "cpa": 1, "zeroed": 513,
    }


# -- the shrinker -------------------------------------------------------------------------
def all_freed_then_pressure() -> list[Event]:
    return [*secret_pages(512), *(Event(FREE, i) for i in range(1, 513)),
            Event(PRESSURE, 0, None, 512)]


def test_shrinker_posted_releases_order_9_and_clears_pb() -> None:
    """512 pages faulted, freed (merging back into the order-9 block 16384), then pressure.

    ``count_objects`` = 512; orders 0..8 are empty (9 lock trips), order 9 releases 16384:
    ``nr_released[9]`` = 1, PB_unmapped cleared (order == pageblock_order), 512 per-page
    ``set_direct_map_default_noflush`` calls (only 16384 changes; no flush), then
    ``__free_pages_ok(FPI_TO_TAIL)``: the buddy 16896 is split (page table), so 16384 stays
    order 9. CPA calls 1 + 512 = 513; PMD 32 stays split: DirectMap4k still 4096 kB.
    ``unmapped_present``: 511 at the faults and 511 again at the frees (checked while
    owned). ``stale_data``: all 512 pages were written and freed unzeroed, and the release
    puts them back present in the buddy with the data: 512 at the final check. Locks:
    514 + 512 frees + 9 + 2 (order 9: take, re-take) = 1037. At the end only
    the page-table page is allocated.
    """
    runner, result = run(all_freed_then_pressure())
    k = runner.kernel
    assert result["metrics"]["events"] == 1537
    stats = result["stats"]
    assert stats["Released"] == row(9) and stats["Free"] == [0] * 11
    assert stats["lock_round_trips"] == 1037
    assert k.get_pageblock_flags(FIRST) & PB_MASK == 0
    assert all(k.directmap.is_present(p) for p in range(FIRST, FIRST + 512))
    assert k.directmap.prot(FIRST) == PAGE_KERNEL & ~_PAGE_GLOBAL
    assert counters(k) == {
        "DirectMap4k": 4096, "DirectMap2M": 1044480, "DirectMap1G": 3145728, "l2": 1, "l3": 0,
        "pt": 3, "flush_all": 1, "flush_range": 1, "flush_local": 0, "ipis": 6, "cpa": 513,
        "zeroed": 512,
    }
    assert result["violation_counts"] == {"unmapped_present": 1022, "stale_data": 512}
    assert result["metrics"]["cache_pages"] == 0
    assert k.nr_allocated == len(k.pt_pfns) == 1
    assert k.check_conservation() == 0


def test_shrinker_fixed_restores_the_2m_entry() -> None:
    """``fixed``: the frees clear each page (512 more zeroed, 512 local flushes); the release
    is one CPA call over the block, which puts PMD 32 back present in place (no split: the
    direct map was never split), clears PB_unmapped; the freed block merges with its free
    buddy 16896 into the order-10 block 16384. CPA calls 2, one flush_tlb_all, nothing
    allocated at the end.
    """
    runner, result = run(all_freed_then_pressure(), "fixed")
    k = runner.kernel
    assert result["violation_counts"] == {}
    assert result["stats"]["Released"] == row(9)
    assert counters(k) == {
        **BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
        "flush_local": 512, "ipis": 3, "cpa": 2, "zeroed": 1024,
    }
    assert k.directmap.pmd_prot[FIRST >> 9] == _PAGE_PRESENT | _PAGE_RW | _PAGE_NX
    assert k.get_pageblock_flags(FIRST) & PB_MASK == 0
    assert k.preferred_zone().buddy[FIRST] & BUDDY_ORDER_MASK == 10
    assert k.nr_allocated == 0


# -- stolen frees ------------------------------------------------------------------------
def stolen_after_release() -> list[Event]:
    """Fault 2 pages, free the first, release it (order 0: PB_unmapped stays), let a kernel
    user take it from the buddy, write and free it: the free is diverted (stolen)."""
    return [Event(ALLOC, 1, SECRET), Event(ALLOC, 2, SECRET), Event(FREE, 1),
            Event(PRESSURE, 0, None, 1), Event(ALLOC, 3, KPAGE), Event(ALLOC, 4, KPAGE),
            Event(WRITE, 4, None, 4096), Event(FREE, 4), Event(ALLOC, 5, SECRET)]


def test_stolen_after_partial_release_posted() -> None:
    """A page released at order 0 keeps PB_unmapped; its next user's free is stolen.

    After the free of 16384 the cache holds 16384 (o0; its buddy 16385 is owned), 16386
    (o1) .. 16640 (o8): 511 pages. ``scan_objects(1)`` releases 16384 from order 0
    (``nr_released[0]`` = 1, 1 CPA call, bit kept) to the *tail* of the UNMOVABLE order-0
    list, behind 16897 (left by the page-table page's expand). The kernel user gets 16897
    first, then 16384, writes it and frees it: diverted, ``stolen_pages`` = 1, still present
    and dirty. The next fault takes the order-0 head, 16384: ``unmapped_present`` and
    ``not_zeroed`` there (event 8), plus ``unmapped_present`` for 16385 at event 1.
    """
    runner, result = run(stolen_after_release())
    assert result["violation_counts"] == {"unmapped_present": 2, "not_zeroed": 1}
    assert where(result, "unmapped_present") == [FIRST + 1, FIRST]
    assert where(result, "not_zeroed") == [FIRST]
    assert runner.checker.pages()[16897] == 3
    stats = result["stats"]
    assert stats["Released"] == row(0) and stats["stolen_pages"] == 1
    assert runner.kernel.get_pageblock_flags(FIRST) & PB_MASK
    assert counters(runner.kernel)["cpa"] == 2


def test_stolen_after_partial_release_fixed() -> None:
    """``fixed``: the order-0 release is a 1-page CPA inside the in-place invalid PMD 32, so
    it splits it (page-table page 16896, level-2 split, flush_tlb_all) and leaves 16897 on
    the order-0 list: the kernel user again gets 16897 then 16384. The stolen free finds
    16384 present: cleared through the direct map, made invalid (CPA 3), 1-page range flush.
    Counters: flushes 2 full + 1 range = 9 IPIs; zeroed 512 + 1 (free of 16384 by its
    first owner) + 2 (the kernel user's __GFP_ZERO pages) + 1 (stolen) = 516. No violation.
    """
    runner, result = run(stolen_after_release(), "fixed")
    assert result["violation_counts"] == {}
    assert result["stats"]["stolen_pages"] == 1
    assert runner.checker.pages()[FIRST] == 5
    assert counters(runner.kernel) == {
        "DirectMap4k": 4096, "DirectMap2M": 1044480, "DirectMap1G": 3145728, "l2": 1, "l3": 0,
        "pt": 3, "flush_all": 2, "flush_range": 1, "flush_local": 1, "ipis": 9, "cpa": 3,
        "zeroed": 516,
    }


def stolen_before_marking() -> list[Event]:
    return [Event(ALLOC, 1, KPAGE), Event(WRITE, 1, None, 4096), Event(ALLOC, 2, SECRET),
            Event(FREE, 1), Event(ALLOC, 3, SECRET)]


@pytest.mark.parametrize("variant, violations, expected", [
    # posted: invalid(16400) splits PMD 32 (page table 16385), 1-page range flush.
    ("posted", {"unmapped_present": 1, "not_zeroed": 1},
     {"l2": 1, "flush_all": 1, "flush_range": 1, "ipis": 6, "cpa": 1, "zeroed": 17}),
    # fixed: invalid(16400, 16) splits PMD 32 too (16 pages do not cover it), 16-page range
    # flush (<= 33); the stolen 16384 is cleared, made invalid (CPA 2), 1-page range flush.
    ("fixed", {}, {"l2": 1, "flush_all": 1, "flush_range": 2, "ipis": 9, "cpa": 2,
                   "zeroed": 18}),
])
def test_stolen_page_allocated_before_the_block_was_marked(
        variant: str, violations: dict[str, int], expected: dict[str, int]) -> None:
    """With order-9 refills a pageblock is the cache's whole when it is marked, so no page of
    it can be held by anyone else then. A refill below pageblock_order (``refill_order=4``:
    a machine without free 2 MiB blocks) marks a pageblock the cache owns only 16 pages of.

    A kernel page is taken first: the fallback steals the order-10 block 16384 and returns
    16384, leaving 16385 (o0), 16386 (o1), ..., 16400 (o4), ..., 16896 (o9); it is zeroed
    (1) and written. The fault's refill takes 16400 (order 4, 16 zeroed: 17), marks
    pageblock 32; the split's page table takes 16385. The kernel page's free is then
    diverted (stolen) and lands at the head of the cache's order-0 list (its buddy 16385 is
    the page table), so the next fault gets 16384: present and dirty under ``posted``.
    """
    runner, result = run(stolen_before_marking(), variant, refill_order=4)
    assert result["violation_counts"] == violations
    assert runner.checker.pages()[16400] == 2 and runner.checker.pages()[FIRST] == 3
    assert runner.kernel.pt_pfns == {16385}
    stats = result["stats"]
    assert stats["Cached"] == row(4) and stats["stolen_pages"] == 1
    got = counters(runner.kernel)
    assert {key: got[key] for key in expected} == expected


# -- a module under __GFP_UNMAPPED ---------------------------------------------------------
def module_events() -> list[Event]:
    return [Event(ALLOC, 1, Request("module_text", 3 * 4096, "ROX", False, None, "OWNER")),
            Event(ALLOC, 2, Request("module_data", 4096, "RW", False, None, "OWNER")),
            Event(WRITE, 1), Event(WRITE, 2), Event(FREE, 1), Event(FREE, 2),
            Event(ALLOC, 3, SECRET)]


def test_module_posted() -> None:
    """module_alloc takes one page at a time from the cache; VM_FLUSH_RESET_PERMS remaps.

    Text gets 16384 (the refill's unmapped page), 16385, 16386 at module address
    MODULES_VPAGE (4-page span with the guard); data 16387 at MODULES_VPAGE + 4. Sealing:
    ``set_memory_ro`` (CPA 2; the alias of 16384 is already not present and unchanged,
    16385/16386 become RO; forced ``flush_tlb_all``), ``set_memory_x`` (CPA 3; 3-page range
    flush), data ``set_memory_nx`` (CPA 4; already NX, no flush). Each ``vfree`` resets
    perms: invalid per page, ``flush_tlb_all``, default per page (text 6 calls, data 2): CPA
    12; every page comes back present and RW, then the generic free diverts it into the
    cache (Rick's finding), where the four merge back into the order-9 block 16384.
    Flushes: full 4 (split, RO, two resets), range 2: 18 IPIs. The next fault gets 16384,
    present and written by the loader. ``unmapped_present``: 2 + 1 at the allocations,
    2 + 1 at the frees, 1 at the fault = 7; ``not_zeroed`` 1. Locks: 3 + 1 + 1 + 1 for the
    pages, 4 frees, 1 fault = 11.
    """
    runner, result = run(module_events())
    k = runner.kernel
    assert result["violation_counts"] == {"unmapped_present": 7, "not_zeroed": 1}
    assert counters(k) == {
        "DirectMap4k": 4096, "DirectMap2M": 1044480, "DirectMap1G": 3145728, "l2": 1, "l3": 0,
        "pt": 3, "flush_all": 4, "flush_range": 2, "flush_local": 0, "ipis": 18, "cpa": 12,
        "zeroed": 512,
    }
    assert result["stats"]["lock_round_trips"] == 11 and result["stats"]["refills"] == 1
    assert runner.checker.pages() == {FIRST: 3}
    assert k.directmap.prot(FIRST + 3) == _PAGE_PRESENT | _PAGE_RW | _PAGE_NX


def test_module_fixed() -> None:
    """``fixed``: in-place refill (CPA 1, flush_tlb_all); sealing changes no alias (PMD 32 is
    invalid in place: RO on it is a no-op, no split), CPA 2-4 as in ``posted`` with one forced
    full flush and one 3-page range flush. No VM_FLUSH_RESET_PERMS: each ``vfree`` frees the
    pages (cleared through a temporary mapping: 4 zeroed, 4 local flushes) and purges the
    module alias at once: a 4-page then a 2-page range flush. Flushes: 2 full, 3 range:
    15 IPIs. No violation.
    """
    runner, result = run(module_events(), "fixed")
    k = runner.kernel
    assert result["violation_counts"] == {}
    assert counters(k) == {
        **BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 2, "flush_range": 3,
        "flush_local": 4, "ipis": 15, "cpa": 4, "zeroed": 516,
    }
    assert not k.areas and k.modules.free_pages() == k.modules.size


def test_module_pages_come_from_the_cache() -> None:
    """The text area's pages are the cache's 16384..16386 and its address is the area base.

    A BPF program then needs a new pack: ``module_alloc`` of 512 pages takes the cache's
    other 509 pages (16387..16895), then refills: no order-9 block is UNMOVABLE, so the
    fallback steals the order-10 block 17408 (17920 stays as order 9); its first page's
    invalid splits PMD 34 with the page table 16897 (the order-0 head left by the first
    page table's expand); the pack's last 3 pages are 17408..17410 and 509 stay cached.
    """
    kernel = Kernel(small_spec(), resolve_costs({}))
    design = GfpUnmapped(kernel, resolve("gfp-unmapped", GfpUnmapped.params, {}))
    text = design.alloc(Request("module_text", 3 * 4096, "ROX", False, None, "OWNER"))
    assert text is not None and text.unmapped
    assert text.blocks == ((FIRST, 0), (FIRST + 1, 0), (FIRST + 2, 0))
    assert text.vaddr == MODULES_VPAGE << 12
    assert kernel.allocated == {FIRST: 9, 16896: 0}  # the refill block and the page table
    bpf = design.alloc(Request("bpf_prog", 100, "ROX", False, None, "OWNER"))
    assert bpf is not None and bpf.blocks == ()
    assert StatusQuo.cache_pages(design) == 512  # the pack: 512 pages from the cache
    assert design.cache.nr_pages() == 509 and design.cache_pages() == 509 + 512
    assert design.refills == 2 and kernel.pt_pfns == {16896, 16897}


# -- debugfs text, whole cells, invariants -------------------------------------------------
def test_debugfs_text_matches_the_docstring_example() -> None:
    """After one refill and everything freed again: Free and Cached 1 at order 9."""
    events = [*secret_pages(512), *(Event(FREE, i) for i in range(1, 513))]
    runner, _ = run(events, "fixed")
    text = runner.allocator.cache.debugfs()  # type: ignore[attr-defined]
    assert text == (
        "MAX_ORDER: 11\n\n"
        "Order:        0     1     2     3     4     5     6     7     8     9    10\n"
        "Free:         0     0     0     0     0     0     0     0     0     1     0\n"
        "Cached:       0     0     0     0     0     0     0     0     0     1     0\n"
        "Released:     0     0     0     0     0     0     0     0     0     0     0\n"
    )
    import framework.designs._unmapped_cache as cache_module
    assert "\n".join(line.strip() for line in text.splitlines()) in "\n".join(
        line.strip() for line in (cache_module.__doc__ or "").splitlines())


def test_default_suite() -> None:
    """Every default workload runs under both variants without an exception; ``fixed``
    breaks no promise of its own; ``posted`` is caught on secretmem by both checks."""
    workloads = [name for name, cls in get_registry().workloads.items() if cls.default]
    for name in workloads:
        posted = cell_result("gfp-unmapped", name, {})
        fixed = cell_result("gfp-unmapped", name, {"gfp-unmapped": {"variant": "fixed"}})
        assert fixed["violation_counts"] == {}, name
        assert fixed["metrics"]["events"] == posted["metrics"]["events"]
        if name == "secretmem":
            assert posted["violation_counts"].keys() == {"unmapped_present", "not_zeroed",
                                                         "stale_data"}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["posted", "fixed"]),
       st.lists(st.tuples(st.sampled_from(["alloc", "free", "pressure"]),
                          st.integers(0, 700)), max_size=60))
def test_cache_invariants(variant: str, ops: list[tuple[str, int]]) -> None:
    """Random faults, frees and pressure: conservation holds, free blocks are disjoint and
    aligned, in ``fixed`` every cached page is absent from the direct map and zero, and a
    full shrink after freeing everything leaves only page tables allocated."""
    events: list[Event] = []
    live: list[int] = []
    next_id = 1
    for op, arg in ops:
        if op == "alloc" or not live:
            events += [Event(ALLOC, next_id, SECRET), Event(WRITE, next_id, None, 4096)]
            live.append(next_id)
            next_id += 1
        elif op == "free":
            events.append(Event(FREE, live.pop(arg % len(live))))
        else:
            events.append(Event(PRESSURE, 0, None, arg))
    events += [Event(FREE, i) for i in live]
    runner, result = run(events, variant)
    k = runner.kernel
    cache = runner.allocator.cache  # type: ignore[attr-defined]
    assert not result["violation_counts"].get("conservation")
    seen: set[int] = set()
    for pfn, order in cache.order_of.items():
        assert pfn % (1 << order) == 0
        pages = set(range(pfn, pfn + (1 << order)))
        assert not pages & seen
        seen |= pages
    if variant == "fixed":
        assert not result["violation_counts"]
        assert not any(k.directmap.is_present(p) for p in seen)
        assert not seen & k.dirty
    k.shrink(1 << 20)
    assert cache.nr_pages() == 0
    assert k.nr_allocated == len(k.pt_pfns)
    assert k.check_conservation() == 0
