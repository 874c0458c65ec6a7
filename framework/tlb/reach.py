"""The TLB reach model: what a direct map (or module text) of a given page-size mix costs in
address translation, compared with the same memory mapped by the largest pages.

Pure functions of their arguments (no kernel-model dependency); one call costs 1 to 4 ms of CPU
for any direct map up to 4 TiB (``benchmarks/validate_che.py`` section 6). The run's metrics
use its building blocks with competing populations (:mod:`framework.tlb.mix`).

**Inputs.** The translations covering the memory the kernel accesses through the direct map:
``entries_4k``, ``entries_2m``, ``entries_1g`` (e.g. ``DirectMap4k // 4`` etc. from the kernel
model) and, optionally, how many bytes under each group are accessed (default: all they map);
accessed pages spread evenly over a group's entries (if fewer pages than entries, that many
entries hold one page each and the others are never used).
Accesses follow the independent reference model over the accessed 4 KiB pages, ``uniform`` or
``zipf`` with exponent ``s`` (default 1.0); see "Popularity" below for how page popularity
becomes entry popularity.

**TLB arrays** (``docs/hardware.md``, "TLB geometry", and its notes), built from a
:class:`~framework.machine.tlb.TlbGeometry`; ``ways == 0`` or ``ways >= entries`` means fully
associative, otherwise ``entries / ways`` sets solved per set with Che's approximation
(:mod:`.che`), entries hottest-first hashed ``i mod sets`` (an even spread of hot entries).
With that even spread per-set Che equals fully associative Che up to whole-entry rounding (with
fractional counts ``sum_g (c_g/S)(1 - e^{-p_g T}) = W`` is the fully associative equation), so
arrays of more than ``MAX_SOLVED_SETS`` (32) sets, the STLBs, are solved fully associative: the
difference is below 0.001 in hit ratio (docs/validation.md section 4) and it saves 90% of the
time. Conflict misses from an uneven spread are not modelled.

* L1 dTLB: Intel keeps one array per page size (``l1d_4k``, ``l1d_2m``, ``l1d_1g``); AMD
  (``l1d_unified``) one fully associative array for every size, so 4K, 2M and 1G entries compete.
* STLB: separate 4K, 2M and 1G arrays (ICX/SPR, note (a): 1G does not compete with 2M), or one
  array shared by 4K and 2M (``stlb_shared_4k_2m``: SKX, Zen) plus the 1G array. The geometry has
  no ways for the 1G array; it is taken fully associative (SKX 16 entries are 4-way, SPR's 1024
  8-way, Zen's 64 fully associative: only SPR's differs, and it holds every 1G entry of 1 TiB).
  ICX/SPR's second 1024-entry array also takes 4K entries; the geometry models it as the 4K
  array of 2048 and the 1G array of 1024, so a mix of 4K and 1G entries is slightly favoured.

**Two levels.** Che's time view: an entry is in an LRU array iff it was used within the array's
characteristic time ``T``. If the STLB is taken to see the full access stream (it is larger and
holds what L1 holds), an entry misses both levels iff its last use is older than both ``T``, so
per entry ``P(miss L1 and STLB) = min(m_L1, m_STLB)``. Per group the mean miss of each level is
used (over the sets its entries fall in). Then, per access,

* ``dtlb_miss_rate = sum_g c_g p_g m_L1,g``
* ``stlb_miss_rate = sum_g c_g p_g min(m_L1,g, m_STLB,g)``

**Walks.** Each STLB miss walks the page tables; the walk costs ``walk_cached`` if the leaf entry
(PTE for 4K, PMD for 2M, PUD for 1G) is in the data caches, else ``walk_dram``. Leaf entries are
8 bytes, 8 to a 64-byte line. Estimate [E]: page-table lines own ``pt_cache_bytes`` of cache
(default 1 MiB, tunable; docs/hardware.md has no figure) managed as LRU; the lines of a class
share its walk rate evenly (walks come from STLB misses, i.e. from the cold, evenly spread part
of the distribution), and Che's approximation over those lines gives the cached fraction ``q_c``:

* ``walk_cycles_per_access = sum_c w_c (q_c walk_cached + (1 - q_c) walk_dram)``,
  ``w_c`` = STLB misses per access of class ``c``;
* ``translation_cycles_per_access = stlb_hit (dtlb_miss_rate - stlb_miss_rate)
  + walk_cycles_per_access`` (cost table: ``stlb_hit`` is per L1 miss that hits the STLB).

Upper page-table levels are taken as cached (paging-structure caches, docs/hardware.md,
"TLB geometry", notes).

**Slowdown.** The reference maps the same span (``sum entries x page size``, e.g. all of RAM)
with ``ceil(span / size)`` entries of the largest page size ``reference`` (``"1g"`` by default;
``"2m"`` without gbpages), holding the same accessed pages with the same popularity law, and
is evaluated with the same model. With ``mem_share`` the share of kernel time spent in the
modelled accesses under the reference mapping and ``access_cycles`` their mean cost without
translation (both [E] estimates, defaults 0.3 and 100 cycles),

``est_slowdown_pct = 100 * mem_share * (c - c_ref) / (access_cycles + c_ref)``

where ``c`` and ``c_ref`` are translation cycles per access (Amdahl: only that share slows down).
An "access" is one independent page pick of the reference model, not every load: real code
touches a page many times in a row, which the popularity law does not capture. With the default
estimates a direct map all in 4K costs tens of percent, far above what the published tests
suggest (docs/validation.md section 5), while a partly fragmented map lands near Song Liu's
"order of 1%"; read the figure as a ranking between designs, and raise ``access_cycles`` (the
cycles of memory work per independent page pick) to scale it down.

**Popularity (random placement).** Page ranks are scattered at random over the accessed memory:
the hot pages of the direct map (slab, page cache, page tables) come from the buddy allocator
anywhere in RAM, not from one hot corner. Two stated approximations follow:

1. *Per class.* A page-size class holding a fraction ``f`` of the accessed pages receives exactly
   ``f`` of the accesses in expectation. Its pages are a random ``f``-sample of the ranks, so its
   ``j``-th hottest page has global rank ``~ j / f``: within the class the law is again Zipf with
   the same exponent over its ``N_c`` pages, scaled to mass ``f``.
2. *Per entry (head + tail).* In a class of ``E`` entries of ``k = N_c / E`` pages, entry ``e``
   (``1..E``) gets the class's ``e``-th hottest page plus an even share of the pages ranked
   below ``E``: ``q_e = f (e^-s + (Z(N_c) - Z(E)) / E) / Z(N_c)``, ``Z(n) = sum_{j<=n} j^-s``.
   This conserves mass, is exact for ``k = 1`` (4K entries) and for ``s = 0`` (uniform), and
   keeps the skew a large page inherits from the hottest page it holds. It ignores two hot
   pages sharing an entry, which slightly understates the skew of large entries (hit ratios up
   to 0.026 below a Monte Carlo placement: docs/validation.md section 3).

"Mean mass times page count" would make every 2M/1G entry equally popular and lose the hot
entries that decide hit ratios; "exact sum over ranks in address order" would put all hot pages
together, a best case for large pages that the buddy allocator does not produce.

Entries ``1..16`` of a class are one group each; beyond, geometric rank bins (ratio 1.2) carry
the bin's mean probability (the bin's mass is exact): 2^30 entries become about 115 groups.

**Instruction side.** :func:`itlb_reach` applies the same model to executed module/BPF text
mapped by 4K or 2M pages in the module area: L1 iTLB arrays ``l1i_4k`` / ``l1i_2m`` (one fully
associative array on AMD, taken from ``l1d_unified``), then the STLB arrays scaled by
``stlb_share`` [E] (text translations share the STLB with data), reference: the same text in
``ceil(bytes / 2 MiB)`` 2M pages, and a share of kernel time in text fetch ``fetch_share`` [E].
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from framework.machine.costs import DEFAULT_COSTS
from framework.machine.tlb import TlbGeometry
from framework.tlb.che import group_hit_probabilities

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

PAGE_SIZE = {"4k": 1 << 12, "2m": 1 << 21, "1g": 1 << 30}
CLASSES = ("4k", "2m", "1g")
ENTRIES_PER_LINE = 8  # 8-byte page-table entries in a 64-byte cache line
CACHE_LINE = 64

MEM_SHARE = 0.3  # [E] share of kernel time in direct-map data accesses (task brief estimate)
ACCESS_CYCLES = 100.0  # [E] mean cycles of one modelled access without translation
PT_CACHE_BYTES = 1 << 20  # [E] cache held by page-table lines (no published figure)
FETCH_SHARE = 0.1  # [E] share of kernel time fetching module/BPF text
FETCH_CYCLES = 100.0  # [E] mean cycles of one modelled text-page fetch without translation
STLB_SHARE = 0.25  # [E] share of each STLB array that text translations hold against data
MAX_SOLVED_SETS = 32  # arrays with more sets are solved as fully associative (see docstring)


# --- popularity: page law -> entry groups ---------------------------------------------


HEAD_ENTRIES = 16  # entries kept one per group
BIN_RATIO = 1.2  # geometric bin ratio beyond the head
_EXACT = 64  # partial sums up to this n are summed exactly; beyond, Euler-Maclaurin


def zipf_sum(n: IntArray | int, s: float) -> FloatArray:
    """``Z(n) = sum_{j=1}^{n} j^-s`` for integers ``n >= 0`` (relative error below 1e-12).

    Exact up to ``n = 64``; beyond, the exact sum to 64 plus :func:`zipf_range_sum`.
    """
    n_arr = np.asarray(n, dtype=np.int64)
    head = _zipf_table(s)[np.minimum(n_arr, _EXACT)]
    tail = _euler_maclaurin(np.full(n_arr.shape, _EXACT + 1.0), np.maximum(n_arr, _EXACT + 1), s)
    return np.where(n_arr > _EXACT, head + tail, head)


@functools.lru_cache(maxsize=16)
def _zipf_table(s: float) -> FloatArray:
    """``Z(0..64)`` summed exactly (cached per exponent; never mutated)."""
    terms = np.arange(1, _EXACT + 1, dtype=np.float64) ** -s
    return np.concatenate(([0.0], np.cumsum(terms)))


def zipf_range_sum(lo: IntArray, hi: IntArray, s: float) -> FloatArray:
    """``sum_{j=lo}^{hi} j^-s`` for integer arrays ``1 <= lo``; 0 where ``hi < lo``.

    Summed directly by Euler-Maclaurin where ``lo > 64`` (no cancellation between two large
    partial sums), else as ``Z(hi) - Z(lo - 1)``.
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    small = zipf_sum(hi, s) - zipf_sum(np.maximum(lo - 1, 0), s)
    far = _euler_maclaurin(np.maximum(lo, _EXACT + 1), np.maximum(hi, lo), s)
    out = np.where(lo > _EXACT, far, small)
    return np.where(hi >= lo, out, 0.0)


