"""Deprecated location of the status quo: use :mod:`framework.statusquo`.

Until the next release, ``from framework.kernel.callsites import StatusQuo`` still works:
``StatusQuo(kernel)`` builds the status quo as a helper object to delegate to, as plugins
written against the first API did, with a :class:`DeprecationWarning` that names the new way
(subclass :class:`framework.statusquo.StatusQuo`; docs/plugin-guide.md, "Migrating").
This module is the one place under ``framework/kernel/`` that reaches the design layer, and
only lazily, on that old name.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = ("StatusQuo", "MODULE_SITES", "MODULE_SECTION_SITES", "get_order", "ModuleMem",
          "BpfProg", "BpfPack", "InsnPage", "InsnSlot", "MAX_INSN_SIZE")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"framework.kernel.callsites.{name} moved to framework.statusquo.{name}; "
                  "designs subclass framework.statusquo.StatusQuo (docs/plugin-guide.md, "
                  "'Migrating')", DeprecationWarning, stacklevel=2)
    from framework import statusquo

    return getattr(statusquo, name)
