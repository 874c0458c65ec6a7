"""Comparison tables in the mmtests layout, rendered as plain, markdown, rst, csv or json.

Text output opens with the summary (:mod:`framework.summary`); with ``full`` the
per-workload tables follow: one block per workload, one column per plugin (or per result
file with ``framework compare``), one row per metric with its unit. The reference column
(``--baseline``, default the first) comes first and shows the value alone; every other cell
is ``mean (+x.x%)`` where ``+`` always means better for that metric (mmtests'
pdiff/pndiff), a factor ``(+N×)``/``(-N×)`` once the two differ by 2 times or more,
``*...*`` when the significance test finds the difference significant, and ``n/a`` where no
ratio exists. With several seeds a cell shows ``mean ±ci``. Rows equal in every column are
folded into one line under the table, and the columns of designs that serve none of the
workload's sites and equal the reference are replaced by one line that says so. A ``Gmean``
row summarises each column as the geometric mean over metrics of the better-is-above-1 ratio
to the reference. CSV and JSON carry every column and number, unfolded.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from tabulate import tabulate

from framework.metrics import METRIC_BY_NAME, METRICS
from framework.plugin_stats import stats_text
from framework.procview import proc_text
from framework.stats import (
    ALPHA,
    CONFIDENCE,
    TEST_NAME,
    gmean,
    pct_better,
    rank_scores,
    seed_significant,
    summarize,
    summary_ratio,
)
from framework.summary import Covers, Group, build_summary, render_summary

DEFAULT_METRICS: tuple[str, ...] = (
    "DirectMap4k", "DirectMap2M", "DirectMap1G", "direct_map_level2_splits",
    "direct_map_level3_splits", "pagetable_pages", "tlb_flush_all", "tlb_flush_range",
    "tlb_ipis", "cpa_calls", "text_poke_calls", "alloc_failures", "cache_pages",
    "metadata_bytes", "requested_bytes", "footprint_bytes", "unmapped_served_mapped_bytes",
    "alloc_p50_cycles", "alloc_p99_cycles", "alloc_max_cycles", "free_p50_cycles",
    "free_p99_cycles", "cycles_total", "dtlb_miss_rate", "stlb_miss_rate",
    "walk_cycles_per_access", "est_slowdown_pct", "est_slowdown_pct_low",
    "est_slowdown_pct_high", "itlb_miss_rate", "itlb_est_slowdown_pct",
    "violations",
)
FORMATS: tuple[str, ...] = ("plain", "markdown", "rst", "csv", "json")
_TABLEFMT = {"plain": "simple", "markdown": "github", "rst": "rst"}
SCHEMA = "framework.results/1"
Column = Callable[[dict[str, Any]], str]


def metric_names(spec: str) -> list[str]:
    """``default``, ``all`` or a comma list of metric names (checked by the caller)."""
    if spec == "default":
        return [m for m in DEFAULT_METRICS if m in METRIC_BY_NAME]
    if spec == "all":
        return [m.name for m in METRICS]
    return [s.strip() for s in spec.split(",") if s.strip()]


@attrs.frozen(slots=True)
class Entry:
    """One cell of the comparison: a column's summary of one metric against the reference."""

    column: str
    mean: float
    ci: float
    n: int
    pct: float | None
    significant: bool


@attrs.frozen(slots=True)
class Row:
    """One metric of one workload, across the columns."""

    workload: str
    metric: str
    unit: str
    entries: tuple[Entry, ...]


@attrs.frozen(slots=True)
class Block:
    """One workload: its metric rows and each column's geometric-mean ratio."""

    workload: str
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    gmeans: tuple[float | None, ...]


def _samples(runs: Sequence[dict[str, Any]], workload: str, column: Column
             ) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run["workload"] == workload:
            out.setdefault(column(run), []).append(run)
    return out


def build_blocks(runs: Sequence[dict[str, Any]], metrics: Sequence[str],
                 column: Column = lambda r: r["plugin"], reference: str | None = None
                 ) -> list[Block]:
    """The comparison model for ``runs``: workloads and columns in first-seen order."""
    blocks = []
    for workload in dict.fromkeys(r["workload"] for r in runs):
        samples = _samples(runs, workload, column)
        cols = list(samples)
        if reference in samples:
            cols.remove(reference)
            cols.insert(0, reference)
        rows = [_row(workload, name, cols, samples) for name in metrics]
        violations = [summarize([float(r["metrics"].get("violations", 0)) for r in samples[c]]).mean
                      for c in cols]
        blocks.append(Block(workload, tuple(cols), tuple(rows),
                            rank_scores(_gmeans(cols, rows), violations)))
    return blocks


def _by_seed(runs: list[dict[str, Any]], name: str) -> dict[int, float]:
    """A column's samples of one metric keyed by seed (the designs of a cell share seeds);
    a seed seen twice (two files of ``compare`` in one column) keeps a key of its own."""
    out: dict[int, float] = {}
    for i, run in enumerate(runs):
        seed = run.get("seed", i)
        key = seed if seed not in out else -1 - i
        out[key] = float(run["metrics"].get(name, 0.0))
    return out


