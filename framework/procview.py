"""The model's zones as the kernel reports them: /proc/buddyinfo and /proc/pagetypeinfo.

:func:`proc_record` gives the JSON form a run carries at its end (``buddyinfo`` and
``pagetypeinfo``); :func:`proc_text` prints it as ``cat /proc/buddyinfo /proc/pagetypeinfo``
would (``--stats``), through the same writers that read a user's snapshot
(framework/machine/procfs.py), so a run's end state can be fed back as a start state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from framework.kernel.buddy import Zone
from framework.kernel.consts import MAX_ORDER, MIGRATE_MOVABLE, PAGEBLOCK_ORDER
from framework.kernel.e820 import ZONE_NAMES
from framework.kernel.kernel import Kernel
from framework.machine.procfs import (
    ProcSnapshot,
    ZoneRecord,
    format_buddyinfo,
    format_pagetypeinfo,
)

MT_NAMES: tuple[str, ...] = ("Unmovable", "Movable", "Reclaimable")  # mm/page_alloc.c


def _mt_names(kernel: Kernel) -> tuple[str, ...]:
    extra = kernel.page_alloc.nr_migratetypes - len(MT_NAMES)
    return MT_NAMES + tuple(f"Added{i}" for i in range(extra))  # a design's own types


def _pageblocks(zone: Zone, mts: int) -> list[int]:
    """Pageblocks per migratetype (``pagetypeinfo_showblockcount``); absent = MOVABLE."""
    counts = [0] * mts
    total = (zone.end_pfn - zone.start_pfn) >> PAGEBLOCK_ORDER
    for mt in zone.pageblock_mt.values():
        counts[mt] += 1
    counts[MIGRATE_MOVABLE] += total - sum(counts)
    return counts


def proc_record(kernel: Kernel) -> dict[str, Any]:
    """``{"buddyinfo": [...], "pagetypeinfo": {...}}`` of the zones now (JSON-ready)."""
    names = _mt_names(kernel)
    buddy, types = [], []
    for zone in kernel.zones:
        name = ZONE_NAMES[zone.zone_type]
        buddy.append({"node": zone.node, "zone": name,
                      "free": [zone.nr_free_at(o) for o in range(MAX_ORDER)]})
        types.append({"node": zone.node, "zone": name,
                      "free": {names[mt]: [zone.list_len(o, mt) for o in range(MAX_ORDER)]
                               for mt in range(len(names))},
                      "pageblocks": dict(zip(names, _pageblocks(zone, len(names)),
                                             strict=True))})
    return {"buddyinfo": buddy, "pagetypeinfo": {"migratetypes": list(names),
                                                 "zones": types}}


def proc_text(record: Mapping[str, Any]) -> str:
    """The record as ``/proc/buddyinfo`` followed by ``/proc/pagetypeinfo``."""
    names = tuple(record["pagetypeinfo"]["migratetypes"])
    by_zone = {(z["node"], z["zone"]): z for z in record["pagetypeinfo"]["zones"]}
    zones = []
    for b in record["buddyinfo"]:
        t = by_zone[(b["node"], b["zone"])]
        zones.append(ZoneRecord(b["node"], b["zone"], tuple(b["free"]),
                                tuple(tuple(t["free"][n]) for n in names), frozenset(),
                                tuple(t["pageblocks"][n] for n in names)))
    snap = ProcSnapshot(tuple(zones), names, None, frozenset({"buddyinfo", "pagetypeinfo"}))
    return format_buddyinfo(snap) + "\n" + format_pagetypeinfo(snap)
