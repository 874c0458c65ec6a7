"""Samples of the mapping during a run, and the TLB metrics integrated over them.

The engine calls :meth:`TlbSampler.sample` after the event whose index reaches
:attr:`TlbSampler.next`. Samples are taken every ``stride`` events; when ``samples`` of them
are kept, every other one is dropped and the stride doubles, so at the end between
``samples / 2`` and ``samples`` samples lie evenly over the run whatever its length (plus the
end state). Time is the workload's own allocations and frees so far (the engine's ``clock``):
the ``background`` load's fill phase, which stands for the machine's past, takes no time, and
a sample in which no time passed is not kept. A sample costs a few list operations: the
direct map is recorded as the length of its change log
(:attr:`~framework.kernel.directmap.DirectMap.changes`, replayed at the end), the module text
as a copy of the extents of the live executable allocations (which the engine keeps as they
are made and freed, ``framework/engine.py``); the pages they occupy are counted at the end, for
the samples that are left only.

Each sample stands for the time from it to the next (the last for the time to the end),
so a split made early weighs more than one made at the end. Only distinct mappings are
evaluated, and evaluations are cached across the designs of a cell (:mod:`framework.tlb.mix`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs

from framework.kernel.directmap import LEVEL_1G, DirectMap
from framework.machine.spec import MachineSpec
from framework.tlb.mix import Misses, Pop, evaluate_data, evaluate_text
from framework.tlb.reach import _exponent
from framework.tlb.settings import BAND, MIX_BAND, band, slowdown_pct
from framework.tlb.stream import (
    MIB_PAGES,
    PMD_PAGES,
    ClassCounts,
    DirectMapSet,
    boot_classes,
    classify,
    direct_map_set,
)

FIRST_STRIDE = 16
COST_NAMES = ("stlb_hit", "walk_cached", "walk_dram")


@attrs.frozen(slots=True)
class Text:
    """Executable module-area text live at a sample: 4K entries, 2M entries, pages, bytes."""

    entries_4k: int = 0
    entries_2m: int = 0
    pages: int = 0
    bytes: int = 0


#: One live executable module-area allocation: its first and last module-area page (vaddr
#: >> 12), whether its area is mapped with 2 MiB pages, and its size in bytes.
TextExtent = tuple[int, int, bool, int]
Live = Callable[[], Iterable[TextExtent]]


def text_of(extents: Iterable[TextExtent]) -> Text:
    """Module-area pages holding the given executable allocations, by mapping size."""
    small: set[int] = set()
    huge: set[int] = set()
    nbytes = 0
    for first, last, is_huge, size in extents:
        nbytes += size
        (huge if is_huge else small).update(range(first, last + 1))
    chunks = {v >> 9 for v in huge}
    return Text(len(small), len(chunks), len(small) + len(huge), nbytes)


class TlbSampler:
    """Records ``(time, direct-map log length, live text)`` samples (module docstring).

    :param live: the extents of the live executable module-area allocations (the engine
        keeps them as allocations are made and freed); a sample keeps a copy of them, and
        :meth:`timeline` turns the samples that are left at the end into :class:`Text`.
    """

    def __init__(self, directmap: DirectMap, live: Live, samples: int,
                 clock: Callable[[], int]) -> None:
        self.dm = directmap
        self.live = live
        self.clock = clock
        self.cap = max(1, samples)
        self.stride = FIRST_STRIDE
        self.next = FIRST_STRIDE - 1 if self.cap > 1 else 1 << 62
        self.samples: list[tuple[int, int, tuple[TextExtent, ...]]] = []

    def sample(self, index: int) -> int:
        """Take a sample after event ``index``; return the index of the next one."""
        now = self.clock()
        if self.samples and now == self.samples[-1][0]:  # no time passed (background fill)
            self.next = index + self.stride
            return self.next
        self.samples.append((now, len(self.dm.changes), tuple(self.live())))
        if len(self.samples) >= self.cap:
            self.samples = self.samples[1::2]
            self.stride *= 2
        self.next = index + self.stride
        return self.next

    def text(self) -> Text:
        """Module-area pages holding live executable allocations, by mapping size."""
        return text_of(self.live())

    def timeline(self) -> list[tuple[int, int, Text]]:
        """``(weight, log length, text)`` per sample, the end state last; weights in time."""
        end = self.clock()
        points = [*((now, pos, text_of(live)) for now, pos, live in self.samples),
                  (end, len(self.dm.changes), self.text())]
        out = []
        for k, (now, pos, text) in enumerate(points):
            until = points[k + 1][0] if k + 1 < len(points) else end
            start = 0 if k == 0 else now
            out.append((max(until - start, 0), pos, text))
        if not any(w for w, _, _ in out):  # no time at all: the end state alone
            out[-1] = (1, out[-1][1], out[-1][2])
        return out


def replay(dm: DirectMap, positions: Iterable[int]) -> dict[int, tuple[frozenset[int],
                                                                       frozenset[int]]]:
    """The split sets ``(PUDs, PMDs)`` after the first ``pos`` logged changes, per position."""
    pud, pmd = set(dm.split_pud), set(dm.split_pmd)
    for level, index, sign in reversed(dm.changes):  # back to the boot state
        target = pud if level == LEVEL_1G else pmd
        if sign > 0:
            target.discard(index)
        else:
            target.add(index)
    out = {}
    done = 0
    for pos in sorted(set(positions)):
        for level, index, sign in dm.changes[done:pos]:
            target = pud if level == LEVEL_1G else pmd
            if sign > 0:
                target.add(index)
            else:
                target.discard(index)
        done = pos
        out[pos] = (frozenset(pud), frozenset(pmd))
    return out


def data_pops(cc: ClassCounts, p: dict[str, Any]) -> tuple[Pop, ...]:
    """The data side's populations: user 4K and THP, the direct map's classes, vmalloc."""
    user = p["user_ws_mib"] * MIB_PAGES
    thp = int(user * p["user_thp"])
    small = int(user) - thp
    ks = p["kernel_share"]
    dm_mass = ks * p["dm_share"]
    dm_pages = cc.pages_4k + cc.pages_2m + cc.pages_1g
    vm = int(p["vmalloc_ws_mib"] * MIB_PAGES)

    def dm(size: str, entries: int, pages: int) -> Pop:
        return Pop(f"dm_{size}", size, entries, pages, dm_mass * pages / dm_pages
                   if dm_pages else 0.0)

    return (
        Pop("user_4k", "4k", small, small, (1 - ks) * small / user if user else 0.0),
        Pop("user_2m", "2m", -(-thp // PMD_PAGES), thp, (1 - ks) * thp / user if user else 0.0),
        dm("4k", cc.entries_4k, cc.pages_4k),
        dm("2m", cc.entries_2m, cc.pages_2m),
        dm("1g", cc.entries_1g, cc.pages_1g),
        Pop("vmalloc_4k", "4k", vm, vm, ks * (1 - p["dm_share"])),
    )


def text_pops(text: Text, p: dict[str, Any], reference: bool) -> tuple[Pop, ...]:
    """The instruction side: user text (4K), kernel image text (2M), module/BPF text.

    The reference holds the same module text bytes in ``ceil(bytes / 2 MiB)`` 2M entries.
    """
    ks = p["kernel_share"]
    mod = ks * p["module_fetch_share"] if text.pages else 0.0
    user = int(p["user_text_mib"] * MIB_PAGES)
    image = int(p["kernel_text_mib"] * MIB_PAGES)
    pops = [Pop("user_text", "4k", user, user, 1 - ks),
            Pop("kernel_text", "2m", -(-image // PMD_PAGES), image, ks - mod)]
    if reference:
        pages = -(-text.bytes // 4096)
        pops.append(Pop("module_text", "2m", -(-pages // PMD_PAGES), pages, mod))
    else:
        share = text.entries_4k / text.pages if text.pages else 0.0
        pops.append(Pop("module_text_4k", "4k", text.entries_4k, text.entries_4k, mod * share))
        pops.append(Pop("module_text_2m", "2m", text.entries_2m, text.pages - text.entries_4k,
                        mod * (1 - share)))
    return tuple(pops)


Cycles = Callable[[dict[str, float]], tuple[tuple[float, float], tuple[float, float]]]


@attrs.frozen(slots=True)
class RunMisses:
    """A run's time-weighted misses: the mean data and text misses, and their differences
    to the reference, for one setting of the stream's estimates."""

    data: Misses
    text: Misses
    d_data: Misses
    d_text: Misses
    ref_data: Misses
    ref_text: Misses

    def cycles(self, v: dict[str, float]) -> tuple[tuple[float, float], tuple[float, float]]:
        """``((c, r), (ct, rt))`` from the mean differences to the reference (linear in the
        costs), so a mapping equal to the reference gives exactly 0."""
        c = {n: v[n] for n in COST_NAMES}
        r, rt = self.ref_data.cycles(c), self.ref_text.cycles(c)
        return (r + self.d_data.cycles(c), r), (rt + self.d_text.cycles(c), rt)


