"""The designs after the v3 thread: ``execmem-rox``, ``grouped-pages``, ``secretmem-pmd``,
``guest-memfd``. Hand-derived scenarios.

Common setting (as tests/test_kernel_scenarios.py): 4 GiB, one node, 4 CPUs (every flush that
reaches all CPUs sends 3 IPIs), gbpages, 64 MiB reserved. Boot: DirectMap4k 2048 kB,
DirectMap2M 511 * 2048 = 1046528 kB, DirectMap1G 3 * 1048576 kB, 2 page-table pages. GiB 0
(pfns 0..262143) is mapped with 2 MiB entries; the buddy holds pfns 16384.. in order-10
MOVABLE blocks, lowest first, so the first order-9 block any migratetype gets is 16384
(PMD 32), and the order-9 rest 16896 (PMD 33) stays on that migratetype's list.
A page-table page for a split is ``alloc_pages(0, UNMOVABLE)``.
"""

from __future__ import annotations

from typing import Any

from framework.engine import Cell, freeze_sets, prepare
from framework.kernel.consts import _PAGE_PKEY
from framework.plugins import get_registry
from framework.request import Request
from framework.statusquo import StatusQuo
from tests.helpers import counters

MACHINE = {"mem_gib": "4", "hole_mib": "0", "pcp": "0",
           "min_free_kbytes": "0", "state": "fresh", "cpus": "4", "nodes": "1",
           "reserved_mib": "64"}
BOOT = {"DirectMap4k": 2048, "DirectMap2M": 1046528, "DirectMap1G": 3145728}
TEXT8K = Request("module_text", 8192, "ROX", False, None, "OWNER")
PKS_PT = Request("pagetable", 4096, "PKS", True, 0, "OWNER")
SECRET = Request("secretmem", 4096, "UNMAPPED", True, None, "GENERIC")
GUEST_2M = Request("guest", 2 << 20, "UNMAPPED", False, 0, "OWNER")
GUEST_4K = Request("guest", 4096, "UNMAPPED", False, 0, "OWNER")


def design(name: str, **params: str) -> StatusQuo:
    """A fresh design on the common machine (checks are the tests' job here)."""
    sets = {"machine": MACHINE, name: params}
    setup = prepare(Cell(name, "secretmem", "default", 0, freeze_sets(sets)), get_registry())
    assert isinstance(setup.allocator, StatusQuo)
    return setup.allocator


def state(d: StatusQuo) -> dict[str, Any]:
    """Counters plus local flushes, text_poke calls, collapses and the design's cache."""
    k = d.kernel
    led = k.ledger
    return {**counters(k), "local": led.tlb_flush_local, "poke": led.text_poke_calls,
            "collapse": led.direct_map_level2_collapses, "cache": d.cache_pages()}


