"""Zones, the MMIO hole, the boot direct map, per-cpu lists and watermarks, by hand.

Every expected figure is derived in the docstring from the v6.3 rules named in
framework/kernel/e820.py, framework/kernel/pcp.py and framework/kernel/watermark.py.
"""

from __future__ import annotations

import pytest

from framework.kernel.consts import MIGRATE_UNMOVABLE
from framework.kernel.e820 import ZoneType, build_layout
from framework.kernel.kernel import Kernel
from framework.kernel.pcp import zone_batchsize, zone_highsize
from framework.kernel.watermark import min_free_kbytes
from framework.machine.costs import resolve_costs
from framework.machine.spec import MachineSpec

GIB = 1 << 18  # pages


def _kernel(**fields: object) -> Kernel:
    fields.setdefault("state", "fresh")
    spec = MachineSpec(name="t", **fields)  # type: ignore[arg-type]
    return Kernel(spec, resolve_costs({}))


def test_layout_of_16_gib_with_the_default_hole() -> None:
    """16 GiB, a 1 GiB hole: RAM [0, 3 GiB) and [4, 17 GiB). ZONE_DMA [0, 16 MiB) = 4096
    pages, ZONE_DMA32 [16 MiB, 3 GiB), ZONE_NORMAL [4 GiB, 17 GiB)."""
    layout = build_layout(16 * GIB, 1, GIB, 16384)
    assert layout.ram == ((0, 3 * GIB), (4 * GIB, 17 * GIB))
    spans = [(z.zone_type, z.start_pfn, z.end_pfn) for z in layout.zones]
    assert spans == [(ZoneType.ZONE_DMA, 0, 4096), (ZoneType.ZONE_DMA32, 4096, 3 * GIB),
                     (ZoneType.ZONE_NORMAL, 4 * GIB, 17 * GIB)]
    assert not layout.is_ram(3 * GIB) and layout.is_ram(4 * GIB)


