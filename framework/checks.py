"""The promises each design makes, checked while a run goes on (docs/checks.md).

Rules (names are a contract): ``conservation``, ``double_alloc``, ``bad_free``,
``unmapped_present``, ``wx_mapping``, ``not_zeroed``, ``counters``, ``stale_data``,
``buddy_prot``. A violation records the rule, the pfn or address, the event index and a
detail; the run goes on. ``bad_free`` and ``wx_mapping`` are detected inside the kernel
model (freeing pages that are not allocated; a page executable in the module area with a
writable mapping); the others here.

``stale_data`` and ``buddy_prot`` judge a page when it *leaves* a design:

- ``stale_data``: a page that held data of an ``UNMAPPED`` request served unmapped (a
  secret: secretmem, guest memory) still holds it when it is handed to another owner
  (whatever that owner asked for: ``zero=False`` included), when it is back in the buddy, or
  when it is present in the direct map again. v6.3's ``secretmem_free_folio`` restores the
  direct map and zeroes the page in the same call, so the status quo keeps this.
- ``buddy_prot``: a page the buddy holds as free has a direct-map entry other than the
  default (present, writable, not executable, no PKS key): its next user would fault on a
  write, or find it unmapped. Entries changed at the 1 GiB level are not judged (no design
  changes whole 1 GiB entries).
"""

from __future__ import annotations

import bisect
from typing import Any, Final

import attrs

from framework.kernel.consts import (
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_RW,
    MAX_ORDER,
    PAGE_KERNEL,
    PMD_ORDER,
)
from framework.kernel.kernel import Kernel
from framework.request import Allocation, Name, Perm, Request


class Rule(Name):
    """The promises checked during a run (docs/checks.md); the names are a contract."""

    CONSERVATION = "conservation"
    DOUBLE_ALLOC = "double_alloc"
    BAD_FREE = "bad_free"
    UNMAPPED_PRESENT = "unmapped_present"
    WX_MAPPING = "wx_mapping"
    NOT_ZEROED = "not_zeroed"
    COUNTERS = "counters"
    STALE_DATA = "stale_data"
    BUDDY_PROT = "buddy_prot"


RULES: Final[tuple[str, ...]] = tuple(r.value for r in Rule)
_DEFAULT_PROT: Final = PAGE_KERNEL & ~_PAGE_GLOBAL  # GLOBAL is not restored after non-present
KEEP_PER_RULE: Final = 20  # violations kept in detail per rule; all are counted
_UNMAPPED: Final = Perm.UNMAPPED  # read per allocation: a C static in the compiled core


@attrs.frozen(slots=True)
class Violation:
    """One broken promise."""

    rule: str
    where: int
    event: int
    detail: str

    def to_json(self) -> dict[str, Any]:
        """JSON form; ``where`` in hex as the kernel prints pfns and addresses."""
        return {"rule": self.rule, "where": hex(self.where), "event": self.event,
                "detail": self.detail}


