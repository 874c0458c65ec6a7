"""The v6.3 status quo as a design: :class:`StatusQuo`, the class every design extends.

Each v6.3 call site is one overridable method; ``baseline`` is this class unchanged, and a
design overrides only the sites (or the helpers under them, such as :meth:`module_alloc`) its
patch changes. Per site:

- ``secretmem``: mm/secretmem.c ``secretmem_fault`` (``alloc_page(__GFP_ZERO)``, invalid in
  the direct map, 1-page ``flush_tlb_kernel_range``) and ``secretmem_free_folio`` (default,
  then zero) before the page-cache page is freed through the generic path.
- ``module_*``, ``trampoline``: ``module_alloc`` (4 KiB pages, ``VM_FLUSH_RESET_PERMS``); the
  loader's copy is a plain store, then the STRICT_MODULE_RWX calls of
  kernel/module/strict_rwx.c (text: ``set_memory_ro`` + ``set_memory_x``; rodata and
  ro_after_init: ``set_memory_ro`` + ``set_memory_nx``; data: ``set_memory_nx``). Later
  writes to read-only text go through ``text_poke``. Each section type is its own
  ``module_alloc``, as the ``module_memory`` layout of v6.4 (ac3b43283923) does; v6.3 put the
  core sections in one allocation, which the thread's designs all split. Trampolines are
  sealed with one ``set_memory_rox`` (kernel/bpf/trampoline.c, kernel/kprobes.c).
- ``trampoline`` of at most ``MAX_INSN_SIZE`` (16 B): a kprobe instruction slot from
  kernel/kprobes.c ``get_insn_slot``: pages of 256 slots from ``alloc_insn_page``
  (``module_alloc(PAGE_SIZE)`` + ``set_memory_rox``), the instruction written with
  ``text_poke``; ``free_insn_slot`` frees a page once it is empty unless it is the cache's last
  (``collect_one_slot``).
- ``bpf_prog``: kernel/bpf/core.c ``bpf_prog_pack_alloc``: packs of 2 MiB x nodes from
  ``module_alloc`` made RO then X once, 64 B chunks in a bitmap, first fit over the packs in
  list order; bigger programs get their own ``module_alloc``. The JIT image is written with
  ``text_poke_copy``; a free invalidates with ``text_poke_set`` and frees an empty pack.
- ``pagetable``: ``__get_free_page(GFP_PGTABLE_KERNEL)``. With ``perm=PKS`` the page's
  direct-map entry gets the PKS key per page (``set_memory_pks`` of Rick Edgecombe's 2021
  RFC, the path a PKS user has without a grouping cache), cleared at free.
- ``guest``, ``dma_nokmap``: v6.3 leaves these in the direct map: guest memory is ordinary
  (zeroed) user memory in up to 2 MiB folios; ``DMA_ATTR_NO_KERNEL_MAPPING`` buffers are
  ``alloc_pages(get_order(size))`` without zeroing. The allocation says ``unmapped=False``.
- ``kernel``, ``reclaimable``, ``user`` and anything else: ``alloc_pages(get_order(size))``
  of ``MIGRATE_UNMOVABLE``, ``MIGRATE_RECLAIMABLE`` (slab caches with
  ``SLAB_RECLAIM_ACCOUNT``) or ``MIGRATE_MOVABLE`` (user pages).

Simplified (see docs/model.md): the module layout of v6.4 with one ``module_alloc`` per
section type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from mypy_extensions import mypyc_attr

from framework.allocator import Allocator
from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import (
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_ORDER,
    get_order,
)
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VmStruct
from framework.params import Param
from framework.request import Allocation, Perm, Request, Site

#: The parameter of every design that keeps the status quo's BPF path (docs/faults.md).
BPF_CHECK_ROX: Final = Param("bpf_check_rox", bool, False, "1: v6.9 'bpf: Check return from "
                      "set_memory_rox()' (a pack whose set_memory_rox fails is freed, the "
                      "load fails); 0: v6.3 ignores the returns of set_memory_ro/x")

_new_tuple: Final = tuple.__new__
_ALLOCATION: Final = Allocation  # a C static in the compiled core, not a namespace lookup
#: The handle of a PKS page-table page, compared with at every free of a page-table page.
_PKS_PAGETABLE: Final = (Site.PAGETABLE, Perm.PKS)

MAX_INSN_SIZE: Final = 16  # arch/x86/include/asm/kprobes.h: kprobe_insn_slots.insn_size
SLOTS_PER_PAGE: Final = PAGE_SIZE // MAX_INSN_SIZE  # kernel/kprobes.c slots_per_page()
BPF_PROG_CHUNK_SHIFT: Final = 6  # kernel/bpf/core.c
BPF_PROG_CHUNK_SIZE: Final = 1 << BPF_PROG_CHUNK_SHIFT
PACK_PAGES: Final = 1 << PMD_ORDER  # SZ_2M per possible node
SITE_MIGRATETYPE: Final = {Site.USER: MIGRATE_MOVABLE, Site.RECLAIMABLE: MIGRATE_RECLAIMABLE}
MODULE_SECTION_SITES: Final = frozenset({
    Site.MODULE_TEXT, Site.MODULE_RODATA, Site.MODULE_RO_AFTER_INIT, Site.MODULE_DATA,
    Site.MODULE_INIT_TEXT, Site.MODULE_INIT_RODATA, Site.MODULE_INIT_DATA,
})
MODULE_SITES: Final = MODULE_SECTION_SITES | {Site.TRAMPOLINE}  # every site module_alloc() serves

#: The method that serves each site (a site not listed: :meth:`StatusQuo.pages_alloc`). A
#: design overrides the method of a site it changes.
SITE_METHODS: Final[dict[Site, str]] = {
    Site.SECRETMEM: "secretmem_alloc",
    **dict.fromkeys(sorted(MODULE_SECTION_SITES), "module_mem_alloc"),
    Site.TRAMPOLINE: "trampoline_alloc",
    Site.BPF_PROG: "bpf_prog_alloc",
    Site.PAGETABLE: "pagetable_alloc",
    Site.GUEST: "guest_alloc",
    Site.DMA_NOKMAP: "dma_nokmap_alloc",
}

SiteAlloc = Callable[[Request], "Allocation | None"]


class _SiteTable(dict[str, SiteAlloc]):
    """Site -> the method serving it; a site with no entry gets ``alloc_pages(get_order())``."""

    def __init__(self, default: SiteAlloc) -> None:
        super().__init__()
        self.default = default

    def __missing__(self, site: str) -> SiteAlloc:
        return self.default


class SqHot:
    """What the status quo's hot paths read on every call, in a native object.

    :class:`StatusQuo` is a Python class (designs subclass it), so each read of one of its
    instance attributes in the compiled core is a dictionary lookup (about 180
    instructions); :func:`sq_alloc` .. :func:`sq_write` read these fields natively
    instead (docs/performance.md). Built once in ``StatusQuo.__init__`` from the same
    objects: ``by_site`` is the site table itself, so a replaced entry is seen. The engine
    keeps a design's ``SqHot`` and calls the functions with it directly.
    """

    def __init__(self, sq: StatusQuo, kernel: Kernel, by_site: _SiteTable) -> None:
        self.sq = sq  # the design, whose methods the paths call where it overrides them
        self.kernel = kernel
        self.by_site = by_site
        # The hooks the design's class does not define run as direct calls of the module
        # functions below (a call of a compiled method through the Python class ``sq`` goes
        # through the Python API). Like the site table, decided once, from the class.
        cls = type(sq)
        self.own_secretmem_alloc: SiteAlloc | None = (
            by_site[Site.SECRETMEM] if cls.secretmem_alloc is StatusQuo.secretmem_alloc
            else None)  # compared with the table's entry, which a subclass may replace
        self.own_fault = cls.secretmem_fault is StatusQuo.secretmem_fault
        self.own_free_folio = cls.secretmem_free_folio is StatusQuo.secretmem_free_folio
        self.own_free_blocks = cls._free_blocks is StatusQuo._free_blocks
        # The fields of the last request sq_alloc() served, read once per request (a
        # workload hands one Request to all the pages of a process; each read of the
        # interpreted attrs class is an attribute lookup). A Request is frozen.
        self.request: Request | None = None
        self.site = ""
        self.size = 0
        self.node: int | None = None

    def read_request(self, request: Request) -> None:
        """Keep ``request``'s site, size and node (see ``request`` above)."""
        self.request = request
        self.site = request.site
        self.size = request.size
        self.node = request.node


