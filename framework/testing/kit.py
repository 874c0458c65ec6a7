"""The pytest mixins a design's own test suite subclasses (import them from framework.testing).

::

    from framework.testing import AllocatorTests

    class TestMyDesign(AllocatorTests):
        contract_version = 1                     # opt in to newer checks when ready

        @pytest.fixture
        def allocator_factory(self):
            return MyAllocator                   # or (MyAllocator, {"variant": "fixed"})
                                                 # or lambda kernel: MyAllocator(kernel, {...})

Every other fixture has a default defined here (nothing comes from a conftest), and each
can be overridden by defining a fixture of the same name in the subclass: the machine
(``kit_machine``), costs and faults, the sites the design serves (``covered_sites``), the
request profiles (``site_profiles``), which sites it promises to unmap (``unmapped_sites``),
whether it has a shrinker (``has_shrinker``), which rules a known-bad variant breaks
(``known_violations``), the hypothesis effort (``kit_effort``) and the per-event watchdog
(``step_seconds``). A single inherited test can be skipped or xfailed by redefining it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import pytest

from framework.kernel.faults import Faults
from framework.machine.costs import resolve_costs
from framework.machine.spec import MachineSpec
from framework.testing.checks import (
    CHECK_BY_NAME,
    FAIL,
    RANDOM_SINCE,
    SKIP,
    CheckResult,
    KitConfig,
    format_result,
    run_check,
    run_random,
)
from framework.testing.factories import as_factory, small_machine
from framework.testing.harness import KINDS, Target
from framework.testing.sites import SITE_PROFILES, SiteProfile
from framework.testing.stateful import Effort

F = TypeVar("F", bound=Callable[..., Any])


def since(version: int) -> Callable[[F], F]:
    """Tag a kit test with the contract version that introduced it."""
    def tag(fn: F) -> F:
        fn.contract_since = version  # type: ignore[attr-defined]
        return fn
    return tag


def _report(result: CheckResult, known: frozenset[str]) -> None:
    """Turn a check result into the pytest outcome."""
    if result.status == SKIP:
        pytest.skip(result.detail)
    if result.status == FAIL:
        text = "\n".join(format_result(result))
        if result.rule and result.rule in known:
            pytest.xfail(f"known-bad ({result.rule} declared in known_violations): {text}")
        pytest.fail(text, pytrace=False)


class _KitFixtures:
    """The fixtures every kit class uses, with their defaults."""

    #: The contract version this suite opts in to; checks introduced later are skipped.
    contract_version: ClassVar[int] = 1

    @pytest.fixture(autouse=True)
    def _contract_gate(self, request: pytest.FixtureRequest, kit_contract_version: int) -> None:
        """Skip kit tests newer than the version the suite opted in to."""
        introduced = getattr(request.function, "contract_since", 1)
        if introduced > kit_contract_version:
            pytest.skip(f"contract v{introduced} check; this suite opts in to "
                        f"v{kit_contract_version} (set contract_version = {introduced})")

    @pytest.fixture
    def kit_contract_version(self) -> int:
        """The class attribute ``contract_version`` (override the fixture to compute it)."""
        return self.contract_version

    @pytest.fixture
    def kit_machine(self) -> MachineSpec:
        """4 GiB, one node, 4 CPUs."""
        return small_machine()

    @pytest.fixture
    def kit_costs(self) -> dict[str, float]:
        """The default cost table."""
        return resolve_costs({})

    @pytest.fixture
    def kit_faults(self) -> Faults:
        """No fault injection."""
        return Faults()

    @pytest.fixture
    def covered_sites(self) -> tuple[str, ...] | None:
        """The sites the design serves; None takes the instance's ``covers``."""
        return None

    @pytest.fixture
    def site_profiles(self) -> Mapping[str, SiteProfile]:
        """How requests for each site look (add your own sites here)."""
        return SITE_PROFILES

    @pytest.fixture
    def unmapped_sites(self) -> frozenset[str]:
        """Sites whose allocations the design promises to remove from the direct map, besides
        the covered sites whose requests ask for UNMAPPED memory (always checked)."""
        return frozenset()

    @pytest.fixture
    def has_shrinker(self) -> bool | None:
        """Whether the design registers a shrinker; None looks at the kernel after boot."""
        return None

    @pytest.fixture
    def known_violations(self) -> frozenset[str]:
        """Rules this (known-bad) variant breaks: reported as xfail, not as failures."""
        return frozenset()

    @pytest.fixture
    def kit_effort(self) -> Effort:
        """Hypothesis examples and steps for the random sequences."""
        return Effort()

    @pytest.fixture
    def step_seconds(self) -> float:
        """Wall-clock watchdog for one event (a design that loops fails instead of hanging)."""
        return 30.0

    @pytest.fixture
    def kit_config(self, allocator_factory: Any, kit_machine: MachineSpec,
                   kit_costs: dict[str, float], kit_faults: Faults,
                   covered_sites: tuple[str, ...] | None,
                   site_profiles: Mapping[str, SiteProfile], unmapped_sites: frozenset[str],
                   has_shrinker: bool | None, known_violations: frozenset[str],
                   kit_effort: Effort, step_seconds: float) -> KitConfig:
        """Everything the checks need, from the fixtures above."""
        target = Target(as_factory(allocator_factory), kit_machine, kit_costs, kit_faults,
                        frozenset(known_violations), step_seconds)
        sites = None if covered_sites is None else tuple(covered_sites)
        return KitConfig(target, sites, site_profiles, frozenset(unmapped_sites),
                         has_shrinker, kit_effort)


