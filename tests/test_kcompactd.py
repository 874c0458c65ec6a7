"""kcompactd, woken by kswapd (framework/kernel/vmscan.py, compaction.py), derived by hand.

The machines are those of tests/test_reclaim_compaction.py: ``small_spec(mem_gib=1)``, no
per-cpu lists, one node whose GFP_KERNEL zone is ZONE_DMA32 (pfns 4096..262144, managed
245760; ZONE_DMA lies inside the reserved 64 MiB and manages nothing), block ``i`` of the toy
start state at pfn ``16384 + 1024 * i`` (pageblocks ``32 + 2i`` and ``33 + 2i``), every block
not named kernel memory. With ``vm.min_free_kbytes=0`` the watermarks are min 0, low 245,
high 490; with 4096 kB, min 1024, low 1280, high 1536.

The order-2 layout (:func:`order2_machine`), 516 free pages and no free block of order >= 2:

- block 0 (pageblock 32 movable, 33 kernel): anon pages at offsets 0 and 1, a free order-1
  block at 2 (the rest kernel): migrating the two anon pages frees an order-2 block at
  16384 (its buddy at 16388 is kernel);
- block 1 (pageblock 34 movable): a free order-1 block at 17408, the rest kernel: the
  migration target (the only free block of a movable pageblock above pageblock 32);
- block 2: unmovable pageblocks, 256 free order-1 blocks (offsets ``4k``, a kernel order-1
  folio at ``4k + 2`` after each): 512 free pages no merge can grow;
- block 3: 1024 page-cache pages in unmovable pageblocks (as fallback allocations leave page
  cache), for kswapd to reclaim; the holes it leaves go to the unmovable lists, so they are
  no migration target.

kswapd woken for order 2 there: the node is not balanced (no free block of order >= 2), and
``balance_pgdat()`` asks for max(high 490, 32) = 490 pages a pass, scanning ``page cache >>
priority``: 1024 >> 12 = 0, 1024 >> 11 = 0, 1024 >> 10 = 1 (1), 1023 >> 9 = 1 (2), 1022 >> 8
= 3 (5), 1019 >> 7 = 7 (12 >= compact_gap(2) = 8: ``sc.order`` drops to 0); at priority 6 the
node is balanced at order 0 (516 + 12 = 528 > high 490): balance_pgdat() returns 0 < 2, and
kswapd_try_to_sleep() finds the node balanced at order 0 and wakes kcompactd for order 2.
kcompactd_node_suitable(): ZONE_DMA has nothing free (COMPACT_SKIPPED); ZONE_DMA32 has no
order-2 block at the min watermark, and 528 free pages > min 0 + compact_gap(2) = 8:
COMPACT_CONTINUE.
"""

from __future__ import annotations

import json
import random

import attrs

from framework.kernel.buddy import BUDDY_ORDER_MASK, NO_PAGE, Zone
from framework.kernel.consts import MIGRATE_UNMOVABLE
from framework.kernel.e820 import ZoneType, build_layout
from framework.kernel.faults import Faults
from framework.kernel.initial import Block, Use
from framework.kernel.ledger import Ledger
from framework.kernel.page_alloc import PageAlloc
from framework.machine.costs import resolve_costs
from tests.conftest import small_spec
from tests.test_cli import one_line_error, run
from tests.test_reclaim_compaction import (
    FIRST,
    HALF,
    PAGECACHE,
    M,
    ToyState,
    U,
    machine,
    used,
)

NORMAL = ZoneType.ZONE_NORMAL

SOURCE2 = Block((M, U), ((2, 1),), used(range(2), Use.ANON) + used(range(4, 1024), Use.KERNEL))
#: The same with a kernel page at offset 1: migrating the anon page at 0 forms no block.
PINNED2 = Block((M, U), ((2, 1),), ((0, 0, Use.ANON), (1, 0, Use.KERNEL),
                                     *used(range(4, 1024), Use.KERNEL)))
TARGET2 = Block((M, U), ((0, 1),), used(range(2, 1024), Use.KERNEL))
CRUMBS = Block((U, U), tuple((4 * k, 1) for k in range(256)),
               tuple((4 * k + 2, 1, Use.KERNEL) for k in range(256)))
