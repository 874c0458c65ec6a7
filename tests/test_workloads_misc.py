"""Workloads bpf, trampolines, pks-pagetables, guest, dma-nokmap and ftrace.

Expected values are derived by hand from each workload's documented rules (module
docstrings): exact event lists for degenerate parameters (sigma 0, one process, one VM, ...),
and means of the documented size distributions computed here from their formulas, compared
with what the events carry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.engine import Cell, freeze_sets, run_cell
from framework.errors import BadParameter, InputError
from framework.params import resolve
from framework.plugins import get_registry
from framework.request import ALLOC, FREE, SAMPLE, WRITE, Event, Request
from framework.workload import Workload
from framework.workloads.bpf import Bpf
from framework.workloads.dma_nokmap import DmaNokmap
from framework.workloads.ftrace import Ftrace, _Replayer
from framework.workloads.ftrace_parse import ALLOC as TRACE_ALLOC
from framework.workloads.ftrace_parse import FREE as TRACE_FREE
from framework.workloads.ftrace_parse import FREE_BATCHED, PageEvent
from framework.workloads.guest import Guest
from framework.workloads.pks_pagetables import PksPagetables
from framework.workloads.trampolines import Trampolines
from tests.conftest import small_spec

GENERATED: tuple[type[Workload], ...] = (Bpf, Trampolines, PksPagetables, Guest, DmaNokmap)


def make(cls: type[Workload], cpus: int = 4, **sets: Any) -> Workload:
    """The workload with ``sets`` resolved as ``--set`` strings would be, on a 4 GiB machine
    with ``cpus`` CPUs (1 for the exact tests: every request then runs on CPU 0; the CPU
    choices are tested in tests/test_workload_cpus.py)."""
    return cls(resolve(cls.name, cls.params, {k: str(v) for k, v in sets.items()}),
               small_spec(cpus=cpus))


def run(workload: Workload, seed: int = 1) -> list[Event]:
    """The events for ``seed``, drawn as the engine draws them."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    return list(workload.events(rng))


def check_lifecycle(events: Iterable[Event]) -> dict[int, Request]:
    """Every write/free is of a live id, no live id is allocated again, nothing is live at
    the end. Returns id -> request of every allocation."""
    live: set[int] = set()
    seen: dict[int, Request] = {}
    for ev in events:
        if ev.op == ALLOC:
            assert ev.id not in live and ev.request is not None
            live.add(ev.id)
            seen[ev.id] = ev.request
        elif ev.op in (FREE, WRITE):
            assert ev.id in live, ev
            if ev.op == FREE:
                live.remove(ev.id)
    assert not live
    return seen


def normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def clipped_lognormal_mean(mean: float, sigma: float, low: float, high: float) -> float:
    """E[min(max(X, low), high)] for X log-normal with E[X] = mean and shape sigma.

    With mu = ln(mean) - sigma^2/2, a = (ln low - mu)/sigma, b = (ln high - mu)/sigma:
    low * Phi(a) + mean * (Phi(b - sigma) - Phi(a - sigma)) + high * (1 - Phi(b)), the middle
    term being the partial expectation of a log-normal between low and high.
    """
    mu = math.log(mean) - sigma * sigma / 2
    a = (math.log(low) - mu) / sigma
    b = (math.log(high) - mu) / sigma
    return (low * normal_cdf(a) + mean * (normal_cdf(b - sigma) - normal_cdf(a - sigma))
            + high * (1 - normal_cdf(b)))


# --- properties of every generated workload ---------------------------------------------------
@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.name)
def test_same_seed_same_events_other_seed_other_events(cls: type[Workload]) -> None:
    workload = make(cls)
    first = run(workload, 7)
    assert first == run(workload, 7)
    assert first == run(make(cls), 7)
    assert first != run(workload, 8)


@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.name)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_everything_freed_by_the_end(cls: type[Workload], seed: int) -> None:
    check_lifecycle(run(make(cls), seed))


@pytest.mark.parametrize("cls", GENERATED, ids=lambda c: c.name)
def test_sample_every(cls: type[Workload]) -> None:
    """One sample after every 10th non-sample event: floor(n / 10) samples, each following
    a multiple of 10 other events."""
    events = run(make(cls, sample_every=10))
    others = 0
    for ev in events:
        if ev.op == SAMPLE:
            assert others and others % 10 == 0
        else:
            others += 1
    assert sum(ev.op == SAMPLE for ev in events) == others // 10


