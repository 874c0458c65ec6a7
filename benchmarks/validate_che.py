"""Validate the TLB reach model (:mod:`framework.tlb`) and print the tables of docs/validation.md.

Run ``python benchmarks/validate_che.py`` (about a minute on a 2-core machine; ``--quick`` for
a faster, noisier run). Sections:

1. Che's approximation vs exact LRU simulation (uniform and Zipf; fully associative and
   set-associative, W = 4, 8, 12; items hashed ``i mod sets`` in popularity order and shuffled).
2. Rank binning: grouped ``(count, prob)`` entries vs the same entries one by one.
3. Entry popularity: the head + tail rule vs Monte Carlo random placement of ranked pages.
4. Set-associative vs fully associative Che for the STLB-sized arrays (why arrays of more than
   32 sets are solved as fully associative).
5. Direction check against docs/hardware.md, "Published results": a 256 GiB direct map all in
   4K, 2M, 1G pages or fragmented, on the modelled cores.
6. Per-call time of :func:`framework.tlb.reach.dtlb_reach` (CPU time, best of 5).
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np

from framework.machine.tlb import TLB_GEOMETRIES
from framework.tlb.che import group_hit_probabilities, hit_ratio, set_assoc_hit_ratio
from framework.tlb.lru import simulate_lru
from framework.tlb.reach import (
    PAGE_SIZE,
    DtlbReach,
    dtlb_reach,
    entry_groups,
    itlb_reach,
    zipf_sum,
)

GIB = 1 << 30
TOLERANCE = 0.01  # absolute, on the hit ratio (section 1)


def zipf(n: int, s: float) -> np.ndarray:
    """Normalised Zipf probabilities of ranks 1..n (uniform for s = 0)."""
    p = np.arange(1, n + 1, dtype=np.float64) ** -s
    out: np.ndarray = p / p.sum()
    return out


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


LRU_CASES: tuple[tuple[int, float, int, int, bool], ...] = (
    # items, s, sets, ways (0 = fully associative, capacity in sets), shuffled order
    (200, 0.0, 50, 0, False),
    (1000, 0.8, 64, 0, False),
    (1000, 1.0, 100, 0, False),
    (5000, 1.2, 64, 0, False),
    (24, 1.0, 6, 0, False),
    (500, 0.0, 16, 4, False),
    (200, 1.0, 16, 4, True),
    (80, 1.0, 16, 4, True),
    (1000, 0.8, 8, 8, False),
    (300, 1.0, 8, 8, True),
    (2000, 1.0, 8, 12, False),
    (130, 1.0, 8, 12, True),
    (40, 1.2, 4, 4, True),
)


def section_lru(accesses: int, seed: int) -> tuple[str, float]:
    """Che vs exact LRU; returns the table and the largest absolute difference."""
    rows, worst = [], 0.0
    rng = np.random.default_rng(seed)
    for n, s, sets, ways, shuffled in LRU_CASES:
        p = zipf(n, s)
        if shuffled:
            p = rng.permutation(p)
        if ways == 0:
            che = hit_ratio(p, sets)
            lru = simulate_lru(p, sets, accesses, rng)
            shape = f"full, C={sets}"
        else:
            che = set_assoc_hit_ratio(p, sets, ways)
            lru = simulate_lru(p, sets * ways, accesses, rng, sets=sets, ways=ways)
            shape = f"{sets} sets x {ways} ways"
        sigma = (lru * (1 - lru) / accesses) ** 0.5
        worst = max(worst, abs(che - lru))
        law = "uniform" if s == 0 else f"Zipf {s}"
        rows.append([str(n), law + (" shuffled" if shuffled else ""), shape, f"{che:.4f}",
                     f"{lru:.4f} ± {2 * sigma:.4f}", f"{che - lru:+.4f}"])
    head = ["items", "law", "array", "Che", "LRU (±2σ i.i.d.)", "Che − LRU"]
    return table(head, rows), worst


def section_bins() -> str:
    """Grouped rank bins vs the exact per-entry popularity."""
    rows = []
    for s in (0.5, 1.0, 1.5):
        for entries, pages in ((200_000, 200_000), (100_000, 51_200_000)):
            counts, probs = entry_groups(entries, pages, 1.0, s)
            e = np.arange(1, entries + 1, dtype=np.float64)
            z_pages, z_entries = float(zipf_sum(pages, s)), float(zipf_sum(entries, s))
            exact = (e**-s + (z_pages - z_entries) / entries) / z_pages
            for cap in (64, 1024, 3072):
                a = hit_ratio(probs, cap, counts=counts)
                b = hit_ratio(exact, cap)
                rows.append([f"{s}", f"{entries}", f"{pages}", f"{counts.size}", f"{cap}",
                             f"{a:.5f}", f"{b:.5f}", f"{a - b:+.1e}"])
    head = ["s", "entries", "pages", "groups", "C", "grouped", "one by one", "diff"]
    return table(head, rows)


def section_placement(seed: int) -> str:
    """Head + tail entry popularity vs Monte Carlo random placement of ranked pages."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in (0.8, 1.0, 1.2):
        for pages, per in ((1 << 18, 512), (1 << 20, 512), (1 << 20, 8)):
            entries = pages // per
            p = zipf(pages, s)
            counts, probs = entry_groups(entries, pages, 1.0, s)
            for cap in (32, 1024):
                if cap >= entries:
                    continue
                runs = [hit_ratio(rng.permutation(p).reshape(entries, per).sum(1), cap)
                        for _ in range(4)]
                model = hit_ratio(probs, cap, counts=counts)
                rows.append([f"{s}", f"{pages}", f"{per}", f"{cap}",
                             f"{np.mean(runs):.4f} ± {np.std(runs):.4f}", f"{model:.4f}",
                             f"{cap / entries:.4f}"])
    head = ["s", "pages", "pages/entry", "C", "Monte Carlo", "head + tail", "mean mass"]
    return table(head, rows)


