"""``jit-slab``: Kent Overstreet's jit/text slab allocator.

Models: "[PATCH] mm: jit/text allocator" (Kent Overstreet, 17 May 2023, commit 6eeb6b8ef427 of
his tree), posted inline in the thread of 20230308094106.227365-1-rppt@kernel.org (the seed,
``mm/jitalloc.c``). Users named by the patch: BPF, ftrace trampolines, bcachefs unpack
functions; module sections stay on the status-quo path ("not implemented in this patch: need
to tweak module_alloc()"), so the design covers the ``bpf_prog`` and ``trampoline`` sites.

What is modelled, from the posted code:

- Eight caches of power-of-two objects, 16 B to 2048 B (``JITALLOC_MIN_SIZE`` 16,
  ``NR_JIT_CACHES = ilog2(PAGE_SIZE / 16)`` = 8); ``jit_alloc()`` picks
  ``ilog2(roundup_pow_of_two(len) / 16)``; a cache's slab holds ``PAGE_SIZE >> bits`` objects
  (256 of 16 B ... 2 of 2048 B), each aligned to its size.
- A slab is one page: ``module_alloc(PAGE_SIZE)`` (4 KiB vmalloc page plus guard page,
  ``VM_FLUSH_RESET_PERMS``), ``set_vm_flush_reset_perms``, ``set_memory_rox(addr, 1)``: one
  CPA call whose direct-map alias loses RW (a split if the alias is still large) and which ends
  in a global flush. ``struct jit_slab`` overlays the slab's ``struct page`` (no memory); its
  bitmap is ``kcalloc(BITS_TO_LONGS(objs), sizeof(long))``: 32 B for the 16 B class, 16 B for
  32 B, 8 B for the others (:meth:`JitSlabAllocator.metadata_bytes` counts it).
- Per-cache partial lists (``list_add`` at the head, ``list_first_entry`` from the head: the
  most recently listed slab is used first); full slabs are on no list. ``jit_cache_alloc``:
  first partial slab or a new one, ``find_first_zero_bit``; a slab goes on the partial list
  at its first object and off it when full. One global ``jit_alloc_lock`` mutex around every
  cache alloc and every slab free (acquisitions counted in :meth:`JitSlabAllocator.stats`);
  one ``slab_op`` is charged per bitmap/list update.
- Objects of more than 2048 B: ``module_alloc(len)`` + ``set_memory_rox(p, DIV_ROUND_UP(len,
  PAGE_SIZE))``, no lock; the owner has those pages to itself (``Allocation.blocks``).
- ``jit_update()`` = ``text_poke_copy()``: every write goes through the poking mm.
- ``jit_free()``: ``vmalloc_to_page``; a page that is not a slab goes to ``vfree`` (which
  resets the alias: ``VM_FLUSH_RESET_PERMS``); in a slab the bit is cleared (no
  invalidation: the freed object keeps its old instructions), a full slab goes back on the
  partial list, an empty one is released (see the variants).

Variants (``--set jit-slab.variant=...``):

- ``posted`` (default), the code as posted, with its quirks:
  ``len`` is unused in ``jit_cache_alloc`` (Song Liu; Kent: "redundant", harmless). For
  ``len <= 8``, ``roundup_pow_of_two(len) / 16`` is 0 and the run-time ``ilog2(0)`` is
  ``fls64(0) - 1 = -1`` (include/linux/log2.h ``__ilog2_u64``); stored in an ``unsigned`` it is
  4294967295, so ``jit_cache_idx < NR_JIT_CACHES`` fails and the object gets a page of its own
  through ``module_alloc(len)`` + ``set_memory_rox``. An empty slab is released with
  ``kfree(bitmap)`` + ``folio_put(folio)`` on the vmalloc page: the page goes back to the
  buddy while the module area still maps it ROX and its direct-map alias is still RO, and the
  ``vm_struct``/``vmap_area`` (and the module address range) leak. Modelled as
  ``kernel.free_pages(pfn, 0)`` without ``vfree``: the area stays in ``kernel.areas`` and its
  pfn in the direct map's executable set. What the engine catches: the free itself is a
  ``bad_free`` (a page freed while a live vmalloc area still maps it; conservation holds, the
  page is back in the buddy); when the page is reused by a path that restores its alias to RW
  (secretmem's ``free_folio``, ``vfree`` of a ``VM_FLUSH_RESET_PERMS`` area...),
  ``wx_mapping`` ("X alias RW"): a page executable through the leaked module mapping is
  writable through the direct map.
  (In the real kernel ``folio_put`` would also find ``PG_slab`` set and ``page->mapping``
  overwritten by the overlay, a ``bad_page`` report on ``CONFIG_DEBUG_VM`` or at pcp drain;
  not modelled.)
- ``fixed``: sizes up to 16 B use the 16 B cache; an empty slab is released with ``vfree``
  (``VM_FLUSH_RESET_PERMS`` makes the alias invalid, flushes, restores it), nothing leaks.

Simplified: ``kcalloc``/``kfree`` are counted, not modelled as slab memory; the mutex costs
nothing (the model is single-threaded); ``text_poke`` of the initial ``jit_alloc(buf, len)``
copy is the workload's ``write`` event; no NUMA (``module_alloc`` is ``NUMA_NO_NODE``), no
empty-slab cache, no shrinker (there is nothing cached once a slab is empty).

Stats: objects per class, slabs live per class, partial slabs per class, slabs created and
released, lock acquisitions, big objects, vm areas leaked (``posted``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.consts import PAGE_SHIFT, PAGE_SIZE
from framework.kernel.kernel import Kernel
from framework.kernel.vmalloc import VmStruct
from framework.params import Param
from framework.request import Allocation, Request
from framework.statusquo import StatusQuo

JITALLOC_MIN_SIZE = 16  # mm/jitalloc.c
JITALLOC_MIN_SHIFT = 4  # ilog2(JITALLOC_MIN_SIZE)
NR_JIT_CACHES = 8  # ilog2(PAGE_SIZE / JITALLOC_MIN_SIZE)
BITS_PER_LONG = 64
UINT_MASK = 0xFFFFFFFF  # jit_alloc() keeps the index in an unsigned int


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
    """``struct jit_slab`` (overlaid on the slab page's struct page) and its bitmap."""

    cache: JitCache
    area: VmStruct
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
    covers = frozenset({"bpf_prog", "trampoline"})
    params = (
        Param("variant", str, "posted", "posted: the code as posted (len <= 8 -> page path, "
              "folio_put of empty slabs leaks the vm area); fixed: 16 B class, vfree",
              choices=("posted", "fixed")),
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
            vaddr = (slab.area.addr << PAGE_SHIFT) + (obj.index << slab.cache.obj_size_bits)
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
        """jit_slab_alloc(): module_alloc(PAGE_SIZE), kcalloc bitmap, rox one page."""
        kernel = self.kernel
        area = self.module_alloc(PAGE_SIZE)
        if area is None:
            return None
        kernel.set_memory_rox(area.addr, 1)  # set_vm_flush_reset_perms + set_memory_rox
        cache.nr_slabs += 1
        self.slabs_created += 1
        self.live_slab_pages += 1
        self.live_bitmap_bytes += bitmap_bytes(cache.objs_per_slab)
        return JitSlab(cache, area)

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
        self.live_slab_pages -= 1
        self.live_bitmap_bytes -= bitmap_bytes(slab.cache.objs_per_slab)
        if self.posted:
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
        return self.live_slab_pages + super().cache_pages()

    def metadata_bytes(self) -> int:
        """The kcalloc'd bitmaps of live slabs (struct jit_slab overlays struct page)."""
        return self.live_bitmap_bytes

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
        }


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``jit-slab``."""
    register(JitSlabAllocator)
