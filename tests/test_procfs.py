"""framework.machine.procfs: /proc buddyinfo, pagetypeinfo, zoneinfo, meminfo text.

Layouts from mm/vmstat.c (frag_show_print, pagetypeinfo_show*, zoneinfo_show_print) and
fs/proc/meminfo.c of v6.3; the real files are tests/data/snapshots/*.txt.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.errors import InputError
from framework.machine.procfs import (
    MAX_LINE,
    NR_ORDERS,
    MemInfo,
    ProcSnapshot,
    ZoneInfo,
    ZoneRecord,
    format_buddyinfo,
    format_snapshot,
    parse_snapshot,
    read_snapshot,
)

SNAPSHOTS = Path(__file__).parent / "data" / "snapshots"
RAW = sorted(p for p in SNAPSHOTS.glob("*.txt")
             if not p.name.startswith("vmstat-") and "yaml" not in p.name)


def parse(text: str) -> ProcSnapshot:
    return parse_snapshot(text.splitlines(keepends=True), "snap.txt")


@pytest.mark.parametrize("path", RAW, ids=[p.name for p in RAW])
def test_every_real_file_parses_and_round_trips(path: Path) -> None:
    snap = read_snapshot(path)
    assert snap.kinds
    assert parse(format_snapshot(snap)) == snap


def test_buddyinfo_values_by_hand() -> None:
    """buddyinfo-rhcos-ocp-master-8g.txt Normal: 356 154 571 302 143 14 7 4 3 2 0, i.e.
    356 + 2*154 + 4*571 + 8*302 + 16*143 + 32*14 + 64*7 + 128*4 + 256*3 + 512*2 = 10852 pages,
    the 'pages free' of the same zone in its zoneinfo."""
    snap = read_snapshot(SNAPSHOTS / "buddyinfo-rhcos-ocp-master-8g.txt")
    normal = snap.zone(0, "Normal")
    assert normal is not None
    assert normal.free == (356, 154, 571, 302, 143, 14, 7, 4, 3, 2, 0)
    assert normal.free_pages() == 10852
    assert [r.zone for r in snap.zones] == ["DMA", "DMA32", "Normal"]


def test_all_four_files_concatenated_in_any_order() -> None:
    """rhcos-ocp-master-8g: the four files of one sosreport, cat'ed in two orders."""
    parts = [(SNAPSHOTS / f"{k}-rhcos-ocp-master-8g.txt").read_text()
             for k in ("meminfo", "zoneinfo", "pagetypeinfo", "buddyinfo")]
    one, two = parse("".join(parts)), parse("".join(reversed(parts)))
    assert one == two
    assert one.kinds == {"buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo"}
    normal = one.zone(0, "Normal")
    assert normal is not None and normal.info is not None and normal.blocks is not None
    assert (normal.info.min, normal.info.low, normal.info.high) == (8684, 10855, 13026)
    assert (normal.info.present, normal.info.managed, normal.info.start_pfn) == (
        1081344, 1042033, 1048576)
    assert normal.blocks == (1557, 530, 25, 0, 0)
    assert one.mt_names == ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")
    assert one.meminfo is not None and one.meminfo.mem_total == 8164548
    assert one.zone(0, "Movable") is not None  # zoneinfo lists the empty zones too


def test_meminfo_fields() -> None:
    snap = read_snapshot(SNAPSHOTS / "meminfo-k8s-v100-gpu-512g.txt")
    assert snap.meminfo == MemInfo(
        mem_total=527787256, mem_free=370712636, cached=45594528, shmem=34363400,
        anon_pages=105219780, anon_huge_pages=0, slab=3007904, s_reclaimable=922780,
        s_unreclaim=2085124, page_tables=951676, kernel_stack=30976,
        direct_map_4k=11855420, direct_map_2m=460660736, direct_map_1g=66060288)


def test_pagetypeinfo_overflow_cell_is_a_lower_bound() -> None:
    """pagetypeinfo_showfree_print stops at 100000 and prints '>100000'."""
    text = ("Free pages count per migrate type at order       0      1      2      3      4"
            "      5      6      7      8      9     10 \n"
            "Node    0, zone   Normal, type      Movable >100000  5  0  0  0  0  0  0  0  0  1\n"
            "\nNumber of blocks type     Unmovable      Movable  Reclaimable \n"
            "Node 0, zone   Normal            1          300            0 \n"
            "Node 0, zone   Normal 150000 5 0 0 0 0 0 0 0 0 1\n")
    snap = parse(text)
    rec = snap.zone(0, "Normal")
    assert rec is not None and rec.capped == {(1, 0)} and rec.free is not None
    assert rec.by_mt == ((0,) * NR_ORDERS, (100000, 5, 0, 0, 0, 0, 0, 0, 0, 0, 1), (0,) * 11)
    assert parse(format_snapshot(snap)) == snap


