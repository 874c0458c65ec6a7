"""Che's approximation for LRU caches under the independent reference model (IRM).

Under the IRM every request picks item ``i`` with probability ``p_i``, independently of the past.
Che, Tung and Wang (IEEE JSAC 20(7), 2002) approximate an LRU cache of capacity ``C`` by one
*characteristic time* ``T``: an item is in the cache iff it was requested in the last ``T``
requests, so

* ``T`` is the root of ``sum_i (1 - exp(-p_i T)) = C``  (the cache holds ``C`` items on average),
* item ``i`` hits with probability ``h_i = 1 - exp(-p_i T)``,
* the hit ratio is ``H = sum_i p_i h_i / sum_i p_i``.

Fricker, Robert and Roberts (ITC 24, 2012) show why this is accurate and asymptotically exact as
``C`` grows (``docs/hardware.md``, "Che's approximation"). A set-associative array of ``S``
sets and ``W`` ways is modelled as ``S`` independent LRU caches of capacity ``W``; item ``i``
goes to set ``i mod S`` (consecutive virtual pages index consecutive sets).

**Aggregated items.** Every function takes the items as groups: ``probs[g]`` is the request
probability of *each* of the ``counts[g]`` items of group ``g`` (``counts=None`` means one item
per entry, i.e. the plain array ``p``). Items are laid out group after group in the given order,
so item indices (and hence sets) follow that order. A direct map of 4 TiB in 4 KiB pages (2^30
items) thus costs as much as its number of distinct probabilities, never 2^30 floats.

Probabilities need not sum to 1: hit probabilities depend only on the ratios between them (``T``
scales inversely), and hit ratios are normalised by the total mass.

The root is found by a safeguarded Newton iteration on ``u = ln T`` inside a bracket that is
valid by construction (see :func:`_bracket`); a step that would leave the bracket is replaced by
the Newton step in ``T`` (which cannot pass the root from below, ``g`` being concave in ``T``) or
by bisection, so it always converges, typically in 3 to 6 steps. The sets of one array are
solved together (vectorised), starting from the whole array's ``T``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

_MAX_ITERATIONS = 200
_U_TOLERANCE = 1e-9  # last step on ln T; Newton's next error is ~ its square (~1e-18)


def as_groups(p: ArrayLike, counts: ArrayLike | None = None) -> tuple[FloatArray, FloatArray]:
    """Return ``(counts, probs)`` as float arrays of equal length, validated.

    :param p: probability of each item of a group (or of each item when ``counts`` is None).
    :param counts: number of items in each group; None means one item per entry of ``p``.
    :raises ValueError: for negative or non-finite values, or arrays of different lengths.
    """
    probs = np.asarray(p, dtype=np.float64).reshape(-1)
    cnt = np.ones_like(probs) if counts is None else np.asarray(counts, np.float64).reshape(-1)
    if cnt.shape != probs.shape:
        raise ValueError(f"counts has {cnt.size} groups but p has {probs.size}")
    if not (np.all(np.isfinite(probs)) and np.all(probs >= 0)):
        raise ValueError("probabilities must be finite and >= 0")
    if not (np.all(np.isfinite(cnt)) and np.all(cnt >= 0)):
        raise ValueError("counts must be finite and >= 0")
    return cnt, probs


def characteristic_time(p: ArrayLike, capacity: float, counts: ArrayLike | None = None) -> float:
    """Che's characteristic time ``T``: the root of ``sum_g counts_g (1 - exp(-p_g T)) = C``.

    Returns ``inf`` when the items that are ever requested (``p > 0``) number ``<= capacity``
    (they all stay cached: every request but the first hits) and ``0.0`` when ``capacity <= 0``.
    ``T`` is in units of requests when ``p`` sums to 1.
    """
    cnt, probs = as_groups(p, counts)
    return float(solve_times(cnt[None, :], probs, np.array([float(capacity)]))[0])


def hit_ratio(p: ArrayLike, capacity: float, counts: ArrayLike | None = None) -> float:
    """Che's hit ratio ``H = sum p_g counts_g h_g / sum p_g counts_g`` of a fully associative LRU.

    ``h_g = 1 - exp(-p_g T)`` with ``T`` from :func:`characteristic_time`; 1.0 when everything
    fits, 0.0 when nothing is requested or the capacity is 0.
    """
    return set_assoc_hit_ratio(p, 1, 0, counts=counts, capacity=capacity)


def set_assoc_hit_ratio(
    p: ArrayLike,
    sets: int,
    ways: int,
    counts: ArrayLike | None = None,
    capacity: float | None = None,
) -> float:
    """Che's hit ratio of an LRU array of ``sets`` sets of ``ways`` ways (per-set Che).

    Item ``i`` (in group order) goes to set ``i mod sets``; each set is an LRU of ``ways``
    entries solved with its own characteristic time. ``ways == 0`` means fully associative:
    one set holding ``capacity`` entries (default ``sets``, so ``(entries, 0)`` reads as in
    :class:`~framework.machine.tlb.TlbGeometry`).
    """
    cnt, probs = as_groups(p, counts)
    n_sets, per_set = array_shape(sets, ways, capacity)
    hits = group_hit_probabilities(cnt, probs, n_sets, per_set)
    return weighted_hit_ratio(cnt, probs, hits)


def array_shape(sets: int, ways: int, capacity: float | None = None) -> tuple[int, float]:
    """``(number of sets, entries per set)`` for the ``(sets, ways)`` convention above.

    :raises ValueError: for negative sizes, ``sets == 0`` with ``ways > 0``, or a ``capacity``
        that disagrees with ``sets * ways``.
    """
    if ways < 0 or sets < 0:
        raise ValueError(f"sets={sets}, ways={ways}: expected >= 0")
    if ways == 0:
        return 1, float(sets if capacity is None else capacity)
    if sets == 0:
        raise ValueError(f"sets=0 with ways={ways}: a set-associative array needs sets >= 1")
    if capacity is not None and capacity != sets * ways:
        raise ValueError(f"capacity={capacity} disagrees with sets*ways={sets * ways}")
    return int(sets), float(ways)


def weighted_hit_ratio(counts: FloatArray, probs: FloatArray, hits: FloatArray) -> float:
    """``sum c p h / sum c p``; 0.0 when no item is ever requested."""
    mass = counts * probs
    total = float(mass.sum())
    return float((mass * hits).sum() / total) if total > 0 else 0.0


def group_hit_probabilities(
    counts: FloatArray, probs: FloatArray, sets: int, per_set: float
) -> FloatArray:
    """Mean Che hit probability of the items of each group in a ``sets`` x ``per_set`` array.

    With ``sets == 1`` (fully associative) counts may be fractional. With ``sets > 1`` counts
    must be integers: item ``i`` (items numbered group after group) goes to set ``i mod sets``,
    so set ``j`` holds ``n[j, g]`` items of group ``g`` (see :func:`items_per_set`), each set is
    solved on its own and the result is ``h_g = sum_j n[j, g] h[j, g] / counts_g``.
    """
    if sets <= 1:
        n = counts[None, :]
    else:
        n = items_per_set(counts, sets)
    start = None
    if sets > 1:  # every set's T is near the whole array's: start Newton there
        start = float(solve_times(counts[None, :], probs, np.array([sets * per_set]))[0])
    times = solve_times(n, probs, np.full(n.shape[0], float(per_set)), start)
    h = hit_probabilities(probs[None, :], times[:, None])
    if sets <= 1:
        return np.asarray(h[0], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (n * h).sum(axis=0) / counts
    return np.where(counts > 0, mean, 0.0)


def items_per_set(counts: FloatArray, sets: int) -> FloatArray:
    """``n[j, g]``: items of group ``g`` in set ``j`` when item ``i`` goes to set ``i mod sets``.

    Group ``g`` holds items ``o_g .. o_g + c_g - 1`` with ``o_g`` the sum of earlier counts;
    each set gets ``c_g // sets`` of them plus one more for the ``c_g % sets`` sets
    ``o_g, o_g + 1, ...`` (mod ``sets``).
    """
    c = np.rint(counts).astype(np.int64)
    if np.any(np.abs(c - counts) > 1e-9):
        raise ValueError("set-associative arrays need whole item counts")
    offsets = (np.cumsum(c) - c) % sets
    q, r = np.divmod(c, sets)
    j = np.arange(sets, dtype=np.int64)[:, None]
    extra = (j - offsets[None, :]) % sets < r[None, :]
    return (q[None, :] + extra).astype(np.float64)


def hit_probabilities(probs: FloatArray, times: FloatArray) -> FloatArray:
    """``1 - exp(-p T)`` elementwise; ``T = inf`` gives 1 where ``p > 0``, 0 where ``p == 0``."""
    with np.errstate(invalid="ignore", over="ignore"):
        x = probs * times
    x = np.where(probs > 0, x, 0.0)
    return -np.expm1(-x)


def solve_times(
    counts: FloatArray, probs: FloatArray, capacity: FloatArray, start: float | None = None
) -> FloatArray:
    """Characteristic time of each row: root of ``sum_g counts[r, g](1 - exp(-probs[g] T)) = C_r``.

    ``counts`` is ``(rows, groups)``; ``probs`` is ``(groups,)`` or ``(rows, groups)``. Rows whose
    requested items (``p > 0``) number ``<= C_r`` get ``inf``; rows with ``C_r <= 0`` get 0.
    ``start`` is an optional first guess for every row (e.g. the fully associative ``T`` when
    the rows are the sets of one array); it only changes the number of iterations.
    """
    counts = np.atleast_2d(counts)
    probs2 = np.broadcast_to(probs, counts.shape)
    live = np.where(probs2 > 0, counts, 0.0)
    n_live = live.sum(axis=1)
    times = np.zeros(counts.shape[0])
    fits = n_live <= capacity
    times[fits] = math.inf
    todo = ~fits & (capacity > 0)
    if np.any(todo):
        times[todo] = _newton_log(live[todo], probs2[todo], capacity[todo], n_live[todo], start)
    return times


def _bracket(
    counts: FloatArray, probs: FloatArray, capacity: FloatArray, n_live: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Bounds ``lo <= ln T <= hi`` valid for every row with ``0 < C < n_live``.

    Lower: ``1 - e^{-x} <= x`` gives ``sum c(1 - e^{-pT}) <= T sum c p``, so the left side is
    ``<= C`` at ``T = C / sum c p``. Upper: every live item has ``p >= p_min``, so the left side
    is ``>= n_live (1 - e^{-p_min T})``, which reaches ``C`` at ``T = -ln(1 - C/n_live)/p_min``.
    """
    mass = (counts * probs).sum(axis=1)
    p_min = np.where(counts > 0, probs, np.inf).min(axis=1)
    with np.errstate(divide="ignore"):  # a denormal capacity can round the upper bound to 0
        lo = np.log(capacity / mass)
        hi = np.log(-np.log1p(-capacity / n_live) / p_min)
    return lo, np.maximum(hi, lo)


