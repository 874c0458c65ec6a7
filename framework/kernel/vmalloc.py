"""Virtual address space for vmalloc-type areas: the module area's ``vmap_area`` allocator.

Addresses are in pages from the start of the range. Free space is a sorted list of
``[start, end)`` intervals; an allocation takes the lowest-addressed fit
(mm/vmalloc.c ``__alloc_vmap_area`` / ``find_vmap_lowest_match``) and a free merges with its
neighbours (``merge_or_add_vmap_area``). The kernel finds the lowest fit in O(log n) with an
augmented rbtree; the model scans, which changes simulation time, not modelled cost.
"""

from __future__ import annotations

import bisect

import attrs

VM_FLUSH_RESET_PERMS = 0x100  # include/linux/vmalloc.h
VM_ALLOW_HUGE_VMAP = 0x400
VM_NO_GUARD = 0x40


@attrs.define(slots=True, eq=False)
class VmStruct:
    """A ``struct vm_struct``: one vmalloc area and its backing pages.

    :ivar addr: first page of the area (in pages from the range start).
    :ivar nr_pages: 4 KiB pages mapped (the guard page excluded).
    :ivar page_order: 0, or 9 for 2 MiB mappings (``VM_ALLOW_HUGE_VMAP``).
    :ivar pages: every backing pfn, one per 4 KiB page (``area->pages``).
    :ivar prot: protection of each mapped 4 KiB page in the area's own mapping.
    :ivar span: pages reserved in the address space (with the guard page).
    """

    addr: int
    nr_pages: int
    page_order: int
    flags: int
    span: int
    pages: list[int] = attrs.field(factory=list)
    prot: list[int] = attrs.field(factory=list)


class VmapSpace:
    """Lowest-address-first allocator of one virtual range (e.g. the 1008 MiB module area)."""

    __slots__ = ("base", "ends", "size", "starts")

    def __init__(self, base: int, size: int) -> None:
        self.base = base
        self.size = size
        self.starts: list[int] = [base]
        self.ends: list[int] = [base + size]

    def alloc(self, npages: int, align: int = 1) -> int:
        """Reserve ``npages`` pages aligned to ``align`` pages at the lowest address; -1 if full."""
        starts, ends = self.starts, self.ends
        for i in range(len(starts)):
            start = -(-starts[i] // align) * align
            if start + npages <= ends[i]:
                self._carve(i, start, start + npages)
                return start
        return -1

    def _carve(self, i: int, start: int, end: int) -> None:
        lo, hi = self.starts[i], self.ends[i]
        del self.starts[i], self.ends[i]
        if end < hi:
            self.starts.insert(i, end)
            self.ends.insert(i, hi)
        if lo < start:
            self.starts.insert(i, lo)
            self.ends.insert(i, start)

    def free(self, start: int, npages: int) -> None:
        """Return ``[start, start + npages)``, merging with free neighbours."""
        end = start + npages
        i = bisect.bisect_left(self.starts, start)
        if i > 0 and self.ends[i - 1] == start:
            i -= 1
            start = self.starts[i]
            del self.starts[i], self.ends[i]
        if i < len(self.starts) and self.starts[i] == end:
            end = self.ends[i]
            del self.starts[i], self.ends[i]
        self.starts.insert(i, start)
        self.ends.insert(i, end)

    def free_pages(self) -> int:
        """Pages not reserved."""
        return sum(e - s for s, e in zip(self.starts, self.ends, strict=True))