UCACHE = Block((U, U), (), used(range(1024), Use.PAGECACHE))
TARGET_PFN = FIRST + 1024  # block 1's free order-1 block


def order2_machine(source: Block = SOURCE2, cache: bool = True, kcompactd: bool = True
                   ) -> PageAlloc:
    blocks = {0: source, 1: TARGET2, 2: CRUMBS}
    if cache:
        blocks[3] = UCACHE
    if kcompactd:
        return machine(blocks)
    spec = attrs.evolve(small_spec(mem_gib=1), kcompactd=False)
    layout = build_layout(spec.mem_pages, spec.nodes, 0, (spec.reserved_mib << 20) >> 12)
    return PageAlloc(spec, resolve_costs({}), Ledger(), Faults(), random.Random(0),
                     lambda *v: None, set(), {}, ToyState(layout, blocks))


def order_of(zone: Zone, pfn: int) -> int | None:
    """The order of the free buddy block headed at ``pfn``, or None."""
    info = zone.buddy.get(pfn)
    return None if info is None else int(info & BUDDY_ORDER_MASK)


def test_kswapd_wakes_kcompactd_which_forms_the_block() -> None:
    """An order-2 unmovable request on the order-2 layout (module docstring).

    - Fast path: 516 - 3 > low 245, but no free block of order >= 2: slow path.
    - kswapd reclaims 12 pages and wakes kcompactd for order 2 (module docstring).
    - kcompactd_do_work(): compact_daemon_wake 1; ZONE_DMA skipped (not suitable); ZONE_DMA32
      compacted in sync-light mode as a GFP_KERNEL (unmovable) request. The migrate scanner's
      first source is pageblock 32: two anon pages. Free pages above it: the described
      movable lists offer none (the holes kswapd left are unmovable), so the start state's
      next block is described, block 1, whose order-1 block at 17408 is split into the
      targets 17408 and 17409. The sources, freed, merge with 16386's order-1 block into an
      order-2 block at 16384 on the movable list, which an unmovable request may steal:
      COMPACT_SUCCESS. One pageblock scanned, two pages migrated: 1500 + 2 x 7500 = 16500
      compaction cycles, pgmigrate_success 2.
    - The free lists at min then give the order-2 block at 16384: no direct compaction, no
      direct reclaim. Free pages 528 - 4 = 524.
    """
    pa = order2_machine()
    zone = pa.zones[-1]
    assert zone.wmark == (0, 245, 490)
    assert zone.nr_free_pages == 516
    assert not any(zone.nr_free_at(o) for o in range(2, 11))
    pfn = pa.alloc_pages(2, MIGRATE_UNMOVABLE)
    led = pa.ledger
    assert pfn == FIRST
    assert (led.pgscan_kswapd, led.pgsteal_kswapd) == (12, 12)
    assert led.compact_daemon_wake == 1
    assert led.pgmigrate_success == 2
    assert led.compaction_cycles == 1500 + 2 * 7500
    assert (led.compact_stall, led.compact_success, led.compact_fail) == (0, 0, 0)
    assert (led.allocstall, led.pgscan_direct) == (0, 0)
    assert zone.anon_bits == {TARGET_PFN >> 9: 0b11}
    assert zone.nr_free_pages == 524
    state = pa.compaction.state[id(zone)]
    assert (state.defer_shift, state.order_failed) == (0, 11)
    assert pa.check_conservation() == 0


def test_kcompactd_off_leaves_the_zone_as_kswapd_left_it() -> None:
    """The same kswapd wake with ``machine.kcompactd=0``: kswapd reclaims its 12 pages and
    sleeps; no page moves, the anon pages stay in pageblock 32 and no order-2 block exists."""
    pa = order2_machine(kcompactd=False)
    zone = pa.zones[-1]
    pa.reclaim.wakeup_kswapd(0, 2, NORMAL)
    led = pa.ledger
    assert led.pgscan_kswapd == 12
    assert (led.compact_daemon_wake, led.pgmigrate_success) == (0, 0)
    zone.materialise(FIRST)  # block 0 untouched so far: describe it to look
    assert zone.anon_bits == {FIRST >> 9: 0b11}
    assert not any(zone.nr_free_at(o) for o in range(2, 11))
    assert zone.nr_free_pages == 528