def _newton_log(
    counts: FloatArray,
    probs: FloatArray,
    capacity: FloatArray,
    n_live: FloatArray,
    start: float | None = None,
) -> FloatArray:
    """Safeguarded Newton on ``u = ln T`` for each row (all rows at once).

    ``g = sum c (1 - e^{-x}) - C`` with ``x = p T`` is increasing and concave in ``T``, with
    ``dg/du = sum c x e^{-x}``. From the lower bound (or ``start`` clipped to the bracket), each
    step keeps a sign bracket ``[lo, hi]`` and takes the Newton step in ``ln T``; when that
    leaves the bracket it takes instead, from the left (``g < 0``), the Newton step in ``T``,
    which by concavity never passes the root, or, from the right, a bisection. A row stops after
    a step that moves ``ln T`` by less than 1e-9 (near the root Newton squares the error each
    step, so ``T`` is then exact to rounding noise); only unfinished rows are evaluated.
    """
    lo, hi = _bracket(counts, probs, capacity, n_live)
    u = lo.copy() if start is None or not math.isfinite(start) else np.clip(math.log(start), lo, hi)
    if u.size == 1:
        return np.array([_newton_row(counts[0], probs[0], float(capacity[0]), u[0], lo[0], hi[0])])
    active = np.arange(u.size)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(_MAX_ITERATIONS):
            nxt, lo[active], hi[active] = _newton_step(
                counts[active], probs[active], capacity[active], u[active], lo[active], hi[active]
            )
            moving = np.abs(nxt - u[active]) > _U_TOLERANCE
            u[active] = nxt
            active = active[moving]
            if active.size == 0:
                break
    return np.asarray(np.exp(u), dtype=np.float64)