def _row(workload: str, name: str, cols: list[str],
         samples: dict[str, list[dict[str, Any]]]) -> Row:
    meta = METRIC_BY_NAME[name]
    ref_vals = _by_seed(samples[cols[0]], name)
    ref = summarize(list(ref_vals.values()))
    entries = []
    for col in cols:
        vals = _by_seed(samples[col], name)
        s = summarize(list(vals.values()))
        pct = pct_better(s.mean, ref.mean, meta.lower_is_better)
        sig = col != cols[0] and seed_significant(vals, ref_vals)
        entries.append(Entry(col, s.mean, s.ci, s.n, pct, sig))
    return Row(workload, name, meta.unit, tuple(entries))


def _gmeans(cols: list[str], rows: Sequence[Row]) -> tuple[float | None, ...]:
    out = []
    for i in range(len(cols)):
        ratios = []
        for row in rows:
            meta = METRIC_BY_NAME[row.metric]
            r = summary_ratio(row.entries[i].mean, row.entries[0].mean, meta.lower_is_better,
                              meta.unit)
            if r is not None:
                ratios.append(r)
        out.append(gmean(ratios))
    return tuple(out)


# -- text ------------------------------------------------------------------------------
def _num(value: float) -> str:
    if value != value:
        return "nan"
    if abs(value) >= 1e7 or value == int(value):
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def change_text(value: float, ref: float, pct: float | None) -> str:
    """The change of ``value`` against ``ref``, ``+`` meaning better (``pct`` is
    :func:`framework.stats.pct_better`).

    A percent while the two are within a factor of 2 (or the value is 0); beyond that the
    factor, ``+671×`` (671 times better) or ``-2.0×`` (2 times worse), since "-466552%"
    says nothing a reader can use. ``n/a`` when no ratio exists (reference 0, or the two
    of opposite sign).
    """
    if pct is None:
        return "n/a"
    if value == 0 or ref == 0:
        return f"{pct:+.1f}%"
    ratio = value / ref
    if ratio <= 0:
        return "n/a"
    if 0.5 < ratio < 2:
        return f"{pct:+.1f}%"
    factor = max(ratio, 1 / ratio)
    sign = "+" if pct > 0 else "-"
    return f"{sign}{factor:.1f}×" if factor < 100 else f"{sign}{factor:.0f}×"


def _cell(entry: Entry, ref: Entry, is_ref: bool) -> str:
    text = _num(entry.mean)
    if entry.n > 1:
        text += f" ±{_num(entry.ci)}"
    if is_ref:
        return text
    change = change_text(entry.mean, ref.mean, entry.pct)
    return f"{text} *{change}*" if entry.significant else f"{text} ({change})"


def _same(row: Row, keep: Sequence[int]) -> bool:
    first = row.entries[keep[0]]
    return all((row.entries[i].mean, row.entries[i].ci) == (first.mean, first.ci)
               for i in keep)


def _table(block: Block, keep: Sequence[int]) -> tuple[list[str], list[list[str]], list[Row]]:
    """Header and rows of the kept columns; rows equal in every kept column come back
    apart, to be folded into one line."""
    header = [block.workload, *(block.columns[i] for i in keep)]
    rows, same = [], []
    for row in block.rows:
        if len(keep) > 1 and _same(row, keep):
            same.append(row)
            continue
        ref = row.entries[0]
        rows.append([f"{row.metric} ({row.unit})",
                     *(_cell(row.entries[i], ref, i == 0) for i in keep)])
    rows.append(["Gmean ratio (higher is better)",
                 *("n/a" if block.gmeans[i] is None else f"{block.gmeans[i]:.4f}"
                   for i in keep)])
    return header, rows, same


def legend(reference: str, seeds: int) -> str:
    """The legend printed above the per-workload tables."""
    parts = [f"Per workload, a row per metric and a column per design; (+x.x%): change "
             f"against {reference}, + is better for every metric",
             "(+N×)/(-N×): N times better/worse, shown where the two differ by a factor of "
             "2 or more",
             "n/a: no ratio (the reference is 0, or of the other sign)",
             "rows equal in every column are folded into one line under the table"]
    if seeds > 1:
        parts.insert(1, f"mean over {seeds} seeds, ±: {CONFIDENCE:.0%} confidence interval "
                     "(Student t)")
        parts.append(f"*+x.x%*: significant by {TEST_NAME}, alpha = {ALPHA}")
    else:
        parts.append("one seed: no confidence interval or significance (use --seeds N)")
    parts.append("Gmean ratio: geometric mean over the rows of the ratio to the reference "
                 "(counts + 1, slowdowns as run times), turned so that above 1 is better; a "
                 "column with violations never scores above a clean one (docs/checks.md)")
    return textwrap.fill("Legend: " + "; ".join(parts) + ".", 79)


