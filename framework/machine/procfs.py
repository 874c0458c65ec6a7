"""Read and write the text of ``/proc/buddyinfo``, ``pagetypeinfo``, ``zoneinfo`` and
``meminfo`` (Linux v6.3, x86-64), as ``cat`` prints them.

A *snapshot* is any of these files concatenated in any order (``cat /proc/buddyinfo
/proc/pagetypeinfo /proc/zoneinfo /proc/meminfo > machine.txt``). Lines starting with ``#``
are comments (the headers of ``tests/data/snapshots/*.txt``); a line ``--`` (what ``grep -A``
puts between matches) and blank lines are skipped. :func:`read_snapshot` gives a frozen
:class:`ProcSnapshot`; :func:`format_snapshot` writes one back in the kernel's layout, so
``parse_snapshot(format_snapshot(s).splitlines()) == s``.

The layouts, from mm/vmstat.c and fs/proc/meminfo.c (v6.3):

- buddyinfo (``frag_show_print``): ``"Node %d, zone %8s "`` then ``"%6lu "`` per order 0..10.
- pagetypeinfo (``pagetypeinfo_show``, once per node): ``Page block order: 9``, ``Pages per
  block:  512``, the free counts per migratetype (``"Node %4d, zone %8s, type %12s "`` then
  ``"%s%6lu "`` per order: a count reaching 100000 is printed ``>100000``, a lower bound),
  then ``Number of blocks type`` with one row of pageblock counts per zone
  (``"Node %d, zone %8s "`` then ``"%12lu "`` per type), and with CONFIG_PAGE_OWNER
  ``Number of mixed blocks`` rows (read and ignored).
- zoneinfo (``zoneinfo_show_print``): a ``Node %d, zone %8s`` header, then indented
  ``key value`` lines; this module keeps ``pages free``, ``min``, ``low``, ``high``,
  ``spanned``, ``present``, ``managed`` and ``start_pfn`` and ignores the rest.
- meminfo (``meminfo_proc_show``): ``Key:`` then the value, ``kB`` for sizes.

Errors: :class:`~framework.errors.InputError` with one line
``<file>:<line>: <what is wrong>``. Consistency between the files (buddyinfo against
pagetypeinfo, zoneinfo ``pages free`` and meminfo ``MemFree``) is checked within
:data:`TOLERANCE_FRACTION` of the zone's present pages (or of MemTotal), at least
:data:`TOLERANCE_PAGES`: the files of a sosreport are read seconds apart. Reading is streaming
and bounded: lines longer than :data:`MAX_LINE` characters, more than :data:`MAX_LINES` lines
or :data:`MAX_ZONES` zones are errors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import Final

import attrs

from framework.errors import InputError

NR_ORDERS: Final = 11  # MAX_ORDER in v6.3: orders 0..10
PAGEBLOCK_ORDER: Final = 9
PAGEBLOCK_PAGES: Final = 1 << PAGEBLOCK_ORDER
OVERFLOW: Final = 100000  # mm/vmstat.c pagetypeinfo_showfree_print stops counting there
MAX_LINE: Final = 4096
MAX_LINES: Final = 1_000_000
MAX_ZONES: Final = 4096
MAX_COUNT: Final = 1 << 52  # more pages than 64-bit physical addresses hold
TOLERANCE_FRACTION: Final = 0.10
TOLERANCE_PAGES: Final = 4096  # 16 MiB: pcp lists and a few seconds between files
#: include/linux/mmzone.h zone names in ``enum zone_type`` order (x86-64).
ZONE_ORDER: Final = ("DMA", "DMA32", "Normal", "Movable", "Device")
#: mm/page_alloc.c migratetype_names (v6.3, CONFIG_CMA and CONFIG_MEMORY_ISOLATION on).
MIGRATETYPE_NAMES: Final = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA",
                            "Isolate")
#: The meminfo keys kept, as attribute names of :class:`MemInfo`.
MEMINFO_KEYS: Final = {
    "MemTotal": "mem_total", "MemFree": "mem_free", "Cached": "cached", "Shmem": "shmem",
    "AnonPages": "anon_pages", "AnonHugePages": "anon_huge_pages", "Slab": "slab",
    "SReclaimable": "s_reclaimable", "SUnreclaim": "s_unreclaim",
    "PageTables": "page_tables", "KernelStack": "kernel_stack",
    "DirectMap4k": "direct_map_4k", "DirectMap2M": "direct_map_2m",
    "DirectMap1G": "direct_map_1g",
}
KINDS: Final = ("buddyinfo", "pagetypeinfo", "zoneinfo", "meminfo")


@attrs.frozen(slots=True)
class ZoneInfo:
    """The ``/proc/zoneinfo`` figures of one zone, in pages (None: not in the text, as in
    ``grep -A 4`` excerpts that keep only ``pages free`` and the watermarks)."""

    free: int
    min: int | None = None
    low: int | None = None
    high: int | None = None
    spanned: int | None = None
    present: int | None = None
    managed: int | None = None
    start_pfn: int | None = None


@attrs.frozen(slots=True)
class ZoneRecord:
    """What the snapshot says about one zone of one node.

    :ivar free: buddyinfo: free blocks per order (11 counts), or None.
    :ivar by_mt: pagetypeinfo: free blocks ``[mt][order]``, migratetypes in the order of
        :attr:`ProcSnapshot.mt_names`, or None.
    :ivar capped: ``(mt, order)`` cells printed ``>100000`` (the count is a lower bound).
    :ivar blocks: pagetypeinfo: pageblocks per migratetype, or None.
    :ivar info: zoneinfo figures, or None.
    """

    node: int
    zone: str
    free: tuple[int, ...] | None = None
    by_mt: tuple[tuple[int, ...], ...] | None = None
    capped: frozenset[tuple[int, int]] = frozenset()
    blocks: tuple[int, ...] | None = None
    info: ZoneInfo | None = None

    def free_counts(self) -> tuple[int, ...] | None:
        """Free blocks per order: buddyinfo's, else the pagetypeinfo sums."""
        if self.free is not None:
            return self.free
        if self.by_mt is None:
            return None
        return tuple(sum(row[o] for row in self.by_mt) for o in range(NR_ORDERS))

    def free_pages(self) -> int | None:
        """Free pages in the buddy (sum of ``count << order``)."""
        counts = self.free_counts()
        return None if counts is None else sum(c << o for o, c in enumerate(counts))


