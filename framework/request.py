"""What a workload asks for (:class:`Request`), what a design hands out (:class:`Allocation`),
and the events that carry them (a contract: docs/contracts.md, "Requests and the trace CSV").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat
from typing import Any, NamedTuple

import attrs

PERMS: tuple[str, ...] = ("UNMAPPED", "ROX", "RO", "RW", "PKS")
FREED_BY: tuple[str, ...] = ("OWNER", "GENERIC")
SITES: tuple[str, ...] = (
    "secretmem", "module_text", "module_rodata", "module_ro_after_init", "module_data",
    "module_init_text", "module_init_rodata", "module_init_data", "bpf_prog", "trampoline",
    "pagetable", "guest", "dma_nokmap", "kernel", "reclaimable", "user",
)

ALLOC, FREE, WRITE, PRESSURE, SAMPLE = "alloc", "free", "write", "pressure", "sample"
OPS: tuple[str, ...] = (ALLOC, FREE, WRITE, PRESSURE, SAMPLE)


@attrs.frozen(slots=True)
class Request:
    """One allocation request.

    :param site: the kernel call site (:data:`SITES`; workloads may use others).
    :param size: bytes wanted (> 0).
    :param perm: ``UNMAPPED`` (absent from the direct map), ``ROX``, ``RO``, ``RW``, ``PKS``.
    :param zero: the memory must read as zero.
    :param node: preferred NUMA node, or None for any.
    :param freed_by: ``OWNER`` (the design's free is called) or ``GENERIC`` (the pages come
        back through the generic page-free path, as secretmem's page-cache pages do).
    """

    site: str
    size: int
    perm: str = "RW"
    zero: bool = True
    node: int | None = None
    freed_by: str = "OWNER"


class Allocation(NamedTuple):
    """What a design handed out (immutable; a named tuple because every allocation makes one).

    :param blocks: physically contiguous ``(pfn, order)`` blocks the owner has to itself,
        or () for memory addressed only through ``vaddr`` (a sub-page object in a pack).
    :param vaddr: byte address in the module area, or 0 for direct-map-only memory.
    :param size: usable bytes.
    :param unmapped: the promise that ``blocks`` are not present in the direct map.
    :param handle: the design's own bookkeeping, opaque to the engine.
    """

    blocks: tuple[tuple[int, int], ...]
    vaddr: int = 0
    size: int = 0
    unmapped: bool = False
    handle: Any = None

    def pfns(self) -> list[int]:
        """Every page frame in :attr:`blocks`."""
        return [p for pfn, order in self.blocks for p in range(pfn, pfn + (1 << order))]

    def nr_pages(self) -> int:
        """Pages in :attr:`blocks`."""
        return sum(1 << order for _, order in self.blocks)


class Event(NamedTuple):
    """One workload event: ``op`` with the allocation ``id`` it concerns.

    ``alloc`` carries ``request``; ``write`` writes ``arg`` bytes (0: the whole allocation);
    ``pressure`` asks shrinkers for ``arg`` pages; ``free`` and ``sample`` use only ``id``.
    """

    op: str
    id: int = 0
    request: Request | None = None
    arg: int = 0


_new_tuple = tuple.__new__


def make_events(op: str, ids: Iterable[int], request: Request | None = None,
                arg: int = 0) -> Iterator[Event]:
    """``Event(op, id, request, arg)`` for each of ``ids``, lazily.

    The same events as calling :class:`Event` per id, built by ``tuple.__new__`` without a
    Python-level call each: workloads make one per page, so this is on the hot path.
    """
    return map(_new_tuple, repeat(Event), zip(repeat(op), ids, repeat(request), repeat(arg)))
