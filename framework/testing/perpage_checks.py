"""The checker as it was before block-level checks: every rule judged page by page (oracle).

:class:`PerPageChecker` is the per-page implementation of :class:`framework.checks.Checker`
kept unchanged, for tests to compare verdicts with: ``tests/test_checks_oracle.py`` runs
every built-in design and the broken fixtures on the default workloads with both and
compares the violation counts. It is slower (it walks every page of every block) and is
never used by the engine.

It is a standalone copy, not a subclass: the parts it shares with the checker (recording,
ownership bookkeeping) are those the oracle must not take from the code it checks, and
:class:`~framework.checks.Checker` is a native class when the core is compiled, which an
interpreted subclass could not extend without slowing the checker's every call.
"""

from __future__ import annotations

import bisect

from framework.checks import _DEFAULT_PROT, KEEP_PER_RULE, RULES, Rule, Violation
from framework.kernel.consts import (
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_RW,
    MAX_ORDER,
    PMD_ORDER,
)
from framework.kernel.kernel import Kernel
from framework.request import Allocation, Perm, Request


class PerPageChecker:
    """Keeps the owner of every handed-out page and byte range and judges each event.

    Ownership is kept per page for order-0 blocks (:attr:`owner`) and per block for larger
    ones (:attr:`big`, with their heads sorted in :attr:`big_heads`), so a machine filled with
    2 MiB folios costs one entry per folio, not 512. A block that turns out to overlap
    another owned page or block is split into per-page entries first, so every overlap is
    judged page by page exactly as if all ownership were per page. :meth:`pages` gives the
    per-page view.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._pcp: set[int] = set()  # pages on per-cpu lists, taken at each check_state
        self.owner: dict[int, int] = {}  # pfn -> allocation id, pages owned one by one
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
        blocks = alloc.blocks
        if len(blocks) == 1 and blocks[0][1] == 0:  # one page (most requests): same checks
            self._on_alloc_page(aid, blocks[0][0], alloc, request)
            return
        if blocks:
            self._own_blocks(aid, alloc)
            if alloc.unmapped:
                self.check_unmapped(alloc)
                if request.perm is Perm.UNMAPPED:
                    self.secret_allocs.add(id(alloc))
            if request.zero and self.kernel.dirty:
                self._check_zero(alloc)
            if self.secret:
                for p in alloc.pfns():
                    if p in self.secret:
                        self._handed_over(p)
        if alloc.vaddr and not alloc.blocks:
            self._own_range(alloc.vaddr, alloc.vaddr + max(alloc.size, 1))

    def _on_alloc_page(self, aid: int, p: int, alloc: Allocation, request: Request) -> None:
        """:meth:`on_alloc` for one order-0 block, the hot path."""
        owner = self.owner
        kernel = self.kernel
        if self.big_heads:  # inside a block owned whole? Then judge it page by page
            self._split_big(p, p + 1)
        if p in owner:
            self.record(Rule.DOUBLE_ALLOC, p, f"already owned by allocation {owner[p]}")
        elif p not in kernel.allocated and kernel.zone_of(p).block_is_free(p):
            self.record(Rule.CONSERVATION, p, "handed out a page that is buddy-free")
        owner[p] = aid
        if alloc.unmapped:
            if kernel.directmap.is_present(p):
                self.record(Rule.UNMAPPED_PRESENT, p, "unmapped allocation present in the "
                            "direct map")
            if request.perm is Perm.UNMAPPED:
                self.secret_allocs.add(id(alloc))
        if request.zero and p in kernel.dirty:
            self.record(Rule.NOT_ZEROED, p, "zero requested but the page holds data written "
                        "by an earlier owner")
        if self.secret and p in self.secret:
            self._handed_over(p)

    def _own_blocks(self, aid: int, alloc: Allocation) -> None:
        owner = self.owner
        kernel = self.kernel
        for pfn, order in alloc.blocks:
            end = pfn + (1 << order)
            if self.big_heads:
                self._split_big(pfn, end)
            held = self._held_whole(pfn, order)
            if order and not any(p in owner for p in range(pfn, end)):
                self._own_whole(aid, pfn, end, held)  # no overlap: one entry for the block
                continue
            for p in range(pfn, end):
                if p in owner:
                    self.record(Rule.DOUBLE_ALLOC, p, f"already owned by allocation {owner[p]}")
                elif not held and p not in kernel.allocated and (
                        kernel.zone_of(p).block_is_free(p)):
                    self.record(Rule.CONSERVATION, p, "handed out a page that is buddy-free")
                owner[p] = aid

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
        dm = self.kernel.directmap
        for pfn, order in alloc.blocks:
            for p in range(pfn, pfn + (1 << order)):
                if dm.is_present(p):
                    self.record(Rule.UNMAPPED_PRESENT, p, "unmapped allocation present in the "
                                "direct map")

    def _check_zero(self, alloc: Allocation) -> None:
        dirty = self.kernel.dirty
        for pfn, order in alloc.blocks:
            for p in range(pfn, pfn + (1 << order)):
                if p in dirty:
                    self.record(Rule.NOT_ZEROED, p, "zero requested but the page holds data "
                                "written by an earlier owner")

    def _handed_over(self, p: int) -> None:
        """``stale_data``: page ``p`` held a secret when it was freed; it now has a new owner."""
        self.secret.discard(p)
        if p in self.kernel.dirty:
            self.record(Rule.STALE_DATA, p, "handed to a new owner still holding the data of an "
                        "earlier UNMAPPED owner")

    def on_free(self, alloc: Allocation) -> None:
        """Rule 3 once more (while still owned), remember which pages hold a secret, then
        forget the owner."""
        if self.freeing:
            self._settle()
        if self.secret_allocs and id(alloc) in self.secret_allocs:
            self.secret_allocs.discard(id(alloc))
            dirty = self.kernel.dirty
            self.freeing = [p for p in alloc.pfns() if p in dirty]
            self.secret.update(self.freeing)
        blocks = alloc.blocks
        if len(blocks) == 1 and blocks[0][1] == 0:  # the single-page case, inline
            p = blocks[0][0]
            if alloc.unmapped and self.kernel.directmap.is_present(p):
                self.record(Rule.UNMAPPED_PRESENT, p, "unmapped allocation present in the "
                            "direct map")
            self.owner.pop(p, None)
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
        """After a free: its pages that the free cleared hold no secret any more. Done at
        the next event the checker sees, before a page can pass, unseen, to a new owner
        (a BPF pack or a page table takes pages without an allocation of their own) and be
        written again."""
        dirty = self.kernel.dirty
        for p in self.freeing:
            if p not in dirty:
                self.secret.discard(p)
        self.freeing = []

    def _buddy_free(self, p: int) -> bool:
        """Free: on the buddy's lists or on a CPU's per-cpu list (as of this check)."""
        kernel = self.kernel
        return p in self._pcp or (p not in kernel.allocated
                                  and kernel.zone_of(p).block_is_free(p))

    def _check_secret(self) -> None:
        """``stale_data`` for pages that left the design: back in the buddy, or present in
        the direct map, still holding an earlier UNMAPPED owner's data. A page the design
        still holds unmapped stays watched; a page cleared is forgotten."""
        dirty = self.kernel.dirty
        dm = self.kernel.directmap
        for p in sorted(self.secret):
            if p not in dirty:
                self.secret.discard(p)
            elif self._buddy_free(p):
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
            if dm.is_1g(head):
                continue
            for p in range(head, head + (1 << PMD_ORDER)):
                if self._buddy_free(p):
                    self._bad_prot(p, prot)
                    break

    def _bad_prot(self, p: int, prot: int) -> None:
        state = "not present" if not prot & _PAGE_PRESENT else (
            "read-only" if not prot & _PAGE_RW else "executable" if not prot & _PAGE_NX
            else "PKS-keyed")
        self.record(Rule.BUDDY_PROT, p, f"free in the buddy with a {state} direct-map entry")
