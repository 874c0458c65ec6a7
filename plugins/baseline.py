"""``baseline``: the v6.3 status quo.

Models: Linux v6.3 (fe15c26ee26e, the base of the ``__GFP_UNMAPPED`` v3 series) as it serves
each site without any of the proposed allocators: secretmem's per-page
``set_direct_map_invalid_noflush`` plus a 1-page flush at fault and
``set_direct_map_default_noflush`` plus zeroing at free;
``module_alloc`` with 4 KiB pages and the STRICT_MODULE_RWX ``set_memory_*`` calls;
bpf_prog_pack for BPF programs; ``VM_FLUSH_RESET_PERMS`` at ``vfree``. The details of every
site are in :mod:`framework.statusquo`, the class every other design extends.

Simplified: see the kernel model's docstrings (no pcp lists, no watermarks or reclaim, the
module layout of v6.4 with one ``module_alloc`` per section type). No variants, no parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.statusquo import StatusQuo


class Baseline(StatusQuo):
    """The status quo, unchanged: every site on its v6.3 path."""

    name = "baseline"
    summary = ("v6.3 status quo: per-page CPA for secretmem, module_alloc + STRICT_MODULE_RWX, "
               "bpf_prog_pack")
    source = "Linux v6.3 (base of 20230308094106.227365-1-rppt@kernel.org)"


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register ``baseline``."""
    register(Baseline)
