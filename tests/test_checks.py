"""The checker's ownership: whole blocks as one entry, overlaps judged page by page."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.checks import Checker
from framework.kernel.consts import MIGRATE_UNMOVABLE
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.request import Allocation, Request
from tests.conftest import small_spec

FIRST = 16384  # first free pfn after the 64 MiB reservation
REQ = Request("kernel", 4096, "RW", zero=False)


def test_whole_blocks_are_one_entry_and_overlaps_are_judged_per_page() -> None:
    """On a fresh 4 GiB machine an order-2 UNMOVABLE allocation gets pfn 16384 (the first
    order-10 block, stolen and split). Owning it takes one entry. A page inside it handed to
    allocation 2 is one double_alloc (owner 1) and turns the block into per-page entries; an
    order-1 block at 16384 for allocation 3 then overlaps two pages, owned by 1 and 2: two
    more. Each step the owned pages equal what the buddy handed out (4), so the accounting
    check is silent; freeing allocation 1 forgets its four pages (as per-page ownership
    always did), leaving nothing owned."""
    k = Kernel(small_spec(), resolve_costs({}))
    pfn = k.alloc_pages(2, MIGRATE_UNMOVABLE)
    assert pfn == FIRST
    c = Checker(k)
    first = Allocation(((pfn, 2),), 0, 16384)
    c.on_alloc(1, first, REQ)
    assert (c.big, c.owner, c.owned_pages()) == ({pfn: (4, 1)}, {}, 4)
    assert c.pages() == dict.fromkeys(range(pfn, pfn + 4), 1)
    c.check_state(0)
    c.on_alloc(2, Allocation(((pfn + 1, 0),), 0, 4096), REQ)
    assert (c.big, c.big_heads, c.owned_pages()) == ({}, [], 4)
    assert c.owner == {pfn: 1, pfn + 1: 2, pfn + 2: 1, pfn + 3: 1}
    c.on_alloc(3, Allocation(((pfn, 1),), 0, 8192), REQ)
    assert [(v.rule, v.where, v.detail[-12:]) for v in c.kept] == [
        ("double_alloc", pfn + 1, "allocation 1"),
        ("double_alloc", pfn, "allocation 1"),
        ("double_alloc", pfn + 1, "allocation 2"),
    ]
    c.check_state(0)
    assert c.counts["conservation"] == 0
    c.on_free(first)
    assert c.pages() == {}


def test_a_block_beside_a_whole_block_stays_whole() -> None:
    """Two adjacent order-1 blocks (16384 and 16386, from one order-2 allocation split by
    the design) overlap nothing: two entries, no violation, and freeing one leaves the
    other whole."""
    k = Kernel(small_spec(), resolve_costs({}))
    pfn = k.alloc_pages(2, MIGRATE_UNMOVABLE)
    c = Checker(k)
    left, right = Allocation(((pfn, 1),), 0, 8192), Allocation(((pfn + 2, 1),), 0, 8192)
    c.on_alloc(1, left, REQ)
    c.on_alloc(2, right, REQ)
    assert (c.big, c.big_heads, c.owner) == ({pfn: (2, 1), pfn + 2: (2, 2)}, [pfn, pfn + 2], {})
    assert sum(c.counts.values()) == 0
    c.on_free(left)
    assert (c.big, c.big_heads, c.owned_pages()) == ({pfn + 2: (2, 2)}, [pfn + 2], 2)


class _PerPageOracle:
    """The ownership rule as the checker applied it before blocks were kept whole: one entry
    per page, a ``double_alloc`` for every page already owned, frees forget their pages."""

    def __init__(self) -> None:
        self.owner: dict[int, int] = {}
        self.found: list[tuple[str, int, str]] = []

    def on_alloc(self, aid: int, blocks: tuple[tuple[int, int], ...]) -> None:
        for pfn, order in blocks:
            for p in range(pfn, pfn + (1 << order)):
                if p in self.owner:
                    self.found.append(("double_alloc", p,
                                       f"already owned by allocation {self.owner[p]}"))
                self.owner[p] = aid

    def on_free(self, blocks: tuple[tuple[int, int], ...]) -> None:
        for pfn, order in blocks:
            for p in range(pfn, pfn + (1 << order)):
                self.owner.pop(p, None)


BLOCKS = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3)), min_size=1, max_size=3)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("alloc"), BLOCKS),
                          st.tuples(st.just("free"), st.integers(0, 1000))), max_size=30))
def test_block_ownership_judges_like_per_page_ownership(
        ops: list[tuple[str, object]]) -> None:
    """Any sequence of hand-outs (blocks of order 0-3 at any offset, aligned or not, often
    overlapping) and frees inside one order-6 block the buddy handed out: the checker records
    the same violations, in the same order, and owns the same pages as one entry per page
    would, and its accounting counts each owned page once."""
    k = Kernel(small_spec(), resolve_costs({}))
    base = k.alloc_pages(6, MIGRATE_UNMOVABLE)  # every page below is allocated: no rule 1
    checker, oracle = Checker(k), _PerPageOracle()
    live: list[Allocation] = []
    for aid, (op, arg) in enumerate(ops, start=1):
        if op == "alloc":
            blocks = tuple((base + off, order) for off, order in arg)  # type: ignore[union-attr]
            alloc = Allocation(blocks, 0, 4096)
            checker.on_alloc(aid, alloc, REQ)
            oracle.on_alloc(aid, blocks)
            live.append(alloc)
        elif live:
            alloc = live.pop(arg % len(live))  # type: ignore[operator]
            checker.on_free(alloc)
            oracle.on_free(alloc.blocks)
        assert [(v.rule, v.where, v.detail) for v in checker.kept] == oracle.found[:len(
            checker.kept)]
        assert checker.counts["double_alloc"] == len(oracle.found)
        assert checker.pages() == oracle.owner
        assert checker.owned_pages() == len(oracle.owner)


def test_freeing_a_page_inside_a_later_whole_block_forgets_only_that_page() -> None:
    """The sequence hypothesis found: allocation 1 and 2 both take page 0 of the order-6
    block (one double_alloc); freeing 1 forgets page 0 (frees forget their pages, whoever
    owns them now); allocation 4 takes pages 0-1 as one whole block (nothing owned there);
    freeing 2 (its single page 0) must forget page 0 only: page 1 stays owned by 4. Before
    the fix the single-page free skipped the whole block and page 0 stayed owned."""
    k = Kernel(small_spec(), resolve_costs({}))
    base = k.alloc_pages(6, MIGRATE_UNMOVABLE)
    c = Checker(k)
    one, two = Allocation(((base, 0),), 0, 4096), Allocation(((base, 0),), 0, 4096)
    c.on_alloc(1, one, REQ)
    c.on_alloc(2, two, REQ)
    c.on_free(one)
    c.on_alloc(4, Allocation(((base, 1),), 0, 8192), REQ)
    assert c.pages() == {base: 4, base + 1: 4}
    c.on_free(two)
    assert c.pages() == {base + 1: 4}
    assert c.counts["double_alloc"] == 1
