"""``baseline``: the v6.3 status quo.

Models: Linux v6.3 (fe15c26ee26e, the base of the ``__GFP_UNMAPPED`` v3 series) as it serves
each site without any of the proposed allocators: secretmem's per-page
``set_direct_map_invalid_noflush`` plus a 1-page flush at fault and
``set_direct_map_default_noflush`` plus zeroing at free;
``module_alloc`` with 4 KiB pages and the STRICT_MODULE_RWX ``set_memory_*`` calls;
bpf_prog_pack for BPF programs; ``VM_FLUSH_RESET_PERMS`` at ``vfree``. The details of every
site are in :mod:`framework.statusquo`, the class every other design extends.

Simplified: see the kernel model's docstrings (no pcp lists, no watermarks or reclaim, the
module layout of v6.4 with one ``module_alloc`` per section type).

Parameter ``bpf_prog_pack`` (default 1): 0 gives the v5.17 behaviour before Song Liu's
bpf_prog_pack (57631054fae6, v5.18): kernel/bpf/core.c ``bpf_jit_binary_alloc()`` gives each
program its own ``bpf_jit_alloc_exec()`` = ``module_alloc(round_up(proglen + sizeof(*hdr) +
128, PAGE_SIZE))`` (at least 128 bytes of illegal-instruction hole where the pack keeps 16, so
the request size plus 112), the JIT writes the image in place, and ``bpf_jit_binary_lock_ro()``
makes it ``set_memory_ro`` + ``set_memory_x`` (each ``set_memory_ro`` also changes, and splits,
the direct-map alias of the program's pages); the free is a ``vfree`` with
``VM_FLUSH_RESET_PERMS``. docs/validation.md compares the two as Song Liu did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.consts import PAGE_SHIFT
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Request
from framework.statusquo import BPF_CHECK_ROX, ModuleMem, StatusQuo

# kernel/bpf/core.c v5.17 bpf_jit_binary_alloc(): a hole of at least 128 bytes where the
# pack's bpf_jit_binary_pack_alloc() keeps 16 (the workload's request includes those 16)
V517_EXTRA_HOLE = 128 - 16


class Baseline(StatusQuo):
    """The status quo, unchanged: every site on its v6.3 path."""

    name = "baseline"
    summary = ("v6.3 status quo: per-page CPA for secretmem, module_alloc + STRICT_MODULE_RWX, "
               "bpf_prog_pack")
    source = "Linux v6.3 (base of 20230308094106.227365-1-rppt@kernel.org)"
    params = (
        Param("bpf_prog_pack", bool, True, "1: bpf_prog_pack (v5.18+); 0: v5.17, each BPF "
              "program its own module_alloc pages, set_memory_ro + set_memory_x"),
        BPF_CHECK_ROX,
    )

    def __init__(self, kernel: Kernel, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(kernel, params)
        self.prog_pack = bool(self.config.get("bpf_prog_pack", True))

    def bpf_prog_alloc(self, request: Request) -> Allocation | None:
        """bpf_prog_pack (v6.3), or v5.17's bpf_jit_binary_alloc() with ``bpf_prog_pack=0``.

        v5.17: ``module_alloc`` of the page-rounded image; the workload's write is the JIT's
        store followed by ``bpf_jit_binary_lock_ro()`` (the status quo's module seal of ROX
        memory: ``set_memory_ro`` then ``set_memory_x``).
        """
        if self.prog_pack:
            return super().bpf_prog_alloc(request)
        area = self.module_alloc(request.size + V517_EXTRA_HOLE)  # bpf_jit_alloc_exec()
        if area is None:
            return None
        blocks = tuple((pfn, 0) for pfn in area.pages)
        return Allocation(blocks, area.addr << PAGE_SHIFT, request.size, False,
                          ModuleMem(area, request.perm, request.site))


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``baseline``."""
    register(Baseline)
