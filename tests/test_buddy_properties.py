"""Property tests of the buddy allocator and the direct map (hypothesis).

Invariants checked after every step: free + allocated + reserved pages equal RAM; every free
block is aligned to its order and lies inside its zone; free blocks never overlap each other
or an allocated block; nr_free matches the lists. At teardown, freeing everything merges the
zone back into MAX_ORDER - 1 blocks.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from framework.kernel.buddy import BUDDY_ORDER_MASK
from framework.kernel.consts import (
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PKEY,
    _PAGE_PRESENT,
    _PAGE_RW,
    MAX_ORDER,
    MIGRATE_MOVABLE,
    PAGE_KERNEL,
    PMD_ORDER,
)
from framework.kernel.directmap import DirectMap
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from tests.conftest import small_spec

TOP = MAX_ORDER - 1


def free_blocks(k: Kernel) -> list[tuple[int, int]]:
    out = []
    for zone in k.zones:
        out.extend((pfn, info & BUDDY_ORDER_MASK) for pfn, info in zone.buddy.items())
    return sorted(out)


class BuddyMachine(RuleBasedStateMachine):
    """Random alloc/free of any order and migratetype on a 1 GiB, 2-node-free model."""

    blocks = Bundle("blocks")

    def __init__(self) -> None:
        super().__init__()
        self.k = Kernel(small_spec(mem_gib=1), resolve_costs({}))

    @rule(target=blocks, order=st.integers(0, TOP), mt=st.integers(0, 2))
    def alloc(self, order: int, mt: int) -> tuple[int, int, int]:
        pfn = self.k.alloc_pages(order, mt)
        return (pfn, order, mt)

    @rule(block=consumes(blocks))
    def free(self, block: tuple[int, int, int]) -> None:
        pfn, order, mt = block
        if pfn >= 0:
            self.k.free_pages(pfn, order, movable=mt == MIGRATE_MOVABLE)

    @invariant()
    def conserved(self) -> None:
        assert self.k.check_conservation() == 0
        assert self.k.violations == []

    @invariant()
    def aligned_and_disjoint(self) -> None:
        k = self.k
        spans = [(pfn, pfn + (1 << o), "free") for pfn, o in free_blocks(k)]
        spans += [(pfn, pfn + (1 << o), "used") for pfn, o in k.allocated.items()]
        for pfn, end, kind in spans:
            if kind == "free":
                assert pfn % (end - pfn) == 0
        spans.sort()
        for (_, a1, _), (b0, _, _) in itertools.pairwise(spans):
            assert a1 <= b0, "overlapping blocks"
        for zone in k.zones:
            for order in range(MAX_ORDER):
                listed = sum(len(lst) for lst in zone.free_area[order])
                extra = len(zone.after_pristine) if order == TOP else 0
                assert zone.nr_free[order] == listed + extra

    def teardown(self) -> None:
        k = self.k
        for pfn, order in list(k.allocated.items()):
            k.free_pages(pfn, order)
        zone = k.preferred_zone()
        for order in range(TOP):
            assert zone.nr_free_at(order) == 0, f"order {order} left unmerged"
        assert zone.free_pages() == (1 << 18) - 16384


TestBuddy = BuddyMachine.TestCase
TestBuddy.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(16384, (4 << 18) - 1), st.integers(1, 2048),
                          st.booleans()), max_size=12))
def test_direct_map_counters_agree(changes: list[tuple[int, int, bool]]) -> None:
    """Any sequence of present/not-present changes keeps DirectMap counters equal to the
    tables, never changes the total mapped size, and leaves exactly the requested pages
    non-present (checked page by page against a plain model)."""
    k = Kernel(small_spec(), resolve_costs({}))
    absent: set[int] = set()
    for pfn, n, clear in changes:
        n = min(n, (4 << 18) - pfn)
        if clear:
            k.set_direct_map_invalid_noflush(pfn, n)
            absent.update(range(pfn, pfn + n))
        else:
            k.set_direct_map_default_noflush(pfn, n)
            absent.difference_update(range(pfn, pfn + n))
    dm = k.directmap
    assert dm.recount() == (dm.nr_4k, dm.nr_2m, dm.nr_1g)
    info = dm.meminfo()
    assert info["DirectMap4k"] + info["DirectMap2M"] + info["DirectMap1G"] == 4 << 20
    for pfn in list(absent)[:200]:
        assert not dm.is_present(pfn)
    for pfn, n, _ in changes:
        for p in (pfn, pfn + n - 1):
            if p < 4 << 18:
                assert dm.is_present(p) == (p not in absent)
    assert dm.prot(0) == PAGE_KERNEL
    _pte_entries_are_in_split_pmds(dm)


def _pte_entries_are_in_split_pmds(dm: DirectMap) -> None:
    """pte_prot holds entries of split PMDs only (is_present and cpa answer from an entry
    without looking the PMD up), and is_present agrees with prot(), which looks it up."""
    assert all((p >> PMD_ORDER) in dm.split_pmd for p in dm.pte_prot)
    for p in [*list(dm.pte_prot)[:100], *(m << PMD_ORDER for m in list(dm.split_pmd)[:20])]:
        assert dm.is_present(p) == bool(dm.prot(p) & _PAGE_PRESENT)


MASKS = st.sampled_from([_PAGE_PRESENT, _PAGE_RW, _PAGE_NX, _PAGE_GLOBAL, _PAGE_PKEY,
                         _PAGE_PRESENT | _PAGE_RW, 0])


def _table_state(k: Kernel) -> tuple[object, ...]:
    dm, led = k.directmap, k.ledger
    return (dict(dm.pte_prot), dict(dm.pmd_prot), dict(dm.pud_prot), set(dm.split_pmd),
            set(dm.split_pud), dm.nr_4k, dm.nr_2m, dm.nr_1g, led.counters(), dict(led.cycles),
            led.total_cycles, sorted(k.allocated.items()))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(16384, 16384 + 1535), st.integers(1, 3), MASKS, MASKS),
                min_size=1, max_size=25))
def test_one_page_cpa_inline_equals_the_general_walk(
        changes: list[tuple[int, int, int, int]]) -> None:
    """``DirectMap.cpa`` writes the one-page, PTE-mapped case inline; it must leave the
    tables, counters, cycles and page-table pages exactly as charging the call and running
    the general ``DirectMap.change`` walk does, and return the same value, for any sequence
    of changes (pfns over three 2 MiB regions, so splits, in-place and PTE changes mix)."""
    fast = Kernel(small_spec(), resolve_costs({}))
    walk = Kernel(small_spec(), resolve_costs({}))
    for pfn, nr, set_mask, clr_mask in changes:
        got = fast.directmap.cpa(pfn, nr, set_mask, clr_mask)
        walk.ledger.cpa_calls += 1
        walk.ledger.charge("cpa", walk.costs["cpa_call"])
        assert got == walk.directmap.change(pfn, nr, set_mask, clr_mask)
        assert _table_state(fast) == _table_state(walk)
        _pte_entries_are_in_split_pmds(fast.directmap)
