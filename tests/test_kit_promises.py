"""The promises added to the checks and the kit: ``stale_data``, ``buddy_prot``, the unmapped
promise taken from a design's own ``covers``, and bugs that need many events.

Engine-level cases replay hand-written traces through the fixtures of
``tests/fixtures/broken_allocators.py`` (each docstring derives the expected counts); kit
cases run the conformance kit; the three designs of the issue's "done when" go through
``framework check-plugin`` at its default effort.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from framework.engine import Cell, freeze_sets, run_cell
from framework.machine.costs import resolve_costs
from framework.plugins import build_registry, plugin_manager
from framework.testing import Effort, KitConfig, Target, factory_for, run_all, small_machine
from framework.testing.checks import CHECK_BY_NAME, run_check
from tests.helpers import load_broken_allocators

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = "op,id,site,size,perm,zero,node,freed_by"
SECRET = "secretmem,4096,UNMAPPED,1,,GENERIC"


B = load_broken_allocators()


@pytest.fixture(scope="module")
def registry() -> Any:
    pm = plugin_manager()
    pm.register(B, "broken_allocators_promises")
    return build_registry(pm)


def _run(registry: Any, tmp_path: Path, plugin: str, rows: list[str]) -> dict[str, Any]:
    trace = tmp_path / "t.csv"
    trace.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    sets = {"machine": {"mem_gib": "2"}, "trace": {"path": str(trace)}}
    return run_cell(Cell(plugin, "trace", "default", 1, freeze_sets(sets)), registry)


def _secret_round(i: int) -> list[str]:
    return [f"alloc,{i},{SECRET}", f"write,{i},,,,,,", f"free,{i},,,,,,"]


def test_dirty_shrinker_leaves_the_secret_in_the_buddy(registry: Any, tmp_path: Path) -> None:
    """One page written, cached dirty at free (the cache zeroes when it hands a page out),
    then the shrinker restores its direct-map entry and frees it unzeroed: at the sample
    it is buddy-free and still dirty, 1 stale_data; it is forgotten then, so the final
    check adds none. The correct cache zeroes in its shrinker: 0."""
    rows = [*_secret_round(1), "pressure,,,1,,,,", "sample,,,,,,,"]
    broken = _run(registry, tmp_path, "broken-dirty-shrinker", rows)
    assert broken["violation_counts"] == {"stale_data": 1}
    assert "back in the buddy" in broken["violations"][0]["detail"]
    assert _run(registry, tmp_path, "secret-cache", rows)["violation_counts"] == {}


def test_unmapped_shrinker_leaves_a_non_present_page_in_the_buddy(registry: Any,
                                                                  tmp_path: Path) -> None:
    """The shrinker frees the page with its direct-map entry still invalid: the whole-state
    check finds it at the sample and again at the end (nothing reallocates it): 2."""
    rows = [*_secret_round(1), "pressure,,,1,,,,", "sample,,,,,,,"]
    broken = _run(registry, tmp_path, "broken-unmapped-shrinker", rows)
    assert broken["violation_counts"] == {"buddy_prot": 2}
    assert broken["violations"][0]["detail"] == ("free in the buddy with a not present "
                                                 "direct-map entry")


def test_reuse_after_100_breaks_at_the_101st_allocation(registry: Any, tmp_path: Path) -> None:
    """101 rounds of alloc, write, free of one secretmem page: allocation 1 comes from the
    buddy, 2..100 reuse the cached page zeroed, 101 reuses it unzeroed, holding what owner
    100 wrote: 1 not_zeroed (it asked for zero) and 1 stale_data (a new owner got the
    secret), both at event 300 (the 101st alloc: 3 events per round)."""
    rows = [row for i in range(1, 102) for row in _secret_round(i)]
    broken = _run(registry, tmp_path, "broken-reuse-100", rows)
    assert broken["violation_counts"] == {"not_zeroed": 1, "stale_data": 1}
    assert {v["event"] for v in broken["violations"]} == {300}
    assert _run(registry, tmp_path, "secret-cache", rows)["violation_counts"] == {}


def test_status_quo_secretmem_keeps_the_secret(registry: Any, tmp_path: Path) -> None:
    """v6.3 secretmem_free_folio restores the entry and zeroes the page in one call."""
    rows = [*_secret_round(1), "alloc,2,kernel,4096,RW,0,,OWNER", "sample,,,,,,,"]
    assert _run(registry, tmp_path, "baseline", rows)["violation_counts"] == {}


def _config(cls: type, effort: Effort | None = None) -> KitConfig:
    target = Target(factory_for(cls), small_machine(), resolve_costs({}), step_seconds=10.0)
    return KitConfig(target, effort=effort or Effort(20, 10))


def test_unmapped_promise_comes_from_covers() -> None:
    """No unmapped_sites given: secretmem is covered and its requests ask for UNMAPPED, so
    the check runs (it used to SKIP) and fails a design serving it from the direct map."""
    assert run_check(CHECK_BY_NAME["unmapped_promise"], _config(B.SecretCache)).status == "PASS"
    broken = run_check(CHECK_BY_NAME["unmapped_promise"], _config(B.DirectSecretmem))
    assert broken.status == "FAIL" and broken.rule == "unmapped_present"
    assert "returned unmapped=False" in broken.detail
    skipped = run_check(CHECK_BY_NAME["unmapped_promise"], _config(B.Simple))
    assert skipped.status == "SKIP"  # covers kernel only: nothing asks for UNMAPPED


@pytest.mark.parametrize(("cls", "rule"), [("DirtyShrinker", "stale_data"),
                                           ("UnmappedShrinker", "buddy_prot")])
def test_random_sequences_catch_the_shrinkers(cls: str, rule: str) -> None:
    """alloc, (write,) free, pressure is enough: short sequences find it."""
    verdict = {r.name: r for r in run_all(_config(getattr(B, cls)))}
    assert verdict[rule].status == "FAIL", verdict[rule]
    assert verdict[rule].events[-1].op == "pressure"
    assert 3 <= len(verdict[rule].events) <= 4


def test_correct_cache_passes_the_whole_kit() -> None:
    effort = Effort(20, 10, long_examples=2, long_steps=100, workload_events=150)
    verdict = run_all(_config(B.SecretCache, effort))
    assert [r for r in verdict if r.status == "FAIL"] == []


@pytest.mark.parametrize(("plugin", "rules"), [
    ("broken-direct-secretmem", ("unmapped_promise", "unmapped_present")),
    ("broken-reuse-100", ("not_zeroed", "stale_data")),
    ("broken-dirty-shrinker", ("stale_data",)),
])
def test_check_plugin_default_effort_fails_them(tmp_path: Path, plugin: str,
                                                rules: tuple[str, ...]) -> None:
    """The issue's three designs, through the installed command at its default effort."""
    site = B.write_entry_point(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{FIXTURES}",
           "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "", "XDG_CACHE_HOME": str(tmp_path)}
    exe = Path(sys.executable).parent / "framework"
    proc = subprocess.run([str(exe), "check-plugin", plugin], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = {line.split()[1].rstrip(":") for line in proc.stdout.splitlines()
              if line.startswith("FAIL ")}
    assert failed == set(rules), proc.stdout


# -- where a CPA can fail (faults.cpa_fail_rate) ---------------------------------------------
def test_cpa_faults_hit_only_calls_that_split() -> None:
    """cpa_fail_rate=1: every call that needs a split fails, no other. The kit machine's
    boot layout (framework/kernel/directmap.py): the first 2 MiB in 4 KiB entries, the rest
    of the first GiB in 2 MiB entries, 1 GiB entries above.

    - pfn 0x100 (in the first 2 MiB): a 4 KiB entry, nothing to split: succeeds.
    - pfn 0x4000 (64 MiB), one page of a 2 MiB entry: needs a split: -ENOMEM, still present.
    - 512 pages at 0x4000, the whole 2 MiB entry: changed in place (try_preserve_large_page),
      no split: succeeds, and the entry stays 2 MiB.
    - 512 pages at 0x40000 (1 GiB): a part of a 1 GiB entry: needs a split: -ENOMEM.
    - restoring pfn 0x100: 4 KiB already: succeeds (v6.3's secretmem_free_folio and
      vm_reset_perms ignore this call's result: it cannot fail there)."""
    from framework.kernel.directmap import LEVEL_2M
    from framework.kernel.faults import Faults
    from framework.kernel.kernel import Kernel

    kernel = Kernel(small_machine(), resolve_costs({}), Faults(seed=1, cpa_fail_rate=1.0))
    dm = kernel.directmap
    assert kernel.set_direct_map_invalid_noflush(0x100) == 0 and not dm.is_present(0x100)
    assert kernel.set_direct_map_invalid_noflush(0x4000) == -12 and dm.is_present(0x4000)
    assert kernel.set_memory_np(0x4000, 512) == 0 and not dm.is_present(0x4000)
    assert dm.level(0x4000) == LEVEL_2M
    assert kernel.set_memory_np(0x40000, 512) == -12 and dm.is_present(0x40000)
    assert kernel.set_direct_map_default_noflush(0x100) == 0 and dm.is_present(0x100)


def test_check_plugin_baseline_passes_under_cpa_faults() -> None:
    """docs/faults.md recommends this run. v6.3's own BPF path ignores a failed
    ``set_memory_ro()`` (a weakness the kit can find, tests/test_fixed_designs.py), so the
    run uses v6.9's fix, ``baseline.bpf_check_rox=1``; every other path is v6.3's."""
    exe = Path(sys.executable).parent / "framework"
    env = {**os.environ, "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([str(exe), "check-plugin", "baseline", "--set",
                           "faults.cpa_fail_rate=0.2", "--set", "baseline.bpf_check_rox=1"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[-1] == "baseline: 18 pass, 0 fail, 3 skip"


def test_every_rule_is_documented() -> None:
    """Each rule name (a contract) has its row in docs/checks.md's table of rules."""
    from framework.checks import RULES

    text = (Path(__file__).parent.parent / "docs" / "checks.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`") for line in text.splitlines()
            if line.startswith("| `")}
    assert set(RULES) <= rows, set(RULES) - rows