# -- execmem-rox ------------------------------------------------------------------------------
def test_execmem_rox_module_text_life() -> None:
    """One 8 KiB module text: populate, temp RW, restore ROX with collapse, free, release.

    Populate: ``vmalloc(2 MiB, VM_ALLOW_HUGE_VMAP)`` takes one order-9 UNMOVABLE block: the
    UNMOVABLE lists are empty, so the order-10 MOVABLE block 16384 is stolen whole, 16896
    (o9) stays on the UNMOVABLE list, pages 16384..16895. ``set_memory_rox`` over 512 pages:
    CPA 1; the alias of the huge area is processed a PMD at a time, so PMD 32 turns RO in
    place (no split); the alias forces ``flush_tlb_all`` (1). Collapse: nothing is split.
    ``execmem_make_temp_rw``: ``set_memory_nx`` (CPA 2, NX only so no alias, 2 pages <= 33:
    one range flush) then ``set_memory_rw`` (CPA 3): the alias of 16384 and 16385 becomes
    RW one page at a time, which splits PMD 32 (page-table page 16896 from the UNMOVABLE
    list, level-2 split 1, its ``flush_tlb_all`` 2), then the forced ``flush_tlb_all`` (3).
    After the alloc: 3 CPA, 3 full + 1 range flush = 4 x 3 = 12 IPIs, DirectMap4k +2048 kB.

    The loader's write seals: ``execmem_restore_rox`` = ``set_memory_rox`` on 2 pages (CPA 4,
    alias RO again, ``flush_tlb_all`` 4); all 512 PTEs of PMD 32 are RO and present again,
    so the collapse merges them (collapse 1, page-table page freed, ``flush_tlb_all`` 5):
    DirectMap back to boot, 2 page-table pages, 18 IPIs.

    Free: ``text_poke_set`` over 8 KiB (one poke of 2 pages, one local flush); the free tree
    is the whole 2 MiB chunk again, aligned, so the clean returns it: ``vfree`` (lazy, no
    flush) and ``set_direct_map_valid_noflush(16384, 512, true)`` (CPA 5, in place, no
    flush). The cache is empty.
    """
    d = design("execmem-rox")
    alloc = d.alloc(TEXT8K)
    assert alloc is not None and alloc.blocks == ()
    assert state(d) == {**BOOT, "DirectMap4k": 4096, "DirectMap2M": 1046528 - 2048,
                        "l2": 1, "l3": 0, "pt": 3, "flush_all": 3, "flush_range": 1,
                        "ipis": 12, "cpa": 3, "local": 0, "poke": 0, "collapse": 0,
                        "cache": 512}
    d.write(alloc, 8192)
    assert state(d) == {**BOOT, "l2": 1, "l3": 0, "pt": 2, "flush_all": 5, "flush_range": 1,
                        "ipis": 18, "cpa": 4, "local": 0, "poke": 0, "collapse": 1,
                        "cache": 512}
    d.free(alloc)
    assert state(d) == {**BOOT, "l2": 1, "l3": 0, "pt": 2, "flush_all": 5, "flush_range": 1,
                        "ipis": 18, "cpa": 5, "local": 1, "poke": 1, "collapse": 1,
                        "cache": 0}
    assert d.stats()["populates"] == 1 and d.stats()["releases"] == 1
    assert d.kernel.directmap.is_present(16384) and not d.kernel.violations


def test_execmem_rox_second_module_shares_the_chunk() -> None:
    """A second 8 KiB text right after the first is carved from the same chunk (no populate):
    first fit gives the next 2 pages (chunk start + 8 KiB)."""
    d = design("execmem-rox")
    a = d.alloc(TEXT8K)
    b = d.alloc(TEXT8K)
    assert a is not None and b is not None
    assert b.vaddr == a.vaddr + 8192
    assert d.stats()["populates"] == 1 and d.stats()["busy_ranges"] == 2


def test_execmem_rox_first_version_unmaps_the_alias() -> None:
    """``alias=invalid loader=text_poke``: the 6.13-rc cache, no temp RW, no splits.

    Populate: ``set_direct_map_valid_noflush(16384, 512, false)`` (CPA 1, PMD 32 not present
    in place), then ``set_memory_rox`` as the stand-in for the ROX re-vmap (CPA 2; the alias
    already lacks RW, so nothing changes there; one ``flush_tlb_all``). The loader pokes
    its copy in (one poke of 2 pages). Free: a second poke; release restores PMD 32 with
    one CPA (3). Splits 0, full flushes 1, IPIs 3.
    """
    d = design("execmem-rox", alias="invalid", loader="text_poke")
    alloc = d.alloc(TEXT8K)
    assert alloc is not None
    assert not d.kernel.directmap.is_present(16384)
    d.write(alloc, 8192)
    d.free(alloc)
    assert state(d) == {**BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
                        "ipis": 3, "cpa": 3, "local": 2, "poke": 2, "collapse": 0,
                        "cache": 0}
    assert d.kernel.directmap.is_present(16384)


