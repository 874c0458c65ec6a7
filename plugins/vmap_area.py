"""``vmap-area``: Song Liu's ``execmem_alloc``, bpf_prog_pack generalised on vmap_area trees.

Models "[PATCH bpf-next v5 0/6] execmem_alloc for BPF programs" (Song Liu,
20221128190245.2337461-1-song@kernel.org; ``mm/vmalloc.c`` ``execmem_alloc`` /
``execmem_fill`` / ``execmem_free``): ``free_text_area_root``, an address-ordered tree of
free ranges backed by RO+X memory, served lowest match first (``find_vmap_lowest_match``,
``adjust_va_to_fit_type``) with one ``vmap_area`` per object; a miss vmallocs
``roundup(size, PMD_SIZE * num_online_nodes())`` with ``VM_ALLOW_HUGE_VMAP | VM_NO_GUARD``,
zeroes it and makes it RO then X once; writes are ``text_poke_copy()``; ``execmem_free(addr)``
is size-free, invalidates with ``text_poke_set``, merges, and returns a whole free PMD-aligned
vm with ``set_memory_nx`` + ``set_memory_rw`` + ``vfree``. Sites: ``bpf_prog`` and
``trampoline`` (64 B granule); ``modules=1`` adds module text.

Parameters (``--set vmap-area.KEY=VALUE``): ``variant`` (``posted``: at most one vm returned
per free, as v5's TODO; ``fixed``: every whole free vm), ``chunk_mib`` (2, the granule per
node), ``modules`` (0), ``backend`` (``buddy``: the chunks are vmalloc'd from the buddy as
posted; ``unmapped-api`` or any page source, framework/compose.py: each 2 MiB of a chunk is the
backend's ``unmapped_pages_alloc(PMD_ORDER)``, ``vmap``'d with PMD mappings, and a returned
chunk is ``vunmap``'d and freed back to it). As a text source for other designs (``--set
jit-slab.backend=vmap-area``) it offers ``text_alloc`` / ``text_free`` = ``execmem_alloc`` /
``execmem_free``. Stats: chunks, free ranges, busy objects, tree operations, lock acquisitions,
bytes free in the tree.

docs/designs.md, "vmap-area", has the posted code, the review, and every modelled detail and
simplification.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.compose import (
    PageSource,
    backend_cache_pages,
    backend_metadata_bytes,
    backend_param,
    backend_stats,
    make_backend,
)
from framework.errors import BadParameter
from framework.hookspecs import hookimpl
from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import PAGE_SHIFT, PAGE_SIZE, PMD_ORDER
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VM_ALLOW_HUGE_VMAP, VM_NO_GUARD, VmStruct
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import StatusQuo

PMD_SIZE = 1 << (PMD_ORDER + PAGE_SHIFT)
PMD_PAGES = 1 << PMD_ORDER
SIZEOF_VMAP_AREA = 64  # x86-64, v6.1 struct vmap_area (without v6.3's flags)
BPF_PROG_EXEC_ALIGN = 64  # kernel/bpf/core.c in v5 patch 4/6
EXECMEM = "execmem"  # the handle of an object execmem_alloc() handed out
MODULE_TEXT_SITES = frozenset({Site.MODULE_TEXT, Site.MODULE_INIT_TEXT})
BASE_SITES = frozenset({Site.BPF_PROG, Site.TRAMPOLINE})
OWN_SOURCE = "buddy"  # vmap-area.backend's default: vmalloc from the buddy, as posted
FL_FIT, LE_FIT, RE_FIT, NE_FIT = 1, 2, 3, 4  # mm/vmalloc.c enum fit_type


def pmd_align(addr: int) -> int:
    """PMD_ALIGN(): round up to 2 MiB."""
    return -(-addr // PMD_SIZE) * PMD_SIZE


def pmd_align_down(addr: int) -> int:
    """PMD_ALIGN_DOWN(): round down to 2 MiB."""
    return addr // PMD_SIZE * PMD_SIZE


class FreeTextTree:
    """``free_text_area_root`` + ``free_text_area_list``: sorted, merged free ranges (bytes).

    Every method that stands for a kernel tree function returns how many tree operations it
    did, so the caller can count and charge them.
    """

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __len__(self) -> int:
        return len(self.starts)

    def free_bytes(self) -> int:
        """Bytes in the tree."""
        return sum(self.ends) - sum(self.starts)

    def lowest_match(self, size: int, align: int, vstart: int = 0) -> tuple[int, int]:
        """find_vmap_lowest_match(): (index, aligned address) of the lowest fit, or (-1, 0)."""
        starts, ends = self.starts, self.ends
        i = max(0, bisect.bisect_right(ends, vstart))
        for j in range(i, len(starts)):
            addr = -(-max(starts[j], vstart) // align) * align
            if addr + size <= ends[j]:
                return j, addr
        return -1, 0

    def adjust(self, i: int, addr: int, size: int) -> int:
        """adjust_va_to_fit_type(): cut ``[addr, addr + size)`` out of range ``i``.

        Returns the tree operations: 1, or 2 for an NE fit (a new free node is inserted).
        """
        start, end = self.starts[i], self.ends[i]
        fit = classify_va_fit_type(start, end, addr, size)
        if fit == FL_FIT:
            del self.starts[i], self.ends[i]
        elif fit == LE_FIT:
            self.starts[i] = addr + size
        elif fit == RE_FIT:
            self.ends[i] = addr
        else:
            self.ends[i] = addr
            self.starts.insert(i + 1, addr + size)
            self.ends.insert(i + 1, end)
            return 2
        return 1

    def merge_or_add(self, start: int, end: int) -> tuple[int, int]:
        """merge_or_add_vmap_area_augment(): insert, merging with touching neighbours.

        Returns the merged range.
        """
        starts, ends = self.starts, self.ends
        i = bisect.bisect_left(starts, start)
        if i > 0 and ends[i - 1] == start:
            i -= 1
            start = starts[i]
            del starts[i], ends[i]
        if i < len(starts) and starts[i] == end:
            end = ends[i]
            del starts[i], ends[i]
        starts.insert(i, start)
        ends.insert(i, end)
        return start, end


def classify_va_fit_type(start: int, end: int, addr: int, size: int) -> int:
    """mm/vmalloc.c classify_va_fit_type()."""
    if start == addr:
        return FL_FIT if end == addr + size else LE_FIT
    return RE_FIT if end == addr + size else NE_FIT


class VmapAreaAllocator(StatusQuo):
    """Song Liu's execmem_alloc v5 (see the module docstring)."""

    name = "vmap-area"
    summary = ("Song Liu's execmem_alloc v5: 2 MiB huge ROX chunks, lowest-fit vmap_area tree "
               "of free ranges, text_poke writes, size-free free")
    source = ("Song Liu, '[PATCH bpf-next v5 0/6] execmem_alloc for BPF programs', "
              "20221128190245.2337461-1-song@kernel.org")
    covers = BASE_SITES
    params = (
        Param("variant", str, "posted", "posted: one vm returned per free (v5); fixed: every "
              "whole free vm", choices=("posted", "fixed")),
        Param("chunk_mib", int, 2, "region granule per node, MiB (multiple of 2)", min=2,
              max=1024),
        Param("modules", int, 0, "1: also serve module_text and module_init_text", min=0,
              max=1),
        backend_param("vmap-area", OWN_SOURCE, (PageSource,), "where chunk pages come from: buddy "
                      "(vmalloc, as posted) or a page source such as unmapped-api"),
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        chunk_mib = params["chunk_mib"]
        if chunk_mib % 2:
            raise BadParameter(f"vmap-area.chunk_mib={chunk_mib}: expected a multiple of 2 "
                               "(whole PMDs)")
        self.chunk_bytes = (chunk_mib << 20) * kernel.spec.nodes  # PMD_SIZE * online nodes
        self.free_all_vms = params["variant"] == "fixed"
        if params["modules"]:
            self.covers = BASE_SITES | MODULE_TEXT_SITES  # instance attribute: engine reads it
        self.tree = FreeTextTree()
        self.busy: dict[int, int] = {}  # vmap_area_root: va_start -> va_end of each object
        self.all_text_vm: list[VmStruct] = []  # newest first
        self.chunk_pages = 0
        self.tree_ops = 0
        self.lock_acquisitions = 0
        self.chunks_created = 0
        self.chunks_returned = 0
        self.fallback = 0
        self.page_source: PageSource | None = None
        if params["backend"] != OWN_SOURCE:
            backend = make_backend(kernel, self.name, params["backend"], (PageSource,))
            assert isinstance(backend, PageSource)
            self.page_source = backend

    # -- execmem_alloc ------------------------------------------------------------------
    def execmem_site_alloc(self, request: Request) -> Allocation | None:
        """The site's call: round and align, then execmem_alloc()."""
        if request.site in MODULE_TEXT_SITES:
            align = PAGE_SIZE
        else:
            align = BPF_PROG_EXEC_ALIGN
        size = -(-request.size // align) * align
        addr = self.execmem_alloc(size, align)
        if addr < 0:
            return None
        return Allocation((), addr, request.size, False, EXECMEM)

    bpf_prog_alloc = execmem_site_alloc  # bpf_jit_binary_pack_alloc() -> execmem_alloc()
    trampoline_alloc = execmem_site_alloc  # arch_alloc_bpf_trampoline(), ftrace, kprobes

    def module_mem_alloc(self, request: Request) -> Allocation | None:
        """``modules=1``: module text from execmem_alloc() as well; other sections as v6.3."""
        if request.site in self.covers:
            return self.execmem_site_alloc(request)
        return super().module_mem_alloc(request)

    def execmem_alloc(self, size: int, align: int) -> int:
        """execmem_alloc(): lowest match in the free tree, a new region on a miss; -1 = NULL."""
        while True:
            self.lock_acquisitions += 1  # free_text_area_lock
            i, addr = self.tree.lowest_match(size, align)
            self._tree_op(1)
            if i >= 0:
                break
            if not self.new_region(size):
                return -1
        self._tree_op(self.tree.adjust(i, addr, size))
        self.lock_acquisitions += 1  # vmap_area_lock
        self.busy[addr] = addr + size  # insert_vmap_area(va, &vmap_area_root)
        self._tree_op(1)
        return addr

    # -- as a text source (framework/compose.py) ------------------------------------------
    def text_alloc(self, size: int, align: int) -> int:
        """execmem_alloc() for another design: a ROX range's byte address, or -1."""
        return self.execmem_alloc(size, align)

    def text_free(self, addr: int) -> None:
        """execmem_free() for another design."""
        self.execmem_free(addr)

    def new_region(self, size: int) -> bool:
        """__vmalloc_node_range(huge, no guard) + move_vmap_to_free_text_tree()."""
        kernel = self.kernel
        alloc_size = -(-size // self.chunk_bytes) * self.chunk_bytes
        nr = alloc_size >> PAGE_SHIFT
        if self.page_source is not None:
            area = self.region_from_source(nr)
        else:
            area = kernel.vmalloc_node_range(nr, VM_ALLOW_HUGE_VMAP | VM_NO_GUARD, None,
                                             PMD_PAGES)
        if area is None:
            return False
        self.chunks_created += 1
        self.chunk_pages += nr
        if not area.page_order:
            self.fallback += 1
        self.lock_acquisitions += 1  # vmap_area_lock: __find_vmap_area + unlink_va
        self._tree_op(2)
        self._zero(area)  # memset(addr, 0, size)
        kernel.set_memory_ro(area.addr, nr)
        kernel.set_memory_x(area.addr, nr)
        self.lock_acquisitions += 1  # free_text_area_lock
        self.all_text_vm.insert(0, area)
        start = area.addr << PAGE_SHIFT
        self.tree.merge_or_add(start, start + alloc_size)
        self._tree_op(1)
        return True

    def region_from_source(self, nr: int) -> VmStruct | None:
        """``backend=`` a page source: ``nr / 512`` order-9 blocks from it, vmap'd huge."""
        source = self.page_source
        assert source is not None
        pages: list[int] = []
        for _ in range(nr // PMD_PAGES):
            pfn = source.source_pages(PMD_ORDER, False)  # the memset below zeroes
            if pfn == NO_PAGE:
                break
            pages.extend(range(pfn, pfn + PMD_PAGES))
        area = None
        if len(pages) == nr:
            area = self.kernel.vmap(pages, VM_ALLOW_HUGE_VMAP | VM_NO_GUARD, PMD_PAGES,
                                    PMD_ORDER)
        if area is None:
            for head in pages[::PMD_PAGES]:
                source.return_pages(head, PMD_ORDER)
        return area

    def _zero(self, area: VmStruct) -> None:
        """memset() of the fresh region through its RW mapping, in contiguous runs."""
        pages = area.pages
        run = 0
        for i in range(1, len(pages) + 1):
            if i == len(pages) or pages[i] != pages[i - 1] + 1:
                self.kernel.clear_pages(pages[run], i - run)
                run = i

    # -- execmem_fill -------------------------------------------------------------------
    def write(self, allocation: Allocation, length: int) -> None:
        """execmem_fill() -> arch_fill_execmem() = text_poke_copy(); other sites as v6.3."""
        if allocation.handle != EXECMEM:
            super().write(allocation, length)
            return
        vaddr = allocation.vaddr
        self.kernel.text_poke(vaddr >> PAGE_SHIFT, vaddr & (PAGE_SIZE - 1),
                              length or allocation.size)

    # -- execmem_free -------------------------------------------------------------------
    def free(self, allocation: Allocation) -> None:
        """execmem_free(addr): the size comes from the busy tree, not the caller."""
        if allocation.handle != EXECMEM:
            super().free(allocation)
            return
        self.execmem_free(allocation.vaddr)

    def execmem_free(self, addr: int) -> None:
        """Unlink, text_poke_set, merge, return a whole free vm if the span holds one."""
        kernel = self.kernel
        self.lock_acquisitions += 1  # vmap_area_lock
        end = self.busy.pop(addr, None)  # __find_vmap_area + unlink_va
        self._tree_op(2)
        if end is None:
            kernel.violation("bad_free", addr, "execmem_free of an address not in the busy tree")
            return
        kernel.text_poke(addr >> PAGE_SHIFT, addr & (PAGE_SIZE - 1), end - addr)
        self.lock_acquisitions += 1  # free_text_area_lock
        start, end = self.tree.merge_or_add(addr, end)
        self._tree_op(1)
        free_start, free_end = pmd_align(start), pmd_align_down(end)
        while free_start < free_end:
            vm = self.find_and_unlink_text_vm(free_start, free_end)
            if vm is None:
                break
            self.return_vm(vm)
            if not self.free_all_vms:  # v5: "we free at most one vm for now"
                break

    def find_and_unlink_text_vm(self, start: int, end: int) -> VmStruct | None:
        """find_and_unlink_text_vm(): first vm on all_text_vm inside ``[start, end)``."""
        for i, vm in enumerate(self.all_text_vm):
            vm_addr = vm.addr << PAGE_SHIFT
            if vm_addr >= start and vm_addr + (vm.nr_pages << PAGE_SHIFT) <= end:
                del self.all_text_vm[i]
                return vm
        return None

    def return_vm(self, vm: VmStruct) -> None:
        """Carve the vm out of the free tree, nx + rw, insert in the busy tree, vfree."""
        kernel = self.kernel
        start = vm.addr << PAGE_SHIFT
        size = vm.nr_pages << PAGE_SHIFT
        i, addr = self.tree.lowest_match(size, 1, start)  # __alloc_vmap_area(.., vstart)
        self._tree_op(1)
        self._tree_op(self.tree.adjust(i, addr, size))
        kernel.set_memory_nx(vm.addr, vm.nr_pages)
        kernel.set_memory_rw(vm.addr, vm.nr_pages)
        self.lock_acquisitions += 1  # vmap_area_lock: insert_vmap_area
        self._tree_op(1)
        if self.page_source is not None:
            for head in kernel.vunmap(vm)[::PMD_PAGES]:
                self.page_source.return_pages(head, PMD_ORDER)
        else:
            kernel.vfree(vm)
        self.chunk_pages -= vm.nr_pages
        self.chunks_returned += 1

    def _tree_op(self, n: int) -> None:
        """Count ``n`` rbtree operations and charge their cycles."""
        self.tree_ops += n
        kernel = self.kernel
        kernel.ledger.charge("tree", kernel.costs["tree_op"] * n)

    # -- accounting ---------------------------------------------------------------------
    def cache_pages(self) -> int:
        """Every backing page of every live region: objects are sub-ranges (blocks=())."""
        return self.chunk_pages + super().cache_pages() + backend_cache_pages(self.backend)

    @property
    def backend(self) -> Allocator | None:
        """The page-source design, if ``backend`` names one."""
        return self.page_source if isinstance(self.page_source, Allocator) else None

    def metadata_bytes(self) -> int:
        """One struct vmap_area per busy object and per free range (64 B each)."""
        return (SIZEOF_VMAP_AREA * (len(self.busy) + len(self.tree))
                + backend_metadata_bytes(self.backend))

    def stats(self) -> dict[str, Any]:
        """Chunks, free ranges, tree operations, fallbacks, locks."""
        return {
            "chunks": len(self.all_text_vm),
            "chunk_pages": self.chunk_pages,
            "chunks_created": self.chunks_created,
            "chunks_returned": self.chunks_returned,
            "fallback": self.fallback,
            "free_ranges": len(self.tree),
            "free_bytes": self.tree.free_bytes(),
            "objects": len(self.busy),
            "tree_ops": self.tree_ops,
            "lock_acquisitions": self.lock_acquisitions,
            **backend_stats(self.backend),
        }


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``vmap-area``."""
    register(VmapAreaAllocator)