# --- bpf --------------------------------------------------------------------------------------
def test_bpf_one_program_exact() -> None:
    """sigma 0 makes proglen = exp(ln 1000) = 1000 B; progs_per_app 1 makes the geometric
    draw 1; so one app loads one program of 1000 + 8 (header) + 16 (hole) = 1024 B, writes
    the whole image with text_poke_copy, and unloads it. No resident programs (the scale
    before systemd's and the CNI's were added)."""
    events = run(make(Bpf, 1, apps=1, concurrent=1, progs_per_app=1, mean_bytes=1000, sigma=0,
                      systemd_progs=0, host_progs=0))
    req = Request("bpf_prog", 1024, "ROX", False, None, "OWNER")
    assert events == [Event(ALLOC, 1, req), Event(WRITE, 1, None, 1024), Event(FREE, 1)]


def test_bpf_cut_offs() -> None:
    """proglen 10 B is below min_bytes 16, so the request is 16 + 24 = 40 B; 100000 B is
    above max_bytes 65536, so 65536 + 24 = 65560 B."""
    small = run(make(Bpf, apps=1, progs_per_app=1, mean_bytes=10, sigma=0, systemd_progs=0,
                     host_progs=0))
    big = run(make(Bpf, apps=1, progs_per_app=1, mean_bytes=100000, sigma=0, systemd_progs=0,
                   host_progs=0))
    assert small[0].request.size == 40
    assert big[0].request.size == 65560


def test_bpf_sizes_and_group_sizes_follow_the_documented_distribution() -> None:
    """Defaults mean 512 B, sigma 1, cut to [16, 65536]: the clipped mean is
    16 * Phi(a) + 512 * (Phi(b - 1) - Phi(a - 1)) + 65536 * (1 - Phi(b)) with
    mu = ln 512 - 1/2, a = ln 16 - mu, b = ln 65536 - mu: about 512.0 B (the two cuts
    nearly cancel); plus 24 B per request.
    The standard deviation of the log-normal is 512 * sqrt(e - 1) = 671 B, so over ~12000
    programs the standard error is ~6 B: 30 B is five of them. Programs per app are geometric
    with mean 4 (variance (1 - p)/p^2 = 12): over 3000 apps the standard error is 0.063.
    (The scale before the resident programs and 12 programs per endpoint, pinned.)"""
    events = run(make(Bpf, apps=3000, concurrent=40, progs_per_app=4, systemd_progs=0,
                      host_progs=0))
    seen = check_lifecycle(events)
    sizes = [req.size for req in seen.values()]
    assert {(r.site, r.perm, r.zero, r.node, r.freed_by) for r in seen.values()} == {
        ("bpf_prog", "ROX", False, None, "OWNER")}
    expected = clipped_lognormal_mean(512, 1.0, 16, 65536) + 24
    assert abs(expected - 536.1) < 0.5
    assert abs(sum(sizes) / len(sizes) - expected) < 30
    assert min(sizes) >= 40 and max(sizes) <= 65560
    assert abs(len(sizes) / 3000 - 4.0) < 0.3
    writes = {ev.id: ev.arg for ev in events if ev.op == WRITE}
    assert writes == {aid: req.size for aid, req in seen.items()}


def test_bpf_rejects_min_above_max() -> None:
    with pytest.raises(BadParameter, match="min_bytes"):
        make(Bpf, min_bytes=100, max_bytes=50)


# --- trampolines ------------------------------------------------------------------------------
def test_trampolines_bpf_only_one_target_alternates() -> None:
    """bpf_share only, one target, concurrent 1: each attach finds the target empty and
    builds image n (alloc + write of 4096 B); the cap then forces the detach, which leaves no
    program, so the image is freed: alloc n, write n, free n, three times."""
    events = run(make(Trampolines, 1, attaches=3, concurrent=1, kprobe_share=0,
                      ftrace_share=0, bpf_targets=1))
    req = Request("trampoline", 4096, "ROX", False, None, "OWNER")
    expected = []
    for n in (1, 2, 3):
        expected += [Event(ALLOC, n, req), Event(WRITE, n, None, 4096), Event(FREE, n)]
    assert events == expected