class Checker:
    """Keeps the owner of every handed-out page and byte range and judges each event.

    Ownership is kept per page for order-0 blocks (:attr:`owner`) and per block for larger
    ones (:attr:`big`, with their heads sorted in :attr:`big_heads`), so a machine filled with
    2 MiB folios costs one entry per folio, not 512. A block that turns out to overlap
    another owned page or block is split into per-page entries first, so every overlap is
    judged page by page exactly as if all ownership were per page. :meth:`pages` gives the
    per-page view.

    Work follows the model's own granularity, not the page count: whether a block overlaps
    pages owned one by one is asked only of the 2 MiB regions such pages have been in
    (:attr:`page_regions`); rule 3 reads one direct-map entry per 2 MiB or 1 GiB mapping
    and per page only where the map is split; ``not_zeroed`` and ``stale_data`` ask the
    kernel's dirty set for a whole block at once; ``buddy_prot`` skips a changed 2 MiB entry
    the buddy has handed out whole. Verdicts (counts, and the violations kept in detail)
    are those of judging every page one by one: the per-page checker is kept as the oracle
    (framework/testing/perpage_checks.py, tests/test_checks_oracle.py).
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._pcp: set[int] = set()  # pages on per-cpu lists, taken at each check_state
        self.owner: dict[int, int] = {}  # pfn -> allocation id, pages owned one by one
        # 2 MiB regions (pfn >> PMD_ORDER) that have had a page in owner: a block elsewhere
        # overlaps no page owned one by one
        self.page_regions: set[int] = set()
        self.big: dict[int, tuple[int, int]] = {}  # head pfn -> (pages, id), owned whole
        self.big_heads: list[int] = []  # the keys of big, sorted
        self.range_starts: list[int] = []
        self.range_ends: dict[int, int] = {}
        self.counts: dict[str, int] = dict.fromkeys(RULES, 0)
        self.kept: list[Violation] = []
        self.event = 0
        self._seen = 0
        self.secret_allocs: set[int] = set()  # id() of live UNMAPPED allocations served unmapped
        self.secret: set[int] = set()  # pfns freed holding such an allocation's data
        self.freeing: list[int] = []  # pfns added to secret by the free being made now
        # The two fields of the last request on_alloc() saw, read once per request (each
        # read of the interpreted Request class is an attribute lookup, compiled too).
        self.request: Request | None = None
        self.request_unmapped = False  # perm is UNMAPPED
        self.request_zero = False

    def record(self, rule: str, where: int, detail: str) -> None:
        """Count a violation; keep the first few of each rule in detail."""
        self.counts[rule] += 1
        if self.counts[rule] <= KEEP_PER_RULE:
            self.kept.append(Violation(rule, where, self.event, detail))

    def drain_kernel(self) -> None:
        """Move violations the kernel model recorded into the checker, with the event index."""
        found = self.kernel.violations
        while self._seen < len(found):
            rule, where, detail = found[self._seen]
            self._seen += 1
            self.record(rule, where, detail)

    # -- per event -----------------------------------------------------------------------
    def on_alloc(self, aid: int, alloc: Allocation, request: Request) -> None:
        """Rules 1, 2, 3, 5 and ``stale_data`` for memory just handed out."""
        if self.freeing:
            self._settle()
        if request is not self.request:
            self.request = request
            self.request_unmapped = request.perm is _UNMAPPED
            self.request_zero = request.zero
        blocks = alloc.blocks
        if len(blocks) == 1 and blocks[0][1] == 0:  # one page (most requests): same checks
            self._on_alloc_page(aid, blocks[0][0], alloc)
            return
        if blocks:
            self._own_blocks(aid, alloc)
            if alloc.unmapped:
                self.check_unmapped(alloc)
                if self.request_unmapped:
                    self.secret_allocs.add(id(alloc))
            if self.request_zero and self.kernel.dirty:
                self._check_zero(alloc)
            if self.secret:
                self._blocks_handed_over(blocks)
        if alloc.vaddr and not alloc.blocks:
            self._own_range(alloc.vaddr, alloc.vaddr + max(alloc.size, 1))

    def _on_alloc_page(self, aid: int, p: int, alloc: Allocation) -> None:
        """:meth:`on_alloc` for one order-0 block, the hot path."""
        owner = self.owner
        kernel = self.kernel
        # p as one object for the dict and set operations below: the compiled core would
        # box a new int object for each of them (docs/performance.md, "Boxed keys")
        key: Any = p
        if self.big_heads:  # inside a block owned whole? Then judge it page by page
            self._split_big(p, p + 1)
        if key in owner:
            self.record(Rule.DOUBLE_ALLOC, p, f"already owned by allocation {owner[key]}")
        elif key not in kernel.allocated and kernel.zone_of(p).block_is_free(p):
            self.record(Rule.CONSERVATION, p, "handed out a page that is buddy-free")
        owner[key] = aid
        self.page_regions.add(p >> PMD_ORDER)
        if alloc.unmapped:
            if kernel.directmap.is_present(p):
                self.record(Rule.UNMAPPED_PRESENT, p, "unmapped allocation present in the "
                            "direct map")
            if self.request_unmapped:
                self.secret_allocs.add(id(alloc))
        if self.request_zero and key in kernel.dirty:
            self.record(Rule.NOT_ZEROED, p, "zero requested but the page holds data written "
                        "by an earlier owner")
        if self.secret and key in self.secret:
            self._handed_over(p)

    def _own_blocks(self, aid: int, alloc: Allocation) -> None:
        owner = self.owner
        kernel = self.kernel
        for pfn, order in alloc.blocks:
            end = pfn + (1 << order)
            if self.big_heads:
                self._split_big(pfn, end)
            held = self._held_whole(pfn, order)
            if order and not self._owns_any(pfn, end):
                self._own_whole(aid, pfn, end, held)  # no overlap: one entry for the block
                continue
            self.page_regions.update(range(pfn >> PMD_ORDER, ((end - 1) >> PMD_ORDER) + 1))
            for p in range(pfn, end):
                if p in owner:
                    self.record(Rule.DOUBLE_ALLOC, p, f"already owned by allocation {owner[p]}")
                elif not held and p not in kernel.allocated and (
                        kernel.zone_of(p).block_is_free(p)):
                    self.record(Rule.CONSERVATION, p, "handed out a page that is buddy-free")
                owner[p] = aid

    def _owns_any(self, pfn: int, end: int) -> bool:
        """Is a page of ``[pfn, end)`` owned one by one? Asked of the dict only when the
        range lies in a 2 MiB region such a page has been in."""
        regions = self.page_regions
        for m in range(pfn >> PMD_ORDER, ((end - 1) >> PMD_ORDER) + 1):
            if m in regions:
                return not self.owner.keys().isdisjoint(range(pfn, end))
        return False

    def _own_whole(self, aid: int, pfn: int, end: int, held: bool) -> None:
        """Own ``[pfn, end)``, which overlaps nothing owned, as one block (rule 1 per page
        unless the buddy handed it out whole)."""
        kernel = self.kernel
        if not held:
            for p in range(pfn, end):
                if p not in kernel.allocated and kernel.zone_of(p).block_is_free(p):
                    self.record(Rule.CONSERVATION, p, "handed out a page that is buddy-free")
        self.big[pfn] = (end - pfn, aid)
        bisect.insort(self.big_heads, pfn)

    def _split_big(self, start: int, end: int) -> None:
        """Turn every block owned whole that overlaps ``[start, end)`` into per-page entries."""
        heads = self.big_heads
        i = bisect.bisect_right(heads, start)
        if i and heads[i - 1] + self.big[heads[i - 1]][0] > start:
            i -= 1  # the block before start reaches into the range
        while i < len(heads) and heads[i] < end:
            head = heads.pop(i)
            pages, aid = self.big.pop(head)
            self.owner.update(dict.fromkeys(range(head, head + pages), aid))
            self.page_regions.update(range(head >> PMD_ORDER,
                                           ((head + pages - 1) >> PMD_ORDER) + 1))

    def owned_pages(self) -> int:
        """How many pages live allocations own (each page once)."""
        return len(self.owner) + sum(pages for pages, _ in self.big.values())

    def pages(self) -> dict[int, int]:
        """Every owned page and its allocation id (blocks owned whole expanded)."""
        out = dict(self.owner)
        for head, (pages, aid) in self.big.items():
            out.update(dict.fromkeys(range(head, head + pages), aid))
        return out

    def _held_whole(self, pfn: int, order: int) -> bool:
        """Does one block the buddy handed out contain all of ``[pfn, pfn + 2^order)``?

        Blocks are aligned to their order, so the block at ``pfn``'s head of some order >=
        ``order`` contains the range if it is allocated at exactly that order. Otherwise the
        caller checks page by page.
        """
        allocated = self.kernel.allocated
        for o in range(order, MAX_ORDER):
            if allocated.get(pfn >> o << o) == o:
                return True
        return False

    def _own_range(self, start: int, end: int) -> None:
        starts = self.range_starts
        i = bisect.bisect_right(starts, start)
        if i and self.range_ends[starts[i - 1]] > start:
            self.record(Rule.DOUBLE_ALLOC, start, "overlaps a live object")
        elif i < len(starts) and starts[i] < end:
            self.record(Rule.DOUBLE_ALLOC, start, "overlaps a live object")
        starts.insert(i, start)
        self.range_ends[start] = end

    def check_unmapped(self, alloc: Allocation) -> None:
        """Rule 3: memory handed out as unmapped is not present in the direct map."""
        for pfn, order in alloc.blocks:
            if order:
                self._check_unmapped_range(pfn, pfn + (1 << order))
            elif self.kernel.directmap.is_present(pfn):
                self.record(Rule.UNMAPPED_PRESENT, pfn, "unmapped allocation present in the "
                            "direct map")

    def _check_unmapped_range(self, pfn: int, end: int) -> None:
        """Rule 3 over ``[pfn, end)``, one direct-map entry at a time (DirectMap.is_present
        over each 2 MiB region: its PTEs if split, else its PUD or PMD entry)."""
        dm = self.kernel.directmap
        split_pmd, pte_prot = dm.split_pmd, dm.pte_prot
        while pfn < end:
            m = pfn >> PMD_ORDER
            stop = min(end, (m + 1) << PMD_ORDER)
            if m in split_pmd:
                present = [p for p in range(pfn, stop)
                           if pte_prot.get(p, PAGE_KERNEL) & _PAGE_PRESENT]
            elif dm.is_present(pfn):  # the one large entry over [pfn, stop)
                present = list(range(pfn, stop))
            else:
                present = []
            for p in present:
                self.record(Rule.UNMAPPED_PRESENT, p, "unmapped allocation present in the "
                            "direct map")
            pfn = stop

    def _check_zero(self, alloc: Allocation) -> None:
        dirty = self.kernel.dirty
        for pfn, order in alloc.blocks:
            pages = range(pfn, pfn + (1 << order))
            if dirty.isdisjoint(pages):
                continue
            for p in sorted(dirty.intersection(pages)):
                self.record(Rule.NOT_ZEROED, p, "zero requested but the page holds data "
                            "written by an earlier owner")

    def _handed_over(self, p: int) -> None:
        """``stale_data``: page ``p`` held a secret when it was freed; it now has a new owner."""
        self.secret.discard(p)
        if p in self.kernel.dirty:
            self.record(Rule.STALE_DATA, p, "handed to a new owner still holding the data of an "
                        "earlier UNMAPPED owner")

    def _blocks_handed_over(self, blocks: tuple[tuple[int, int], ...]) -> None:
        """:meth:`_handed_over` for every page of ``blocks``, a block at a time."""
        secret = self.secret
        dirty = self.kernel.dirty
        for pfn, order in blocks:
            pages = range(pfn, pfn + (1 << order))
            if secret.isdisjoint(pages):
                continue
            hits = secret.intersection(pages)
            secret.difference_update(hits)
            for p in sorted(hits.intersection(dirty)):
                self.record(Rule.STALE_DATA, p, "handed to a new owner still holding the data "
                            "of an earlier UNMAPPED owner")

    def on_free(self, alloc: Allocation) -> None:
        """Rule 3 once more (while still owned), remember which pages hold a secret, then
        forget the owner."""
        if self.freeing:
            self._settle()
        blocks = alloc.blocks
        secret_allocs = self.secret_allocs
        if secret_allocs:
            key: Any = id(alloc)  # one int object for both set operations
            if key in secret_allocs:
                secret_allocs.discard(key)
                self._remember_secret(blocks)
        if len(blocks) == 1 and blocks[0][1] == 0:  # the single-page case
            self._free_page(blocks[0][0], alloc.unmapped)
            return
        if alloc.unmapped:
            self.check_unmapped(alloc)
        owner = self.owner
        for pfn, order in alloc.blocks:
            end = pfn + (1 << order)
            if self.big.get(pfn, (0,))[0] == end - pfn:  # owned whole: forget the block
                del self.big[pfn]
                del self.big_heads[bisect.bisect_left(self.big_heads, pfn)]
                continue
            if self.big_heads:
                self._split_big(pfn, end)
            for p in range(pfn, end):
                owner.pop(p, None)
        if alloc.vaddr and not alloc.blocks:
            i = bisect.bisect_left(self.range_starts, alloc.vaddr)
            if i < len(self.range_starts) and self.range_starts[i] == alloc.vaddr:
                del self.range_starts[i]
                del self.range_ends[alloc.vaddr]

    def _free_page(self, p: int, unmapped: bool) -> None:
        """:meth:`on_free` for one order-0 block, the hot path."""
        if unmapped and self.kernel.directmap.is_present(p):
            self.record(Rule.UNMAPPED_PRESENT, p, "unmapped allocation present in the "
                        "direct map")
        if self.big_heads:  # a page inside a block owned whole: forget just this page
            self._split_big(p, p + 1)
        self.owner.pop(p, None)

    def _remember_secret(self, blocks: tuple[tuple[int, int], ...]) -> None:
        """The blocks of an UNMAPPED allocation served unmapped are being freed: their
        written pages go to :attr:`freeing`, and to :attr:`secret` at :meth:`_settle` if
        the free left them written."""
        dirty = self.kernel.dirty
        if len(blocks) == 1 and blocks[0][1] == 0:  # one page (secretmem), inline
            if blocks[0][0] in dirty:
                self.freeing.append(blocks[0][0])  # empty: on_free() settled the last free
            return
        freeing = self.freeing
        for pfn, order in blocks:
            if order:
                freeing.extend(dirty.intersection(range(pfn, pfn + (1 << order))))
            elif pfn in dirty:
                freeing.append(pfn)

    # -- whole-state checks --------------------------------------------------------------
    def check_state(self, held_pages: int) -> None:
        """Rules 1 and 6 over the whole model (at ``sample`` events and at the end).

        :param held_pages: pages the design and the status-quo path say they hold outside
            live allocations (caches, packs, slabs).
        """
        kernel = self.kernel
        gap = kernel.check_conservation()
        if gap:
            self.record(Rule.CONSERVATION, 0, f"free + allocated + reserved differs from RAM "
                        f"by {gap} pages")
        accounted = self.owned_pages() + held_pages + len(kernel.pt_pfns)
        if accounted != kernel.nr_allocated:
            self.record(Rule.CONSERVATION, 0, f"{kernel.nr_allocated} pages allocated from the "
                        f"buddy but {accounted} accounted for (live + cached + page tables)")
        dm = kernel.directmap
        if self.freeing:
            self._settle()
        self._pcp = self.kernel.page_alloc.pcp_pfns()  # free too: the next allocation's
        if self.secret:
            self._check_secret()
        self._check_buddy_prot()
        if dm.recount() != (dm.nr_4k, dm.nr_2m, dm.nr_1g):
            self.record(Rule.COUNTERS, 0, f"DirectMap counters {dm.nr_4k, dm.nr_2m, dm.nr_1g} "
                        f"but page tables hold {dm.recount()}")

    def _settle(self) -> None:
        """After a free: its pages the free left written hold a secret, those it cleared
        hold none any more (whatever an earlier free said). Done at
        the next event the checker sees, before a page can pass, unseen, to a new owner
        (a BPF pack or a page table takes pages without an allocation of their own) and be
        written again."""
        dirty = self.kernel.dirty
        freeing = self.freeing
        if len(freeing) > 1:  # (S | F) - (F - dirty) == (S - F) | (F & dirty)
            self.secret.difference_update(freeing)
            self.secret.update(dirty.intersection(freeing))
        elif freeing[0] in dirty:
            self.secret.add(freeing[0])
        else:
            self.secret.discard(freeing[0])
        freeing.clear()  # the same list again: no new list per free

    def _buddy_free(self, p: int) -> bool:
        """Free: on the buddy's lists or on a CPU's per-cpu list (as of this check)."""
        kernel = self.kernel
        return p in self._pcp or (p not in kernel.allocated
                                  and kernel.zone_of(p).block_is_free(p))

    def _check_secret(self) -> None:
        """``stale_data`` for pages that left the design: back in the buddy, or present in
        the direct map, still holding an earlier UNMAPPED owner's data. A page the design
        still holds unmapped stays watched; a page cleared is forgotten."""
        secret = self.secret
        secret.difference_update(secret.difference(self.kernel.dirty))  # cleared: forgotten
        dm = self.kernel.directmap
        for p in sorted(secret):
            if self._buddy_free(p):
                self.secret.discard(p)
                self.record(Rule.STALE_DATA, p, "back in the buddy still holding the data of an "
                            "UNMAPPED owner")
            elif dm.is_present(p):
                self.secret.discard(p)
                self.record(Rule.STALE_DATA, p, "present in the direct map again still holding "
                            "the data of an UNMAPPED owner")

    def _check_buddy_prot(self) -> None:
        """``buddy_prot``: every direct-map entry changed from the default at the 4 KiB or
        2 MiB level covers no page the buddy holds as free (on its free lists or on a CPU's
        per-cpu list: either is handed to the next allocation as it is)."""
        dm = self.kernel.directmap
        for p, prot in dm.pte_prot.items():
            if (prot & ~_PAGE_GLOBAL != _DEFAULT_PROT and (p >> PMD_ORDER) in dm.split_pmd
                    and not dm.is_1g(p) and self._buddy_free(p)):
                self._bad_prot(p, prot)
        for m, prot in dm.pmd_prot.items():
            if prot & ~_PAGE_GLOBAL == _DEFAULT_PROT or m in dm.split_pmd:
                continue
            head = m << PMD_ORDER
            if dm.is_1g(head) or self._held_whole(head, PMD_ORDER):
                continue  # handed out whole: no page of it is free (buddy or per-cpu list)
            for p in range(head, head + (1 << PMD_ORDER)):
                if self._buddy_free(p):
                    self._bad_prot(p, prot)
                    break

    def _bad_prot(self, p: int, prot: int) -> None:
        state = "not present" if not prot & _PAGE_PRESENT else (
            "read-only" if not prot & _PAGE_RW else "executable" if not prot & _PAGE_NX
            else "PKS-keyed")
        self.record(Rule.BUDDY_PROT, p, f"free in the buddy with a {state} direct-map entry")
