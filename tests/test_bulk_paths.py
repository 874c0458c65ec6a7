"""The kernel model's bulk paths against the page-by-page calls they stand for (hypothesis).

``PageAlloc.alloc_pages_bulk(n)`` must be ``n`` calls of ``alloc_pages(0)`` and
``PageAlloc.free_pages_bulk(pfns)`` one ``free_pages(pfn, 0)`` per page, in order: two kernels
built alike run a random sequence, one through the bulk entry points and one page by page,
and after every step they must hold the same pfns, the same buddy, per-cpu, pageblock and
allocation state, the same counters and cycles (float for float), the same violations and
the same random stream. The machines are small and their watermarks high, so that runs hit
per-cpu refills, ``free_pcppages_bulk()`` triggers, the fallback to another zone or node,
the slow path and failures; fractional costs (no bulk charge is then exact), injected
allocation faults and pages freed twice or still mapped take the page-by-page fallbacks.

The direct map's range loops likewise: ``DirectMap.cpa_pages`` against one ``cpa(pfn, 1)``
per page and ``change_pages`` against one ``change(pfn, 1)`` per page (with splits that may
fail); and a vmalloc area's life (module_alloc, set_memory_ro, set_memory_x, vfree) with
every bulk path against one wired to the per-page calls.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from framework.kernel.consts import _PAGE_PKEY, _PAGE_PRESENT, _PAGE_RW
from framework.kernel.faults import Faults
from framework.kernel.kernel import Kernel
from framework.kernel.pcp import PerCpuPages
from framework.machine.costs import resolve_costs
from framework.machine.spec import MachineSpec
from tests.conftest import small_spec

#: Zone slots that are references or caches, not allocator state.
_ZONE_SKIP = frozenset({"ledger", "fallbacks", "steal_policy", "start", "start_span"})


def freeze(value: Any) -> Any:
    """A comparable copy of model state; dict and list order is kept (it is state too)."""
    if isinstance(value, OrderedDict | dict):
        return [(freeze(k), freeze(v)) for k, v in value.items()]
    if isinstance(value, list | tuple | deque):
        return [freeze(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, PerCpuPages):
        return [freeze(getattr(value, name)) for name in PerCpuPages.__slots__]
    return value


def snapshot(k: Kernel) -> dict[str, Any]:
    """Everything the page allocator's bulk paths may touch."""
    pa = k.page_alloc
    led = k.ledger
    return {
        "zones": [{name: freeze(getattr(z, name)) for name in type(z).__slots__
                   if name not in _ZONE_SKIP} for z in k.zones],
        "allocated": freeze(pa.allocated),
        "nr_allocated": pa.nr_allocated,
        "ledger": {name: getattr(led, name) for name in type(led).__slots__},
        "violations": list(k.violations),
        "rng": pa.rng.getstate(),
        "conservation": pa.check_conservation(),
    }


def make_kernel(nodes: int, cpus: int, min_free_kbytes: int, buddy_op: float,
                fail_rate: float) -> Kernel:
    spec = MachineSpec(name="bulk", mem_gib=1, nodes=nodes, cpus=cpus, hole_mib=0,
                       reserved_mib=64, pcp=True, min_free_kbytes=min_free_kbytes,
                       state="fresh")
    return Kernel(spec, resolve_costs({"buddy_op": buddy_op}),
                  Faults(seed=7, alloc_fail_rate=fail_rate))


#: An operation: ("alloc", n, node, mt), ("free", held index, keep every k-th, 0),
#: ("single", order, node, mt) (a lone allocation that moves the lists), ("cpu", cpu, node, 0).
OPS = st.one_of(
    st.tuples(st.just("alloc"), st.integers(1, 1500), st.sampled_from([-1, 0, 1]),
              st.integers(0, 2)),
    st.tuples(st.just("free"), st.integers(0, 7), st.integers(1, 3), st.just(0)),
    st.tuples(st.just("single"), st.integers(0, 3), st.sampled_from([-1, 0, 1]),
              st.integers(0, 2)),
    st.tuples(st.just("cpu"), st.integers(0, 3), st.integers(0, 1), st.just(0)),
)


