"""mm/vmscan.c: kswapd and direct reclaim of the start state's page cache (v6.3).

What is reclaimable: the clean page cache a start state holds (``Use.PAGECACHE``, framework/
kernel/initial.py). Anon memory is not (the model has no swap: ``get_scan_count()`` then
scans only the file lists), slab is freed only by shrinkers, and nothing the run allocated is
on an LRU. Every page cache page reclaim looks at is clean, unmapped and inactive, so
``pgscan == pgsteal``.

The LRU: the inactive file list holds the zone's page cache in the order it was added, which
has little to do with pfns, except that pages added together (one readahead, served from one
per-cpu batch) lie near each other. The model visits the zone's page-cache pageblocks in an
order drawn from the seed and takes one isolation batch (``SWAP_CLUSTER_MAX`` pages,
``isolate_lru_folios()``) from each, spread over the pageblock (16 pages apart, from a
position that moves with every visit), round after round: reclaiming ``n`` pages touches
about ``n / 32`` pageblocks, and the freed pages merge only where their buddies happen to be
free. Pages compaction moves into other pageblocks join the list there.

- :meth:`Reclaim.wakeup_kswapd`: ``wakeup_kswapd()``; a woken kswapd runs
  ``balance_pgdat()`` at once, inside the allocation that woke it (deterministic), and goes
  back to sleep when the node is balanced (some eligible zone above its high watermark for
  the order; order 0 once it reclaimed ``compact_gap(order)`` pages) or after priority 1.
  ``kswapd_failures`` counts runs that reclaimed nothing; at ``MAX_RECLAIM_RETRIES`` the
  node is left to direct reclaim.
- :meth:`Reclaim.kswapd_try_to_sleep`: kswapd's way back to sleep after a high-order wake
  that ``balance_pgdat()`` finished at order 0 (``reclaim_order < alloc_order`` in
  ``kswapd()``): when ``prepare_kswapd_sleep()`` finds the node balanced at that order (or
  hopeless), kswapd wakes kcompactd for the order the allocation asked
  (``wakeup_kcompactd()``, framework/kernel/compaction.py), which also runs at once. A wake
  that ``balance_pgdat()`` finished at the order asked wakes no kcompactd (``kswapd()`` then
  tries to sleep at ``kswapd_order``, reset to 0, and ``wakeup_kcompactd()`` ignores order
  0), nor does a node found balanced or hopeless by ``wakeup_kswapd()`` itself (it wakes
  kcompactd only for callers without ``__GFP_DIRECT_RECLAIM``; every caller the model has is
  GFP_KERNEL).
- :meth:`Reclaim.try_to_free_pages`: ``try_to_free_pages()`` / ``do_try_to_free_pages()``:
  ``allocstall``, then priorities 12..0 over the zonelist's eligible zones until
  ``SWAP_CLUSTER_MAX`` pages are reclaimed; a zone where compaction could already run for a
  costly order is skipped (``compaction_ready()``), which counts as progress.

Each scan of ``lru_size >> priority`` pages (``get_scan_count()``) is capped at what the
reclaimer still wants, in ``SWAP_CLUSTER_MAX`` batches. Reclaimed pages go straight to the
buddy (v6.3 passes them through the reclaiming CPU's per-cpu list, free_unref_page_list()).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import numpy as np

from framework.kernel.buddy import Zone
from framework.kernel.consts import (
    MAX_ORDER,
    MIGRATE_MOVABLE,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)
from framework.kernel.e820 import ZoneSpan
from framework.kernel.initial import StartState, Use
from framework.kernel.ledger import Ledger
from framework.kernel.pcp import PAGE_ALLOC_COSTLY_ORDER
from framework.kernel.watermark import WMARK_HIGH

DEF_PRIORITY: Final = 12  # mm/vmscan.c
SWAP_CLUSTER_MAX: Final = 32  # include/linux/swap.h
MAX_RECLAIM_RETRIES: Final = 16  # mm/internal.h
_PB_MASK: Final = PAGEBLOCK_NR_PAGES - 1
_GOLDEN: Final = 0x9E3779B1  # spreads the page taken from a pageblock over its positions
_STRIDE: Final = PAGEBLOCK_NR_PAGES // SWAP_CLUSTER_MAX  # 16: a batch's pages spread over the block
_PB_BYTES: Final = PAGEBLOCK_NR_PAGES // 8  # a pageblock's bitmap in bytes
BLOCK_SHIFT: Final = MAX_ORDER - 1  # a start-state block (two pageblocks) is pfn >> 10


def _first_set(buf: bytearray, at: int) -> int:
    """The first set bit of the little-endian bitmap ``buf`` at or after bit ``at``, else
    the lowest set bit (the search wraps); -1 when no bit is set."""
    i = at >> 3
    byte = buf[i] & (0xFF << (at & 7)) & 0xFF
    if byte:
        return (i << 3) + (byte & -byte).bit_length() - 1
    for k in range(i + 1, len(buf)):
        byte = buf[k]
        if byte:
            return (k << 3) + (byte & -byte).bit_length() - 1
    for k in range(i + 1):  # wrap: the lowest set bit (byte i's bits left are below at)
        byte = buf[k]
        if byte:
            return (k << 3) + (byte & -byte).bit_length() - 1
    return -1


#: ``ready(zone, order, highest_zone)``: compaction_ready() (framework/kernel/compaction.py).
Ready = Callable[[Zone, int, int], bool]
#: ``wake(node, order, highest_zone)``: wakeup_kcompactd() (framework/kernel/compaction.py).
WakeKcompactd = Callable[[int, int, int], None]


def compact_gap(order: int) -> int:
    """include/linux/compaction.h compact_gap(): twice the request, what compaction needs free."""
    return 2 << order


class Lru:
    """One zone's inactive file list: page-cache pageblocks in LRU order and a cursor."""

    __slots__ = ("members", "order", "pos", "visits")

    def __init__(self, order: list[int]) -> None:
        self.order = order
        self.members = set(order)
        self.pos = 0
        self.visits = 0

    def add(self, block: int) -> None:
        """A pageblock that received page cache (migration) joins the list's end."""
        if block not in self.members:
            self.members.add(block)
            self.order.append(block)


