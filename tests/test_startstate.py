"""Start states (framework.machine.startstate, framework.machine.pack): fresh, aged, snapshot.

Hand-derived totals for tiny layouts, structural properties of every block (hypothesis), the
exact reproduction of every real x86-64 buddyinfo in tests/data/snapshots/ (Xen PV dom0s
excluded: their zones are pseudo-physical), and the snapshot round trip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.errors import InputError
from framework.kernel.e820 import Layout, ZoneSpan, build_layout
from framework.kernel.initial import BLOCK_PAGES, Block
from framework.machine.pack import ZoneTarget, pack, place
from framework.machine.procfs import (
    ProcSnapshot,
    ZoneRecord,
    format_buddyinfo,
    parse_snapshot,
    read_snapshot,
)
from framework.machine.startstate import (
    AGED_PARAMS,
    AgedConfig,
    AgedState,
    FreshState,
    SnapshotState,
    machine_for_snapshot,
    usable_blocks,
)

SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"
NATIVE_BUDDYINFO = sorted(p for p in SNAPSHOTS.glob("buddyinfo-*.txt")
                          if "xen-dom0" not in p.name and "yaml" not in p.name)
MIB = 256  # pages


def tiny(mem_mib: int = 32, reserved_mib: int = 4, nodes: int = 1) -> Layout:
    return build_layout(mem_mib * MIB, nodes, 0, reserved_mib * MIB)


def check_block(block: Block) -> None:
    """free + used cover the 1024 pages exactly, each naturally aligned, no two free buddies."""
    pages = bytearray(BLOCK_PAGES)
    free = set(block.free)
    for offset, order, *_ in (*block.free, *block.used):
        assert offset % (1 << order) == 0
        assert not any(pages[offset:offset + (1 << order)])
        pages[offset:offset + (1 << order)] = b"\x01" * (1 << order)
    assert all(pages)
    for offset, order in free:
        assert (offset ^ (1 << order), order) not in free, (offset, order)


def sums(state: FreshState | AgedState | SnapshotState, layout: Layout, zone: ZoneSpan
         ) -> tuple[list[list[int]], list[int]]:
    free = [[0] * 3 for _ in range(11)]
    used = [0] * 4
    for head in usable_blocks(layout, zone):
        block = state.block(zone, head)
        check_block(block)
        for offset, order in block.free:
            free[order][block.mts[offset >> 9]] += 1
        for _, order, use in block.used:
            used[use] += 1 << order
    return free, used


# --- fresh --------------------------------------------------------------------------------------
def test_fresh_state_by_hand() -> None:
    """32 MiB, 4 MiB reserved: DMA = pfns [0, 4096) minus block 0 -> 3 free order-10 movable
    blocks; DMA32 = [4096, 8192) -> 4; nothing used, nothing split."""
    layout = tiny()
    state = FreshState(layout)
    dma, dma32 = layout.zones
    assert state.zone_start(dma).nr_free[10] == (0, 3, 0)
    assert state.zone_start(dma32).nr_free[10] == (0, 4, 0)
    assert sum(map(sum, state.zone_start(dma).nr_free[:10])) == 0
    assert state.zone_start(dma32).used_pages == (0, 0, 0, 0)
    assert list(usable_blocks(layout, dma)) == [1024, 2048, 3072]
    assert state.split_pmds(layout) == frozenset()


# --- packing --------------------------------------------------------------------------------------
def test_place_by_hand() -> None:
    """One order-1 and one order-0 block: the order-1 block takes [0, 2) (split from the
    root down to order 2), its buddy [2, 4) keeps page 3 used and offers page 2: the order-0."""
    assert place((1,) + (0,) * 8) == ((0, 0),)
    assert place((1, 1) + (0,) * 7) == ((0, 1), (2, 0))
    assert place((257,) + (0,) * 8) is None  # 257 order-0 blocks need 514 pages


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=11, max_size=11), st.integers(2, 40))
def test_pack_is_exact_and_valid(counts: list[int], extra: int) -> None:
    """Any counts that leave room: the templates' free blocks sum to the counts exactly."""
    free = tuple((c // 3, c - 2 * (c // 3), c // 3) for c in counts)
    need = counts[10] + counts[9] + sum(c << o for o, c in enumerate(counts[:9])) // 256
    target = ZoneTarget(need + extra, free, (0.1, 0.8, 0.1), (0.6, 0.3, 0.1))
    got = [[0] * 3 for _ in range(11)]
    total = 0
    for template, n in pack(target):
        block = template.block()
        check_block(block)
        total += n
        for offset, order in block.free:
            got[order][block.mts[offset >> 9]] += n
    assert total == need + extra
    assert tuple(map(tuple, got)) == free


# --- aged -----------------------------------------------------------------------------------------
def test_aged_totals_equal_the_sums_over_blocks() -> None:
    layout = build_layout(6 << 18, 1, 512 * MIB, 64 * MIB)
    state = AgedState(layout, seed=3)
    for zone in layout.zones:
        free, used = sums(state, layout, zone)
        start = state.zone_start(zone)
        assert tuple(map(tuple, free)) == start.nr_free
        assert tuple(used) == start.used_pages


def test_aged_default_shares() -> None:
    """64 GiB: free memory near aged_free_pct = 4% of ZONE_NORMAL, 1.5% of it in order >= 9,
    most used memory page cache (55 of the 96 used per cent)."""
    layout = build_layout(64 << 18, 1, 512 * MIB, 64 * MIB)
    normal = layout.zones[-1]
    start = AgedState(layout, seed=1).zone_start(normal)
    free = sum(sum(row) << o for o, row in enumerate(start.nr_free))
    high = sum(sum(row) << o for o, row in enumerate(start.nr_free) if o >= 9)
    pages = len(usable_blocks(layout, normal)) * BLOCK_PAGES
    assert 0.035 < free / pages < 0.045
    assert 0.010 < high / free < 0.020
    assert 0.5 < start.used_pages[0] / (pages - free) < 0.65


def test_aged_is_deterministic_per_seed() -> None:
    layout = build_layout(8 << 18, 1, 512 * MIB, 64 * MIB)
    normal = layout.zones[-1]
    heads = list(usable_blocks(layout, normal))[:64]
    one = [AgedState(layout, 7).block(normal, h) for h in heads]
    assert one == [AgedState(layout, 7).block(normal, h) for h in reversed(heads)][::-1]
    assert one != [AgedState(layout, 8).block(normal, h) for h in heads]
    assert AgedState(layout, 7).split_pmds(layout) == AgedState(layout, 7).split_pmds(layout)


def test_aged_split_pmds() -> None:
    """350 regions: 4 in the kernel image (16, 32, 40, 54 MiB), the rest in the first 4 GiB
    of ZONE_NORMAL (2 MiB regions 2048 .. 4095): so at most 4 level-3 splits there."""
    layout = build_layout(64 << 18, 1, 512 * MIB, 64 * MIB)
    splits = AgedState(layout, seed=1).split_pmds(layout)
    assert len(splits) == 350
    assert {8, 16, 20, 27} <= splits
    assert all(2048 <= r < 4096 for r in splits - {8, 16, 20, 27})


def test_aged_params_are_typed_and_sourced() -> None:
    names = {p.name for p in AGED_PARAMS}
    assert names == {"aged_" + a.name for a in AgedConfig.__attrs_attrs__}
    config = AgedConfig.from_params({p.name: p.default for p in AGED_PARAMS})
    assert config == AgedConfig()


# --- snapshot -------------------------------------------------------------------------------------
def test_snapshot_state_by_hand() -> None:
    """DMA of a 32 MiB machine, nothing reserved: 4 blocks. The file's 2 order-10 blocks take
    2; its order-9 block half of a third, whose other half holds the 2 order-0 blocks. Used:
    4096 - (2*1024 + 512 + 2) = 1534 pages."""
    layout = tiny(reserved_mib=0)
    snap = parse_snapshot(["Node 0, zone      DMA      2      0      0      0      0      0"
                           "      0      0      0      1      2 \n",
                           "Node 0, zone    DMA32      0      0      0      0      0      0"
                           "      0      0      0      0      4 \n"])
    state = SnapshotState(layout, snap)
    dma = layout.zones[0]
    start = state.zone_start(dma)
    assert tuple(sum(row) for row in start.nr_free) == (2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2)
    assert sum(start.used_pages) == 1534
    free, used = sums(state, layout, dma)
    assert tuple(map(tuple, free)) == start.nr_free and tuple(used) == start.used_pages


@pytest.mark.parametrize("path", NATIVE_BUDDYINFO, ids=[p.name for p in NATIVE_BUDDYINFO])
def test_every_native_buddyinfo_is_reproduced_exactly(path: Path) -> None:
    snap = read_snapshot(path)
    fit = machine_for_snapshot(snap)
    layout = build_layout(fit.mem_gib << 18, fit.nodes, fit.hole_mib * MIB,
                          fit.reserved_mib * MIB)
    state = SnapshotState(layout, snap)
    for rec in snap.zones:
        zone = next(z for z in layout.zones if z.node == rec.node and z.name == rec.zone)
        counts = tuple(sum(row) for row in state.zone_start(zone).nr_free)
        assert counts == rec.free


def test_machine_for_snapshot_uses_memtotal_and_zoneinfo() -> None:
    """rhcos-ocp-master-8g: MemTotal 8164548 kB = 7.79 GiB -> 8 GiB; DMA + DMA32 present
    3999 + 1011520 = 1015519 pages -> 1015808 (4 MiB steps) -> hole (1048576 - 1015808) * 4
    KiB = 128 MiB."""
    text = "".join((SNAPSHOTS / f"{k}-rhcos-ocp-master-8g.txt").read_text()
                   for k in ("buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo"))
    snap = parse_snapshot(text.splitlines(keepends=True))
    fit = machine_for_snapshot(snap)
    assert (fit.mem_gib, fit.nodes, fit.hole_mib, fit.reserved_mib) == (8, 1, 128, 0)
    layout = build_layout(8 << 18, 1, 128 * MIB, 0)
    state = SnapshotState(layout, snap)
    normal = layout.zones[-1]
    start = state.zone_start(normal)
    assert tuple(sum(r) for r in start.nr_free) == (356, 154, 571, 302, 143, 14, 7, 4, 3, 2, 0)
    # pagetypeinfo's Normal Unmovable row scaled to buddyinfo: order 1 is 155 of 155+3+9 =
    # 167 typed blocks against buddyinfo's 154 -> 154*155/167 = 142.9 -> 143 (largest rest)
    assert start.nr_free[1] == (143, 3, 8)
    # DirectMap4k 137 MiB = 140288 kB -> 68 regions beyond the boot 4 KiB head
    assert len(state.split_pmds(layout)) == 140288 // 2048 - 1


@pytest.mark.parametrize(("text", "needle"), [
    ("Node 1, zone   Normal 1 0 0 0 0 0 0 0 0 0 0\n", "the snapshot has 2 node(s), the machine 1"),
    ("Node 0, zone   Normal 1 0 0 0 0 0 0 0 0 0 0\n", "zone Normal holds pages, the machine"),
    ("Node 0, zone    DMA32 0 0 0 0 0 0 0 0 0 0 9\n", "9 free order-10 and 0 order-9 blocks"),
])
def test_snapshot_that_contradicts_the_machine(text: str, needle: str) -> None:
    with pytest.raises(InputError) as info:
        SnapshotState(tiny(), parse_snapshot([text]), source="snap.txt")
    assert needle in str(info.value) and "\n" not in str(info.value)


_orders = st.lists(st.integers(0, 60), min_size=11, max_size=11)


@settings(max_examples=25, deadline=None)
@given(_orders, _orders)
def test_round_trip_state_text_state(dma32: list[int], normal: list[int]) -> None:
    """snapshot -> SnapshotState -> its buddyinfo text -> snapshot: the same counts."""
    dma32[10] = min(dma32[10], 100)
    snap = ProcSnapshot((ZoneRecord(0, "DMA32", tuple(dma32)), ZoneRecord(0, "Normal",
                                                                        tuple(normal))),
                        kinds=frozenset({"buddyinfo"}))
    fit = machine_for_snapshot(snap)
    layout = build_layout(fit.mem_gib << 18, 1, fit.hole_mib * MIB, 0)
    state = SnapshotState(layout, snap)
    records = tuple(ZoneRecord(z.node, z.name, tuple(sum(r) for r in
                                                     state.zone_start(z).nr_free))
                    for z in layout.zones)
    text = format_buddyinfo(ProcSnapshot(records, kinds=frozenset({"buddyinfo"})))
    back = parse_snapshot(text.splitlines(keepends=True))
    assert back.zone(0, "DMA32") == snap.zones[0]
    assert back.zone(0, "Normal") == snap.zones[1]