def test_execmem_rox_leaves_bpf_to_the_status_quo() -> None:
    """x86 puts only EXECMEM_MODULE_TEXT in the ROX cache: a BPF program gets a pack."""
    d = design("execmem-rox")
    assert d.alloc(Request("bpf_prog", 512, "ROX", False)) is not None
    assert d.stats()["populates"] == 0 and len(d.packs) == 1


# -- grouped-pages ----------------------------------------------------------------------------
def test_grouped_pages_one_key_change_per_group() -> None:
    """512 PKS page-table pages cost one CPA call and one full flush; the 513th refills.

    Refill: ``alloc_pages(9, UNMOVABLE)`` steals 16384 (16896 o9 left on the UNMOVABLE
    list); the key on 512 pages is one CPA call that changes PMD 32 in place, and its
    flush of 512 pages is a ``flush_tlb_all`` (3 IPIs). Pages go out lowest first:
    16384, 16385, ... The 513th page refills from 16896 (PMD 33, in place): CPA 2,
    full flushes 2, IPIs 6, no split. The v6.3 path keys each page on its own (one split,
    then one CPA and one range flush per page).
    """
    d = design("grouped-pages")
    pages = [d.alloc(PKS_PT) for _ in range(513)]
    assert [p.blocks[0][0] for p in pages[:3]] == [16384, 16385, 16386]  # type: ignore[union-attr]
    assert pages[512].blocks == ((16896, 0),)  # type: ignore[union-attr]
    assert state(d) == {**BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 2, "flush_range": 0,
                        "ipis": 6, "cpa": 2, "local": 0, "poke": 0, "collapse": 0,
                        "cache": 511}
    assert d.kernel.directmap.prot(16384) & _PAGE_PKEY
    assert d.kernel.directmap.prot(16896) & _PAGE_PKEY


def test_grouped_pages_free_keeps_the_key_and_the_shrinker_frees_single_pages() -> None:
    """Freed pages return to the list keyed; the shrinker splits the group to free one.

    After one page out and back, the list holds 512 pages (cache 512, no CPA). The list is
    16895, 16894, ..., 16385 (handed out from the end) plus 16384 appended at free; the
    shrinker takes the oldest, 16895: clearing its key is a 1-page change inside the keyed
    2 MiB entry, so PMD 32 splits (page-table page 16896 from the UNMOVABLE list, level-2
    split, ``flush_tlb_all``), then a 1-page range flush; the page goes to the buddy.
    Totals: CPA 2, full flushes 2, range flushes 1, IPIs 9, cache 511.
    """
    d = design("grouped-pages")
    page = d.alloc(PKS_PT)
    assert page is not None
    d.free(page)
    assert d.cache_pages() == 512 and d.kernel.ledger.cpa_calls == 1
    assert d.kernel.shrink(1) == 1
    assert state(d) == {**BOOT, "DirectMap4k": 4096, "DirectMap2M": 1046528 - 2048,
                        "l2": 1, "l3": 0, "pt": 3, "flush_all": 2, "flush_range": 1,
                        "ipis": 9, "cpa": 2, "local": 0, "poke": 0, "collapse": 0,
                        "cache": 511}
    assert not d.kernel.directmap.prot(16895) & _PAGE_PKEY
    assert d.kernel.directmap.prot(16894) & _PAGE_PKEY


def test_grouped_pages_plain_pagetables_stay_on_the_v63_path() -> None:
    """A page table without PKS is ``__get_free_page``: no key, no cache."""
    d = design("grouped-pages")
    assert d.alloc(Request("pagetable", 4096, "RW", True, 0, "OWNER")) is not None
    assert d.cache_pages() == 0 and d.kernel.ledger.cpa_calls == 0


