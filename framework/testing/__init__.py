"""The public conformance kit for allocator designs (built-in or third-party).

A design's own test suite subclasses :class:`AllocatorTests` (or the two halves,
:class:`AllocatorContractTests` and :class:`AllocatorStatefulTests`) and supplies one
fixture, ``allocator_factory``; ``framework check-plugin NAME`` runs the same checks on an
installed plugin without pytest. See ``docs/plugin-guide.md``.

Contract versions: :data:`CONTRACT_VERSION` is the newest; each check records the version
that introduced it, and a suite sets ``contract_version`` to the version it has passed, so
checks added later are skipped for it until it opts in.

The pytest mixins are imported on first use, so ``framework.testing`` itself (and the
``check-plugin`` command) needs no pytest; the random sequences need hypothesis.
"""

from __future__ import annotations

from typing import Any

from framework.testing.checks import (
    CHECKS,
    CONTRACT_VERSION,
    CheckResult,
    KitConfig,
    format_result,
    run_all,
    run_check,
    run_random,
)
from framework.testing.factories import as_factory, factory_for, small_kernel, small_machine
from framework.testing.harness import KINDS, Harness, KitFailure, Target
from framework.testing.sites import GENERIC_PROFILE, SITE_PROFILES, SiteProfile
from framework.testing.stateful import Effort, trace_rows

__all__ = [
    "CHECKS",
    "CONTRACT_VERSION",
    "GENERIC_PROFILE",
    "KINDS",
    "SITE_PROFILES",
    "AllocatorContractTests",
    "AllocatorStatefulTests",
    "AllocatorTests",
    "CheckResult",
    "Effort",
    "Harness",
    "KitConfig",
    "KitFailure",
    "SiteProfile",
    "Target",
    "as_factory",
    "factory_for",
    "format_result",
    "run_all",
    "run_check",
    "run_random",
    "since",
    "small_kernel",
    "small_machine",
    "trace_rows",
]

_PYTEST_NAMES = ("AllocatorContractTests", "AllocatorStatefulTests", "AllocatorTests", "since")


def __getattr__(name: str) -> Any:
    """Import the pytest mixins (framework.testing.kit) only when they are asked for."""
    if name in _PYTEST_NAMES:
        from framework.testing import kit

        return getattr(kit, name)
    raise AttributeError(f"module 'framework.testing' has no attribute {name!r}")