def section_sets() -> str:
    """Per-set Che (hottest-first ``i mod sets``) vs fully associative Che."""
    rows = []
    for s in (0.6, 1.0, 1.3):
        for entries in (10_000, 1 << 26):
            counts, probs = entry_groups(entries, entries, 1.0, s)
            for sets, ways in ((16, 4), (128, 12), (256, 8), (512, 6)):
                sa = group_hit_probabilities(counts, probs, sets, ways)
                fa = group_hit_probabilities(counts, probs, 1, sets * ways)
                mass = counts * probs
                a, b = float(mass @ sa), float(mass @ fa)
                rows.append([f"{s}", f"{entries}", f"{sets} x {ways}", f"{a:.5f}", f"{b:.5f}",
                             f"{a - b:+.5f}"])
    head = ["s", "entries", "array", "per set", "fully assoc.", "diff"]
    return table(head, rows)


def mappings(gib: int) -> Iterator[tuple[str, dict[str, int]]]:
    """A direct map of ``gib`` GiB: all in one page size, fragmented, one GiB split."""
    frag_4k, frag_2m = gib // 32, gib // 8  # 3% of RAM in 4K pages, 12.5% in 2M pages
    yield "all 4K", {"entries_4k": gib * GIB // 4096}
    yield "all 2M", {"entries_2m": gib * 512}
    yield "all 1G", {"entries_1g": gib}
    yield "frag", {"entries_4k": frag_4k * GIB // 4096, "entries_2m": frag_2m * 512,
                   "entries_1g": gib - frag_4k - frag_2m}
    yield "1G->4K", {"entries_4k": GIB // 4096, "entries_1g": gib - 1}
    yield "1G->2M", {"entries_2m": 512, "entries_1g": gib - 1}


LAWS: dict[str, tuple[str, float, float]] = {
    # name: (distribution, s, share of each entry's memory accessed)
    "uniform": ("uniform", 0.0, 1.0),
    "Zipf 1.0": ("zipf", 1.0, 1.0),
    "Zipf 1.2": ("zipf", 1.2, 1.0),
    "hot 16 GiB": ("uniform", 0.0, 1 / 16),
}


def reach(geo: str, law: str, kw: dict[str, Any]) -> DtlbReach:
    """dtlb_reach of one mapping under one law (accessed share applied to every group)."""
    distribution, s, share = LAWS[law]
    accessed: dict[str, Any] = {f"bytes_{size}": int(kw.get(f"entries_{size}", 0) * nbytes * share)
                for size, nbytes in PAGE_SIZE.items()}
    return dtlb_reach(TLB_GEOMETRIES[geo], **kw, **accessed, distribution=distribution, s=s)


def section_direction(gib: int) -> tuple[str, str]:
    """Detailed table (SPR, SKX) and slowdown summary (every core); reference: all 1G."""
    detail = []
    for geo in ("sapphire-rapids", "skylake-sp"):
        for law in LAWS:
            for name, kw in mappings(gib):
                if name.startswith("1G->"):
                    continue
                r = reach(geo, law, kw)
                detail.append([geo, law, name, f"{r.dtlb_miss_rate:.3f}",
                               f"{r.stlb_miss_rate:.3f}", f"{r.walk_cached_fraction:.2f}",
                               f"{r.translation_cycles_per_access:.1f}",
                               f"{r.est_slowdown_pct:+.2f}"])
    head = ["core", "law", "direct map", "L1 miss", "STLB miss", "walks cached",
            "cycles/access", "slowdown %"]
    summary = []
    names = [name for name, _ in mappings(gib)]
    for geo in TLB_GEOMETRIES:
        for law in LAWS:
            cells = [f"{reach(geo, law, kw).est_slowdown_pct:+.2f}" for _, kw in mappings(gib)]
            summary.append([geo, law, *cells])
    return table(head, detail), table(["core", "law", *names], summary)


def section_itlb() -> str:
    """Module text: Gleixner's 12.46 MB in 4K pages vs 2M pages."""
    rows = []
    text = 12_460_000
    for geo in ("sapphire-rapids", "skylake-sp", "zen4"):
        for s in (0.8, 1.0, 1.2):
            for name, b4, b2 in (("all 4K", text, 0), ("all 2M", 0, text)):
                r = itlb_reach(TLB_GEOMETRIES[geo], b4, b2, s=s)
                rows.append([geo, f"Zipf {s}", name, f"{r.itlb_miss_rate:.3f}",
                             f"{r.stlb_miss_rate:.3f}", f"{r.translation_cycles_per_fetch:.1f}",
                             f"{r.est_slowdown_pct:+.2f}"])
    head = ["core", "law", "module text", "iTLB miss", "STLB miss", "cycles/fetch",
            "slowdown % vs 2M"]
    return table(head, rows)


def best_cpu_ms(call: Callable[[], object]) -> float:
    """Best of 5 repeats of 5 calls, process CPU time, in ms per call."""
    timer = timeit.Timer(call, timer=time.process_time)
    return min(timer.repeat(repeat=5, number=5)) / 5 * 1e3


def section_timing() -> str:
    """Per-call CPU time of dtlb_reach and itlb_reach."""
    rows = []
    cases: dict[str, dict[str, Any]] = {
        "4 TiB all 4K": {"entries_4k": 1 << 30},
        "4 TiB all 2M": {"entries_2m": 4096 * 512},
        "4 TiB all 1G": {"entries_1g": 4096},
        "4 TiB mixed": {"entries_4k": 1 << 29, "entries_2m": 1 << 19, "entries_1g": 1024},
        "256 GiB all 4K": {"entries_4k": 1 << 26},
    }
    for geo, g in TLB_GEOMETRIES.items():
        for law in ("uniform", "zipf"):
            worst = max((best_cpu_ms(partial(dtlb_reach, g, **kw, distribution=law)), name)
                        for name, kw in cases.items())
            rows.append([geo, f"dtlb_reach {law}", f"{worst[0]:.2f}", worst[1]])
        ms = best_cpu_ms(partial(itlb_reach, g, 12_460_000, 4 << 21))
        rows.append([geo, "itlb_reach zipf", f"{ms:.2f}", "12.46 MB 4K + 8 MiB 2M"])
    return table(["core", "call", "worst ms/call", "case"], rows)


def main() -> None:
    """Print every section (markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accesses", type=int, default=400_000, help="LRU requests per case")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--quick", action="store_true", help="40k requests, skip timing")
    args = parser.parse_args()
    accesses = 40_000 if args.quick else args.accesses
    lru, worst = section_lru(accesses, args.seed)
    verdict = "PASS" if worst <= TOLERANCE else "FAIL"
    print(f"## 1. Che vs exact LRU ({accesses} requests after warm-up, seed {args.seed})\n")
    print(lru)
    print(f"\nlargest |Che - LRU| = {worst:.4f}; tolerance {TOLERANCE}: {verdict}\n")
    print("## 2. Rank bins vs one entry at a time\n")
    print(section_bins())
    print("\n## 3. Entry popularity: head + tail vs Monte Carlo placement\n")
    print(section_placement(args.seed))
    print("\n## 4. Per-set vs fully associative Che\n")
    print(section_sets())
    detail, summary = section_direction(256)
    print("\n## 5. Direction check: 256 GiB direct map (reference: 256 x 1G)\n")
    print(detail)
    print("\n### est_slowdown_pct on every core\n")
    print(summary)
    print("\n### Module text (iTLB)\n")
    print(section_itlb())
    if not args.quick:
        print("\n## 6. Per-call CPU time\n")
        print(section_timing())


if __name__ == "__main__":
    main()
