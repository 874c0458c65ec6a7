"""``background``, running any workload on top of it, and ``server-mix``.

Fast paths: the fragmenting phase is driven against a bare kernel model and the status-quo
path (:func:`drive`, the engine's loop without its checks) to measure what it leaves on the
free lists; whole cells go through the engine where the checks, the composition and the
plugins matter. Free blocks are counted from ``Zone.buddy`` (every free block's head and
order) plus the untouched boot blocks, not through the probe under test.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

os.environ.setdefault("FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD", "1")

from framework.engine import Cell, Runner, freeze_sets, prepare, run_cell
from framework.errors import BadParameter
from framework.kernel.buddy import BUDDY_ORDER_MASK
from framework.kernel.consts import MAX_ORDER, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE
from framework.kernel.kernel import Kernel
from framework.listing import list_registry
from framework.machine.costs import resolve_costs
from framework.machine.spec import MachineSpec
from framework.params import resolve
from framework.plugins import get_registry
from framework.request import ALLOC, FREE, Event, Request
from framework.statusquo import StatusQuo
from framework.sweep import validate_sets
from framework.workload import COMMON_PARAMS, FreeAreaProbe, with_background
from framework.workloads.background import Background, FreeState, free_state

GIB_PAGES = 1 << 18


def spec(mem_gib: int = 1, nodes: int = 1) -> MachineSpec:
    return MachineSpec(name="t", mem_gib=mem_gib, nodes=nodes, cpus=4, reserved_mib=64,
                       hole_mib=0, pcp=False, min_free_kbytes=0, state="fresh")


def buddy_blocks(kernel: Kernel) -> tuple[int, ...]:
    """Free blocks per order read from the zones' buddy maps (independent of the probe)."""
    counts = [0] * MAX_ORDER
    for zone in kernel.zones:
        for info in zone.buddy.values():
            counts[info & BUDDY_ORDER_MASK] += 1
        counts[MAX_ORDER - 1] += zone.nr_pristine()
    return tuple(counts)


def usable(kernel: Kernel) -> FreeState:
    """The free state the load steers by: the buddy's free blocks less, per zone, the free
    pages an ordinary request cannot take (the high watermark plus the zone's
    ``lowmem_reserve`` for a ZONE_NORMAL request, mm/page_alloc.c ``__zone_watermark_ok``),
    read off the zones themselves."""
    reserve = sum(min(z.nr_free_pages, z.wmark[2] + z.lowmem_reserve[-1]) for z in kernel.zones)
    return free_state(buddy_blocks(kernel), reserve)


def drive(work: Background, kernel: Kernel, events: Iterator[Event]) -> list[Event]:
    """The engine's loop without checks: serve each event before pulling the next."""
    path = StatusQuo(kernel)
    live: dict[int, Any] = {}
    seen = []
    for event in events:
        seen.append(event)
        if event.op == ALLOC:
            alloc = path.alloc(event.request)
            assert alloc is not None, f"background asked for what the buddy cannot serve: {event}"
            live[event.id] = alloc
        elif event.op == FREE:
            path.free(live.pop(event.id))
    return seen


def fragmented(target: float, mem_gib: int = 1, nodes: int = 1, seed: int = 1, **given: str
               ) -> tuple[Background, Kernel, list[Event]]:
    machine = spec(mem_gib, nodes)
    kernel = Kernel(machine, resolve_costs({}))
    params = resolve("background", Background.params, {"target": target, "churn": 0, **given})
    work = Background(params, machine)
    work.probe = FreeAreaProbe(kernel)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    return work, kernel, drive(work, kernel, work.events(rng))


def tap(setup: Any, at: Any = None) -> list[Event]:
    """Record the events a prepared cell yields; call ``at(kernel)`` before the first event
    with a positive id (the first event of the workload on top)."""
    seen: list[Event] = []
    inner = setup.events

    def wrapped() -> Iterator[Event]:
        fired = False
        for event in inner:
            if at is not None and not fired and event.id > 0:
                fired = True
                at(setup.kernel)
            seen.append(event)
            yield event

    setup.events = wrapped()
    return seen


