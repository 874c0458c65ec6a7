"""``framework new-plugin NAME``: a ready-to-install plugin package, written from templates.

The package (``framework-NAME/``) holds a ``pyproject.toml`` with the ``framework`` entry
point, a module with a design that extends the v6.3 status quo and overrides the method of
each covered site with a call to the status quo's (so it passes the conformance kit as
generated: a design starts from something that works and changes one path at a time), a test
file that subclasses the kit, and a README.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import attrs

from framework import DISTRIBUTION
from framework.errors import BadParameter, FrameworkError
from framework.request import SITES, Site
from framework.statusquo import SITE_METHODS
from framework.testing.checks import CONTRACT_VERSION

NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


@attrs.frozen(slots=True)
class Names:
    """The names one plugin name gives rise to."""

    plugin: str
    module: str
    dist: str
    cls: str

    @classmethod
    def of(cls, plugin: str) -> Names:
        """``my-cache`` -> module ``framework_my_cache``, dist ``framework-my-cache``, class
        ``MyCacheAllocator``.

        :raises BadParameter: for a name that is not lower-case words joined by dashes.
        """
        if not NAME_RE.fullmatch(plugin):
            raise BadParameter(f"plugin name {plugin!r}: expected lower-case letters and "
                               "digits in words joined by '-', starting with a letter "
                               "(e.g. my-cache)")
        camel = "".join(part.capitalize() for part in plugin.split("-"))
        return cls(plugin, "framework_" + plugin.replace("-", "_"), "framework-" + plugin,
                   f"{camel}Allocator")


# ``--set`` scopes that are not plugins: a plugin of one of these names could not be set.
RESERVED = ("machine", "costs", "faults", "tlb", "all", "default")


def parse_covers(text: str) -> tuple[str, ...]:
    """A comma list of the sites workloads request (:data:`framework.request.SITES`).

    :raises BadParameter: for an empty list or a site no workload requests (a design that
        covered it would never be called, and the kit would check nothing).
    """
    sites = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not sites:
        raise BadParameter(f"--covers {text!r}: name at least one site, e.g. "
                           f"{', '.join(SITES[:3])}")
    for site in sites:
        if site not in SITES:
            raise BadParameter(f"--covers: unknown site {site[:40]!r}: expected one of "
                               f"{', '.join(SITES)}")
    return sites


def check_free_name(plugin: str, taken: Iterable[str]) -> None:
    """:raises BadParameter: when ``plugin`` is already a registered plugin or workload
    (built-in or installed) or a ``--set`` scope: the new design could not be told apart."""
    taken = set(taken)
    if plugin in taken or plugin in RESERVED:
        what = "a --set scope" if plugin in RESERVED else "already registered"
        raise BadParameter(f"plugin name {plugin!r} is {what}; choose another (registered: "
                           f"{', '.join(sorted(taken))})")


def framework_requirement() -> tuple[str, str]:
    """The requirement the generated package declares on this framework: its distribution
    name (:data:`framework.DISTRIBUTION`, never the generic ``framework`` an index might
    resolve to someone else's project), pinned to the installed major.minor series; and the
    installed version (from its metadata)."""
    from importlib.metadata import version

    dist = DISTRIBUTION
    installed = version(dist)
    major, minor = (int(x) for x in installed.split(".")[:2])
    return f"{dist}>={major}.{minor},<{major}.{minor + 1}", installed


def write_package(plugin: str, out: Path, covers: tuple[str, ...], variants: bool = False,
                  taken: Iterable[str] = ()) -> list[Path]:
    """Write the package into ``out`` (created; must not exist or be empty).

    :param variants: declare a ``variant`` parameter (``posted``/``fixed``) and test both.
    :param taken: names already registered (the new name must differ).
    :returns: the files written.
    :raises FrameworkError: for a bad or taken name or an ``out`` that already has files.
    """
    names = Names.of(plugin)
    check_free_name(plugin, taken)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FrameworkError(f"{out}: already exists and is not an empty directory")
    files = {
        Path("pyproject.toml"): PYPROJECT,
        Path("README.md"): README,
        Path(names.module) / "__init__.py": MODULE,
        Path("tests") / f"test_{names.module}.py": TESTS,
    }
    requirement, installed = framework_requirement()
    fields = {
        "plugin": names.plugin, "module": names.module, "dist": names.dist,
        "cls": names.cls, "covers": ", ".join(f'"{s}"' for s in covers),
        "covers_text": ", ".join(covers), "contract": str(CONTRACT_VERSION),
        "requirement": requirement, "installed": installed,
        "params": _fill(VARIANT_PARAM if variants else NO_PARAMS, {"plugin": names.plugin}),
        "fixture": _fill(VARIANT_FIXTURE if variants else PLAIN_FIXTURE, {"cls": names.cls}),
        "variant_doc": _fill(VARIANT_DOC if variants else "", {"plugin": names.plugin}),
        "readme_variant": _fill(README_VARIANT if variants else "", {"plugin": names.plugin}),
        "overrides": site_overrides(covers),
    }
    written = []
    for rel, template in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(template, fields), encoding="utf-8")
        written.append(path)
    return written


def _fill(template: str, fields: dict[str, str]) -> str:
    """Replace ``{{key}}`` markers (templates hold Python and TOML braces of their own)."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: fields[m.group(1)], template)


PYPROJECT = '''\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{{dist}}"
version = "0.0.1"
description = "{{plugin}}: an allocator design for the framework"
requires-python = ">=3.10"
# The framework distribution this was generated with ({{installed}}), by the name its own
# metadata gives; install this package into the environment that has it.
dependencies = ["{{requirement}}"]

[project.optional-dependencies]
test = ["pytest>=7.4", "hypothesis>=6.90"]

# The framework finds the design through this entry point (group "framework").
[project.entry-points.framework]
{{plugin}} = "{{module}}"

[tool.setuptools]
packages = ["{{module}}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

MODULE = '''\
"""``{{plugin}}``: an allocator design for the framework.

Models: (say which patch set or thread, with its lore id, and which kernel it applies to).

As generated, the design is the v6.3 status quo (:class:`framework.statusquo.StatusQuo`) with
the methods of its sites ({{covers_text}}) overridden to call the status quo's; replace one
path at a time and keep ``framework check-plugin {{plugin}}`` green. Say here what is
modelled, what is simplified and why.{{variant_doc}} The discussion that led to the design
belongs in its docs.

Cycles: the kernel model charges every call you make to it (alloc_pages, CPA, flushes,
text_poke) to the request being served. Work of the design's own (walking a free list,
searching a bitmap) is charged with ``self.kernel.ledger.charge("slab", cycles)``; see the
framework's docs/plugin-guide.md, "Charging the design's own cycles".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Request
from framework.statusquo import StatusQuo


class {{cls}}(StatusQuo):
    """The design: the v6.3 status quo with the paths its patch changes overridden.

    Every request reaches the design; a site whose method is not overridden is served as
    v6.3 serves it, so every design runs every workload. ``covers`` declares the sites the
    design changes (the conformance kit and the tables read it).
    """

    name = "{{plugin}}"
    summary = "{{plugin}}: (one line for framework list)"
    source = "(lore id of the patch set or thread it models)"
    covers = frozenset({{{covers}}})
{{params}}
    def __init__(self, kernel: Kernel, params: dict[str, Any]) -> None:
        """Attach to a freshly booted kernel model; register shrinkers and hooks here.

        Call only the :class:`framework.kernel.kernel.Kernel` methods (alloc_pages,
        free_pages, set_direct_map_*_noflush, set_memory_*, flush_tlb_*, module_alloc,
        vfree, text_poke, ...) and its extension points (add_migratetype,
        register_pageblock_flag, register_free_hook, register_shrinker). Charge the
        cycles of your own bookkeeping with ``kernel.ledger.charge(category, cycles)``.
        """
        super().__init__(kernel, params)
{{overrides}}
    def free(self, allocation: Allocation) -> None:
        """Take back what an ``alloc`` handed out (``freed_by=OWNER``); tell your own
        allocations by their ``handle`` and pass the rest to the status quo."""
        super().free(allocation)

    def cache_pages(self) -> int:
        """Pages taken from the buddy and not inside a live Allocation's ``blocks``.

        The accounting contract: with everything freed and the shrinkers run, the buddy's
        allocated pages are exactly page tables + this number (add your cache to the status
        quo's BPF packs and kprobe slot pages).
        """
        return super().cache_pages()

    def stats(self) -> dict[str, Any]:
        """Design-specific counters, JSON-serialisable (``framework bench --stats``)."""
        return {}


@hookimpl
def register_allocators(register: Callable[[type[Allocator]], None]) -> None:
    """Register the design (called once, when the framework builds its registry)."""
    register({{cls}})
'''

OVERRIDE = '''
    def {{method}}(self, request: Request) -> Allocation | None:
        """{{sites}}: as v6.3 serves it, until the design changes it.

        Return ``Allocation(blocks=((pfn, order), ...), vaddr, size, unmapped, handle)``:
        ``blocks`` the pages the owner has to itself (or () for a sub-page object, then a
        ``vaddr`` in the module area), ``unmapped=True`` only if every page is absent from
        the direct map (the engine checks it), ``handle`` anything you need at free time;
        None is the kernel's NULL.
        """
        return super().{{method}}(request)
'''


def site_overrides(covers: tuple[str, ...]) -> str:
    """One overriding method per status-quo method that serves a covered site."""
    by_method: dict[str, list[str]] = {}
    for site in covers:
        method = SITE_METHODS.get(Site(site), "pages_alloc") if site in SITES else "pages_alloc"
        by_method.setdefault(method, []).append(site)
    return "".join(_fill(OVERRIDE, {"method": method, "sites": ", ".join(sites)})
                   for method, sites in by_method.items())


TESTS = '''\
"""The framework's conformance kit, run on {{plugin}} (``pytest``), plus its registration."""

from __future__ import annotations

import os

import pytest

from framework.testing import AllocatorTests
from {{module}} import {{cls}}


class Test{{cls}}(AllocatorTests):
    """Every contract check and random sequences with every engine check on."""

    contract_version = {{contract}}  # raise it to opt in to checks added later
{{fixture}}

@pytest.mark.skipif(os.environ.get("FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"),
                    reason="entry points are not loaded")
def test_registered_through_the_entry_point(framework_registry):
    """Installed (pip install -e .), the package's entry point registers the design."""
    assert framework_registry.allocators["{{plugin}}"] is {{cls}}
'''

NO_PARAMS = """\
    params = ()  # Param(...) for each --set {{plugin}}.KEY the design takes
"""

VARIANT_PARAM = """\
    params = (
        Param("variant", str, "posted", "posted: as posted; fixed: with the review's fixes",
              choices=("posted", "fixed")),
    )
"""

VARIANT_DOC = """ Say which variants
(``--set {{plugin}}.variant=...``) reproduce bugs reviewers found."""

PLAIN_FIXTURE = """
    @pytest.fixture
    def allocator_factory(self):
        return ({{cls}}, {})
"""

VARIANT_FIXTURE = """
    @pytest.fixture(params=["posted", "fixed"])
    def allocator_factory(self, request):
        return ({{cls}}, {"variant": request.param})
"""

README_VARIANT = """\
Test a variant with `framework check-plugin {{plugin}} --set {{plugin}}.variant=fixed`.
"""

README = '''\
# {{dist}}

`{{plugin}}`, an allocator design for the framework (a plugin in the entry-point group
`framework`). As generated it serves {{covers_text}} the way Linux v6.3 does.

    pip install -e '.[test]'
    framework list                      # {{plugin}} is listed with this package's name
    framework check-plugin {{plugin}}   # the conformance kit, one line per check
    framework bench --plugins baseline,{{plugin}} --workloads all
    pytest                              # the same kit, from tests/

{{readme_variant}}The allocator contract, the kernel model's API and the kit are described in the
framework's `docs/plugin-guide.md`.
'''
