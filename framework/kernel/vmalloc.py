"""Virtual address space for vmalloc-type areas: the module area's ``vmap_area`` allocator.

Addresses are in pages from the start of the range. Free space is a sorted list of
``[start, end)`` intervals; an allocation takes the lowest-addressed fit
(mm/vmalloc.c ``__alloc_vmap_area`` / ``find_vmap_lowest_match``) and a free merges with its
neighbours (``merge_or_add_vmap_area``). The kernel finds the lowest fit with an augmented
rbtree; the model indexes the free ranges by size class (:class:`VmapSpace`), so neither a
search nor a ``vfree`` walks every range or area: simulation time, not modelled cost.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable
from typing import Final

import attr

from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import (
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_RW,
    MIGRATE_UNMOVABLE,
    MODULES_LEN_PAGES,
    PAGE_KERNEL,
    PAGE_SHIFT,
    PMD_ORDER,
)
from framework.kernel.directmap import DirectMap
from framework.kernel.ledger import Ledger
from framework.kernel.page_alloc import PageAlloc, Violation
from framework.kernel.tlbflush import TlbFlush
from framework.machine.spec import MachineSpec

VM_FLUSH_RESET_PERMS: Final = 0x100  # include/linux/vmalloc.h
VM_ALLOW_HUGE_VMAP: Final = 0x400
VM_NO_GUARD: Final = 0x40
MODULES_VADDR: Final = 0xFFFFFFFFC0000000  # __START_KERNEL_map + KERNEL_IMAGE_SIZE (1 GiB, KASLR)
MODULES_VPAGE: Final = MODULES_VADDR >> PAGE_SHIFT
PMD_PAGES: Final = 1 << PMD_ORDER
_PRESENT_RW: Final = _PAGE_PRESENT | _PAGE_RW
#: ``set_direct_map_*_noflush(pfn, nr)`` as arch/x86/mm/pat/set_memory.c provides it.
DirectMapChange = Callable[..., int]


# attr.s(auto_attribs=True), not slotted: the spelling mypyc compiles to a native class (fixed
# attributes, as slots) that keeps the repr attrs writes
@attr.s(auto_attribs=True, eq=False)
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
    pages: list[int] = attr.ib(factory=list)
    prot: list[int] = attr.ib(factory=list)


#: Free ranges shorter than this many pages are indexed by their exact size, longer ones by
#: their power of two (:class:`VmapSpace`).
EXACT_SIZES: Final = 64
#: :class:`VmapSpace` indexes its free ranges by size once it has more than this many, and
#: drops the index below a quarter of it: a scan of a few ranges is cheaper than an index.
INDEX_FROM: Final = 32
#: Areas of at least this many pages update :attr:`Vmalloc.vm_mapped` in one go, and take,
#: change and free their pages through the bulk paths (smaller ones page by page: cheaper
#: for a few pages).
BULK_PAGES: Final = 16
_POW2_BASE: Final = EXACT_SIZES - EXACT_SIZES.bit_length()  # size class of the first power of two


def size_class(npages: int) -> int:
    """The class :class:`VmapSpace` files a free range of ``npages`` under (monotonic)."""
    if npages < EXACT_SIZES:
        return npages
    return _POW2_BASE + npages.bit_length()


def class_min(cls: int) -> int:
    """The shortest free range of class ``cls``."""
    if cls < EXACT_SIZES:
        return cls
    return 1 << (cls - _POW2_BASE - 1)


class VmapSpace:
    """Lowest-address-first allocator of one virtual range (e.g. the 1008 MiB module area).

    Free space is kept twice: sorted ``[start, end)`` lists for merging at free
    (``merge_or_add_vmap_area``), and the free ranges' starts sorted by address within size
    classes (:func:`size_class`; :attr:`nonempty` has bit ``c`` set while class ``c`` has a
    range), the latter only while there are more than ``index_from`` free ranges (with a
    few, a scan in address order is cheaper). The lowest fit (``find_vmap_lowest_match``,
    an augmented rbtree in the kernel) is then the lowest of each big-enough class's own
    lowest fit: the first range of a class
    whose every range fits, and a walk in address order (stopping at the best found) in the
    few classes where some ranges are too short for the size plus its alignment. Below
    :data:`EXACT_SIZES` pages a class is one size, so with no alignment that walk is empty.
    """

    __slots__ = ("base", "by_class", "end_of", "ends", "index_from", "indexed", "nonempty",
                 "size", "starts")

    def __init__(self, base: int, size: int, index_from: int = INDEX_FROM) -> None:
        self.base = base
        self.size = size
        self.index_from = index_from
        self.indexed = False  # by_class, end_of and nonempty are kept
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.end_of: dict[int, int] = {}  # start -> end of each free range
        self.by_class: dict[int, list[int]] = {}  # size class -> its ranges' starts, sorted
        self.nonempty = 0
        self._insert(0, base, base + size)

    def alloc(self, npages: int, align: int = 1) -> int:
        """Reserve ``npages`` pages aligned to ``align`` pages at the lowest address; -1 if full."""
        if not self.indexed:
            starts, ends = self.starts, self.ends
            for i in range(len(starts)):  # few ranges: the first fit in address order
                start = -(-starts[i] // align) * align
                if start + npages <= ends[i]:
                    self._carve(i, start, start + npages)
                    return start
            return -1
        need = npages + align - 1  # a range this long fits wherever it starts
        first = size_class(npages)  # shorter classes hold no range long enough
        sure = max(first, size_class(need))
        while class_min(sure) < need:
            sure += 1  # the first class whose every range fits
        by_class = self.by_class
        best = -1
        mask = self.nonempty >> sure << sure
        while mask:  # the lowest of each sure class's lowest range
            low = mask & -mask
            lo = by_class[low.bit_length() - 1][0]
            if best < 0 or lo < best:
                best = lo
            mask ^= low
        end_of = self.end_of
        for cls in range(first, sure):  # classes where a range may be too short: walk them
            for lo in by_class.get(cls, ()):
                if 0 <= best <= lo:
                    break
                if -(-lo // align) * align + npages <= end_of[lo]:
                    best = lo
                    break
        if best < 0:
            return -1
        start = -(-best // align) * align
        self._carve(bisect.bisect_left(self.starts, best), start, start + npages)
        return start

    def _insert(self, i: int, start: int, end: int) -> None:
        """Add free range ``[start, end)`` at index ``i`` of the sorted lists."""
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        if self.indexed:
            self._index(start, end)
        elif len(self.starts) > self.index_from:
            self.indexed = True
            for lo, hi in zip(self.starts, self.ends, strict=True):
                self._index(lo, hi)

    def _index(self, start: int, end: int) -> None:
        """File free range ``[start, end)`` under its size class."""
        self.end_of[start] = end
        cls = size_class(end - start)
        found = self.by_class.get(cls)
        if found is None:
            self.by_class[cls] = [start]
            self.nonempty |= 1 << cls
        else:
            bisect.insort(found, start)

    def _delete(self, i: int) -> None:
        """Drop the free range at index ``i`` of the sorted lists."""
        start = self.starts.pop(i)
        end = self.ends.pop(i)
        if not self.indexed:
            return
        if len(self.starts) < self.index_from // 4:  # few left: scan instead
            self.indexed = False
            self.end_of.clear()
            self.by_class.clear()
            self.nonempty = 0
            return
        del self.end_of[start]
        cls = size_class(end - start)
        found = self.by_class[cls]
        if len(found) == 1:
            del self.by_class[cls]
            self.nonempty &= ~(1 << cls)
        else:
            del found[bisect.bisect_left(found, start)]

    def _carve(self, i: int, start: int, end: int) -> None:
        lo, hi = self.starts[i], self.ends[i]
        self._delete(i)
        if end < hi:
            self._insert(i, end, hi)
        if lo < start:
            self._insert(i, lo, start)

    def free(self, start: int, npages: int) -> None:
        """Return ``[start, start + npages)``, merging with free neighbours."""
        end = start + npages
        i = bisect.bisect_left(self.starts, start)
        if i > 0 and self.ends[i - 1] == start:
            i -= 1
            start = self.starts[i]
            self._delete(i)
        if i < len(self.starts) and self.starts[i] == end:
            end = self.ends[i]
            self._delete(i)
        self._insert(i, start, end)

    def free_pages(self) -> int:
        """Pages not reserved."""
        return sum(e - s for s, e in zip(self.starts, self.ends, strict=True))


class Vmalloc:
    """mm/vmalloc.c for the module area: areas, their backing pages, lazy purge, ``vfree``.

    :ivar modules: the module area's address space.
    :ivar areas: first page -> live :class:`VmStruct`.
    :ivar vm_mapped: pfn -> how many live areas map it (two only after a design's bug:
        freeing one area must not hide the other from the bad_free check).
    """

    #: set_memory.c's direct-map changes, wired in once it exists (it needs this object too)
    set_direct_map_invalid_noflush: DirectMapChange
    set_direct_map_default_noflush: DirectMapChange
    #: SetMemory.set_direct_map_pages: one of the two above per page of a list, in turn
    set_direct_map_pages: Callable[[list[int], int, int], None]

    def __init__(self, spec: MachineSpec, costs: dict[str, float], ledger: Ledger,
                 page_alloc: PageAlloc, tlb: TlbFlush, directmap: DirectMap,
                 violation: Violation, vm_mapped: dict[int, int]) -> None:
        self.spec = spec
        self.costs = costs
        self.ledger = ledger
        self.directmap = directmap
        self.violation = violation
        self.alloc_pages = page_alloc.alloc_pages
        self.alloc_pages_bulk = page_alloc.alloc_pages_bulk
        self.free_pages = page_alloc.free_pages
        self.free_pages_bulk = page_alloc.free_pages_bulk
        self.split_page = page_alloc.split_page
        self.flush_tlb_all = tlb.flush_tlb_all
        self.flush_tlb_kernel_range = tlb.flush_tlb_kernel_range
        self.modules = VmapSpace(MODULES_VPAGE, MODULES_LEN_PAGES)
        self.areas: dict[int, VmStruct] = {}
        self.vm_mapped = vm_mapped
        self.area_starts: list[int] = []
        self.lazy: list[tuple[int, int]] = []
        self.lazy_nr = 0
        self.lazy_max = (32 << 20 >> PAGE_SHIFT) * spec.cpus.bit_length()  # lazy_max_pages()

    def find_area(self, vpage: int) -> VmStruct | None:
        """find_vm_area() for any page inside an area."""
        i = bisect.bisect_right(self.area_starts, vpage) - 1
        if i < 0:
            return None
        area = self.areas[self.area_starts[i]]
        return area if vpage < area.addr + area.nr_pages else None

    def vmalloc_node_range(self, nr_pages: int, vm_flags: int, node: int | None = None,
                           align_pages: int = 1) -> VmStruct | None:
        """__vmalloc_node_range() in the module area with PAGE_KERNEL (RW, NX).

        With ``VM_ALLOW_HUGE_VMAP`` and at least 2 MiB per node, size and alignment round up
        to 2 MiB and the backing is order-9 pages (split_page'd as v6.3 does); if any order-9
        allocation fails, everything is undone and retried with 4 KiB pages.
        """
        per_node = nr_pages if node is not None else nr_pages // self.spec.nodes
        if vm_flags & VM_ALLOW_HUGE_VMAP and per_node >= PMD_PAGES:
            area = self._vmalloc_try(-(-nr_pages // PMD_PAGES) * PMD_PAGES, vm_flags, node,
                                     max(align_pages, PMD_PAGES), PMD_ORDER)
            if area is not None:
                return area
        return self._vmalloc_try(nr_pages, vm_flags, node, align_pages, 0)

    def _vmalloc_try(self, nr_pages: int, vm_flags: int, node: int | None, align: int,
                     order: int) -> VmStruct | None:
        """__vmalloc_node_range() at one page order, backed by vm_area_alloc_pages()."""
        area = self._reserve(nr_pages, vm_flags, align, order)
        if area is None:
            return None
        if order:
            pages_from = self._pages_from(area, self._buddy_page(node), order)
        else:
            pages_from = self._pages_from_buddy(area, node)
        return self._setup(area) if pages_from else None

    def _buddy_page(self, node: int | None) -> Callable[[int], int]:
        """alloc_pages(order, GFP_KERNEL) on ``node``, as :meth:`_pages_from` calls it."""
        return functools.partial(self.alloc_pages, mt=MIGRATE_UNMOVABLE, node=node)

    def vmalloc_from(self, nr_pages: int, vm_flags: int, alloc_page: Callable[[int], int],
                     align: int = 1, order: int = 0) -> VmStruct | None:
        """__vmalloc_node_range() whose backing pages come from ``alloc_page(order)``.

        The buddy for plain vmalloc; a design's own source for module memory it serves (v3's
        ``__GFP_UNMAPPED`` module_alloc, which skips the bulk allocator and takes one
        ``alloc_pages(gfp, 0)`` per page). Order-9 pages are ``split_page``'d. On a failure
        the pages taken so far go back through the generic free path and None is returned.
        """
        area = self._reserve(nr_pages, vm_flags, align, order)
        if area is None or not self._pages_from(area, alloc_page, order):
            return None
        return self._setup(area)

    def _reserve(self, nr_pages: int, vm_flags: int, align: int, order: int) -> VmStruct | None:
        """alloc_vmap_area(): the address range (with the guard page unless VM_NO_GUARD)."""
        span = nr_pages + (0 if vm_flags & VM_NO_GUARD else 1)
        addr = self.modules.alloc(span, align)
        self.ledger.charge("vmap", self.costs["vmap_area"])
        if addr < 0:
            return None
        return VmStruct(addr, nr_pages, order, vm_flags, span)

    def _pages_from(self, area: VmStruct, alloc_page: Callable[[int], int], order: int) -> bool:
        """vm_area_alloc_pages() from ``alloc_page(order)``; False (all undone) on a failure."""
        step = 1 << order
        for _ in range(0, area.nr_pages, step):
            pfn = alloc_page(order)
            if pfn == NO_PAGE:
                self._undo_reserve(area)
                return False
            if order:
                self.split_page(pfn, order)
            area.pages.extend(range(pfn, pfn + step))
        return True

    def _pages_from_buddy(self, area: VmStruct, node: int | None) -> bool:
        """vm_area_alloc_pages() of 4 KiB pages from the buddy: the bulk allocator
        (PageAlloc.alloc_pages_bulk: the pages, state and cycles of one ``alloc_pages(0)``
        per page, as :meth:`_pages_from` would call it)."""
        if area.nr_pages < BULK_PAGES:
            alloc_pages = self.alloc_pages
            for _ in range(area.nr_pages):
                pfn = alloc_pages(0, MIGRATE_UNMOVABLE, node)
                if pfn == NO_PAGE:
                    self._undo_reserve(area)
                    return False
                area.pages.append(pfn)
            return True
        pages = self.alloc_pages_bulk(area.nr_pages, MIGRATE_UNMOVABLE, node)
        area.pages.extend(pages)
        if len(pages) < area.nr_pages:
            self._undo_reserve(area)
            return False
        return True

    def _undo_reserve(self, area: VmStruct) -> None:
        """A page allocation failed: free the pages taken so far and the address range."""
        self._free_area_pages(area)
        self.modules.free(area.addr, area.span)

    def _setup(self, area: VmStruct) -> VmStruct:
        """The area's pages are in: map them (PAGE_KERNEL) and make the area live."""
        nr_pages = area.nr_pages
        area.prot = [PAGE_KERNEL] * nr_pages
        self.ledger.charge("vmap", self.costs["vmap_page"] * (nr_pages >> area.page_order))
        self._insert_area(area)
        return area

    def _insert_area(self, area: VmStruct) -> None:
        """insert_vmap_area() + setup_vmalloc_vm(): the area is live and maps its pages."""
        self.areas[area.addr] = area
        bisect.insort(self.area_starts, area.addr)
        mapped = self.vm_mapped
        pages = area.pages
        if len(pages) >= BULK_PAGES and mapped.keys().isdisjoint(pages):  # pages no other
            # area maps (the usual case), counted in one go
            before = len(mapped)
            mapped.update(dict.fromkeys(pages, 1))
            if len(mapped) == before + len(pages):
                return
            for pfn in pages:  # a page twice in this area: count it one by one
                mapped.pop(pfn, None)
        for pfn in pages:
            mapped[pfn] = mapped.get(pfn, 0) + 1

    def _free_area_pages(self, area: VmStruct) -> None:
        """vfree()'s page loop: __free_pages() of every backing page, in order
        (PageAlloc.free_pages_bulk: what one free_pages(pfn, 0) per page does)."""
        if len(area.pages) < BULK_PAGES:
            for pfn in area.pages:
                self.free_pages(pfn, 0)
        else:
            self.free_pages_bulk(area.pages)
        area.pages = []

    def module_alloc(self, size: int, vm_flags: int = 0) -> VmStruct | None:
        """arch/x86/kernel/module.c module_alloc(): 4 KiB-backed, VM_FLUSH_RESET_PERMS."""
        nr = -(-size >> PAGE_SHIFT)
        return self.vmalloc_node_range(nr, VM_FLUSH_RESET_PERMS | vm_flags)

    def vmap(self, pages: list[int], vm_flags: int, align: int = 1,
             page_order: int = 0) -> VmStruct | None:
        """vmap() / vmap_pages_range(): map pages the caller owns in the module area (RW, NX).

        ``page_order`` 9 maps each aligned 512-page run with one PMD (``page_shift``
        PMD_SHIFT, as ``__vmalloc_node_range`` does for huge areas). The pages stay the
        caller's: :meth:`vunmap` gives them back instead of freeing them.
        """
        nr_pages = len(pages)
        span = nr_pages + (0 if vm_flags & VM_NO_GUARD else 1)
        addr = self.modules.alloc(span, align)
        self.ledger.charge("vmap", self.costs["vmap_area"])
        if addr < 0:
            return None
        area = VmStruct(addr, nr_pages, page_order, vm_flags, span, list(pages),
                        [PAGE_KERNEL] * nr_pages)
        self.ledger.charge("vmap", self.costs["vmap_page"] * (nr_pages >> page_order))
        self._insert_area(area)
        return area

    def vunmap(self, area: VmStruct) -> list[int]:
        """vunmap(): remove the mapping (lazily flushed, as vfree); return its pages unfreed."""
        pages = list(area.pages)
        if self._remove_area(area):
            area.pages = []
        return pages

    def vfree(self, area: VmStruct) -> None:
        """vfree() -> __vunmap(): remove_vm_area, vm_reset_perms if flagged, free the pages."""
        if self._remove_area(area):
            self._free_area_pages(area)

    def _remove_area(self, area: VmStruct) -> bool:
        """remove_vm_area() + vm_reset_perms() if flagged; False for an unknown area."""
        if self.areas.get(area.addr) is not area:
            self.violation("bad_free", area.addr << PAGE_SHIFT, "vfree of an unknown area")
            return False
        del self.areas[area.addr]
        starts = self.area_starts
        del starts[bisect.bisect_left(starts, area.addr)]
        self._unmap_pages(area.pages)
        self.ledger.charge("vmap", self.costs["vmap_area"]
                           + self.costs["vmap_page"] * (area.nr_pages >> area.page_order))
        self.modules.free(area.addr, area.span)
        self.lazy.append((area.addr, area.addr + area.span))  # free_vmap_area_noflush()
        self.lazy_nr += area.span
        # (strict=False: a design's vmalloc_from() order may back more pages than it maps)
        lost = [pfn for pfn, prot in zip(area.pages, area.prot, strict=False)
                if not prot & _PAGE_NX]  # its executable mappings go with the area
        if lost:
            self.directmap.exec_lost_pages(lost)
        if area.flags & VM_FLUSH_RESET_PERMS:
            self._vm_reset_perms(area)
        elif self.lazy_nr > self.lazy_max:
            self.vm_unmap_aliases()
        return True

    def _unmap_pages(self, pages: list[int]) -> None:
        """One mapping fewer of each page in :attr:`vm_mapped`."""
        mapped = self.vm_mapped
        if len(pages) < BULK_PAGES:
            for pfn in pages:
                left = mapped.pop(pfn, 0) - 1
                if left > 0:
                    mapped[pfn] = left
            return
        counts = list(map(mapped.pop, pages, itertools.repeat(0, len(pages))))
        if counts.count(1) == len(counts):  # the usual case: each page mapped once, here
            return
        for pfn, count in zip(pages, counts, strict=True):  # put back, count one by one
            if count:
                mapped[pfn] = count
        for pfn in pages:
            left = mapped.pop(pfn, 0) - 1
            if left > 0:
                mapped[pfn] = left

    def _vm_reset_perms(self, area: VmStruct) -> None:
        """vm_reset_perms(): every page invalid, one flush over it all, every page default
        (set_area_direct_map(): one set_direct_map_*_noflush() per page, in turn)."""
        few = len(area.pages) < BULK_PAGES
        if few:
            for pfn in area.pages:
                self.set_direct_map_invalid_noflush(pfn)
        else:
            self.set_direct_map_pages(area.pages, 0, _PRESENT_RW)
        if area.pages:  # _vm_unmap_aliases(start, end, flush_dmap=1): purge + one flush
            self.lazy.clear()
            self.lazy_nr = 0
            self.flush_tlb_all()  # the span covers direct map and vmalloc space: > ceiling
        else:
            self.vm_unmap_aliases()
        if few:
            for pfn in area.pages:
                self.set_direct_map_default_noflush(pfn)
        else:
            self.set_direct_map_pages(area.pages, _PRESENT_RW, 0)

    def vm_unmap_aliases(self) -> None:
        """vm_unmap_aliases(): purge lazily freed areas with one range flush, if any."""
        if not self.lazy:
            return
        lo = min(s for s, _ in self.lazy)
        hi = max(e for _, e in self.lazy)
        self.lazy.clear()
        self.lazy_nr = 0
        self.flush_tlb_kernel_range(hi - lo)
