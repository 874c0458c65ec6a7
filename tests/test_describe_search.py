"""A free-list search over a start state describes only the block it needs.

``Zone._describe_holding`` (framework/kernel/buddy.py): an empty free list whose start state
still holds undescribed blocks of that order and type describes the lowest block holding one;
blocks before it that hold none stay undescribed. Hand-built three-block zone, derived on
paper below.
"""

from __future__ import annotations

import numpy as np

from framework.kernel.buddy import NO_PAGE, Zone
from framework.kernel.consts import FALLBACKS, MIGRATE_MOVABLE, MigrateType
from framework.kernel.e820 import Layout, ZoneSpan, ZoneType
from framework.kernel.initial import BLOCK_PAGES, Block, Use, ZoneStart
from framework.kernel.ledger import Ledger
from framework.machine.costs import resolve_costs

MOV = MIGRATE_MOVABLE
NR_MT = len(MigrateType)


def block_with_free(order: int) -> Block:
    """One free block of ``order`` at offset 0; the rest of the 1024 pages used as page
    cache in the aligned blocks of orders ``order``..9 that complete it."""
    used = tuple((1 << o, o, Use.PAGECACHE) for o in range(order, 10))
    return Block((MOV, MOV), ((0, order),), used)


class ThreeBlocks:
    """Blocks at pfn 0, 1024, 2048: free order 0, free order 0, free order 3."""

    BLOCKS = (block_with_free(0), block_with_free(0), block_with_free(3))

    def __init__(self) -> None:
        self.asked: list[int] = []

    def zone_start(self, zone: ZoneSpan) -> ZoneStart:
        nr_free = [[0] * NR_MT for _ in range(11)]
        used = [0] * len(Use)
        for block in self.BLOCKS:
            for _, order in block.free:
                nr_free[order][MOV] += 1
            for _, order, use in block.used:
                used[use] += 1 << order
        return ZoneStart(tuple(tuple(r) for r in nr_free), tuple(used))

    def block(self, zone: ZoneSpan, head_pfn: int) -> Block:
        self.asked.append(head_pfn)
        return self.BLOCKS[head_pfn // BLOCK_PAGES]

    def split_pmds(self, layout: Layout) -> frozenset[int]:
        return frozenset()

    def blocks_with_free(self, zone: ZoneSpan, order: int, mt: int) -> np.ndarray:
        heads = [i * BLOCK_PAGES for i, b in enumerate(self.BLOCKS)
                 if any(o == order and b.mts[off >> 9] == mt for off, o in b.free)]
        return np.array(heads, dtype=np.int64)


def zone_on(start: ThreeBlocks) -> Zone:
    pages = 3 * BLOCK_PAGES
    zone = Zone(0, 0, pages, 0, Ledger(), resolve_costs({}), NR_MT, dict(FALLBACKS))
    zone.attach_start(start, ZoneSpan(0, ZoneType.ZONE_NORMAL, 0, pages))
    return zone


def test_search_describes_only_the_block_that_holds_the_order() -> None:
    """Order 3 on MOVABLE: only block 2048 holds one, so it alone is described and its
    order-3 block (head 2048) is taken whole: blocks 0 and 1024 stay undescribed, their
    order-0 pages still counted as undescribed (unmat[0][MOVABLE] == 2)."""
    start = ThreeBlocks()
    zone = zone_on(start)
    assert zone.rmqueue_smallest(3, MOV) == 2048
    assert start.asked == [2048]
    assert zone.start_done == {2048}
    assert zone.unmat[0][MOV] == 2
    assert zone.unmat[3][MOV] == 0


def test_next_search_takes_the_lowest_holder_then_the_next() -> None:
    """After the order-3 search, order 0 describes block 0 (lowest holder: page 0), then,
    its list empty again, block 1024 (page 1024); a third order-0 search finds no holder
    left and no larger free block (2048's was taken): NO_PAGE."""
    start = ThreeBlocks()
    zone = zone_on(start)
    zone.rmqueue_smallest(3, MOV)
    assert zone.rmqueue_smallest(0, MOV) == 0
    assert zone.rmqueue_smallest(0, MOV) == 1024
    assert start.asked == [2048, 0, 1024]
    assert zone.rmqueue_smallest(0, MOV) == NO_PAGE
    assert zone.nr_free_pages == 0