def _alloc(k: Kernel, n: int, node: int | None, mt: int, bulk: bool) -> list[int]:
    pa = k.page_alloc
    if bulk:
        return pa.alloc_pages_bulk(n, mt, node)
    pfns = []
    for _ in range(n):
        pfn = pa.alloc_pages(0, mt, node)
        if pfn < 0:
            break
        pfns.append(pfn)
    return pfns


def _free(k: Kernel, pages: list[int], bulk: bool) -> None:
    pa = k.page_alloc
    if bulk:
        pa.free_pages_bulk(pages)
    else:
        for pfn in pages:
            pa.free_pages(pfn, 0)


def step(k: Kernel, held: list[list[int]], op: tuple[str, int, int, int], bulk: bool) -> Any:
    """Apply ``op`` to ``k`` through the bulk entry points or page by page."""
    pa = k.page_alloc
    kind, a, b, c = op
    node = None if b < 0 else b % k.spec.nodes
    if kind == "alloc":
        held.append(_alloc(k, a, node, c, bulk))
        return held[-1]
    if kind == "free" and held:
        pages = held.pop(a % len(held))
        pages = pages[::b] + pages[:1]  # every b-th page, and the first one twice
        if pages and b == 3:
            pa.vm_mapped[pages[-1]] = 1  # a page still mapped: bad_free
        _free(k, pages, bulk)
        pa.vm_mapped.clear()
        return pages
    if kind == "single":  # a lone allocation of another order that moves the lists
        pfn = pa.alloc_pages(a, c, node)
        if pfn >= 0:
            if a:
                pa.split_page(pfn, a)
            held.append(list(range(pfn, pfn + (1 << a))))
        return pfn
    if kind == "cpu":
        pa.current_cpu = a % k.spec.cpus
        pa.current_node = b % k.spec.nodes
    return None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes=st.sampled_from([1, 2]), cpus=st.sampled_from([2, 4]),
       min_free_kbytes=st.sampled_from([0, 776_000, 781_000]),
       buddy_op=st.sampled_from([120.0, 120.0, 120.0, 120.5]),
       fail_rate=st.sampled_from([0.0, 0.0, 0.0, 0.01]),
       ops=st.lists(OPS, min_size=3, max_size=30))
# a trigger leaves free_factor 2, then hits halve it per page
@example(nodes=1, cpus=2, min_free_kbytes=0, buddy_op=120.0, fail_rate=0.0,
         ops=[("alloc", 600, -1, 0), ("free", 0, 1, 0), ("alloc", 5, -1, 0)])
# node 0 below its low watermark: hits on node 1's list count numa_miss
@example(nodes=2, cpus=2, min_free_kbytes=781_000, buddy_op=120.0, fail_rate=0.0,
         ops=[("alloc", 1500, 0, 0), ("alloc", 1500, 0, 0), ("free", 0, 2, 0)])
def test_bulk_alloc_and_free_match_page_by_page(nodes: int, cpus: int, min_free_kbytes: int,
                                                buddy_op: float, fail_rate: float,
                                                ops: list[tuple[str, int, int, int]]) -> None:
    """Same pfns and the same state after every step, bulk against page by page."""
    bulk_k = make_kernel(nodes, cpus, min_free_kbytes, buddy_op, fail_rate)
    page_k = make_kernel(nodes, cpus, min_free_kbytes, buddy_op, fail_rate)
    bulk_held: list[list[int]] = []
    page_held: list[list[int]] = []
    for op in ops:
        assert step(bulk_k, bulk_held, op, True) == step(page_k, page_held, op, False), op
        assert snapshot(bulk_k) == snapshot(page_k), op