@attrs.define(slots=True, eq=False)
class ModuleMem:
    """A module section (or trampoline) allocation and whether it has been sealed."""

    area: VmStruct
    perm: str
    site: str
    sealed: bool = False


@attrs.define(slots=True, eq=False)
class InsnPage:
    """kernel/kprobes.c ``struct kprobe_insn_page``: one ROX page of slots."""

    area: VmStruct
    used: bytearray


@attrs.define(slots=True, eq=False)
class InsnSlot:
    """A kprobe instruction slot handed out."""

    page: InsnPage
    index: int


@attrs.define(slots=True, eq=False)
class BpfPack:
    """kernel/bpf/core.c ``struct bpf_prog_pack``: a pack and its chunk bitmap.

    :ivar in_use: chunks set in ``used`` (``bitmap_empty()`` without a walk of the bitmap,
        which is 2 MiB / 64 B per node).
    """

    area: VmStruct
    chunks: int
    used: bytearray
    in_use: int = 0


@attrs.define(slots=True, eq=False)
class BpfProg:
    """A program image in a pack (``pack`` set) or in its own module_alloc (``area`` set)."""

    size: int
    pack: BpfPack | None = None
    pos: int = 0
    area: VmStruct | None = None


# a Python class (compiled methods): every design subclasses it, reads and sets attributes
@mypyc_attr(native_class=False)
class StatusQuo(Allocator):
    """The v6.3 paths for every site; the base class of every design.

    :meth:`alloc` hands a request to the method of its site (a table built once per
    instance, so an override in a subclass is what it calls); :meth:`free`,
    :meth:`free_generic` and :meth:`write` go by the allocation's handle. Everything that
    reaches ``module_alloc()`` or ``vfree()`` goes through :meth:`module_alloc` and
    :meth:`vfree`, which a design overrides to change where module memory comes from.
    """

    name = "status-quo"
    summary = "the v6.3 paths of every site"
    source = "Linux v6.3"

    def __init__(self, kernel: Kernel, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(kernel, dict(params or {}))
        self.packs: list[BpfPack] = []
        self.insn_pages: list[InsnPage] = []
        #: v6.9's "bpf: Check return from set_memory_rox()" (off: v6.3 ignores the return)
        self.bpf_check_rox = bool(self.config.get("bpf_check_rox", False))
        self._by_site = _SiteTable(self.pages_alloc)
        for site, method in SITE_METHODS.items():
            self._by_site[site] = getattr(self, method)
        self._hot = SqHot(self, kernel, self._by_site)  # what sq_alloc() .. sq_write() read

    def cache_pages(self) -> int:
        """Pages in BPF program packs and kprobe slot pages (held whether or not used)."""
        return (sum(pack.area.nr_pages for pack in self.packs)
                + sum(page.area.nr_pages for page in self.insn_pages))

    # -- dispatch ------------------------------------------------------------------------
    # The bodies are the module functions sq_alloc() .. sq_write() below: the engine calls
    # those directly for a design that does not override the method (a native call, where a
    # call through the design's bound method goes through the Python API).
    def alloc(self, request: Request) -> Allocation | None:
        """Serve ``request`` on its site's path; None is the kernel's NULL."""
        return sq_alloc(self._hot, request)

    def free(self, allocation: Allocation) -> None:
        """Free an allocation the status-quo paths made."""
        sq_free(self._hot, allocation)

    def free_generic(self, allocation: Allocation) -> None:
        """The generic free path; secretmem's ``free_folio`` runs first."""
        sq_free_generic(self._hot, allocation)

    def write(self, allocation: Allocation, length: int) -> None:
        """A store by the owner: loader copy then seal, text_poke on sealed text, or plain."""
        sq_write(self._hot, allocation, length)

    # -- where module memory comes from (arch/x86/kernel/module.c, mm/vmalloc.c) ----------
    def module_alloc(self, size: int, vm_flags: int = 0) -> VmStruct | None:
        """module_alloc(): 4 KiB-backed module-area memory with ``VM_FLUSH_RESET_PERMS``."""
        return self.kernel.module_alloc(size, vm_flags)

    def vfree(self, area: VmStruct) -> None:
        """vfree() of module-area memory this design's :meth:`module_alloc` made."""
        self.kernel.vfree(area)

    # -- secretmem (mm/secretmem.c) ------------------------------------------------------
    def secretmem_alloc(self, request: Request) -> Allocation | None:
        """secretmem_fault() once per page of the request."""
        hot = self._hot
        if request is not hot.request:
            hot.read_request(request)
        return _sq_secretmem_alloc(hot, request)

    def secretmem_fault(self, node: int | None) -> int:
        """secretmem_fault(): zeroed page, set_direct_map_invalid_noflush, 1-page flush."""
        return _sq_secretmem_fault(self.kernel, node)

    def secretmem_free_folio(self, pfn: int) -> None:
        """secretmem_free_folio(): set_direct_map_default_noflush, then zero the page."""
        _sq_secretmem_free_folio(self.kernel, pfn)

    # -- modules and trampolines ---------------------------------------------------------
    def module_mem_alloc(self, request: Request) -> Allocation | None:
        """module_alloc() of one section type; sealed at the loader's first write."""
        area = self.module_alloc(request.size)
        if area is None:
            return None
        mem = ModuleMem(area, request.perm, request.site)
        blocks = tuple((pfn, 0) for pfn in area.pages)
        return Allocation(blocks, area.addr << PAGE_SHIFT, request.size, False, mem)

    def module_seal(self, mem: ModuleMem) -> None:
        """module_enable_ro / _nx / _x (kernel/module/strict_rwx.c) for one section type."""
        kernel, addr, nr = self.kernel, mem.area.addr, mem.area.nr_pages
        if mem.site is Site.TRAMPOLINE:
            kernel.set_memory_rox(addr, nr)  # kernel/bpf/trampoline.c bpf_trampoline_update
        elif mem.perm is Perm.ROX:
            kernel.set_memory_ro(addr, nr)  # module_enable_ro: frob_text
            kernel.set_memory_x(addr, nr)  # module_enable_x: frob_text
        elif mem.perm is Perm.RO:
            kernel.set_memory_ro(addr, nr)  # module_enable_ro: frob_rodata / ro_after_init
            kernel.set_memory_nx(addr, nr)  # module_enable_nx
        else:
            kernel.set_memory_nx(addr, nr)  # module_enable_nx: frob_writable_data
        mem.sealed = True

    # -- kprobe instruction slots (kernel/kprobes.c) -------------------------------------
    def trampoline_alloc(self, request: Request) -> Allocation | None:
        """A kprobe instruction slot up to ``MAX_INSN_SIZE``, else its own ``module_alloc``."""
        if request.size <= MAX_INSN_SIZE:
            return self.get_insn_slot(request)
        return self.module_mem_alloc(request)

    def get_insn_slot(self, request: Request) -> Allocation | None:
        """__get_insn_slot(): the first free slot of the first page with one, else a new page."""
        for page in self.insn_pages:
            index = page.used.find(0)
            if index >= 0:
                return self._take_slot(page, index, request)
        area = self.module_alloc(PAGE_SIZE)  # alloc_insn_page()
        if area is None:
            return None
        self.kernel.set_memory_rox(area.addr, 1)
        page = InsnPage(area, bytearray(SLOTS_PER_PAGE))
        self.insn_pages.append(page)
        return self._take_slot(page, 0, request)

    def _take_slot(self, page: InsnPage, index: int, request: Request) -> Allocation:
        """__get_insn_slot(): mark the slot used (``SLOT_USED``) and return its address."""
        page.used[index] = 1
        self.kernel.ledger.charge("slab", self.kernel.costs["slab_op"])
        vaddr = (page.area.addr << PAGE_SHIFT) + index * MAX_INSN_SIZE
        return Allocation((), vaddr, request.size, False, InsnSlot(page, index))

    def free_insn_slot(self, slot: InsnSlot) -> None:
        """__free_insn_slot() + collect_one_slot(): an empty page goes unless it is the last."""
        page = slot.page
        page.used[slot.index] = 0
        self.kernel.ledger.charge("slab", self.kernel.costs["slab_op"])
        if not any(page.used) and len(self.insn_pages) > 1:
            self.insn_pages.remove(page)
            self.vfree(page.area)  # free_insn_page() = module_memfree()

    # -- BPF programs (kernel/bpf/core.c) ------------------------------------------------
    def pack_pages(self) -> int:
        """BPF_PROG_PACK_SIZE in pages: SZ_2M * num_possible_nodes()."""
        return PACK_PAGES * self.kernel.spec.nodes

    def bpf_prog_alloc(self, request: Request) -> Allocation | None:
        """bpf_jit_binary_pack_alloc(): the JIT image's room in a pack."""
        return self.bpf_prog_pack_alloc(request)

    def bpf_prog_pack_alloc(self, request: Request) -> Allocation | None:
        """bpf_prog_pack_alloc(): first fit over the packs, new pack on a miss."""
        size = -(-request.size // BPF_PROG_CHUNK_SIZE) * BPF_PROG_CHUNK_SIZE
        if size > self.pack_pages() << PAGE_SHIFT:
            return self._bpf_big_alloc(request, size)
        nbits = size >> BPF_PROG_CHUNK_SHIFT
        hole = bytes(nbits)
        for pack in self.packs:
            pos = pack.used.find(hole)
            if pos >= 0:
                return self._bpf_place(pack, pos, nbits, request)
        new = self.alloc_new_pack()
        if new is None:
            return None
        return self._bpf_place(new, 0, nbits, request)

    def _bpf_place(self, pack: BpfPack, pos: int, nbits: int, request: Request) -> Allocation:
        """bpf_prog_pack_alloc(): ``bitmap_set()`` the free chunks found; their address."""
        pack.used[pos:pos + nbits] = b"\1" * nbits
        pack.in_use += nbits
        self.kernel.ledger.charge("slab", self.kernel.costs["slab_op"])
        prog = BpfProg(nbits << BPF_PROG_CHUNK_SHIFT, pack, pos)
        vaddr = (pack.area.addr << PAGE_SHIFT) + (pos << BPF_PROG_CHUNK_SHIFT)
        return Allocation((), vaddr, request.size, False, prog)

    def alloc_new_pack(self) -> BpfPack | None:
        """alloc_new_pack(): module_alloc, fill with INT3, set_memory_ro then set_memory_x."""
        nr = self.pack_pages()
        area = self.module_alloc(nr << PAGE_SHIFT)
        if area is None or not self._bpf_seal(area):
            return None
        chunks = (nr << PAGE_SHIFT) >> BPF_PROG_CHUNK_SHIFT
        pack = BpfPack(area, chunks, bytearray(chunks))
        self.packs.append(pack)
        return pack

    def _bpf_big_alloc(self, request: Request, size: int) -> Allocation | None:
        """bpf_prog_pack_alloc() above a pack's size: its own module_alloc(), then RO and X."""
        area = self.module_alloc(size)
        if area is None or not self._bpf_seal(area):
            return None
        blocks = tuple((pfn, 0) for pfn in area.pages)
        return Allocation(blocks, area.addr << PAGE_SHIFT, request.size, False,
                          BpfProg(size, None, 0, area))

    def _bpf_seal(self, area: VmStruct) -> bool:
        """Make a new pack or big image RO and X; False when the load must fail.

        v6.3 ``alloc_new_pack()`` / ``bpf_prog_pack_alloc()`` call ``set_memory_ro()`` then
        ``set_memory_x()`` and ignore both returns, so a failed RO change leaves the pages
        writable and executable. With ``bpf_check_rox`` (v6.9, "bpf: Check return from
        set_memory_rox()") one ``set_memory_rox()`` is made and, if it fails, the area is
        freed (``VM_FLUSH_RESET_PERMS`` restores its alias) and the allocation fails.
        """
        kernel = self.kernel
        if not self.bpf_check_rox:
            kernel.set_memory_ro(area.addr, area.nr_pages)  # v6.3 alloc_new_pack: return ignored
            kernel.set_memory_x(area.addr, area.nr_pages)
            return True
        if kernel.set_memory_rox(area.addr, area.nr_pages):  # v6.9 alloc_new_pack: out_free
            self.vfree(area)
            return False
        return True

    def bpf_text_poke(self, allocation: Allocation, length: int) -> None:
        """bpf_arch_text_copy() = text_poke_copy() of the JIT image into the pack."""
        vaddr = allocation.vaddr
        self.kernel.text_poke(vaddr >> PAGE_SHIFT, vaddr & (PAGE_SIZE - 1),
                              length or allocation.size)

    def bpf_prog_pack_free(self, prog: BpfProg) -> None:
        """bpf_prog_pack_free(): text_poke_set over the image, clear bits, free empty packs."""
        kernel = self.kernel
        if prog.area is not None:
            self.vfree(prog.area)
            return
        pack = prog.pack
        assert pack is not None
        addr = pack.area.addr + ((prog.pos << BPF_PROG_CHUNK_SHIFT) >> PAGE_SHIFT)
        kernel.text_poke(addr, (prog.pos << BPF_PROG_CHUNK_SHIFT) & (PAGE_SIZE - 1), prog.size)
        nbits = prog.size >> BPF_PROG_CHUNK_SHIFT
        pack.used[prog.pos:prog.pos + nbits] = bytes(nbits)
        pack.in_use -= nbits
        kernel.ledger.charge("slab", kernel.costs["slab_op"])
        if not pack.in_use:  # bitmap_find_next_zero_area(): the whole pack is free
            self.packs.remove(pack)
            self.vfree(pack.area)

    # -- page-table pages, guest and DMA memory, plain pages -----------------------------
    def pagetable_alloc(self, request: Request) -> Allocation | None:
        """__get_free_page(GFP_PGTABLE_KERNEL); with PKS, set the key on the alias."""
        kernel = self.kernel
        pfn = kernel.alloc_pages(0, MIGRATE_UNMOVABLE, request.node, zero=True)
        if pfn == NO_PAGE:
            return None
        if request.perm is Perm.PKS and kernel.set_pages_pkey(pfn, 1, True):
            kernel.free_pages(pfn, 0)
            return None
        return Allocation(((pfn, 0),), 0, request.size, False, ("pagetable", request.perm))

    def guest_alloc(self, request: Request) -> Allocation | None:
        """Guest memory as v6.3 has it: zeroed user folios of up to 2 MiB, left mapped."""
        return self._chunked(request, MIGRATE_MOVABLE, zero=True, handle="guest")

    def dma_nokmap_alloc(self, request: Request) -> Allocation | None:
        """dma_alloc_attrs(DMA_ATTR_NO_KERNEL_MAPPING): plain pages, not zeroed, left mapped."""
        return self.pages_alloc(request)

    def pages_alloc(self, request: Request) -> Allocation | None:
        """alloc_pages(get_order(size)) for the remaining sites."""
        mt = SITE_MIGRATETYPE.get(request.site, MIGRATE_UNMOVABLE)
        order = get_order(request.size)
        if order >= MAX_ORDER:
            return self._chunked(request, mt, request.zero, request.site)
        zero = request.zero and request.site is not Site.DMA_NOKMAP
        pfn = self.kernel.alloc_pages(order, mt, request.node, zero=zero)
        if pfn == NO_PAGE:
            return None
        return Allocation(((pfn, order),), 0, request.size, False, (request.site, mt))

    def _chunked(self, request: Request, mt: int, zero: bool, handle: Any) -> Allocation | None:
        """Largest blocks first, at most order 9 (a THP-sized folio), smaller on failure."""
        kernel = self.kernel
        left = -(-request.size // PAGE_SIZE)
        blocks: list[tuple[int, int]] = []
        order = PMD_ORDER
        while left > 0:
            order = min(order, (left.bit_length() - 1))
            pfn = kernel.alloc_pages(order, mt, request.node, zero=zero)
            if pfn == NO_PAGE:
                if order == 0:
                    for done, o in blocks:
                        kernel.free_pages(done, o, movable=mt == MIGRATE_MOVABLE)
                    return None
                order -= 1
                continue
            blocks.append((pfn, order))
            left -= 1 << order
        return Allocation(tuple(blocks), 0, request.size, False, (handle, mt))

    def _free_blocks(self, allocation: Allocation) -> None:
        """__free_pages() of each block (PKS page tables get their key cleared first)."""
        _sq_free_blocks(self.kernel, allocation)


# -- the bodies of StatusQuo's entry points and secretmem hooks, callable directly (SqHot) ----
def sq_alloc(hot: SqHot, request: Request) -> Allocation | None:
    """Serve ``request`` on its site's path; None is the kernel's NULL."""
    if request is not hot.request:
        hot.read_request(request)
    serve = hot.by_site[hot.site]
    if serve is hot.own_secretmem_alloc:  # the status quo's own: a direct call
        return _sq_secretmem_alloc(hot, request)
    return serve(request)


def sq_free(hot: SqHot, allocation: Allocation) -> None:
    """Free an allocation the status-quo paths made."""
    sq = hot.sq
    handle = allocation.handle
    if handle == "secretmem":
        sq.free_generic(allocation)
    elif isinstance(handle, ModuleMem):
        sq.vfree(handle.area)
    elif isinstance(handle, BpfProg):
        sq.bpf_prog_pack_free(handle)
    elif isinstance(handle, InsnSlot):
        sq.free_insn_slot(handle)
    elif hot.own_free_blocks:
        _sq_free_blocks(hot.kernel, allocation)
    else:
        sq._free_blocks(allocation)


def sq_free_generic(hot: SqHot, allocation: Allocation) -> None:
    """The generic free path; secretmem's ``free_folio`` runs first."""
    if allocation.handle == "secretmem":
        if hot.own_free_folio:
            kernel = hot.kernel
            for pfn, _ in allocation.blocks:
                _sq_secretmem_free_folio(kernel, pfn)
        else:
            for pfn, _ in allocation.blocks:
                hot.sq.secretmem_free_folio(pfn)
    if hot.own_free_blocks:
        _sq_free_blocks(hot.kernel, allocation)
    else:
        hot.sq._free_blocks(allocation)


def sq_write(hot: SqHot, allocation: Allocation, length: int) -> None:
    """A store by the owner: loader copy then seal, text_poke on sealed text, or plain."""
    handle = allocation.handle
    kernel = hot.kernel
    if handle == "secretmem":
        dirty = kernel.dirty
        for pfn, _ in allocation.blocks:
            dirty.add(pfn)
    elif isinstance(handle, ModuleMem):
        if not handle.sealed:
            kernel.dirty.update(handle.area.pages)
            hot.sq.module_seal(handle)
        elif handle.perm in (Perm.ROX, Perm.RO):
            kernel.text_poke(handle.area.addr, 0, length or allocation.size)
        else:
            kernel.dirty.update(handle.area.pages)
    elif isinstance(handle, (BpfProg, InsnSlot)):
        hot.sq.bpf_text_poke(allocation, length)
    elif len(allocation.blocks) == 1 and allocation.blocks[0][1] == 0:
        kernel.dirty.add(allocation.blocks[0][0])
    else:
        dirty = kernel.dirty
        for pfn, order in allocation.blocks:  # a folio at a time
            dirty.update(range(pfn, pfn + (1 << order)))


def _sq_secretmem_alloc(hot: SqHot, request: Request) -> Allocation | None:
    """StatusQuo.secretmem_alloc(): secretmem_fault() once per page of the request (its
    fields already read into ``hot``: SqHot.read_request())."""
    size = hot.size
    if size <= PAGE_SIZE:  # one fault, the common case
        if hot.own_fault:
            pfn = _sq_secretmem_fault(hot.kernel, hot.node)
        else:
            pfn = hot.sq.secretmem_fault(hot.node)
        if pfn == NO_PAGE:
            return None
        # Allocation(((pfn, 0),), 0, size, True, "secretmem"), built without the named
        # tuple's Python-level __new__: one per page on the hottest path.
        return _new_tuple(_ALLOCATION, (((pfn, 0),), 0, size, True, "secretmem"))
    sq = hot.sq
    blocks: list[tuple[int, int]] = []
    for _ in range(max(1, -(-size // PAGE_SIZE))):
        pfn = sq.secretmem_fault(hot.node)
        if pfn == NO_PAGE:
            for done, _ in blocks:
                sq.secretmem_free_folio(done)
                hot.kernel.free_pages(done, 0)
            return None
        blocks.append((pfn, 0))
    return Allocation(tuple(blocks), 0, size, True, "secretmem")


def _sq_secretmem_fault(kernel: Kernel, node: int | None) -> int:
    """secretmem_fault(): zeroed page, set_direct_map_invalid_noflush, 1-page flush."""
    # The facade's entry points are these parts' methods; called on the parts, they are
    # direct calls in the compiled core (docs/performance.md, "Compiled core").
    pages = kernel.page_alloc
    pfn = pages.alloc_pages(0, MIGRATE_UNMOVABLE, node, True)  # __GFP_ZERO
    if pfn == NO_PAGE:
        return NO_PAGE
    if kernel.set_memory.set_direct_map_invalid_noflush(pfn):
        pages.free_pages(pfn, 0)  # put_page() on error
        return NO_PAGE
    kernel.tlb.flush_tlb_kernel_range(1)
    return pfn


def _sq_secretmem_free_folio(kernel: Kernel, pfn: int) -> None:
    """secretmem_free_folio(): set_direct_map_default_noflush, then zero the page."""
    kernel.set_memory.set_direct_map_default_noflush(pfn)  # the parts: see _sq_secretmem_fault
    kernel.page_alloc.clear_pages(pfn, 1)


def _sq_free_blocks(kernel: Kernel, allocation: Allocation) -> None:
    """__free_pages() of each block (PKS page tables get their key cleared first)."""
    handle = allocation.handle
    movable = isinstance(handle, tuple) and handle[1] == MIGRATE_MOVABLE
    if handle == _PKS_PAGETABLE:
        for pfn, _ in allocation.blocks:
            kernel.set_pages_pkey(pfn, 1, False)
    pages = kernel.page_alloc  # __free_pages(): see _sq_secretmem_fault
    for pfn, order in allocation.blocks:
        pages.free_pages(pfn, order, movable)