def test_kcompactd_not_woken_for_order_0() -> None:
    """vm.min_free_kbytes=4096 (min 1024, low 1280, high 1536), 4096 page-cache pages and
    1088 free: the order-0 case of tests/test_reclaim_compaction.py, where kswapd reclaims
    485 pages. balance_pgdat() ends at the order asked (0): kswapd sleeps without waking
    kcompactd, and wakeup_kcompactd() ignores order 0 anyway."""
    cache = {i: PAGECACHE for i in range(4)}
    pa = machine({**cache, 4: HALF, 5: HALF,
                  6: Block((U, U), ((0, 6),), used(range(64, 1024), Use.KERNEL))},
                 min_free_kbytes=4096)
    assert pa.alloc_pages(0, MIGRATE_UNMOVABLE) != NO_PAGE
    led = pa.ledger
    assert led.pgscan_kswapd == 485
    assert led.compact_daemon_wake == 0
    pa.compaction.wakeup_kcompactd(0, 0, NORMAL)
    assert led.compact_daemon_wake == 0


def test_kcompactd_not_woken_when_kswapd_ends_at_the_order() -> None:
    """The order-2 layout without page cache: kswapd finds nothing to reclaim at any
    priority, so balance_pgdat() returns order 2 (``reclaim_order == alloc_order``): kswapd()
    then tries to sleep at order 0 and wakes no kcompactd for order 2. kswapd_failures 1."""
    pa = order2_machine(cache=False)
    pa.reclaim.wakeup_kswapd(0, 2, NORMAL)
    led = pa.ledger
    assert (led.pgscan_kswapd, led.compact_daemon_wake, led.pgmigrate_success) == (0, 0, 0)
    assert pa.reclaim.kswapd_failures[0] == 1


def test_kcompactd_not_woken_when_compaction_is_not_suitable() -> None:
    """vm.min_free_kbytes=4096 (min 1024, low 1280, high 1536); 16 blocks of page cache
    (16384 pages), nothing free. kswapd woken for order 9 asks for max(high, 32) = 1536
    pages a pass: 16384 >> 12 = 4 (4), 16380 >> 11 = 7 (11), 16373 >> 10 = 15 (26),
    16358 >> 9 = 31 (57), 16327 >> 8 = 63 (120), 16264 >> 7 = 127 (247), 16137 >> 6 = 252
    (499), 15885 >> 5 = 496 (995), 15389 >> 4 = 961 (1956 >= compact_gap(9) = 1024: order 0);
    then balanced at order 0 (1956 > 1536). kswapd_try_to_sleep() calls wakeup_kcompactd(9),
    but kcompactd_node_suitable() finds ZONE_DMA32 COMPACT_SKIPPED: order 9 is costly, so
    compaction needs more than low 1280 + compact_gap(9) 1024 = 2304 free pages (1956).
    kcompactd stays asleep: compact_daemon_wake 0."""
    pa = machine({i: PAGECACHE for i in range(16)}, min_free_kbytes=4096)
    zone = pa.zones[-1]
    assert zone.nr_free_pages == 0
    pa.reclaim.wakeup_kswapd(0, 9, NORMAL)
    led = pa.ledger
    assert led.pgscan_kswapd == 1956
    assert zone.nr_free_pages == 1956
    assert (led.compact_daemon_wake, led.pgmigrate_success) == (0, 0)


