"""Pack a zone's free-block counts into 4 MiB block templates (used by the start states).

Input: a zone of ``n`` 4 MiB blocks, its free buddy blocks per order and migratetype
(``free[order][mt]``), the share of its pageblocks each migratetype should have, and what the
used pages of a movable pageblock are (page cache, 4 KiB anon, THP). Output: a short list of
``(Block, count)`` whose counts sum to ``n`` and whose free blocks sum exactly to ``free``.

How (all counts exact, placement deterministic):

- An order-10 free block is a whole 4 MiB block (both pageblocks of its migratetype).
- An order-9 free block is one pageblock of a 4 MiB block whose other pageblock is used.
- Every other pageblock ("pool") hosts the free blocks of orders 0..8 of its migratetype,
  spread evenly over the pool pageblocks of that migratetype (``count // P`` each, one more
  in ``count % P`` consecutive ones, staggered by order), so a zone needs a few dozen
  pageblock patterns at most.
- Inside a pageblock the blocks are placed largest first as a valid buddy state (no free block
  has a free buddy): a block of order ``o`` takes a free region of order ``o`` whose buddy
  holds a used page, or splits a larger region down to ``o + 1`` and takes its left half,
  whose right half keeps its last page used (and offers its other pages as regions of orders
  ``o - 1 .. 0``).
- Used pages are folios of one :class:`~framework.kernel.initial.Use` per pageblock:
  ``KERNEL`` in unmovable pageblocks, ``SLAB_RECLAIMABLE`` in reclaimable ones, page cache,
  4 KiB anon or one order-9 THP in movable ones, in the given shares: the THP pageblocks are
  set apart first (as many as the share asks, leaving enough pageblocks for the free
  blocks), the others hold the free blocks. Folios are order 0 except the THP.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence

import attrs

from framework.kernel.consts import MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE
from framework.kernel.initial import BLOCK_ORDER, Block, Use

NR_MT = 3  # the model's migratetypes: unmovable, movable, reclaimable
NR_ORDERS = BLOCK_ORDER + 1
PB_ORDER = BLOCK_ORDER - 1
PB_PAGES = 1 << PB_ORDER
#: Used pages of a pageblock by migratetype when it is not movable.
_FIXED_USE: dict[int, int] = {MIGRATE_UNMOVABLE: Use.KERNEL,
                              MIGRATE_RECLAIMABLE: Use.SLAB_RECLAIMABLE}
THP = -1  # marks the THP kind among the movable uses
NO_USE = -2  # a wholly free pageblock


class PackError(ValueError):
    """The counts do not fit the zone (the message says why)."""


@attrs.frozen(slots=True)
class ZoneTarget:
    """What one zone should hold.

    :ivar blocks: 4 MiB blocks the zone gives to the buddy.
    :ivar free: ``free[order][mt]`` free blocks, orders 0..10, migratetypes 0..2.
    :ivar pb_share: wanted share of the zone's pageblocks per migratetype (sums to 1).
    :ivar movable_use: shares of (page cache, 4 KiB anon, THP) in used movable pageblocks.
    """

    blocks: int
    free: tuple[tuple[int, ...], ...]
    pb_share: tuple[float, float, float] = (0.0, 1.0, 0.0)
    movable_use: tuple[float, float, float] = (1.0, 0.0, 0.0)


@attrs.frozen(slots=True)
class _Half:
    """One pageblock's content: its migratetype, free blocks (offset, order) and the
    :class:`Use` (or :data:`THP`, or :data:`NO_USE` when wholly free) of its used pages."""

    mt: int
    free: tuple[tuple[int, int], ...]
    use: int


@attrs.frozen(slots=True)
class Template:
    """The content of a 4 MiB block, cheap to hash and total; :meth:`block` builds the
    :class:`Block` (its used folios listed page by page) once per template."""

    mts: tuple[int, int]
    free: tuple[tuple[int, int], ...]
    uses: tuple[int, int]

    def block(self) -> Block:
        """The :class:`Block` (cached)."""
        return _block(self)

    def totals(self) -> tuple[list[list[int]], list[int]]:
        """``nr_free[order][mt]`` and used pages per :class:`Use`."""
        free = [[0] * NR_MT for _ in range(NR_ORDERS)]
        half_free = [0, 0]
        for offset, order in self.free:
            free[order][self.mts[offset >> PB_ORDER]] += 1
            half_free[offset >> PB_ORDER] += 1 << order if order < BLOCK_ORDER else PB_PAGES
            if order == BLOCK_ORDER:
                half_free[1] += PB_PAGES
        used = [0] * len(Use)
        for half, use in enumerate(self.uses):
            if use != NO_USE:
                used[Use.ANON if use == THP else use] += PB_PAGES - half_free[half]
        return free, used

    def free_pages(self) -> int:
        """Free pages in the block."""
        return sum(1 << order for _, order in self.free)


@functools.lru_cache(maxsize=4096)
def _block(template: Template) -> Block:
    used: tuple[tuple[int, int, Use], ...] = ()
    for half, use in enumerate(template.uses):
        base = half * PB_PAGES
        free = tuple(page - base for start, order in template.free
                     if base <= start < base + PB_PAGES
                     for page in range(start, start + (1 << order)))
        used += _used(free, use, base)
    return Block(template.mts, template.free, used)


@functools.lru_cache(maxsize=1024)
def place(counts: tuple[int, ...]) -> tuple[tuple[int, int], ...] | None:
    """Free blocks ``(offset, order)`` of ``counts[o]`` blocks of order o (0..8) in one
    512-page pageblock, as a valid buddy state (module docstring); None if they do not fit."""
    avail: list[list[int]] = [[] for _ in range(PB_ORDER + 1)]
    avail[PB_ORDER].append(0)  # the root: never free whole (that would be an order-9 block)
    out: list[tuple[int, int]] = []
    for order in range(PB_ORDER - 1, -1, -1):
        for _ in range(counts[order]):
            if avail[order]:
                out.append((avail[order].pop(), order))
                continue
            above = next((o for o in range(order + 1, PB_ORDER + 1) if avail[o]), None)
            if above is None:
                return None
            start = avail[above].pop()
            for level in range(above, order + 1, -1):  # split down to order + 1
                avail[level - 1].append(start + (1 << (level - 1)))
            out.append((start, order))
            right = start + (1 << order)  # its last page stays used
            for k in range(order - 1, -1, -1):
                avail[k].append(right + (1 << order) - (2 << k))
    return tuple(sorted(out))


@functools.lru_cache(maxsize=1024)
def _used(free_pages: tuple[int, ...], use: int, base: int) -> tuple[tuple[int, int, Use], ...]:
    """The used folios of a pageblock at ``base`` whose free pages (offsets) are given."""
    if use == NO_USE:
        return ()
    if use == THP:
        return ((base, PB_ORDER, Use.ANON),)
    kind = Use(use)
    free = set(free_pages)
    return tuple((base + p, 0, kind) for p in range(PB_PAGES) if p not in free)


def _pool_sizes(target: ZoneTarget, pool: int) -> list[int]:
    """Pool pageblocks per migratetype: near the wanted shares, enough for the small blocks."""
    n = target.blocks
    want = []
    need = []
    for mt in range(NR_MT):
        whole = 2 * target.free[BLOCK_ORDER][mt] + target.free[PB_ORDER][mt]
        want.append(max(0, round(target.pb_share[mt] * 2 * n) - whole))
        need.append(_need(target, mt))
    sizes = [max(w, q) for w, q in zip(want, need, strict=True)]
    excess = sum(sizes) - pool
    for mt in sorted(range(NR_MT), key=lambda m: sizes[m] - need[m], reverse=True):
        cut = min(max(excess, 0), sizes[mt] - need[mt])
        sizes[mt] -= cut
        excess -= cut
    if excess > 0:
        raise PackError(f"the free blocks of orders 0-8 need {sum(need)} pageblocks that are "
                        f"not wholly free, the zone has {pool}")
    sizes[MIGRATE_MOVABLE] -= excess  # excess <= 0: the rest is movable
    return sizes


def _need(target: ZoneTarget, mt: int) -> int:
    """The fewest pageblocks that hold mt's free blocks of orders 0..8 spread evenly."""
    small = [target.free[o][mt] for o in range(PB_ORDER)]
    pages = sum(c << o for o, c in enumerate(small))
    if not pages:
        return 0
    size = max(1, -(-pages // PB_PAGES))
    while any(place(counts) is None for counts, _ in _patterns(small, size)):
        size = size + max(1, size // 8)
    return size


def _patterns(counts: Sequence[int], size: int) -> list[tuple[tuple[int, ...], int]]:
    """Split ``counts[o]`` blocks over ``size`` pageblocks evenly: (per-pageblock counts,
    number of pageblocks) runs.

    Each pageblock gets ``counts[o] // size``; the ``counts[o] % size`` extra blocks of order
    ``o`` go to consecutive pageblocks starting where the extras of order ``o + 1`` ended
    (wrapping), so the few large blocks do not all land in the first pageblock.
    """
    if size == 0:
        return []
    base = [c // size for c in counts]
    spans: list[list[tuple[int, int]]] = [[] for _ in counts]
    at = 0
    for order in range(len(counts) - 1, -1, -1):
        extra = counts[order] % size
        end = at + extra
        spans[order] = [(at, min(end, size))] + ([(0, end - size)] if end > size else [])
        at = end % size
    cuts = sorted({0, size, *(x for sp in spans for lo_hi in sp for x in lo_hi)})
    runs = []
    for lo, hi in itertools.pairwise(cuts):
        extra_at = [any(a <= lo < b for a, b in spans[o]) for o in range(len(counts))]
        runs.append((tuple(b + e for b, e in zip(base, extra_at, strict=True)), hi - lo))
    return runs


def _split(total: int, shares: Sequence[float]) -> list[int]:
    """``total`` split by ``shares`` (largest remainder), exact sum."""
    weight = sum(shares) or 1.0
    raw = [total * s / weight for s in shares]
    out = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: out[i] - raw[i])
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def _pool_halves(target: ZoneTarget, sizes: Sequence[int]) -> list[tuple[_Half, int]]:
    """Run-length list of the pool pageblocks' contents."""
    runs: list[tuple[_Half, int]] = []
    for mt in range(NR_MT):
        small = [target.free[o][mt] for o in range(PB_ORDER)]
        size = sizes[mt]
        if mt == MIGRATE_MOVABLE:  # THPs fill whole pageblocks: set them apart first
            share = target.movable_use[2] / (sum(target.movable_use) or 1.0)
            thp = min(round(size * share), size - _need(target, mt))
            if thp > 0:
                runs.append((_Half(mt, (), THP), thp))
                size -= thp
        for counts, length in _patterns(small, size):
            free = place(counts)
            if free is None:
                raise PackError(f"the free blocks of orders 0-8 of migratetype {mt} do not "
                                f"fit its {sizes[mt]} pageblocks")
            uses: list[tuple[int, int]]
            if mt != MIGRATE_MOVABLE:
                uses = [(_FIXED_USE[mt], length)]
            else:
                shares = [*target.movable_use[:2], 0.0]
                kinds = (int(Use.PAGECACHE), int(Use.ANON), THP)
                uses = list(zip(kinds, _split(length, shares), strict=True))
            for use, count in uses:
                if count:
                    runs.append((_Half(mt, free, use), count))
    return runs


def _pairs(runs: list[tuple[_Half, int]]) -> Iterator[tuple[_Half, _Half, int]]:
    """Pair consecutive pageblocks of a run-length sequence (even total length)."""
    carry: _Half | None = None
    for half, length in runs:
        if carry is not None and length:
            yield carry, half, 1
            carry, length = None, length - 1
        if length >= 2:
            yield half, half, length // 2
        if length % 2:
            carry = half
    assert carry is None


def _join(left: _Half, right: _Half) -> Template:
    free = left.free + tuple((o + PB_PAGES, k) for o, k in right.free)
    return Template((left.mt, right.mt), free, (left.use, right.use))


#: A just-booted block (``FREE_BLOCK``): one free order-10 movable block.
FREE_TEMPLATE = Template((MIGRATE_MOVABLE, MIGRATE_MOVABLE), ((0, BLOCK_ORDER),),
                         (NO_USE, NO_USE))


@functools.lru_cache(maxsize=32)
def pack(target: ZoneTarget) -> list[tuple[Template, int]]:
    """The zone's block templates and how many blocks of each (module docstring). Cached:
    the equal zones of a multi-node machine share one packing (callers must not mutate it).

    :raises PackError: when the free blocks cannot fit the zone's blocks.
    """
    n = target.blocks
    c10 = target.free[BLOCK_ORDER]
    c9 = target.free[PB_ORDER]
    if sum(c10) + sum(c9) > n:
        raise PackError(f"{sum(c10)} free order-10 and {sum(c9)} order-9 blocks need that many "
                        f"4 MiB blocks, the zone has {n}")
    pool = sum(c9) + 2 * (n - sum(c10) - sum(c9))
    runs = _pool_halves(target, _pool_sizes(target, pool))
    out: dict[Template, int] = {}
    for mt in range(NR_MT):
        if c10[mt]:
            out[Template((mt, mt), ((0, BLOCK_ORDER),), (NO_USE, NO_USE))] = c10[mt]
    for mt in range(NR_MT):
        left = _Half(mt, ((0, PB_ORDER),), NO_USE)
        runs, partners = _take(runs, c9[mt])
        for half, count in partners:
            block = _join(left, half)
            out[block] = out.get(block, 0) + count
    for first, second, count in _pairs(runs):
        block = _join(first, second)
        out[block] = out.get(block, 0) + count
    assert sum(out.values()) == n
    return list(out.items())


def _take(runs: list[tuple[_Half, int]], count: int
          ) -> tuple[list[tuple[_Half, int]], list[tuple[_Half, int]]]:
    """Take ``count`` pageblocks from the end of a run-length list: (rest, taken)."""
    taken: list[tuple[_Half, int]] = []
    runs = list(runs)
    while count:
        half, length = runs.pop()
        use = min(length, count)
        taken.append((half, use))
        if length > use:
            runs.append((half, length - use))
        count -= use
    return runs, taken
