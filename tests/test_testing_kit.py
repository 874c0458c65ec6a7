"""The conformance kit (framework.testing) on every built-in design, on deliberately broken
designs (one per rule), and through ``framework check-plugin`` / ``framework new-plugin``.

The built-in suite subclasses the kit exactly as a third party would, parametrised over
whatever the registry holds (default parameters, plus every choice of a ``variant``
parameter). Known-bad variants, from each plugin's docstring:

- ``gfp-unmapped`` ``variant=posted``: the refill unmaps only the first ``1 << order`` pages
  (``unmapped_present``) and freed pages go back on the list unzeroed (``not_zeroed``).
- ``jit-slab`` ``variant=posted``: an empty slab is released with ``folio_put`` on the
  vmalloc page while the module area still maps it (the kernel model records that free as
  ``bad_free``), and the page is later reused with an executable alias that a generic free
  made writable again (``wx_mapping``); the page goes back to the buddy with its read-only
  direct-map alias (``buddy_prot``).
- ``gfp-unmapped`` ``variant=posted`` also hands a secretmem page's data to its next owner
  (``stale_data``); ``unmapped-api`` does so for guest and DMA pages asked for with
  ``zero=False`` (it zeroes only on request).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from framework.machine.costs import resolve_costs
from framework.plugins import build_registry, plugin_manager
from framework.statusquo import MODULE_SITES
from framework.testing import (
    CONTRACT_VERSION,
    AllocatorTests,
    Effort,
    KitConfig,
    Target,
    factory_for,
    run_all,
    small_machine,
)
from tests.helpers import load_file

FIXTURES = Path(__file__).parent / "fixtures"
REGISTRY = build_registry(plugin_manager())


def _variants() -> list[tuple[str, dict[str, str]]]:
    out = []
    for name, cls in REGISTRY.allocators.items():
        choices = next((p.choices for p in cls.params if p.name == "variant" and p.choices), None)
        out.extend((name, {"variant": c}) for c in choices) if choices else out.append((name, {}))
    return out


# Composition and per-node caches (framework/compose.py, plugins/_unmapped_cache.py): the
# kit on each backend and on per_node=1 (the kit's machine has one node; the 2-node
# mechanics are in tests/test_compose_pernode.py).
COMPOSED: list[tuple[str, dict[str, str]]] = [
    ("jit-slab", {"variant": "fixed", "backend": "unmapped-api"}),
    ("jit-slab", {"variant": "fixed", "backend": "vmap-area"}),
    ("vmap-area", {"variant": "fixed", "backend": "unmapped-api"}),
    ("gfp-unmapped", {"variant": "fixed", "per_node": "1"}),
    ("unmapped-api", {"per_node": "1"}),
]
VARIANTS = _variants() + COMPOSED
KNOWN_BAD: dict[tuple[str, str], frozenset[str]] = {
    ("gfp-unmapped", "posted"): frozenset({"unmapped_present", "not_zeroed", "stale_data"}),
    ("jit-slab", "posted"): frozenset({"bad_free", "wx_mapping", "buddy_prot"}),
    # rfc-v2 zeroes per request: a guest or DMA page goes to the next zero=False owner with
    # the data of the last (docs/checks.md, stale_data)
    ("unmapped-api", ""): frozenset({"stale_data"}),
}
# Sites each design's docstring promises to take out of the direct map (unmapped=True).
UNMAPPED_SITES: dict[str, frozenset[str]] = {
    "gfp-unmapped": frozenset({"secretmem", *MODULE_SITES}),
    "unmapped-api": frozenset({"secretmem", "guest", "dma_nokmap"}),
    "migratetype": frozenset({"secretmem"}),  # module pages are unmapped, not promised
}


class TestBuiltinDesigns(AllocatorTests):
    """Every registered built-in design (and variant) through the whole kit."""

    contract_version = CONTRACT_VERSION

    @pytest.fixture(params=VARIANTS, ids=[f"{n}-{'-'.join(p.values()) or 'default'}"
                                          for n, p in VARIANTS])
    def builtin(self, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
        return request.param  # type: ignore[no-any-return]

    @pytest.fixture
    def allocator_factory(self, builtin: tuple[str, dict[str, str]]) -> Any:
        name, params = builtin
        return (REGISTRY.allocators[name], params)

    @pytest.fixture
    def known_violations(self, builtin: tuple[str, dict[str, str]]) -> frozenset[str]:
        name, params = builtin
        return KNOWN_BAD.get((name, params.get("variant", "")), frozenset())

    @pytest.fixture
    def unmapped_sites(self, builtin: tuple[str, dict[str, str]]) -> frozenset[str]:
        return UNMAPPED_SITES.get(builtin[0], frozenset())

    @pytest.fixture
    def kit_effort(self, known_violations: frozenset[str]) -> Effort:
        # A known-bad variant must show each declared break: search longer for those. 40 was
        # borderline: since the TLB cost model landed, gfp-unmapped posted's not_zeroed shows
        # only between examples 41 and 50 (same 4-event sequence; why the search order moved
        # is not understood, the model's replay of that sequence is unchanged).
        return Effort(max_examples=60 if known_violations else 12, steps=20)


# -- the broken designs --------------------------------------------------------------------
def _load_broken() -> ModuleType:
    module = load_file(FIXTURES / "broken_allocators.py", "broken_allocators")
    sys.modules["broken_allocators"] = module
    return module


BROKEN = _load_broken()


@pytest.fixture(scope="module")
def broken_registry() -> Any:
    """The built-ins plus the broken designs, registered through a custom pluggy manager."""
    pm = plugin_manager()
    pm.register(BROKEN, "broken_allocators")
    return build_registry(pm)


_VERDICTS: dict[str, dict[str, Any]] = {}


def _verdict(reg: Any, name: str) -> dict[str, Any]:
    """The kit's verdict on one design, by check name (computed once per module run)."""
    if name not in _VERDICTS:
        target = Target(factory_for(reg.allocator(name)), small_machine(), resolve_costs({}),
                        step_seconds=3.0)  # generous: a loaded CI machine is slow
        effort = Effort(40, 20)  # enough that every hypothesis release finds each rule
        _VERDICTS[name] = {r.name: r for r in run_all(KitConfig(target, effort=effort))}
    return _VERDICTS[name]