def test_the_machines_reach_what_the_bulk_paths_must_reproduce() -> None:
    """The property test is not vacuous; figures by hand from framework/kernel/pcp.py.

    ``min_free_kbytes=0``, 1 node, 2 CPUs: ZONE_DMA32 manages 245,760 pages (ZONE_DMA is
    all reserved), batch 63, high 252 (``zone_highsize``: low watermark 245 / 2 CPUs, at
    least 4 batches). 189 pages: three refills of 63, the list left empty, 245,571 free in
    the buddy. Freeing them: 189 listed, under ``high``. 400 more: 189 hits, then four
    refills (252 pages) of which 22 of the last are taken: 41 listed, 245,319 free. Freeing
    those 400: the 211th free reaches 252 and ``nr_pcp_free`` returns 63 (free_factor 0 ->
    1), the list is back at 189; 63 frees later 126 (free_factor 1 -> 2), back at 126; the
    last of the remaining 126 frees reaches 252 and returns 189 (batch << 2 = 252 is no
    longer below high - batch = 189): 63 listed, 245,319 + 378 = 245,697 free.

    781,000 kB: min watermark 195,250 pages, low 244,062 (min + min / 4): the fast path
    stops once the zone is down to the low watermark and the slow path (the min watermark)
    then gives pages until that one, so a request for 200,000 pages gets
    245,760 - 195,250 = 50,510 minus what kswapd's reclaim could not free: nothing to
    reclaim on a fresh machine, so exactly 50,510.
    """
    k = make_kernel(1, 2, 0, 120.0, 0.0)
    pa = k.page_alloc
    zone = pa.preferred_zone()
    assert (zone.managed, zone.batch, zone.high) == (245_760, 63, 252)
    pfns = pa.alloc_pages_bulk(189, 0)
    assert (len(pfns), zone.pcp[0].count, zone.nr_free_pages) == (189, 0, 245_571)
    pa.free_pages_bulk(pfns)
    assert zone.pcp[0].count == 189
    more = pa.alloc_pages_bulk(400, 0)
    assert (len(more), zone.pcp[0].count, zone.nr_free_pages) == (400, 41, 245_319)
    pa.free_pages_bulk(more)
    assert (zone.pcp[0].count, zone.pcp[0].free_factor, zone.nr_free_pages) == (63, 2, 245_697)
    k2 = make_kernel(1, 2, 781_000, 120.0, 0.0)
    zone2 = k2.page_alloc.preferred_zone()
    assert zone2.wmark[:2] == (195_250, 244_062)
    many = k2.page_alloc.alloc_pages_bulk(200_000, 0)
    assert len(many) == 50_510
    assert k2.page_alloc.check_conservation() == 0 and k2.violations == []


# -- CPA over a list of pages ---------------------------------------------------------------

_DM_SKIP = frozenset({"alloc_pt_page", "free_pt_page", "flush_tlb_all", "ledger", "on_wx"})
_MASKS = [(0, _PAGE_PRESENT | _PAGE_RW), (_PAGE_PRESENT | _PAGE_RW, 0), (0, _PAGE_RW),
          (_PAGE_RW, 0), (_PAGE_PKEY, 0)]


def dm_snapshot(k: Kernel) -> dict[str, Any]:
    """The direct map's state with the allocator's and the ledger's (splits take pages)."""
    dm = k.directmap
    out = {name: freeze(getattr(dm, name)) for name in type(dm).__slots__
           if name not in _DM_SKIP}
    out.update(snapshot(k))
    return out


def cpa_kernel(cpa_pte: float, pt_fail_rate: float, splits: list[int],
               execs: list[int]) -> Kernel:
    """A 4 GiB gbpages machine with the pages of ``splits`` made read-only one by one (each
    splits its 1 GiB and 2 MiB entries) and ``execs`` executable in some module mapping."""
    k = Kernel(small_spec(), resolve_costs({"cpa_pte": cpa_pte}),
               Faults(seed=3, pt_fail_rate=pt_fail_rate))
    for pfn in splits:
        k.directmap.cpa(pfn, 1, 0, _PAGE_RW)
    for pfn in execs:
        k.directmap.exec_gained(pfn)
    return k