class Reclaim:
    """kswapd and direct reclaim of one machine (module docstring).

    :ivar kswapd_failures: per node, consecutive kswapd runs that reclaimed nothing.
    """

    def __init__(self, zones: Sequence[Zone], spans: Sequence[ZoneSpan],
                 start: StartState | None, ledger: Ledger, costs: dict[str, float], seed: int
                 ) -> None:
        self.zones = zones
        self.spans = dict(zip((id(z) for z in zones), spans, strict=True))
        self.start = start
        self.ledger = ledger
        self.c_reclaim = costs["reclaim_page"]
        self.seed = seed
        self.lrus: dict[int, Lru] = {}
        self.kswapd_failures = [0] * (1 + max((z.node for z in zones), default=0))
        self.compaction_ready: Ready | None = None
        self.wakeup_kcompactd: WakeKcompactd | None = None

    # -- the LRU model ----------------------------------------------------------------------
    def lru(self, zone: Zone) -> Lru:
        """The zone's list, built on first use from the start state's page-cache pageblocks
        (no block described), in an order drawn from the seed."""
        lru = self.lrus.get(id(zone))
        if lru is None:
            blocks: np.ndarray = np.zeros(0, dtype=np.int64)
            finder = getattr(self.start, "pageblocks_with", None)
            if finder is not None and zone.start_cache_pages:
                blocks = finder(self.spans[id(zone)], frozenset({int(Use.PAGECACHE)}))
            rng = np.random.Generator(np.random.PCG64(
                (self.seed * 7919 + zone.start_pfn) % (1 << 63)))
            lru = self.lrus[id(zone)] = Lru([int(b) for b in rng.permutation(blocks)])
        return lru

    def shrink_zone(self, zone: Zone, nr_to_scan: int) -> int:
        """shrink_inactive_list() over ``nr_to_scan`` pages of the zone's list; returns the
        pages reclaimed (each one scanned, all clean: module docstring)."""
        lru = self.lru(zone)
        order = lru.order
        cache_bits = zone.cache_bits
        done_blocks = zone.start_done
        free_pages_order0 = zone.free_pages_order0
        types = zone.pageblock_mt
        done = empty = 0
        pos = lru.pos
        while done < nr_to_scan and done < zone.start_cache_pages and empty <= len(order):
            if pos >= len(order):
                pos = 0
            block = order[pos]
            pos += 1
            if block >> 1 << BLOCK_SHIFT not in done_blocks:
                zone.materialise(block << PAGEBLOCK_ORDER)
            bits = cache_bits.get(block, 0)
            if not bits:
                empty += 1
                continue
            empty = 0
            lru.visits += 1
            start = (lru.visits * _GOLDEN + block) & _PB_MASK
            base = block << PAGEBLOCK_ORDER
            mt = types.get(block, MIGRATE_MOVABLE)
            take = min(SWAP_CLUSTER_MAX, nr_to_scan - done, zone.start_cache_pages - done)
            batch: list[int] = []
            # the bitmap as bytes: the searches below touch small ints, not 512-bit ones
            buf = bytearray(bits.to_bytes(_PB_BYTES, "little"))
            for j in range(take):  # a batch spread over the pageblock, 16 pages apart
                page = _first_set(buf, (start + j * _STRIDE) & _PB_MASK)
                if page < 0:
                    break
                buf[page >> 3] &= ~(1 << (page & 7)) & 0xFF  # a set bit: clear it
                batch.append(base + page)
            bits = int.from_bytes(buf, "little")
            free_pages_order0(batch, mt)  # free_unref_page_list() of the batch
            done += len(batch)
            if bits:
                cache_bits[block] = bits
            else:
                del cache_bits[block]
        lru.pos = pos
        zone.start_cache_pages -= done
        zone.start_used_pages -= done
        cost = self.c_reclaim * done
        self.ledger.reclaim_cycles += cost
        self.ledger.total_cycles += cost
        return done

    def _eligible(self, node: int, highest_zone: int) -> list[Zone]:
        return [z for z in self.zones if z.node == node and z.zone_type <= highest_zone
                and z.managed]

    def shrink_node(self, zones: Sequence[Zone], priority: int, nr_to_reclaim: int) -> int:
        """shrink_node(): scan ``lru_size >> priority`` of each eligible zone's page cache
        (the node's LRU spans them), up to ``nr_to_reclaim`` in SWAP_CLUSTER_MAX batches."""
        reclaimed = 0
        for zone in zones:
            scan = zone.start_cache_pages >> priority
            want = nr_to_reclaim - reclaimed
            if want <= 0:
                break
            batches = -(-want // SWAP_CLUSTER_MAX) * SWAP_CLUSTER_MAX
            reclaimed += self.shrink_zone(zone, min(scan, batches))
        return reclaimed

    # -- kswapd -----------------------------------------------------------------------------
    @staticmethod
    def pgdat_balanced(zones: Sequence[Zone], order: int, highest_zone: int) -> bool:
        """pgdat_balanced(): some eligible zone is above its high watermark for ``order``."""
        return any(z.watermark_ok(order, z.wmark[WMARK_HIGH], highest_zone) for z in zones)

    def wakeup_kswapd(self, node: int, order: int, highest_zone: int) -> None:
        """wakeup_kswapd(): a sleeping kswapd of ``node`` runs balance_pgdat() unless the
        node is balanced or hopeless (``kswapd_failures``)."""
        zones = self._eligible(node, highest_zone)
        if not zones or self.kswapd_failures[node] >= MAX_RECLAIM_RETRIES:
            return
        if self.pgdat_balanced(zones, order, highest_zone):
            return
        led = self.ledger
        before = led.total_cycles
        reclaim_order = self.balance_pgdat(node, order, highest_zone, zones)
        if reclaim_order < order:  # kswapd(): goto kswapd_try_sleep
            self.kswapd_try_to_sleep(node, order, reclaim_order, highest_zone, zones)
        # kswapd() and kcompactd() are kernel threads: the waker does not wait for them
        led.daemon_cycles += led.total_cycles - before

    def prepare_kswapd_sleep(self, node: int, order: int, highest_zone: int,
                             zones: Sequence[Zone]) -> bool:
        """prepare_kswapd_sleep(): the node is hopeless (left to direct reclaim) or
        balanced for ``order``."""
        return (self.kswapd_failures[node] >= MAX_RECLAIM_RETRIES
                or self.pgdat_balanced(zones, order, highest_zone))

    def kswapd_try_to_sleep(self, node: int, alloc_order: int, reclaim_order: int,
                            highest_zone: int, zones: Sequence[Zone]) -> None:
        """kswapd_try_to_sleep(): before its short sleep, kswapd wakes kcompactd for
        ``alloc_order`` if the node is ready to sleep at ``reclaim_order``
        (reset_isolation_suitable() has no skip hints to clear in the model)."""
        if (self.wakeup_kcompactd is not None
                and self.prepare_kswapd_sleep(node, reclaim_order, highest_zone, zones)):
            self.wakeup_kcompactd(node, alloc_order, highest_zone)

    def balance_pgdat(self, node: int, order: int, highest_zone: int,
                      zones: Sequence[Zone]) -> int:
        """balance_pgdat(): priorities 12..1 until the node is balanced; each pass asks
        kswapd_shrink_node() for the eligible zones' high watermarks (at least
        SWAP_CLUSTER_MAX each); a high order drops to 0 once compact_gap(order) pages are
        reclaimed. Returns the order it ended at (``sc.order``: ``order``, or 0 after that
        drop)."""
        led = self.ledger
        total = 0
        priority = DEF_PRIORITY
        sc_order = order
        while priority >= 1:
            if self.pgdat_balanced(zones, sc_order, highest_zone):
                break
            nr_to_reclaim = sum(max(z.wmark[WMARK_HIGH], SWAP_CLUSTER_MAX) for z in zones)
            got = self.shrink_node(zones, priority, nr_to_reclaim)
            total += got
            if sc_order and total >= compact_gap(sc_order):
                sc_order = 0
            if got < nr_to_reclaim or not got:  # raise_priority: scanned < nr_to_reclaim
                priority -= 1
        led.pgscan_kswapd += total
        led.pgsteal_kswapd += total
        self.kswapd_failures[node] = 0 if total else self.kswapd_failures[node] + 1
        return sc_order

    # -- direct reclaim ---------------------------------------------------------------------
    def try_to_free_pages(self, zonelist: Sequence[Zone], order: int,
                          highest_zone: int) -> int:
        """try_to_free_pages() -> do_try_to_free_pages(): returns the progress
        ``__perform_reclaim()`` reports (pages reclaimed, or 1 when compaction is ready)."""
        led = self.ledger
        led.allocstall += 1
        nodes: list[int] = []
        for zone in zonelist:
            if zone.node not in nodes:
                nodes.append(zone.node)
        reclaimed = 0
        compaction_ready = False
        for priority in range(DEF_PRIORITY, -1, -1):
            for node in nodes:  # shrink_zones(): each node once
                zones = []
                for zone in self._eligible(node, highest_zone):
                    if (order > PAGE_ALLOC_COSTLY_ORDER and self.compaction_ready is not None
                            and self.compaction_ready(zone, order, highest_zone)):
                        compaction_ready = True
                        continue
                    zones.append(zone)
                if zones and reclaimed < SWAP_CLUSTER_MAX:
                    reclaimed += self.shrink_node(zones, priority,
                                                  SWAP_CLUSTER_MAX - reclaimed)
            if reclaimed >= SWAP_CLUSTER_MAX or compaction_ready:
                break
        led.pgscan_direct += reclaimed
        led.pgsteal_direct += reclaimed
        if reclaimed:
            return reclaimed
        return 1 if compaction_ready else 0

    def reclaimable(self, zone: Zone) -> int:
        """zone_reclaimable_pages(): the zone's page cache still held."""
        return zone.start_cache_pages