def _euler_maclaurin(a: IntArray | FloatArray, b: IntArray | FloatArray, s: float) -> FloatArray:
    """``sum_{j=a}^{b} j^-s`` for ``65 <= a <= b`` by Euler-Maclaurin to the ``f'''`` term.

    ``sum = int_a^b f + (f(a) + f(b))/2 + (f'(b) - f'(a))/12 - (f'''(b) - f'''(a))/720`` with
    ``f = x^-s``; the next term is below ``s^5 a^(-s-5) / 30240``, negligible for ``a > 64``.
    """
    af = np.asarray(a, dtype=np.float64)
    bf = np.asarray(b, dtype=np.float64)
    log_ratio = np.log1p((bf - af) / af)
    t = 1.0 - s
    if abs(t) < 1e-12:
        integral = log_ratio
    else:
        integral = af**t * np.expm1(t * log_ratio) / t

    def d1(x: FloatArray) -> FloatArray:
        return -s * x ** (-s - 1)

    def d3(x: FloatArray) -> FloatArray:
        return -s * (s + 1) * (s + 2) * x ** (-s - 3)

    ends = (af**-s + bf**-s) / 2
    return integral + ends + (d1(bf) - d1(af)) / 12 - (d3(bf) - d3(af)) / 720


def entry_groups(entries: int, pages: int, mass: float, s: float) -> tuple[FloatArray, FloatArray]:
    """``(counts, probs)`` of the entries of one page-size class, hottest first.

    :param entries: translation entries in the class (``E``).
    :param pages: accessed 4 KiB pages they cover (``N_c >= E``).
    :param mass: share of all accesses that go to the class (``f``).
    :param s: Zipf exponent, ``0`` for uniform.
    :returns: groups per the module docstring; ``sum(counts * probs) == mass``.
    """
    if entries <= 0 or mass <= 0:
        return np.zeros(0), np.zeros(0)
    if pages < entries:
        raise ValueError(f"{pages} pages cannot fill {entries} entries")
    if s == 0:
        return np.array([float(entries)]), np.array([mass / entries])
    lo, hi = rank_bins(entries)
    counts = (hi - lo + 1).astype(np.float64)
    z_pages = float(zipf_sum(pages, s))
    tail_share = (z_pages - float(zipf_sum(entries, s))) / entries
    bin_mass = zipf_range_sum(lo, hi, s) + tail_share * counts
    probs = mass * bin_mass / z_pages / counts
    return counts, probs