def run(plugin: str, workload: str, sets: dict[str, dict[str, str]], machine: str = "default",
        at: Any = None) -> tuple[dict[str, Any], Kernel, list[Event]]:
    """The hand-derived machine: no MMIO hole, boot pagesets, vm.min_free_kbytes=0."""
    fixed = {"hole_mib": "0", "pcp": "0", "min_free_kbytes": "0", "state": "fresh"}
    sets = {**sets, "machine": {**fixed, **sets.get("machine", {})}}
    cell = Cell(plugin, workload, machine, 1, freeze_sets(sets))
    setup = prepare(cell, get_registry())
    seen = tap(setup, at)
    return Runner(setup).run(), setup.kernel, seen


# -- the probe ---------------------------------------------------------------------------
def test_probe_reads_buddyinfo_and_pagetypeinfo() -> None:
    """Fresh 1 GiB, 64 MiB reserved: 1024 - 64 = 960 MiB free = 240 order-10 (4 MiB) blocks.

    One unmovable order-0 page: ``__rmqueue_smallest(0, UNMOVABLE)`` finds nothing; with
    ALLOC_NOFRAGMENT ``__rmqueue_fallback`` looks from order 10 down to 9 and finds the movable
    order-10 block, steals it whole (both pageblocks become UNMOVABLE), and ``expand`` leaves
    one block of each order 0..9 on the unmovable lists. buddyinfo: (1 x 10, 239); the
    unmovable row (1 x 10, 0); the movable row (0 x 10, 239).
    """
    kernel = Kernel(spec(), resolve_costs({}))
    probe = FreeAreaProbe(kernel)
    assert probe.free_blocks() == (0,) * 10 + (240,)
    kernel.alloc_pages(0, MIGRATE_UNMOVABLE)
    assert probe.free_blocks() == (1,) * 10 + (239,)
    assert probe.free_blocks(MIGRATE_UNMOVABLE) == (1,) * 10 + (0,)
    assert probe.free_blocks(MIGRATE_MOVABLE) == (0,) * 10 + (239,)
    assert probe.free_blocks() == buddy_blocks(kernel)


def test_free_state_arithmetic() -> None:
    """2 order-0 + 1 order-9 + 3 order-10 blocks: free = 2 + 512 + 3 x 1024 = 3586 pages,
    large = 3584 pages in 4 blocks, share 3584 / 3586, top order 10."""
    state = free_state((2,) + (0,) * 8 + (1, 3))
    assert (state.free, state.large, state.large_blocks, state.top_order()) == (3586, 3584, 4, 10)
    assert state.share() == pytest.approx(3584 / 3586)
    assert free_state((0,) * MAX_ORDER).share() == 0.0


# -- the fragmenting phase ---------------------------------------------------------------
@pytest.mark.parametrize(("target", "mem_gib", "nodes"),
                         [(0.1, 1, 1), (0.3, 1, 1), (0.0, 1, 1), (0.1, 4, 1), (0.1, 2, 2)])
def test_fragmenting_reaches_target(target: float, mem_gib: int, nodes: int) -> None:
    """The share of free memory in blocks of order >= 9, read off the free lists when the
    fragmenting phase ends, is at or below ``target`` with no tolerance: phase 2 tests
    ``share > target`` first and answers it with a THP fault before anything else, and it
    ends only when that test and ``free < goal`` are both false. It is also no lower than
    ``target - 0.05``: while free memory is below the goal, a THP is freed whenever that keeps
    the share at or below target, so the share climbs towards it in steps of 512 pages
    (0.013 of the 1 GiB goal of 39 321 pages); the slack covers the reclaim that reaches
    the goal in the same stretch. Free memory and the share are those requests can use: the
    pages the watermarks hold back are not counted (:func:`usable`; without that the fill
    ran into the watermark and every later request failed). Free memory ends at or just
    above the goal,
    (1 - used) x RAM = 0.15 x 2^18 x mem_gib pages: the event that lifts it past the goal
    frees at most one THP (512 pages), and a THP fault after it that drops it below the goal
    sends the phase back to freeing; so goal <= free < goal + 512.
    """
    work, kernel, seen = fragmented(target, mem_gib, nodes)
    state = usable(kernel)
    assert state.share() <= target
    assert state.share() >= target - 0.05
    goal = int(0.15 * GIB_PAGES * mem_gib)
    assert goal <= state.free < goal + 512
    assert work.fragment_events == len(seen)
    # cost follows memory / 2 MiB: at most 4 events per pageblock of RAM
    assert len(seen) <= 4 * (GIB_PAGES * mem_gib >> 9)