@pytest.mark.parametrize(
    ("name", "rule", "events"),
    [
        # Two allocations of the same order share a block: the second breaks it.
        ("broken-double-alloc", "double_alloc", 2),
        # alloc, then the free that frees the block twice.
        ("broken-bad-free", "bad_free", 2),
        # alloc, then a free that keeps the page: 1 page allocated, 0 accounted for.
        ("broken-leak", "conservation", 2),
        # The first allocation already lies about being unmapped.
        ("broken-unmapped", "unmapped_present", 1),
        # module_alloc + set_memory_x without set_memory_ro: RW+X at once.
        ("broken-wx", "wx_mapping", 1),
        # DirectMap4k bumped on the first alloc.
        ("broken-counters", "counters", 1),
        ("broken-raises", "plugin_error", 1),
        ("broken-garbage", "plugin_error", 1),
        # The watchdog stops the first alloc.
        ("broken-loops", "timeout", 1),
    ],
)
def test_each_rule_caught_with_its_smallest_sequence(broken_registry: Any, name: str,
                                                     rule: str, events: int) -> None:
    verdict = _verdict(broken_registry, name)
    assert verdict[rule].status == "FAIL", verdict[rule]
    assert len(verdict[rule].events) == events, verdict[rule].events
    assert verdict[rule].events[-1].op in ("alloc", "free")


def test_not_zeroed_caught(broken_registry: Any) -> None:
    """At least alloc, write (or a neighbour's dirtying free), free, alloc with zero."""
    verdict = _verdict(broken_registry, "broken-not-zeroed")
    assert verdict["zeroing"].status == "FAIL"
    assert verdict["zeroing"].rule == "not_zeroed"
    found = verdict["not_zeroed"]
    assert found.status == "FAIL"
    last = found.events[-1]
    assert last.op == "alloc" and last.request.zero
    assert 4 <= len(found.events) <= 8


@pytest.mark.parametrize(
    ("name", "check", "rule"),
    [
        ("broken-bad-free", "free_accepts", "bad_free"),
        ("broken-leak", "accounting", "conservation"),
        ("broken-raises", "alloc_returns", ""),
        ("broken-garbage", "alloc_returns", ""),
        ("broken-shrinker", "shrinker", ""),
        ("broken-loops", "alloc_returns", "timeout"),
    ],
)
def test_contract_checks_catch(broken_registry: Any, name: str, check: str, rule: str) -> None:
    verdict = _verdict(broken_registry, name)
    assert verdict[check].status == "FAIL"
    assert verdict[check].rule == rule
    if check == "alloc_returns":  # later checks are not blamed for alloc's failure
        assert verdict["accounting"].status == "SKIP"