def run_misses(spec: MachineSpec, p: dict[str, Any], dms: DirectMapSet,
               timeline: list[tuple[int, int, Text]], classes: dict[int, ClassCounts],
               text_from: RunMisses | None = None) -> RunMisses:
    """Evaluate every sample of ``timeline`` and the reference with the estimates ``p``;
    with ``text_from``, take the text side from it instead (one evaluation less a sample)."""
    s = _exponent(p["dist"], p["s"])
    pt = float(p["pt_cache_kib"] << 10)
    geo = spec.tlb_geometry
    share = p["stlb_share"]
    ref_data = evaluate_data(geo, data_pops(boot_classes(dms), p), s, pt, 1 - share)
    data: list[tuple[float, Misses]] = []
    text: list[tuple[float, Misses, Misses]] = []
    for weight, pos, t in timeline:
        data.append((weight, evaluate_data(geo, data_pops(classes[pos], p), s, pt, 1 - share)))
        if text_from is None:
            text.append((weight, evaluate_text(geo, text_pops(t, p, False), s, pt, share),
                         evaluate_text(geo, text_pops(t, p, True), s, pt, share)))
    total = float(sum(w for w, _ in data))
    zero = Misses(0.0, 0.0, 0.0)
    if text_from is not None:
        return RunMisses(data=_mean_delta(((w, m, zero) for w, m in data), total),
                         text=text_from.text, d_data=_mean_delta(((w, m, ref_data)
                                                                 for w, m in data), total),
                         d_text=text_from.d_text, ref_data=ref_data,
                         ref_text=text_from.ref_text)
    return RunMisses(
        data=_mean_delta(((w, m, zero) for w, m in data), total),
        text=_mean_delta(((w, m, zero) for w, m, _ in text), total),
        d_data=_mean_delta(((w, m, ref_data) for w, m in data), total),
        d_text=_mean_delta(((w, m, r) for w, m, r in text), total),
        ref_data=ref_data,
        ref_text=_mean_delta(((w, r, zero) for w, _, r in text), total),
    )


