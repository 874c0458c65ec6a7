"""TLB geometries of the modelled cores (entries and ways per level and page size).

Figures are from ``docs/hardware.md``, "TLB geometry" (CPUID dumps in InstLatx64, decoded with
the Intel SDM / AMD APM leaf formats; that section names each dump and the modelled choices).
``ways == 0`` means fully associative. Where a core shares one array between page sizes,
``stlb_shared_4k_2m`` says so; the model then gives 4 KiB and 2 MiB translations the shared
capacity between them (see :mod:`framework.tlb`).
"""

from __future__ import annotations

import attrs


@attrs.frozen(slots=True)
class TlbGeometry:
    """Entries (and ways, 0 = fully associative) of each TLB level per page size."""

    name: str
    source: str
    l1d_4k: int
    l1d_4k_ways: int
    l1d_2m: int
    l1d_2m_ways: int
    l1d_1g: int
    l1d_1g_ways: int
    l1i_4k: int
    l1i_4k_ways: int
    l1i_2m: int
    l1i_2m_ways: int
    stlb_4k: int
    stlb_2m: int
    stlb_1g: int
    stlb_ways: int
    stlb_shared_4k_2m: bool
    l1d_unified: bool = False  # AMD: one fully associative L1 dTLB for every page size


TLB_GEOMETRIES: dict[str, TlbGeometry] = {
    g.name: g
    for g in (
        TlbGeometry(
            name="sapphire-rapids",
            source="docs/hardware.md, TLB geometry: "
            "SPR/Golden Cove CPUID (w7-2475X); 4K L1 64 per CPUID "
            "(perf-book says 96); STLB 1024 4K/2M + 1024 4K/1G arrays",
            l1d_4k=64, l1d_4k_ways=4, l1d_2m=32, l1d_2m_ways=4, l1d_1g=8, l1d_1g_ways=0,
            l1i_4k=256, l1i_4k_ways=8, l1i_2m=32, l1i_2m_ways=8,
            stlb_4k=2048, stlb_2m=1024, stlb_1g=1024, stlb_ways=8, stlb_shared_4k_2m=False,
        ),
        TlbGeometry(
            name="skylake-sp",
            source="docs/hardware.md, TLB geometry: "
            "Xeon Gold 6154 CPUID; STLB 1536 shared 4K+2M "
            "(12-way per Intel manual), 16 1G entries",
            l1d_4k=64, l1d_4k_ways=4, l1d_2m=32, l1d_2m_ways=4, l1d_1g=4, l1d_1g_ways=4,
            l1i_4k=128, l1i_4k_ways=8, l1i_2m=8, l1i_2m_ways=0,
            stlb_4k=1536, stlb_2m=1536, stlb_1g=16, stlb_ways=12, stlb_shared_4k_2m=True,
        ),
        TlbGeometry(
            name="icelake-sp",
            source="docs/hardware.md, TLB geometry: "
            "Xeon Gold 6336Y CPUID; L1 iTLB figure incomplete "
            "(CPUID lists 8 full), 4K iTLB taken as SPR's 256 [E]",
            l1d_4k=64, l1d_4k_ways=4, l1d_2m=32, l1d_2m_ways=4, l1d_1g=8, l1d_1g_ways=0,
            l1i_4k=256, l1i_4k_ways=8, l1i_2m=8, l1i_2m_ways=0,
            stlb_4k=2048, stlb_2m=1024, stlb_1g=1024, stlb_ways=8, stlb_shared_4k_2m=False,
        ),
        TlbGeometry(
            name="zen3",
            source="docs/hardware.md, TLB geometry: "
            "EPYC 7763 CPUID; L1 64 full all sizes; L2 dTLB 2048 "
            "4K/2M (8-15 ways, 8 used), 1G 64 full",
            l1d_4k=64, l1d_4k_ways=0, l1d_2m=64, l1d_2m_ways=0, l1d_1g=64, l1d_1g_ways=0,
            l1i_4k=64, l1i_4k_ways=0, l1i_2m=64, l1i_2m_ways=0,
            stlb_4k=2048, stlb_2m=2048, stlb_1g=64, stlb_ways=8, stlb_shared_4k_2m=True,
            l1d_unified=True,
        ),
        TlbGeometry(
            name="zen4",
            source="docs/hardware.md, TLB geometry: "
            "EPYC 9654 CPUID; L1 72 full all sizes; L2 dTLB 3072 "
            "4K/2M (6-7 ways, 6 used), 1G 64 full",
            l1d_4k=72, l1d_4k_ways=0, l1d_2m=72, l1d_2m_ways=0, l1d_1g=72, l1d_1g_ways=0,
            l1i_4k=64, l1i_4k_ways=0, l1i_2m=64, l1i_2m_ways=0,
            stlb_4k=3072, stlb_2m=3072, stlb_1g=64, stlb_ways=6, stlb_shared_4k_2m=True,
            l1d_unified=True,
        ),
    )
}
