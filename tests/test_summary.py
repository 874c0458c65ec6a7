"""The summary table that opens the text output, on hand-made runs and through the CLI."""

from __future__ import annotations

import re
from typing import Any

import pytest

from framework.report import change_text, render
from framework.summary import build_summary, fmt_count, fmt_pages, fmt_pct, sites_text
from tests.test_cli import run


def fake(plugin: str, workload: str, sites: tuple[str, ...] = ("secretmem",),
         **metrics: float) -> dict[str, Any]:
    return {"plugin": plugin, "workload": workload, "machine": "default", "seed": 1,
            "params": {}, "metrics": metrics, "violations": [], "stats": {},
            "framework_version": "test",
            "latency_by_site": {s: {"allocs": 1, "frees": 1} for s in sites}}


def test_cell_formats_by_hand() -> None:
    """60375 IPIs is 60.4 thousand; 1536 pages x 4 KiB = 6144 KiB = 6.0 MiB; 254 pages =
    1016 KiB; -0.006179% keeps two significant digits."""
    assert [fmt_count(v) for v in (3, 4022, 60375, 1_207_050, 2.5)] == [
        "3", "4022", "60.4k", "1.2M", "2.5"]
    assert [fmt_pages(p) for p in (0, 1536, 254, 393216)] == [
        "0", "6.0 MiB", "1016 KiB", "1.5 GiB"]
    assert [fmt_pct(v) for v in (0, -0.006179, 3.44, 27.4)] == ["0", "-0.0062", "3.4", "27"]
    assert sites_text(["secretmem"]) == "secretmem"
    assert sites_text(["module_data", "module_rodata", "module_text"]) == "module_* (3 sites)"


def test_change_as_factor_beyond_two_times() -> None:
    """IPIs 90 against 60375 (lower is better): 60375/90 = 670.8 times better, "+671×";
    8044 against 4022: twice as many, "-2.0×"; 6291456 against 4370432 bytes is 1.44 times,
    so the percent stays: -43.96% -> "-44.0%"; a value of 0 against 3 is "+100.0%"."""
    assert change_text(90, 60375, 99.85) == "+671×"
    assert change_text(8044, 4022, -100.0) == "-2.0×"
    assert change_text(6291456, 4370432, -43.96) == "-44.0%"
    assert change_text(0, 3, 100.0) == "+100.0%"
    assert change_text(5, 0, None) == "n/a"
    assert change_text(-1, 2, -150.0) == "n/a"  # opposite signs: no ratio


def test_equal_rows_share_a_line_and_unserved_designs_say_so() -> None:
    """b equals a in every metric and serves secretmem: it shares a's row. c serves only
    bpf_prog and equals a: one note line. d serves nothing either but differs: its own row
    (the note is never a guess)."""
    same = {"direct_map_level2_splits": 3.0, "tlb_ipis": 60375.0, "cache_pages": 0.0,
            "est_slowdown_pct": 0.5, "violations": 0.0}
    runs = [fake("a", "w", **same), fake("b", "w", **same), fake("c", "w", **same),
            fake("d", "w", **{**same, "violations": 2.0})]
    covers = {"a": frozenset(), "b": frozenset({"secretmem"}), "c": frozenset({"bpf_prog"}),
              "d": frozenset()}
    (group,) = build_summary(runs, covers=covers)
    assert [line.labels for line in group.lines] == [("a", "b"), ("d",), ("c",)]
    assert group.lines[0].cells == ("3", "0", "60.4k", "0", "0.5", "✓")
    assert group.lines[1].cells[-1] == "2"
    assert group.lines[2].note == "= a: does not serve secretmem"
    text = render(runs, "plain", ["tlb_ipis"], covers=covers)
    assert "\n  c    = a: does not serve secretmem\n" in text


def test_band_shown_when_present_and_fits_80_columns() -> None:
    """With est_slowdown_pct_low/high the slowdown reads "mid [low,high]"."""
    band = {"est_slowdown_pct": 0.123, "est_slowdown_pct_low": 0.05,
            "est_slowdown_pct_high": 0.2, "tlb_ipis": 1_234_567.0,
            "direct_map_level2_splits": 12345.0, "direct_map_level3_splits": 64.0,
            "cache_pages": 12345.0, "violations": 10958.0}
    runs = [fake(p, "pks-pagetables", **band) for p in ("gfp-unmapped", "unmapped-api")]
    runs[1]["metrics"] = {**band, "violations": 0.0}
    text = render(runs, "plain", ["tlb_ipis"])
    assert "0.12 [0.05,0.2]" in text and "[band: low,high]" in text
    assert max(len(line) for line in text.splitlines()) < 80


def test_default_output_starts_with_the_summary_under_80_columns() -> None:
    """`framework bench --plugins all`: the first screen is the summary, every line under
    80 columns, jit-slab and vmap-area folded on secretmem (they serve only BPF/text)."""
    proc = run("bench", "--plugins", "all")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Summary:")
    assert max(len(line) for line in lines) < 80
    assert re.search(r"\n  jit-slab, +\= baseline: does not serve secretmem\n", proc.stdout)
    assert "Value " not in proc.stdout


@pytest.mark.parametrize("fmt", ["markdown", "rst"])
def test_other_text_formats_carry_the_summary(fmt: str) -> None:
    runs = [fake("a", "w", tlb_ipis=30.0), fake("b", "w", tlb_ipis=15.0)]
    text = render(runs, fmt, ["tlb_ipis"])
    assert "workload" in text and "30" in text and "15" in text