PFN = st.integers(16_384, 16_384 + 3 * 512 - 1)  # three 2 MiB regions above the reserved start


@settings(max_examples=80, deadline=None)
@given(cpa_pte=st.sampled_from([150.0, 150.0, 150.5]),
       pt_fail_rate=st.sampled_from([0.0, 0.0, 0.5]),
       splits=st.lists(PFN, max_size=3), execs=st.lists(PFN, max_size=4),
       pfns=st.lists(PFN, max_size=40), mask=st.sampled_from(_MASKS))
def test_cpa_over_pages_matches_one_call_per_page(cpa_pte: float, pt_fail_rate: float,
                                                  splits: list[int], execs: list[int],
                                                  pfns: list[int],
                                                  mask: tuple[int, int]) -> None:
    """DirectMap.cpa_pages == one cpa(pfn, 1) per page; change_pages == one change(pfn, 1)
    per page up to the first -ENOMEM: same entries, splits, page tables, W^X reports,
    counters, cycles and random stream."""
    set_mask, clr_mask = mask
    for bulk_call, one_call in (("cpa_pages", "cpa"), ("change_pages", "change")):
        bulk_k = cpa_kernel(cpa_pte, pt_fail_rate, splits, execs)
        page_k = cpa_kernel(cpa_pte, pt_fail_rate, splits, execs)
        got = getattr(bulk_k.directmap, bulk_call)(list(pfns), set_mask, clr_mask)
        want = None if bulk_call == "cpa_pages" else 0
        for pfn in pfns:
            _, err = getattr(page_k.directmap, one_call)(pfn, 1, set_mask, clr_mask)
            if err and bulk_call == "change_pages":
                want = err
                break
        assert got == want
        assert dm_snapshot(bulk_k) == dm_snapshot(page_k), bulk_call


def _page_by_page(k: Kernel) -> None:
    """Wire ``k``'s vmalloc to the per-page calls its bulk paths stand for."""
    pa, vm, sm = k.page_alloc, k.vmalloc, k.set_memory

    def alloc_bulk(nr: int, mt: int, node: int | None) -> list[int]:
        return _alloc(k, nr, node, mt, False)

    def free_bulk(pfns: list[int]) -> None:
        for pfn in pfns:
            pa.free_pages(pfn, 0)

    def set_pages(pfns: list[int], set_mask: int, clr_mask: int) -> None:
        for pfn in pfns:
            if set_mask:
                sm.set_direct_map_default_noflush(pfn)
            else:
                sm.set_direct_map_invalid_noflush(pfn)

    vm.alloc_pages_bulk = alloc_bulk
    vm.free_pages_bulk = free_bulk
    vm.set_direct_map_pages = set_pages


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 1100), min_size=1, max_size=6),
       frees=st.lists(st.integers(0, 5), max_size=6), nodes=st.sampled_from([1, 2]))
def test_vmalloc_pack_life_matches_page_by_page(sizes: list[int], frees: list[int],
                                                nodes: int) -> None:
    """module_alloc, set_memory_ro, set_memory_x and vfree (vm_reset_perms) of areas as a BPF
    pack goes through them, with the bulk paths and with per-page calls: the same pages and
    the same state."""
    kernels = [make_kernel(nodes, 2, 0, 120.0, 0.0) for _ in range(2)]
    _page_by_page(kernels[1])
    areas: list[list[Any]] = [[], []]
    for k, held in zip(kernels, areas, strict=True):
        for size in sizes:
            area = k.module_alloc(size << 12)
            assert area is not None
            k.set_memory_ro(area.addr, area.nr_pages)
            k.set_memory_x(area.addr, area.nr_pages)
            held.append(area)
        for i in frees:
            if held:
                k.vfree(held.pop(i % len(held)))
    assert [a.pages for a in areas[0]] == [a.pages for a in areas[1]]
    assert dm_snapshot(kernels[0]) == dm_snapshot(kernels[1])