def test_constructor_failure_stops_the_verdict(broken_registry: Any) -> None:
    verdict = _verdict(broken_registry, "broken-init")
    assert list(verdict) == ["construct"]
    assert "RuntimeError: cannot attach" in verdict["construct"].detail


def test_correct_design_passes_everything(broken_registry: Any) -> None:
    verdict = _verdict(broken_registry, "simple")
    assert {r.status for r in verdict.values()} <= {"PASS", "SKIP"}, [
        r for r in verdict.values() if r.status == "FAIL"]


# -- the kit as a third party runs it (a subprocess, outside this repository's conftest) ----
KIT_SUITE = '''
import pytest
from broken_allocators import Leak, Simple
from framework.testing import (CONTRACT_VERSION, AllocatorContractTests, AllocatorTests,
                               Effort, since)


class TestSimple(AllocatorTests):
    @pytest.fixture
    def allocator_factory(self):
        return Simple

    @pytest.fixture
    def kit_effort(self):
        return Effort(8, 10)


class TestLeak(AllocatorContractTests):
    @pytest.fixture
    def allocator_factory(self):
        return lambda kernel: Leak(kernel, {})


class TestGate(AllocatorContractTests):
    @pytest.fixture
    def allocator_factory(self):
        return (Simple, {})

    @since(CONTRACT_VERSION + 1)
    def test_future(self):
        raise AssertionError("a check from a later contract version")


class TestGateOptedIn(TestGate):
    contract_version = CONTRACT_VERSION + 1
'''


def test_kit_is_self_contained_and_gated(tmp_path: Path) -> None:
    """No conftest, the pytest11 plugin disabled: the mixins bring their own fixtures; a test
    newer than the suite's contract_version is skipped until the suite opts in."""
    (tmp_path / "test_suite.py").write_text(KIT_SUITE)
    report = tmp_path / "report.xml"
    env = {**os.environ, "PYTHONPATH": str(FIXTURES)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:framework", "-p", "no:cacheprovider",
         f"--junitxml={report}", "-q", "test_suite.py"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300, check=False)
    outcome = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcome[f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"] = (
            kinds[0] if kinds else "passed")
    assert outcome["TestSimple::test_random_sequences"] == "passed", proc.stdout
    assert outcome["TestSimple::test_accounting"] == "passed"
    assert outcome["TestSimple::test_shrinker"] == "skipped"
    assert outcome["TestLeak::test_accounting"] == "failure"
    assert outcome["TestLeak::test_construct"] == "passed"
    assert outcome["TestGate::test_future"] == "skipped"
    assert outcome["TestGateOptedIn::test_future"] == "failure"
    assert "fixture 'allocator_factory' not found" not in proc.stdout


