"""Composition (``--set D.backend=NAME``) and per-node unmapped caches: hand-derived scenarios.

Machine (``small_spec``): 4 GiB, 4 CPUs (3 IPIs per global flush), gbpages, 64 MiB reserved,
no hole, no per-cpu lists. The buddy starts at pfn 16384, inside the 2 MiB direct-map entry 32
of GiB 0 (2 MiB-mapped at boot). On a fresh machine an UNMOVABLE order-9 request steals the
order-10 block 16384 and returns 16384 (test_plugin_unmapped_api.py), so an unmapped-api
refill is the block 16384..16895, unmapped with one ``set_memory_np`` that covers entry 32
exactly (in place, no split) and whose ``cpa_flush`` of 512 pages (> 33) is one
``flush_tlb_all``. Cached pages are handed out in ascending pfn order.

Cost rules used below (docs/model.md): a ``set_memory_*`` of a module-area range that touches
RW also changes the direct-map alias and always ends in a full flush; a change that covers a
2 MiB entry only in part splits it (one page-table page, ``direct_map_level2_splits`` + 1,
one ``flush_tlb_all``); ``set_memory_x/nx`` never touch the alias and flush per page up to 33
pages, else in full. ``vunmap`` without ``VM_FLUSH_RESET_PERMS`` is lazy (no flush).
"""

from __future__ import annotations

from typing import Any

import pytest

from framework.designs.jit_slab import JitObj, JitSlabAllocator
from framework.designs.unmapped_api import UnmappedApi
from framework.designs.vmap_area import VmapAreaAllocator
from framework.engine import Cell, freeze_sets, run_cell
from framework.errors import BadParameter
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.params import resolve
from framework.plugins import get_registry
from framework.request import Request
from tests.conftest import small_spec
from tests.test_cli import one_line_error, run

FIRST = 16384
PROG = Request("bpf_prog", 100, "ROX", False, None, "OWNER")  # the 128 B class
SECRET = Request("secretmem", 4096, "UNMAPPED", True, None, "GENERIC")
NODE1 = 524288  # 2 nodes of 2 GiB: node 1 starts at pfn 524288


def design(cls: type, nodes: int = 1, **given: str) -> tuple[Kernel, Any]:
    kernel = Kernel(small_spec(nodes=nodes), resolve_costs({}))
    return kernel, cls(kernel, resolve(cls.name, cls.params, given))


def counters(kernel: Kernel) -> dict[str, int]:
    led = kernel.ledger
    return {"l2": led.direct_map_level2_splits, "flush_all": led.tlb_flush_all,
            "ipis": led.tlb_ipis, "cpa": led.cpa_calls}


# -- jit-slab on the unmapped allocator ---------------------------------------------------
def test_jit_slab_on_unmapped_api() -> None:
    """One 100 B program, then its free (``variant=fixed``).

    Alloc: the slab page is ``unmapped_pages_alloc(0)``: the refill (1 cpa call, entry 32
    invalid in place, 1 flush_tlb_all) hands out 16384. It is vmap'd and ``set_memory_rox``'d
    (cpa call 2): the alias change covers 1 page of the (non-present) 2 MiB entry 32, so it
    splits (l2 = 1, flush_tlb_all 2), and the RO change of a module address ends in a full
    flush (3). 3 flushes x 3 IPIs = 9. The backend's cache holds 511 pages, the slab 1.
    Free: the slab is empty: ``vunmap`` (lazy, no flush) and ``unmapped_pages_free``: 16384
    merges back into the order-9 block; nothing flushes, where module_alloc's
    ``VM_FLUSH_RESET_PERMS`` vfree would flush once more.
    """
    kernel, jit = design(JitSlabAllocator, variant="fixed", backend="unmapped-api")
    prog = jit.alloc(PROG)
    assert isinstance(prog.handle, JitObj) and prog.handle.slab is not None
    area = prog.handle.slab.area
    assert area.pages == [FIRST] and prog.vaddr == area.addr << 12
    assert not kernel.directmap.is_present(FIRST)
    assert counters(kernel) == {"l2": 1, "flush_all": 3, "ipis": 9, "cpa": 2}
    assert jit.cache_pages() == 1 + 511
    jit.free(prog)
    assert counters(kernel) == {"l2": 1, "flush_all": 3, "ipis": 9, "cpa": 2}
    assert jit.cache_pages() == 512
    backend = jit.stats()["backend"]
    assert backend["name"] == "unmapped-api" and backend["Free"][9] == 1
    assert backend["refills"] == 1


