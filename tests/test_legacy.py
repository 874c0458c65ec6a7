"""A design written against the first API keeps working for one release, with a warning.

``tests/fixtures/framework_example_plugin`` subclasses ``Allocator`` directly, covers only
``secretmem`` and delegates to ``framework.kernel.callsites.StatusQuo(kernel)``: the old
import warns, the engine wraps the design in :class:`framework.legacy.LegacyDesign` (and
warns), the conformance kit passes it, and since it serves secretmem exactly as v6.3 does,
its results on every workload equal ``baseline``'s.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

import pytest

from framework.engine import Cell, freeze_sets, run_cell
from framework.legacy import LegacyDesign, as_design
from framework.plugins import Registry, get_registry
from framework.testing import AllocatorTests
from tests.conftest import small_spec

FIXTURES = Path(__file__).parent / "fixtures" / "framework_example_plugin"


def _load_example() -> type:
    sys.path.insert(0, str(FIXTURES))
    try:
        sys.modules.pop("framework_example_plugin", None)
        with pytest.warns(DeprecationWarning, match=r"framework\.statusquo\.StatusQuo"):
            module = importlib.import_module("framework_example_plugin")
    finally:
        sys.path.remove(str(FIXTURES))
    return module.Passthrough  # type: ignore[no-any-return]


PASSTHROUGH = _load_example()


def test_wrapping_warns_and_routes_only_covered_sites() -> None:
    from framework.kernel.kernel import Kernel
    from framework.machine.costs import resolve_costs

    kernel = Kernel(small_spec(), resolve_costs({}))
    with pytest.warns(DeprecationWarning, match="subclass framework.statusquo.StatusQuo"):
        design = as_design(PASSTHROUGH(kernel, {}))
    assert isinstance(design, LegacyDesign)
    assert design.name == "example-passthrough" and design.covers == {"secretmem"}


def _registry_with_passthrough() -> Registry:
    base = get_registry()
    reg = Registry()
    reg.allocators.update(base.allocators)
    reg.workloads.update(base.workloads)
    reg.machines.update(base.machines)
    reg.allocators["example-passthrough"] = PASSTHROUGH
    return reg


@pytest.mark.parametrize("workload", ["secretmem", "modules", "bpf"])
def test_results_equal_baseline(workload: str) -> None:
    reg = _registry_with_passthrough()
    sets = freeze_sets({"machine": {"mem_gib": "4"}, "modules": {"reloads": "5"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = run_cell(Cell("example-passthrough", workload, "default", 1, sets), reg)
    new = run_cell(Cell("baseline", workload, "default", 1, sets), reg)
    assert old["metrics"] == new["metrics"]
    assert old["violations"] == new["violations"] == []


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
class TestFirstApiDesignPassesTheKit(AllocatorTests):
    """The conformance kit on the first-API design, through the wrapper."""

    contract_version = 1

    @pytest.fixture
    def allocator_factory(self) -> type:
        return PASSTHROUGH
