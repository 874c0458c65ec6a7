"""The block-level checker (framework/checks.py) against the per-page oracle
(framework/testing/perpage_checks.py): the same verdicts on every design and workload.

Every built-in design and every fixture of ``tests/fixtures/broken_allocators.py`` (the
correct ones and the broken ones whose runs end) runs each workload of the default suite
twice on the default machine (the fixtures on a fresh one), the same cell, once judged by
:class:`Checker` and once by :class:`PerPageChecker`. Both see the same events on the same
model (the checker only reads it), so the violation counts must be equal rule by rule, and
the violations kept in detail equal one by one (rule, where, event, detail). Several broken
designs break a rule on every workload, so a block-level shortcut that misses pages changes
a count here.
"""

from __future__ import annotations

from typing import Any

import pytest

from framework.checks import Checker
from framework.engine import Cell, Runner, freeze_sets, prepare
from framework.plugins import Registry, build_registry, plugin_manager
from framework.testing.perpage_checks import PerPageChecker
from tests.helpers import load_broken_allocators

#: fixtures whose runs stop with a PluginError (or never end) before any verdict
NO_VERDICT = {"broken-raises", "broken-garbage", "broken-loops", "broken-init", "broken-stats"}


def _registry() -> Registry:
    module = load_broken_allocators()
    pm = plugin_manager()
    pm.register(module, "broken_allocators_oracle")
    return build_registry(pm)


REG = _registry()
PLUGINS = sorted(set(REG.allocators) - NO_VERDICT)
WORKLOADS = [name for name, cls in REG.workloads.items() if cls.default]
#: The built-in designs run on the default (aged) machine, which covers the checker's paths
#: over a direct map split at the start; the fixtures run on a just-booted one: the rules
#: they break do not depend on the start state, and the aged machine would triple their time.
BUILT_IN = set(build_registry(plugin_manager()).allocators)


def _verdicts(plugin: str, workload: str, oracle: bool) -> tuple[dict[str, int], list[Any]]:
    sets = {} if plugin in BUILT_IN else {"machine": {"state": "fresh"}}
    runner = Runner(prepare(Cell(plugin, workload, "default", 1, freeze_sets(sets)), REG))
    assert type(runner.checker) is Checker
    if oracle:
        runner.checker = PerPageChecker(runner.kernel)  # type: ignore[assignment]
    result = runner.run()
    return result["violation_counts"], result["violations"]


def test_the_cases_cover_designs_fixtures_and_the_default_suite() -> None:
    """11 built-in designs (baseline included), the broken fixtures, 7 default workloads."""
    assert {"baseline", "guest-memfd", "vmap-area", "jit-slab"} <= set(PLUGINS)
    assert {"broken-double-alloc", "broken-unmapped", "broken-not-zeroed",
            "broken-reuse-100", "broken-dirty-shrinker"} <= set(PLUGINS)
    assert len(WORKLOADS) == 7


@pytest.mark.parametrize("plugin", PLUGINS)
def test_same_verdicts_as_the_per_page_oracle(plugin: str) -> None:
    """Counts per rule and the violations kept in detail, on each default workload."""
    for workload in WORKLOADS:
        fast = _verdicts(plugin, workload, oracle=False)
        slow = _verdicts(plugin, workload, oracle=True)
        assert fast == slow, (plugin, workload)
