"""Comparison tables and statistics, on hand-made results with numbers worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from framework.report import build_blocks, render
from framework.stats import (
    gmean,
    pct_better,
    rank_scores,
    ratio_better,
    summarize,
    summary_ratio,
    welch_significant,
)
from tests.test_cli import one_line_error, run


def fake(plugin: str, workload: str, seed: int, **metrics: float) -> dict[str, Any]:
    return {"plugin": plugin, "workload": workload, "machine": "default", "seed": seed,
            "params": {}, "metrics": metrics, "violations": [], "stats": {},
            "framework_version": "test"}


def test_pct_better_sign_means_better() -> None:
    """mmtests pdiff/pndiff: 50 against 100 is +50% when lower is better, -50% otherwise."""
    assert pct_better(50, 100, lower_is_better=True) == 50.0
    assert pct_better(50, 100, lower_is_better=False) == -50.0
    assert pct_better(0, 0, True) == 0.0
    assert pct_better(5, 0, True) is None


def test_summary_ci_by_hand() -> None:
    """[1, 2, 3]: mean 2, s = 1, t(0.975, 2) = 4.302653 (table), CI = 4.302653 / sqrt(3)."""
    s = summarize([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.stddev == 1.0 and s.n == 3
    assert s.ci == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert summarize([7.0]).ci == 0.0


def test_welch() -> None:
    """Means 1 and 10 with s = 0.1, n = 3: t = 9 / sqrt(2 * 0.01 / 3) = 110: significant.
    The same samples twice are not; one sample is never enough; zero variance on both
    sides is never significance (the bug of marking constant metrics)."""
    a, b = [0.9, 1.0, 1.1], [9.9, 10.0, 10.1]
    assert welch_significant(a, b)
    assert not welch_significant(a, a)
    assert not welch_significant([1.0], [2.0])
    assert not welch_significant([1.0, 1.0], [2.0, 2.0])


def test_paired_t_by_hand() -> None:
    """d = a - b = [2, 1, 3]: mean 2, s_d = 1, t = 2 / (1 / sqrt 3) = 3.4641, df = 2. The
    t(2) CDF is 1/2 + t / (2 sqrt(2 + t^2)) = 1/2 + 3.4641 / (2 * 3.7417) = 0.96291, so
    p = 2 * 0.03709 = 0.07418: not significant at 0.05.
    d = [2, 2.1, 1.9]: s_d = 0.1, t = 34.641, p = 2 * (1/2 - 34.641 / (2 sqrt 1202)) =
    0.00083: significant, although Welch's unpaired test on the same samples is not (the
    seeds' spread, shared by both designs, cancels in the differences)."""
    from framework.stats import paired_p, paired_significant

    assert paired_p([10, 12, 15], [8, 11, 12]) == pytest.approx(0.07418, abs=1e-5)
    a, b = [10.0, 12.1, 13.9], [8.0, 10.0, 12.0]
    assert paired_p(a, b) == pytest.approx(0.000833, rel=1e-2)
    assert paired_significant(a, b) and not welch_significant(a, b)
    assert paired_p([5, 6, 7], [3, 4, 5]) is None  # constant difference: no variance
    assert not paired_significant([5.0, 6.0], [3.0, 4.0])
    assert paired_p([1.0], [2.0]) is None


def test_paired_p_matches_scipy_ttest_rel() -> None:
    from scipy.stats import ttest_rel

    from framework.stats import paired_p

    a, b = [1.0, 2.0, 4.0, 8.0], [2.0, 3.0, 9.0, 10.0]
    assert paired_p(a, b) == pytest.approx(ttest_rel(a, b).pvalue, rel=1e-9)


def test_welch_p_matches_scipy_ttest() -> None:
    """Our Welch p-value (formula + scipy.special.stdtr) equals scipy.stats.ttest_ind's."""
    from scipy.stats import ttest_ind

    from framework.stats import welch_p

    for a, b in (([1.0, 2.0, 4.0], [2.0, 3.0, 9.0, 10.0]), ([10.0, 12.0], [2.0, 4.0])):
        ours = welch_p(summarize(a), summarize(b))
        assert ours == pytest.approx(ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)


def test_gmean_and_ratio() -> None:
    assert gmean([2.0, 0.5]) == pytest.approx(1.0)
    assert ratio_better(50, 100, True) == 2.0
    assert ratio_better(0, 100, True) is None