@attrs.frozen(slots=True)
class MemInfo:
    """The ``/proc/meminfo`` lines kept (kB; None when the file lacks the line)."""

    mem_total: int | None = None
    mem_free: int | None = None
    cached: int | None = None
    shmem: int | None = None
    anon_pages: int | None = None
    anon_huge_pages: int | None = None
    slab: int | None = None
    s_reclaimable: int | None = None
    s_unreclaim: int | None = None
    page_tables: int | None = None
    kernel_stack: int | None = None
    direct_map_4k: int | None = None
    direct_map_2m: int | None = None
    direct_map_1g: int | None = None


@attrs.frozen(slots=True)
class ProcSnapshot:
    """One machine's /proc figures (see the module docstring).

    :ivar zones: one record per (node, zone) seen in any file, by node then zone type.
    :ivar mt_names: the pagetypeinfo migratetype columns (empty without pagetypeinfo).
    :ivar kinds: which of :data:`KINDS` the text held.
    """

    zones: tuple[ZoneRecord, ...] = ()
    mt_names: tuple[str, ...] = ()
    meminfo: MemInfo | None = None
    kinds: frozenset[str] = frozenset()

    def zone(self, node: int, name: str) -> ZoneRecord | None:
        """The record of ``node``'s zone ``name``, or None."""
        for rec in self.zones:
            if rec.node == node and rec.zone == name:
                return rec
        return None

    @property
    def nodes(self) -> int:
        """Number of nodes (highest node id + 1); 0 without zone lines."""
        return max((rec.node for rec in self.zones), default=-1) + 1


