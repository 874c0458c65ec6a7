"""The counters and the cycle-cost ledger of one run.

Every kernel-model operation bumps plain integer counters here and charges modelled cycles to
a category from :data:`framework.machine.costs.CATEGORIES`. The engine reads the ledger to
build the metrics (docs/contracts.md, "Metrics and JSON results"). A plain slotted class: it
sits on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from framework.machine.costs import CATEGORIES

COUNTERS: Final[tuple[str, ...]] = (
    "direct_map_level2_splits",
    "direct_map_level3_splits",
    "direct_map_level2_collapses",
    "direct_map_level3_collapses",
    "tlb_flush_all",
    "tlb_flush_range",
    "tlb_flush_local",
    "tlb_ipis",
    "cpa_calls",
    "text_poke_calls",
    "zeroed_pages",
    # the page allocator's /proc/vmstat events (mm/vmstat.c names)
    "numa_miss",
    "numa_foreign",
    "allocstall",
    "pgscan_direct",
    "pgsteal_direct",
    "pgscan_kswapd",
    "pgsteal_kswapd",
    "compact_stall",
    "compact_success",
    "compact_fail",
    "pgmigrate_success",
    "compact_daemon_wake",
)

#: The page allocator's /proc/vmstat events among the counters (metrics of the same names).
VMSTAT_EVENTS: Final[tuple[str, ...]] = COUNTERS[COUNTERS.index("numa_miss"):]


# The attribute holding each category's cycles: ``ledger.cpa_cycles`` for ``cpa``. Plain
# slots rather than a dict: the hot path charges about ten times per page.
CYCLE_ATTRS: Final[dict[str, str]] = {category: f"{category}_cycles" for category in CATEGORIES}


class Ledger:
    """Counters (attributes named as in :data:`COUNTERS`) and cycles per category.

    Category ``X``'s cycles are the attribute ``X_cycles`` (:data:`CYCLE_ATTRS`); read them
    all through :attr:`cycles`, add through :meth:`charge`. The attributes are written out
    (typed, slotted) rather than generated, so that type checkers and compilers see them;
    ``tests/test_ledger.py`` holds them equal to :data:`COUNTERS` and the cost categories.
    """

    __slots__ = (
        "allocstall",
        "buddy_cycles",
        "compact_daemon_wake",
        "compact_fail",
        "compact_stall",
        "compact_success",
        "compaction_cycles",
        "cpa_calls",
        "cpa_cycles",
        "daemon_cycles",
        "direct_map_level2_collapses",
        "direct_map_level2_splits",
        "direct_map_level3_collapses",
        "direct_map_level3_splits",
        "flush_local_cycles",
        "numa_cycles",
        "numa_foreign",
        "numa_miss",
        "pgmigrate_success",
        "pgscan_direct",
        "pgscan_kswapd",
        "pgsteal_direct",
        "pgsteal_kswapd",
        "reclaim_cycles",
        "shootdown_cycles",
        "slab_cycles",
        "split_cycles",
        "text_poke_calls",
        "text_poke_cycles",
        "tlb_cycles",
        "tlb_flush_all",
        "tlb_flush_local",
        "tlb_flush_range",
        "tlb_ipis",
        "total_cycles",
        "tree_cycles",
        "vmap_cycles",
        "zeroed_pages",
        "zeroing_cycles",
    )

    def __init__(self) -> None:
        self.direct_map_level2_splits: int = 0
        self.direct_map_level3_splits: int = 0
        self.direct_map_level2_collapses: int = 0
        self.direct_map_level3_collapses: int = 0
        self.tlb_flush_all: int = 0
        self.tlb_flush_range: int = 0
        self.tlb_flush_local: int = 0
        self.tlb_ipis: int = 0
        self.cpa_calls: int = 0
        self.text_poke_calls: int = 0
        self.zeroed_pages: int = 0
        self.numa_miss: int = 0
        self.numa_foreign: int = 0
        self.allocstall: int = 0
        self.pgscan_direct: int = 0
        self.pgsteal_direct: int = 0
        self.pgscan_kswapd: int = 0
        self.pgsteal_kswapd: int = 0
        self.compact_stall: int = 0
        self.compact_success: int = 0
        self.compact_fail: int = 0
        self.pgmigrate_success: int = 0
        self.compact_daemon_wake: int = 0
        self.buddy_cycles: float = 0.0
        self.zeroing_cycles: float = 0.0
        self.cpa_cycles: float = 0.0
        self.split_cycles: float = 0.0
        self.flush_local_cycles: float = 0.0
        self.shootdown_cycles: float = 0.0
        self.text_poke_cycles: float = 0.0
        self.vmap_cycles: float = 0.0
        self.slab_cycles: float = 0.0
        self.tree_cycles: float = 0.0
        self.tlb_cycles: float = 0.0
        self.numa_cycles: float = 0.0
        self.reclaim_cycles: float = 0.0
        self.compaction_cycles: float = 0.0
        self.total_cycles: float = 0.0
        # of total_cycles, what kswapd and the kcompactd it wakes spent: kernel threads on
        # their own CPUs, so the machine's work but not the waking call's latency
        self.daemon_cycles: float = 0.0

    @property
    def cycles(self) -> Mapping[str, float]:
        """Cycles per category, in :data:`CATEGORIES` order: a read-only snapshot (so that
        ``ledger.cycles[c] += x`` fails loudly instead of charging nothing)."""
        return MappingProxyType({category: getattr(self, attr)
                                 for category, attr in CYCLE_ATTRS.items()})

    def charge(self, category: str, cycles: float) -> None:
        """Add ``cycles`` to ``category`` and to the running total.

        :raises KeyError: for a category not in :data:`CATEGORIES`.
        """
        attr = CYCLE_ATTRS[category]
        setattr(self, attr, getattr(self, attr) + cycles)
        self.total_cycles += cycles

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters."""
        return {name: getattr(self, name) for name in COUNTERS}


#: Below this, a float holds every integer exactly (2 ** 53).
EXACT_INT: Final = float(1 << 53)


def repeat_is_exact(total: float, cost: float, times: int) -> bool:
    """Is ``total + cost * times`` exactly what ``times`` additions of ``cost`` give?

    True when both are integers and the sum stays below 2 ** 53: every partial sum is then an
    integer a float holds exactly, whatever the order. The kernel model's bulk paths
    (``alloc_pages_bulk``, ``free_pages_bulk``, the CPA range loops) charge a run of pages
    at once only then, so that their cycles are bit for bit the page-by-page ones.
    """
    return (float(total).is_integer() and float(cost).is_integer()
            and abs(total) + abs(cost) * times < EXACT_INT)