def test_jit_slab_on_module_alloc_is_unchanged() -> None:
    """The default backend: module_alloc's page 16384 (mapped), rox splits entry 32 (flush 1)
    and flushes in full (2); the fixed free's VM_FLUSH_RESET_PERMS flushes once more (3)."""
    kernel, jit = design(JitSlabAllocator, variant="fixed")
    assert jit.backend is None
    prog = jit.alloc(PROG)
    assert prog.handle.slab.area.pages == [FIRST]
    assert counters(kernel) == {"l2": 1, "flush_all": 2, "ipis": 6, "cpa": 1}
    jit.free(prog)
    assert counters(kernel)["flush_all"] == 3
    assert "backend" not in jit.stats()


def test_jit_slab_on_vmap_area() -> None:
    """The slab is a 4 KiB ``execmem_alloc`` in vmap-area's 2 MiB ROX chunk.

    Alloc: the chunk is 512 huge-mapped pages from the buddy (block 16384, a whole 2 MiB
    entry), zeroed (512 pages), ``set_memory_ro`` (alias changed in place over the whole
    entry: no split; full flush 1) and ``set_memory_x`` (no alias; 512 > 33: full flush 2).
    jit-slab calls no ``set_memory_rox`` of its own. The object is at the chunk's start.
    The chunk's 512 pages are the backend's cache; the slab adds none (it is inside).
    Free (posted vmap-area returns one whole free vm): ``text_poke`` over the 4 KiB slab,
    then ``set_memory_nx`` (512 pages: full flush 3) and ``set_memory_rw`` (alias in place,
    full flush 4), then ``vfree``: nothing cached.
    """
    kernel, jit = design(JitSlabAllocator, variant="fixed", backend="vmap-area")
    prog = jit.alloc(PROG)
    slab = prog.handle.slab
    assert slab.area is None
    chunk = kernel.find_area(slab.vpage)
    assert chunk is not None and chunk.page_order == 9 and chunk.pages[0] == FIRST
    assert prog.vaddr == chunk.addr << 12
    assert counters(kernel) == {"l2": 0, "flush_all": 2, "ipis": 6, "cpa": 2}
    assert kernel.ledger.zeroed_pages == 512
    assert jit.cache_pages() == 512
    assert jit.stats()["backend"]["objects"] == 1
    jit.free(prog)
    assert counters(kernel) == {"l2": 0, "flush_all": 4, "ipis": 12, "cpa": 4}
    assert jit.cache_pages() == 0
    assert jit.stats()["backend"]["chunks_returned"] == 1


# -- vmap-area's chunks from the unmapped allocator ----------------------------------------
def test_vmap_area_chunks_from_unmapped_api() -> None:
    """One 100 B program on ``vmap-area.backend=unmapped-api``, then its free.

    Alloc: ``unmapped_pages_alloc(9)`` refills (block 16384 zeroed by __GFP_ZERO: 512 pages;
    entry 32 invalid in place, cpa 1, flush 1) and hands the block out whole; it is vmap'd
    with a PMD mapping and zeroed through it (512 more pages); ``set_memory_ro`` changes the
    whole non-present entry in place (cpa 2, flush 2), ``set_memory_x`` flushes 512 pages in
    full (cpa 3, flush 3). No split. 512 pages cached (the chunk).
    Free: the whole chunk is free: ``set_memory_nx`` (cpa 4, flush 4), ``set_memory_rw``
    (cpa 5, alias in place, flush 5), ``vunmap`` and ``unmapped_pages_free(16384, 9)``: the
    512 pages are the unmapped cache's, still out of the direct map.
    """
    kernel, va = design(VmapAreaAllocator, backend="unmapped-api")
    prog = va.alloc(PROG)
    chunk = kernel.find_area(prog.vaddr >> 12)
    assert chunk is not None and chunk.page_order == 9 and chunk.pages[0] == FIRST
    assert counters(kernel) == {"l2": 0, "flush_all": 3, "ipis": 9, "cpa": 3}
    assert kernel.ledger.zeroed_pages == 1024
    assert va.cache_pages() == 512
    va.free(prog)
    assert counters(kernel) == {"l2": 0, "flush_all": 5, "ipis": 15, "cpa": 5}
    assert va.cache_pages() == 512
    backend = va.stats()["backend"]
    assert backend["Free"][9] == 1 and backend["refills"] == 1
    assert not kernel.directmap.is_present(FIRST)


