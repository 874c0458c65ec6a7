"""``jit-slab``: hand-derived scenarios and properties of Kent Overstreet's jit/text slab.

Machine (``small_spec``): 4 GiB, one node, 4 CPUs (3 IPIs per global flush), gbpages, 64 MiB
reserved, so the buddy starts at pfn 16384 = 64 MiB, inside the 2 MiB direct-map entry 32 of
GiB 0 (GiB 0 is 2 MiB-mapped at boot, GiBs 1-3 are 1 GiB entries). On a fresh machine the
first UNMOVABLE order-0 request steals the order-10 block at 16384 (ALLOC_NOFRAGMENT, whole
block, both pageblocks become UNMOVABLE) and hands out 16384; ``expand`` leaves 16385 (o0),
16386 (o1), 16388 (o2), ... 16896 (o9) on the UNMOVABLE lists, so successive order-0 requests
get ascending pfns.
"""

from __future__ import annotations

import os
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.designs.jit_slab import NR_JIT_CACHES, JitSlabAllocator, bitmap_bytes, jit_cache_idx
from framework.engine import Cell, freeze_sets, run_cell
from framework.kernel.consts import _PAGE_GLOBAL, _PAGE_NX, _PAGE_PRESENT, _PAGE_RW
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.plugins import get_registry
from framework.request import Allocation, Request
from framework.statusquo import StatusQuo
from tests.conftest import small_spec
from tests.helpers import BPF512, load_1000

FIRST = 16384


def make(variant: str = "posted") -> tuple[Kernel, JitSlabAllocator]:
    kernel = Kernel(small_spec(), resolve_costs({}))
    return kernel, JitSlabAllocator(kernel, {"variant": variant, "backend": "module_alloc"})


def counters(kernel: Kernel) -> dict[str, int]:
    led = kernel.ledger
    return {"l2": led.direct_map_level2_splits, "l3": led.direct_map_level3_splits,
            "flush_all": led.tlb_flush_all, "flush_range": led.tlb_flush_range,
            "ipis": led.tlb_ipis, "cpa": led.cpa_calls, "poke": led.text_poke_calls}


def test_cache_index_and_geometry() -> None:
    """idx = ilog2(roundup_pow_of_two(len) / 16), objs/slab = 4096 >> bits.

    len 9..16 -> 16/16 = 1 -> 0; 17..32 -> 1; 512 -> 32 -> 5; 513 -> 1024/16 = 64 -> 6;
    2048 -> 7; 2049 -> 4096/16 = 256 -> 8 = NR_JIT_CACHES (module_alloc). len 1..8 (posted):
    roundup is 1..8, /16 = 0, ilog2(0) = fls64(0) - 1 = -1, as unsigned 2^32 - 1: page path;
    fixed: the 16 B cache. Bitmaps: BITS_TO_LONGS(256) = 4 longs = 32 B for 16 B objects,
    128 objects -> 16 B, 64 or fewer -> 8 B.
    """
    for length in range(1, 9):
        assert jit_cache_idx(length, True) == 0xFFFFFFFF
        assert jit_cache_idx(length, False) == 0
    for length, idx in ((9, 0), (16, 0), (17, 1), (32, 1), (512, 5), (513, 6), (2048, 7),
                        (2049, 8), (4096, 8)):
        assert jit_cache_idx(length, True) == idx == jit_cache_idx(length, False)
    _, alloc = make()
    assert [c.objs_per_slab for c in alloc.caches] == [256, 128, 64, 32, 16, 8, 4, 2]
    assert [bitmap_bytes(c.objs_per_slab) for c in alloc.caches] == [32, 16, 8, 8, 8, 8, 8, 8]
    assert len(alloc.caches) == NR_JIT_CACHES


