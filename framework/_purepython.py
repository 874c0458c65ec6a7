"""The compiled core and its pure-Python twin (``FRAMEWORK_PURE_PYTHON=1``).

A non-editable install compiles :data:`CORE_MODULES` with mypyc when a C compiler is present
(setup.py); each then exists twice in the installed package, as an extension module and as
its ``.py`` source, and Python's import system prefers the extension. With the environment
variable ``FRAMEWORK_PURE_PYTHON=1`` (set before the first ``import framework``),
:func:`install` puts a finder first on ``sys.meta_path`` that loads those modules from their
``.py`` source instead, so the same installation runs the plain modules. Results are
byte-identical either way (tests/test_compiled.py); :func:`core_kind` says which one runs.

This module imports only the standard library: setup.py reads :data:`CORE_MODULES` from it
before the package's dependencies are installed.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: The environment variable that forces the plain modules.
ENV = "FRAMEWORK_PURE_PYTHON"

#: The modules mypyc compiles (docs/performance.md, "Compiled core"): the kernel model
#: (without the deprecated alias module ``framework.kernel.callsites``), the status quo, the
#: engine's hot loop, the checks, and the allocator contract they build on. Designs
#: (``framework.designs``) and workloads stay interpreted, and so does ``framework.request``:
#: mypyc would drop the eq, hash and repr attrs writes for the frozen, slotted ``Request``,
#: and the workloads, not the core, build its objects.
CORE_MODULES: tuple[str, ...] = (
    "framework.allocator",
    "framework.checks",
    "framework.engine",
    "framework.statusquo",
    "framework.kernel.buddy",
    "framework.kernel.compaction",
    "framework.kernel.consts",
    "framework.kernel.directmap",
    "framework.kernel.e820",
    "framework.kernel.faults",
    "framework.kernel.initial",
    "framework.kernel.kernel",
    "framework.kernel.ledger",
    "framework.kernel.page_alloc",
    "framework.kernel.pcp",
    "framework.kernel.set_memory",
    "framework.kernel.shrinker",
    "framework.kernel.text_poke",
    "framework.kernel.tlbflush",
    "framework.kernel.vmalloc",
    "framework.kernel.vmscan",
    "framework.kernel.watermark",
)

COMPILED = "compiled (mypyc)"
PURE = "pure Python"


def forced() -> bool:
    """True when the environment asks for the plain modules (``FRAMEWORK_PURE_PYTHON=1``)."""
    return os.environ.get(ENV, "") not in ("", "0")


class PureSourceFinder:
    """A meta-path finder that loads each core module from its ``.py`` source.

    It answers only for :data:`CORE_MODULES` whose ``.py`` file sits in the parent package's
    folder, and defers (returns None) otherwise, so every other import is untouched.
    """

    names = frozenset(CORE_MODULES)

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        """The spec of ``fullname``'s ``.py`` source, or None for any other module."""
        if fullname not in self.names or not path:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for folder in path:
            source = os.path.join(folder, leaf)
            if os.path.isfile(source):
                loader = importlib.machinery.SourceFileLoader(fullname, source)
                return importlib.util.spec_from_file_location(fullname, source, loader=loader)
        return None


def install() -> None:
    """Put :class:`PureSourceFinder` first on ``sys.meta_path`` when :func:`forced`."""
    if forced() and not any(isinstance(f, PureSourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PureSourceFinder())


def is_compiled(module: ModuleType) -> bool:
    """True when ``module`` was loaded from an extension module (mypyc's output)."""
    return isinstance(getattr(module, "__loader__", None),
                      importlib.machinery.ExtensionFileLoader)


def core_kind() -> str:
    """Which core runs in this process: ``"compiled (mypyc)"`` or ``"pure Python"``.

    Judged by the engine module (one of :data:`CORE_MODULES`), imported here if needed.
    """
    import framework.engine

    return COMPILED if is_compiled(framework.engine) else PURE