def test_trampolines_bpf_rebuild_replaces_the_image() -> None:
    """bpf_trampoline_update(): with one target, every attach or detach that leaves programs
    attached allocates a new image before freeing the old, so at most one image is live
    between events and a free always follows the alloc+write of its successor; images
    allocated = attaches + detaches - (detaches that empty the target)."""
    events = run(make(Trampolines, attaches=400, concurrent=8, kprobe_share=0, ftrace_share=0,
                      bpf_targets=1), seed=3)
    check_lifecycle(events)
    live = 0
    for i, ev in enumerate(events):
        if ev.op == ALLOC:
            live += 1
            assert live <= 2
        elif ev.op == FREE:
            live -= 1
            if live:  # a rebuild: the old image goes right after the new one is written
                assert events[i - 1].op == WRITE and events[i - 2].op == ALLOC
        assert live <= 1 or ev.op in (ALLOC, WRITE)
    assert live == 0


def test_trampolines_kind_sizes_and_shares() -> None:
    """Sizes are 16 B (kprobe slot), 310 B (ftrace ops) and 4096 B (BPF image). kprobe and
    ftrace attaches allocate exactly once, so among 6000 attaches with shares 0.4/0.2/0.4 the
    16 B and 310 B allocations count Binomial(6000, 0.4) and (6000, 0.2): standard deviations
    38 and 31, tolerances 200 and 160 (about five of them)."""
    events = run(make(Trampolines, attaches=6000))
    seen = check_lifecycle(events)
    sizes = [req.size for req in seen.values()]
    assert set(sizes) == {16, 310, 4096}
    assert {(r.site, r.perm, r.zero) for r in seen.values()} == {("trampoline", "ROX", False)}
    assert abs(sizes.count(16) - 2400) < 200
    assert abs(sizes.count(310) - 1200) < 160


def test_trampolines_rejects_all_zero_shares() -> None:
    with pytest.raises(BadParameter, match="share"):
        make(Trampolines, kprobe_share=0, ftrace_share=0, bpf_share=0)


# --- pks-pagetables ---------------------------------------------------------------------------
def test_pks_two_processes_exact() -> None:
    """sigma 0 gives every process exp(ln 5) = 5 pages; with concurrent 1 the first step
    starts a process (none alive), the cap forces the next to end it, and so on: process 1
    allocates and writes ids 1..5 and frees them, process 2 likewise ids 6..10."""
    events = run(make(PksPagetables, 1, processes=2, concurrent=1, mean_pages=5, sigma=0))
    req = Request("pagetable", 4096, "PKS", True, 0, "OWNER")
    expected = []
    for ids in (range(1, 6), range(6, 11)):
        for aid in ids:
            expected += [Event(ALLOC, aid, req), Event(WRITE, aid, None, 4096)]
        expected += [Event(FREE, aid) for aid in ids]
    assert events == expected


def test_pks_footprint_follows_the_documented_distribution() -> None:
    """Mean pages per process: the clipped log-normal mean with mean 32, sigma 1, cut to
    [4, 4096]: 4 * Phi(a) + 32 * (Phi(b - 1) - Phi(a - 1)) + 4096 * (1 - Phi(b)), about 32.07
    (the cut at 4 lifts the 5.7% of draws below it). Standard deviation 32 * sqrt(e - 1) = 42,
    so over 3000 processes the standard error is 0.77: 4 is five of them."""
    events = run(make(PksPagetables, processes=3000))
    seen = check_lifecycle(events)
    expected = clipped_lognormal_mean(32, 1.0, 4, 4096)
    assert 32.0 < expected < 32.2
    assert abs(len(seen) / 3000 - expected) < 4
    assert {req.size for req in seen.values()} == {4096}


def test_pks_rejects_min_above_max() -> None:
    with pytest.raises(BadParameter, match="min_pages"):
        make(PksPagetables, min_pages=10, max_pages=5)


