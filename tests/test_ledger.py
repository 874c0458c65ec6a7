"""The ledger's written-out attributes are exactly the counters and the cost categories."""

from __future__ import annotations

import pytest

from framework.kernel.ledger import COUNTERS, CYCLE_ATTRS, Ledger
from framework.machine.costs import CATEGORIES

# The written-out attributes: __slots__ in Python, __mypyc_attrs__ when compiled by mypyc
# (docs/performance.md, "Compiled core").
SLOTS: tuple[str, ...] = getattr(Ledger, "__slots__", None) or Ledger.__mypyc_attrs__


def test_slots_are_the_counters_and_categories() -> None:
    assert set(SLOTS) == {*COUNTERS, *CYCLE_ATTRS.values(), "total_cycles", "daemon_cycles"}
    assert len(SLOTS) == len(set(SLOTS))
    assert set(CYCLE_ATTRS) == set(CATEGORIES)


def test_fresh_ledger_is_zero_and_charge_adds() -> None:
    led = Ledger()
    assert all(getattr(led, n) == 0 for n in SLOTS)
    led.charge("cpa", 400)
    led.charge("cpa", 150)
    assert led.cycles["cpa"] == 550 and led.total_cycles == 550
    with pytest.raises(KeyError):
        led.charge("nosuch", 1)