# --- parsing ----------------------------------------------------------------------------------
_NUM: Final = r"[0-9]{1,20}"
_ZONE_HEAD: Final = re.compile(r"Node\s+(\d{1,4}),\s+zone\s+(\w{1,16})(?:\s+(.*))?", re.ASCII)
_TYPE_ROW: Final = re.compile(
    r"Node\s+(\d{1,4}),\s+zone\s+(\w{1,16}),\s+type\s+(\w{1,16})\s+(.*)", re.ASCII)
_FREE_HEAD: Final = re.compile(r"Free pages count per migrate type at order((?:\s+\d+)+)",
                               re.ASCII)
_BLOCK_HEAD: Final = re.compile(r"Number of (blocks|mixed blocks) type((?:\s+\w+)+)", re.ASCII)
_PB_ORDER: Final = re.compile(r"Page block order:\s+(\d{1,3})", re.ASCII)
_PB_PAGES: Final = re.compile(r"Pages per block:\s+(\d{1,9})", re.ASCII)
_MEMINFO: Final = re.compile(r"([A-Za-z][\w()]{0,40}):\s+(\d{1,20})(?:\s+kB)?(.*)", re.ASCII)
_ZONEINFO_KEYS: Final = {"pages free": "free", "min": "min", "low": "low", "high": "high",
                         "spanned": "spanned", "present": "present", "managed": "managed",
                         "start_pfn:": "start_pfn"}
_ZONEINFO_KV: Final = re.compile(r"(pages free|min|low|high|spanned|present|managed|"
                                 r"start_pfn:)\s+(\S+)", re.ASCII)


def _count(text: str, what: str) -> int:
    if not re.fullmatch(_NUM, text) or int(text) >= MAX_COUNT:
        raise ValueError(f"bad {what} {text[:24]!r} (want a decimal count)")
    return int(text)


@attrs.define
class _Zone:
    """A zone's figures while parsing, with the line each came from."""

    node: int
    zone: str
    free: tuple[int, ...] | None = None
    free_line: int = 0
    by_mt: dict[int, tuple[int, ...]] = attrs.Factory(dict)
    by_mt_line: int = 0
    capped: set[tuple[int, int]] = attrs.Factory(set)
    blocks: tuple[int, ...] | None = None
    info: dict[str, int] = attrs.Factory(dict)
    info_line: int = 0


