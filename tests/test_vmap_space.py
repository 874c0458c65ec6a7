"""``VmapSpace`` (framework/kernel/vmalloc.py) against a plain first-fit oracle.

The oracle is the model's former implementation: one sorted list of free ``[start, end)``
ranges scanned in address order for the first whose aligned start fits
(``find_vmap_lowest_match``'s contract: the lowest-addressed fit). The size-class index must
pick the same address for every request, whatever the history of allocations and frees.
"""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.kernel.vmalloc import EXACT_SIZES, INDEX_FROM, VmapSpace, class_min, size_class


class LinearSpace:
    """First fit by a scan of every free range (the oracle)."""

    def __init__(self, base: int, size: int) -> None:
        self.starts = [base]
        self.ends = [base + size]

    def alloc(self, npages: int, align: int = 1) -> int:
        for i in range(len(self.starts)):
            start = -(-self.starts[i] // align) * align
            if start + npages <= self.ends[i]:
                lo, hi = self.starts[i], self.ends[i]
                del self.starts[i], self.ends[i]
                if start + npages < hi:
                    self.starts.insert(i, start + npages)
                    self.ends.insert(i, hi)
                if lo < start:
                    self.starts.insert(i, lo)
                    self.ends.insert(i, start)
                return start
        return -1

    def free(self, start: int, npages: int) -> None:
        end = start + npages
        i = bisect.bisect_left(self.starts, start)
        if i > 0 and self.ends[i - 1] == start:
            i -= 1
            start = self.starts[i]
            del self.starts[i], self.ends[i]
        if i < len(self.starts) and self.starts[i] == end:
            end = self.ends[i]
            del self.starts[i], self.ends[i]
        self.starts.insert(i, start)
        self.ends.insert(i, end)


def test_size_classes_are_monotonic_and_their_minimum_is_their_shortest_member() -> None:
    """A shorter range never files under a higher class (the search skips lower classes),
    and ``class_min`` is the shortest size of each class: 63 -> class 63; 64..127 -> one
    class whose shortest is 64; 128 -> the next, shortest 128."""
    classes = [size_class(n) for n in range(1, 5000)]
    assert classes == sorted(classes)
    for n in range(1, 5000):
        assert class_min(size_class(n)) <= n
        assert class_min(size_class(n) + 1) > n
    assert size_class(EXACT_SIZES - 1) == EXACT_SIZES - 1
    assert class_min(size_class(100)) == 64 and class_min(size_class(128)) == 128


def test_the_lowest_fit_wins_over_a_bigger_range_higher_up() -> None:
    """Space of 100 pages at 1000. Take 10 (1000..1010), 1 (1010), 30 (1011..1041), 1 (1041);
    free the 10 and the 30: free ranges [1000, 1010) size 10, [1011, 1041) size 30,
    [1042, 1100) size 58. A 10-page request takes 1000 (exact fit, lowest); 12 pages aligned
    to 16 need an aligned start: 1011 rounds up to 1024, 1024 + 12 <= 1041, so 1024, which
    leaves [1011, 1024) of 13 pages; 12 pages unaligned then take 1011, the lowest fit, not
    the 58 pages above; 100 pages fit nowhere."""
    for index_from in (0, INDEX_FROM):  # indexed from the start, and scanned
        space = VmapSpace(1000, 100, index_from)
        assert [space.alloc(n) for n in (10, 1, 30, 1)] == [1000, 1010, 1011, 1041]
        space.free(1000, 10)
        space.free(1011, 30)
        assert space.alloc(10) == 1000
        assert space.alloc(12, 16) == 1024
        assert space.alloc(12) == 1011
        assert space.alloc(100) == -1
        assert space.indexed == (index_from == 0)


def test_the_index_comes_with_many_free_ranges_and_goes_with_few() -> None:
    """index_from=8: twenty 1-page areas from 0 (one free range: the tail), then every
    other one freed: 10 holes + the tail = 11 free ranges > 8, so the index is built. Freeing
    the other ten merges all back into [0, 100): 1 range < 8 // 4 = 2, so it is dropped."""
    space = VmapSpace(0, 100, 8)
    starts = [space.alloc(1) for _ in range(20)]
    assert starts == list(range(20)) and not space.indexed
    for start in starts[0:20:2]:
        space.free(start, 1)
    assert len(space.starts) == 11 and space.indexed
    assert space.alloc(1) == 0  # the lowest hole, through the index
    space.free(0, 1)
    for start in starts[1:20:2]:
        space.free(start, 1)
    assert (space.starts, space.ends, space.indexed) == ([0], [100], False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 300), st.sampled_from([1, 1, 1, 8, 512]),
                          st.integers(0, 10 ** 6)), max_size=120),
       st.sampled_from([0, 4, 8, INDEX_FROM]))
def test_same_address_as_the_linear_first_fit(ops: list[tuple[bool, int, int, int]],
                                              index_from: int) -> None:
    """Any sequence of allocations (sizes 1..300 pages, alignment 1, 8 or 512) and frees of
    live ranges gives the oracle's address at every step and the same free ranges, with
    the size index from the start (0), coming and going (4, 8), or as configured."""
    fast, slow = VmapSpace(5, 4000, index_from), LinearSpace(5, 4000)
    live: list[tuple[int, int]] = []
    for is_alloc, npages, align, pick in ops:
        if is_alloc or not live:
            got = fast.alloc(npages, align)
            assert got == slow.alloc(npages, align)
            if got >= 0:
                live.append((got, npages))
        else:
            start, n = live.pop(pick % len(live))
            fast.free(start, n)
            slow.free(start, n)
        assert (fast.starts, fast.ends) == (slow.starts, slow.ends)
    assert fast.free_pages() == sum(e - s for s, e in zip(slow.starts, slow.ends, strict=True))


def test_vm_mapped_counts_each_mapping_of_a_page() -> None:
    """``vm_mapped`` (pfn -> live areas mapping it) through the bulk and the page-by-page
    paths. 40 pages from the buddy, vmap'd once (40 >= BULK_PAGES: bulk): each counts 1.
    vmap'd again with page 0 twice more in the same area (a design's bug): page 0 counts
    1 + 3 = 4, the others 2. vunmap of the second area: back to 1 each; of the first: none
    left."""
    from framework.kernel.kernel import Kernel
    from framework.kernel.vmalloc import BULK_PAGES
    from framework.machine.costs import resolve_costs
    from tests.conftest import small_spec

    k = Kernel(small_spec(), resolve_costs({}))
    pages = [k.alloc_pages(0) for _ in range(40)]
    assert len(pages) >= BULK_PAGES
    first = k.vmap(pages, 0)
    assert first is not None
    assert k.vmalloc.vm_mapped == dict.fromkeys(pages, 1)
    second = k.vmap([pages[0], *pages, pages[0]], 0)
    assert second is not None
    assert k.vmalloc.vm_mapped == {pages[0]: 4, **dict.fromkeys(pages[1:], 2)}
    k.vunmap(second)
    assert k.vmalloc.vm_mapped == dict.fromkeys(pages, 1)
    k.vunmap(first)
    assert k.vmalloc.vm_mapped == {}
