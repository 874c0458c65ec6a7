"""``baseline``: the v6.3 status quo.

Models: Linux v6.3 (fe15c26ee26e, the base of the ``__GFP_UNMAPPED`` v3 series) as it serves
each site without any of the proposed allocators: secretmem's per-page
``set_direct_map_invalid_noflush`` plus a 1-page flush at fault and
``set_direct_map_default_noflush`` plus zeroing at free;
``module_alloc`` with 4 KiB pages and the STRICT_MODULE_RWX ``set_memory_*`` calls;
bpf_prog_pack for BPF programs; ``VM_FLUSH_RESET_PERMS`` at ``vfree``. The details of every
site are in :mod:`framework.kernel.callsites`, which every other design also falls back to for
the sites it does not cover.

Simplified: see the kernel model's docstrings (no pcp lists, no watermarks or reclaim, the
module layout of v6.4 with one ``module_alloc`` per section type). No variants, no parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.callsites import StatusQuo
from framework.kernel.kernel import Kernel
from framework.request import Allocation, Request


class Baseline(Allocator):
    """The status quo. It covers no site itself: the engine sends every request to the
    shared status-quo path; :meth:`alloc` and :meth:`free` serve direct callers the same way.
    """

    name = "baseline"
    summary = ("v6.3 status quo: per-page CPA for secretmem, module_alloc + STRICT_MODULE_RWX, "
               "bpf_prog_pack")
    source = "Linux v6.3 (base of 20230308094106.227365-1-rppt@kernel.org)"

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        super().__init__(kernel, params)
        self.statusquo = StatusQuo(kernel)

    def alloc(self, request: Request) -> Allocation | None:
        """Serve ``request`` on the v6.3 path."""
        return self.statusquo.alloc(request)

    def free(self, allocation: Allocation) -> None:
        """Free on the v6.3 path."""
        self.statusquo.free(allocation)

    def free_generic(self, allocation: Allocation) -> None:
        """Generic free on the v6.3 path (secretmem's free_folio first)."""
        self.statusquo.free_generic(allocation)

    def write(self, allocation: Allocation, length: int) -> None:
        """Write on the v6.3 path."""
        self.statusquo.write(allocation, length)

    def cache_pages(self) -> int:
        """Pages in this instance's BPF packs (none when the engine's path served them)."""
        return self.statusquo.cache_pages()


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``baseline``."""
    register(Baseline)