def test_1000_bpf_programs_of_512_bytes() -> None:
    """1,000 programs of 512 B, each written once, then all freed in load order.

    Class 5 (512 B), 8 objects a slab: 1000 / 8 = 125 slabs, each one module_alloc(PAGE_SIZE)
    and one set_memory_rox(addr, 1). Slab 1 gets pfn 16384; its rox changes the alias of
    16384, inside the still-large PMD 32: split (page-table page 16385, the next order-0
    page; level-2 split 1, flush_tlb_all), then the PTE loses RW and cpa_flush is forced
    (alias): flush_tlb_all. Slabs 2..125 get 16386..16509, all in PMD 32, now PTEs: one CPA
    call and one flush_tlb_all each. After the loads: 125 CPA calls, 1 split, 126 full
    flushes, 378 IPIs; DirectMap4k 2048 + 2048 kB, DirectMap2M -2048 kB; 3 page-table pages.
    Each write is one text_poke_copy of 512 B inside one page: 1000 text_poke calls, 1000
    local flushes. Metadata: 125 bitmaps of 8 B = 1000 B; cache_pages 125 (sub-page objects
    have no blocks). Mutex: 1000 acquisitions in jit_alloc, 1000 in jit_free.
    Frees: each slab empties at its 8th free. posted: folio_put -> the page goes back to the
    buddy, no CPA, no flush; the 125 vm areas stay, so each of the 125 frees is a bad_free
    (a page freed while a vmalloc area still maps it). fixed: vfree with VM_FLUSH_RESET_PERMS:
    invalid (PTE, no split) + flush_tlb_all + default per slab: +250 CPA calls, +125 full
    flushes (+375 IPIs). Either way nothing is held at the end but the page-table page.
    """
    loaded = {"l2": 1, "l3": 0, "flush_all": 126, "flush_range": 0, "ipis": 378, "cpa": 125,
              "poke": 1000}
    after = {"posted": {**loaded},
             "fixed": {**loaded, "flush_all": 251, "ipis": 753, "cpa": 375}}
    for variant in ("posted", "fixed"):
        kernel, alloc = make(variant)
        progs = load_1000(alloc)
        assert counters(kernel) == loaded
        assert kernel.directmap.meminfo()["DirectMap4k"] == 4096
        assert kernel.directmap.pagetable_pages() == 3 and kernel.pt_pfns == {FIRST + 1}
        assert sorted({p.handle.slab.area.pages[0] for p in progs}) == [
            FIRST, *range(FIRST + 2, FIRST + 126)]
        assert (alloc.cache_pages(), alloc.metadata_bytes()) == (125, 1000)
        stats = alloc.stats()
        assert stats["classes"]["512"] == {"objects": 1000, "slabs": 125, "partial": 0}
        assert kernel.ledger.tlb_flush_local == 1000
        for prog in progs:
            alloc.free(prog)
        assert counters(kernel) == after[variant]
        stats = alloc.stats()
        assert (stats["slabs"], stats["slabs_released"], stats["lock_acquisitions"]) == (
            0, 125, 2000)
        assert (alloc.cache_pages(), alloc.metadata_bytes()) == (0, 0)
        assert kernel.nr_allocated == 1 and kernel.check_conservation() == 0
        rules = [v[0] for v in kernel.violations]
        assert rules == (["bad_free"] * 125 if variant == "posted" else [])
        assert len(kernel.areas) == (125 if variant == "posted" else 0)
        assert stats["leaked_vm_areas"] == (125 if variant == "posted" else 0)


def test_partial_list_is_lifo_and_full_slabs_untracked() -> None:
    """2048 B class, 2 objects a slab. a, b fill slab S1 (on the partial list at a, off it at
    b: full, untracked); c opens S2 (partial). Freeing a puts S1 back at the partial head, so
    d goes to S1's object 0 (list_first_entry is the most recently added slab), not to S2."""
    kernel, alloc = make("fixed")
    big = Request("trampoline", 2048, "ROX", False)
    a, b, c = (alloc.alloc(big) for _ in range(3))
    assert a is not None and b is not None and c is not None
    cache = alloc.caches[7]
    assert list(cache.partial) == [c.handle.slab]
    alloc.free(a)
    assert list(cache.partial) == [c.handle.slab, a.handle.slab]
    d = alloc.alloc(big)
    assert d is not None and d.vaddr == a.vaddr
    assert list(cache.partial) == [c.handle.slab]
    assert kernel.violations == []


