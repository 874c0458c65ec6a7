"""Reclaim and compaction (framework/kernel/vmscan.py, compaction.py), derived by hand.

The machines are ``small_spec(mem_gib=1)``: no hole, 64 MiB reserved, no per-cpu lists, one
node whose GFP_KERNEL zone is ZONE_DMA32 (pfns 4096..262144; ZONE_DMA lies inside the reserved
range and manages nothing). Its usable 4 MiB blocks start at pfn 16384 (64 MiB): 240 of them,
block ``i`` at ``16384 + 1024 * i``. A toy start state (:class:`ToyState`) says what each
block holds; every block not named is kernel memory (both pageblocks unmovable, all used).

ZONE_DMA32 manages 262144 - 16384 = 245760 pages, so ``watermark_scale_factor`` gives a step
of 245760 * 10 // 10000 = 245 pages. With ``vm.min_free_kbytes=0`` the watermarks are min 0,
low 245, high 490; with 4096 kB, min 1024 and step max(1024 / 4, 245) = 256: low 1280, high
1536. ``lowmem_reserve`` is 0 (no zone above DMA32).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.kernel.buddy import BUDDY_ORDER_MASK, NO_PAGE
from framework.kernel.compaction import CompactPriority, fragmentation_index
from framework.kernel.consts import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    PAGEBLOCK_ORDER,
)
from framework.kernel.e820 import Layout, ZoneSpan
from framework.kernel.faults import Faults
from framework.kernel.initial import BLOCK_PAGES, Block, Use, ZoneStart
from framework.kernel.ledger import Ledger
from framework.kernel.page_alloc import PageAlloc
from framework.kernel.vmscan import MAX_RECLAIM_RETRIES
from framework.machine.costs import resolve_costs
from framework.machine.startstate import usable_blocks
from tests.conftest import small_spec

U, M = MIGRATE_UNMOVABLE, MIGRATE_MOVABLE
FIRST = 16384  # the first usable block's head pfn
LAST = 16384 + 239 * 1024  # the last one's
NR_USE = len(Use)


def used(offsets: range, use: Use) -> tuple[tuple[int, int, Use], ...]:
    return tuple((o, 0, use) for o in offsets)


KERNEL = Block((U, U), (), used(range(1024), Use.KERNEL))
PAGECACHE = Block((M, M), (), used(range(1024), Use.PAGECACHE))


class ToyState:
    """A start state of named blocks (index in the zone -> Block), kernel elsewhere."""

    def __init__(self, layout: Layout, blocks: dict[int, Block]) -> None:
        self.layout = layout
        self.blocks = blocks

    def _block(self, span: ZoneSpan, head: int) -> Block:
        index = (head - usable_blocks(self.layout, span).start) // BLOCK_PAGES
        return self.blocks.get(index, KERNEL)

    def zone_start(self, span: ZoneSpan) -> ZoneStart:
        free = [[0] * 3 for _ in range(11)]
        pages = [0] * NR_USE
        for head in usable_blocks(self.layout, span):
            block = self._block(span, head)
            for off, order in block.free:
                free[order][block.mts[off >> PAGEBLOCK_ORDER]] += 1
            for _, order, use in block.used:
                pages[use] += 1 << order
        return ZoneStart(tuple(tuple(r) for r in free), tuple(pages))

    def block(self, span: ZoneSpan, head: int) -> Block:
        return self._block(span, head)

    def split_pmds(self, layout: Layout) -> frozenset[int]:
        return frozenset()

    def pageblocks_with(self, span: ZoneSpan, uses: frozenset[int]) -> np.ndarray:
        out = []
        for head in usable_blocks(self.layout, span):
            for off, _, use in self._block(span, head).used:
                if int(use) in uses:
                    out.append((head + off) >> PAGEBLOCK_ORDER)
        return np.array(sorted(set(out)), dtype=np.int64)

    def blocks_with_free(self, span: ZoneSpan, order: int, mt: int) -> np.ndarray:
        return np.array([head for head in usable_blocks(self.layout, span)
                         if any(o == order and self._block(span, head).mts[off >> 9] == mt
                                for off, o in self._block(span, head).free)], dtype=np.int64)


def machine(blocks: dict[int, Block], min_free_kbytes: int = 0) -> PageAlloc:
    spec = attrs.evolve(small_spec(mem_gib=1), min_free_kbytes=min_free_kbytes)
    from framework.kernel.e820 import build_layout

    layout = build_layout(spec.mem_pages, spec.nodes, 0, (spec.reserved_mib << 20) >> 12)
    violations: list[tuple[str, int, str]] = []
    return PageAlloc(spec, resolve_costs({}), Ledger(), Faults(), random.Random(0),
                     lambda *v: violations.append(v), set(), {}, ToyState(layout, blocks))


def dma32(pa: PageAlloc) -> object:
    zone = pa.zones[-1]
    assert zone.start_pfn == 4096 and zone.end_pfn == 262144
    return zone


# -- compaction ---------------------------------------------------------------------------
#: Block 0, pageblock 0: 100 anon pages (offsets 0-99), the rest free as the buddy keeps it
#: (100 o2, 104 o3, 112 o4, 128 o7, 256 o8: 412 pages); pageblock 1 kernel.
SOURCE = Block((M, U), ((100, 2), (104, 3), (112, 4), (128, 7), (256, 8)),
               used(range(100), Use.ANON) + used(range(512, 1024), Use.KERNEL))
#: The same with a kernel page at offset 100 (free: 101 o0, 102 o1, 104 o3, 112 o4, 128 o7,
#: 256 o8: 411 pages).
PINNED = Block((M, U), ((101, 0), (102, 1), (104, 3), (112, 4), (128, 7), (256, 8)),
               (*used(range(100), Use.ANON), (100, 0, Use.KERNEL),
                *used(range(512, 1024), Use.KERNEL)))
#: Block 1: 384 free pages in an unmovable pageblock (128 o7, 256 o8), no migration target.
SPARE = Block((U, U), ((128, 7), (256, 8)), used(range(128), Use.KERNEL)
              + used(range(512, 1024), Use.KERNEL))
#: Block 239 (the zone's last), pageblock 0: one anon page at 0 and 511 free pages in one
#: block of each order 0..8 (1 o0, 2 o1, 4 o2, ..., 256 o8); pageblock 1 kernel.
TARGET = Block((M, U), tuple((1 << o, o) for o in range(9)),
               ((0, 0, Use.ANON), *used(range(512, 1024), Use.KERNEL)))


def free_blocks(zone: object, pageblock: int) -> list[tuple[int, int]]:
    """(offset, order) of the free blocks inside a pageblock."""
    base = pageblock << PAGEBLOCK_ORDER
    out = []
    for pfn, info in zone.buddy.items():  # type: ignore[attr-defined]
        if base <= pfn < base + 512:
            out.append((pfn - base, info & BUDDY_ORDER_MASK))
    return sorted(out)


def test_direct_compaction_success() -> None:
    """An order-9 movable request on a zone with 1307 free pages (412 in block 0, 384 in
    block 1, 511 in block 239) and no free block of order >= 9.

    - Fast path: 1307 - 511 = 796 > low 245, but no order-9 block: slow path.
    - kswapd: not balanced (no order-9 block), but nothing is reclaimable: 0 pages.
    - Async direct compaction (order 9 is costly): compaction_suitable(): free 1307 > low 245
      + compact_gap(9) 1024 = 1269; fragmentation index over 16 free blocks of 1307 pages:
      1000 - (1000 + 1307000 // 512) // 16 = 1000 - 3552 // 16 = 778 > 500: go on.
    - The migrate scanner's first source is pageblock 32 (block 0): movable, no pinned page,
      412 free + 100 anon = 512 pages, so it can become free. Its 100 anon pages go to the
      free scanner's pages above it. For the first, the described blocks (block 0 only)
      offer nothing above pageblock 32, so the start state's blocks are described in pfn
      order until the smallest order's MOVABLE list has one: block 239's order-0 block at
      261121 (block 1 is unmovable, the others kernel). For the second, the described
      MOVABLE lists from order 8 down offer block 239's order-8 block at 261376: pages
      261376..261474 take the other 99. The sources, freed, merge with block 0's 412 free
      pages into one order-9 block (its buddy pageblock is kernel): on MOVABLE's order-9
      list, done (COMPACT_SUCCESS). The 157 isolated pages not used (261475..261631) go
      back and merge into 355 o0, 356 o2, 360 o3, 368 o4, 384 o7 of pageblock 510.
    - compact_stall 1, compact_success 1, pgmigrate_success 100; cycles: one pageblock
      scanned (1500) and 100 pages migrated (100 x 7500); the allocation is pfn 16384.
    """
    pa = machine({0: SOURCE, 1: SPARE, 239: TARGET})
    zone = dma32(pa)
    assert zone.wmark == (0, 245, 490)
    assert zone.nr_free_pages == 1307
    assert fragmentation_index(zone, 9) == 778
    pfn = pa.alloc_pages(9, MIGRATE_MOVABLE)
    led = pa.ledger
    assert pfn == FIRST
    assert (led.compact_stall, led.compact_success, led.compact_fail) == (1, 1, 0)
    assert led.pgmigrate_success == 100
    assert led.compaction_cycles == 1500 + 100 * 7500
    assert (led.allocstall, led.pgscan_kswapd, led.pgscan_direct) == (0, 0, 0)
    assert zone.anon_bits[LAST >> 9] == 0b11 | ((1 << 99) - 1) << 256
    assert FIRST >> 9 not in zone.anon_bits
    assert free_blocks(zone, LAST >> 9) == [(1 << o, o) for o in range(1, 8)] + [
        (355, 0), (356, 2), (360, 3), (368, 4), (384, 7)]
    assert zone.nr_free_pages == 1307 - 512
    assert pa.check_conservation() == 0


def test_direct_compaction_fails_on_a_pinned_page() -> None:
    """The same zone, with a kernel page at offset 100 of block 0 (1306 free pages).

    First allocation (order 9, movable):
    - Async compaction: pageblock 32 holds a page it cannot isolate, so it is skipped whole
      (skip_on_failure); pageblock 510 (block 239) has one anon page but no free page above
      it: the scanners meet, COMPACT_COMPLETE (async: not deferred). Two pageblocks scanned.
      compact_stall 1, compact_fail 1.
    - Direct reclaim: allocstall 1; compaction_ready() needs free > high 490 + 1024 = 1514
      (it is 1306), so the zone is shrunk, but it holds no page cache: nothing.
    - Sync compaction (DEF_COMPACT_PRIORITY) migrates pageblock 32's 100 anon pages anyway
      (to 261376.., the free floor becomes pageblock 510); the pinned page keeps the block
      from forming. Pageblock 510 lies at the free floor: the scanners met, COMPLETE, and a
      sync COMPLETE defers compaction (defer_shift 1, order_failed 9). compact_stall 2,
      compact_fail 2, pgmigrate_success 100. Order 9 is costly: NULL.
    Second allocation: async compaction is deferred (considered 1 < 1 << 1): a stall and a
    fail without work; allocstall 2; sync compaction finds nothing to move in pageblock 32
    and nothing above pageblock 510: COMPLETE again (defer_shift 2). Totals: stall 4, fail 4,
    pgmigrate_success 100.
    """
    pa = machine({0: PINNED, 1: SPARE, 239: TARGET})
    zone = dma32(pa)
    assert zone.nr_free_pages == 1306
    assert pa.alloc_pages(9, MIGRATE_MOVABLE) == NO_PAGE
    led = pa.ledger
    assert (led.compact_stall, led.compact_success, led.compact_fail) == (2, 0, 2)
    assert led.pgmigrate_success == 100
    assert led.allocstall == 1
    assert led.compaction_cycles == 2 * 1500 + 1500 + 100 * 7500
    state = pa.compaction.state[id(zone)]
    assert (state.defer_shift, state.order_failed) == (1, 9)
    assert zone.pinned_bits[FIRST >> 9] == 1 << 100
    assert pa.alloc_pages(9, MIGRATE_MOVABLE) == NO_PAGE
    assert (led.compact_stall, led.compact_success, led.compact_fail) == (4, 0, 4)
    assert led.pgmigrate_success == 100
    assert led.allocstall == 2
    assert state.defer_shift == 2
    assert zone.nr_free_pages == 1306
    assert pa.check_conservation() == 0


def test_compaction_skipped_without_free_memory() -> None:
    """Block 0 alone (412 free pages): compaction_suitable() wants more than low 245 +
    compact_gap(9) 1024 free: COMPACT_SKIPPED everywhere, so no compact_stall at all."""
    pa = machine({0: SOURCE})
    assert pa.alloc_pages(9, MIGRATE_MOVABLE) == NO_PAGE
    led = pa.ledger
    assert (led.compact_stall, led.compact_fail, led.pgmigrate_success) == (0, 0, 0)
    assert led.allocstall == 1


# -- reclaim ------------------------------------------------------------------------------
#: 992 free pages in unmovable pageblocks: an order-9 block (offset 0) and 512 o8, 768 o7,
#: 896 o6, 960 o5 (480 pages); the last 32 pages kernel.
FREE992 = Block((U, U), ((0, 9), (512, 8), (768, 7), (896, 6), (960, 5)),
                used(range(992, 1024), Use.KERNEL))
HALF = Block((U, U), ((0, 9),), used(range(512, 1024), Use.KERNEL))  # 512 free


def test_direct_reclaim_frees_page_cache_then_the_allocation_succeeds() -> None:
    """vm.min_free_kbytes=4096 (min 1024, low 1280, high 1536); 992 free pages and one
    block (1024 pages) of page cache; kswapd has given up on the node
    (kswapd_failures = MAX_RECLAIM_RETRIES), so only direct reclaim can help.

    An order-0 request fails at low and at min (992 <= 1024). try_to_free_pages() wants
    SWAP_CLUSTER_MAX = 32 pages, scanning ``page cache >> priority`` from priority 12:
    1024 >> 12 = 0, 1024 >> 11 = 0, 1024 >> 10 = 1 (1), 1023 >> 9 = 1 (2), 1022 >> 8 = 3 (5),
    1019 >> 7 = 7 (12), 1012 >> 6 = 15 (27), 997 >> 5 = 31 (58 >= 32: stop). Free is then
    992 + 58 = 1050 > min 1024: the allocation succeeds. allocstall 1, pgscan_direct =
    pgsteal_direct = 58, 58 x 2400 reclaim cycles.
    """
    pa = machine({0: PAGECACHE, 1: FREE992}, min_free_kbytes=4096)
    zone = dma32(pa)
    assert zone.wmark == (1024, 1280, 1536)
    pa.reclaim.kswapd_failures[0] = MAX_RECLAIM_RETRIES
    assert zone.start_cache_pages == 1024
    pfn = pa.alloc_pages(0, MIGRATE_UNMOVABLE)
    assert pfn != NO_PAGE
    led = pa.ledger
    assert (led.allocstall, led.pgscan_direct, led.pgsteal_direct) == (1, 58, 58)
    assert led.pgscan_kswapd == 0
    assert led.reclaim_cycles == 58 * 2400
    assert zone.start_cache_pages == 1024 - 58
    assert zone.nr_free_pages == 1050 - 1
    assert pa.check_conservation() == 0


def test_kswapd_wakes_below_low_and_stops_at_high() -> None:
    """min 1024, low 1280, high 1536; 4096 page-cache pages (blocks 0-3).

    Above low (free 1344 = 512 + 512 + 256 + 64): an order-0 request succeeds on the fast
    path; kswapd is not woken. Below low (free 1088 = 512 + 512 + 64): the fast path fails,
    wake_all_kswapds() finds the node unbalanced (1088 <= high 1536) and balance_pgdat()
    asks for max(high, 32) = 1536 pages a pass, scanning ``page cache >> priority``:
    4096 >> 12 = 1 (1), 4095 >> 11 = 1 (2), 4094 >> 10 = 3 (5), 4091 >> 9 = 7 (12),
    4084 >> 8 = 15 (27), 4069 >> 7 = 31 (58), 4038 >> 6 = 63 (121), 3975 >> 5 = 124 (245),
    3851 >> 4 = 240 (485): free 1088 + 485 = 1573 > high 1536, balanced: kswapd sleeps. The
    allocation then succeeds at min. pgscan_kswapd = pgsteal_kswapd = 485; no direct
    reclaim.
    """
    cache = {i: PAGECACHE for i in range(4)}
    above = machine({**cache, 4: HALF, 5: HALF,
                     6: Block((U, U), ((0, 8), (256, 6)), used(range(320, 1024), Use.KERNEL))},
                    min_free_kbytes=4096)
    assert dma32(above).nr_free_pages == 1344
    assert above.alloc_pages(0, MIGRATE_UNMOVABLE) != NO_PAGE
    assert above.ledger.pgscan_kswapd == 0

    below = machine({**cache, 4: HALF, 5: HALF,
                     6: Block((U, U), ((0, 6),), used(range(64, 1024), Use.KERNEL))},
                    min_free_kbytes=4096)
    zone = dma32(below)
    assert zone.nr_free_pages == 1088
    assert below.alloc_pages(0, MIGRATE_UNMOVABLE) != NO_PAGE
    led = below.ledger
    assert (led.pgscan_kswapd, led.pgsteal_kswapd) == (485, 485)
    assert (led.allocstall, led.pgscan_direct) == (0, 0)
    assert zone.nr_free_pages == 1573 - 1
    assert zone.start_cache_pages == 4096 - 485
    assert below.check_conservation() == 0


def test_fresh_machine_without_pressure_does_nothing() -> None:
    """A fresh machine serving small requests never enters the slow path: every counter of
    reclaim and compaction stays 0."""
    from framework.kernel.e820 import build_layout

    spec = small_spec(mem_gib=1)
    layout = build_layout(spec.mem_pages, 1, 0, (spec.reserved_mib << 20) >> 12)
    pa = PageAlloc(spec, resolve_costs({}), Ledger(), Faults(), random.Random(0),
                   lambda *v: None, set(), {}, None)
    assert layout.zones
    for order in (0, 3, 9, 10, 0):
        assert pa.alloc_pages(order, MIGRATE_UNMOVABLE) != NO_PAGE
    counters = pa.ledger.counters()
    assert all(counters[k] == 0 for k in ("allocstall", "pgscan_kswapd", "compact_stall",
                                          "pgmigrate_success"))


# -- invariants ----------------------------------------------------------------------------
def _bitmaps(blocks: dict[int, int]) -> dict[int, int]:
    """head pfn -> order as per-pageblock bitmaps (pageblock index -> bits)."""
    out: dict[int, int] = {}
    for pfn, order in blocks.items():
        for p in range(pfn, pfn + (1 << order), 512):
            n = min(1 << order, 512)
            out[p >> 9] = out.get(p >> 9, 0) | ((1 << n) - 1) << (p & 511)
    return out


def check_pages(pa: PageAlloc) -> None:
    """Conservation, and in every pageblock no page is both free and used (by the start
    state or by an allocation), and a start-state page is in one use only."""
    assert pa.check_conservation() == 0
    allocated = _bitmaps(pa.allocated)
    for zone in pa.zones:
        free = _bitmaps({pfn: info & BUDDY_ORDER_MASK for pfn, info in zone.buddy.items()})
        for block, bits in free.items():
            assert not bits & allocated.get(block, 0), "a page both free and allocated"
        tables = (zone.cache_bits, zone.anon_bits, zone.pinned_bits)
        for i, table in enumerate(tables):
            for block, bits in table.items():
                assert not bits & free.get(block, 0), "a page both free and used"
                assert not bits & allocated.get(block, 0), "a start-state page handed out"
                for other in tables[i + 1:]:
                    assert not bits & other.get(block, 0), "a page in two uses"


OPS = st.lists(st.tuples(st.sampled_from(("alloc", "free", "reclaim", "compact")),
                         st.integers(0, 10), st.sampled_from((U, M, MIGRATE_RECLAIMABLE))),
               min_size=1, max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_pages_conserved_through_reclaim_and_compaction(ops: Sequence[tuple[str, int, int]]
                                                        ) -> None:
    """On an aged 1 GiB machine (free below its min watermark from the start, so every
    allocation runs kswapd, and direct reclaim and compaction where they apply), any mix of
    allocations, frees, reclaim and sync compaction keeps every page in exactly one state."""
    spec = attrs.evolve(small_spec(mem_gib=1), state="aged", min_free_kbytes=-1)
    pa = PageAlloc(spec, resolve_costs({}), Ledger(), Faults(), random.Random(0),
                   lambda *v: None, set(), {})
    live: list[tuple[int, int]] = []
    for kind, order, mt in ops:
        if kind == "alloc":
            pfn = pa.alloc_pages(order, mt)
            if pfn != NO_PAGE:
                live.append((pfn, order))
        elif kind == "free" and live:
            pfn, o = live.pop(order % len(live))
            pa.free_pages(pfn, o)
        elif kind == "reclaim":
            pa.reclaim.shrink_zone(pa.zones[-1], 1 << order)
        elif kind == "compact":
            pa.compaction.try_to_compact_pages(pa.zonelists[0], max(order, 1), mt, 0, 2,
                                               CompactPriority.COMPACT_PRIO_SYNC_LIGHT)
        check_pages(pa)
