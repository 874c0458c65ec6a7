"""``background``: a loaded machine whose free memory is fragmented below ``pageblock_order``.

Stands for: the ordinary life of a long-running server, which the proposed designs meet and a
freshly booted model does not. Mike Rapoport: "in a loaded system unmapped_alloc() won't be
able to always allocate large pages to replenish the cache". User memory (anonymous memory
and page cache, ``MIGRATE_MOVABLE``) comes in 2 MiB THPs and in smaller folios down to 4 KiB
pages; kernel memory (slab, ``MIGRATE_UNMOVABLE``, and reclaimable slab such as dentries and
inodes) comes in order-0..3 slab pages. Over time reclaim and exits free scattered folios and
slab pages, so that most free memory sits in blocks below order 9 inside pageblocks that still
hold live pages, while new THP faults keep taking the whole free pageblocks that appear.

Nothing here places a page: the events only say "allocate a folio of this size" or "free that
one", and the kernel model's own rules decide where each lands. What makes the pattern
fragment is how the v6.3 buddy serves it:

- ``__rmqueue_smallest`` takes the smallest free block that fits and ``expand``s it, so
  folios of mixed orders pack whole pageblocks and a later free leaves a hole of its own order
  that merges only with free buddies (``__free_one_page``);
- unmovable slab pages are grouped by ``steal_suitable_fallback``: while free pageblocks exist
  (``ALLOC_NOFRAGMENT``), an unmovable request with empty lists takes a whole free
  ``MAX_ORDER - 1`` block and its pageblocks become ``MIGRATE_UNMOVABLE``; freeing some of
  those slab pages later leaves unmovable holes spread over those pageblocks, which the next
  unmovable requests (secretmem pages, module pages, page tables, a ``__GFP_UNMAPPED`` refill)
  take first, LIFO;
- once no free pageblock remains, unmovable requests fall back to the largest movable hole and
  claim its pageblock when half of it is free or alike (mixed pageblocks), and an order-9
  request fails: a 2 MiB refill falls back to a smaller order.

The pages this load allocates are not on the kernel model's LRU: reclaim and compaction
(framework/kernel/vmscan.py, compaction.py, kcompactd included) act on the start state's page
cache and anon pages only, so the workload does the visible part of reclaim of its own pages
and of THP faults through its events.

Feedback: a pure event generator cannot see the kernel, so the workload reads the engine's
read-only probe (:class:`framework.workload.FreeAreaProbe`) before each event. It stops the
fill, holds the target, keeps every request servable, and recognises the folio that opens a
fresh pageblock (``__rmqueue_smallest`` finds no block of its order..8 on the node's movable
lists). That folio is *pinned*: long-lived, never freed by reclaim or churn (only by
``release``), standing for the pages a real pageblock keeps that reclaim cannot take soon.
Without pins, a pageblock reclaim empties would be taken by the next THP fault and the load
would ratchet into THPs only.

Phases (the events of one run alone; composed runs use phases 1-2 then 3):

1. **fill**: allocate until no free block of order >= 9 is left: THPs, small folios and slab
   pages in the page shares below, whichever kind is furthest behind its share next.
2. **reclaim**: free random unpinned small folios and slab pages (chosen in proportion to
   their pages, like reclaim scanning memory) until free memory reaches ``1 - used`` of RAM.
   First, while the share of free memory in blocks of order >= 9 exceeds ``target``, a THP
   fault takes one of those blocks; while free memory is short, a THP is freed instead of a
   small folio whenever that keeps the share at or below ``target`` (the share climbs towards
   the target from below). The phase cannot end with the share above ``target``; free memory
   ends at the goal or just above it (best effort: it stops early if nothing is left to free).
3. **churn** (``churn`` events alone, or ``churn_per_event`` per event of a workload on top):
   keep free memory between 0.9 and 1.1 times ``(1 - used)`` of RAM (below: free; above:
   allocate; between: either, evenly) and the share at or below ``target`` (THP faults
   first); with nothing left to free, a ``pressure`` event asks the shrinkers instead. Every
   ``pressure_every`` churn events a ``pressure`` event asks the shrinkers for
   ``pressure_pages``.

No request is made that the buddy cannot serve (it would count as an ``alloc_failure`` of the
design under test): a folio's order is capped at the largest order with a free block, and a
THP is asked for only while a block of order >= 9 is free (a THP fault that finds none falls
back to small pages in the kernel, here to a small folio). On several nodes each request names
a random node that has a free block of its order.

Numbers (estimates [E], documented so they can be argued with):

- page shares of what phase 1 allocates: slab ``kernel_share`` (default 0.5% of RAM, of which
  a quarter reclaimable; real servers have 1-5% of RAM in slab, but what matters here is the
  number of pageblocks that hold unmovable pages, and a smaller share keeps the event count
  down); small folios ``min(1 - kernel_share, 2 x (1 - used))``: pins hold about two fifths
  of the folio pages, and reclaiming about four fifths of the rest yields the free memory
  wanted; THPs the rest;
- folio orders 0..8 with weight ``2^order`` (a folio of order k is as likely as two of order
  k-1: the mean folio is 171 pages, so the events grow with memory / 2 MiB, not memory /
  4 KiB); slab page orders 0, 1, 2, 3 with weights 1, 1, 2, 4 (SLUB's default
  ``slub_max_order`` is 3 and most caches on a many-CPU machine use order-1..3 slabs);
- ``used`` 0.85: a loaded server keeps most RAM in page cache and anonymous memory.

CPUs: spread. Faults, reclaim and slab allocations happen on every CPU of a loaded server, so
each request runs on a CPU drawn uniformly over its node (over the machine when it names no
node), from a stream of its own spawned from the load's generator.

Sites: THPs and folios are ``user`` requests (``MIGRATE_MOVABLE``; THPs zeroed as an anonymous
fault clears them, folios not, as page-cache reads fill them); slab pages are ``kernel``
requests (``MIGRATE_UNMOVABLE``) and reclaimable slab pages ``reclaimable`` requests
(``MIGRATE_RECLAIMABLE``, :data:`KIND_SITE`).

Cost: phases 1 and 2 emit about 2.6 events per 2 MiB of RAM (the load must touch all of
memory for free order-9 blocks to become scarce), about 86 000 on ``default``; the probe is
read once per event (twice for a folio that may open a pageblock). Not in the default suite:
alone it runs only the ``user`` and ``kernel`` sites, the same status-quo path in every
design. The common parameter ``background`` is accepted and ignored here.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from framework.kernel.consts import MAX_ORDER, MIGRATE_MOVABLE, PAGE_SIZE, PAGEBLOCK_ORDER
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, PRESSURE, Event, Request
from framework.workload import Workload
from framework.workloads.cpus import CpuChooser

THP, FOLIO, SLAB, RECLAIMABLE = "thp", "folio", "slab", "reclaimable"
KINDS: tuple[str, ...] = (THP, FOLIO, SLAB, RECLAIMABLE)
SMALL_KINDS: tuple[str, ...] = (FOLIO, SLAB, RECLAIMABLE)  # what reclaim frees
KIND_SITE: dict[str, str] = {
    THP: "user", FOLIO: "user", SLAB: "kernel", RECLAIMABLE: "reclaimable",
}
KIND_ZERO: dict[str, bool] = {THP: True, FOLIO: False, SLAB: False, RECLAIMABLE: False}
THP_ORDER = PAGEBLOCK_ORDER  # HPAGE_PMD_ORDER = pageblock_order on x86-64
FOLIO_CDF: tuple[float, ...] = tuple(
    itertools.accumulate((1 << k) / ((1 << THP_ORDER) - 1) for k in range(THP_ORDER)))
SLAB_CDF: tuple[float, ...] = (1 / 8, 2 / 8, 4 / 8, 1.0)
RECLAIMABLE_OF_SLAB = 0.25  # [E] dentry/inode caches' part of slab
SMALL_PER_FREE = 2.0  # small-folio pages allocated per free page wanted (module docstring)
BLOCK_PAGES: tuple[int, ...] = tuple(1 << order for order in range(MAX_ORDER))
LOW, HIGH = 0.9, 1.1  # churn keeps free memory between these multiples of the goal


@attrs.define(slots=True)
class _Pool:
    """Live allocations of one kind: freeable ones (O(1) removal of a random one) and pinned
    ones, which only ``release`` frees."""

    ids: list[int] = attrs.Factory(list)
    pages: list[int] = attrs.Factory(list)
    freeable: int = 0
    pinned_ids: list[int] = attrs.Factory(list)
    pinned: int = 0

    @property
    def total(self) -> int:
        """Live pages of this kind."""
        return self.freeable + self.pinned

    def add(self, aid: int, pages: int, pin: bool) -> None:
        if pin:
            self.pinned_ids.append(aid)
            self.pinned += pages
            return
        self.ids.append(aid)
        self.pages.append(pages)
        self.freeable += pages

    def take(self, rng: np.random.Generator) -> int:
        """Remove a random freeable allocation (uniform over allocations); return its id."""
        i = int(rng.integers(len(self.ids)))
        aid, pages = self.ids[i], self.pages[i]
        self.ids[i], self.pages[i] = self.ids[-1], self.pages[-1]
        self.ids.pop()
        self.pages.pop()
        self.freeable -= pages
        return aid

    def drain(self) -> list[int]:
        """Every live id (freeable, then pinned); the pool is empty afterwards."""
        out = self.ids + self.pinned_ids
        self.ids, self.pages, self.pinned_ids = [], [], []
        self.freeable = self.pinned = 0
        return out


@attrs.frozen(slots=True)
class FreeState:
    """What the probe says: free blocks per order, free pages, pages and blocks in orders
    >= pageblock_order."""

    blocks: tuple[int, ...]
    free: int
    large: int
    large_blocks: int

    def share(self) -> float:
        """The share of free memory in blocks of order >= 9 (0 when nothing is free)."""
        return self.large / self.free if self.free else 0.0

    def top_order(self) -> int:
        """The largest order with a free block, -1 if none."""
        blocks = self.blocks
        return max((order for order in range(len(blocks)) if blocks[order]), default=-1)


def free_state(blocks: tuple[int, ...], reserve: int = 0) -> FreeState:
    """Summarise ``/proc/buddyinfo``-style free blocks per order, less ``reserve`` pages that
    requests cannot take (the watermarks: :meth:`FreeAreaProbe.reserved_pages`), counted as
    held in the largest blocks: what is left of those counts in whole pageblocks.
    """
    big = blocks[PAGEBLOCK_ORDER:]
    large = sum(map(operator.mul, big, BLOCK_PAGES[PAGEBLOCK_ORDER:]))
    free = sum(map(operator.mul, blocks, BLOCK_PAGES))
    if not reserve:
        return FreeState(blocks, free, large, sum(big))
    blocks_left = max(0, large - reserve) >> PAGEBLOCK_ORDER  # whole pageblocks a THP can take
    return FreeState(blocks, max(0, free - reserve), blocks_left << PAGEBLOCK_ORDER, blocks_left)


class Background(Workload):
    """A loaded machine: fill, reclaim until order-9 blocks are scarce, then churn."""

    name = "background"
    default = False  # alone it runs only user/kernel sites, the same path for every design
    summary = "loaded-server memory: THPs, folios and slab fragment free memory below order 9"
    source = "v6.3 buddy placement and pageblock stealing; shares and orders estimates [E]"
    params = (
        Param("target", float, 0.1, "share of free memory in blocks of order >= 9 when the "
              "fragmenting phase ends (and kept by churn)", min=0, max=1),
        Param("used", float, 0.85, "share of RAM the load holds after fragmenting (best "
              "effort)", min=0.05, max=0.98),
        Param("kernel_share", float, 0.005, "share of RAM in slab pages (a quarter reclaimable)",
              min=0, max=0.5),
        Param("churn", int, 2000, "churn events after the fragmenting phase (run alone)",
              min=0, max=10**9),
        Param("churn_per_event", float, 1.0, "churn events per event of a workload on top",
              min=0, max=1000),
        Param("pressure_pages", int, 1024, "pages a pressure event asks of the shrinkers",
              min=1, max=1 << 40),
        Param("pressure_every", int, 500, "a pressure event every N churn events (0: never)",
              min=0, max=10**9),
        Param("release", bool, False, "free everything at the end (run alone)"),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        self.pools: dict[str, _Pool] = {kind: _Pool() for kind in KINDS}
        self.requests: dict[tuple[str, int, int | None, int], Request] = {}
        ks = params["kernel_share"]
        small = min(1.0 - ks, SMALL_PER_FREE * (1.0 - params["used"]))
        self.shares: dict[str, float] = {
            THP: max(0.0, 1.0 - small - ks), FOLIO: small,
            SLAB: ks * (1 - RECLAIMABLE_OF_SLAB), RECLAIMABLE: ks * RECLAIMABLE_OF_SLAB,
        }
        self.target: float = params["target"]
        self.goal = 0  # free pages wanted, set when the fragmenting phase starts
        self.cpus: CpuChooser | None = None  # made from the first generator the load gets
        self.fragment_events = 0

    # -- the run alone -------------------------------------------------------------------
    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Fragmenting phases, ``churn`` churn events, then (``release``) free everything."""
        ids = itertools.count(1)
        yield from self.fragment(rng, ids)
        yield from itertools.islice(self.churn(rng, ids), self.config["churn"])
        if self.config["release"]:
            for pool in self.pools.values():
                yield from (Event(FREE, aid) for aid in pool.drain())

    def churn_per_event(self) -> float:
        """Background events per event of a workload run on top."""
        return float(self.config["churn_per_event"])

    # -- phases --------------------------------------------------------------------------
    def fragment(self, rng: np.random.Generator, ids: Iterator[int]) -> Iterator[Event]:
        """Phases 1 (fill) and 2 (reclaim); ends with the share at or below ``target``."""
        state = self._state()
        self.goal = min(int((1.0 - self.config["used"]) * self.machine.mem_pages), state.free)
        cap = 4 * (self.machine.mem_pages >> PAGEBLOCK_ORDER) + 10000  # a guard, never hit
        steps = 0
        while state.large_blocks and steps < cap:  # phase 1: fill
            yield self._alloc(self._behind(KINDS), rng, ids, state)
            steps += 1
            state = self._state()
        while steps < 2 * cap:  # phase 2: reclaim, THP faults first
            if self._too_many_large(state):
                event = self._alloc(THP, rng, ids, state)
            elif state.free < self.goal and self._can_free(state):
                event = self._free_one(rng, state)
            else:
                break
            yield event
            steps += 1
            state = self._state()
        self.fragment_events = steps

    def churn(self, rng: np.random.Generator, ids: Iterator[int]) -> Iterator[Event]:
        """Endless phase 3 (see the module docstring)."""
        every = self.config["pressure_every"]
        for n in itertools.count(1):
            if every and n % every == 0:
                yield Event(PRESSURE, 0, None, self.config["pressure_pages"])
            else:
                yield self._churn_step(rng, ids)

    def _churn_step(self, rng: np.random.Generator, ids: Iterator[int]) -> Event:
        state = self._state()
        if self._too_many_large(state):
            return self._alloc(THP, rng, ids, state)  # a THP fault takes the free pageblock
        low = state.free < LOW * self.goal or not state.free
        if low or (state.free <= HIGH * self.goal and rng.random() < 0.5):
            if self._can_free(state):
                return self._free_one(rng, state)
            if low:  # reclaim found nothing of its own to free: the shrinkers are asked
                return Event(PRESSURE, 0, None, self.config["pressure_pages"])
        return self._alloc(self._behind(KINDS), rng, ids, state)

    # -- one event -----------------------------------------------------------------------
    def _state(self) -> FreeState:
        if self.probe is None:
            raise RuntimeError("background needs the engine's probe (workload.probe)")
        probe = self.probe
        return free_state(probe.free_blocks(), probe.reserved_pages())

    def _too_many_large(self, state: FreeState) -> bool:
        return bool(state.large_blocks) and state.large > self.target * state.free

    def _behind(self, kinds: tuple[str, ...]) -> str:
        """The kind furthest below its share of live pages (ties: the first)."""
        pools, shares = self.pools, self.shares
        total = sum(pools[k].total for k in kinds)
        best, lag = kinds[0], -1.0
        for kind in kinds:
            behind = shares[kind] * total - pools[kind].total
            if behind > lag:
                best, lag = kind, behind
        return best

    def _alloc(self, kind: str, rng: np.random.Generator, ids: Iterator[int],
               state: FreeState) -> Event:
        """Allocate one of ``kind``; a folio that must open a free pageblock is pinned."""
        if kind == THP and not state.large_blocks:
            kind = FOLIO  # do_huge_pmd_anonymous_page() failed: small pages instead
        if kind == THP:
            order = THP_ORDER
        else:
            cdf = FOLIO_CDF if kind == FOLIO else SLAB_CDF
            draw = min(bisect.bisect_right(cdf, rng.random()), len(cdf) - 1)
            order = min(draw, state.top_order())
        node = self._node(rng, order)
        pin = kind == FOLIO and self._opens_pageblock(order, node, state)
        aid = next(ids)
        self.pools[kind].add(aid, 1 << order, pin)
        if self.cpus is None:
            self.cpus = CpuChooser(rng, self.machine)
        return Event(ALLOC, aid, self._request(kind, order, node, self.cpus.on(node)))

    def _node(self, rng: np.random.Generator, order: int) -> int | None:
        """A random node with a free block of ``order`` or more (None on one node)."""
        nodes = self.machine.nodes
        if nodes == 1:
            return None
        assert self.probe is not None
        fits = [n for n in range(nodes) if any(self.probe.free_blocks(node=n)[order:])]
        return fits[int(rng.integers(len(fits)))] if fits else int(rng.integers(nodes))

    def _opens_pageblock(self, order: int, node: int | None, state: FreeState) -> bool:
        """Will a movable order-``order`` request split a free pageblock?

        mm/page_alloc.c __rmqueue_smallest(): with no block of ``order``..8 on the node's
        ``MIGRATE_MOVABLE`` lists it takes a block of order >= 9 (its own, or one stolen whole
        by __rmqueue_fallback() while ALLOC_NOFRAGMENT holds).
        """
        probe = self.probe
        assert probe is not None
        blocks = state.blocks if node is None else probe.free_blocks(node=node)
        if not any(blocks[PAGEBLOCK_ORDER:]):
            return False
        if not any(blocks[order:PAGEBLOCK_ORDER]):
            return True
        movable = probe.free_blocks(MIGRATE_MOVABLE, node)
        return not any(movable[order:PAGEBLOCK_ORDER])

    def _request(self, kind: str, order: int, node: int | None, cpu: int) -> Request:
        key = (kind, order, node, cpu)
        req = self.requests.get(key)
        if req is None:
            req = Request(KIND_SITE[kind], PAGE_SIZE << order, "RW", KIND_ZERO[kind], node,
                          "OWNER", cpu)
            self.requests[key] = req
        return req

    def _can_free(self, state: FreeState) -> bool:
        return self._thp_free_fits(state) or any(self.pools[k].ids for k in SMALL_KINDS)

    def _thp_free_fits(self, state: FreeState) -> bool:
        """Would freeing a THP keep the share at or below ``target``?"""
        span = 1 << THP_ORDER
        return bool(self.pools[THP].ids) and (
            state.large + span <= self.target * (state.free + span))

    def _free_one(self, rng: np.random.Generator, state: FreeState) -> Event:
        """An exit frees a THP while the share allows it; otherwise reclaim frees a small
        folio or slab page, chosen in proportion to freeable pages."""
        if self._thp_free_fits(state):
            return Event(FREE, self.pools[THP].take(rng))
        live = [k for k in SMALL_KINDS if self.pools[k].ids]
        bounds = list(itertools.accumulate(self.pools[k].freeable for k in live))
        pick = bisect.bisect_right(bounds, rng.random() * bounds[-1])
        return Event(FREE, self.pools[live[min(pick, len(live) - 1)]].take(rng))