@settings(max_examples=12, deadline=None)
@given(target=st.floats(0, 1), used=st.floats(0.5, 0.95), seed=st.integers(0, 2**32 - 1))
def test_fragmenting_invariants(target: float, used: float, seed: int) -> None:
    """For any target, load and seed: every request the load makes is served (``drive``
    asserts it), the share ends at or below the target, and every free names a live id."""
    work, kernel, seen = fragmented(target, seed=seed, used=str(used))
    assert usable(kernel).share() <= target
    live: set[int] = set()
    for event in seen:
        if event.op == ALLOC:
            live.add(event.id)
        elif event.op == FREE:
            live.remove(event.id)
    tracked = sum(len(pool.pinned_ids) + len(pool.ids) for pool in work.pools.values())
    assert tracked == len(live)


def test_fragmenting_is_deterministic() -> None:
    """Same seed, same events (the probe reads a deterministic model); another seed differs."""
    _, _, first = fragmented(0.1, seed=7)
    _, _, again = fragmented(0.1, seed=7)
    _, _, other = fragmented(0.1, seed=8)
    assert first == again
    assert first != other


def test_background_alone_through_the_engine() -> None:
    """Fragment, churn with pressure events, release everything: no violation, no failed
    request, and nothing left allocated but the direct map's page tables."""
    result, kernel, seen = run("baseline", "background", {
        "machine": {"mem_gib": "1"},
        "background": {"churn": "600", "pressure_every": "100", "release": "1"}})
    assert result["violations"] == []
    assert result["metrics"]["alloc_failures"] == 0
    assert sum(1 for e in seen if e.op == "pressure") == 6
    assert kernel.nr_allocated == len(kernel.pt_pfns)


# -- composition -------------------------------------------------------------------------
class _FakeLoad:
    """Two fragmenting events, endless churn C1, C2, ..., half a churn event per event."""

    probe = None

    def fragment(self, rng: np.random.Generator, ids: Iterator[int]) -> Iterator[Event]:
        yield Event("sample", next(ids))
        yield Event("sample", next(ids))

    def churn(self, rng: np.random.Generator, ids: Iterator[int]) -> Iterator[Event]:
        while True:
            yield Event("pressure", next(ids))

    def churn_per_event(self) -> float:
        return 0.5


def test_with_background_interleaves_by_credit() -> None:
    """Fragmenting first (ids -1, -2), then after each main event the credit grows by 0.5:
    M1 (0.5), M2 (1.0 -> one churn event, id -3), M3 (0.5)."""
    main = iter([Event("sample", 1), Event("sample", 2), Event("sample", 3)])
    rng = np.random.Generator(np.random.PCG64(0))
    out = [(e.op, e.id) for e in with_background(main, _FakeLoad(), rng)]  # type: ignore[arg-type]
    assert out == [("sample", -1), ("sample", -2), ("sample", 1), ("sample", 2),
                   ("pressure", -3), ("sample", 3)]


def test_background_param_is_common_to_every_workload() -> None:
    """Every registered workload declares ``background`` (default off), ``--set`` accepts
    it, out-of-range values are refused, and ``framework list`` shows it."""
    reg = get_registry()
    listing = list_registry(reg)
    for name, cls in reg.workloads.items():
        assert "background" in {p.name for p in cls.params}, name
        validate_sets({name: {"background": "0.1"}}, reg, "default")
        assert resolve(name, cls.params, {"background": "0.1"})["background"] == 0.1
        with pytest.raises(BadParameter):
            validate_sets({name: {"background": "2"}}, reg, "default")
        assert f"--set {name}.background=" in listing
    assert COMMON_PARAMS[0].default == 0.0
    assert reg.workloads["server-mix"].params[-1].default == 0.1  # its own default: on