def _newton_step(
    counts: FloatArray,
    probs: FloatArray,
    capacity: FloatArray,
    u: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One safeguarded step of :func:`_newton_log`: ``(next u, new lo, new hi)``.

    ``1 - e^{-x}`` is formed by subtraction (one ``exp`` per element): its absolute error is
    below 1.2e-16 per item, negligible against ``C >= 1``.
    """
    x = probs * np.exp(u)[:, None]
    e = np.exp(-x)
    g = (counts * (1.0 - e)).sum(axis=1) - capacity
    dg = (counts * x * e).sum(axis=1)
    below = g < 0
    lo = np.where(below, u, lo)
    hi = np.where(below, hi, u)
    delta = -g / dg
    nxt = u + delta
    outside = ~((nxt >= lo) & (nxt <= hi)) | ~np.isfinite(nxt)
    fallback = np.where(below, u + np.log1p(delta), 0.5 * (lo + hi))
    return np.where(outside, fallback, nxt), lo, hi


def _newton_row(
    counts: FloatArray, probs: FloatArray, capacity: float, u: float, lo: float, hi: float
) -> float:
    """:func:`_newton_log` for one row with scalar bookkeeping (the common, fully associative
    case: a quarter of the numpy calls per step)."""
    for _ in range(_MAX_ITERATIONS):
        x = probs * math.exp(u)
        e = np.exp(-x)
        g = float(counts @ (1.0 - e)) - capacity
        dg = float(counts @ (x * e))
        if g < 0:
            lo = u
        else:
            hi = u
        delta = -g / dg if dg > 0 else math.inf
        nxt = u + delta
        if not lo <= nxt <= hi:
            nxt = u + math.log1p(delta) if g < 0 and math.isfinite(delta) else 0.5 * (lo + hi)
        step, u = abs(nxt - u), nxt
        if step <= _U_TOLERANCE:
            break
    return math.exp(u)