class _Parser:
    """A line-at-a-time state machine over the concatenated files."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.zones: dict[tuple[int, str], _Zone] = {}
        self.mt_names: tuple[str, ...] = ()
        self.meminfo: dict[str, int] = {}
        self.meminfo_line = 0
        self.kinds: set[str] = set()
        self.section = ""  # "", "free", "blocks", "mixed", "zoneinfo"
        self.block_names: tuple[str, ...] = ()
        self.current: _Zone | None = None
        self.lineno = 0

    def fail(self, problem: str) -> InputError:
        return InputError(f"{self.source}:{self.lineno}: {problem}")

    def zone(self, node: int, name: str) -> _Zone:
        key = (node, name)
        if key not in self.zones:
            if len(self.zones) >= MAX_ZONES:
                raise self.fail(f"more than {MAX_ZONES} zones")
            self.zones[key] = _Zone(node, name)
        return self.zones[key]

    def feed(self, lineno: int, line: str) -> None:
        self.lineno = lineno
        if len(line) > MAX_LINE:
            raise self.fail(f"line longer than {MAX_LINE} characters")
        text = line.strip()
        if not text or text.startswith("#") or text == "--":
            if not text and self.section in ("free", "blocks", "mixed"):
                self.section = ""
            return
        try:
            self.dispatch(line, text)
        except ValueError as exc:
            raise self.fail(str(exc)) from None

    def dispatch(self, line: str, text: str) -> None:
        indented = line[:1].isspace()
        if indented and self.section == "zoneinfo":
            self.zoneinfo_line(text)
            return
        if text.startswith("Node"):
            self.node_line(text)
            return
        if self.header_line(text):
            return
        match = _MEMINFO.fullmatch(text)
        if match is not None and not indented:
            self.meminfo_entry(match)
            return
        raise ValueError("not a line of buddyinfo, pagetypeinfo, zoneinfo or meminfo: "
                         f"{text[:40]!r}")

    # -- pagetypeinfo headers ---------------------------------------------------------------
    def header_line(self, text: str) -> bool:
        match = _PB_ORDER.fullmatch(text)
        if match:
            if int(match[1]) != PAGEBLOCK_ORDER:
                raise ValueError(f"page block order {match[1]}: x86-64 has {PAGEBLOCK_ORDER}")
            self.kinds.add("pagetypeinfo")
            self.section = ""
            return True
        match = _PB_PAGES.fullmatch(text)
        if match:
            if int(match[1]) != PAGEBLOCK_PAGES:
                raise ValueError(f"{match[1]} pages per block: x86-64 has {PAGEBLOCK_PAGES}")
            return True
        match = _FREE_HEAD.fullmatch(text)
        if match:
            orders = [int(x) for x in match[1].split()]
            if orders != list(range(NR_ORDERS)):
                raise ValueError(f"orders {match[1].strip()!r}: expected 0 .. {NR_ORDERS - 1}")
            self.kinds.add("pagetypeinfo")
            self.section = "free"
            return True
        match = _BLOCK_HEAD.fullmatch(text)
        if match:
            self.block_header(match[1], tuple(match[2].split()))
            return True
        return False

    def block_header(self, kind: str, names: tuple[str, ...]) -> None:
        unknown = [n for n in names if n not in MIGRATETYPE_NAMES]
        if unknown:
            raise ValueError(f"unknown migratetype {unknown[0]!r} (known: "
                             f"{', '.join(MIGRATETYPE_NAMES)})")
        self.section = "blocks" if kind == "blocks" else "mixed"
        self.block_names = names
        self.kinds.add("pagetypeinfo")
        if kind == "blocks":
            self.set_mt_names(names)

    def set_mt_names(self, names: tuple[str, ...]) -> None:
        if self.mt_names and names != self.mt_names:
            raise ValueError(f"migratetypes {' '.join(names)} differ from the earlier "
                             f"{' '.join(self.mt_names)}")
        self.mt_names = names

    # -- "Node N, zone NAME ..." lines ------------------------------------------------------
    def node_line(self, text: str) -> None:
        match = _TYPE_ROW.fullmatch(text)
        if match is not None:
            self.type_row(int(match[1]), match[2], match[3], match[4].split())
            return
        match = _ZONE_HEAD.fullmatch(text)
        if match is None:
            raise ValueError("expected 'Node <n>, zone <name> ...'")
        node, name, rest = int(match[1]), match[2], (match[3] or "").split()
        if not rest:
            self.section = "zoneinfo"
            self.current = self.zone(node, name)
            self.kinds.add("zoneinfo")
            if self.current.info_line:
                raise ValueError(f"second zoneinfo record of node {node} zone {name}")
            self.current.info_line = self.lineno
            return
        if self.section in ("blocks", "mixed") and len(rest) == len(self.block_names) \
                and len(rest) != NR_ORDERS:
            self.block_row(node, name, rest)
            return
        self.buddy_row(node, name, rest)

    def buddy_row(self, node: int, name: str, cols: list[str]) -> None:
        self.section = ""
        if len(cols) != NR_ORDERS:
            raise ValueError(f"{len(cols)} free counts; buddyinfo has {NR_ORDERS} "
                             f"(orders 0..{NR_ORDERS - 1})")
        zone = self.zone(node, name)
        if zone.free is not None:
            raise ValueError(f"second buddyinfo line of node {node} zone {name}")
        zone.free = tuple(_count(c, "free count") for c in cols)
        zone.free_line = self.lineno
        self.kinds.add("buddyinfo")

    def block_row(self, node: int, name: str, cols: list[str]) -> None:
        if self.section == "mixed":
            for col in cols:
                _count(col, "mixed block count")
            return
        zone = self.zone(node, name)
        if zone.blocks is not None:
            raise ValueError(f"second pageblock count line of node {node} zone {name}")
        zone.blocks = tuple(_count(c, "pageblock count") for c in cols)

    def type_row(self, node: int, name: str, mt_name: str, cols: list[str]) -> None:
        if self.section != "free":
            raise ValueError("a 'type' row outside the pagetypeinfo free-count table")
        if mt_name not in MIGRATETYPE_NAMES:
            raise ValueError(f"unknown migratetype {mt_name!r}")
        if len(cols) != NR_ORDERS:
            raise ValueError(f"{len(cols)} free counts; pagetypeinfo has {NR_ORDERS} "
                             f"(orders 0..{NR_ORDERS - 1})")
        zone = self.zone(node, name)
        mt = MIGRATETYPE_NAMES.index(mt_name)
        if mt in zone.by_mt:
            raise ValueError(f"second {mt_name} row of node {node} zone {name}")
        counts = []
        for order, col in enumerate(cols):
            if col.startswith(">"):
                zone.capped.add((mt, order))
                col = col[1:]
            counts.append(_count(col, "free count"))
        zone.by_mt[mt] = tuple(counts)
        zone.by_mt_line = zone.by_mt_line or self.lineno

    # -- zoneinfo and meminfo ---------------------------------------------------------------
    def zoneinfo_line(self, text: str) -> None:
        match = _ZONEINFO_KV.match(text)
        if match is None or self.current is None:
            return  # per-node stats, vm stats, pagesets, protection: not kept
        key = _ZONEINFO_KEYS[match[1]]
        if key in self.current.info:  # a pageset's "high:" has a colon: it never matches
            raise ValueError(f"second zoneinfo '{match[1].rstrip(':')}' of node "
                             f"{self.current.node} zone {self.current.zone}")
        self.current.info[key] = _count(match[2], f"zoneinfo {match[1].rstrip(':')}")

    def meminfo_entry(self, match: re.Match[str]) -> None:
        key, value, rest = match[1], match[2], match[3]
        self.section = ""
        self.kinds.add("meminfo")
        self.meminfo_line = self.meminfo_line or self.lineno
        if key not in MEMINFO_KEYS:
            return  # other keys: any trailing text (annotations) is ignored
        if rest.strip():
            raise ValueError(f"unexpected {rest.strip()[:24]!r} after {key}")
        if key in self.meminfo:
            raise ValueError(f"second {key} line")
        self.meminfo[key] = _count(value, key)


def _zone_order(key: tuple[int, str]) -> tuple[int, int, str]:
    node, name = key
    rank = ZONE_ORDER.index(name) if name in ZONE_ORDER else len(ZONE_ORDER)
    return node, rank, name


def parse_snapshot(lines: Iterable[str], source: str = "<snapshot>") -> ProcSnapshot:
    """Parse concatenated /proc text (see the module docstring).

    :raises InputError: ``<source>:<line>: <what is wrong>`` for a malformed line, too much
        input, or files that disagree beyond the tolerance.
    """
    parser = _Parser(source)
    lineno = 0
    for lineno, line in enumerate(lines, 1):
        if lineno > MAX_LINES:
            raise InputError(f"{source}:{lineno}: more than {MAX_LINES} lines")
        parser.feed(lineno, line)
    if not parser.kinds:
        raise InputError(f"{source}:{lineno}: no buddyinfo, pagetypeinfo, zoneinfo or "
                         "meminfo lines")
    return _finish(parser)


def _finish(parser: _Parser) -> ProcSnapshot:
    zones = []
    for key in sorted(parser.zones, key=_zone_order):
        zones.append(_record(parser, parser.zones[key]))
    meminfo = None
    if parser.meminfo:
        meminfo = MemInfo(**{MEMINFO_KEYS[k]: v for k, v in parser.meminfo.items()})
    snap = ProcSnapshot(tuple(zones), parser.mt_names, meminfo, frozenset(parser.kinds))
    _check_meminfo(parser, snap)
    return snap


def _record(parser: _Parser, zone: _Zone) -> ZoneRecord:
    src = parser.source
    by_mt = None
    if zone.by_mt:
        if not parser.mt_names:
            parser.mt_names = tuple(n for i, n in enumerate(MIGRATETYPE_NAMES)
                                    if any(i in z.by_mt for z in parser.zones.values()))
        columns = [MIGRATETYPE_NAMES.index(n) for n in parser.mt_names]
        missing = [MIGRATETYPE_NAMES[m] for m in zone.by_mt if m not in columns]
        if missing:
            raise InputError(f"{src}:{zone.by_mt_line}: migratetype {missing[0]} is not "
                             "among the 'Number of blocks type' columns")
        by_mt = tuple(zone.by_mt.get(m, (0,) * NR_ORDERS) for m in columns)
        capped = frozenset((columns.index(m), o) for m, o in zone.capped)
    else:
        capped = frozenset()
    info = _zoneinfo(src, zone)
    rec = ZoneRecord(zone.node, zone.zone, zone.free, by_mt, capped, zone.blocks, info)
    _check_zone(src, zone, rec)
    return rec


def _zoneinfo(src: str, zone: _Zone) -> ZoneInfo | None:
    if not zone.info_line:
        return None
    if "free" not in zone.info:
        raise InputError(f"{src}:{zone.info_line}: zoneinfo of node {zone.node} zone "
                         f"{zone.zone} lacks 'pages free'")
    return ZoneInfo(**zone.info)


def _tolerance(a: int, b: int, size: int | None = None) -> int:
    """How far two free-page figures may differ: a share of the zone's (machine's) size when
    known, else of the larger figure; at least TOLERANCE_PAGES."""
    return max(int(TOLERANCE_FRACTION * (size or max(a, b))), TOLERANCE_PAGES)


def _check_zone(src: str, zone: _Zone, rec: ZoneRecord) -> None:
    """Cross-check one zone's files: buddyinfo vs pagetypeinfo vs zoneinfo."""
    where = f"node {rec.node} zone {rec.zone}"
    size = None if rec.info is None else rec.info.present
    share = f"{TOLERANCE_FRACTION:.0%} of {'its' if size else 'the larger'}"
    if rec.free is not None and rec.by_mt is not None:
        buddy = sum(c << o for o, c in enumerate(rec.free))
        typed = sum(sum(row[o] for row in rec.by_mt) << o for o in range(NR_ORDERS))
        lower_bound_only = bool(rec.capped)
        tol = _tolerance(buddy, typed, size)
        if typed > buddy + tol or (not lower_bound_only and buddy > typed + tol):
            raise InputError(f"{src}:{zone.by_mt_line}: {where}: pagetypeinfo counts "
                             f"{typed} free pages, buddyinfo (line {zone.free_line}) {buddy}: "
                             f"more apart than {share} pages")
    if rec.info is not None:
        pages = rec.free_pages()
        if pages is not None and abs(pages - rec.info.free) > _tolerance(
                pages, rec.info.free, size):
            raise InputError(f"{src}:{zone.info_line}: {where}: zoneinfo 'pages free' "
                             f"{rec.info.free}, buddyinfo/pagetypeinfo {pages}: more apart "
                             f"than {share} pages")
        spanned = rec.info.spanned
        if spanned is not None and max(rec.info.free, rec.info.present or 0) > spanned:
            raise InputError(f"{src}:{zone.info_line}: {where}: more pages free or present "
                             f"than spanned ({spanned})")


