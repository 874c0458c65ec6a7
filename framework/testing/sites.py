"""What the conformance kit asks for: one request profile per site, and strategies over them.

A :class:`SiteProfile` says how the framework's workloads ask for memory at one call site
(which permission, who frees it, whether it must be zeroed, which sizes), so the kit's random
sequences look like the requests a design will really get. A plugin that serves a site of its
own (not in :data:`framework.request.SITES`) gets :data:`GENERIC_PROFILE` unless its test suite
supplies one through the ``site_profiles`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from framework.request import PERMS, Request

PAGE = 4096
MIB = 1 << 20


@attrs.frozen(slots=True)
class SiteProfile:
    """How requests for one site look.

    :param site: the request site.
    :param perms: the permissions requests carry (the first is the usual one).
    :param freed_by: ``OWNER`` or ``GENERIC`` (secretmem's page-cache pages).
    :param zero: the ``zero`` values requests carry (the first is the usual one).
    :param sizes: ``(low, high)`` byte ranges; the first is the common case, later ones rare.
    """

    site: str
    perms: tuple[str, ...] = ("RW",)
    freed_by: str = "OWNER"
    zero: tuple[bool, ...] = (True, False)
    sizes: tuple[tuple[int, int], ...] = ((1, 16 * PAGE),)

    def __attrs_post_init__(self) -> None:
        for perm in self.perms:
            if perm not in PERMS:
                raise ValueError(f"{self.site}: perm {perm!r} is not one of {', '.join(PERMS)}")

    def typical(self) -> Request:
        """The usual request: first perm, first zero value, the low end of the common sizes."""
        return Request(self.site, max(self.sizes[0][0], PAGE if self.sizes[0][1] >= PAGE
                                      else self.sizes[0][0]),
                       self.perms[0], self.zero[0], None, self.freed_by)

    def samples(self) -> list[Request]:
        """A few fixed requests per perm: smallest, a page, the top of each size range."""
        sizes = sorted({lo for lo, _ in self.sizes} | {hi for _, hi in self.sizes}
                       | {min(max(PAGE, self.sizes[0][0]), self.sizes[0][1])})
        return [Request(self.site, size, perm, zero, None, self.freed_by)
                for perm in self.perms for size in sizes for zero in self.zero[:1]]


_MODULE: dict[str, Any] = {"freed_by": "OWNER", "zero": (False,),
                           "sizes": ((1, 4 * PAGE), (4 * PAGE, 64 * PAGE))}

SITE_PROFILES: dict[str, SiteProfile] = {p.site: p for p in (
    # mm/secretmem.c: one zeroed page per fault, freed through the page cache
    SiteProfile("secretmem", ("UNMAPPED",), "GENERIC", (True,), ((PAGE, PAGE), (1, 4 * PAGE))),
    # kernel/module/main.c: one allocation per section type, the loader overwrites it all
    SiteProfile("module_text", ("ROX",), **_MODULE),
    SiteProfile("module_rodata", ("RO",), **_MODULE),
    SiteProfile("module_ro_after_init", ("RO",), **_MODULE),
    SiteProfile("module_data", ("RW",), **_MODULE),
    SiteProfile("module_init_text", ("ROX",), **_MODULE),
    SiteProfile("module_init_rodata", ("RO",), **_MODULE),
    SiteProfile("module_init_data", ("RW",), **_MODULE),
    # kernel/bpf/core.c: JIT images, mostly small; a few above 2 MiB (Song's >2 MiB case)
    SiteProfile("bpf_prog", ("ROX",), "OWNER", (False,),
                ((1, 4 * PAGE), (2 * MIB + 1, 2 * MIB + PAGE))),
    # kernel/bpf/trampoline.c, kernel/kprobes.c: one page or less
    SiteProfile("trampoline", ("ROX",), "OWNER", (False,), ((1, PAGE),)),
    # page-table pages (PKS-protected in Rick Edgecombe's series)
    SiteProfile("pagetable", ("PKS", "RW"), "OWNER", (True,), ((PAGE, PAGE),)),
    # guest_memfd folios of up to 2 MiB; CoCo guests need no zeroing
    SiteProfile("guest", ("UNMAPPED",), "OWNER", (False, True), ((PAGE, 512 * PAGE),)),
    # DMA_ATTR_NO_KERNEL_MAPPING buffers
    SiteProfile("dma_nokmap", ("UNMAPPED",), "OWNER", (False,), ((PAGE, 16 * PAGE),)),
    SiteProfile("kernel", ("RW",), "OWNER", (True, False), ((1, 16 * PAGE),)),
    SiteProfile("user", ("RW",), "OWNER", (True, False), ((1, 16 * PAGE),)),
)}

#: The profile of a site the table does not know (a third party's own site).
GENERIC_PROFILE = SiteProfile("?", ("RW",), "OWNER", (True, False), ((1, 16 * PAGE),))

#: Sites outside a design's ``covers`` mixed into its random sequences: they go to the v6.3
#: path, share the buddy and the direct map with the design, and must not disturb it.
NEIGHBOUR_SITES: tuple[str, ...] = ("secretmem", "module_text", "bpf_prog", "kernel", "user")


def profile_for(site: str, profiles: Mapping[str, SiteProfile]) -> SiteProfile:
    """The profile of ``site``: from ``profiles``, else the generic one under that name."""
    found = profiles.get(site)
    return found if found is not None else attrs.evolve(GENERIC_PROFILE, site=site)


def mixed_sites(covered: Iterable[str], extra: Iterable[str] = NEIGHBOUR_SITES) -> list[str]:
    """The covered sites (sorted) followed by the neighbours the design does not cover."""
    mine = sorted(covered)
    return mine + [s for s in extra if s not in mine]


def request_strategy(sites: list[str], profiles: Mapping[str, SiteProfile]) -> Any:
    """A hypothesis strategy of :class:`Request` over ``sites`` (shrinks toward the first)."""
    from hypothesis import strategies as st

    def for_site(site: str) -> Any:
        prof = profile_for(site, profiles)
        size = st.one_of(*(st.integers(lo, hi) for lo, hi in prof.sizes))
        return st.builds(Request, st.just(site), size, st.sampled_from(prof.perms),
                         st.sampled_from(prof.zero), st.none(), st.just(prof.freed_by))

    return st.one_of(*(for_site(site) for site in sites))
