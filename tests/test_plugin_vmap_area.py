"""``vmap-area``: hand-derived scenarios and properties of Song Liu's execmem_alloc v5,
against the v6.3 ``bpf_prog_pack`` it generalises (``baseline``).

Machine (``small_spec``): 4 GiB, one node, 4 CPUs (3 IPIs per global flush), gbpages, 64 MiB
reserved: the buddy starts at pfn 16384, the start of the 2 MiB direct-map entry 32 of GiB 0
(GiB 0 is 2 MiB-mapped at boot; GiBs 1-3 are 1 GiB entries). The first UNMOVABLE request on a
fresh machine steals the order-10 block at 16384 (both pageblocks become UNMOVABLE): an
order-0 request gets 16384 and later ones ascend (16385, 16386, ...); an order-9 request gets
16384 and leaves 16896 as the next order-9 block. The module area is handed out lowest first
from MODULES_VADDR (1 GiB aligned); a VM_NO_GUARD region has no guard page.

Tree operations (one ``tree_op`` each): find_vmap_lowest_match, adjust_va_to_fit_type (2 for
an NE fit), insert_vmap_area, __find_vmap_area, unlink_va, merge_or_add. So an allocation that
fits costs 3 (find, adjust, insert); one that needs a new region 7 (find misses, then
__find_vmap_area + unlink_va + merge_or_add of the region, then 3); a free 3 (__find_vmap_area,
unlink_va, merge_or_add) plus 3 when it returns a region (find and adjust to carve the vm out
of the free tree, insert_vmap_area before vfree).
"""

from __future__ import annotations

import os
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.designs.baseline import Baseline
from framework.designs.vmap_area import VmapAreaAllocator
from framework.engine import Cell, freeze_sets, run_cell
from framework.kernel.faults import Faults
from framework.kernel.kernel import MODULES_VADDR, Kernel
from framework.machine.costs import resolve_costs
from framework.machine.spec import MachineSpec
from framework.params import resolve
from framework.plugins import get_registry
from framework.request import Allocation, Request
from tests.conftest import small_spec
from tests.helpers import BPF512, load_1000

FIRST = 16384
MIB = 1 << 20


def make(params: dict[str, object] | None = None, spec: MachineSpec | None = None,
         faults: Faults | None = None) -> tuple[Kernel, VmapAreaAllocator]:
    kernel = Kernel(spec or small_spec(), resolve_costs({}), faults)
    params_p = resolve("vmap-area", VmapAreaAllocator.params, dict(params or {}))
    return kernel, VmapAreaAllocator(kernel, params_p)


def counters(kernel: Kernel) -> dict[str, int]:
    led = kernel.ledger
    return {"l2": led.direct_map_level2_splits, "l3": led.direct_map_level3_splits,
            "flush_all": led.tlb_flush_all, "flush_range": led.tlb_flush_range,
            "ipis": led.tlb_ipis, "cpa": led.cpa_calls, "poke": led.text_poke_calls,
            "zeroed": led.zeroed_pages}


def test_baseline_1000_bpf_programs_one_pack() -> None:
    """v6.3 bpf_prog_pack: 512 B = 8 chunks of 64 B; 8000 chunks fit one pack (32768).
    alloc_new_pack: module_alloc(2 MiB) = 512 order-0 pages 16384..16895 (PMD 32 exactly).
    set_memory_ro(512 pages): the alias is processed page by page; 16384 splits PMD 32
    (page table 16896, the next order-0 page; level-2 split 1, flush_tlb_all), 512 PTEs lose
    RW, forced cpa_flush: flush_tlb_all. set_memory_x(512): no alias, 512 > 33: flush_tlb_all.
    Loaded: 2 CPA calls, 1 split, 3 full flushes, 9 IPIs; 1000 text_poke_copy of 512 B (one
    page each). Freeing: 1000 text_poke_set; the last free empties the pack: vfree with
    VM_FLUSH_RESET_PERMS: 512 invalid (PTEs: no split) + one flush_tlb_all + 512 default:
    1026 CPA calls, 4 full flushes, 12 IPIs, 2000 text_poke calls; PMD 32 stays split."""
    kernel = Kernel(small_spec(), resolve_costs({}))
    alloc = Baseline(kernel, {})
    progs = load_1000(alloc)
    assert counters(kernel) == {"l2": 1, "l3": 0, "flush_all": 3, "flush_range": 0, "ipis": 9,
                                "cpa": 2, "poke": 1000, "zeroed": 0}
    assert kernel.pt_pfns == {FIRST + 512} and alloc.cache_pages() == 512
    for prog in progs:
        alloc.free(prog)
    assert counters(kernel) == {"l2": 1, "l3": 0, "flush_all": 4, "flush_range": 0, "ipis": 12,
                                "cpa": 1026, "poke": 2000, "zeroed": 0}
    assert kernel.directmap.meminfo()["DirectMap4k"] == 4096
    assert kernel.nr_allocated == 1 and kernel.violations == []