LOADED = {"kernel_share": "0.02", "churn_per_event": "0.25"}  # slab over ~10 pageblocks of 1 GiB


def test_secretmem_on_background_splits_more() -> None:
    """baseline secretmem (24 processes) on a fresh 1 GiB machine vs on top of background
    (target 0.1, slab 2% of RAM).

    Fresh: every secretmem page is an unmovable order-0 page. The first one steals a whole
    free MAX_ORDER-1 block (two pageblocks, see the probe test) and the rest are served LIFO
    from its unmovable free lists, so all pages live in one contiguous run of pageblocks:
    the 2 MiB direct-map splits number ceil(peak live pages / 512) + at most one for an
    unaligned edge, a handful (the first GiB is mapped with 2 MiB pages, so no 1 GiB split).
    On background: the load's slab pages (2% of 2^18 pages = 5243 pages, packed by the same
    stealing rule into about 10 pageblocks) were freed at random by reclaim, leaving holes on
    the unmovable free lists in nearly every one of those pageblocks. ``__rmqueue_smallest``
    serves secretmem from those holes first, so its pages scatter over them (and, once the
    holes are used up, over whatever free pageblock or stolen movable hole comes next): each
    first touch of a pageblock whose 2 MiB entry is intact splits it. Hence strictly more
    level-2 splits. The workload's own events are the same with and without the load.
    """
    shares: list[float] = []
    sets = {"machine": {"mem_gib": "1"}, "secretmem": {"processes": "24"}}
    fresh, _, own = run("baseline", "secretmem", sets)
    loaded, _, seen = run(
        "baseline", "secretmem",
        {**sets, "secretmem": {"processes": "24", "background": "0.1"}, "background": LOADED},
        at=lambda k: shares.append(usable(k).share()))
    assert loaded["violations"] == [] and fresh["violations"] == []
    assert loaded["metrics"]["alloc_failures"] == 0
    assert shares and shares[0] <= 0.1  # measured when the first secretmem event arrives
    assert (loaded["metrics"]["direct_map_level2_splits"]
            > fresh["metrics"]["direct_map_level2_splits"])
    assert [e for e in seen if e.id > 0] == [e for e in own if e.id > 0]
    assert loaded["params"]["background"]["target"] == 0.1
    # the load stays out of the workload's own byte metrics (baseline caches nothing)
    for metric in ("requested_bytes", "footprint_bytes"):
        assert loaded["metrics"][metric] == fresh["metrics"][metric]


def test_unmapped_refills_fall_back_below_pageblock_order() -> None:
    """Mike Rapoport: "in a loaded system unmapped_alloc() won't be able to always allocate
    large pages to replenish the cache". gfp-unmapped refills try order 9 first and fall to
    smaller orders only when ``alloc_pages`` finds no free block of order >= 9 at all.

    Fresh 1 GiB: 240 free order-10 blocks, so every refill is an order-9 block: the debugfs
    ``Cached`` row counts refills by order and is zero below order 9. On a background with
    target 0.001 the churn's THP faults take every free order >= 9 block as soon as one
    appears (0.001 x ~39 000 free pages < one block), so refills find none and fall back:
    some refills are below order 9. Without the plugin, the same fact is checked on the
    model: after the fragmenting phase no order-9 request can be served.
    """
    reg = get_registry()
    if "gfp-unmapped" not in reg.allocators:
        _, kernel, _ = fragmented(0.0)
        assert sum(buddy_blocks(kernel)[9:]) == 0
        assert kernel.alloc_pages(9, MIGRATE_UNMOVABLE) == -1
        assert kernel.alloc_pages(0, MIGRATE_UNMOVABLE) != -1
        pytest.skip("gfp-unmapped is not registered: checked on the kernel model only")
    sets = {"machine": {"mem_gib": "1"}, "gfp-unmapped": {"variant": "fixed"},
            "secretmem": {"processes": "24"}}
    fresh, _, _ = run("gfp-unmapped", "secretmem", sets)
    loaded, _, _ = run("gfp-unmapped", "secretmem", {
        **sets, "secretmem": {"processes": "24", "background": "0.001"}, "background": LOADED})
    assert "Cached" in fresh["stats"], "gfp-unmapped stats lost the debugfs Cached row"
    assert sum(fresh["stats"]["Cached"][:9]) == 0 and fresh["stats"]["Cached"][9] > 0
    assert sum(loaded["stats"]["Cached"][:9]) > 0
    assert loaded["metrics"]["alloc_failures"] == 0


