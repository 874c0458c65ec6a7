"""``jit-slab``: Kent Overstreet's jit/text slab allocator.

Models "[PATCH] mm: jit/text allocator" (Kent Overstreet, 17 May 2023, ``mm/jitalloc.c``,
posted in the thread of 20230308094106.227365-1-rppt@kernel.org): eight caches of
power-of-two objects from 16 B to 2048 B; a slab is one page from ``module_alloc(PAGE_SIZE)``
made ROX with ``set_memory_rox(addr, 1)``, with a ``kcalloc``'d bitmap; per-cache partial
lists; one global ``jit_alloc_lock`` mutex; ``jit_update()`` = ``text_poke_copy()``;
``jit_free()`` clears the bit and releases an empty slab; objects above 2048 B get
``module_alloc(len)`` + ``set_memory_rox``. Sites: ``bpf_prog`` and ``trampoline`` (module
sections stay on the status-quo path, as the patch says).

Variants (``--set jit-slab.variant=...``): ``posted`` (default), the code as posted: sizes up
to 8 B take the page path (``ilog2(0)``), and an empty slab is released with ``folio_put()``
on its vmalloc page, which leaks the vm area (caught as ``bad_free``, then ``wx_mapping`` when
the page is reused); ``fixed``: such sizes use the 16 B class and empty slabs are
``vfree``'d.

Composition (``--set jit-slab.backend=...``, framework/compose.py): ``module_alloc`` (default,
the posted code); ``unmapped-api`` (or any page source), the thread's suggestion: each slab
page is ``unmapped_pages_alloc(0)`` of the backend, ``vmap``'d in the module area and made ROX,
and an empty slab is ``vunmap``'d and ``unmapped_pages_free``'d back (both variants: the posted
``folio_put`` belongs to the module_alloc path); ``vmap-area`` (or any text source): each slab
is a 4 KiB ``execmem_alloc`` in the backend's 2 MiB ROX chunks, freed with ``execmem_free``.
Objects above 2048 B keep ``module_alloc``. Stats: objects, live and partial slabs per class,
slabs created and released, lock acquisitions, big objects, vm areas leaked.

docs/designs.md, "jit-slab", has the posted code, the review, and every modelled detail and
simplification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from framework.allocator import Allocator
from framework.compose import (
    PageSource,
    TextSource,
    backend_cache_pages,
    backend_metadata_bytes,
    backend_param,
    backend_stats,
    make_backend,
)
from framework.hookspecs import hookimpl
from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import PAGE_SHIFT, PAGE_SIZE
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VmStruct
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import StatusQuo

JITALLOC_MIN_SIZE = 16  # mm/jitalloc.c
JITALLOC_MIN_SHIFT = 4  # ilog2(JITALLOC_MIN_SIZE)
NR_JIT_CACHES = 8  # ilog2(PAGE_SIZE / JITALLOC_MIN_SIZE)
BITS_PER_LONG = 64
UINT_MASK = 0xFFFFFFFF  # jit_alloc() keeps the index in an unsigned int
OWN_SOURCE = "module_alloc"  # jit-slab.backend's default: the posted code's page source


def ilog2(n: int) -> int:
    """include/linux/log2.h ilog2() of a run-time value: ``fls64(n) - 1``, so -1 for 0."""
    return n.bit_length() - 1


def roundup_pow_of_two(n: int) -> int:
    """include/linux/log2.h __roundup_pow_of_two(): ``1UL << fls_long(n - 1)`` (n >= 1)."""
    return 1 << (n - 1).bit_length()


def jit_cache_idx(length: int, posted: bool) -> int:
    """The cache ``jit_alloc(buf, len)`` picks; ``>= NR_JIT_CACHES`` means module_alloc.

    Posted: ``(unsigned) ilog2(roundup_pow_of_two(len) / 16)``, so ``len <= 8`` wraps to
    4294967295. Fixed: ``len <= 16`` is the 16 B cache.
    """
    idx = ilog2(roundup_pow_of_two(max(length, 1)) >> JITALLOC_MIN_SHIFT)
    if posted:
        return idx & UINT_MASK
    return max(idx, 0)


def bitmap_bytes(objs_per_slab: int) -> int:
    """kcalloc(BITS_TO_LONGS(objs), sizeof(unsigned long)): 32, 16 or 8 bytes (kmalloc-8..32)."""
    return -(-objs_per_slab // BITS_PER_LONG) * (BITS_PER_LONG // 8)


@attrs.define(slots=True, eq=False)
class JitCache:
    """``struct jit_cache``: object size, objects per slab, the partial list.

    ``partial`` is ordered oldest to newest; its *last* entry is the kernel list's head.
    """

    obj_size_bits: int
    objs_per_slab: int
    partial: dict[JitSlab, None] = attrs.field(factory=dict)
    nr_slabs: int = 0
    nr_objects: int = 0


@attrs.define(slots=True, eq=False)
class JitSlab:
    """``struct jit_slab`` (overlaid on the slab page's struct page) and its bitmap.

    ``vpage`` is the slab's module-area page; ``area`` its own vm area (None when the page
    is a backend's text range).
    """

    cache: JitCache
    vpage: int
    area: VmStruct | None = None
    objs_allocated: int = 0  # the bitmap, bit i set = object i in use
    nr_allocated: int = 0


@attrs.define(slots=True, eq=False)
class JitObj:
    """An object: in a slab at ``index``, or a ``module_alloc`` area of its own."""

    size: int
    slab: JitSlab | None = None
    index: int = 0
    area: VmStruct | None = None


class JitSlabAllocator(StatusQuo):
    """Kent Overstreet's jit/text slab (see the module docstring)."""

    name = "jit-slab"
    summary = ("Kent Overstreet's jit/text slab: 8 power-of-two classes 16..2048 B in one-page "
               "ROX slabs, global mutex, module_alloc for bigger objects")
    source = ("Kent Overstreet, '[PATCH] mm: jit/text allocator', 17 May 2023, in the thread "
              "of 20230308094106.227365-1-rppt@kernel.org")
    covers = frozenset({Site.BPF_PROG, Site.TRAMPOLINE})
    params = (
        Param("variant", str, "posted", "posted: the code as posted (len <= 8 -> page path, "
              "folio_put of empty slabs leaks the vm area); fixed: 16 B class, vfree",
              choices=("posted", "fixed")),
        backend_param("jit-slab", OWN_SOURCE, (PageSource, TextSource),
                      "where slab pages come from: module_alloc, a page source such as "
                      "unmapped-api (vmap'd, ROX), or a text source such as vmap-area"),
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.posted = params["variant"] == "posted"
        self.caches = [  # jit_alloc_init()
            JitCache(JITALLOC_MIN_SHIFT + i, PAGE_SIZE >> (JITALLOC_MIN_SHIFT + i))
            for i in range(NR_JIT_CACHES)
        ]
        self.lock_acquisitions = 0
        self.slabs_created = 0
        self.slabs_released = 0
        self.big_objects = 0
        self.leaked_areas: list[VmStruct] = []
        self.live_slab_pages = 0
        self.live_bitmap_bytes = 0
        self.backend = None
        if params["backend"] != OWN_SOURCE:
            self.backend = make_backend(kernel, self.name, params["backend"],
                                        (PageSource, TextSource))

    # -- jit_alloc ----------------------------------------------------------------------
    def jit_alloc(self, request: Request) -> Allocation | None:
        """jit_alloc(NULL, len): a slab object, or module_alloc for big (or posted tiny) ones."""
        length = request.size
        idx = jit_cache_idx(length, self.posted)
        if idx < NR_JIT_CACHES:
            self.lock_acquisitions += 1  # mutex_lock(&jit_alloc_lock)
            obj = self.jit_cache_alloc(self.caches[idx])
            if obj is None or obj.slab is None:
                return None
            slab = obj.slab
            vaddr = (slab.vpage << PAGE_SHIFT) + (obj.index << slab.cache.obj_size_bits)
            return Allocation((), vaddr, length, False, obj)
        return self.jit_alloc_pages(length)

    bpf_prog_alloc = jit_alloc  # the thread: BPF programs and trampolines call jit_alloc()
    trampoline_alloc = jit_alloc

    def jit_alloc_pages(self, length: int) -> Allocation | None:
        """jit_alloc() else-branch: module_alloc(len), set_vm_flush_reset_perms, rox."""
        kernel = self.kernel
        area = self.module_alloc(length)
        if area is None:
            return None
        kernel.set_memory_rox(area.addr, -(-length // PAGE_SIZE))
        self.big_objects += 1
        blocks = tuple((pfn, 0) for pfn in area.pages)
        return Allocation(blocks, area.addr << PAGE_SHIFT, length, False,
                          JitObj(length, area=area))

    def jit_cache_alloc(self, cache: JitCache) -> JitObj | None:
        """jit_cache_alloc(): first partial slab (or a new one), find_first_zero_bit."""
        slab = next(reversed(cache.partial), None) if cache.partial else None
        if slab is None:
            slab = self.jit_slab_alloc(cache)
            if slab is None:
                return None
        bits = slab.objs_allocated
        index = ((bits + 1) & ~bits).bit_length() - 1  # find_first_zero_bit()
        slab.objs_allocated = bits | (1 << index)  # __set_bit()
        slab.nr_allocated += 1
        if slab.nr_allocated == cache.objs_per_slab:  # list_del_init(): full, untracked
            cache.partial.pop(slab, None)
        elif slab.nr_allocated == 1:  # list_del() + list_add(): to the partial list's head
            cache.partial.pop(slab, None)
            cache.partial[slab] = None
        cache.nr_objects += 1
        self._charge_slab_op()
        return JitObj(1 << cache.obj_size_bits, slab, index)

    def jit_slab_alloc(self, cache: JitCache) -> JitSlab | None:
        """jit_slab_alloc(): a ROX page from the backend, kcalloc bitmap."""
        slab = self.slab_page(cache)
        if slab is None:
            return None
        cache.nr_slabs += 1
        self.slabs_created += 1
        if slab.area is not None:  # a text source counts its chunk pages itself
            self.live_slab_pages += 1
        self.live_bitmap_bytes += bitmap_bytes(cache.objs_per_slab)
        return slab

    def slab_page(self, cache: JitCache) -> JitSlab | None:
        """One ROX slab page: module_alloc + rox, a page source's page vmap'd + rox, or a
        text source's 4 KiB range (ROX already)."""
        kernel = self.kernel
        backend = self.backend
        if isinstance(backend, TextSource):
            addr = backend.text_alloc(PAGE_SIZE, PAGE_SIZE)
            return None if addr < 0 else JitSlab(cache, addr >> PAGE_SHIFT)
        if isinstance(backend, PageSource):
            pfn = backend.source_pages(0, False)  # module_alloc() does not zero either
            if pfn == NO_PAGE:
                return None
            area = kernel.vmap([pfn], 0)
            if area is None:
                backend.return_pages(pfn, 0)
                return None
        else:
            area = self.module_alloc(PAGE_SIZE)
            if area is None:
                return None
        kernel.set_memory_rox(area.addr, 1)  # set_vm_flush_reset_perms + set_memory_rox
        return JitSlab(cache, area.addr, area)

    # -- jit_update ---------------------------------------------------------------------
    def write(self, allocation: Allocation, length: int) -> None:
        """jit_update() = text_poke_copy() over the object; other sites as v6.3 writes."""
        if not isinstance(allocation.handle, JitObj):
            super().write(allocation, length)
            return
        vaddr = allocation.vaddr
        self.kernel.text_poke(vaddr >> PAGE_SHIFT, vaddr & (PAGE_SIZE - 1),
                              length or allocation.size)

    # -- jit_free -----------------------------------------------------------------------
    def free(self, allocation: Allocation) -> None:
        """jit_free(): vfree a non-slab page; else clear the bit, relist, release if empty."""
        obj = allocation.handle
        if not isinstance(obj, JitObj):
            super().free(allocation)
            return
        slab = obj.slab
        if slab is None:  # !folio_test_slab(folio): vfree(buf)
            assert obj.area is not None
            self.vfree(obj.area)
            self.big_objects -= 1
            return
        cache = slab.cache
        self.lock_acquisitions += 1  # mutex_lock(&jit_alloc_lock)
        slab.objs_allocated &= ~(1 << obj.index)  # __clear_bit()
        slab.nr_allocated -= 1
        cache.nr_objects -= 1
        self._charge_slab_op()
        if slab.nr_allocated == 0:
            cache.partial.pop(slab, None)  # list_del()
            self.release_slab(slab)
        elif slab.nr_allocated + 1 == cache.objs_per_slab:  # was full: to the partial head
            cache.partial.pop(slab, None)
            cache.partial[slab] = None

    def release_slab(self, slab: JitSlab) -> None:
        """kfree(bitmap) + folio_put(folio) (posted) or vfree(executably_mapped) (fixed)."""
        kernel = self.kernel
        slab.cache.nr_slabs -= 1
        self.slabs_released += 1
        self.live_bitmap_bytes -= bitmap_bytes(slab.cache.objs_per_slab)
        backend = self.backend
        if slab.area is None:
            assert isinstance(backend, TextSource)
            backend.text_free(slab.vpage << PAGE_SHIFT)
            return
        self.live_slab_pages -= 1
        if isinstance(backend, PageSource):
            for pfn in kernel.vunmap(slab.area):
                backend.return_pages(pfn, 0)
        elif self.posted:
            # folio_put() on the vmalloc page: back to the buddy, still mapped ROX in the
            # module area with an RO alias; the vm area is never vfree'd.
            kernel.free_pages(slab.area.pages[0], 0)
            self.leaked_areas.append(slab.area)
        else:
            self.vfree(slab.area)

    def _charge_slab_op(self) -> None:
        kernel = self.kernel
        kernel.ledger.charge("slab", kernel.costs["slab_op"])

    # -- accounting ---------------------------------------------------------------------
    def cache_pages(self) -> int:
        """Slab pages (partial and full): taken from the buddy, not in any Allocation.blocks."""
        return (self.live_slab_pages + super().cache_pages()
                + backend_cache_pages(self.backend))

    def metadata_bytes(self) -> int:
        """The kcalloc'd bitmaps of live slabs (struct jit_slab overlays struct page)."""
        return self.live_bitmap_bytes + backend_metadata_bytes(self.backend)

    def stats(self) -> dict[str, Any]:
        """Per-class objects/slabs/partial slabs, slab churn, lock acquisitions, leaks."""
        classes = {
            str(1 << c.obj_size_bits): {"objects": c.nr_objects, "slabs": c.nr_slabs,
                                        "partial": len(c.partial)}
            for c in self.caches
        }
        return {
            "classes": classes,
            "slabs": sum(c.nr_slabs for c in self.caches),
            "partial": sum(len(c.partial) for c in self.caches),
            "slabs_created": self.slabs_created,
            "slabs_released": self.slabs_released,
            "lock_acquisitions": self.lock_acquisitions,
            "big_objects": self.big_objects,
            "leaked_vm_areas": len(self.leaked_areas),
            **backend_stats(self.backend),
        }


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``jit-slab``."""
    register(JitSlabAllocator)
