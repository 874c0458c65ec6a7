"""The allocator contract every design implements (docs/contracts.md, "Allocator plugins").

A design subclasses :class:`Allocator`, sets the class attributes and implements
:meth:`alloc` and :meth:`free`. Requests for sites it does not list in :attr:`covers` are
served by the v6.3 status-quo path (:class:`framework.kernel.callsites.StatusQuo`), so every
design runs every workload. Counting, latency, tracing and checks live in the engine, not here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from mypy_extensions import mypyc_attr

from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Request


# a Python class (compiled methods): designs subclass it, read and set its attributes
@mypyc_attr(native_class=False)
class Allocator(ABC):
    """Base class of a design.

    :cvar name: the plugin name used on the command line (unique).
    :cvar summary: one line for ``framework list``.
    :cvar source: the patch set or thread it models (lore id).
    :cvar covers: the request sites it serves itself.
    :cvar params: typed parameters, set with ``--set NAME.KEY=VALUE``.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""
    covers: frozenset[str] = frozenset()  # a parameter may widen it per instance
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        """Attach to a freshly booted kernel model. Register shrinkers and hooks here."""
        self.kernel = kernel
        self.config = params

    @abstractmethod
    def alloc(self, request: Request) -> Allocation | None:
        """Serve ``request``; return None when it cannot (the kernel's NULL)."""

    @abstractmethod
    def free(self, allocation: Allocation) -> None:
        """Take back an allocation this design handed out (``freed_by=OWNER``)."""

    def free_generic(self, allocation: Allocation) -> None:
        """Pages of a ``freed_by=GENERIC`` allocation come back through the generic path.

        The default puts every block through ``__free_pages`` (free hooks apply), as a page-
        cache page's last ``put_page`` does.
        """
        for pfn, order in allocation.blocks:
            self.kernel.free_pages(pfn, order)

    def write(self, allocation: Allocation, length: int) -> None:
        """The owner writes ``length`` bytes. Default: a plain store through a writable map."""
        self.kernel.dirty.update(allocation.pfns())

    def shrink(self, nr_pages: int) -> int:
        """Give back up to ``nr_pages`` cached pages; return how many.

        For direct callers (tests, the conformance kit). ``pressure`` events reach a design
        only through the shrinker it registers with ``kernel.register_shrinker`` in
        ``__init__``, as a kernel cache registers with ``register_shrinker()``; a design
        with a cache to give back must do both (the kit checks it).
        """
        return 0

    def cache_pages(self) -> int:
        """Pages taken from the buddy and held in caches, not handed out."""
        return 0

    def metadata_bytes(self) -> int:
        """Bytes of the design's own bookkeeping (bitmaps, tree nodes, slab headers)."""
        return 0

    def stats(self) -> dict[str, Any]:
        """Design-specific counters (e.g. the v3 debugfs table). JSON-serialisable."""
        return {}
