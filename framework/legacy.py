"""Designs written against the first API, run as status-quo subclasses for one release.

A design of the first API subclasses :class:`framework.allocator.Allocator` directly and
serves only the sites in its ``covers``; the engine used to send the other sites to its own
status-quo object. :class:`LegacyDesign` keeps such a design working with one call per event:
it is a :class:`StatusQuo` whose covered sites go to the wrapped design. Building one warns
with a :class:`DeprecationWarning` that names the new way (docs/plugin-guide.md, "Migrating").
"""

from __future__ import annotations

import warnings
from typing import Any

from framework.allocator import Allocator
from framework.kernel.kernel import Kernel
from framework.request import Allocation, Request
from framework.statusquo import StatusQuo


class _Owned:
    """The handle of an allocation the wrapped design made, around the design's own handle."""

    __slots__ = ("inner",)

    def __init__(self, inner: Allocation) -> None:
        self.inner = inner


def adopt(design_cls: type[Allocator], kernel: Kernel, params: dict[str, Any]) -> Allocator:
    """An instance of ``design_cls`` ready for the engine (see :func:`as_design`)."""
    return as_design(design_cls(kernel, params))


def as_design(design: Allocator) -> Allocator:
    """``design`` itself when it extends :class:`StatusQuo`, else a :class:`LegacyDesign`
    around it (with a :class:`DeprecationWarning`)."""
    if isinstance(design, StatusQuo):
        return design
    warnings.warn(f"design {design.name!r} subclasses Allocator and relies on the engine "
                  "for the sites it does not cover; subclass framework.statusquo.StatusQuo "
                  "and override the site methods it changes (docs/plugin-guide.md, "
                  "'Migrating')", DeprecationWarning, stacklevel=3)
    named: type[LegacyDesign] = type(f"Legacy{type(design).__name__}", (LegacyDesign,), {
        "name": design.name, "summary": design.summary, "source": design.source,
        "params": design.params})
    return named(design, design.kernel)


class LegacyDesign(StatusQuo):
    """A first-API design's covered sites, and the status quo for the rest."""

    def __init__(self, design: Allocator, kernel: Kernel) -> None:
        super().__init__(kernel, design.config)
        self.design = design
        self.covers = design.covers
        for site in design.covers:
            self._by_site[site] = self._design_alloc

    def _design_alloc(self, request: Request) -> Allocation | None:
        inner = self.design.alloc(request)
        if inner is None or not isinstance(inner, Allocation):
            return inner
        return inner._replace(handle=_Owned(inner))

    def free(self, allocation: Allocation) -> None:
        """The wrapped design's free for its allocations, the status quo's for the rest."""
        if isinstance(allocation.handle, _Owned):
            self.design.free(allocation.handle.inner)
        else:
            super().free(allocation)

    def free_generic(self, allocation: Allocation) -> None:
        """The generic free path of either owner."""
        if isinstance(allocation.handle, _Owned):
            self.design.free_generic(allocation.handle.inner)
        else:
            super().free_generic(allocation)

    def write(self, allocation: Allocation, length: int) -> None:
        """A store through either owner's path."""
        if isinstance(allocation.handle, _Owned):
            self.design.write(allocation.handle.inner, length)
        else:
            super().write(allocation, length)

    def shrink(self, nr_pages: int) -> int:
        """The wrapped design's shrink."""
        return self.design.shrink(nr_pages)

    def cache_pages(self) -> int:
        """Pages both hold in caches."""
        return self.design.cache_pages() + super().cache_pages()

    def metadata_bytes(self) -> int:
        """The wrapped design's bookkeeping."""
        return self.design.metadata_bytes()

    def stats(self) -> dict[str, Any]:
        """The wrapped design's counters."""
        return self.design.stats()