def test_vmap_area_1000_bpf_programs_one_huge_chunk() -> None:
    """execmem_alloc(512, 64) x 1000. The first misses: vmalloc 2 MiB with VM_ALLOW_HUGE_VMAP
    | VM_NO_GUARD: one order-9 block, 16384..16895 = PMD 32; memset zeroes 512 pages;
    set_memory_ro over the 2 MiB mapping: the alias is one whole aligned PMD, changed in place
    (no split), forced flush: flush_tlb_all; set_memory_x: 512 > 33: flush_tlb_all. Then every
    program is an LE fit at the lowest free address. Loaded: 2 CPA calls, no split, 2 full
    flushes, 6 IPIs, DirectMap as at boot, 1000 text_poke; tree ops 7 + 999 x 3 = 3004; one
    free range [512000, 2 MiB) of the chunk; metadata (1000 busy + 1 free) x 64 B = 64064 B.
    Freeing in load order: each free merges with the range freed before it; the last one merges
    both sides into the whole chunk, a PMD-aligned span holding the vm: set_memory_nx (512 >
    33: flush_tlb_all), set_memory_rw (alias in place, forced flush_tlb_all), vfree (no
    VM_FLUSH_RESET_PERMS: lazy, no flush). Tree ops 3004 + 1000 x 3 + 3 = 6007 (tree cycles
    6007 x 300). End: 4 CPA calls, 4 full flushes, 12 IPIs, 2000 text_poke, nothing held, not
    even a page-table page."""
    kernel, alloc = make()
    progs = load_1000(alloc)
    assert counters(kernel) == {"l2": 0, "l3": 0, "flush_all": 2, "flush_range": 0, "ipis": 6,
                                "cpa": 2, "poke": 1000, "zeroed": 512}
    assert kernel.directmap.meminfo() == {"DirectMap4k": 2048, "DirectMap2M": 1046528,
                                          "DirectMap1G": 3145728}
    stats = alloc.stats()
    assert (stats["chunks"], stats["fallback"], stats["free_ranges"], stats["tree_ops"]) == (
        1, 0, 1, 3004)
    assert stats["free_bytes"] == 2 * MIB - 512000
    assert (alloc.cache_pages(), alloc.metadata_bytes()) == (512, 64064)
    assert progs[0].vaddr == MODULES_VADDR and progs[999].vaddr == MODULES_VADDR + 999 * 512
    area = next(iter(kernel.areas.values()))
    assert (area.page_order, area.pages[0], area.span) == (9, FIRST, 512)
    for prog in progs:
        alloc.free(prog)
    assert counters(kernel) == {"l2": 0, "l3": 0, "flush_all": 4, "flush_range": 0, "ipis": 12,
                                "cpa": 4, "poke": 2000, "zeroed": 512}
    stats = alloc.stats()
    assert (stats["chunks"], stats["chunks_returned"], stats["tree_ops"]) == (0, 1, 6007)
    assert kernel.ledger.cycles["tree"] == 6007 * 300
    assert (alloc.cache_pages(), alloc.metadata_bytes()) == (0, 0)
    assert kernel.nr_allocated == 0 and kernel.check_conservation() == 0
    assert kernel.violations == [] and kernel.areas == {}


def test_chunk_inside_a_1g_mapping_splits_it_once() -> None:
    """With 1024 MiB reserved the buddy starts at 262144 = GiB 1, a 1 GiB entry. The chunk is
    262144..262655; set_memory_ro's 2 MiB alias change is not a whole PUD: split it (level-3
    split, page table 262656, the next free page; flush_tlb_all), then the PMD changes in place;
    forced flush; set_memory_x flushes once more: 2 CPA, 1 level-3 split, no level-2 split,
    3 full flushes, 9 IPIs; DirectMap1G -1 GiB, DirectMap2M +1 GiB (512 x 2048 kB)."""
    spec = MachineSpec(name="t", mem_gib=4, nodes=1, cpus=4, reserved_mib=1024, hole_mib=0,
                       state="fresh", pcp=False)
    kernel, alloc = make(spec=spec)
    assert alloc.alloc(BPF512) is not None
    assert counters(kernel) == {"l2": 0, "l3": 1, "flush_all": 3, "flush_range": 0, "ipis": 9,
                                "cpa": 2, "poke": 0, "zeroed": 512}
    assert kernel.pt_pfns == {262656}
    assert kernel.directmap.meminfo() == {"DirectMap4k": 2048,
                                          "DirectMap2M": 1046528 + 1048576,
                                          "DirectMap1G": 2097152}