def test_posted_tiny_objects_take_a_page_fixed_use_the_16_byte_class() -> None:
    """An 8-byte trampoline. posted: index wraps to 2^32 - 1 -> module_alloc(8): one page of
    its own (pfn 16384, in Allocation.blocks) and set_memory_rox(p, 1) (split of PMD 32,
    page table 16385: 1 CPA, 1 split, 2 full flushes), no mutex. fixed: the 16 B class: a slab
    (the same CPA work, the page held as cache) with a 32-byte bitmap, one mutex acquisition.
    Freeing: posted vfree(VM_FLUSH_RESET_PERMS): +2 CPA, +1 full flush; fixed: the slab
    empties and is vfree'd: the same."""
    for variant, blocks, locks, meta in (("posted", ((FIRST, 0),), 0, 0),
                                         ("fixed", (), 1, 32)):
        kernel, alloc = make(variant)
        obj = alloc.alloc(Request("trampoline", 8, "ROX", False))
        assert obj is not None and obj.blocks == blocks
        assert (alloc.lock_acquisitions, alloc.metadata_bytes()) == (locks, meta)
        assert counters(kernel) == {"l2": 1, "l3": 0, "flush_all": 2, "flush_range": 0,
                                    "ipis": 6, "cpa": 1, "poke": 0}
        alloc.free(obj)
        assert counters(kernel)["cpa"] == 3 and counters(kernel)["flush_all"] == 3
        assert kernel.areas == {} and kernel.nr_allocated == 1
        assert kernel.violations == []


def test_posted_folio_put_leaks_the_area_and_the_model_catches_reuse() -> None:
    """posted: one 512 B program on a fresh machine (slab page P = 16384, page table 16385),
    freed: folio_put gives P back to the buddy (16385 is allocated, so P stays an order-0 block
    on the UNMOVABLE list) while the leaked vm area still maps it ROX and its alias is still
    RO (PRESENT | NX | GLOBAL). Conservation holds; the free itself is recorded as bad_free
    (a page freed while a vmalloc area still maps it).
    A secretmem fault then takes that order-0 page (the only one on the list): invalid
    (no split: PTE) + 1-page flush; at free, secretmem_free_folio's
    set_direct_map_default_noflush makes the alias PRESENT | RW while P is still executable
    through the leaked mapping: the model records wx_mapping "X alias RW" at P, and the
    page's second free is again a bad_free.
    fixed: vfree resets the alias (invalid then default: PRESENT | RW | NX, GLOBAL lost) and
    drops P from the executable set: the same secretmem round trip records nothing."""
    for variant in ("posted", "fixed"):
        kernel, alloc = make(variant)
        prog = alloc.alloc(BPF512)
        assert prog is not None
        alloc.write(prog, 0)
        alloc.free(prog)
        dm = kernel.directmap
        assert kernel.zone_of(FIRST).block_is_free(FIRST)
        assert kernel.check_conservation() == 0 and kernel.nr_allocated == 1
        if variant == "posted":
            assert dm.prot(FIRST) == _PAGE_PRESENT | _PAGE_NX | _PAGE_GLOBAL
            assert FIRST in dm.exec_pfns and len(kernel.areas) == 1
        else:
            assert dm.prot(FIRST) == _PAGE_PRESENT | _PAGE_RW | _PAGE_NX
            assert FIRST not in dm.exec_pfns and kernel.areas == {}
        leak = [("bad_free", FIRST, "page freed while a vmalloc area still maps it")]
        assert kernel.violations == (leak if variant == "posted" else [])
        sq = StatusQuo(kernel)
        secret = sq.alloc(Request("secretmem", 4096, "UNMAPPED", True, None, "GENERIC"))
        assert secret is not None and secret.blocks == ((FIRST, 0),)
        sq.free_generic(secret)
        reuse = [("wx_mapping", FIRST, "X alias RW")]  # then freed again while still mapped
        assert kernel.violations == (leak + reuse + leak if variant == "posted" else [])


