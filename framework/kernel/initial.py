"""What memory holds when a run starts: the contract between the kernel model and the
providers of a start state (a just-booted machine, an aged server, the user's /proc snapshot).

The kernel model asks a provider for one ``MAX_ORDER - 1`` block (4 MiB, two pageblocks) at a
time, the first time anything touches it, so building a start state costs what a run touches,
not the machine's size. A provider answers in constant time per block and the same way for
the same seed, whatever the order of the questions.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, Protocol

import attrs
import numpy as np

from framework.kernel.consts import MAX_ORDER, MIGRATE_MOVABLE
from framework.kernel.e820 import Layout, ZoneSpan

BLOCK_ORDER: Final = MAX_ORDER - 1
BLOCK_PAGES: Final = 1 << BLOCK_ORDER  # 1024 pages: the unit a provider describes


class Use(IntEnum):
    """What an allocated folio at the start is, which decides what reclaim and compaction
    can do with it (mm/vmscan.c, mm/compaction.c)."""

    PAGECACHE = 0  # clean file pages: reclaim drops them; compaction can migrate them
    ANON = 1  # anonymous memory (4 KiB or THP): migratable, not reclaimable (no swap)
    SLAB_RECLAIMABLE = 2  # dentries, inodes: freed only by shrinkers, not migratable
    KERNEL = 3  # everything else unmovable: page tables, slab, vmalloc, the kernel's own


@attrs.frozen(slots=True)
class Block:
    """One 4 MiB block at the start.

    :ivar mts: migratetype of its two pageblocks.
    :ivar free: ``(offset, order)`` free buddy blocks: naturally aligned, disjoint, ascending;
        order ``BLOCK_ORDER`` means the whole block is one free block.
    :ivar used: ``(offset, order, Use)`` allocated folios, aligned, disjoint, ascending.
        ``free`` and ``used`` together cover the block's 1024 pages exactly.
    """

    mts: tuple[int, int]
    free: tuple[tuple[int, int], ...]
    used: tuple[tuple[int, int, Use], ...]


FREE_BLOCK: Final = Block((MIGRATE_MOVABLE, MIGRATE_MOVABLE), ((0, BLOCK_ORDER),), ())


@attrs.frozen(slots=True)
class ZoneStart:
    """Totals of one zone at the start, before any block is asked for (the watermark checks
    and ``/proc`` reports need them at once).

    :ivar nr_free: free blocks per order and migratetype: ``nr_free[order][mt]``.
    :ivar used_pages: allocated pages per :class:`Use`.
    """

    nr_free: tuple[tuple[int, ...], ...]
    used_pages: tuple[int, ...]


class StartState(Protocol):
    """A provider of the start state (``machine.state`` / ``machine.snapshot``)."""

    def zone_start(self, zone: ZoneSpan) -> ZoneStart:
        """The zone's totals; they equal the sums over its :meth:`block` answers."""

    def block(self, zone: ZoneSpan, head_pfn: int) -> Block:
        """The block at ``head_pfn`` (a multiple of ``BLOCK_PAGES`` inside ``zone``; blocks
        that overlap the reserved range at the start of RAM are never asked for)."""

    def blocks_with_free(self, zone: ZoneSpan, order: int, mt: int) -> np.ndarray:
        """Head pfns of ``zone``'s blocks that hold a free block of ``order`` in a pageblock
        of migratetype ``mt`` at the start, ascending (int64), found without describing
        them: where a free-list search looks (``Zone._describe_holding``)."""

    def split_pmds(self, layout: Layout) -> frozenset[int]:
        """2 MiB direct-map regions (pfn >> 9) already split at the start (boot and module
        loading: kernel text and rodata boundaries, early ``set_memory_*`` users)."""