def test_summary_ratio_counts_zeros() -> None:
    """Counts + 1: violations 0 -> 10958 is a ratio of 1/10959 (lower is better), the reverse
    10959; a slowdown compares run times: 1% against 0% is 100/101; only a shifted value <= 0
    has no ratio."""
    assert summary_ratio(10958, 0, True, "count") == pytest.approx(1 / 10959)
    assert summary_ratio(0, 10958, True, "count") == pytest.approx(10959)
    assert summary_ratio(1.0, 0.0, True, "%") == pytest.approx(100 / 101)
    assert summary_ratio(0, 0, False, "kB") == 1.0
    assert summary_ratio(-100.0, 0.0, True, "%") is None


def test_violations_never_rank_above_clean() -> None:
    """The posted case of the issue: a design with 10958 violations but 0 splits, flushes and
    CPA calls against the clean baseline's 3, 4022 and 8044. Per row (counts + 1): splits
    4/1, flushes 4023/1, cpa 8045/1, violations 1/10959: gmean = (4 * 4023 * 8045 /
    10959)^(1/4) = 10.8 > 1 without the rule; with it the design gets the clean floor, the
    baseline's 1.0. A clean design with the same rows keeps its own score."""
    rows = dict(direct_map_level2_splits=3.0, tlb_flush_range=4022.0, cpa_calls=8044.0)
    zero = dict.fromkeys(rows, 0.0)
    runs = [fake("baseline", "w", 1, violations=0.0, **rows),
            fake("posted", "w", 1, violations=10958.0, **zero),
            fake("fixed", "w", 1, violations=0.0, **zero)]
    metrics = [*rows, "violations"]
    (block,) = build_blocks(runs, metrics)
    base, posted, fixed = block.gmeans
    assert base == 1.0
    assert posted == 1.0  # capped at the lowest clean score (the baseline's)
    assert fixed == pytest.approx((4 * 4023 * 8045) ** 0.25)
    assert rank_scores([2.0, 5.0, None], [0, 3, 0]) == (2.0, 2.0, None)
    assert rank_scores([2.0, 5.0], [1, 3]) == (2.0, 5.0)  # nothing clean: as computed


def test_table_cells_by_hand() -> None:
    """baseline splits 10 and 12 (mean 11), design 2 and 5 (mean 3.5) on seeds 1 and 2:
    lower is better, so (11 - 3.5) / 11 = +68.18%, shown as the factor 11 / 3.5 = 3.1×.
    Paired by seed, d = [8, 7]: mean 7.5, s_d = 0.7071, t = 7.5 / (0.7071 / sqrt 2) = 15,
    df = 1, p = 2 (1/2 - atan(15) / pi) = 0.0424 < 0.05: marked *...*. The CI of [2, 5] is
    t(0.975, 1) s / sqrt 2 = 12.706 * 2.1213 / 1.4142 = 19.06. Gmean ratio, counts + 1:
    (11 + 1) / (3.5 + 1) = 2.667."""
    runs = [fake("baseline", "w", 1, direct_map_level2_splits=10.0),
            fake("baseline", "w", 2, direct_map_level2_splits=12.0),
            fake("design", "w", 1, direct_map_level2_splits=2.0),
            fake("design", "w", 2, direct_map_level2_splits=5.0)]
    (block,) = build_blocks(runs, ["direct_map_level2_splits"])
    base, design = block.rows[0].entries
    assert (base.mean, design.mean) == (11.0, 3.5)
    assert design.pct == pytest.approx(750 / 11)
    assert design.significant and not base.significant
    assert block.gmeans[1] == pytest.approx(12 / 4.5)
    text = render(runs, "plain", ["direct_map_level2_splits"], full=True)
    assert "3.50 ±19.06 *+3.1×*" in text
    assert "\ndirect_map_level2_splits (count) " in text
    assert "paired t-test" in text and "alpha = 0.05" in text


def test_constant_difference_is_not_marked() -> None:
    """Two seeds, design always 8 below the reference: the differences do not vary, so
    nothing is marked (zero variance is not significance)."""
    runs = [fake("baseline", "w", 1, tlb_ipis=10.0), fake("baseline", "w", 2, tlb_ipis=12.0),
            fake("design", "w", 1, tlb_ipis=2.0), fake("design", "w", 2, tlb_ipis=4.0)]
    (block,) = build_blocks(runs, ["tlb_ipis"])
    assert not block.rows[0].entries[1].significant


