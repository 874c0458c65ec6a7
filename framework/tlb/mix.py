"""Competing translations: several populations of pages share one core's TLB arrays.

The reach model (:mod:`framework.tlb.reach`) evaluates one mapping alone. Here every
population of the access stream (user 4 KiB and THP pages, the direct map's 4K/2M/1G entries,
vmalloc, text) is a :class:`Pop` with its share of the accesses, and each TLB array holds every
population of the page sizes it holds (the core's geometry decides: per-size L1 arrays on
Intel, one L1 for every size on AMD, an STLB shared by 4K and 2M on Skylake-SP and Zen, separate
1G arrays): entries of one population evict those of another. The same rules as the reach
model apply within an array (Che's approximation, head + tail entry popularity, two levels with
``min(m_L1, m_STLB)``, page-table lines in a cache of ``pt_cache_bytes``).

The result (:class:`Misses`) is in miss counts per access, not cycles: the cycles are linear
in the three translation costs (:meth:`Misses.cycles`), so the sensitivity band over those
costs needs no second evaluation. Evaluations are cached (:func:`evaluate` is a pure function
of hashable arguments), so the designs of a cell that share a direct-map state, and the cell's
reference, are solved once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import attrs
import numpy as np

from framework.machine.tlb import TlbGeometry
from framework.tlb.che import group_hit_probabilities
from framework.tlb.reach import (
    CACHE_LINE,
    ENTRIES_PER_LINE,
    TlbArray,
    dtlb_arrays,
    entry_groups,
    itlb_arrays,
    solve_shared_array,
)


@attrs.frozen(slots=True)
class Pop:
    """One population: ``entries`` translations of ``size`` over ``pages`` accessed 4K pages,
    receiving ``mass`` of the accesses."""

    name: str
    size: str
    entries: int
    pages: int
    mass: float


@attrs.frozen(slots=True)
class Misses:
    """Per access: L1 misses, and STLB misses (walks) split by whether the leaf was cached.

    :ivar by_pop: walks per access of each population (for reports and tests).
    """

    l1: float
    walks_cached: float
    walks_dram: float
    by_pop: tuple[tuple[str, float], ...] = ()

    @property
    def walks(self) -> float:
        """STLB misses per access."""
        return self.walks_cached + self.walks_dram

    def cycles(self, costs: Mapping[str, float]) -> float:
        """Translation cycles per access: STLB hits plus walks, with the cost table's figures."""
        return (costs["stlb_hit"] * (self.l1 - self.walks)
                + costs["walk_cached"] * self.walks_cached + costs["walk_dram"] * self.walks_dram)


Key = tuple[Pop, ...]


def evaluate_data(geometry: TlbGeometry, pops: Key, s: float, pt_cache_bytes: float,
                  stlb_share: float = 1.0) -> Misses:
    """Data-side misses of ``pops`` on ``geometry`` (STLB arrays scaled by ``stlb_share``)."""
    return _evaluate(geometry, "data", pops, s, pt_cache_bytes, stlb_share)


def evaluate_text(geometry: TlbGeometry, pops: Key, s: float, pt_cache_bytes: float,
                  stlb_share: float) -> Misses:
    """Instruction-side misses of ``pops`` (L1 iTLB arrays, STLB scaled by ``stlb_share``)."""
    return _evaluate(geometry, "text", pops, s, pt_cache_bytes, stlb_share)


@functools.lru_cache(maxsize=4096)
def _evaluate(geometry: TlbGeometry, side: str, pops: Key, s: float, pt_cache_bytes: float,
              stlb_share: float) -> Misses:
    if side == "data":
        l1, stlb = dtlb_arrays(geometry)
        if stlb_share != 1.0:
            stlb = itlb_arrays(geometry, stlb_share)[1]
    else:
        l1, stlb = itlb_arrays(geometry, stlb_share)
    live = tuple(p for p in pops if p.entries > 0 and p.pages > 0 and p.mass > 0)
    if not live:
        return Misses(0.0, 0.0, 0.0)
    groups = [_groups(min(p.entries, p.pages), p.pages, p.mass, s) for p in live]
    hit1 = _level(live, groups, l1)
    hit2 = _level(live, groups, stlb)
    l1_miss = 0.0
    walks = []
    for (counts, probs), h1, h2 in zip(groups, hit1, hit2, strict=True):
        mass = counts * probs
        m1 = 1.0 - h1
        l1_miss += float((mass * m1).sum())
        walks.append(float((mass * np.minimum(m1, 1.0 - h2)).sum()))
    cached = _leaf_cached(live, walks, pt_cache_bytes)
    w_cached = sum(w * c for w, c in zip(walks, cached, strict=True))
    total = sum(walks)
    return Misses(l1_miss, w_cached, total - w_cached,
                  tuple((p.name, w) for p, w in zip(live, walks, strict=True)))


@functools.lru_cache(maxsize=4096)
def _groups(entries: int, pages: int, mass: float, s: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~framework.tlb.reach.entry_groups`, cached: the user, vmalloc and text
    populations recur in every evaluation of a run (the arrays are never written)."""
    return entry_groups(entries, pages, mass, s)


def _level(pops: Key, groups: list[tuple[np.ndarray, np.ndarray]],
           arrays: tuple[TlbArray, ...]) -> list[np.ndarray]:
    """Mean hit probability of every group of every population in one TLB level."""
    hits = [np.zeros_like(counts) for counts, _ in groups]
    for array in arrays:
        idx = [i for i, p in enumerate(pops) if p.size in array.holds]
        if not idx:
            continue
        parts = solve_shared_array(array.sets, array.per_set, [groups[i] for i in idx])
        for i, part in zip(idx, parts, strict=True):
            hits[i] = part
    return hits


def _leaf_cached(pops: Key, walks: list[float], pt_cache_bytes: float) -> list[float]:
    """Share of each population's walks that find the leaf entry's line in cache.

    Population ``p`` has ``min(ceil(entries / 8), entries)`` leaf lines, each walked at an
    even share of its walks; all lines share an LRU of ``pt_cache_bytes / 64`` lines (Che).
    """
    lines = np.array([min(-(-p.entries // ENTRIES_PER_LINE), p.entries) for p in pops],
                     dtype=np.float64)
    rates = np.array(walks) / lines
    if not rates.sum() > 0:
        return [1.0] * len(pops)
    hits = group_hit_probabilities(lines, rates, 1, pt_cache_bytes / CACHE_LINE)
    return [float(h) for h in hits]