def test_backend_names_are_checked() -> None:
    """A design that is not a source of the needed kind is refused with one line."""
    with pytest.raises(BadParameter, match=r"jit-slab.backend='baseline': expected "
                       r"module_alloc or a design .*unmapped-api, vmap-area"):
        resolve("jit-slab", JitSlabAllocator.params, {"backend": "baseline"})
    with pytest.raises(BadParameter, match=r"vmap-area.backend='vmap-area'"):
        resolve("vmap-area", VmapAreaAllocator.params, {"backend": "vmap-area"})
    proc = run("bench", "--plugins", "jit-slab", "--workloads", "bpf",
               "--set", "jit-slab.backend=nope")
    one_line_error(proc, "jit-slab.backend='nope'", "unmapped-api", "vmap-area")


# -- per-node caches -------------------------------------------------------------------------
def _on_cpu(kernel: Kernel, cpu: int) -> None:
    """What the engine does before an alloc: the CPU and its node (4 CPUs, 2 nodes: 0,1 ->
    node 0; 2,3 -> node 1)."""
    kernel.page_alloc.current_cpu = cpu
    kernel.current_node = cpu * 2 // 4


@pytest.mark.parametrize("cls, given", [
    (UnmappedApi, {}),
    (pytest.importorskip("framework.designs.gfp_unmapped").GfpUnmapped, {"variant": "fixed"}),
])
@pytest.mark.parametrize("per_node", [False, True])
def test_per_node_caches(cls: type, given: dict[str, str], per_node: bool) -> None:
    """Three secretmem pages on 2 nodes: from CPU 0 (node 0), then CPUs 2 and 3 (node 1).

    Global cache: the first fault refills from node 0 (block 16384) and gets 16384; the two
    node-1 faults get 16385 and 16386 from the same cache: 2 remote pages, charged
    2 x 180 = 360 ``numa`` cycles; 1 refill, 509 pages left cached.
    Per node: the node-1 faults miss node 1's cache, which refills with a block of node 1
    (pfn >= 524288): no remote page, no ``numa`` cycles; 2 refills, 511 + 510 pages cached,
    each node's table shows one order-9 refill. Freeing everything puts each page back into
    the cache of its own node: both caches end with one free order-9 block (per node) or the
    one cache with one (global).
    """
    kernel, des = design(cls, nodes=2, per_node="1" if per_node else "0", **given)
    got = []
    for cpu in (0, 2, 3):
        _on_cpu(kernel, cpu)
        got.append(des.alloc(SECRET))
    pfns = [a.blocks[0][0] for a in got]
    stats = des.stats()
    assert pfns[0] == FIRST
    if per_node:
        assert pfns[1] >= NODE1 and pfns[2] == pfns[1] + 1
        assert stats["remote_pages"] == 0 and kernel.ledger.numa_cycles == 0
        assert stats["refills"] == 2 and des.cache_pages() == 511 + 510
        assert [n["Cached"][9] for n in stats["nodes"]] == [1, 1]
    else:
        assert pfns[1:] == [FIRST + 1, FIRST + 2]
        assert stats["remote_pages"] == 2 and kernel.ledger.numa_cycles == 360
        assert stats["refills"] == 1 and des.cache_pages() == 509
    for allocation in got:
        des.free_generic(allocation)
    stats = des.stats()
    assert stats["Free"][9] == (2 if per_node else 1)
    if per_node:
        assert [n["Free"][9] for n in stats["nodes"]] == [1, 1]


def test_request_node_picks_the_cache() -> None:
    """``request.node`` = 1 from CPU 0: the engine makes node 1 current, so the per-node
    cache of node 1 refills and serves it (a page >= 524288), with no remote page."""
    cell = Cell("unmapped-api", "secretmem", "default", 0, freeze_sets({
        "machine": {"mem_gib": "4", "nodes": "2", "cpus": "4"},
        "unmapped-api": {"per_node": "1"}}))
    from framework.engine import Runner, prepare
    from framework.request import ALLOC, Event
    setup = prepare(cell, get_registry())
    setup.events = iter([Event(ALLOC, 1, Request("secretmem", 4096, "UNMAPPED", True, 1,
                                                  "OWNER", cpu=0))])
    runner = Runner(setup)
    result = runner.run()
    (alloc, _), = runner.live.values()
    assert setup.kernel.zone_of(alloc.blocks[0][0]).node == 1
    assert result["stats"]["remote_pages"] == 0


def test_defaults_unchanged_on_one_node() -> None:
    """On one node nothing is remote: ``remote_pages`` 0 and no ``numa`` cycles, and the
    per_node=1 run equals the global one metric for metric (one node, one cache)."""
    runs = [run_cell(Cell("unmapped-api", "secretmem", "default", 1, freeze_sets({
        "machine": {"mem_gib": "4"}, "unmapped-api": {"per_node": v}})), get_registry())
        for v in ("0", "1")]
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert runs[0]["stats"]["remote_pages"] == 0
    assert runs[0]["metrics"]["cycles_by_category"]["numa"] == 0
