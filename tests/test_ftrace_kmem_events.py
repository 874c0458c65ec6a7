"""Replaying a kmem trace as ``trace-cmd record -e kmem`` records it: failed allocations and
the kmem events next to mm_page_alloc/mm_page_free.

Field layouts from the ``TP_printk`` formats of include/trace/events/kmem.h (v6.3):
``mm_page_alloc_zone_locked`` "page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d",
``mm_page_pcpu_drain`` "page=%p pfn=0x%lx order=%d migratetype=%d", ``mm_page_alloc_extfrag``
"page=%p pfn=0x%lx alloc_order=%d fallback_order=%d pageblock_order=%d alloc_migratetype=%d
fallback_migratetype=%d fragmenting=%d change_ownership=%d", ``kmalloc`` "call_site=%pS
ptr=%p bytes_req=%zu bytes_alloc=%zu gfp_flags=%s node=%d accounted=%s", ``kfree``
"call_site=%pS ptr=%p", ``kmem_cache_free`` "call_site=%pS ptr=%p name=%s". A failed
allocation stores ``pfn = -1UL`` (TP_fast_assign); trace-cmd prints that raw value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framework.request import ALLOC, FREE, Event, Request
from framework.workloads.ftrace import Ftrace
from framework.workloads.ftrace_parse import FREE as TRACE_FREE
from framework.workloads.ftrace_parse import parse
from tests.conftest import small_spec

_T = "            bash-1234    [003] d..1.  5678.9012{:02d}: "
KMEM_TRACE = [
    _T.format(1) + "mm_page_alloc: page=0000000000000000 pfn=0xffffffffffffffff order=9"
    " migratetype=1 gfp_flags=GFP_TRANSHUGE",
    _T.format(2) + "mm_page_alloc_zone_locked: page=ffffea000048d140 pfn=0x12345 order=0"
    " migratetype=1 percpu_refill=1",
    _T.format(3) + "mm_page_alloc: page=ffffea000048d140 pfn=0x12345 order=0 migratetype=1"
    " gfp_flags=GFP_HIGHUSER_MOVABLE",
    _T.format(4) + "mm_page_pcpu_drain: page=ffffea000048d180 pfn=0x12346 order=0"
    " migratetype=1",
    _T.format(5) + "mm_page_alloc_extfrag: page=ffffea000048d140 pfn=0x12345 alloc_order=0"
    " fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1"
    " fragmenting=0 change_ownership=1",
    _T.format(6) + "kmalloc: call_site=__alloc_skb+0x8e/0x1e0 ptr=ffff888100a4c000"
    " bytes_req=640 bytes_alloc=1024 gfp_flags=GFP_KERNEL node=-1 accounted=false",
    _T.format(7) + "kfree: call_site=kfree_skb+0x3e/0xb0 ptr=ffff888100a4c000",
    _T.format(8) + "kmem_cache_alloc: call_site=alloc_inode+0x1c/0xa0 ptr=ffff888100a4c400"
    " bytes_req=600 bytes_alloc=640 gfp_flags=GFP_KERNEL node=-1 accounted=true",
    _T.format(9) + "kmem_cache_free: call_site=rcu_do_batch+0x18c/0x4b0"
    " ptr=ffff888100a4c400 name=inode_cache",
    # trace-cmd report with its kmem plugin: the call site resolved in parentheses first
    "        bash-1234  [003]  5678.901210: kmalloc:              (__alloc_skb+0x8e)"
    " call_site=0xffffffff81a3c6fe ptr=0xffff888100a4c000 bytes_req=640 bytes_alloc=1024"
    " gfp_flags=GFP_KERNEL node=-1 accounted=false",
    "        bash-1234  [003]  5678.901211: mm_page_alloc:        page=0x0"
    " pfn=0xffffffffffffffff order=0 migratetype=0 gfp_flags=GFP_NOWAIT",
    _T.format(12) + "mm_page_free: page=ffffea000048d140 pfn=0x12345 order=0",
]


def test_failed_allocations_with_pfn_minus_one_are_counted_not_returned() -> None:
    """Lines 1 and 11 are failed allocations (pfn -1UL); lines 3 and 12 the only page events;
    the eight other lines are other kmem events, counted by name (kmalloc twice)."""
    events, stats = parse(KMEM_TRACE)
    assert [(e.lineno, e.event, e.pfn) for e in events] == [
        (3, "mm_page_alloc", 0x12345), (12, TRACE_FREE, 0x12345)]
    assert (stats.failed_allocs, stats.skipped, stats.other_events) == (2, 0, 8)
    assert stats.other_by_event == {
        "kfree": 1, "kmalloc": 2, "kmem_cache_alloc": 1, "kmem_cache_free": 1,
        "mm_page_alloc_extfrag": 1, "mm_page_alloc_zone_locked": 1, "mm_page_pcpu_drain": 1,
    }


def test_minus_one_pfn_on_a_free_is_still_an_error() -> None:
    """Only an allocation can fail; a free of pfn -1 is malformed (strict raises, one line)."""
    _, stats = parse([_T.format(1) + "mm_page_free: page=0 pfn=0xffffffffffffffff order=0"],
                     strict=False)
    assert stats.skipped == 1 and "not below 2**52" in stats.skip_reasons[0]


def test_kmem_trace_replays_and_counts_every_event(tmp_path: Path) -> None:
    """Replay: one allocation (line 3) and its free (line 12); the rest only counted, in the
    workload's stats by event name."""
    path = tmp_path / "kmem.txt"
    path.write_text("\n".join(KMEM_TRACE) + "\n")
    workload = Ftrace({"path": str(path), "strict": True, "free_at_end": True,
                       "sample_every": 0}, small_spec())
    rng = np.random.Generator(np.random.PCG64(1))
    user = Request("user", 4096, "RW", False, None, "OWNER")
    assert list(workload.events(rng)) == [Event(ALLOC, 1, user), Event(FREE, 1)]
    stats = workload.stats()
    assert (stats["allocs"], stats["frees"]) == (1, 1)
    assert stats["parse"]["failed_allocs"] == 2
    assert stats["parse"]["other_by_event"]["kmalloc"] == 2
    assert sum(stats["parse"]["other_by_event"].values()) == 8
