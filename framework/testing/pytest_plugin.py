"""The ``framework`` pytest plugin (entry point ``pytest11``): fixtures for a plugin's own CI.

Loaded automatically wherever the framework is installed, so a third party's tests need
nothing else. It adds:

- ``framework_machine``: the kit's small machine (4 GiB, one node, 4 CPUs);
- ``framework_kernel``: a freshly booted kernel model on it, default costs, no faults;
- ``framework_registry``: the plugin registry built as the CLI builds it (entry points
  included unless ``FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD=1``), to check that a package's entry
  point registers what it should;
- the framework version and contract version in pytest's header.

The kit's mixin classes (:mod:`framework.testing.kit`) do not depend on these fixtures: they
define their own, so they also work with ``-p no:framework`` or plugin autoload disabled.
Nothing here imports hypothesis.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework.kernel.kernel import Kernel
from framework.machine.spec import MachineSpec


def pytest_report_header(config: pytest.Config) -> str:
    """One header line: which framework and contract version the run tests against."""
    from framework.engine import VERSION
    from framework.testing.checks import CONTRACT_VERSION

    return f"framework: {VERSION}, allocator contract v{CONTRACT_VERSION}"


@pytest.fixture
def framework_machine() -> MachineSpec:
    """The kit's small machine."""
    from framework.testing.factories import small_machine

    return small_machine()


@pytest.fixture
def framework_kernel(framework_machine: MachineSpec) -> Kernel:
    """A freshly booted kernel model on ``framework_machine`` (default costs, no faults)."""
    from framework.machine.costs import resolve_costs

    return Kernel(framework_machine, resolve_costs({}))


@pytest.fixture
def framework_registry() -> Any:
    """A registry built the way the CLI builds it (a new one per test)."""
    from framework.plugins import build_registry

    return build_registry()
