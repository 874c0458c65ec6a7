"""Zone.free_pages_order0() against one free_one_page() per page (hypothesis).

Reclaim and compaction free their pages through the inlined batch; it must leave the zone
exactly as the per-page calls do: the same free blocks, each free list in the same order
(head and tail insertions, buddy_merge_likely()), the same counters and the same cycles.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.kernel.buddy import NO_PAGE, Zone
from framework.kernel.consts import FALLBACKS, MIGRATE_MOVABLE, MigrateType
from framework.kernel.ledger import Ledger
from framework.machine.costs import resolve_costs

PAGES = 1 << 12  # four MAX_ORDER - 1 blocks


def zone_with_holes(taken: list[int]) -> tuple[Zone, Ledger, list[int]]:
    """A 16 MiB zone with ``taken`` order-0 allocations; returns the pages handed out."""
    ledger = Ledger()
    zone = Zone(0, 0, PAGES, 0, ledger, resolve_costs({}), len(MigrateType), dict(FALLBACKS))
    pages = []
    for mt in taken:
        pfn = zone.rmqueue(0, mt, False)
        assert pfn != NO_PAGE
        pages.append(pfn)
    return zone, ledger, pages


def state(zone: Zone, ledger: Ledger) -> tuple[object, ...]:
    lists = [[list(lst) for lst in area] for area in zone.free_area]
    return (lists, sorted(zone.buddy.items()), list(zone.nr_free), zone.nr_free_pages,
            list(zone.after_pristine), ledger.buddy_cycles, ledger.total_cycles)


@settings(max_examples=60, deadline=None)
@given(taken=st.lists(st.integers(0, 2), min_size=1, max_size=600), data=st.data())
def test_batch_free_equals_one_by_one(taken: list[int], data: st.DataObject) -> None:
    one, led_one, pages = zone_with_holes(taken)
    batch, led_batch, pages_b = zone_with_holes(taken)
    assert pages == pages_b
    freed = data.draw(st.permutations(pages))
    freed = freed[:data.draw(st.integers(0, len(freed)))]
    mt = MIGRATE_MOVABLE
    for pfn in freed:
        one.free_one_page(pfn, 0, mt)
    batch.free_pages_order0(list(freed), mt)
    assert state(one, led_one) == state(batch, led_batch)