def test_4k_fallback_chunk_splits_like_a_pack() -> None:
    """With every order-9 allocation failing, vmalloc falls back to 512 order-0 pages
    (16384..16895, still PMD 32, still 2 MiB-aligned in the module area); the alias is then
    processed page by page: split of PMD 32 (page table 16896), 3 full flushes, as the v6.3
    pack. Returning it: set_memory_nx + set_memory_rw (PTEs, no split): +2 full flushes."""
    kernel, alloc = make(faults=Faults(alloc_fail_orders=frozenset({9})))
    prog = alloc.alloc(BPF512)
    assert prog is not None and alloc.stats()["fallback"] == 1
    assert counters(kernel) == {"l2": 1, "l3": 0, "flush_all": 3, "flush_range": 0, "ipis": 9,
                                "cpa": 2, "poke": 0, "zeroed": 512}
    assert kernel.pt_pfns == {FIRST + 512}
    alloc.free(prog)
    assert counters(kernel)["flush_all"] == 5 and alloc.cache_pages() == 0
    assert kernel.nr_allocated == 1 and kernel.violations == []


def test_3_mib_in_a_4_mib_region_and_the_rest_reused() -> None:
    """execmem_alloc(3 MiB): roundup(3 MiB, 2 MiB) = 4 MiB of huge vmalloc: two order-9 blocks
    16384 and 16896 (PMDs 32, 33), zeroed (1024 pages); set_memory_ro: two PMD aliases in
    place, one forced flush; set_memory_x: 1024 > 33, one flush. The object is the LE fit
    [base, base + 3 MiB); the remaining [base + 3 MiB, base + 4 MiB) is one free range. A 1 MiB
    allocation is an FL fit there: no new region, the free tree empties. Tree ops 7 + 3 = 10.
    Free the 3 MiB object: text_poke_set over 768 pages in 2-page chunks = 384 calls; the free
    range [base, base + 3 MiB) spans PMD-aligned [base, base + 2 MiB), which holds no whole vm:
    kept. Free the 1 MiB one (128 calls): merged [base, base + 4 MiB) holds the vm: returned
    (nx, rw: 2 more full flushes). Totals: 4 CPA, 0 splits, 4 full flushes, 512 text_poke,
    19 tree ops, nothing held."""
    kernel, alloc = make()
    big = alloc.alloc(Request("bpf_prog", 3 * MIB, "ROX", False))
    assert big is not None and big.vaddr == MODULES_VADDR
    assert alloc.stats()["free_ranges"] == 1 and alloc.stats()["free_bytes"] == MIB
    rest = alloc.alloc(Request("bpf_prog", MIB, "ROX", False))
    assert rest is not None and rest.vaddr == MODULES_VADDR + 3 * MIB
    stats = alloc.stats()
    assert (stats["chunks_created"], stats["free_ranges"], stats["tree_ops"]) == (1, 0, 10)
    assert counters(kernel) == {"l2": 0, "l3": 0, "flush_all": 2, "flush_range": 0, "ipis": 6,
                                "cpa": 2, "poke": 0, "zeroed": 1024}
    assert alloc.cache_pages() == 1024
    alloc.free(big)
    assert alloc.stats()["chunks"] == 1 and kernel.ledger.text_poke_calls == 384
    alloc.free(rest)
    assert counters(kernel) == {"l2": 0, "l3": 0, "flush_all": 4, "flush_range": 0,
                                "ipis": 12, "cpa": 4, "poke": 512, "zeroed": 1024}
    assert alloc.stats()["tree_ops"] == 19
    assert alloc.cache_pages() == 0 and kernel.nr_allocated == 0
    assert kernel.violations == []


def test_straddling_object_posted_returns_one_vm_fixed_both() -> None:
    """A (2 MiB - 1 KiB) object fills chunk A but for 1 KiB; a 2 KiB object does not fit, so a
    new chunk B is vmalloc'd right after A (no guard page) and its range merges with A's
    tail: the object straddles A and B. Freeing the big object leaves two free ranges, neither
    with a PMD-aligned whole vm; freeing the straddler merges everything: [A, B + 2 MiB).
    find_and_unlink_text_vm walks all_text_vm newest first: B is returned. posted stops there
    (v5: "we free at most one vm for now"): A stays cached (512 pages, one free range);
    fixed returns A too."""
    for variant, left in (("posted", 512), ("fixed", 0)):
        kernel, alloc = make({"variant": variant})
        big = alloc.alloc(Request("bpf_prog", 2 * MIB - 1024, "ROX", False))
        small = alloc.alloc(Request("bpf_prog", 2048, "ROX", False))
        assert big is not None and small is not None
        assert small.vaddr == MODULES_VADDR + 2 * MIB - 1024
        assert alloc.stats()["chunks"] == 2
        alloc.free(big)
        alloc.free(small)
        assert alloc.cache_pages() == left
        if variant == "posted":
            (vm,) = alloc.all_text_vm
            assert vm.addr << 12 == MODULES_VADDR
            assert (alloc.stats()["free_ranges"], alloc.stats()["free_bytes"]) == (1, 2 * MIB)
        assert kernel.nr_allocated == left and kernel.violations == []


