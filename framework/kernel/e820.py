"""The physical layout of an x86-64 machine: E820 RAM ranges, NUMA nodes and zones (v6.3).

- RAM below 4 GiB stops where the MMIO hole starts (``4 GiB - hole``); the rest of RAM is
  relocated above 4 GiB, as firmware reports it in the E820 map (arch/x86/kernel/e820.c).
  The hole is never RAM: no page frame, no direct-map entry there.
- Nodes split RAM evenly in address order (``numa_init`` with equal node sizes).
- Zones per node (mm/page_alloc.c ``zone_sizes_init`` with ``max_zone_pfns``):
  ``ZONE_DMA`` below 16 MiB, ``ZONE_DMA32`` below 4 GiB, ``ZONE_NORMAL`` above. A zone that
  holds no RAM of a node does not exist on that node (``populated_zone``).
- The first ``reserved_mib`` of RAM (the first MiB the BIOS keeps, the kernel image at
  ``CONFIG_PHYSICAL_START`` = 16 MiB and early memblock reservations) never reaches the buddy.

All values are page frame numbers; every boundary is a multiple of a ``MAX_ORDER - 1``
block (4 MiB), so buddies never straddle a zone or a node.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

import attrs

from framework.kernel.consts import MAX_ORDER, PAGE_SHIFT

MAX_BLOCK_PAGES: Final = 1 << (MAX_ORDER - 1)
FOUR_GIB_PFN: Final = (4 << 30) >> PAGE_SHIFT
SIXTEEN_MIB_PFN: Final = (16 << 20) >> PAGE_SHIFT


class ZoneType(IntEnum):
    """include/linux/mmzone.h ``enum zone_type`` on x86-64 (no HIGHMEM, no MOVABLE)."""

    ZONE_DMA = 0
    ZONE_DMA32 = 1
    ZONE_NORMAL = 2


ZONE_NAMES: Final[tuple[str, ...]] = ("DMA", "DMA32", "Normal")  # as /proc/buddyinfo prints them
#: Upper pfn bound of each zone (``max_zone_pfns``); Normal runs to the end of RAM.
ZONE_LIMITS: Final[tuple[int, ...]] = (SIXTEEN_MIB_PFN, FOUR_GIB_PFN)


@attrs.frozen(slots=True)
class ZoneSpan:
    """One populated zone of one node: ``[start_pfn, end_pfn)`` all RAM (no hole inside)."""

    node: int
    zone_type: ZoneType
    start_pfn: int
    end_pfn: int

    @property
    def pages(self) -> int:
        """``present_pages``."""
        return self.end_pfn - self.start_pfn

    @property
    def name(self) -> str:
        """The zone's name as /proc prints it."""
        return ZONE_NAMES[self.zone_type]


@attrs.frozen(slots=True)
class Layout:
    """RAM ranges and zones of one machine.

    :ivar ram: ``[start, end)`` pfn ranges of usable RAM (E820_TYPE_RAM), ascending.
    :ivar zones: populated zones, by node then zone type.
    :ivar max_pfn: one past the last RAM pfn.
    :ivar reserved_pages: RAM pages from pfn 0 never given to the buddy.
    """

    ram: tuple[tuple[int, int], ...]
    zones: tuple[ZoneSpan, ...]
    max_pfn: int
    reserved_pages: int

    def node_zones(self, node: int) -> tuple[ZoneSpan, ...]:
        """The populated zones of ``node``, lowest type first."""
        return tuple(z for z in self.zones if z.node == node)

    def is_ram(self, pfn: int) -> bool:
        """Is ``pfn`` a RAM page frame (not in the MMIO hole)?"""
        return any(start <= pfn < end for start, end in self.ram)


def ram_ranges(mem_pages: int, hole_pages: int) -> tuple[tuple[int, int], ...]:
    """The E820 RAM ranges firmware reports (e820__memory_setup()): up to ``4 GiB - hole``
    below 4 GiB, the rest from 4 GiB up."""
    low_end = FOUR_GIB_PFN - hole_pages
    if mem_pages <= low_end or hole_pages == 0:
        return ((0, mem_pages),)
    return ((0, low_end), (FOUR_GIB_PFN, FOUR_GIB_PFN + mem_pages - low_end))


def node_ranges(ram: tuple[tuple[int, int], ...], nodes: int
                ) -> list[list[tuple[int, int]]]:
    """numa_init() with equal nodes: RAM split evenly in address order, each node's pieces."""
    total = sum(end - start for start, end in ram)
    per_node = total // nodes
    out: list[list[tuple[int, int]]] = [[] for _ in range(nodes)]
    node, left = 0, per_node
    for start, end in ram:
        while start < end:
            take = min(end - start, left)
            out[node].append((start, start + take))
            start += take
            left -= take
            if left == 0 and node < nodes - 1:
                node, left = node + 1, per_node
    return out


def build_layout(mem_pages: int, nodes: int, hole_pages: int, reserved_pages: int) -> Layout:
    """free_area_init() with zone_sizes_init()'s ``max_zone_pfns``: each node's populated
    zones over its RAM (see the module docstring)."""
    ram = ram_ranges(mem_pages, hole_pages)
    zones: list[ZoneSpan] = []
    for node, pieces in enumerate(node_ranges(ram, nodes)):
        for start, end in pieces:
            lo = start
            for zone_type in ZoneType:
                limit = ZONE_LIMITS[zone_type] if zone_type < len(ZONE_LIMITS) else end
                hi = min(end, max(lo, limit))
                if hi > lo:
                    zones.append(ZoneSpan(node, zone_type, lo, hi))
                    lo = hi
    return Layout(ram, tuple(_merge(zones)), ram[-1][1], reserved_pages)


def _merge(zones: list[ZoneSpan]) -> list[ZoneSpan]:
    """One span per (node, zone type): pieces of one zone on both sides of the hole cannot
    occur (the hole ends at 4 GiB, where ZONE_DMA32 ends), but adjacent pieces join."""
    out: list[ZoneSpan] = []
    for z in zones:
        if out and out[-1].node == z.node and out[-1].zone_type == z.zone_type \
                and out[-1].end_pfn == z.start_pfn:
            out[-1] = attrs.evolve(out[-1], end_pfn=z.end_pfn)
        else:
            out.append(z)
    return out
