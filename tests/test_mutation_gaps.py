"""Tests written for the mutants scripts/mutate.py found surviving (docs/testing.md): each
pins, by hand, what a one-line bug changed without any test noticing."""

from __future__ import annotations

from framework.checks import Checker
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.metrics import METRICS
from framework.request import Allocation, Request
from framework.testing import small_machine

#: Metrics where more is better: large direct-map mappings (and re-merging into them); the
#: others count costs (splits, flushes, cycles, pages held, failures, violations) or, for
#: requested_bytes and events, the volume of work done (the table shows more as "+").
HIGHER_IS_BETTER = {"DirectMap2M", "DirectMap1G", "direct_map_level2_collapses",
                    "direct_map_level3_collapses", "requested_bytes", "events"}


def test_every_metric_direction() -> None:
    """The direction decides the sign of every comparison in the tables: pinned one by
    one (unmapped_served_mapped_bytes: memory asked to be unmapped but left mapped, so
    less is better)."""
    for metric in METRICS:
        assert metric.lower_is_better == (metric.name not in HIGHER_IS_BETTER), metric.name


def _kernel() -> Kernel:
    return Kernel(small_machine(), resolve_costs({}))


def test_unmapped_rule_judges_every_page_of_a_block() -> None:
    """An order-1 block promised unmapped with only its first page made invalid: the second
    page, pfn + 1, is present: one unmapped_present, at pfn + 1 (at hand-out)."""
    kernel = _kernel()
    pfn = kernel.alloc_pages(1)
    assert kernel.set_direct_map_invalid_noflush(pfn) == 0
    checker = Checker(kernel)
    checker.on_alloc(1, Allocation(((pfn, 1),), 0, 8192, True, None),
                     Request("secretmem", 8192, "UNMAPPED"))
    assert checker.counts["unmapped_present"] == 1
    assert [v.where for v in checker.kept] == [pfn + 1]


def test_buddy_prot_sees_a_2m_entry_changed_in_place() -> None:
    """set_memory_np over the whole 2 MiB entry at 0x4000 (free pages, nothing allocated):
    changed in place, no split; the entry covers free buddy pages: one buddy_prot (the
    check reports the first free page of the entry, 0x4000, and moves on)."""
    kernel = _kernel()
    assert kernel.set_memory_np(0x4000, 512) == 0
    checker = Checker(kernel)
    checker.check_state(0)
    assert checker.counts["buddy_prot"] == 1
    assert [v.where for v in checker.kept if v.rule == "buddy_prot"] == [0x4000]
