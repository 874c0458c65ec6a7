"""Fault injection: the buddy, CPA and split page-table allocations failing on purpose.

Set with ``--set faults.KEY=VALUE``. Draws come from the run's own seeded generator and only
when a rate is non-zero, so a run without faults consumes no random numbers for them.
"""

from __future__ import annotations

import random
from typing import Final

import attrs

from framework.kernel.consts import MAX_ORDER
from framework.params import Param


def _orders(text: str) -> frozenset[int]:
    """``"0,9"`` -> {0, 9}; empty items are skipped.

    :raises ValueError: for an item that is not a decimal order from 0 to MAX_ORDER - 1
        (a ``--set`` value is checked with this before anything runs).
    """
    orders = set()
    for item in text.split(","):
        if not item.strip():
            continue
        order = int(item.strip(), 10)
        if not 0 <= order < MAX_ORDER:
            raise ValueError(item)
        orders.add(order)
    return frozenset(orders)


FAULT_PARAMS: Final[tuple[Param, ...]] = (
    Param("alloc_fail_orders", str, "", "comma-separated orders whose allocations always fail",
          check=_orders, describe=f"a comma list of orders 0 to {MAX_ORDER - 1} (may be empty)"),
    Param("alloc_fail_rate", float, 0.0, "probability that any buddy allocation fails",
          min=0.0, max=1.0),
    Param("cpa_fail_rate", float, 0.0,
          "probability that a CPA call fails (set_direct_map_invalid_noflush may fail)",
          min=0.0, max=1.0),
    Param("pt_fail_rate", float, 0.0,
          "probability that a split cannot get its page-table page", min=0.0, max=1.0),
)


@attrs.frozen(slots=True)
class Faults:
    """What fails, and the seed of the generator that decides it."""

    seed: int = 0
    alloc_fail_orders: frozenset[int] = frozenset()
    alloc_fail_rate: float = 0.0
    cpa_fail_rate: float = 0.0
    pt_fail_rate: float = 0.0

    @classmethod
    def from_params(cls, params: dict[str, object], seed: int) -> Faults:
        """Build from resolved ``faults.*`` parameters."""
        return cls(
            seed=seed,
            alloc_fail_orders=_orders(str(params["alloc_fail_orders"])),
            alloc_fail_rate=float(params["alloc_fail_rate"]),  # type: ignore[arg-type]
            cpa_fail_rate=float(params["cpa_fail_rate"]),  # type: ignore[arg-type]
            pt_fail_rate=float(params["pt_fail_rate"]),  # type: ignore[arg-type]
        )

    def fail_alloc(self, order: int, rng: random.Random) -> bool:
        """Should this buddy allocation fail?"""
        if order in self.alloc_fail_orders:
            return True
        return self.alloc_fail_rate > 0 and rng.random() < self.alloc_fail_rate

    def fail_cpa(self, rng: random.Random) -> bool:
        """Should this CPA call fail with -ENOMEM?"""
        return self.cpa_fail_rate > 0 and rng.random() < self.cpa_fail_rate

    def fail_pt(self, rng: random.Random) -> bool:
        """Should this split's page-table allocation fail?"""
        return self.pt_fail_rate > 0 and rng.random() < self.pt_fail_rate
