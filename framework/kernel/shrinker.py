"""mm/vmscan.c ``shrink_slab()``: the shrinkers designs register for their caches."""

from __future__ import annotations

from typing import Protocol


class Shrinker(Protocol):
    """include/linux/shrinker.h: what a registered shrinker provides."""

    def count_objects(self) -> int:
        """Pages the shrinker could free now."""

    def scan_objects(self, nr_to_scan: int) -> int:
        """Free up to ``nr_to_scan`` pages; return how many were freed."""


class Shrinkers:
    """The registered shrinkers, asked in registration order."""

    def __init__(self) -> None:
        self.shrinkers: list[Shrinker] = []

    def register_shrinker(self, shrinker: Shrinker) -> None:
        """register_shrinker()."""
        self.shrinkers.append(shrinker)

    def shrink(self, nr_pages: int) -> int:
        """shrink_slab(): ask each shrinker in turn until ``nr_pages`` are freed."""
        freed = 0
        for shrinker in self.shrinkers:
            if freed >= nr_pages:
                break
            if shrinker.count_objects():
                freed += shrinker.scan_objects(nr_pages - freed)
        return freed