# -- secretmem-pmd ----------------------------------------------------------------------------
def test_secretmem_pmd_one_cpa_per_chunk() -> None:
    """513 secretmem faults: two chunks, two CPA calls, two full flushes, no split.

    Refill: ``cma_alloc`` stands as ``alloc_pages(9, MOVABLE, __GFP_ZERO)``: 16384 from the
    order-10 block (16896 o9 left on the MOVABLE list), 512 pages zeroed; one
    ``set_direct_map_invalid_noflush(16384, 512)`` changes PMD 32 in place; the 2 MiB flush
    is a ``flush_tlb_all``. The 513th fault takes 16896 the same way. The v6.3 path would
    make 513 one-page CPA calls, 513 range flushes (1539 IPIs) and split PMD 32 and 33.
    """
    d = design("secretmem-pmd")
    pages = [d.alloc(SECRET) for _ in range(513)]
    assert pages[0].blocks == ((16384, 0),) and pages[512].blocks == ((16896, 0),)  # type: ignore[union-attr]
    assert all(p is not None and p.unmapped for p in pages)
    assert state(d) == {**BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 2, "flush_range": 0,
                        "ipis": 6, "cpa": 2, "local": 0, "poke": 0, "collapse": 0,
                        "cache": 511}
    assert d.kernel.ledger.zeroed_pages == 1024


def test_secretmem_pmd_eviction_restores_the_chunk() -> None:
    """The last page freed evicts the pool: the page is cleared through a temporary mapping
    (one local flush, 1 page zeroed), then one ``set_direct_map_default_noflush(16384, 512)``
    (CPA 2, no flush) and the 512 pages go back. ``release=never`` keeps the chunk."""
    d = design("secretmem-pmd")
    page = d.alloc(SECRET)
    assert page is not None
    d.free_generic(page)
    assert state(d) == {**BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
                        "ipis": 3, "cpa": 2, "local": 1, "poke": 0, "collapse": 0,
                        "cache": 0}
    assert d.kernel.directmap.is_present(16384) and d.kernel.nr_allocated == 0
    keep = design("secretmem-pmd", release="never")
    page = keep.alloc(SECRET)
    assert page is not None
    keep.free_generic(page)
    assert keep.cache_pages() == 512 and not keep.kernel.directmap.is_present(16384)


# -- guest-memfd ------------------------------------------------------------------------------
def test_guest_memfd_2m_folio_in_place() -> None:
    """A 2 MiB folio: 16384 (MOVABLE, zeroed), zapped with one CPA that changes PMD 32 in
    place, flushed with one ``flush_tlb_all`` (512 > 33): 3 IPIs. Free restores it with one
    CPA and no flush."""
    d = design("guest-memfd")
    folio = d.alloc(GUEST_2M)
    assert folio is not None and folio.unmapped and folio.blocks == ((16384, 9),)
    assert not d.kernel.directmap.is_present(16895)
    d.free(folio)
    assert state(d) == {**BOOT, "l2": 0, "l3": 0, "pt": 2, "flush_all": 1, "flush_range": 0,
                        "ipis": 3, "cpa": 2, "local": 0, "poke": 0, "collapse": 0,
                        "cache": 0}
    assert d.kernel.ledger.zeroed_pages == 512 and d.kernel.directmap.is_present(16384)


def test_guest_memfd_4k_folio_splits() -> None:
    """A 4 KiB folio (16384) inside PMD 32: the zap splits it (page-table page, level-2
    split, its ``flush_tlb_all``), then a 1-page range flush: 6 IPIs. The restore leaves the
    PMD split (v6.3 never re-merges)."""
    d = design("guest-memfd")
    folio = d.alloc(GUEST_4K)
    assert folio is not None and folio.blocks == ((16384, 0),)
    d.free(folio)
    assert state(d) == {**BOOT, "DirectMap4k": 4096, "DirectMap2M": 1046528 - 2048,
                        "l2": 1, "l3": 0, "pt": 3, "flush_all": 1, "flush_range": 1,
                        "ipis": 6, "cpa": 2, "local": 0, "poke": 0, "collapse": 0,
                        "cache": 0}
