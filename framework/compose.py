"""Composition: a design takes another design as its page source (``--set D.backend=NAME``).

A design that composes declares a ``backend`` parameter with :func:`backend_param` and, in
``__init__``, calls :func:`make_backend`: the named design is looked up in the plugin
registry (:func:`framework.plugins.get_registry`, so a third party's design can be named as
well as a built-in), instantiated on the *same* kernel model with its own default
parameters (or the ones the caller passes in Python; the command line has no syntax for a
backend's parameters), and checked to provide what the owner needs:

- :class:`PageSource`: physical pages, ``source_pages(order, zero) -> pfn | NO_PAGE`` and
  ``return_pages(pfn, order)``; ``source_unmapped`` says whether they come out of the
  direct map. ``unmapped-api`` and ``gfp-unmapped`` provide it (``unmapped_pages_alloc`` /
  ``unmapped_pages_free``).
- :class:`TextSource`: read-only executable ranges in the module area,
  ``text_alloc(size, align) -> byte address | -1`` and ``text_free(addr)``; written only with
  ``text_poke``. ``vmap-area`` provides it (``execmem_alloc`` / ``execmem_free``).

The owner reports the backend's pages as its own: :func:`backend_cache_pages`,
:func:`backend_metadata_bytes` and :func:`backend_stats` are what it adds to its
``cache_pages()``, ``metadata_bytes()`` and ``stats()``. The backend registers its own
shrinkers and free hooks in its ``__init__``, as it does alone. docs/plugin-guide.md,
"Composing designs", is the user-facing description.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from framework.allocator import Allocator
from framework.errors import BadParameter
from framework.kernel.kernel import Kernel
from framework.params import Param, resolve


@runtime_checkable
class PageSource(Protocol):
    """A design that hands out physical pages another design can map (see module doc)."""

    source_unmapped: bool

    def source_pages(self, order: int, zero: bool) -> int:
        """``1 << order`` pages on the allocating CPU's node if it can; a pfn or NO_PAGE."""

    def return_pages(self, pfn: int, order: int) -> None:
        """Take back pages :meth:`source_pages` handed out, unmapped from any vm area."""


@runtime_checkable
class TextSource(Protocol):
    """A design that hands out ROX module-area ranges (see module doc)."""

    def text_alloc(self, size: int, align: int) -> int:
        """A ROX range of ``size`` bytes aligned to ``align``: its byte address, or -1."""

    def text_free(self, addr: int) -> None:
        """Take back the range at ``addr`` (size-free)."""


KINDS: dict[type, str] = {PageSource: "page source", TextSource: "text source"}
MEMBERS: dict[type, tuple[str, ...]] = {
    PageSource: ("source_unmapped", "source_pages", "return_pages"),
    TextSource: ("text_alloc", "text_free"),
}


def provides(cls: type, kinds: tuple[type, ...]) -> bool:
    """Whether design class ``cls`` has the members of one of ``kinds``."""
    return any(all(hasattr(cls, name) for name in MEMBERS[kind]) for kind in kinds)


def candidates(kinds: tuple[type, ...]) -> list[str]:
    """Registered designs that provide one of ``kinds``, in registration order."""
    from framework.plugins import get_registry  # the registry imports the designs
    return [name for name, cls in get_registry().allocators.items() if provides(cls, kinds)]


def backend_param(owner: str, own: str, kinds: tuple[type, ...], help: str) -> Param:
    """The ``backend`` parameter of design ``owner``: ``own`` (its own source) or the name
    of a registered design that provides one of ``kinds``.

    The name is checked against the registry when the parameter is resolved, so a bad
    name fails with one line before anything runs.
    """
    def check(value: str) -> None:
        if value == own:
            return
        allowed = [own, *candidates(kinds)]
        if value not in allowed:
            what = " or ".join(KINDS[k] for k in kinds)
            raise BadParameter(f"{owner}.backend={value!r}: expected {own} or a design "
                               f"that is a {what}: {', '.join(allowed)}")

    return Param("backend", str, own, help, check=check,
                 describe=f"{own} or the name of a design that provides pages")


def make_backend(kernel: Kernel, owner: str, name: str, kinds: tuple[type, ...],
                 params: Mapping[str, Any] | None = None) -> Allocator:
    """Instantiate the design called ``name`` on ``kernel`` as ``owner``'s page source.

    :param params: the backend's own parameters (``{key: value}``, as ``--set`` would give
        them); unset ones take their defaults.
    :raises BadParameter: when ``name`` is ``owner`` itself or provides none of ``kinds``.
    """
    from framework.plugins import get_registry
    cls = get_registry().allocator(name)
    if name == owner or not provides(cls, kinds):
        what = " or ".join(KINDS[k] for k in kinds)
        raise BadParameter(f"{owner}.backend={name}: {name} is not a {what}")
    resolved = resolve(name, cls.params, dict(params or {}))
    backend = cls(kernel, resolved)  # as it is: a legacy wrapper would hide its methods
    if not isinstance(backend, kinds):
        raise BadParameter(f"{owner}.backend={name}: {name} is not a {KINDS[kinds[0]]}")
    return backend


def backend_cache_pages(backend: Allocator | None) -> int:
    """The backend's cached pages, which the owner counts as its own (0 without one)."""
    return 0 if backend is None else backend.cache_pages()


def backend_metadata_bytes(backend: Allocator | None) -> int:
    """The backend's bookkeeping bytes (0 without one)."""
    return 0 if backend is None else backend.metadata_bytes()


def backend_stats(backend: Allocator | None) -> dict[str, Any]:
    """``{"backend": {"name": ..., **its stats}}`` to merge into the owner's stats."""
    if backend is None:
        return {}
    return {"backend": {"name": backend.name, **backend.stats()}}

