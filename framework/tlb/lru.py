"""Exact LRU simulation under the independent reference model, to validate :mod:`.che`.

Requests are drawn i.i.d. from ``p`` with the caller's numpy ``Generator`` (so a seed gives the
same answer every time); each set is an :class:`collections.OrderedDict` kept in recency order.
Item ``i`` goes to set ``i mod sets``, as in :func:`framework.tlb.che.set_assoc_hit_ratio`.
Pure Python per request (about a microsecond each): meant for small validation cases.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.typing import ArrayLike


def simulate_lru(
    p: ArrayLike,
    capacity: int,
    n_accesses: int,
    rng: np.random.Generator,
    sets: int = 1,
    ways: int = 0,
    warmup: int | None = None,
) -> float:
    """Measured hit ratio of an LRU array over ``n_accesses`` i.i.d. requests drawn from ``p``.

    :param p: request probability of each item (normalised here; must have a positive sum).
    :param capacity: total entries. With ``ways == 0`` the array is fully associative (``sets``
        must be 1); otherwise it must equal ``sets * ways``.
    :param n_accesses: requests counted in the hit ratio.
    :param rng: source of the requests.
    :param sets: number of sets; item ``i`` goes to set ``i mod sets``.
    :param ways: entries per set, 0 for fully associative.
    :param warmup: requests simulated first and not counted (default ``n_accesses // 5``), so the
        result is the steady state that Che's approximation describes, not a cold start.
    :raises ValueError: for inconsistent geometry or an empty distribution.
    """
    per_set = _per_set_capacity(capacity, sets, ways)
    probs = np.asarray(p, dtype=np.float64).reshape(-1)
    total = probs.sum()
    if not total > 0 or np.any(probs < 0):
        raise ValueError("p must be >= 0 with a positive sum")
    skip = n_accesses // 5 if warmup is None else warmup
    items = rng.choice(probs.size, size=skip + n_accesses, p=probs / total)
    if per_set <= 0:
        return 0.0
    hits = _run(items.tolist(), sets, per_set, skip)
    return hits / n_accesses if n_accesses > 0 else 0.0


def _per_set_capacity(capacity: int, sets: int, ways: int) -> int:
    """Entries per set; checks the geometry."""
    if sets < 1 or ways < 0 or capacity < 0:
        raise ValueError(f"capacity={capacity}, sets={sets}, ways={ways}: bad geometry")
    if ways == 0:
        if sets != 1:
            raise ValueError("ways=0 (fully associative) needs sets=1")
        return capacity
    if capacity != sets * ways:
        raise ValueError(f"capacity={capacity} disagrees with sets*ways={sets * ways}")
    return ways


def _run(items: list[int], sets: int, per_set: int, skip: int) -> int:
    """Replay ``items`` through ``sets`` LRU sets of ``per_set`` entries; hits after ``skip``."""
    caches: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(sets)]
    hits = 0
    for n, item in enumerate(items):
        cache = caches[item % sets]
        if item in cache:
            cache.move_to_end(item)
            if n >= skip:
                hits += 1
        else:
            cache[item] = None
            if len(cache) > per_set:
                cache.popitem(last=False)
    return hits
