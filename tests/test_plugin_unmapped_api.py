"""``unmapped-api`` (``unmapped_pages_alloc/free``, rfc-v2): hand-derived scenarios.

Common setting and the first refill on a fresh machine as in test_plugin_gfp_unmapped.py:
4 GiB, one node, 4 CPUs (3 IPIs per flush on all CPUs), gbpages, 64 MiB reserved; the refill
``alloc_pages(GFP_KERNEL | __GFP_ZERO, 9)`` steals the order-10 block 16384 and returns
16384 (512 pages zeroed), leaving 16896 (order 9) UNMOVABLE. ``set_memory_np(16384, 512)``
covers the 2 MiB entry 32 exactly: changed in place (PRESENT cleared; GLOBAL dropped with it),
no split; its ``cpa_flush`` of 512 pages (> 33) is one ``flush_tlb_all``. Pages are handed out
in ascending pfn order. The refill cleared the block, so those pages need no clear at
hand-out; a page that has had an owner since is cleared at hand-out when ``zero`` is asked.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework.engine import Cell, Runner, freeze_sets, prepare
from framework.kernel.buddy import BUDDY_ORDER_MASK
from framework.kernel.consts import _PAGE_NX, _PAGE_PRESENT, _PAGE_RW
from framework.plugins import get_registry
from framework.request import ALLOC, FREE, PRESSURE, WRITE, Event, Request
from tests.helpers import SECRET, cell_result, row, secret_pages
from tests.helpers import unmapped_counters as counters

FIRST = 16384
KPAGE = Request("kernel", 4096, "RW", True, None, "OWNER")
PB_MASK = 1 << 7
BOOT = {"DirectMap4k": 2048, "DirectMap2M": 1046528, "DirectMap1G": 3145728}


def run(events: list[Event], reserved_mib: int = 64,
        **params: Any) -> tuple[Runner, dict[str, Any]]:
    """Run ``events`` through the engine (checks on) on a fresh 4 GiB, 4-CPU machine."""
    sets = {"machine": {"mem_gib": "4", "hole_mib": "0", "pcp": "0",
                        "min_free_kbytes": "0", "state": "fresh", "cpus": "4", "nodes": "1",
                        "reserved_mib": str(reserved_mib)},
            "unmapped-api": {k: str(v) for k, v in params.items()}}
    setup = prepare(Cell("unmapped-api", "secretmem", "default", 0, freeze_sets(sets)),
                    get_registry())
    setup.events = iter(events)
    runner = Runner(setup)
    return runner, runner.run()


# -- 512 secretmem pages --------------------------------------------------------------------
@pytest.mark.parametrize("reserved_mib, expected", [
    # GiB 0, 2 MiB entries: one in-place change, one flush_tlb_all.
    (64, {**BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
          "flush_local": 0, "ipis": 3, "cpa": 1, "zeroed": 512}),
    # GiB 1 (block 262144) is a 1 GiB entry: split first (level 3, page-table page 262656,
    # flush_tlb_all), then PMD 512 changes in place, then cpa_flush: 2 full flushes, 6 IPIs.
    # DirectMap2M (511 + 512) x 2048 kB, DirectMap1G 2 x 1048576 kB.
    (1024, {"DirectMap4k": 2048, "DirectMap2M": 2095104, "DirectMap1G": 2097152, "l2": 0,
            "l3": 1, "pt": 3, "flush_all": 2, "flush_range": 0, "flush_local": 0,
            "ipis": 6, "cpa": 1, "zeroed": 512}),
])
def test_512_secretmem(reserved_mib: int, expected: dict[str, int]) -> None:
    """One refill, whole block not present, every page clean from the refill: no violation,
    no hand-out clear; lock round trips 3 + 511; debugfs Cached 1 at order 9."""
    runner, result = run(secret_pages(512), reserved_mib)
    k = runner.kernel
    assert counters(k) == expected
    assert result["violation_counts"] == {}
    stats = result["stats"]
    assert stats["Cached"] == row(9) and stats["Free"] == [0] * 11
    assert stats["lock_round_trips"] == 514 and stats["zeroed_at_handout"] == 0
    block = FIRST if reserved_mib == 64 else 262144
    assert k.directmap.prot(block) == _PAGE_RW | _PAGE_NX  # set_memory_np clears PRESENT only


def test_snapshot_literal_unmap_repeats_the_v3_bug() -> None:
    """``unmap=request``: ``set_memory_np(addr, 1 << order)`` with the request's order 0 makes
    only 16384 not present: the 1-page change splits PMD 32 (page table 16896, level 2,
    flush_tlb_all), its cpa_flush is a 1-page range flush (6 IPIs in all), and 16385..16895
    are handed out present: 511 ``unmapped_present``."""
    runner, result = run(secret_pages(512), unmap="request")
    assert result["violation_counts"] == {"unmapped_present": 511}
    assert counters(runner.kernel) == {
        "DirectMap4k": 4096, "DirectMap2M": 1044480, "DirectMap1G": 3145728, "l2": 1, "l3": 0,
        "pt": 3, "flush_all": 1, "flush_range": 1, "flush_local": 0, "ipis": 6, "cpa": 1,
        "zeroed": 512,
    }


# -- zeroing per request ------------------------------------------------------------------
@pytest.mark.parametrize("free_hook", [0, 1])
def test_free_then_realloc_is_cleared_at_hand_out(free_hook: int) -> None:
    """16384 is written and freed (secretmem's free_folio calling unmapped_pages_free, or the
    generic path diverted by the hook: the page is not present, so the hook changes nothing);
    it merges back into the order-9 block. The next fault gets 16384, no longer known clean:
    cleared through a temporary mapping (513 zeroed, 1 local flush). No violation."""
    events = [Event(ALLOC, 1, SECRET), Event(WRITE, 1, None, 4096), Event(FREE, 1),
              Event(ALLOC, 2, SECRET)]
    runner, result = run(events, free_hook=free_hook)
    assert result["violation_counts"] == {}
    assert runner.checker.pages() == {FIRST: 2}
    assert result["stats"]["zeroed_at_handout"] == 1
    assert counters(runner.kernel) == {
        **BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
        "flush_local": 1, "ipis": 3, "cpa": 1, "zeroed": 513,
    }
    assert bool(runner.kernel.free_hooks) == bool(free_hook)


def test_guest_memory_is_not_zeroed() -> None:
    """A 2 MiB guest request (``zero=False``) takes the whole order-9 refill block; the guest
    writes it; it is freed explicitly. A secretmem fault then gets 16384 and clears it (513
    zeroed); a 4 KiB guest request gets 16385 as the guest left it: no clear for zero=False
    (Sean's CoCo case). No ``not_zeroed`` (it did not ask for zeroed memory), but one
    ``stale_data`` at 16385: the first guest's data went to another owner."""
    guest_2m = Request("guest", 2 << 20, "UNMAPPED", False, None, "OWNER")
    guest_4k = Request("guest", 4096, "UNMAPPED", False, None, "OWNER")
    events = [Event(ALLOC, 1, guest_2m), Event(WRITE, 1), Event(FREE, 1),
              Event(ALLOC, 2, SECRET), Event(ALLOC, 3, guest_4k)]
    runner, result = run(events)
    assert result["violation_counts"] == {"stale_data": 1}
    assert result["violations"][0]["where"] == hex(FIRST + 1)
    assert runner.checker.pages() == {FIRST: 2, FIRST + 1: 3}
    assert FIRST + 1 in runner.kernel.dirty
    assert result["stats"]["zeroed_at_handout"] == 1
    assert counters(runner.kernel)["zeroed"] == 513


# -- the free hook and stolen pages -------------------------------------------------------
@pytest.mark.parametrize("free_hook, owner, stolen, expected", [
    # The kernel page's free is diverted (stolen); 16384 is present, so the hook makes it
    # invalid (CPA 2) and flushes it (range flush 2, 9 IPIs); the fault gets it from the
    # order-0 head and clears it (18 zeroed, 1 local flush).
    (1, FIRST, 1, {"l2": 1, "flush_all": 1, "flush_range": 2, "flush_local": 1, "ipis": 9,
                   "cpa": 2, "zeroed": 18}),
    # Without the hook the kernel page goes back to the buddy; the fault gets 16401, left by
    # the expand and clean from the refill.
    (0, 16401, 0, {"l2": 1, "flush_all": 1, "flush_range": 1, "flush_local": 0, "ipis": 6,
                   "cpa": 1, "zeroed": 17}),
])
def test_partial_refill_and_the_free_hook(free_hook: int, owner: int, stolen: int,
                                          expected: dict[str, int]) -> None:
    """``refill_order=4``: a kernel page takes 16384 first (the fallback steals the order-10
    block 16384; 1 zeroed), then the fault's refill takes 16400 (order 4, 16 zeroed) and
    ``set_memory_np(16400, 16)`` splits PMD 32 (page table 16385, flush_tlb_all) and does a
    16-page range flush; pageblock 32 gets PB_unmapped though the cache owns 16 pages of it.
    """
    events = [Event(ALLOC, 1, KPAGE), Event(WRITE, 1, None, 4096), Event(ALLOC, 2, SECRET),
              Event(FREE, 1), Event(ALLOC, 3, SECRET)]
    runner, result = run(events, free_hook=free_hook, refill_order=4)
    assert result["violation_counts"] == {}
    assert runner.checker.pages()[16400] == 2 and runner.checker.pages()[owner] == 3
    assert result["stats"]["stolen_pages"] == stolen
    assert runner.kernel.get_pageblock_flags(FIRST) & PB_MASK
    got = counters(runner.kernel)
    assert {key: got[key] for key in expected} == expected


# -- the optional shrinker ----------------------------------------------------------------
@pytest.mark.parametrize("shrinker", [1, 0])
def test_shrinker_parameter(shrinker: int) -> None:
    """512 pages faulted and freed (explicitly, no zeroing at free): the cache holds the
    order-9 block 16384. With the shrinker, pressure releases it: one CPA call puts PMD 32
    back present in place (PRESENT | RW | NX, no GLOBAL), PB_unmapped cleared, the block
    merges with its free buddy 16896 into the order-10 block 16384: nothing stays allocated.
    Without it (the snapshot) pressure frees nothing and 512 pages stay cached. The 512
    pages were written and never cleared: released, they are in the buddy, present, with
    the secretmem data (512 ``stale_data`` at the final check); kept cached, unmapped, they
    are not judged."""
    events = [*secret_pages(512), *(Event(FREE, i) for i in range(1, 513)),
              Event(PRESSURE, 0, None, 512)]
    runner, result = run(events, shrinker=shrinker)
    k = runner.kernel
    assert result["violation_counts"] == ({"stale_data": 512} if shrinker else {})
    stats = result["stats"]
    if shrinker:
        assert stats["Released"] == row(9) and stats["Free"] == [0] * 11
        assert k.directmap.pmd_prot[FIRST >> 9] == _PAGE_PRESENT | _PAGE_RW | _PAGE_NX
        assert k.get_pageblock_flags(FIRST) & PB_MASK == 0
        assert k.preferred_zone().buddy[FIRST] & BUDDY_ORDER_MASK == 10
        assert k.nr_allocated == 0 and counters(k)["cpa"] == 2
    else:
        assert stats["Released"] == [0] * 11 and stats["Free"] == row(9)
        assert result["metrics"]["cache_pages"] == 512 and k.nr_allocated == 512
        assert counters(k)["cpa"] == 1
    assert counters(k)["zeroed"] == 512 and counters(k)["l2"] == 0


def test_dma_buffer_above_2m() -> None:
    """A 4 MiB DMA_ATTR_NO_KERNEL_MAPPING buffer (order 10): the refill asks for order 10 and
    gets the whole order-10 block 16384 (1024 zeroed); ``set_memory_np`` over it changes PMDs
    32 and 33 in place (one CPA call, one flush_tlb_all); both pageblocks get PB_unmapped;
    debugfs Cached 1 at order 10. Freed, it is one order-10 block in the cache."""
    dma = Request("dma_nokmap", 4 << 20, "UNMAPPED", False, None, "OWNER")
    runner, result = run([Event(ALLOC, 1, dma), Event(FREE, 1)])
    k = runner.kernel
    assert result["violation_counts"] == {}
    assert result["stats"]["Cached"] == row(10) and result["stats"]["Free"] == row(10)
    assert k.get_pageblock_flags(FIRST) & PB_MASK and k.get_pageblock_flags(FIRST + 512) & PB_MASK
    assert counters(k) == {**BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
                           "flush_local": 0, "ipis": 3, "cpa": 1, "zeroed": 1024}


def test_pagetable_is_not_covered() -> None:
    """PKS page tables must stay mapped: the status-quo path serves them."""
    cls = get_registry().allocator("unmapped-api")
    assert cls.covers == {"secretmem", "guest", "dma_nokmap"}


# -- whole cells ----------------------------------------------------------------------------
def test_default_suite() -> None:
    """Every default workload runs without an exception; the only promise broken is
    ``stale_data`` where zero=False requests reuse written pages (guest, dma-nokmap);
    secretmem (the one generic-free user) also with the free hook and without shrinker."""
    for name, cls in get_registry().workloads.items():
        if cls.default:
            counts = cell_result("unmapped-api", name, {})["violation_counts"]
            assert counts.keys() <= ({"stale_data"} if name in ("guest", "dma-nokmap")
                                     else set()), name
    for sets in ({"free_hook": "1"}, {"shrinker": "0"}):
        result = cell_result("unmapped-api", "secretmem", {"unmapped-api": sets})
        assert result["violation_counts"] == {}, sets