def test_kcompactd_defers_after_a_complete_run() -> None:
    """The order-2 layout with a kernel page at offset 1 of block 0 (PINNED2).

    First kswapd wake (order 2): 12 pages reclaimed, kcompactd woken (module docstring):
    compact_daemon_wake 1. Pageblock 32's anon page at 0 moves to 17408 (block 1 described,
    its order-1 block split); 16384, freed, cannot merge (16385 is kernel). The next source,
    pageblock 38 (block 3's page cache), lies above the free scanner's pageblock 34: the
    scanners met, COMPACT_COMPLETE. 17409 goes back (order 0: 17408 is used now). One
    pageblock scanned, one page migrated: 1500 + 7500 cycles. kcompactd drains the zone's
    per-cpu lists (none here) and defers: defer_shift 1, order_failed 2.

    Second wake: the node is still unbalanced at order 2; kswapd reclaims 1012 >> 12 = 0,
    >> 11 = 0, >> 10 = 0, 1012 >> 9 = 1 (1), 1011 >> 8 = 3 (4), 1008 >> 7 = 7 (11 >= 8),
    and is balanced at 0 (539 > 490): kcompactd woken again (compact_daemon_wake 2), but
    compaction_deferred() skips ZONE_DMA32 (considered 1 < 1 << 1): nothing migrated.
    """
    pa = order2_machine(PINNED2)
    zone = pa.zones[-1]
    assert zone.nr_free_pages == 516
    pa.reclaim.wakeup_kswapd(0, 2, NORMAL)
    led = pa.ledger
    assert led.pgscan_kswapd == 12
    assert (led.compact_daemon_wake, led.pgmigrate_success) == (1, 1)
    assert led.compaction_cycles == 1500 + 7500
    assert zone.anon_bits == {TARGET_PFN >> 9: 0b1}
    assert (order_of(zone, FIRST), order_of(zone, TARGET_PFN + 1)) == (0, 0)
    state = pa.compaction.state[id(zone)]
    assert (state.defer_shift, state.considered, state.order_failed) == (1, 0, 2)
    assert zone.nr_free_pages == 528

    pa.reclaim.wakeup_kswapd(0, 2, NORMAL)
    assert led.pgscan_kswapd == 12 + 11
    assert (led.compact_daemon_wake, led.pgmigrate_success) == (2, 1)
    assert (state.defer_shift, state.considered) == (1, 1)
    assert zone.nr_free_pages == 539
    assert pa.check_conservation() == 0


def _aged_run(kcompactd: str) -> dict[str, int]:
    proc = run("bench", "--plugins", "baseline", "--workloads", "dma-nokmap", "--set",
               "machine.state=aged", "--set", f"machine.kcompactd={kcompactd}",
               "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json.loads(proc.stdout)["runs"]
    assert result["params"]["machine"]["kcompactd"] is (kcompactd == "1")
    metrics: dict[str, int] = result["metrics"]
    return metrics


def test_machine_kcompactd_through_the_cli() -> None:
    """On the aged default machine, dma-nokmap's contiguous buffers (64 KiB to 4 MiB) wake
    kswapd at high orders, and kswapd wakes kcompactd (``compact_daemon_wake`` > 0, its moves
    in ``pgmigrate_success``); with ``--set machine.kcompactd=0`` the same blocks can only
    come from direct compaction: no kcompactd run, and allocations stall in compaction."""
    on, off = _aged_run("1"), _aged_run("0")
    assert on["compact_daemon_wake"] > 0 and on["pgmigrate_success"] > 0
    assert off["compact_daemon_wake"] == 0 and off["compact_stall"] > 0


def test_machine_kcompactd_bad_value_one_line() -> None:
    one_line_error(run("bench", "--set", "machine.kcompactd=maybe"),
                   "machine.kcompactd='maybe'", "boolean")


def test_kswapd_and_kcompactd_cycles_are_the_daemons_not_the_callers() -> None:
    """A kswapd wake called alone on the order-2 layout: everything it spends (its 12 pages
    reclaimed, 12 x reclaim_page 2400 = 28800; kcompactd's 16500; the buddy work of both) is
    daemon time, so ``daemon_cycles`` equals ``total_cycles``; the engine's latency of a call
    subtracts what the daemons spent during it (here: a call of 50 own cycles during which
    the daemons spent 30 took 50)."""
    from framework.engine import _latency

    pa = order2_machine()
    pa.reclaim.wakeup_kswapd(0, 2, NORMAL)
    led = pa.ledger
    assert led.reclaim_cycles == 12 * 2400
    assert led.compaction_cycles == 16500
    assert led.daemon_cycles == led.total_cycles > led.reclaim_cycles + led.compaction_cycles
    ledger = Ledger()
    ledger.total_cycles = 100.0
    before, daemon = ledger.total_cycles, ledger.daemon_cycles
    ledger.total_cycles += 50 + 30
    ledger.daemon_cycles += 30
    assert _latency(ledger, before, daemon) == 50