def test_modules_parameter_serves_module_text() -> None:
    """modules=0 covers bpf_prog and trampoline only; modules=1 adds module_text and
    module_init_text, page aligned: a 10000 B text section takes 3 pages at the chunk start,
    the next BPF program follows at + 12288."""
    _, plain = make()
    assert "module_text" not in plain.covers
    _, mods = make({"modules": 1})
    assert {"module_text", "module_init_text", "bpf_prog"} <= mods.covers
    text = mods.alloc(Request("module_text", 10000, "ROX", False))
    prog = mods.alloc(BPF512)
    assert text is not None and prog is not None
    assert (text.vaddr, prog.vaddr) == (MODULES_VADDR, MODULES_VADDR + 12288)


def test_engine_conservation_after_freeing_everything(tmp_path: os.PathLike[str]) -> None:
    """Through the engine (trace of 1000 programs of 512 B loaded, written, freed, 4 GiB
    machine): no violation, nothing cached, no metadata at the end, one chunk made and
    returned."""
    rows = ["op,id,site,size,perm,zero,node,freed_by"]
    rows += [f"alloc,{i},bpf_prog,512,ROX,0,,OWNER\nwrite,{i},,,,,," for i in range(1000)]
    rows += [f"free,{i},,,,,," for i in range(1000)]
    path = os.path.join(tmp_path, "bpf.csv")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    sets = freeze_sets({"machine": {"mem_gib": "4", "hole_mib": "0", "pcp": "0",
                                    "min_free_kbytes": "0", "state": "fresh", "cpus": "4"},
                        "trace": {"path": path}})
    result = run_cell(Cell("vmap-area", "trace", "default", 1, sets), get_registry())
    assert result["violations"] == []
    metrics = result["metrics"]
    assert (metrics["cache_pages"], metrics["metadata_bytes"], metrics["cpa_calls"]) == (0, 0, 4)
    assert (result["stats"]["chunks_created"], result["stats"]["chunks_returned"]) == (1, 1)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["posted", "fixed"]),
       st.lists(st.tuples(st.booleans(), st.integers(1, 3 * MIB), st.integers(0, 1 << 16)),
                max_size=40))
def test_random_alloc_free_never_overlaps_and_returns_chunks(
        variant: str, ops: list[tuple[bool, int, int]]) -> None:
    """Any sequence of allocs (1 B..3 MiB, sizes skewed small) and frees: live objects never
    overlap, each lies inside a live region, the busy and free ranges never overlap; when all
    is freed: fixed holds nothing; posted holds only whole regions that are entirely free
    (the free tree is exactly their union). Buddy pages always balance."""
    kernel, alloc = make({"variant": variant})
    live: list[Allocation] = []
    for is_alloc, raw, pick in ops:
        size = raw if raw % 7 == 0 else raw % 4096 + 1  # most objects sub-page
        if is_alloc or not live:
            obj = alloc.alloc(Request("bpf_prog", size, "ROX", False))
            assert obj is not None and obj.vaddr % 64 == 0
            live.append(obj)
        else:
            alloc.free(live.pop(pick % len(live)))
        regions = sorted((vm.addr << 12, (vm.addr + vm.nr_pages) << 12)
                         for vm in alloc.all_text_vm)
        spans = sorted([(a.vaddr, a.vaddr + a.size) for a in live]
                       + list(zip(alloc.tree.starts, alloc.tree.ends, strict=True)))
        assert all(e <= s for (_, e), (s, _) in pairwise(spans))
        for start, end in spans:
            assert any(lo <= start and end <= hi for lo, hi in _merged(regions))
        assert kernel.check_conservation() == 0
    for obj in live:
        alloc.free(obj)
    assert alloc.busy == {} and alloc.metadata_bytes() == 64 * len(alloc.tree)
    held = sum(vm.nr_pages for vm in alloc.all_text_vm)
    assert alloc.cache_pages() == held
    assert kernel.nr_allocated == held + len(kernel.pt_pfns)
    if variant == "fixed":
        assert held == 0 and len(alloc.tree) == 0
    else:
        regions = sorted((vm.addr << 12, (vm.addr + vm.nr_pages) << 12)
                         for vm in alloc.all_text_vm)
        assert list(zip(alloc.tree.starts, alloc.tree.ends, strict=True)) == _merged(regions)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of sorted ranges, touching ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in ranges:
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out
