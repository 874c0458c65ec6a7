"""``ftrace``: replay the page allocations and frees a real machine recorded with ftrace.

Stands for: whatever ran on the traced machine. The file holds ``kmem:mm_page_alloc``,
``kmem:mm_page_free`` and ``kmem:mm_page_free_batched`` lines (``docs/ftrace.md`` says how to
record them and which text :mod:`framework.workloads.ftrace_parse` accepts). The whole file
is read and
converted when the run is prepared, so a bad trace stops before anything is modelled, with the
file and line in the message.

Mapping: the traced machine's pfns mean nothing to the model (other memory size, other boot
layout, other design), so there is no pfn offset: each traced allocation of ``2**order`` pages
becomes a model allocation of the same order, placed wherever the design puts it, and each
traced free is matched to the live traced block its pfn came from and frees that block's model
allocation. Each allocation is a request of ``4096 << order`` bytes, site ``user`` when its
migratetype is 1 (``MIGRATE_MOVABLE``) and ``kernel`` otherwise (the status-quo path then takes
a movable or an unmovable block of that order), ``perm=RW``, ``zero`` when ``gfp_flags`` holds
``__GFP_ZERO``, any node, ``freed_by=OWNER``. There are no ``write`` events: the trace does not
say which pages their owners wrote.

Frees that do not match one live traced block one to one (all counted in :attr:`Ftrace.replay`):

- A free of a pfn never seen allocated (allocated before tracing started) is skipped
  (``unknown_frees``).
- ``mm_page_free_batched`` repeats, in v6.3, the ``mm_page_free`` that ``free_unref_page_list()``
  already emitted for the same page (``free_pages_prepare()`` runs first); a batched free of a
  page that is no longer allocated is that duplicate and is skipped (``batched_duplicates``).
  One of a page still allocated frees it (its ``mm_page_free`` was lost).
- A free of part of a larger traced block (after ``split_page()``: ``alloc_pages_exact()``
  tails, pages of a split block freed one by one; or the tail buddies ``__free_pages()`` frees
  for a non-compound block it does not hold the last reference to) marks those pages freed
  (``partial_frees``); the model allocation is freed when the last page of the traced block
  is. The model therefore holds the whole block until then (it cannot free part of an
  allocation): its footprint is at most the block, never less.
- A free of pages of a live block that were already freed is skipped (``double_frees``); a
  free larger than the live block its pfn is in is skipped (``mismatched_frees``).
- An allocation that overlaps a live traced block means that block's free was lost (ring
  buffer overrun): the old block is freed first (``lost_frees``), unless the new block lies in
  pages of a split block that were already freed, which the traced kernel may hand out again.
- A block allocated at a pfn not aligned to its order (the buddy allocator never does that) is
  an error when ``strict``, else skipped (``unaligned``).

Blocks still allocated when the trace ends (``live_at_end``) are freed at the end so the run
ends empty, unless ``free_at_end=0`` keeps them live.

Parameters (``--set ftrace.KEY=VALUE``):

- ``path`` (file, required): the trace, plain text or ``.gz`` / ``.xz``.
- ``strict`` (bool, default 1): stop at the first malformed line; 0 skips and counts them.
- ``free_at_end`` (bool, default 1): free the blocks still allocated at the end of the trace.
- ``sample_every`` (events, default 0): emit a sample every N events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from framework.errors import InputError
from framework.filecache import once_per_file
from framework.kernel.consts import MAX_ORDER
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, Event, Request
from framework.workload import Workload, sampled
from framework.workloads.ftrace_parse import ALLOC as TRACE_ALLOC
from framework.workloads.ftrace_parse import FREE_BATCHED, PageEvent, ParseStats, read_trace

MIGRATE_MOVABLE = 1  # include/linux/mmzone.h enum migratetype
PAGE_SIZE = 4096


@attrs.frozen(slots=True)
class ReplayStats:
    """What the replay made of the trace besides the events (see the module docstring).

    :param parse: the parser's counts (lines, skipped malformed lines, lost-event markers...).
    :param allocs: traced allocations replayed.
    :param frees: model frees emitted while the trace ran (not counting ``free_at_end``).
    """

    parse: ParseStats
    allocs: int = 0
    frees: int = 0
    unknown_frees: int = 0
    batched_duplicates: int = 0
    partial_frees: int = 0
    double_frees: int = 0
    mismatched_frees: int = 0
    lost_frees: int = 0
    unaligned: int = 0
    live_at_end: int = 0


@attrs.define(slots=True)
class _Block:
    """A live traced block: its model id and the pages of it already freed (split blocks)."""

    aid: int
    freed: set[int] = attrs.Factory(set)


class _Replayer:
    """Turns page events into model events, tracking the traced machine's live blocks.

    ``live`` is keyed by ``(pfn, order)``: buddy blocks are naturally aligned, so the live block
    of order ``o`` holding pfn ``p`` can only start at ``p`` rounded down to ``2**o``, and
    :meth:`lookup` tries the 11 orders instead of searching.
    """

    def __init__(self, source: str, strict: bool) -> None:
        self.source = source
        self.strict = strict
        self.live: dict[tuple[int, int], _Block] = {}
        self.nr_live = [0] * MAX_ORDER
        self.out: list[Event] = []
        self.requests: dict[tuple[int, bool, bool], Request] = {}
        self.counts: dict[str, int] = dict.fromkeys(
            ("allocs", "frees", "unknown_frees", "batched_duplicates", "partial_frees",
             "double_frees", "mismatched_frees", "lost_frees", "unaligned"), 0)
        self.next_id = 1

    def run(self, events: list[PageEvent]) -> None:
        """Convert every page event, in trace order."""
        for ev in events:
            if ev.event == TRACE_ALLOC:
                self.alloc(ev)
            else:
                self.free(ev.pfn, ev.order, ev.event == FREE_BATCHED)

    # -- allocations ---------------------------------------------------------------------
    def alloc(self, ev: PageEvent) -> None:
        """A traced allocation: retire the blocks it overlaps, then allocate its twin."""
        pfn, order = ev.pfn, ev.order
        if pfn & ((1 << order) - 1):
            self._unaligned(ev)
            return
        self._retire_overlaps(pfn, order)
        aid = self.next_id
        self.next_id += 1
        self.live[(pfn, order)] = _Block(aid)
        self.nr_live[order] += 1
        self.counts["allocs"] += 1
        self.out.append(Event(ALLOC, aid, self._request(ev)))

    def _unaligned(self, ev: PageEvent) -> None:
        if self.strict:
            raise InputError(f"{self.source}:{ev.lineno}: pfn 0x{ev.pfn:x} is not aligned to "
                             f"order {ev.order} (buddy blocks are naturally aligned)")
        self.counts["unaligned"] += 1

    def _request(self, ev: PageEvent) -> Request:
        """One shared Request per (order, site, zero)."""
        user = ev.migratetype == MIGRATE_MOVABLE
        zero = "__GFP_ZERO" in (ev.gfp_flags or "")
        key = (ev.order, user, zero)
        req = self.requests.get(key)
        if req is None:
            req = Request("user" if user else "kernel", PAGE_SIZE << ev.order, "RW", zero,
                          None, "OWNER")
            self.requests[key] = req
        return req

    def _retire_overlaps(self, pfn: int, order: int) -> None:
        """Free the live blocks a new block overlaps: their frees were lost."""
        end = pfn + (1 << order)
        for o in range(order, MAX_ORDER):  # blocks containing the new one
            start = pfn & ~((1 << o) - 1)
            block = self.live.get((start, o)) if self.nr_live[o] else None
            if block is None:
                continue
            if o > order and all(p in block.freed for p in range(pfn, end)):
                continue  # pages of a split block, freed and handed out again
            self._lost(start, o)
        for o in range(order):  # blocks inside the new one
            if self.nr_live[o]:
                for start in range(pfn, end, 1 << o):
                    if (start, o) in self.live:
                        self._lost(start, o)

    def _lost(self, start: int, order: int) -> None:
        self.counts["lost_frees"] += 1
        self._release(start, order)

    # -- frees ---------------------------------------------------------------------------
    def lookup(self, pfn: int) -> tuple[int, int] | None:
        """The live block ``pfn`` belongs to, as (start, order), or None.

        The smallest live block holding ``pfn`` that has not freed it; failing that, the
        smallest that has (so a second free of a page is seen as one).
        """
        live = self.live
        nr_live = self.nr_live
        spent = None
        for o in range(MAX_ORDER):
            if not nr_live[o]:
                continue
            key = (pfn & ~((1 << o) - 1), o)
            block = live.get(key)
            if block is None:
                continue
            if pfn not in block.freed:
                return key
            spent = spent or key
        return spent

    def free(self, pfn: int, order: int, batched: bool) -> None:
        """A traced free of ``2**order`` pages at ``pfn``."""
        key = self.lookup(pfn)
        if key is None:
            self.counts["batched_duplicates" if batched else "unknown_frees"] += 1
            return
        start, border = key
        if border < order:
            self.counts["mismatched_frees"] += 1
            return
        block = self.live[key]
        if border == order and not block.freed:
            self.counts["frees"] += 1
            self._release(start, border)
            return
        pages = range(pfn, pfn + (1 << order))
        if any(p in block.freed for p in pages):
            self.counts["batched_duplicates" if batched else "double_frees"] += 1
            return
        self.counts["partial_frees"] += 1
        block.freed.update(pages)
        if len(block.freed) == 1 << border:
            self.counts["frees"] += 1
            self._release(start, border)

    def _release(self, start: int, order: int) -> None:
        block = self.live.pop((start, order))
        self.nr_live[order] -= 1
        self.out.append(Event(FREE, block.aid))


@once_per_file
def convert_trace(path: str, strict: bool) -> tuple[list[Event], list[int], ReplayStats]:
    """Read, parse and convert a trace into events, the ids still live at its end and the
    replay's counts: once per invocation (every cell replays the same, unmodified lists).

    :raises InputError: as :func:`read_trace` and the strict replay do.
    """
    page_events, parsed = read_trace(path, strict=strict)
    replayer = _Replayer(path, strict)
    replayer.run(page_events)
    tail = [block.aid for block in replayer.live.values()]
    return (replayer.out, tail,
            ReplayStats(parse=parsed, live_at_end=len(tail), **replayer.counts))


class Ftrace(Workload):
    """Replays kmem page tracepoints (see the module docstring)."""

    name = "ftrace"
    summary = "replay kmem:mm_page_alloc/mm_page_free(_batched) lines recorded with ftrace"
    source = "the user's trace (--set ftrace.path=FILE); see docs/ftrace.md"
    default = False
    params = (
        Param("path", str, "", "trace file (text, .gz or .xz) of kmem:mm_page_* lines"),
        Param("strict", bool, True, "stop at the first malformed line (0: skip and count)"),
        Param("free_at_end", bool, True, "free the blocks still allocated when the trace ends"),
        Param("sample_every", int, 0, "emit a sample event every N events (0: never)",
              min=0, max=10**9),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        """Read, parse and convert the whole trace.

        :raises InputError: for a missing path or file, a malformed line (strict), or a block
            not aligned to its order (strict), naming the file and line.
        """
        super().__init__(params, machine)
        path = params["path"]
        if not path:
            raise InputError("ftrace needs a file: --set ftrace.path=FILE (see docs/ftrace.md)")
        self.rows, self.tail, self.replay = convert_trace(path, params["strict"])

    def stats(self) -> dict[str, Any]:
        """The replay's counts (:class:`ReplayStats`), parser counts included."""
        return attrs.asdict(self.replay)

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """The converted trace, in order, then (``free_at_end``) frees of what is left."""
        return sampled(self._all(), self.config["sample_every"])

    def _all(self) -> Iterator[Event]:
        yield from self.rows
        if self.config["free_at_end"]:
            yield from (Event(FREE, aid) for aid in self.tail)