def tlb_metrics(sampler: TlbSampler, spec: MachineSpec, costs: dict[str, float],
                params: dict[str, Any], seed: int) -> dict[str, float]:
    """The TLB metrics of a run (see :mod:`framework.tlb.settings`).

    The band takes the corners of :data:`~framework.tlb.settings.BAND` for the central
    stream and, with ``mix_band``, also for the stream with every input of
    :data:`~framework.tlb.settings.MIX_BAND` at its low, then at its high end (data side;
    the text side stays at the central stream's).
    """
    p = params
    dms = direct_map_set(spec, p["kernel_ws_mib"], p["slab_share"], seed)
    timeline = sampler.timeline()
    maps = replay(sampler.dm, (pos for _, pos, _ in timeline))
    classes = {pos: classify(dms, sampler.dm.gbpages, *maps[pos]) for pos in maps}
    central = run_misses(spec, p, dms, timeline, classes)
    values = {**{n: float(p[n]) for n in BAND if n in p}, **{n: costs[n] for n in COST_NAMES}}
    (c, r), (ct, rt) = central.cycles(values)
    ends = [band(central.cycles, values)]
    for end in (0, 1) if p.get("mix_band") else ():
        mixed = {**p, **{n: min(1.0, p[n] * MIX_BAND[n][end]) for n in MIX_BAND}}
        ends.append(band(run_misses(spec, mixed, dms, timeline, classes, central).cycles,
                         values))
    return {
        "dtlb_miss_rate": central.data.l1,
        "stlb_miss_rate": central.data.walks,
        "walk_cycles_per_access": (central.data.walks_cached * costs["walk_cached"]
                                   + central.data.walks_dram * costs["walk_dram"]),
        "est_slowdown_pct": slowdown_pct((c, r), (ct, rt), values),
        "est_slowdown_pct_low": min(lo for lo, _ in ends),
        "est_slowdown_pct_high": max(hi for _, hi in ends),
        "itlb_miss_rate": central.text.l1,
        "itlb_est_slowdown_pct": slowdown_pct((0.0, 0.0), (ct, rt), values),
    }


def _mean_delta(parts: Iterable[tuple[float, Misses, Misses]], total: float) -> Misses:
    """The event-weighted mean of ``a - b`` per miss component over ``(weight, a, b)``."""
    l1 = cached = dram = 0.0
    for w, a, b in parts:
        if a is b:  # the same cached evaluation: exactly no difference
            continue
        l1 += w * (a.l1 - b.l1)
        cached += w * (a.walks_cached - b.walks_cached)
        dram += w * (a.walks_dram - b.walks_dram)
    return Misses(l1 / total, cached / total, dram / total)