def rank_bins(entries: int) -> tuple[IntArray, IntArray]:
    """Inclusive rank bins ``[lo, hi]`` covering ``1..entries``: singletons, then geometric."""
    head = min(entries, HEAD_ENTRIES)
    starts = np.arange(1, head + 1, dtype=np.int64)
    if entries > head:
        steps = math.ceil(math.log((entries + 1) / (head + 1)) / math.log(BIN_RATIO))
        edges = np.unique(np.rint(np.geomspace(head + 1, entries + 1, steps + 1)).astype(np.int64))
        starts = np.concatenate((starts, edges[:-1]))
    ends = np.concatenate((starts[1:] - 1, [entries]))
    return starts, ends


# --- TLB arrays ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class TlbArray:
    """One TLB array: ``sets`` LRU sets of ``per_set`` entries holding the classes ``holds``."""

    name: str
    sets: int
    per_set: float
    holds: tuple[str, ...]


def tlb_array(
    name: str, entries: int, ways: int, holds: tuple[str, ...], share: float = 1.0
) -> TlbArray | None:
    """The array of ``entries`` entries and ``ways`` ways (0: fully associative), or None if empty.

    Fully associative also when ``ways >= entries`` or ``entries`` is not a multiple of
    ``ways``. ``share`` scales the entries each set gives the modelled translations.
    """
    if entries <= 0 or share <= 0:
        return None
    if ways <= 0 or ways >= entries or entries % ways:
        return TlbArray(name, 1, entries * share, holds)
    return TlbArray(name, entries // ways, ways * share, holds)


def _present(arrays: Iterable[TlbArray | None]) -> tuple[TlbArray, ...]:
    return tuple(a for a in arrays if a is not None)


def dtlb_arrays(geometry: TlbGeometry) -> tuple[tuple[TlbArray, ...], tuple[TlbArray, ...]]:
    """``(L1 dTLB arrays, STLB arrays)`` of a geometry, per the module docstring."""
    g = geometry
    if g.l1d_unified:
        l1 = _present([tlb_array("l1d", g.l1d_4k, g.l1d_4k_ways, CLASSES)])
    else:
        l1 = _present([
            tlb_array("l1d_4k", g.l1d_4k, g.l1d_4k_ways, ("4k",)),
            tlb_array("l1d_2m", g.l1d_2m, g.l1d_2m_ways, ("2m",)),
            tlb_array("l1d_1g", g.l1d_1g, g.l1d_1g_ways, ("1g",)),
        ])
    return l1, _stlb_arrays(g, 1.0)


def itlb_arrays(
    geometry: TlbGeometry, stlb_share: float
) -> tuple[tuple[TlbArray, ...], tuple[TlbArray, ...]]:
    """``(L1 iTLB arrays, STLB arrays scaled by stlb_share)`` for 4K and 2M text."""
    g = geometry
    if g.l1d_unified:
        l1 = _present([tlb_array("l1i", g.l1i_4k, g.l1i_4k_ways, ("4k", "2m"))])
    else:
        l1 = _present([
            tlb_array("l1i_4k", g.l1i_4k, g.l1i_4k_ways, ("4k",)),
            tlb_array("l1i_2m", g.l1i_2m, g.l1i_2m_ways, ("2m",)),
        ])
    return l1, _stlb_arrays(g, stlb_share)


def _stlb_arrays(g: TlbGeometry, share: float) -> tuple[TlbArray, ...]:
    stlb_1g = tlb_array("stlb_1g", g.stlb_1g, 0, ("1g",), share)
    if g.stlb_shared_4k_2m:
        return _present([tlb_array("stlb", g.stlb_4k, g.stlb_ways, ("4k", "2m"), share), stlb_1g])
    return _present([
        tlb_array("stlb_4k", g.stlb_4k, g.stlb_ways, ("4k",), share),
        tlb_array("stlb_2m", g.stlb_2m, g.stlb_ways, ("2m",), share),
        stlb_1g,
    ])


# --- evaluation ---------------------------------------------------------------------------

Population = dict[str, tuple[FloatArray, FloatArray]]


@attrs.frozen(slots=True)
class PageClass:
    """One page-size class of a mapping: ``entries`` translations, ``pages`` accessed 4K pages.

    Accessed pages spread evenly over the entries: when there are fewer pages than entries,
    ``pages`` entries hold one accessed page each and the rest are never used.
    """

    name: str
    entries: int
    pages: int

    @property
    def touched(self) -> int:
        """Entries that hold at least one accessed page."""
        return min(self.entries, self.pages)

    @property
    def leaf_lines(self) -> int:
        """64-byte lines of leaf entries that walks touch (8 entries a line)."""
        return min(math.ceil(self.entries / ENTRIES_PER_LINE), self.touched)


@attrs.frozen(slots=True)
class Translation:
    """Per-access translation figures of one mapping (see the module docstring)."""

    l1_miss_rate: float
    stlb_miss_rate: float
    walk_cycles: float
    walk_cached_fraction: float
    cycles: float


def population(classes: Iterable[PageClass], s: float) -> Population:
    """``{class: (counts, probs)}`` of entry groups; probabilities are per access (sum 1)."""
    live = [c for c in classes if c.touched > 0]
    total = sum(c.pages for c in live)
    return {c.name: entry_groups(c.touched, c.pages, c.pages / total, s) for c in live}


def level_hits(pop: Population, arrays: Iterable[TlbArray]) -> dict[str, FloatArray]:
    """Mean hit probability of each entry group in one TLB level (0 where no array holds it).

    The groups of the classes an array holds are merged hottest first (so ``i mod sets``
    spreads the hot entries evenly) and solved with :func:`~.che.group_hit_probabilities`.
    """
    hits = {name: np.zeros_like(counts) for name, (counts, _) in pop.items()}
    for array in arrays:
        names = [n for n in array.holds if n in pop]
        if not names:
            continue
        parts = solve_shared_array(array.sets, array.per_set, [pop[n] for n in names])
        for name, part in zip(names, parts, strict=True):
            hits[name] = part
    return hits


def solve_shared_array(sets: int, per_set: float, groups: list[tuple[Any, Any]]) -> list[Any]:
    """Hit probabilities of the groups ``(counts, probs)`` that share one TLB array: merged
    hottest first (so ``i mod sets`` spreads the hot entries evenly), solved with
    :func:`~.che.group_hit_probabilities`, and split back per group."""
    counts = np.concatenate([g[0] for g in groups])
    probs = np.concatenate([g[1] for g in groups])
    order = np.argsort(-probs, kind="stable")
    if sets > MAX_SOLVED_SETS:  # balanced hashing: per-set Che == fully associative Che
        sets, per_set = 1, sets * per_set
    solved = group_hit_probabilities(counts[order], probs[order], sets, per_set)
    merged = np.empty_like(solved)
    merged[order] = solved
    bounds = np.cumsum([g[0].size for g in groups])[:-1]
    return list(np.split(merged, bounds))


def translate(
    classes: tuple[PageClass, ...],
    s: float,
    levels: tuple[tuple[TlbArray, ...], tuple[TlbArray, ...]],
    costs: Mapping[str, float],
    pt_cache_bytes: float,
) -> Translation:
    """Evaluate one mapping: L1 and STLB misses per access, walk and translation cycles."""
    pop = population(classes, s)
    if not pop:
        return Translation(0.0, 0.0, 0.0, 1.0, 0.0)
    l1, stlb = (level_hits(pop, arrays) for arrays in levels)
    l1_miss = stlb_miss = 0.0
    walks: dict[str, float] = {}
    for name, (counts, probs) in pop.items():
        mass = counts * probs
        m1 = 1.0 - l1[name]
        l1_miss += float((mass * m1).sum())
        walks[name] = float((mass * np.minimum(m1, 1.0 - stlb[name])).sum())
        stlb_miss += walks[name]
    cached = leaf_cached_fractions(classes, walks, pt_cache_bytes)
    walk_cached = sum(walks[n] * cached[n] for n in walks)
    walk_dram = stlb_miss - walk_cached
    walk_cycles = walk_cached * costs["walk_cached"] + walk_dram * costs["walk_dram"]
    cycles = costs["stlb_hit"] * (l1_miss - stlb_miss) + walk_cycles
    fraction = walk_cached / stlb_miss if stlb_miss > 0 else 1.0
    return Translation(l1_miss, stlb_miss, walk_cycles, fraction, cycles)


def leaf_cached_fractions(
    classes: Iterable[PageClass], walks: Mapping[str, float], pt_cache_bytes: float
) -> dict[str, float]:
    """Probability that a walk of each class finds its leaf entry's line in cache.

    Class ``c`` has ``L_c = min(ceil(E_c / 8), touched entries)`` leaf lines that walks touch,
    each walked at rate ``w_c / L_c``; the lines share an LRU of ``pt_cache_bytes / 64`` lines
    (Che's approximation, fully associative).
    """
    live = [c for c in classes if c.touched > 0]
    names = [c.name for c in live]
    lines = np.array([c.leaf_lines for c in live], dtype=np.float64)
    rates = np.array([walks[n] for n in names]) / lines
    hits = group_hit_probabilities(lines, rates, 1, pt_cache_bytes / CACHE_LINE)
    return {n: float(h) for n, h in zip(names, hits, strict=True)}


# --- public API ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class DtlbReach:
    """Data-side result of :func:`dtlb_reach`; rates and cycles are per modelled access.

    :ivar dtlb_miss_rate: L1 dTLB misses per access.
    :ivar stlb_miss_rate: STLB misses (page walks) per access.
    :ivar walk_cycles_per_access: page-walk cycles per access.
    :ivar walk_cached_fraction: share of walks whose leaf entry was cached (1.0 if no walks).
    :ivar translation_cycles_per_access: STLB-hit plus walk cycles per access.
    :ivar reference_cycles_per_access: the same for the reference mapping.
    :ivar est_slowdown_pct: estimated slowdown of kernel time against the reference, percent.
    :ivar reference: the reference mapping, e.g. ``"256 x 1G"``.
    """

    dtlb_miss_rate: float
    stlb_miss_rate: float
    walk_cycles_per_access: float
    walk_cached_fraction: float
    translation_cycles_per_access: float
    reference_cycles_per_access: float
    est_slowdown_pct: float
    reference: str


@attrs.frozen(slots=True)
class ItlbReach:
    """Instruction-side result of :func:`itlb_reach`; per modelled text fetch.

    :ivar itlb_miss_rate: L1 iTLB misses per fetch.
    :ivar stlb_miss_rate: STLB misses (page walks) per fetch.
    :ivar walk_cycles_per_fetch: page-walk cycles per fetch.
    :ivar translation_cycles_per_fetch: STLB-hit plus walk cycles per fetch.
    :ivar reference_cycles_per_fetch: the same with all text in 2M pages.
    :ivar est_slowdown_pct: estimated slowdown of kernel time against the reference, percent.
    :ivar reference: the reference mapping, e.g. ``"7 x 2M"``.
    """

    itlb_miss_rate: float
    stlb_miss_rate: float
    walk_cycles_per_fetch: float
    translation_cycles_per_fetch: float
    reference_cycles_per_fetch: float
    est_slowdown_pct: float
    reference: str


def dtlb_reach(
    geometry: TlbGeometry,
    entries_4k: int = 0,
    entries_2m: int = 0,
    entries_1g: int = 0,
    *,
    bytes_4k: int | None = None,
    bytes_2m: int | None = None,
    bytes_1g: int | None = None,
    distribution: str = "zipf",
    s: float = 1.0,
    costs: Mapping[str, float] | None = None,
    mem_share: float = MEM_SHARE,
    access_cycles: float = ACCESS_CYCLES,
    pt_cache_bytes: float = PT_CACHE_BYTES,
    reference: str = "1g",
) -> DtlbReach:
    """Translation cost of kernel data accesses through a direct map of the given page mix.

    :param geometry: the core's TLBs.
    :param entries_4k: 4 KiB direct-map entries of the region (likewise 2m, 1g), e.g.
        ``DirectMap4k // 4`` for the whole direct map.
    :param bytes_4k: bytes the kernel accesses under those entries (default: all they map),
        ``0 <= bytes_4k <= entries_4k * 4096``; spread evenly over the entries (random
        placement). Likewise ``bytes_2m``, ``bytes_1g``.
    :param distribution: ``"uniform"`` or ``"zipf"`` over the accessed 4 KiB pages.
    :param s: Zipf exponent (ignored for uniform), ``>= 0``.
    :param costs: cycles for ``stlb_hit``, ``walk_cached``, ``walk_dram`` (default: the cost
        table, :data:`~framework.machine.costs.DEFAULT_COSTS`); other keys are ignored.
    :param mem_share: [E] share of kernel time in these accesses under the reference mapping.
    :param access_cycles: [E] mean cycles of one such access, translation excluded.
    :param pt_cache_bytes: [E] data-cache bytes that hold page-table lines.
    :param reference: page size of the reference mapping, ``"1g"``, ``"2m"`` or ``"4k"``.
    :raises ValueError: for negative or inconsistent sizes or an unknown name.
    """
    classes = _classes(
        {"4k": entries_4k, "2m": entries_2m, "1g": entries_1g},
        {"4k": bytes_4k, "2m": bytes_2m, "1g": bytes_1g},
    )
    _check_ranges(mem_share=mem_share, access_cycles=access_cycles, pt_cache_bytes=pt_cache_bytes)
    ref_classes, ref_name = _reference(classes, reference)
    got, ref = _against_reference(classes, ref_classes, dtlb_arrays(geometry), distribution, s,
                                  costs, pt_cache_bytes)
    return DtlbReach(
        dtlb_miss_rate=got.l1_miss_rate,
        stlb_miss_rate=got.stlb_miss_rate,
        walk_cycles_per_access=got.walk_cycles,
        walk_cached_fraction=got.walk_cached_fraction,
        translation_cycles_per_access=got.cycles,
        reference_cycles_per_access=ref.cycles,
        est_slowdown_pct=slowdown_pct(got.cycles, ref.cycles, mem_share, access_cycles),
        reference=ref_name,
    )


def itlb_reach(
    geometry: TlbGeometry,
    text_bytes_4k: int,
    text_bytes_2m: int = 0,
    *,
    entries_2m: int | None = None,
    distribution: str = "zipf",
    s: float = 1.0,
    costs: Mapping[str, float] | None = None,
    fetch_share: float = FETCH_SHARE,
    fetch_cycles: float = FETCH_CYCLES,
    stlb_share: float = STLB_SHARE,
    pt_cache_bytes: float = PT_CACHE_BYTES,
) -> ItlbReach:
    """Translation cost of fetching module/BPF text mapped by 4K and 2M pages.

    :param geometry: the core's TLBs.
    :param text_bytes_4k: executed text bytes mapped by 4 KiB pages (``ceil(bytes / 4 KiB)``
        entries, each a whole page of text).
    :param text_bytes_2m: executed text bytes mapped by 2 MiB pages.
    :param entries_2m: 2M entries holding them (default ``ceil(text_bytes_2m / 2 MiB)``).
    :param distribution: ``"uniform"`` or ``"zipf"`` over the executed 4 KiB text pages.
    :param s: Zipf exponent.
    :param costs: as in :func:`dtlb_reach`.
    :param fetch_share: [E] share of kernel time fetching this text under the reference.
    :param fetch_cycles: [E] mean cycles of one modelled fetch, translation excluded.
    :param stlb_share: [E] share of each STLB array that text translations hold.
    :param pt_cache_bytes: [E] cache bytes holding the text's page-table lines.
    :raises ValueError: for negative or inconsistent sizes or an unknown name.
    """
    if text_bytes_4k < 0 or text_bytes_2m < 0:
        raise ValueError("text bytes must be >= 0")
    n_2m = -(-text_bytes_2m // PAGE_SIZE["2m"]) if entries_2m is None else entries_2m
    pages_4k = -(-text_bytes_4k // PAGE_SIZE["4k"])
    classes = _classes(
        {"4k": pages_4k, "2m": n_2m, "1g": 0},
        {"4k": None, "2m": -(-text_bytes_2m // PAGE_SIZE["4k"]) * PAGE_SIZE["4k"], "1g": None},
    )
    _check_ranges(fetch_share=fetch_share, fetch_cycles=fetch_cycles, stlb_share=stlb_share,
                  pt_cache_bytes=pt_cache_bytes)
    ref_classes, ref_name = _reference(classes, "2m", text_bytes_4k + text_bytes_2m)
    got, ref = _against_reference(classes, ref_classes, itlb_arrays(geometry, stlb_share),
                                  distribution, s, costs, pt_cache_bytes)
    return ItlbReach(
        itlb_miss_rate=got.l1_miss_rate,
        stlb_miss_rate=got.stlb_miss_rate,
        walk_cycles_per_fetch=got.walk_cycles,
        translation_cycles_per_fetch=got.cycles,
        reference_cycles_per_fetch=ref.cycles,
        est_slowdown_pct=slowdown_pct(got.cycles, ref.cycles, fetch_share, fetch_cycles),
        reference=ref_name,
    )


def _against_reference(classes: tuple[PageClass, ...], ref_classes: tuple[PageClass, ...],
                       levels: tuple[tuple[TlbArray, ...], tuple[TlbArray, ...]],
                       distribution: str, s: float, costs: Mapping[str, float] | None,
                       pt_cache_bytes: float) -> tuple[Translation, Translation]:
    """Translate the page mix and its reference mapping through the same TLB arrays."""
    exponent = _exponent(distribution, s)
    cost = _costs(costs)
    return (translate(classes, exponent, levels, cost, pt_cache_bytes),
            translate(ref_classes, exponent, levels, cost, pt_cache_bytes))


def slowdown_pct(cycles: float, ref_cycles: float, share: float, base_cycles: float) -> float:
    """``100 * share * (cycles - ref_cycles) / (base_cycles + ref_cycles)`` (Amdahl's law).

    ``share`` is the time share of the modelled accesses under the reference mapping, whose
    cost per access is ``base_cycles + ref_cycles``; only that share changes.
    """
    denominator = base_cycles + ref_cycles
    return 100.0 * share * (cycles - ref_cycles) / denominator if denominator > 0 else 0.0


def _classes(
    entries: Mapping[str, int], accessed: Mapping[str, int | None]
) -> tuple[PageClass, ...]:
    """Validate the page mix and turn it into :class:`PageClass` values (accessed 4K pages)."""
    out = []
    for name in CLASSES:
        n, size = int(entries[name]), PAGE_SIZE[name]
        got = accessed[name]
        nbytes = n * size if got is None else int(got)
        if n < 0 or not 0 <= nbytes <= n * size:
            raise ValueError(
                f"entries_{name}={n}, bytes_{name}={nbytes}: expected entries >= 0 and "
                f"0 <= bytes <= entries x {size}"
            )
        out.append(PageClass(name, n, nbytes // PAGE_SIZE["4k"]))
    return tuple(out)


def _reference(
    classes: tuple[PageClass, ...], size: str, span: int | None = None
) -> tuple[tuple[PageClass, ...], str]:
    """The same accessed pages spread over ``ceil(span / size)`` entries of ``size``.

    ``span`` defaults to the bytes the given entries map (``sum entries x page size``).
    """
    if size not in PAGE_SIZE:
        raise ValueError(f"reference={size!r}: expected one of {', '.join(PAGE_SIZE)}")
    if span is None:
        span = sum(c.entries * PAGE_SIZE[c.name] for c in classes)
    pages = sum(c.pages for c in classes)
    entries = -(-span // PAGE_SIZE[size])
    ref = tuple(
        PageClass(n, entries if n == size else 0, pages if n == size else 0) for n in CLASSES
    )
    return ref, f"{entries} x {size.upper()}"


def _exponent(distribution: str, s: float) -> float:
    """Zipf exponent of the access law (0 for uniform)."""
    if distribution == "uniform":
        return 0.0
    if distribution != "zipf":
        raise ValueError(f"distribution={distribution!r}: expected uniform or zipf")
    if not (s >= 0 and math.isfinite(s)):
        raise ValueError(f"s={s}: the Zipf exponent must be a finite number >= 0")
    return float(s)


def _check_ranges(**values: float) -> None:
    """Shares must lie in [0, 1], cycles and bytes must be finite and >= 0."""
    for name, value in values.items():
        top = 1.0 if name.endswith("share") else math.inf
        if not (0 <= value <= top and math.isfinite(value)):
            raise ValueError(f"{name}={value}: expected a finite number in [0, {top}]")


def _costs(costs: Mapping[str, float] | None) -> dict[str, float]:
    """The three translation costs, from ``costs`` or the cost table."""
    names = ("stlb_hit", "walk_cached", "walk_dram")
    given = {} if costs is None else costs
    return {n: float(given.get(n, DEFAULT_COSTS[n].cycles)) for n in names}