# --- guest ------------------------------------------------------------------------------------
def test_guest_counts_and_teardown() -> None:
    """Two VMs of 8 MiB in 2 MiB folios: 8 / 2 = 4 folios each, 8 allocations of 2 MiB
    (UNMAPPED, not zeroed), each written once; a VM's teardown frees exactly its own folios,
    in fault order, after its last fault."""
    events = run(make(Guest, 1, vms=2, concurrent=2, vm_mib=8, chunk_kib=2048))
    seen = check_lifecycle(events)
    assert len(seen) == 8
    assert {req for req in seen.values()} == {
        Request("guest", 2 << 20, "UNMAPPED", False, 0, "OWNER")}
    frees = [ev.id for ev in events if ev.op == FREE]
    assert sorted(frees) == list(range(1, 9))
    first_vm, second_vm = frees[:4], frees[4:]
    assert first_vm == sorted(first_vm) and second_vm == sorted(second_vm)


def test_guest_defaults_and_touch() -> None:
    """Defaults: 2 VMs x 256 MiB / 2 MiB = 2 x 128 = 256 folios; touch 0.25 faults
    round(128 * 0.25) = 32 per VM, 64 in all; vm_mib 3 with 2 MiB folios rounds up to 2."""
    assert len(check_lifecycle(run(make(Guest)))) == 256
    assert len(check_lifecycle(run(make(Guest, touch=0.25)))) == 64
    assert len(check_lifecycle(run(make(Guest, vms=1, vm_mib=3)))) == 2


def test_guest_peak_is_concurrent_vms() -> None:
    """At most ``concurrent`` VMs live: with 5 VMs of 4 MiB (2 folios) and concurrent 2, at
    most 4 folios are allocated at any time."""
    live = peak = 0
    for ev in run(make(Guest, vms=5, concurrent=2, vm_mib=4)):
        live += (ev.op == ALLOC) - (ev.op == FREE)
        peak = max(peak, live)
    assert peak <= 4


def test_guest_rejects_bad_chunk() -> None:
    with pytest.raises(BadParameter, match="chunk_kib"):
        make(Guest, chunk_kib=3000)


# --- dma-nokmap -------------------------------------------------------------------------------
def test_dma_exact_small_run() -> None:
    """One driver with one probe buffer, one burst of two; min = max = 64 KiB makes every
    buffer exactly 65536 B. Probe allocates id 1, the burst ids 2 and 3 (each written by the
    device), the burst ends (frees 2, 3), then unbind frees 1."""
    events = run(make(DmaNokmap, 1, drivers=1, probe_buffers=1, bursts=1, burst_buffers=2,
                      min_kib=64, max_kib=64))
    req = Request("dma_nokmap", 65536, "UNMAPPED", False, 0, "OWNER")
    expected = []
    for aid in (1, 2, 3):
        expected += [Event(ALLOC, aid, req), Event(WRITE, aid, None, 65536)]
    expected += [Event(FREE, 2), Event(FREE, 3), Event(FREE, 1)]
    assert events == expected


def test_dma_sizes_follow_the_documented_distribution() -> None:
    """Log-uniform on [64 KiB, 4 MiB]: mean (4096 - 64) / ln(64) = 969.5 KiB, standard
    deviation sqrt((4096^2 - 64^2) / (2 ln 64) - 969.5^2) = 1038 KiB; PAGE_ALIGN adds under
    4 KiB. Over 4 * 8 + 2000 * 8 = 16032 buffers the standard error is 8.2 KiB: 40 KiB is
    about five of them."""
    events = run(make(DmaNokmap, bursts=2000))
    seen = check_lifecycle(events)
    sizes = [req.size for req in seen.values()]
    assert len(sizes) == 16032
    assert all(s % 4096 == 0 and 64 << 10 <= s <= 4 << 20 for s in sizes)
    mean_kib = (4096 - 64) / math.log(64)
    assert abs(mean_kib - 969.5) < 0.1
    assert abs(sum(sizes) / len(sizes) / 1024 - mean_kib - 2) < 40


def test_dma_unbind_at_end_off_keeps_probe_buffers() -> None:
    """unbind_at_end=0: the 4 x 8 = 32 probe buffers (ids 1..32) stay live; the rest is freed."""
    events = run(make(DmaNokmap, unbind_at_end=0, bursts=10))
    live = {ev.id for ev in events if ev.op == ALLOC} - {ev.id for ev in events if ev.op == FREE}
    assert live == set(range(1, 33))