def test_nodes_split_ram_in_address_order() -> None:
    """64 GiB on 2 nodes, 1 GiB hole: node 0 holds RAM [0, 3 GiB) + [4, 33 GiB) (32 GiB),
    node 1 [33, 65 GiB); node 1 has only ZONE_NORMAL."""
    layout = build_layout(64 * GIB, 2, GIB, 16384)
    assert [(z.node, z.name, z.start_pfn // GIB, z.end_pfn // GIB) for z in layout.zones][1:] \
        == [(0, "DMA32", 0, 3), (0, "Normal", 4, 33), (1, "Normal", 33, 65)]


def test_fresh_16_gib_first_secretmem_page_splits_a_1g_page() -> None:
    """The first GFP_KERNEL page comes from ZONE_NORMAL: pfn 4 GiB, inside a 1 GiB entry.
    Making it invalid splits the PUD (512 PMDs, one of them then split into 512 PTEs):
    DirectMap4k +512 * 4 = +2048 kB, DirectMap2M +511 * 2048 = +1046528 kB, DirectMap1G
    -1048576 kB; one level-3 and one level-2 split."""
    k = _kernel(mem_gib=16, pcp=False)
    before = k.directmap.meminfo()
    pfn = k.alloc_pages(0, MIGRATE_UNMOVABLE, zero=True)
    assert pfn == 4 * GIB
    assert k.set_direct_map_invalid_noflush(pfn) == 0
    after = k.directmap.meminfo()
    assert {key: after[key] - before[key] for key in after} == {
        "DirectMap4k": 2048, "DirectMap2M": 1046528, "DirectMap1G": -1048576}
    assert (k.ledger.direct_map_level3_splits, k.ledger.direct_map_level2_splits) == (1, 1)


@pytest.mark.parametrize(("directmap", "expect", "tables"), [
    ("1g", {"DirectMap4k": 2048, "DirectMap2M": 511 * 2048, "DirectMap1G": 15 << 20}, 2),
    ("2m", {"DirectMap4k": 2048, "DirectMap2M": (16 * 512 - 1) * 2048, "DirectMap1G": 0}, 17),
])
def test_boot_direct_map_over_ram_only(directmap: str, expect: dict[str, int],
                                       tables: int) -> None:
    """init_mem_mapping() over RAM: the first 2 MiB with 4 KiB pages, the rest of GiB 0 with
    2 MiB pages; with 1 GiB pages, GiBs 1, 2 and 4..16 (15) as 1 GiB entries; the hole (GiB 3)
    has none. Page tables below the PUDs: 1 PTE table + 1 PMD table (GiB 0), or with 2 MiB
    pages one PMD table per RAM GiB (16). The total is 16 GiB either way."""
    k = _kernel(mem_gib=16, directmap=directmap)
    assert k.directmap.meminfo() == expect
    assert sum(expect.values()) == 16 << 20
    assert k.directmap.pagetable_pages() == tables
    assert k.directmap.recount() == (k.directmap.nr_4k, k.directmap.nr_2m, k.directmap.nr_1g)


def test_watermarks_of_a_64_gib_machine() -> None:
    """min_free_kbytes: sqrt(64 GiB in kB * 16) = 32768 kB, below khugepaged's 512 pages x
    3 zones x (2 + 9) = 16896 pages = 67584 kB, which wins. Each zone's min is its managed
    share of 16896 pages; low and high add max(min / 4, managed / 1000) once and twice."""
    assert min_free_kbytes(16 * GIB, 3) == 67584
    k = _kernel(mem_gib=64)
    zones = k.zones
    total = sum(z.managed for z in zones)
    for z in zones:
        low = 16896 * z.managed // total
        step = max(low >> 2, z.managed * 10 // 10000)
        assert z.wmark == (low, low + step, low + 2 * step)


def test_lowmem_reserve_protects_dma32_from_normal_allocations() -> None:
    """setup_per_zone_lowmem_reserve(): DMA32 keeps Normal's managed pages / 256 back from
    allocations that could have used ZONE_NORMAL."""
    k = _kernel(mem_gib=16)
    dma32 = next(z for z in k.zones if z.zone_type == ZoneType.ZONE_DMA32)
    normal = next(z for z in k.zones if z.zone_type == ZoneType.ZONE_NORMAL)
    assert dma32.lowmem_reserve[ZoneType.ZONE_NORMAL] == normal.managed // 256
    assert normal.lowmem_reserve == [0, 0, 0]


def test_pcp_high_and_batch() -> None:
    """zone_batchsize(): min(managed / 1024, 256) / 4 = 64, rounddown_pow_of_two(96) - 1 =
    63 for any zone of 1 GiB or more (the 63 real zoneinfo shows); a 16 MiB zone: 4096 / 1024
    = 4, / 4 = 1, rounddown(1) - 1 = 0 (then max(1, 0) = 1). zone_highsize(): the low
    watermark over the node's CPUs, at least 4 batches."""
    assert zone_batchsize(16 * GIB) == 63 and zone_batchsize(GIB) == 63
    assert zone_batchsize(4096) == 0
    assert zone_highsize(23800, 63, 16) == 1487 and zone_highsize(100, 63, 16) == 252


def test_pcp_refill_takes_a_batch_and_free_goes_to_the_head() -> None:
    """A 16 GiB machine, one CPU: the first order-0 UNMOVABLE allocation finds the CPU's list
    empty, so rmqueue_bulk() moves batch = 63 pages from the buddy to it (pfns 4G .. 4G+62,
    in the order __rmqueue() hands them out) and returns the first; the next allocation takes
    4G + 1 from the list. Freeing 4G puts it at the head: the next allocation gets it back."""
    k = _kernel(mem_gib=16, cpus=1)
    first = k.alloc_pages(0, MIGRATE_UNMOVABLE)
    zone = k.zone_of(first)
    assert first == 4 * GIB
    assert zone.pcp_pages() == 62
    assert k.alloc_pages(0, MIGRATE_UNMOVABLE) == 4 * GIB + 1
    k.free_pages(first, 0)
    assert zone.pcp_pages() == 62
    assert k.alloc_pages(0, MIGRATE_UNMOVABLE) == first
    assert k.check_conservation() == 0


def test_pcp_overflow_returns_the_oldest_pages_and_drain_empties() -> None:
    """high for 1 CPU on 16 GiB is the Normal zone's low watermark; freeing pages one at a
    time past it makes free_pcppages_bulk() return a batch (63 << free_factor, clamped) of
    the oldest to the buddy, so the CPU never holds `high` pages after a free. Draining
    (drain_all_pages()) empties every list and conservation still holds."""
    k = _kernel(mem_gib=16, cpus=1)
    pfns = [k.alloc_pages(0, MIGRATE_UNMOVABLE) for _ in range(4000)]
    zone = k.zone_of(pfns[0])
    for pfn in pfns:
        k.free_pages(pfn, 0)
        assert zone.pcp_pages() < zone.high
    assert zone.drain_pages() > 0
    assert zone.pcp_pages() == 0
    assert k.check_conservation() == 0


def test_numa_miss_when_the_preferred_node_cannot_serve() -> None:
    """2 nodes of 1 GiB each, no hole, vm.min_free_kbytes=0: node 1's only zone is DMA32
    [1 GiB, 2 GiB). Allocations preferring node 1 that node 1 cannot serve (its zone is
    exhausted) come from node 0: numa_miss and numa_foreign count them."""
    k = _kernel(mem_gib=2, nodes=2, hole_mib=0, pcp=False, min_free_kbytes=0)
    taken = []
    while True:
        pfn = k.alloc_pages(10, MIGRATE_UNMOVABLE, node=1)
        if pfn < 0 or k.zone_of(pfn).node == 0:
            break
        taken.append(pfn)
    assert pfn >= 0 and k.zone_of(pfn).node == 0
    assert k.ledger.numa_miss == 1 and k.ledger.numa_foreign == 1


def test_end_state_prints_as_proc_and_reads_back() -> None:
    """The run's end state as /proc/buddyinfo + pagetypeinfo text reads back through the
    snapshot reader with the same free counts per zone and order, and the pagetypeinfo
    rows sum to the buddyinfo row (every free block is on one migratetype's list)."""
    from framework.machine.procfs import parse_snapshot
    from framework.procview import proc_record, proc_text

    k = _kernel(mem_gib=16, cpus=2)
    for _ in range(100):
        k.alloc_pages(0, MIGRATE_UNMOVABLE)
    record = proc_record(k)
    snap = parse_snapshot(proc_text(record).splitlines(keepends=True))
    assert [z.free_counts() for z in snap.zones] == [tuple(b["free"])
                                                     for b in record["buddyinfo"]]
    for zone in record["pagetypeinfo"]["zones"]:
        sums = [sum(row[o] for row in zone["free"].values()) for o in range(11)]
        (match,) = [b for b in record["buddyinfo"] if b["zone"] == zone["zone"]]
        assert sums == match["free"]


def test_aged_start_state_matches_its_totals_and_conserves() -> None:
    """machine.state=aged: before anything runs, every zone's free blocks per order are the
    start state's totals (the blocks are described lazily, the counts are not); the direct
    map carries the start state's splits; after allocations, conservation (free + per-cpu +
    allocated + in use from the start + reserved = RAM) holds."""
    from framework.kernel.e820 import build_layout
    from framework.machine.startstate import AgedConfig, AgedState

    k = _kernel(mem_gib=16, state="aged")
    provider = AgedState(build_layout(16 * GIB, 1, GIB, 16384), 0, AgedConfig())
    for zone, span in zip(k.zones, k.page_alloc.layout.zones, strict=True):
        totals = provider.zone_start(span)
        assert [zone.nr_free_at(o) for o in range(11)] == [sum(r) for r in totals.nr_free]
    assert len(k.directmap.split_pmd) > 1 and k.ledger.direct_map_level2_splits == 0
    for _ in range(2000):
        assert k.alloc_pages(0, MIGRATE_UNMOVABLE) >= 0
    assert k.alloc_pages(9, MIGRATE_UNMOVABLE) >= 0
    assert k.check_conservation() == 0


def test_snapshot_start_reports_the_files_buddyinfo(tmp_path: object) -> None:
    """machine.snapshot=FILE: the run's start state (proc_start in the JSON) has exactly the
    file's buddyinfo counts, zone by zone. The machine is sized for the snapshot as
    machine_for_snapshot() proposes it (reserved_mib=0: the snapshot's DMA zone is free)."""
    import json
    from pathlib import Path

    from framework.machine.procfs import read_snapshot
    from framework.machine.startstate import machine_for_snapshot
    from tests.test_cli import run

    path = Path(__file__).parent / "data" / "snapshots" / "buddyinfo-ubuntu-staging-32g.txt"
    fit = machine_for_snapshot(read_snapshot(path))
    proc = run("bench", "--plugins", "baseline", "--workloads", "secretmem", "--format",
               "json", "--set", f"machine.snapshot={path}", "--set",
               f"machine.mem_gib={fit.mem_gib}", "--set", f"machine.nodes={fit.nodes}",
               "--set", f"machine.hole_mib={fit.hole_mib}", "--set",
               f"machine.reserved_mib={fit.reserved_mib}", "--set", "secretmem.processes=2")
    assert proc.returncode == 0, proc.stderr
    start = json.loads(proc.stdout)["runs"][0]["proc_start"]["buddyinfo"]
    snap = read_snapshot(path)
    for rec in snap.zones:
        (got,) = [z["free"] for z in start if (z["node"], z["zone"]) == (rec.node, rec.zone)]
        assert tuple(got) == rec.free_counts()


def test_bad_state_and_contradicting_snapshot_are_one_line() -> None:
    """An unknown machine.state names the allowed values; a snapshot bigger than the machine
    says so in one line, exit 2."""
    from pathlib import Path

    from tests.test_cli import one_line_error, run

    one_line_error(run("bench", "--plugins", "baseline", "--workloads", "secretmem",
                       "--set", "machine.state=old"), "machine.state", "fresh, aged")
    path = Path(__file__).parent / "data" / "snapshots" / "buddyinfo-antgroup-192g-fresh.txt"
    one_line_error(run("bench", "--plugins", "baseline", "--workloads", "secretmem",
                       "--set", f"machine.snapshot={path}", "--set", "machine.mem_gib=4"),
                   "buddyinfo-antgroup-192g-fresh.txt")