# -- server-mix --------------------------------------------------------------------------
def test_server_mix_runs_clean_on_default() -> None:
    """The day on the ``default`` preset (64 GiB) without the load: every site, no violation,
    no failed request, deterministic ids (all positive, unique while live)."""
    result, _, seen = run("baseline", "server-mix", {"server-mix": {"background": "0"}})
    assert result["violations"] == []
    assert result["metrics"]["alloc_failures"] == 0
    sites = {e.request.site for e in seen if e.op == ALLOC}
    assert {"module_text", "bpf_prog", "trampoline", "secretmem", "guest",
            "pagetable"} <= sites
    guest = [e.request for e in seen if e.op == ALLOC and e.request.site == "guest"]
    assert {(r.perm, r.zero, r.size) for r in guest} == {("UNMAPPED", False, 2 << 20)}
    assert all(e.id > 0 for e in seen if e.op == ALLOC)


def test_server_mix_over_background() -> None:
    """A small day over the load on 1 GiB: clean, and the load's events come first."""
    result, _, seen = run("baseline", "server-mix", {
        "machine": {"mem_gib": "1"},
        "server-mix": {"scale": "0.2", "vm_mib": "16", "background": "0.1"},
        "background": {"churn_per_event": "0.2"}})
    assert result["violations"] == []
    assert result["metrics"]["alloc_failures"] == 0
    first_main = next(i for i, e in enumerate(seen) if e.id > 0)
    assert first_main > 0 and all(e.id < 0 for e in seen[:first_main] if e.id)
    assert any(e.id < 0 for e in seen[first_main:])  # churn interleaved


def test_server_mix_is_deterministic() -> None:
    """Same cell, same event stream (sub-streams seeded in a fixed order)."""
    sets = {"machine": {"mem_gib": "1"},
            "server-mix": {"scale": "0.1", "vm_mib": "8", "background": "0"}}
    _, _, first = run("baseline", "server-mix", sets)
    _, _, again = run("baseline", "server-mix", sets)
    assert first == again
    assert len({e.id for e in first if e.op == ALLOC}) == sum(1 for e in first if e.op == ALLOC)


def test_request_sites_of_background() -> None:
    """THPs and folios are movable ``user`` requests, slab is ``kernel`` or ``reclaimable``;
    THPs are 2 MiB."""
    _, _, seen = fragmented(0.1)
    reqs = {e.request for e in seen if e.op == ALLOC}
    assert {r.site for r in reqs} == {"user", "kernel", "reclaimable"}
    assert Request("user", 2 << 20, "RW", True, None) in reqs
    assert max(r.size for r in reqs if r.site in ("kernel", "reclaimable")) <= 8 << 12
    assert list(itertools.islice((e for e in seen if e.op == FREE), 1))


def test_load_stops_at_the_watermarks() -> None:
    """With the watermarks v6.3 sets from the memory size (``vm.min_free_kbytes`` not zeroed,
    per-cpu lists on, the default MMIO hole), the fill stops at what requests can take. It
    used to run into the min watermark: every later request, the load's and the workload's,
    failed, and ``server-mix`` showed zeros. secretmem on the load on 1 GiB: no failed
    allocation, and its pages split 2 MiB mappings as on any machine."""
    cell = Cell("baseline", "secretmem", "default", 1, freeze_sets({
        "machine": {"mem_gib": "1"}, "secretmem": {"processes": "8", "background": "0.1"}}))
    metrics = run_cell(cell, get_registry())["metrics"]
    assert metrics["alloc_failures"] == 0
    assert metrics["direct_map_level2_splits"] > 0
