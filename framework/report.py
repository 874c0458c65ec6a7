"""Comparison tables in the mmtests layout, rendered as plain, markdown, rst, csv or json.

One block per workload, one column per plugin (or per result file with ``framework compare``),
one row per metric with its unit. The reference column (``--baseline``, default the first)
comes first and reads ``0.00%``; every other cell is ``mean (+x.xx%)`` where ``+`` always means
better for that metric (mmtests' pdiff/pndiff), ``*+x.xx*%`` when Welch's t-test finds the
difference significant, and ``n/a`` where the reference is 0. With several seeds a cell shows
``mean ±ci``. A ``Gmean`` row summarises each column as the geometric mean over metrics of
the better-is-above-1 ratio to the reference. All formats carry the same columns and numbers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from tabulate import tabulate

from framework.metrics import METRIC_BY_NAME, METRICS
from framework.stats import (
    ALPHA,
    CONFIDENCE,
    gmean,
    pct_better,
    rank_scores,
    summarize,
    summary_ratio,
    welch_significant,
)

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
            out.setdefault(column(run), []).append(run["metrics"])
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
            cols.insert(0, reference)  # type: ignore[arg-type]
        rows = [_row(workload, name, cols, samples) for name in metrics]
        violations = [summarize([float(m.get("violations", 0)) for m in samples[c]]).mean
                      for c in cols]
        blocks.append(Block(workload, tuple(cols), tuple(rows),
                            rank_scores(_gmeans(cols, rows), violations)))
    return blocks


def _row(workload: str, name: str, cols: list[str],
         samples: dict[str, list[dict[str, Any]]]) -> Row:
    meta = METRIC_BY_NAME[name]
    ref_vals = [float(m.get(name, 0.0)) for m in samples[cols[0]]]
    ref = summarize(ref_vals)
    entries = []
    for col in cols:
        vals = [float(m.get(name, 0.0)) for m in samples[col]]
        s = summarize(vals)
        pct = pct_better(s.mean, ref.mean, meta.lower_is_better)
        sig = col != cols[0] and welch_significant(vals, ref_vals)
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


def _cell(entry: Entry, is_ref: bool) -> str:
    text = _num(entry.mean)
    if entry.n > 1:
        text += f" ±{_num(entry.ci)}"
    if entry.pct is None:
        return f"{text} (   n/a )"
    if is_ref:
        return f"{text} (  0.00%)"
    pct = f"{entry.pct:+7.2f}%"
    return f"{text} *{pct}*" if entry.significant else f"{text} ({pct})"


def _table(block: Block) -> tuple[list[str], list[list[str]]]:
    n = block.rows[0].entries[0].n if block.rows else 1
    stat = "Amean" if n > 1 else "Value"
    header = [block.workload, *block.columns]
    rows = [[f"{stat} {row.metric} ({row.unit})",
             *(_cell(e, i == 0) for i, e in enumerate(row.entries))] for row in block.rows]
    rows.append(["Gmean ratio (higher is better)",
                 *("n/a" if g is None else f"{g:.4f}" for g in block.gmeans)])
    return header, rows


def legend(reference: str, seeds: int) -> str:
    """The legend printed under text tables."""
    parts = [f"(+x.xx%): change against {reference}; + is better for every metric",
             "n/a: the reference is 0"]
    if seeds > 1:
        parts.insert(0, f"Amean over {seeds} seeds, ±: {CONFIDENCE:.0%} confidence interval "
                     "(Student t)")
        parts.append(f"*+x.xx%*: significant by Welch's t-test, alpha = {ALPHA}")
    else:
        parts.append("one seed: no confidence interval or significance (use --seeds N)")
    parts.append("Gmean ratio: geometric mean over the rows of the ratio to the reference "
                 "(counts + 1, slowdowns as run times), turned so that above 1 is better; a "
                 "column with violations never scores above a clean one (docs/checks.md)")
    return "Legend: " + "; ".join(parts) + "."


def render(runs: Sequence[dict[str, Any]], fmt: str, metrics: Sequence[str],
           show_stats: bool = False, reference: str | None = None,
           column: Column = lambda r: r["plugin"]) -> str:
    """Render the comparison of ``runs`` in ``fmt``."""
    blocks = build_blocks(runs, metrics, column, reference)
    if fmt == "json":
        return results_json(runs, blocks)
    if fmt == "csv":
        return _csv(blocks)
    seeds = max((e.n for b in blocks for r in b.rows for e in r.entries), default=1)
    ref = blocks[0].columns[0] if blocks else ""
    out = []
    for block in blocks:
        header, rows = _table(block)
        text = tabulate(rows, headers=header, tablefmt=_TABLEFMT[fmt], disable_numparse=True,
                        colalign=("left", *(["right"] * (len(header) - 1))))
        if show_stats:
            text += _stats_text(runs, block.workload, fmt)
        out.append(text)
    return "\n\n".join(out) + "\n\n" + legend(ref, seeds) + "\n"


def _stats_text(runs: Sequence[dict[str, Any]], workload: str, fmt: str) -> str:
    lines = []
    seen = set()
    for run in runs:
        key = run["plugin"]
        if run["workload"] == workload and run.get("stats") and key not in seen:
            seen.add(key)
            lines.append(f"{key} stats: {json.dumps(run['stats'], sort_keys=True)}")
    if not lines:
        return ""
    sep = "\n\n" if fmt != "plain" else "\n"
    return sep + sep.join(lines)


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