def _check(name: str) -> Callable[[Any, KitConfig], None]:
    """A test method running the deterministic check ``name``."""
    check = CHECK_BY_NAME[name]

    @since(check.since)
    def test(self: Any, kit_config: KitConfig) -> None:
        _report(run_check(check, kit_config), kit_config.target.known)

    test.__name__ = f"test_{name}"
    test.__doc__ = check.run.__doc__
    return test


class AllocatorContractTests(_KitFixtures):
    """The deterministic checks of the Allocator contract (see framework.testing.checks)."""

    test_construct = _check("construct")
    test_attributes = _check("attributes")
    test_alloc_returns = _check("alloc_returns")
    test_free_accepts = _check("free_accepts")
    test_stats_json = _check("stats_json")
    test_cache_and_metadata = _check("cache_and_metadata")
    test_accounting = _check("accounting")
    test_shrinker = _check("shrinker")
    test_unmapped_promise = _check("unmapped_promise")
    test_zeroing = _check("zeroing")


class AllocatorStatefulTests(_KitFixtures):
    """Random alloc/write/free/pressure sequences through the engine with every check on."""

    @since(RANDOM_SINCE)
    def test_random_sequences(self, kit_config: KitConfig) -> None:
        """No rule breaks (other than declared known ones) in any example; the first break
        fails with its smallest event sequence."""
        kinds = [k for k in KINDS if k not in kit_config.target.known]
        failed = [r for r in run_random(kit_config, kinds) if r.status == FAIL]
        if failed:
            pytest.fail("\n".join(line for r in failed for line in format_result(r)),
                        pytrace=False)

    @since(RANDOM_SINCE)
    def test_known_violations_reproduced(self, kit_config: KitConfig) -> None:
        """A declared known-bad rule is found (then reported as xfail with its sequence)."""
        known = sorted(kit_config.target.known)
        if not known:
            pytest.skip("no known_violations declared")
        config = _without_known(kit_config)
        results = {r.name: r for r in run_random(config, known)}
        missing = [k for k in known if results[k].status != FAIL]
        if missing:
            pytest.fail(f"declared known violations not reproduced in "
                        f"{config.effort.max_examples} examples: {', '.join(missing)} "
                        "(drop them from known_violations, or raise kit_effort)",
                        pytrace=False)
        text = "\n".join(line for k in known for line in format_result(results[k]))
        pytest.xfail(f"known-bad variant breaks {', '.join(known)} as declared:\n{text}")


def _without_known(config: KitConfig) -> KitConfig:
    import attrs

    return attrs.evolve(config, target=attrs.evolve(config.target, known=frozenset()))


class AllocatorTests(AllocatorContractTests, AllocatorStatefulTests):
    """The whole kit: the contract checks and the random sequences."""