# -- the commands ----------------------------------------------------------------------------
def framework(*args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "framework"
    full_env = {**os.environ, "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=300, check=False)


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``framework ARGS`` in this process (no interpreter start-up); exit code, out, err."""
    from framework.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("nosuch",), ("nosuch", "baseline")),
        (("baseline", "--set", "baseline.x=1"), ("baseline.x",)),
        (("baseline", "--set", "modules.reloads=1"), ("modules", "faults")),
        (("baseline", "--set", "faults.cpa_fail_rate=2"), ("cpa_fail_rate", "from 0 to 1")),
        (("baseline", "--examples", "0"), ("0",)),
    ],
)
def test_check_plugin_bad_input(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                needles: tuple[str, ...]) -> None:
    code, _, err = in_process(capsys, "check-plugin", *args)
    one_line_error(code, err, *needles)


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An entry point for the broken designs, as an installed package would have."""
    site = BROKEN.write_entry_point(tmp_path_factory.mktemp("site"))
    return {"PYTHONPATH": f"{site}{os.pathsep}{FIXTURES}", "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": ""}


def test_check_plugin_reports_failure_and_sequence(broken_site: dict[str, str],
                                                   tmp_path: Path) -> None:
    """The kit's machine is 4 GiB with the default 1 GiB MMIO hole, so ZONE_NORMAL is the
    GiB relocated above 4 GiB and the first GFP_KERNEL page is pfn 0x100000."""
    # 20 examples: with 10, hypothesis's derandomized search order on this branch (the
    # composition and per-node changes) draws no two same-order allocations; the cause of
    # the moved order is not established (see the kit_effort note above).
    proc = framework("check-plugin", "broken-double-alloc", "--examples", "20", "--long", "0",
                     "--workload-events", "0", "--save-failures", str(tmp_path),
                     env=broken_site)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("check-plugin broken-double-alloc [framework-broken-allocators")
    assert "PASS construct" in lines
    at = lines.index("FAIL double_alloc: at 0x100000, event 1: already owned by allocation 1")
    assert lines[at + 1] == "    smallest failing sequence (2 events, as trace CSV):"
    assert lines[at + 2] == "    op,id,site,size,perm,zero,node,freed_by"
    # sizes shrink to 1 byte; zero is whatever hypothesis drew (it does not matter here)
    assert re.fullmatch(r"    alloc,1,kernel,1,RW,[01],,OWNER", lines[at + 3])
    assert re.fullmatch(r"    alloc,2,kernel,1,RW,[01],,OWNER", lines[at + 4])
    saved = (tmp_path / "broken-double-alloc-double_alloc.csv").read_text().splitlines()
    assert saved == [line.strip() for line in lines[at + 2:at + 5]]


def test_check_plugin_correct_design_exits_0(capsys: pytest.CaptureFixture[str],
                                             broken_registry: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("framework.plugins._REGISTRY", broken_registry)
    code, out, err = in_process(capsys, "check-plugin", "simple", "--examples", "10",
                                "--workload-events", "50")
    assert code == 0, out + err
    assert out.splitlines()[0] == ("check-plugin simple [builtin]; contract v1; "
                                   "10 examples x 30 steps + 10 x 300; workloads x 50 events")
    assert out.splitlines()[-1] == "simple: 19 pass, 0 fail, 2 skip"


@pytest.mark.skipif("gfp-unmapped" not in REGISTRY.allocators, reason="not registered yet")
def test_check_plugin_gfp_unmapped_posted_breaks_fixed_holds(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = in_process(capsys, "check-plugin", "gfp-unmapped", "--examples", "25",
                              "--long", "0", "--workload-events", "0")
    assert code == 1
    for rule in ("unmapped_present", "not_zeroed"):
        assert any(line.startswith(f"FAIL {rule}: ") for line in out.splitlines()), out
    code, out, _ = in_process(capsys, "check-plugin", "gfp-unmapped", "--set",
                              "gfp-unmapped.variant=fixed", "--examples", "25", "--long", "0",
                              "--workload-events", "0")
    assert code == 0, out
    assert "variant=fixed" in out.splitlines()[0]


def test_new_plugin_installs_and_passes(tmp_path: Path) -> None:
    """Generate, pip install --target, then check-plugin and the package's own tests."""
    out = tmp_path / "framework-my-cache"
    made = framework("new-plugin", "my-cache", "--out", str(out), "--covers",
                     "secretmem,bpf_prog")
    assert made.returncode == 0, made.stderr
    assert {Path(p).relative_to(out).as_posix() for p in made.stdout.split()} == {
        "pyproject.toml", "README.md", "framework_my_cache/__init__.py",
        "tests/test_framework_my_cache.py"}
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(out)],
                   check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": str(site), "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": ""}
    checked = framework("check-plugin", "my-cache", "--examples", "10", "--long", "0",
                        "--workload-events", "100", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("check-plugin my-cache [framework-my-cache 0.0.1];")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out / "tests")],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, **env}, timeout=300, check=False)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " failed" not in tests.stdout and " passed" in tests.stdout


def test_new_plugin_bad_name_and_existing_dir(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    code, _, err = in_process(capsys, "new-plugin", "My_Cache", "--out", str(tmp_path / "x"))
    one_line_error(code, err, "My_Cache", "lower-case")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    code, _, err = in_process(capsys, "new-plugin", "ok", "--out", str(tmp_path / "full"))
    one_line_error(code, err, "already exists")
    code, _, err = in_process(capsys, "new-plugin", "ok", "--out", str(tmp_path / "y"),
                              "--covers", "Secret Mem")
    one_line_error(code, err, "Secret Mem")
