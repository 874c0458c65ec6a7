"""Zone watermarks and the lowmem reserve (mm/page_alloc.c, mm/khugepaged.c, v6.3).

- ``min_free_kbytes``: ``int_sqrt(lowmem_kbytes * 16)`` clamped to 128..262144
  (``init_per_zone_wmark_min``), raised by khugepaged's ``set_recommended_min_free_kbytes``
  to ``pageblock_nr_pages * nr_zones * (2 + MIGRATE_PCPTYPES^2)`` (at most 5 % of RAM), as
  every kernel with transparent huge pages does once khugepaged starts.
- Per zone (``__setup_per_zone_wmarks``): ``min`` is the zone's share of ``min_free_kbytes``;
  ``low`` and ``high`` add ``max(min / 4, managed * watermark_scale_factor / 10000)`` once and
  twice (``watermark_scale_factor`` = 10).
- ``lowmem_reserve[j]`` of a zone (``setup_per_zone_lowmem_reserve``): the managed pages of the
  node's zones above it up to type ``j``, divided by ``sysctl_lowmem_reserve_ratio`` of the
  zone (256 for DMA and DMA32).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt
from typing import Final

from framework.kernel.buddy import Zone
from framework.kernel.consts import PAGEBLOCK_NR_PAGES

WMARK_MIN: Final = 0
WMARK_LOW: Final = 1
WMARK_HIGH: Final = 2
WATERMARK_SCALE_FACTOR: Final = 10  # vm.watermark_scale_factor default
LOWMEM_RESERVE_RATIO: Final = (256, 256, 32)  # sysctl_lowmem_reserve_ratio: DMA, DMA32, NORMAL
MIGRATE_PCPTYPES: Final = 3
KB_PER_PAGE: Final = 4


def min_free_kbytes(managed_pages: int, nr_zones: int) -> int:
    """init_per_zone_wmark_min(), then set_recommended_min_free_kbytes() (THP on)."""
    lowmem_kbytes = managed_pages * KB_PER_PAGE
    value = max(128, min(262144, isqrt(lowmem_kbytes * 16)))
    recommended = PAGEBLOCK_NR_PAGES * nr_zones * (2 + MIGRATE_PCPTYPES * MIGRATE_PCPTYPES)
    recommended = min(recommended, managed_pages // 20)  # at most 5 % of lowmem
    return max(value, recommended * KB_PER_PAGE)


def setup_per_zone_wmarks(zones: Sequence[Zone], sysctl_kbytes: int = -1) -> int:
    """__setup_per_zone_wmarks(); ``sysctl_kbytes`` >= 0 is a ``vm.min_free_kbytes`` the
    user wrote. Returns ``min_free_kbytes``."""
    lowmem_pages = sum(zone.managed for zone in zones)
    populated = len(zones)  # for_each_populated_zone(): present pages, reserved ones count
    kbytes = sysctl_kbytes if sysctl_kbytes >= 0 else min_free_kbytes(lowmem_pages, populated)
    pages_min = kbytes // KB_PER_PAGE
    for zone in zones:
        low = pages_min * zone.managed // max(1, lowmem_pages)
        step = max(low >> 2, zone.managed * WATERMARK_SCALE_FACTOR // 10000)
        zone.wmark = (low, low + step, low + 2 * step)
    return kbytes


def setup_per_zone_lowmem_reserve(zones: Sequence[Zone], nodes: int) -> None:
    """setup_per_zone_lowmem_reserve(), node by node."""
    for node in range(nodes):
        by_type = {zone.zone_type: zone for zone in zones if zone.node == node}
        for low_type, zone in by_type.items():
            ratio = LOWMEM_RESERVE_RATIO[low_type]
            reserve = [0, 0, 0]
            above = 0
            for high_type in range(low_type + 1, len(reserve)):
                upper = by_type.get(high_type)
                above += upper.managed if upper is not None else 0
                reserve[high_type] = above // ratio if zone.managed else 0
            zone.lowmem_reserve = reserve