# --- errors: one line, file:line -------------------------------------------------------------
BUDDY = "Node 0, zone   Normal    100     50      0      0      0      0      0      0      0" \
        "      0      1\n"


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("# c\n" + BUDDY.replace("     1\n", "\n"), 2, "10 free counts; buddyinfo has 11"),
    (BUDDY.replace("100", "1x0"), 1, "bad free count '1x0'"),
    (BUDDY + BUDDY, 2, "second buddyinfo line of node 0 zone Normal"),
    ("hello world\n", 1, "not a line of buddyinfo"),
    ("Page block order: 10\n", 1, "page block order 10"),
    ("MemTotal: 12 kB junk\n", 1, "unexpected 'junk' after MemTotal"),
    ("Node 0, zone   Normal\n  pages free     abc\n", 2, "bad zoneinfo pages free 'abc'"),
    ("x" * (MAX_LINE + 5) + "\n", 1, f"longer than {MAX_LINE}"),
    ("Node 0, zone   Normal, type      Movable 1 2 3 4 5 6 7 8 9 10 11\n", 1,
     "outside the pagetypeinfo free-count table"),
])
def test_malformed_input_names_file_and_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(InputError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"snap.txt:{line}: ") and needle in message, message
    assert "\n" not in message


def test_buddyinfo_and_pagetypeinfo_that_disagree() -> None:
    """buddyinfo says 1 order-10 block (1024 pages + 200); pagetypeinfo 20 order-10 blocks
    (20480 pages): 19456 apart, beyond the 4096-page floor (no zoneinfo: 10% of 20480)."""
    text = ("Node 0, zone   Normal    100     50      0      0      0      0      0      0      0"
            "      0      1\n"
            "Free pages count per migrate type at order 0 1 2 3 4 5 6 7 8 9 10\n"
            "Node 0, zone Normal, type Movable 100 50 0 0 0 0 0 0 0 0 20\n")
    with pytest.raises(InputError, match=r"^snap.txt:3: node 0 zone Normal: pagetypeinfo "
                       r"counts 20680 free pages, buddyinfo \(line 1\) 1224"):
        parse(text)


def test_meminfo_that_contradicts_the_free_lists() -> None:
    """The real ubuntu-staging-32g files: its meminfo was taken after drop_caches (MemFree
    32326996 kB = 8081749 pages) while buddyinfo holds 5283522 pages: 2.8M apart, more than
    10% of MemTotal (823656 pages)."""
    text = "".join((SNAPSHOTS / f"{k}-ubuntu-staging-32g.txt").read_text()
                   for k in ("buddyinfo", "meminfo"))
    with pytest.raises(InputError, match=r"MemFree 32326996 kB is 8081749 pages, the zones' "
                       r"free lists hold 5283522"):
        parse(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope.txt: no such file"):
        read_snapshot(tmp_path / "nope.txt")


# --- round trip -----------------------------------------------------------------------------
_counts = st.tuples(*[st.integers(0, 5000)] * NR_ORDERS)
_zone_names = ("DMA", "DMA32", "Normal")


@st.composite
def snapshots(draw: st.DrawFn) -> ProcSnapshot:
    nodes = draw(st.integers(1, 3))
    zones = []
    with_types = draw(st.booleans())
    with_info = draw(st.booleans())
    for node in range(nodes):
        for name in (_zone_names if node == 0 else ("Normal",)):
            by_mt = draw(st.tuples(_counts, _counts, _counts)) if with_types else None
            free = None
            if by_mt is not None:
                free = tuple(sum(row[o] for row in by_mt) for o in range(NR_ORDERS))
            elif draw(st.booleans()) or not with_info:
                free = draw(_counts)
            rec = ZoneRecord(node, name, free, by_mt, frozenset(),
                             (3, 100, 2) if with_types else None)
            pages = rec.free_pages() or 0
            info = ZoneInfo(pages, 10, 12, 14, pages + 4096, pages + 100, pages) \
                if with_info else None
            zones.append(ZoneRecord(node, name, free, by_mt, frozenset(), rec.blocks, info))
    mem = None
    if draw(st.booleans()):
        free_kib = 4 * sum(r.free_pages() or 0 for r in zones)
        mem = MemInfo(mem_total=free_kib * 2 + 4, mem_free=free_kib,
                      direct_map_4k=draw(st.integers(0, 10**8)))
    kinds = {"buddyinfo"} if any(r.free is not None for r in zones) else set()
    kinds |= {"pagetypeinfo"} if with_types else set()
    kinds |= {"zoneinfo"} if with_info else set()
    kinds |= {"meminfo"} if mem is not None else set()
    mt_names = ("Unmovable", "Movable", "Reclaimable") if with_types else ()
    return ProcSnapshot(tuple(zones), mt_names, mem, frozenset(kinds))


@settings(max_examples=60, deadline=None)
@given(snapshots())
def test_round_trip_snapshot_text_snapshot(snap: ProcSnapshot) -> None:
    if not snap.kinds:
        return
    assert parse(format_snapshot(snap)) == snap


def test_buddyinfo_layout_matches_the_kernel() -> None:
    """frag_show_print: "Node %d, zone %8s " then "%6lu " per order."""
    snap = ProcSnapshot((ZoneRecord(0, "DMA", (1,) * 11),), kinds=frozenset({"buddyinfo"}))
    assert format_buddyinfo(snap) == "Node 0, zone      DMA " + "     1 " * 11 + "\n"
