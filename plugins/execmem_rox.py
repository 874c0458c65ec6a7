"""``execmem-rox``: the mainline execmem ROX cache of large pages for x86 module text.

Models ``mm/execmem.c`` with ``EXECMEM_ROX_CACHE`` as x86 ships it since commit 64f6a4e10c05
(about v6.15; first merged as 5185e7f9f3bd "x86/module: use large ROX pages for text
allocations" and disabled again before v6.13): one global cache of 2 MiB ROX chunks in the
module area, a maple tree of busy ranges and one of free ranges under one mutex.

- ``execmem_cache_alloc()``: first free range (address order) that fits the page-rounded
  size; on a miss ``execmem_cache_populate()``: ``vmalloc(round_up(size, PMD_SIZE),
  VM_ALLOW_HUGE_VMAP)`` (4 KiB pages when no order-9 block is free, or when the size per
  online node is under 2 MiB), INT3 fill through the writable mapping, ``set_memory_rox()``
  over the whole chunk (the direct-map alias becomes RO: in place for a 2 MiB-mapped
  chunk), then the chunk joins the free tree.
- Module text (``module_memory_alloc()``): ``execmem_make_temp_rw()`` (``set_memory_nx`` +
  ``set_memory_rw`` over the section, which splits the 2 MiB entries it cuts), the loader's
  plain copy, then ``execmem_restore_rox()`` = ``set_memory_rox()``, after which the CPA
  collapse (commit 41d88484c71c) re-merges the direct map's uniform page tables.
- ``execmem_free()``: INT3 over the range with ``text_poke_set()``, merge into the free
  tree; ``execmem_cache_clean()`` then returns every whole chunk inside a 2 MiB-aligned free
  range: ``execmem_set_direct_map_valid(vm, true)`` (``set_direct_map_valid_noflush`` per
  backing page order, no flush) and ``vfree()``.

Sites: ``module_text`` and ``module_init_text`` (x86 sets ``EXECMEM_ROX_CACHE`` only on
``EXECMEM_MODULE_TEXT`` in that release; kprobes and ftrace joined in v6.17 and BPF never
did, so those sites stay on the status-quo path).

Parameters (``--set execmem-rox.KEY=VALUE``): ``alias`` (``ro``, the shipped behaviour; or
``invalid``: the first version's removal of the chunk from the direct map, reverted in commit
925f42645118 for ``/proc/kcore``), ``loader`` (``temp_rw``, v6.15; or ``text_poke``: the
first version's writable copy poked into place, no permission change), ``collapse`` (1: the
CPA collapse after every ``set_memory_rox``, as the kernel that ships this cache does, even
when ``machine.collapse`` is 0). Stats: chunks, populates, releases, free ranges and bytes,
busy ranges, temporary RW remaps, collapses done by the design.

docs/designs.md, "execmem-rox", has the sources and every modelled detail and simplification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.designs.vmap_area import FreeTextTree, pmd_align, pmd_align_down
from framework.hookspecs import hookimpl
from framework.kernel.consts import PAGE_SHIFT, PAGE_SIZE, PMD_ORDER
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VM_ALLOW_HUGE_VMAP, VmStruct
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import BPF_CHECK_ROX, ModuleMem, StatusQuo

PMD_PAGES = 1 << PMD_ORDER
PMD_SIZE = PMD_PAGES << PAGE_SHIFT
TEXT_SITES = frozenset({Site.MODULE_TEXT, Site.MODULE_INIT_TEXT})
MAPLE_NODE_BYTES = 256  # include/linux/maple_tree.h: sizeof(struct maple_node)
MAPLE_RANGE64_SLOTS = 16  # MAPLE_RANGE64_SLOTS: entries per leaf node


def maple_bytes(entries: int) -> int:
    """Leaf nodes of a maple tree holding ``entries`` ranges (16 per node), in bytes."""
    return -(-entries // MAPLE_RANGE64_SLOTS) * MAPLE_NODE_BYTES


class ExecmemRox(StatusQuo):
    """The execmem ROX cache for module text (see the module docstring)."""

    name = "execmem-rox"
    summary = ("mainline execmem ROX cache (x86, ~v6.15): module text carved from 2 MiB ROX "
               "chunks, temp RW at load, INT3 via text_poke at free, CPA collapse")
    source = ("commit 5185e7f9f3bd 'x86/module: use large ROX pages for text allocations', "
              "re-enabled by 64f6a4e10c05; mm/execmem.c; collapse 41d88484c71c")
    covers = TEXT_SITES
    params = (
        Param("alias", str, "ro", "direct-map alias of a cached chunk: ro (set_memory_rox, as "
              "shipped) or invalid (the first version, reverted by 925f42645118)",
              choices=("ro", "invalid")),
        Param("loader", str, "temp_rw", "module loading into ROX text: temp_rw (v6.15 "
              "execmem_make_temp_rw/restore_rox) or text_poke (the first version's "
              "writable copy)", choices=("temp_rw", "text_poke")),
        Param("collapse", bool, True, "CPA collapse after set_memory_rox as the kernel with "
              "this cache does (41d88484c71c), whatever machine.collapse says"),
        BPF_CHECK_ROX,
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.invalid_alias = params["alias"] == "invalid"
        self.temp_rw = params["loader"] == "temp_rw"
        self.collapse = bool(params["collapse"]) and not kernel.spec.collapse
        self.free_tree = FreeTextTree()  # execmem_cache.free_areas (bytes)
        self.busy: dict[int, int] = {}  # execmem_cache.busy_areas: start -> end (bytes)
        self.chunks: dict[int, VmStruct] = {}  # populated vms by first page
        self.views: dict[int, VmStruct] = {}  # handed-out ranges by first page
        self.chunk_pages = 0
        self.populates = 0
        self.releases = 0
        self.temp_rw_remaps = 0
        self.collapses = 0
        self.mutex_acquisitions = 0

    # -- execmem_alloc() with EXECMEM_ROX_CACHE ------------------------------------------
    def execmem_cache_alloc(self, size: int) -> VmStruct | None:
        """execmem_cache_alloc(): first fit in the free tree, populate on a miss."""
        size = -(-size // PAGE_SIZE) * PAGE_SIZE
        view = self._take(size)
        if view is None and self.execmem_cache_populate(size):
            view = self._take(size)
        return view

    def _take(self, size: int) -> VmStruct | None:
        """__execmem_cache_alloc(): carve ``size`` bytes from the first range that fits."""
        self.mutex_acquisitions += 1
        i, addr = self.free_tree.lowest_match(size, PAGE_SIZE)
        if i < 0:
            return None
        self.free_tree.adjust(i, addr, size)
        self.busy[addr] = addr + size
        vpage = addr >> PAGE_SHIFT
        chunk = self.kernel.find_area(vpage)
        assert chunk is not None  # the free tree holds only populated chunks
        first = vpage - chunk.addr
        nr = size >> PAGE_SHIFT
        view = VmStruct(vpage, nr, 0, chunk.flags, nr, chunk.pages[first:first + nr])
        self.views[vpage] = view
        return view

    def execmem_cache_populate(self, size: int) -> bool:
        """execmem_cache_populate(): a huge RW vmalloc, INT3 fill, ROX (alias too), cached."""
        kernel = self.kernel
        nr = -(-size // PMD_SIZE) * PMD_PAGES
        vm = kernel.vmalloc_node_range(nr, VM_ALLOW_HUGE_VMAP, None, PMD_PAGES)
        if vm is None:
            return False
        self._fill_writable(vm)  # execmem_fill_trapping_insns(p, alloc_size, writable)
        if self.invalid_alias:  # first version: execmem_set_direct_map_valid(vm, false)
            for i in range(0, vm.nr_pages, 1 << vm.page_order):
                kernel.set_direct_map_invalid_noflush(vm.pages[i], 1 << vm.page_order)
        # set_memory_rox(); with alias=invalid it stands for vunmap + vmap(PAGE_KERNEL_ROX):
        # the alias is already non-present, so only the module mapping and one flush change
        self._rox(vm.addr, vm.nr_pages)
        self.chunks[vm.addr] = vm
        self.chunk_pages += vm.nr_pages
        self.populates += 1
        start = vm.addr << PAGE_SHIFT
        self.mutex_acquisitions += 1
        self.free_tree.merge_or_add(start, start + (vm.nr_pages << PAGE_SHIFT))
        return True

    def _fill_writable(self, vm: VmStruct) -> None:
        """memset(INT3) through the fresh RW mapping, in physically contiguous runs."""
        pages = vm.pages
        run = 0
        for i in range(1, len(pages) + 1):
            if i == len(pages) or pages[i] != pages[i - 1] + 1:
                self.kernel.clear_pages(pages[run], i - run)  # a fill costs what a clear does
                run = i

    def _rox(self, vpage: int, nr: int) -> None:
        """set_memory_rox() and the collapse that follows it in the kernel of this cache."""
        kernel = self.kernel
        kernel.set_memory_rox(vpage, nr)
        if self.collapse and not self.invalid_alias:
            area = kernel.find_area(vpage)
            if area is not None:
                first = vpage - area.addr
                self.collapses += kernel.directmap.collapse(area.pages[first:first + nr])

    # -- module text (kernel/module/main.c module_memory_alloc, strict_rwx.c) ------------
    def module_mem_alloc(self, request: Request) -> Allocation | None:
        """Module text from the cache, made temporarily RW for the loader (v6.15)."""
        if request.site not in TEXT_SITES:
            return super().module_mem_alloc(request)
        view = self.execmem_cache_alloc(request.size)
        if view is None:
            return None
        if self.temp_rw:  # execmem_make_temp_rw(): set_memory_nx + set_memory_rw
            self.kernel.set_memory_nx(view.addr, view.nr_pages)
            self.kernel.set_memory_rw(view.addr, view.nr_pages)
            self.temp_rw_remaps += 1
        mem = ModuleMem(view, request.perm, request.site)
        return Allocation((), view.addr << PAGE_SHIFT, request.size, False, mem)

    def module_seal(self, mem: ModuleMem) -> None:
        """module_enable_text_rox(): execmem_restore_rox() for cached text."""
        if mem.area.addr not in self.views:
            super().module_seal(mem)
            return
        if self.temp_rw:
            self._rox(mem.area.addr, mem.area.nr_pages)
        mem.sealed = True

    def write(self, allocation: Allocation, length: int) -> None:
        """The loader's copy: plain into temporarily RW text, or text_poke of a copy."""
        handle = allocation.handle
        if (isinstance(handle, ModuleMem) and not handle.sealed and not self.temp_rw
                and handle.area.addr in self.views):
            area = handle.area  # the first version: a writable copy, text_poke_copy()'d
            self.kernel.text_poke(area.addr, 0, area.nr_pages << PAGE_SHIFT)
            handle.sealed = True
            return
        super().write(allocation, length)

    # -- execmem_free() -------------------------------------------------------------------
    def vfree(self, area: VmStruct) -> None:
        """execmem_free(): cached text goes back to the cache; anything else is vfree'd."""
        if self.views.get(area.addr) is not area:
            super().vfree(area)
            return
        del self.views[area.addr]
        self.execmem_cache_free(area.addr << PAGE_SHIFT)

    def execmem_cache_free(self, addr: int) -> None:
        """Unlink from the busy tree, INT3 with text_poke_set, merge, clean."""
        kernel = self.kernel
        self.mutex_acquisitions += 1
        end = self.busy.pop(addr)
        # execmem_fill_trapping_insns(ptr, size, writable = false) = text_poke_set(INT3)
        kernel.text_poke(addr >> PAGE_SHIFT, 0, end - addr)
        self.mutex_acquisitions += 1
        start, end = self.free_tree.merge_or_add(addr, end)
        self.execmem_cache_clean(start, end)

    def execmem_cache_clean(self, start: int, end: int) -> None:
        """execmem_cache_clean() (scheduled work, run at once): return whole chunks.

        The kernel frees the chunk at the start of every 2 MiB-aligned free range whose size
        is a multiple of 2 MiB; the model returns each chunk lying wholly in such a range.
        """
        if start != pmd_align(start) or end != pmd_align_down(end):
            return
        self.mutex_acquisitions += 1
        for vpage in [v for v in self.chunks if start >> PAGE_SHIFT <= v < end >> PAGE_SHIFT]:
            vm = self.chunks[vpage]
            vm_end = (vm.addr + vm.nr_pages) << PAGE_SHIFT
            if vm_end <= end:
                self.release(vm)

    def release(self, vm: VmStruct) -> None:
        """Take the range out of the tree, vfree, execmem_set_direct_map_valid(vm, true).

        The kernel restores the alias just before ``vfree()``: for that moment the chunk is
        executable through its ROX mapping and writable through the direct map, inside the
        cache mutex. The model makes the same calls the other way round (same counts and
        cycles) so the W^X rule, which judges the state between events, does not report
        that window; docs/designs.md, "execmem-rox", says so.
        """
        kernel = self.kernel
        start = vm.addr << PAGE_SHIFT
        size = vm.nr_pages << PAGE_SHIFT
        i, addr = self.free_tree.lowest_match(size, 1, start)
        self.free_tree.adjust(i, addr, size)
        del self.chunks[vm.addr]
        self.chunk_pages -= vm.nr_pages
        self.releases += 1
        pages = list(vm.pages)
        kernel.vfree(vm)
        step = 1 << vm.page_order
        for i in range(0, len(pages), step):
            kernel.set_direct_map_default_noflush(pages[i], step)

    # -- accounting ---------------------------------------------------------------------
    def cache_pages(self) -> int:
        """Every page of every cached chunk (text objects are sub-ranges, blocks=())."""
        return self.chunk_pages + super().cache_pages()

    def metadata_bytes(self) -> int:
        """Leaf nodes of the two maple trees."""
        return maple_bytes(len(self.busy)) + maple_bytes(len(self.free_tree))

    def stats(self) -> dict[str, Any]:
        """Chunks, populates, releases, the trees, temporary RW remaps, collapses."""
        return {
            "chunks": len(self.chunks),
            "chunk_pages": self.chunk_pages,
            "populates": self.populates,
            "releases": self.releases,
            "busy_ranges": len(self.busy),
            "free_ranges": len(self.free_tree),
            "free_bytes": self.free_tree.free_bytes(),
            "temp_rw_remaps": self.temp_rw_remaps,
            "collapses": self.collapses,
            "mutex_acquisitions": self.mutex_acquisitions,
        }


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``execmem-rox``."""
    register(ExecmemRox)