def render(runs: Sequence[dict[str, Any]], fmt: str, metrics: Sequence[str],
           show_stats: bool = False, reference: str | None = None,
           column: Column = lambda r: r["plugin"], full: bool = False,
           covers: Covers | None = None) -> str:
    """Render the comparison of ``runs`` in ``fmt``.

    Text formats open with the summary (:mod:`framework.summary`); ``full`` adds the
    per-workload tables of ``metrics``. ``covers`` maps plugin names to the sites each
    serves (to say which columns equal the reference because the design is not involved).
    """
    blocks = build_blocks(runs, metrics, column, reference)
    if fmt == "json":
        return results_json(runs, blocks)
    if fmt == "csv":
        return _csv(blocks)
    seeds = max((e.n for b in blocks for r in b.rows for e in r.entries), default=1)
    groups = build_summary(runs, column, reference, covers)
    out = [render_summary(groups, _TABLEFMT[fmt], seeds)]
    if full:
        ref = blocks[0].columns[0] if blocks else ""
        out.append(legend(ref, seeds))
        out.extend(_block_text(b, g, fmt) for b, g in zip(blocks, groups, strict=True))
    else:
        out.append("Every metric per workload: --full (and --metrics all).")
    if show_stats:
        out.extend(filter(None, (_stats_text(runs, b.workload, fmt) for b in blocks)))
    return "\n\n".join(out) + "\n"


def _unit(unit: str) -> str:
    return "" if unit == "count" else f" {unit}"


def _block_text(block: Block, group: Group, fmt: str) -> str:
    unserved = [line for line in group.lines if line.note]
    drop = {name for line in unserved for name in line.labels}
    keep = [i for i, c in enumerate(block.columns) if c not in drop]
    header, rows, same = _table(block, keep)
    text = tabulate(rows, headers=header, tablefmt=_TABLEFMT[fmt], disable_numparse=True,
                    colalign=("left", *(["right"] * (len(header) - 1))))
    notes = [f"{', '.join(line.labels)}: {line.note}" for line in unserved]
    if same:
        notes.append("Same in every column: " + "; ".join(
            f"{r.metric} {_num(r.entries[keep[0]].mean)}{_unit(r.unit)}" for r in same))
    return "\n".join([text, *(textwrap.fill(n, 79) for n in notes)])


def _stats_text(runs: Sequence[dict[str, Any]], workload: str, fmt: str) -> str:
    """Each design's own counters on ``workload`` (its first seed), as tables."""
    parts = []
    seen = set()
    for run in runs:
        key = run["plugin"]
        if run["workload"] != workload or key in seen:
            continue
        seen.add(key)
        if run.get("stats"):
            parts.append(f"{key} stats on {workload} (seed {run.get('seed')}):\n"
                         + stats_text(run["stats"], fmt))
        if run.get("proc"):
            parts.append(f"{key} on {workload} (seed {run.get('seed')}), /proc/buddyinfo and "
                         f"/proc/pagetypeinfo at the end:\n" + proc_text(run["proc"]).rstrip())
    return "\n\n".join(parts)


def _csv(blocks: Sequence[Block]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["workload", "metric", "unit", "column", "mean", "ci", "n", "pct_better",
                     "significant"])
    for rec in comparison_records(blocks):
        writer.writerow([rec[k] for k in ("workload", "metric", "unit", "column", "mean", "ci",
                                          "n", "pct_better", "significant")])
    return out.getvalue()


def comparison_records(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """The table's numbers as flat records (CSV rows, and the JSON ``comparison`` list)."""
    recs = []
    for block in blocks:
        for row in block.rows:
            for e in row.entries:
                recs.append({"workload": row.workload, "metric": row.metric, "unit": row.unit,
                             "column": e.column, "mean": e.mean, "ci": e.ci, "n": e.n,
                             "pct_better": e.pct, "significant": e.significant})
        for col, g in zip(block.columns, block.gmeans, strict=True):
            recs.append({"workload": block.workload, "metric": "gmean_ratio", "unit": "ratio",
                         "column": col, "mean": g, "ci": 0.0, "n": 1, "pct_better": None,
                         "significant": False})
    return recs


def results_json(runs: Sequence[dict[str, Any]], blocks: Sequence[Block] | None = None) -> str:
    """The results document ``{"schema": "framework.results/1", "runs": [...]}``.

    With ``blocks`` it also carries the comparison table's numbers. Keys are sorted, so the
    same runs give byte-identical text.
    """
    doc: dict[str, Any] = {"schema": SCHEMA, "runs": list(runs)}
    if blocks is not None:
        doc["comparison"] = comparison_records(blocks)
    return json.dumps(doc, sort_keys=True, indent=1, allow_nan=False,
                      default=_no_nan) + "\n"


def _no_nan(value: Any) -> Any:
    raise TypeError(f"not JSON-serialisable: {value!r}")
