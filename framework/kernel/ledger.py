"""The counters and the cycle-cost ledger of one run.

Every kernel-model operation bumps plain integer counters here and charges modelled cycles to
a category from :data:`framework.machine.costs.CATEGORIES`. The engine reads the ledger to
build the metrics of DESIGN section 8. A plain slotted class: it sits on the hot path.
"""

from __future__ import annotations

from framework.machine.costs import CATEGORIES

COUNTERS: tuple[str, ...] = (
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
)


class Ledger:
    """Counters (attributes named as in :data:`COUNTERS`) and cycles per category."""

    __slots__ = (*COUNTERS, "cycles", "total_cycles")

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.cycles: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
        self.total_cycles = 0.0

    def charge(self, category: str, cycles: float) -> None:
        """Add ``cycles`` to ``category`` and to the running total."""
        self.cycles[category] += cycles
        self.total_cycles += cycles

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters."""
        return {name: getattr(self, name) for name in COUNTERS}
