"""What a workload asks for (:class:`Request`), what a design hands out (:class:`Allocation`),
and the events that carry them (a contract: docs/contracts.md, "Requests and the trace CSV").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import Enum
from itertools import repeat
from typing import Any, NamedTuple

import attrs


class Name(str, Enum):
    """A closed set of names whose members are their string values (as the trace CSV and the
    JSON write them): equal to, hashed as and printed as the plain string."""

    __hash__ = str.__hash__  # as fast as a str key, and equal keys hash alike

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Site(Name):
    """The kernel call site a request comes from."""

    SECRETMEM = "secretmem"
    MODULE_TEXT = "module_text"
    MODULE_RODATA = "module_rodata"
    MODULE_RO_AFTER_INIT = "module_ro_after_init"
    MODULE_DATA = "module_data"
    MODULE_INIT_TEXT = "module_init_text"
    MODULE_INIT_RODATA = "module_init_rodata"
    MODULE_INIT_DATA = "module_init_data"
    BPF_PROG = "bpf_prog"
    TRAMPOLINE = "trampoline"
    PAGETABLE = "pagetable"
    GUEST = "guest"
    DMA_NOKMAP = "dma_nokmap"
    KERNEL = "kernel"
    RECLAIMABLE = "reclaimable"
    USER = "user"


class Perm(Name):
    """What the memory must be in the kernel's mappings while it is owned."""

    UNMAPPED = "UNMAPPED"  # absent from the direct map
    ROX = "ROX"
    RO = "RO"
    RW = "RW"
    PKS = "PKS"  # mapped, write-protected by a PKS key


class FreedBy(Name):
    """Which path gives the pages back."""

    OWNER = "OWNER"  # the design's free
    GENERIC = "GENERIC"  # the generic page-free path (a page-cache page's last put_page)


class Op(Name):
    """A workload event's operation."""

    ALLOC = "alloc"
    FREE = "free"
    WRITE = "write"
    PRESSURE = "pressure"
    SAMPLE = "sample"


PERMS: tuple[str, ...] = tuple(p.value for p in Perm)
FREED_BY: tuple[str, ...] = tuple(f.value for f in FreedBy)
SITES: tuple[str, ...] = tuple(s.value for s in Site)
ALLOC, FREE, WRITE, PRESSURE, SAMPLE = Op.ALLOC, Op.FREE, Op.WRITE, Op.PRESSURE, Op.SAMPLE
OPS: tuple[str, ...] = tuple(o.value for o in Op)


@attrs.frozen(slots=True)
class Request:
    """One allocation request.

    :param site: the kernel call site (:class:`Site`; its string value is accepted).
    :param size: bytes wanted (> 0).
    :param perm: :class:`Perm` (or its string value).
    :param zero: the memory must read as zero.
    :param node: preferred NUMA node, or None for any.
    :param freed_by: :class:`FreedBy` (or its string value).
    :param cpu: the CPU the caller runs on (its per-cpu page lists and its node); the free
        runs there too.
    :raises ValueError: for a site, perm or freed_by outside its set.
    """

    site: Site = attrs.field(converter=Site)
    size: int
    perm: Perm = attrs.field(default=Perm.RW, converter=Perm)
    zero: bool = True
    node: int | None = None
    freed_by: FreedBy = attrs.field(default=FreedBy.OWNER, converter=FreedBy)
    cpu: int = 0


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