def _trace(path: os.PathLike[str], n: int, size: int) -> str:
    rows = ["op,id,site,size,perm,zero,node,freed_by"]
    rows += [f"alloc,{i},bpf_prog,{size},ROX,0,,OWNER\nwrite,{i},,,,,," for i in range(n)]
    rows += [f"free,{i},,,,,," for i in range(n)]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    return str(path)


def test_engine_conservation_after_freeing_everything(tmp_path: os.PathLike[str]) -> None:
    """Through the engine (trace workload, 4 GiB machine): 64 programs of 512 B loaded,
    written and freed = 8 slabs. At the end nothing is cached (cache_pages 0, metadata 0);
    the engine's conservation and counters checks pass. posted leaves the 8 vm areas behind:
    each folio_put of a still-mapped slab page is one bad_free, and each of the 8 pages is
    in the buddy with its read-only alias at the final check (8 buddy_prot); fixed breaks
    nothing."""
    path = _trace(os.path.join(tmp_path, "bpf.csv"), 64, 512)
    reg = get_registry()
    for variant, leaked in (("posted", 8), ("fixed", 0)):
        sets = freeze_sets({"machine": {"mem_gib": "4", "hole_mib": "0", "pcp": "0",
                                        "min_free_kbytes": "0", "state": "fresh", "cpus": "4"},
                            "trace": {"path": path},
                            "jit-slab": {"variant": variant}})
        result = run_cell(Cell("jit-slab", "trace", "default", 1, sets), reg)
        assert result["violation_counts"] == ({"bad_free": 8, "buddy_prot": 8} if leaked
                                              else {})
        assert result["metrics"]["cache_pages"] == 0
        assert result["metrics"]["metadata_bytes"] == 0
        stats = result["stats"]
        assert (stats["slabs_created"], stats["leaked_vm_areas"]) == (8, leaked)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["posted", "fixed"]),
       st.lists(st.tuples(st.booleans(), st.integers(1, 6000), st.integers(0, 1 << 16)),
                max_size=60))
def test_random_alloc_free_never_overlaps_and_returns_every_slab(
        variant: str, ops: list[tuple[bool, int, int]]) -> None:
    """Any sequence of allocs (1..6000 B) and frees: live objects never overlap in the module
    area; each slab object is aligned to its class size; when all is freed no slab is held,
    the buddy balances, and only the posted variant leaves vm areas (one per released slab)."""
    kernel, alloc = make(variant)
    live: list[Allocation] = []
    for is_alloc, size, pick in ops:
        if is_alloc or not live:
            obj = alloc.alloc(Request("bpf_prog", size, "ROX", False))
            assert obj is not None
            handle = obj.handle
            if handle.slab is not None:
                assert obj.vaddr % (1 << handle.slab.cache.obj_size_bits) == 0
                assert size <= 1 << handle.slab.cache.obj_size_bits
            live.append(obj)
        else:
            alloc.free(live.pop(pick % len(live)))
        spans = sorted((a.vaddr, a.vaddr + a.size) for a in live)
        assert all(e <= s for (_, e), (s, _) in pairwise(spans))
    for obj in live:
        alloc.free(obj)
    assert alloc.cache_pages() == 0 and alloc.metadata_bytes() == 0
    assert kernel.nr_allocated == len(kernel.pt_pfns)
    assert kernel.check_conservation() == 0
    leaked = alloc.stats()["slabs_released"] if variant == "posted" else 0
    assert len(kernel.areas) == leaked