def test_reference_column_and_formats() -> None:
    runs = [fake("a", "w", 1, tlb_ipis=30.0), fake("b", "w", 1, tlb_ipis=15.0)]
    plain = render(runs, "plain", ["tlb_ipis"], reference="b", full=True)
    header = plain.split("\nw ")[1].splitlines()[0].split()
    assert header == ["b", "a"]
    assert "30 (-2.0×)" in plain  # a sends twice the IPIs of b: 2 times worse
    csv_text = render(runs, "csv", ["tlb_ipis"], reference="b")
    header = "workload,metric,unit,column,mean,ci,n,pct_better,significant"
    assert csv_text.splitlines()[0] == header
    assert "w,tlb_ipis,count,a,30.0,0.0,1,-100.0,False" in csv_text
    doc = json.loads(render(runs, "json", ["tlb_ipis"], reference="b"))
    rec = [r for r in doc["comparison"] if r["column"] == "a" and r["metric"] == "tlb_ipis"]
    assert rec[0]["pct_better"] == -100.0
    md = render(runs, "markdown", ["tlb_ipis"], full=True)
    assert "\n| w " in md and "| workload " in md


def test_reference_zero_is_not_comparable() -> None:
    runs = [fake("a", "w", 1, violations=0.0), fake("b", "w", 1, violations=3.0)]
    assert "3 (n/a)" in render(runs, "plain", ["violations"], full=True)


def test_compare_two_files(tmp_path: Path) -> None:
    """Two settings of the same design: directmap 1g and 2m; the first file is the reference.
    With 2m DirectMap1G is 0, so its percentage is -100% (higher is better). That is
    another machine: refused (exit 2, one line) until --allow-different-machines, and the
    difference is named above the tables."""
    files = []
    for name, size in (("gb.json", "1g"), ("nogb.json", "2m")):
        out = tmp_path / name
        proc = run("bench", "--plugins", "baseline", "--workloads", "secretmem",
                   "--set", "machine.mem_gib=4", "--set", "secretmem.processes=4",
                   "--set", f"machine.directmap={size}", "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        files.append(str(out))
    refused = run("compare", *files, "--metrics", "DirectMap1G")
    assert refused.returncode == 2 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert 'nogb.json ran on another machine than gb.json (machine.directmap: "2m" vs "1g")' in line
    assert "--allow-different-machines" in line
    proc = run("compare", *files, "--metrics", "DirectMap1G", "--allow-different-machines")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Files: gb.json (1 run); nogb.json (1 run)\n"
                                  "nogb.json vs gb.json: machine.directmap \"2m\" vs \"1g\"\n")
    head = proc.stdout.split("\nsecretmem ")[1].splitlines()[0].split()
    assert head == ["gb.json:baseline", "nogb.json:baseline"]
    assert "0 (-100.0%)" in proc.stdout


def test_compare_names_differences_filters_and_rejects_empty(tmp_path: Path) -> None:
    """Same machine, another plugin parameter and seed range: both named; --plugins and
    --workloads keep only the named runs; an empty file or an unknown name is one line."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    common = ("bench", "--plugins", "baseline,gfp-unmapped", "--workloads", "secretmem,bpf",
              "--set", "machine.mem_gib=4", "--set", "secretmem.processes=4")
    assert run(*common, "--output", str(a)).returncode == 0
    assert run(*common, "--set", "gfp-unmapped.variant=fixed", "--seeds", "3",
               "--output", str(b)).returncode == 0
    proc = run("compare", str(a), str(b), "--plugins", "gfp-unmapped", "--workloads", "bpf",
               "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert ('b.json vs a.json: gfp-unmapped.variant "fixed" vs "posted"; seeds 1-3 vs 1'
            in proc.stderr)
    columns = {line.split(",")[3] for line in proc.stdout.splitlines()[1:]}
    workloads = {line.split(",")[0] for line in proc.stdout.splitlines()[1:]}
    assert columns == {"a.json:gfp-unmapped", "b.json:gfp-unmapped"} and workloads == {"bpf"}
    empty = tmp_path / "empty.json"
    empty.write_text('{"schema": "framework.results/1", "runs": []}')
    one_line_error(run("compare", str(a), str(empty)), "empty.json: no runs")
    one_line_error(run("compare", str(a), str(b), "--workloads", "nope"),
                   "no run of workload 'nope'", "secretmem, bpf")


def test_compare_rejects_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "other"}')
    proc = run("compare", str(bad), str(bad))
    assert proc.returncode == 2 and "schema" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
