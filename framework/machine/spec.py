"""The modelled machine: memory, NUMA nodes, CPUs, the direct map's largest page, TLB geometry.

A :class:`MachineSpec` is hardware only; kernel policy lives in :mod:`framework.kernel`.
Presets (``framework list`` shows them with their sources) are registered through the
``register_machines`` hook; every field is overridable with ``--set machine.KEY=VALUE``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import attrs

from framework.errors import BadParameter
from framework.machine.startstate import AGED_PARAMS
from framework.machine.tlb import TLB_GEOMETRIES, TlbGeometry
from framework.params import Param, resolve

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT


DIRECTMAP_SIZES: tuple[str, ...] = ("1g", "2m", "4k")

# The machine's parameters and their defaults, written once: MachineSpec's fields take their
# defaults from here, and a preset states only what differs from them.
MACHINE_PARAMS: tuple[Param, ...] = (
    Param("mem_gib", int, 64, "RAM in GiB, split evenly over the nodes", min=1, max=1 << 16),
    Param("nodes", int, 1, "NUMA nodes (RAM split evenly in address order)", min=1, max=64),
    Param("cpus", int, 16, "online CPUs (IPI targets of a global flush)", min=1, max=8192),
    Param("directmap", str, "1g", "largest direct-map page at boot (2m: nogbpages, 4k: debug)",
          choices=DIRECTMAP_SIZES),
    Param("tlb", str, "sapphire-rapids", "TLB geometry", choices=tuple(TLB_GEOMETRIES)),
    Param("reserved_mib", int, 64, "memory reserved at the start of node 0 (kernel image), MiB",
          min=0, max=1 << 20),
    Param("collapse", bool, False, "2025 CPA collapse after set_memory_rox (v6.3: off)"),
    Param("hole_mib", int, 1024, "MMIO hole below 4 GiB, MiB (RAM there is relocated above "
          "4 GiB); a multiple of 4", min=0, max=3072),
    Param("pcp", bool, True, "per-cpu page lists (0: boot pagesets, pages pass straight "
          "through)"),
    Param("kcompactd", bool, True, "kcompactd, woken by kswapd after reclaim for a "
          "high-order request (0: off, direct compaction alone forms high-order blocks)"),
    Param("min_free_kbytes", int, -1, "vm.min_free_kbytes (-1: the kernel's own figure from "
          "RAM and THP)", min=-1, max=1 << 30),
    Param("state", str, "aged", "start state: aged (a server up for days, the default) or "
          "fresh (just booted); framework/machine/startstate.py", choices=("fresh", "aged")),
    Param("snapshot", str, "", "start from the text of /proc/buddyinfo [+ pagetypeinfo, "
          "zoneinfo, meminfo] in this file (overrides state)"),
    *AGED_PARAMS,
)
_DEFAULT = {p.name: p.default for p in MACHINE_PARAMS}


@attrs.frozen(slots=True)
class MachineSpec:
    """One machine. Sizes in GiB/MiB as the field names say; defaults from
    :data:`MACHINE_PARAMS` (the ``default`` preset's figures).

    :param mem_gib: RAM, split evenly over ``nodes`` (zones per node: framework/kernel/e820.py).
    :param directmap: the largest direct-map page at boot: ``1g`` (the default,
        ``CONFIG_X86_DIRECT_GBPAGES`` with PDPE1GB), ``2m`` (``nogbpages``) or ``4k`` (the
        all-4K debug setting of Xing Zhengjun's report, docs/hardware.md "Published results").
    :param tlb: name of a :data:`TLB_GEOMETRIES` entry.
    :param reserved_mib: memory at the start of node 0 never given to the buddy (kernel image,
        memblock reservations).
    :param collapse: model the 2025 CPA collapse after ``set_memory_rox`` (41d88484c71c);
        v6.3 never re-merges, so the default is off.
    :param hole_mib: the MMIO hole below 4 GiB; RAM that would sit there is relocated above
        4 GiB (E820). 1024 MiB from real zoneinfo: ZONE_DMA32 present 782288 of 1044480
        spanned pages (docs/model.md, "Physical layout").
    :param pcp: per-cpu page lists with v6.3's high and batch; off gives boot pagesets
        (high 0, batch 1: every page passes straight through), for hand-derived scenarios.
    :param kcompactd: kswapd wakes kcompactd (framework/kernel/compaction.py); off, only
        direct compaction forms high-order blocks.
    """

    name: str
    mem_gib: int = _DEFAULT["mem_gib"]
    nodes: int = _DEFAULT["nodes"]
    cpus: int = _DEFAULT["cpus"]
    directmap: str = _DEFAULT["directmap"]
    tlb: str = _DEFAULT["tlb"]
    reserved_mib: int = _DEFAULT["reserved_mib"]
    collapse: bool = _DEFAULT["collapse"]
    hole_mib: int = _DEFAULT["hole_mib"]
    pcp: bool = _DEFAULT["pcp"]
    kcompactd: bool = _DEFAULT["kcompactd"]
    min_free_kbytes: int = _DEFAULT["min_free_kbytes"]
    state: str = _DEFAULT["state"]
    snapshot: str = _DEFAULT["snapshot"]
    aged_free_pct: float = _DEFAULT["aged_free_pct"]
    aged_high_order_pct: float = _DEFAULT["aged_high_order_pct"]
    aged_pagecache_pct: float = _DEFAULT["aged_pagecache_pct"]
    aged_anon_pct: float = _DEFAULT["aged_anon_pct"]
    aged_thp_pct: float = _DEFAULT["aged_thp_pct"]
    aged_slab_reclaimable_pct: float = _DEFAULT["aged_slab_reclaimable_pct"]
    aged_boot_pmd_splits: int = _DEFAULT["aged_boot_pmd_splits"]
    aged_split_span_gib: int = _DEFAULT["aged_split_span_gib"]
    summary: str = ""
    source: str = ""

    @property
    def mem_pages(self) -> int:
        """Number of 4 KiB page frames."""
        return self.mem_gib << (30 - PAGE_SHIFT)

    @property
    def gbpages(self) -> bool:
        """The direct map uses 1 GiB pages where aligned (``directmap == "1g"``)."""
        return self.directmap == "1g"

    @property
    def tlb_geometry(self) -> TlbGeometry:
        """The :class:`TlbGeometry` named by :attr:`tlb`."""
        return TLB_GEOMETRIES[self.tlb]


def configure(preset: MachineSpec, given: Mapping[str, Any]) -> MachineSpec:
    """Apply ``--set machine.*`` values to a preset.

    :raises UnknownName, BadParameter: for bad keys or values.
    """
    base = {p.name: getattr(preset, p.name) for p in MACHINE_PARAMS}
    given = _gbpages_alias(given)
    values = resolve("machine", MACHINE_PARAMS, given, base)
    spec = attrs.evolve(preset, **values)
    _check_layout(spec)
    return spec


def _check_layout(spec: MachineSpec) -> None:
    node_gib = spec.mem_gib / spec.nodes
    if node_gib != int(node_gib):
        raise BadParameter(
            f"machine.mem_gib={spec.mem_gib} with machine.nodes={spec.nodes}: "
            "memory must split into whole GiB per node"
        )
    if spec.hole_mib % 4:
        raise BadParameter(f"machine.hole_mib={spec.hole_mib}: expected a multiple of 4 "
                           "(whole MAX_ORDER - 1 blocks)")
    if spec.reserved_mib >= node_gib * 1024:
        raise BadParameter(
            f"machine.reserved_mib={spec.reserved_mib}: must be below one node's "
            f"{int(node_gib) * 1024} MiB"
        )


def _gbpages_alias(given: Mapping[str, Any]) -> Mapping[str, Any]:
    """Deprecated ``machine.gbpages=1|0`` (one release): ``machine.directmap=1g|2m``.

    :raises BadParameter: for a value that is not a boolean, or both keys given.
    """
    if "gbpages" not in given:
        return given
    out = dict(given)
    raw = out.pop("gbpages")
    if "directmap" in out:
        raise BadParameter("machine.gbpages and machine.directmap both given: "
                           "use machine.directmap=1g|2m|4k only")
    on = Param("gbpages", bool, True, "").parse("machine", raw)
    out["directmap"] = "1g" if on else "2m"
    if not _WARNED:  # once per process: configure() runs for every cell
        _WARNED.append(True)
        print(f"framework: machine.gbpages is deprecated, use machine.directmap="
              f"{out['directmap']}", file=sys.stderr)
    return out


_WARNED: list[bool] = []