def _check_meminfo(parser: _Parser, snap: ProcSnapshot) -> None:
    mem = snap.meminfo
    if mem is None or mem.mem_free is None:
        return
    src, line = parser.source, parser.meminfo_line
    if mem.mem_total is not None and mem.mem_free > mem.mem_total:
        raise InputError(f"{src}:{line}: MemFree {mem.mem_free} kB exceeds MemTotal "
                         f"{mem.mem_total} kB")
    pages = [rec.free_pages() for rec in snap.zones]
    if "buddyinfo" not in snap.kinds and "pagetypeinfo" not in snap.kinds:
        return
    total = sum(p for p in pages if p is not None)
    free = mem.mem_free // 4
    size = None if mem.mem_total is None else mem.mem_total // 4
    if abs(total - free) > _tolerance(total, free, size):
        raise InputError(f"{src}:{line}: MemFree {mem.mem_free} kB is {free} pages, the zones' "
                         f"free lists hold {total}: more apart than {TOLERANCE_FRACTION:.0%} "
                         "of MemTotal")


# --- files ------------------------------------------------------------------------------------
def _bounded_lines(path: str) -> Iterator[str]:
    """The file's lines, never reading more than MAX_LINE + 1 characters at once."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        while True:
            line = handle.readline(MAX_LINE + 1)
            if not line:
                return
            yield line


def read_snapshot(path: str | os.PathLike[str]) -> ProcSnapshot:
    """Read and :func:`parse_snapshot` a file.

    :raises InputError: for a missing or unreadable file, or as :func:`parse_snapshot`.
    """
    source = os.fspath(path)
    try:
        return parse_snapshot(_bounded_lines(source), source)
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read: {exc.strerror}") from None


# --- writing ----------------------------------------------------------------------------------
def format_buddyinfo(snap: ProcSnapshot) -> str:
    """``/proc/buddyinfo`` of the zones with free counts (mm/vmstat.c ``frag_show_print``)."""
    out = []
    for rec in snap.zones:
        if rec.free is not None:
            out.append(f"Node {rec.node}, zone {rec.zone:>8} "
                       + "".join(f"{c:6d} " for c in rec.free) + "\n")
    return "".join(out)


def format_pagetypeinfo(snap: ProcSnapshot) -> str:
    """``/proc/pagetypeinfo`` of the zones with per-migratetype counts, node by node."""
    out = []
    for node in range(snap.nodes):
        recs = [r for r in snap.zones if r.node == node and r.by_mt is not None]
        if not recs:
            continue
        out.append(f"Page block order: {PAGEBLOCK_ORDER}\nPages per block:  {PAGEBLOCK_PAGES}"
                   "\n\n")
        out.append(f"{'Free pages count per migrate type at order':<43} "
                   + "".join(f"{o:6d} " for o in range(NR_ORDERS)) + "\n")
        for rec in recs:
            out.extend(_type_rows(snap, rec))
        out.append(f"\n{'Number of blocks type ':<23}"
                   + "".join(f"{n:>12} " for n in snap.mt_names) + "\n")
        for rec in recs:
            if rec.blocks is not None:
                out.append(f"Node {rec.node}, zone {rec.zone:>8} "
                           + "".join(f"{c:12d} " for c in rec.blocks) + "\n")
    return "".join(out)


def _type_rows(snap: ProcSnapshot, rec: ZoneRecord) -> Iterator[str]:
    assert rec.by_mt is not None
    for mt, row in enumerate(rec.by_mt):
        cells = "".join((">" if (mt, o) in rec.capped else "") + f"{c:6d} "
                        for o, c in enumerate(row))
        yield f"Node {rec.node:4d}, zone {rec.zone:>8}, type {snap.mt_names[mt]:>12} {cells}\n"


def format_zoneinfo(snap: ProcSnapshot) -> str:
    """The kept ``/proc/zoneinfo`` lines of each zone with figures (``zoneinfo_show_print``)."""
    out = []
    for rec in snap.zones:
        info = rec.info
        if info is None:
            continue
        out.append(f"Node {rec.node}, zone {rec.zone:>8}\n  pages free     {info.free}\n")
        for key in ("min", "low", "high", "spanned", "present", "managed"):
            value = getattr(info, key)
            if value is not None:
                out.append(f"        {key:<8} {value}\n")
        if info.start_pfn is not None:
            out.append(f"  start_pfn:           {info.start_pfn}\n")
    return "".join(out)


def format_meminfo(snap: ProcSnapshot) -> str:
    """The kept ``/proc/meminfo`` lines (``show_val_kb``: a 16-column label, 8-column value)."""
    if snap.meminfo is None:
        return ""
    out = []
    for key, attr in MEMINFO_KEYS.items():
        value = getattr(snap.meminfo, attr)
        if value is not None:
            out.append(f"{key + ':':<16}{value:>8} kB\n")
    return "".join(out)


def format_snapshot(snap: ProcSnapshot) -> str:
    """buddyinfo, pagetypeinfo, zoneinfo and meminfo text of ``snap``, concatenated."""
    return (format_buddyinfo(snap) + format_pagetypeinfo(snap) + format_zoneinfo(snap)
            + format_meminfo(snap))
