"""``secretmem-pmd``: the memfd_secret series' pool of PMD-size pages.

Models "mm: secretmem: use PMD-size pages to amortize direct map fragmentation" (Mike
Rapoport, memfd_secret v16, 20210121122723.3446-8-rppt@kernel.org; later dropped after
Michal Hocko's NAK): secretmem pages come from a ``gen_pool`` fed 2 MiB at a time.
``secretmem_pool_increase()`` takes 512 contiguous pages (``cma_alloc()`` from the
``secretmem=`` reservation; the model takes an order-9 block from the buddy), removes them
from the direct map with one ``set_direct_map_invalid_noflush(page, 512)`` (an aligned
2 MiB-mapped block changes in place: no split) and flushes the 2 MiB range (a
``flush_tlb_all``: 512 pages are over the ceiling). A fault takes the first free page of the
pool (``gen_pool_alloc``, first fit in pool order); a freed page goes back to the pool,
cleared through a temporary mapping since it is not in the direct map. The pool is per
inode and given back only when the inode is evicted: the model has no inodes, so it stands
for one secretmem file and gives every chunk back (direct map restored with one
``set_direct_map_default_noflush(page, 512)``, no flush) when its last page is freed.
No shrinker (the reason for the NAK: the pool cannot be reclaimed under pressure).

Serves ``secretmem``. Parameter ``release`` (``evict``: chunks go back when the pool is
empty; ``never``: the pool keeps them). Stats: chunks, refills, releases, pages in use.

docs/designs.md, "secretmem-pmd", has the sources and every modelled detail and
simplification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.designs._unmapped_cache import clear_unmapped
from framework.hookspecs import hookimpl
from framework.kernel.buddy import NO_PAGE
from framework.kernel.consts import MIGRATE_MOVABLE, PAGE_SIZE, PMD_ORDER
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import BPF_CHECK_ROX, StatusQuo

PMD_PAGES = 1 << PMD_ORDER
SECRETMEM_PMD = "secretmem-pmd"  # the handle of pages the pool handed out
GEN_POOL_CHUNK_BYTES = 64 + PMD_PAGES // 8  # struct gen_pool_chunk + its 512-bit bitmap


class SecretmemPmd(StatusQuo):
    """secretmem faults served from a pool of unmapped 2 MiB chunks (module docstring)."""

    name = "secretmem-pmd"
    summary = ("memfd_secret v16 PMD pool: secretmem pages from 2 MiB chunks unmapped with "
               "one CPA each, kept until the file is evicted, no shrinker")
    source = "20210121122723.3446-8-rppt@kernel.org (memfd_secret v16, patch 7)"
    covers = frozenset({Site.SECRETMEM})
    params = (
        Param("release", str, "evict", "evict: chunks go back when no page is in use (inode "
              "eviction); never: the pool keeps them", choices=("evict", "never")),
        BPF_CHECK_ROX,
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.evict = params["release"] == "evict"
        self.chunks: list[int] = []  # head pfn of each chunk, in gen_pool_add order
        self.used: dict[int, bytearray] = {}  # chunk head -> page bitmap
        self.in_use = 0
        self.refills = 0
        self.releases = 0

    # -- the pool --------------------------------------------------------------------------
    def secretmem_pool_alloc(self) -> int:
        """gen_pool_alloc(PAGE_SIZE): first free page over the chunks; grow on a miss."""
        for head in self.chunks:
            index = self.used[head].find(0)
            if index >= 0:
                return self._take(head, index)
        head = self.secretmem_pool_increase()
        if head == NO_PAGE:
            return NO_PAGE
        return self._take(head, 0)

    def _take(self, head: int, index: int) -> int:
        self.used[head][index] = 1
        self.in_use += 1
        self.kernel.ledger.charge("slab", self.kernel.costs["slab_op"])  # bitmap search
        return head + index

    def secretmem_pool_increase(self) -> int:
        """cma_alloc(512), zero, invalid in the direct map with one call, 2 MiB flush."""
        kernel = self.kernel
        head = kernel.alloc_pages(PMD_ORDER, MIGRATE_MOVABLE, None, zero=True)
        if head == NO_PAGE:
            return NO_PAGE
        if kernel.set_direct_map_invalid_noflush(head, PMD_PAGES):
            kernel.set_direct_map_default_noflush(head, PMD_PAGES)
            kernel.free_pages(head, PMD_ORDER, movable=True)  # cma_release()
            return NO_PAGE
        kernel.flush_tlb_kernel_range(PMD_PAGES)
        kernel.split_page(head, PMD_ORDER)
        self.chunks.append(head)
        self.used[head] = bytearray(PMD_PAGES)
        self.refills += 1
        return head

    def secretmem_pool_free(self, pfn: int) -> None:
        """Clear the page (temporary mapping) and gen_pool_free() it; evict an empty pool."""
        clear_unmapped(self.kernel, pfn, 1)
        head = self._head_of(pfn)
        self.used[head][pfn - head] = 0
        self.in_use -= 1
        if self.evict and self.in_use == 0:
            self.release_all()

    def _head_of(self, pfn: int) -> int:
        for head in self.chunks:
            if head <= pfn < head + PMD_PAGES:
                return head
        raise KeyError(pfn)

    def release_all(self) -> None:
        """Inode eviction: every chunk back, direct map restored with one call each."""
        kernel = self.kernel
        for head in self.chunks:
            kernel.set_direct_map_default_noflush(head, PMD_PAGES)
            for pfn in range(head, head + PMD_PAGES):  # cma_release() of split pages
                kernel.free_pages(pfn, 0, movable=True)
            self.releases += 1
        self.chunks.clear()
        self.used.clear()

    # -- the site ----------------------------------------------------------------------------
    def secretmem_alloc(self, request: Request) -> Allocation | None:
        """secretmem_fault() per page: a page of the pool, already unmapped and flushed."""
        blocks: list[tuple[int, int]] = []
        for _ in range(max(1, -(-request.size // PAGE_SIZE))):
            pfn = self.secretmem_pool_alloc()
            if pfn == NO_PAGE:
                for done, _ in blocks:
                    self.secretmem_pool_free(done)
                return None
            blocks.append((pfn, 0))
        return Allocation(tuple(blocks), 0, request.size, True, SECRETMEM_PMD)

    def free(self, allocation: Allocation) -> None:
        """Pool pages go back to the pool; other sites as v6.3."""
        if allocation.handle != SECRETMEM_PMD:
            super().free(allocation)
            return
        for pfn, _ in allocation.blocks:
            self.secretmem_pool_free(pfn)

    def free_generic(self, allocation: Allocation) -> None:
        """The page cache's last put: secretmem_freepage() returns the page to the pool."""
        if allocation.handle != SECRETMEM_PMD:
            super().free_generic(allocation)
            return
        self.free(allocation)

    def write(self, allocation: Allocation, length: int) -> None:
        """The owner's stores through its user mapping."""
        if allocation.handle != SECRETMEM_PMD:
            super().write(allocation, length)
            return
        self.kernel.dirty.update(allocation.pfns())

    # -- accounting ----------------------------------------------------------------------------
    def cache_pages(self) -> int:
        """Pool pages not handed out (plus status-quo packs and slot pages)."""
        return len(self.chunks) * PMD_PAGES - self.in_use + super().cache_pages()

    def metadata_bytes(self) -> int:
        """One gen_pool_chunk with its bitmap per chunk."""
        return GEN_POOL_CHUNK_BYTES * len(self.chunks)

    def stats(self) -> dict[str, Any]:
        """Chunks, refills, releases, pages in use."""
        return {"chunks": len(self.chunks), "refills": self.refills,
                "releases": self.releases, "in_use": self.in_use}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``secretmem-pmd``."""
    register(SecretmemPmd)
