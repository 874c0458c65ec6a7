"""``guest-memfd``: guest_memfd with ``GUEST_MEMFD_FLAG_NO_DIRECT_MAP``.

Models the series of Patrick Roy and Nikita Kalyazin (RFC 20241030134912.515725-3-roypat,
Oct 2024, to v12, 20260114134510.1835-1-kalyazin): a VM's guest_memfd created with
``GUEST_MEMFD_FLAG_NO_DIRECT_MAP`` takes each folio out of the direct map when it is
allocated and puts it back when it is freed. Per folio (up to 2 MiB, the largest first, as
the guest workload faults them): ``filemap_alloc_folio()`` from the buddy (movable, on the
VM's node), cleared before first use (``kvm_gmem_get_folio()``: ``folio_zero_range`` while
still mapped), then ``folio_zap_direct_map()`` = ``set_direct_map_valid_noflush(folio, nr,
false)`` plus ``flush_tlb_kernel_range()`` over the folio (an aligned 2 MiB folio on a
2 MiB entry changes in place with one CPA call and a ``flush_tlb_all``; a 4 KiB folio
splits its 2 MiB entry). ``kvm_gmem_free_folio()`` restores the entry with
``set_direct_map_valid_noflush(folio, nr, true)`` and no flush, then frees the folio.

Serves ``guest``; every other site stays on the status-quo path. No cache. As posted, a
freed folio goes back to the buddy (and its direct-map entry comes back) still holding the
guest's data, which the ``stale_data`` rule reports; ``clear_on_free=1`` clears it there,
as ``init_on_free=1`` would (``free_pages_prepare()`` -> ``kernel_init_pages()``).
Stats: folios zapped and restored, pages out of the direct map now.

docs/designs.md, "guest-memfd", has the sources and every modelled detail and
simplification.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.consts import MIGRATE_MOVABLE
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Request, Site
from framework.statusquo import BPF_CHECK_ROX, StatusQuo

GMEM = "guest-memfd"  # the handle of guest memory this design handed out


class GuestMemfd(StatusQuo):
    """Guest folios removed from the direct map at allocation, restored at free."""

    name = "guest-memfd"
    summary = ("guest_memfd NO_DIRECT_MAP (2024-2026 series): each guest folio zapped from the "
               "direct map with one CPA + range flush, restored at free without a flush")
    source = ("20241030134912.515725-3-roypat (RFC) to 20260114134510.1835-1-kalyazin (v12), "
              "GUEST_MEMFD_FLAG_NO_DIRECT_MAP")
    covers = frozenset({Site.GUEST})
    params = (
        Param("clear_on_free", bool, False, "1: clear each freed folio before it leaves "
              "(init_on_free=1); 0: as posted, the guest's data stays in the freed pages"),
        BPF_CHECK_ROX,
    )

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.clear_on_free = bool(self.config.get("clear_on_free", False))
        self.zapped = 0
        self.restored = 0
        self.unmapped_pages = 0

    def guest_alloc(self, request: Request) -> Allocation | None:
        """kvm_gmem_get_folio() per folio, then folio_zap_direct_map(); NULL undoes them."""
        allocation = self._chunked(request, MIGRATE_MOVABLE, zero=True, handle=GMEM)
        if allocation is None:
            return None
        done: list[tuple[int, int]] = []
        for pfn, order in allocation.blocks:
            if self.folio_zap_direct_map(pfn, 1 << order):
                for head, o in done:
                    self.folio_restore_direct_map(head, 1 << o)
                for head, o in allocation.blocks:
                    self.kernel.free_pages(head, o, movable=True)
                return None
            done.append((pfn, order))
        return allocation._replace(unmapped=True, handle=GMEM)

    def folio_zap_direct_map(self, pfn: int, nr: int) -> int:
        """set_direct_map_valid_noflush(folio, nr, false) and a flush over the folio."""
        kernel = self.kernel
        err = kernel.set_direct_map_invalid_noflush(pfn, nr)
        if err:
            kernel.set_direct_map_default_noflush(pfn, nr)
            return err
        kernel.flush_tlb_kernel_range(nr)
        self.zapped += 1
        self.unmapped_pages += nr
        return 0

    def folio_restore_direct_map(self, pfn: int, nr: int) -> None:
        """set_direct_map_valid_noflush(folio, nr, true): making present needs no flush."""
        self.kernel.set_direct_map_default_noflush(pfn, nr)
        self.restored += 1
        self.unmapped_pages -= nr

    def free(self, allocation: Allocation) -> None:
        """kvm_gmem_free_folio() per folio, then the folio goes back to the buddy."""
        if allocation.handle != GMEM:
            super().free(allocation)
            return
        for pfn, order in allocation.blocks:
            self.folio_restore_direct_map(pfn, 1 << order)
            if self.clear_on_free:  # free_pages_prepare(): kernel_init_pages() (init_on_free)
                self.kernel.clear_pages(pfn, 1 << order)
            self.kernel.free_pages(pfn, order, movable=True)

    def free_generic(self, allocation: Allocation) -> None:
        """The folio's last put runs the same free_folio callback."""
        if allocation.handle != GMEM:
            super().free_generic(allocation)
            return
        self.free(allocation)

    def stats(self) -> dict[str, Any]:
        """Folios zapped and restored, pages out of the direct map now."""
        return {"folios_zapped": self.zapped, "folios_restored": self.restored,
                "unmapped_pages": self.unmapped_pages}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``guest-memfd``."""
    register(GuestMemfd)