# --- ftrace -----------------------------------------------------------------------------------
# Lines in the v6.3 format of /sys/kernel/tracing/trace: "%16s-%-7d [%03d] <irq flags>
# %5lu.%06lu: " then the TP_printk text of include/trace/events/kmem.h.
TRACE_HEAD = """\
# tracer: nop
#
#                                _-----=> irqs-off/BH-disabled
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""
TRACE_BODY = [
    # a: id 1, order 0, movable and zeroed -> site user, 4096 B, zero
    "            bash-1234    [003] d..1.  5678.900001: mm_page_alloc: page=ffffea0000040000"
    " pfn=0x1000 order=0 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_ZERO",
    # b: id 2, order 2, unmovable -> site kernel, 16384 B, not zeroed
    "     kworker/1:2-87      [001] .....  5678.900002: mm_page_alloc: page=ffffea0000080000"
    " pfn=0x2000 order=2 migratetype=0 gfp_flags=GFP_KERNEL",
    # c: frees id 1
    "            bash-1234    [003] d..1.  5678.900003: mm_page_free: page=ffffea0000040000"
    " pfn=0x1000 order=0",
    # d: the batched report of the same page: a duplicate
    "            bash-1234    [003] d..1.  5678.900004: mm_page_free_batched:"
    " page=ffffea0000040000 pfn=0x1000 order=0",
    # e: a page allocated before tracing: unknown
    "            bash-1234    [003] d..1.  5678.900005: mm_page_free: page=ffffea0000240000"
    " pfn=0x9000 order=0",
    # f: frees id 2
    "     kworker/1:2-87      [001] .....  5678.900006: mm_page_free: page=ffffea0000080000"
    " pfn=0x2000 order=2",
    # g: id 3, order 2, split and freed in parts
    "            bash-1234    [003] d..1.  5678.900007: mm_page_alloc: page=ffffea00000c0000"
    " pfn=0x3000 order=2 migratetype=0 gfp_flags=GFP_KERNEL",
    "            bash-1234    [003] d..1.  5678.900008: mm_page_free: page=ffffea00000c0040"
    " pfn=0x3001 order=0",
    "            bash-1234    [003] d..1.  5678.900009: mm_page_free_batched:"
    " page=ffffea00000c0040 pfn=0x3001 order=0",
    "            bash-1234    [003] d..1.  5678.900010: mm_page_free: page=ffffea00000c0080"
    " pfn=0x3002 order=1",
    # id 4 reuses freed page 0x3001 of id 3: not a lost free
    "            bash-1234    [003] d..1.  5678.900011: mm_page_alloc: page=ffffea00000c0040"
    " pfn=0x3001 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
    # the last page of id 3 completes it; then id 4 is freed
    "            bash-1234    [003] d..1.  5678.900012: mm_page_free: page=ffffea00000c0000"
    " pfn=0x3000 order=0",
    "            bash-1234    [003] d..1.  5678.900013: mm_page_free: page=ffffea00000c0040"
    " pfn=0x3001 order=0",
    # h: id 5, then id 6 over it: id 5's free was lost
    "            bash-1234    [003] d..1.  5678.900014: mm_page_alloc: page=ffffea0000100000"
    " pfn=0x4000 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
    "            bash-1234    [003] d..1.  5678.900015: mm_page_alloc: page=ffffea0000100000"
    " pfn=0x4000 order=1 migratetype=0 gfp_flags=GFP_KERNEL",
    # i: id 7, then a free larger than it: mismatched
    "            bash-1234    [003] d..1.  5678.900016: mm_page_alloc: page=ffffea0000140000"
    " pfn=0x5000 order=0 migratetype=0 gfp_flags=GFP_KERNEL",
    "            bash-1234    [003] d..1.  5678.900017: mm_page_free: page=ffffea0000140000"
    " pfn=0x5000 order=3",
    # j: id 8, its second page freed twice
    "            bash-1234    [003] d..1.  5678.900018: mm_page_alloc: page=ffffea0000180000"
    " pfn=0x6000 order=1 migratetype=0 gfp_flags=GFP_KERNEL",
    "            bash-1234    [003] d..1.  5678.900019: mm_page_free: page=ffffea0000180040"
    " pfn=0x6001 order=0",
    "            bash-1234    [003] d..1.  5678.900020: mm_page_free: page=ffffea0000180040"
    " pfn=0x6001 order=0",
    # noise: another event, a failed allocation
    "            bash-1234    [003] d..1.  5678.900021: kmalloc: call_site=kmem_cache_alloc"
    " ptr=00000000deadbeef bytes_req=64 bytes_alloc=64 gfp_flags=GFP_KERNEL",
    "            bash-1234    [003] d..1.  5678.900022: mm_page_alloc: page=0000000000000000"
    " pfn=0x0 order=0 migratetype=0 gfp_flags=GFP_NOWAIT",
]


def write_trace(tmp_path: Path, body: list[str], name: str = "trace.txt") -> str:
    path = tmp_path / name
    path.write_text(TRACE_HEAD + "\n".join(body) + "\n", encoding="utf-8")
    return str(path)


def ftrace(path: str, **sets: Any) -> Ftrace:
    workload = make(Ftrace, path=path, **sets)
    assert isinstance(workload, Ftrace)
    return workload


def test_ftrace_replays_the_hand_written_trace(tmp_path: Path) -> None:
    """Walk through TRACE_BODY by the documented rules:

    ids 1..8 are the eight successful mm_page_alloc lines (the NULL one is a failed
    allocation). Model events: ALLOC 1 (user, 4096, zero), ALLOC 2 (kernel, 16384), FREE 1
    (c), [d duplicate, e unknown], FREE 2 (f), ALLOC 3 (kernel, 16384), [0x3001 partial,
    batched 0x3001 duplicate, 0x3002..3 partial], ALLOC 4 (0x3001 was freed: no lost free),
    0x3000 partial -> 4 of 4 pages freed -> FREE 3, FREE 4, ALLOC 5, FREE 5 (lost) then
    ALLOC 6 (kernel, 8192), ALLOC 7, [order-3 free of an order-0 block: mismatched], ALLOC 8
    (8192), [0x6001 partial, 0x6001 again: double]. Left live: 6, 7, 8, freed at the end.
    Counts: allocs 8, frees 4 (1, 2, 3, 4), unknown 1, batched duplicates 2, partial 4
    (0x3001, 0x3002, 0x3000, 0x6001), double 1, mismatched 1, lost 1, live at end 3.
    """
    workload = ftrace(write_trace(tmp_path, TRACE_BODY))
    user = Request("user", 4096, "RW", True, None, "OWNER")

    def kern(size: int) -> Request:
        return Request("kernel", size, "RW", False, None, "OWNER")

    assert run(workload) == [
        Event(ALLOC, 1, user), Event(ALLOC, 2, kern(16384)), Event(FREE, 1), Event(FREE, 2),
        Event(ALLOC, 3, kern(16384)), Event(ALLOC, 4, kern(4096)), Event(FREE, 3),
        Event(FREE, 4), Event(ALLOC, 5, kern(4096)), Event(FREE, 5),
        Event(ALLOC, 6, kern(8192)), Event(ALLOC, 7, kern(4096)), Event(ALLOC, 8, kern(8192)),
        Event(FREE, 6), Event(FREE, 7), Event(FREE, 8),
    ]
    stats = workload.replay
    assert (stats.allocs, stats.frees, stats.unknown_frees, stats.batched_duplicates,
            stats.partial_frees, stats.double_frees, stats.mismatched_frees, stats.lost_frees,
            stats.unaligned, stats.live_at_end) == (8, 4, 1, 2, 4, 1, 1, 1, 0, 3)
    assert (stats.parse.failed_allocs, stats.parse.other_events, stats.parse.skipped) == (1, 1, 0)


def test_ftrace_free_at_end_off_keeps_the_tail(tmp_path: Path) -> None:
    """free_at_end=0: the same events without the last three frees (ids 6, 7, 8 stay live)."""
    events = run(ftrace(write_trace(tmp_path, TRACE_BODY), free_at_end=0))
    assert len(events) == 13 and events[-1] == Event(ALLOC, 8, Request(
        "kernel", 8192, "RW", False, None, "OWNER"))


BAD = ("            bash-1234    [003] d..1.  5678.901234: mm_page_free: page=0 pfn=74565"
       " order=0")


def test_ftrace_strict_names_the_bad_line(tmp_path: Path) -> None:
    """The bad line is body line 2, after the 5 header lines: line 7 of the file."""
    path = write_trace(tmp_path, [TRACE_BODY[0], BAD, TRACE_BODY[2]])
    with pytest.raises(InputError, match=r"trace\.txt:7: bad pfn '74565'"):
        ftrace(path)


def test_ftrace_non_strict_counts_and_skips(tmp_path: Path) -> None:
    """strict=0: the bad line is counted (skipped 1, line 7) and the rest replays."""
    workload = ftrace(write_trace(tmp_path, [TRACE_BODY[0], BAD, TRACE_BODY[2]]), strict=0)
    assert [ev.op for ev in run(workload)] == [ALLOC, FREE]
    assert workload.replay.parse.skipped == 1
    assert workload.replay.parse.skipped_lines == (7,)


def test_ftrace_unaligned_block(tmp_path: Path) -> None:
    """pfn 0x7001 cannot start an order-1 buddy block: an error naming line 6 when strict;
    skipped and counted otherwise, so its later free is unknown."""
    body = ["            bash-1234    [003] d..1.  5678.900001: mm_page_alloc:"
            " page=ffffea00001c0040 pfn=0x7001 order=1 migratetype=0 gfp_flags=GFP_KERNEL",
            "            bash-1234    [003] d..1.  5678.900002: mm_page_free:"
            " page=ffffea00001c0040 pfn=0x7001 order=1"]
    path = write_trace(tmp_path, body)
    with pytest.raises(InputError, match=r"trace\.txt:6: pfn 0x7001 is not aligned to order 1"):
        ftrace(path)
    workload = ftrace(path, strict=0)
    assert run(workload) == []
    assert (workload.replay.unaligned, workload.replay.unknown_frees) == (1, 1)


def test_ftrace_needs_a_readable_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"ftrace\.path"):
        ftrace("")
    with pytest.raises(InputError, match="no such file"):
        ftrace(str(tmp_path / "missing.txt"))


def test_ftrace_is_not_in_the_default_suite() -> None:
    assert Ftrace.default is False


def page_event(lineno: int, kind: str, pfn: int, order: int) -> PageEvent:
    if kind == TRACE_ALLOC:
        return PageEvent(lineno, 0.0, 0, kind, pfn, order, 0, "GFP_KERNEL")
    return PageEvent(lineno, 0.0, 0, kind, pfn, 0 if kind == FREE_BATCHED else order)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from((TRACE_ALLOC, TRACE_FREE, FREE_BATCHED)),
                          st.integers(0, 63), st.integers(0, 3)), max_size=80))
def test_ftrace_replay_is_consistent_whatever_the_trace(
        raw: list[tuple[str, int, int]]) -> None:
    """Any sequence of page events, however inconsistent (lost, repeated, unaligned), gives
    model events in which every free and write is of a live id and ids are never reused; the
    blocks left live are exactly the allocations not freed."""
    replayer = _Replayer("<t>", strict=False)
    replayer.run([page_event(i, kind, pfn, order) for i, (kind, pfn, order) in enumerate(raw)])
    tail = [Event(FREE, block.aid) for block in replayer.live.values()]
    seen = check_lifecycle(replayer.out + tail)
    assert len(seen) == replayer.counts["allocs"]
    assert replayer.counts["frees"] + replayer.counts["lost_frees"] + len(tail) == len(seen)


class _TracedMachine:
    """A well-behaved traced machine over 64 pages: aligned blocks from free memory,
    whole-block frees (an order-0 one followed by its batched twin, as
    free_unref_page_list() emits them), and split blocks freed page by page, whose freed pages
    may be allocated again while the rest of the block is live."""

    def __init__(self) -> None:
        self.free_pages = set(range(64))
        self.live: dict[int, tuple[int, int]] = {}  # traced pfn -> (order, model id)
        self.split: dict[int, set[int]] = {}  # model id of a split block -> pages not freed
        self.trace: list[PageEvent] = []
        self.expected: list[tuple[str, int]] = []
        self.next_id = 1
        self.order0_frees = 0
        self.page_frees = 0

    def emit(self, kind: str, pfn: int, order: int) -> None:
        self.trace.append(page_event(len(self.trace), kind, pfn, order))

    def alloc(self, order: int, choose: Any) -> None:
        starts = [p for p in range(0, 64, 1 << order)
                  if all(q in self.free_pages for q in range(p, p + (1 << order)))]
        if not starts:
            return
        pfn = choose(starts)
        self.free_pages.difference_update(range(pfn, pfn + (1 << order)))
        self.live[pfn] = (order, self.next_id)
        self.emit(TRACE_ALLOC, pfn, order)
        self.expected.append((ALLOC, self.next_id))
        self.next_id += 1

    def free(self, pfn: int, split: bool) -> None:
        order, aid = self.live.pop(pfn)
        if split and order:  # split_page(): from now on its pages are freed one by one
            self.split[aid] = set(range(pfn, pfn + (1 << order)))
            return
        self.free_pages.update(range(pfn, pfn + (1 << order)))
        self.emit(TRACE_FREE, pfn, order)
        self.expected.append((FREE, aid))
        if order == 0:
            self.order0_frees += 1
            self.emit(FREE_BATCHED, pfn, 0)

    def free_page(self, aid: int, page: int) -> None:
        left = self.split[aid]
        left.remove(page)
        self.free_pages.add(page)
        self.page_frees += 1
        self.emit(TRACE_FREE, page, 0)
        self.emit(FREE_BATCHED, page, 0)
        if not left:
            del self.split[aid]
            self.expected.append((FREE, aid))

    def live_ids(self) -> list[int]:
        return sorted([aid for _, aid in self.live.values()] + list(self.split))


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ftrace_replay_of_a_consistent_trace_matches_it(data: st.DataObject) -> None:
    """Replaying a _TracedMachine trace: a whole-block free frees exactly its block's model
    allocation; a split block's model allocation is freed with its last page; nothing is
    unknown, lost, double or mismatched; every page of a split block is a partial free; every
    batched report is a duplicate; what is left live is what the machine left live."""
    machine = _TracedMachine()
    choose = lambda items: data.draw(st.sampled_from(items))  # noqa: E731
    for _ in range(data.draw(st.integers(0, 80))):
        step = data.draw(st.integers(0, 3))
        if step == 0 and machine.live:
            machine.free(choose(sorted(machine.live)), split=data.draw(st.booleans()))
        elif step == 1 and machine.split:
            aid = choose(sorted(machine.split))
            machine.free_page(aid, choose(sorted(machine.split[aid])))
        else:
            machine.alloc(data.draw(st.integers(0, 3)), choose)
    replayer = _Replayer("<t>", strict=True)
    replayer.run(machine.trace)
    assert [(ev.op, ev.id) for ev in replayer.out] == machine.expected
    counts = replayer.counts
    assert (counts["unknown_frees"], counts["lost_frees"], counts["double_frees"],
            counts["mismatched_frees"]) == (0, 0, 0, 0)
    assert counts["partial_frees"] == machine.page_frees
    assert counts["batched_duplicates"] == machine.order0_frees + machine.page_frees
    assert sorted(block.aid for block in replayer.live.values()) == machine.live_ids()


# --- whole cells through the engine -----------------------------------------------------------
@pytest.mark.parametrize("name", ["bpf", "trampolines", "pks-pagetables", "guest",
                                  "dma-nokmap"])
def test_baseline_cell_has_no_violations(name: str) -> None:
    """Each workload's defaults through the status-quo design on a 4 GiB machine: no
    violation, no failed allocation, every event of the stream fed to the design."""
    reg = get_registry()
    cell = Cell("baseline", name, "default", 1, freeze_sets({"machine": {"mem_gib": "4"}}))
    result = run_cell(cell, reg)
    assert result["violations"] == []
    assert result["metrics"]["alloc_failures"] == 0
    assert result["metrics"]["events"] == len(run(make(reg.workload(name))))


def test_ftrace_cell_has_no_violations(tmp_path: Path) -> None:
    """The hand-written trace through baseline: its 16 model events, no violation."""
    path = write_trace(tmp_path, TRACE_BODY)
    cell = Cell("baseline", "ftrace", "default", 1,
                freeze_sets({"machine": {"mem_gib": "4"}, "ftrace": {"path": path}}))
    result = run_cell(cell, get_registry())
    assert result["violations"] == []
    assert result["metrics"]["events"] == 16
    assert result["metrics"]["alloc_failures"] == 0
