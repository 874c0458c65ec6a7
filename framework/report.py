"""Tables from results: one block per workload, one column per plugin, one row per metric.

The same table model renders as ``plain`` (tabulate ``simple``), ``markdown`` (``github``),
``rst``, ``csv`` and ``json``, so every format carries the same columns and numbers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from framework.metrics import METRIC_BY_NAME, METRICS

DEFAULT_METRICS: tuple[str, ...] = (
    "DirectMap4k", "DirectMap2M", "DirectMap1G", "direct_map_level2_splits",
    "direct_map_level3_splits", "pagetable_pages", "tlb_flush_all", "tlb_flush_range",
    "tlb_ipis", "cpa_calls", "text_poke_calls", "alloc_failures", "cache_pages",
    "metadata_bytes", "requested_bytes", "footprint_bytes", "unmapped_served_mapped_bytes",
    "alloc_p50_cycles", "alloc_p99_cycles", "alloc_max_cycles", "free_p50_cycles",
    "free_p99_cycles", "cycles_total", "violations",
)
FORMATS: tuple[str, ...] = ("plain", "markdown", "rst", "csv", "json")
_TABLEFMT = {"plain": "simple", "markdown": "github", "rst": "rst"}


def metric_names(spec: str) -> list[str]:
    """``default``, ``all`` or a comma list of metric names (checked by the CLI)."""
    if spec == "default":
        return list(DEFAULT_METRICS)
    if spec == "all":
        return [m.name for m in METRICS]
    return [s.strip() for s in spec.split(",") if s.strip()]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.0f}" if value == int(value) else f"{value:.4g}"
    return str(value)


def workload_block(runs: Sequence[dict[str, Any]], workload: str, plugins: Sequence[str],
                   metrics: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows for one workload (first seed of each plugin; see stats for more)."""
    by_plugin = {}
    for run in runs:
        if run["workload"] == workload:
            by_plugin.setdefault(run["plugin"], run)
    cols = [p for p in plugins if p in by_plugin]
    header = [f"{workload}", "unit", *cols]
    rows = []
    for name in metrics:
        unit = METRIC_BY_NAME[name].unit if name in METRIC_BY_NAME else ""
        rows.append([name, unit, *(_fmt(by_plugin[p]["metrics"].get(name, "")) for p in cols)])
    return header, rows


def stats_block(runs: Sequence[dict[str, Any]], workload: str, plugins: Sequence[str]
                ) -> list[tuple[str, str]]:
    """Each plugin's own ``stats()`` for the workload, as (plugin, text) pairs."""
    out = []
    for plugin in plugins:
        for run in runs:
            if run["workload"] == workload and run["plugin"] == plugin and run["stats"]:
                out.append((plugin, json.dumps(run["stats"], sort_keys=True)))
                break
    return out


def render(runs: Sequence[dict[str, Any]], fmt: str, metrics: Sequence[str],
           show_stats: bool = False) -> str:
    """Render ``runs`` in ``fmt``; JSON is the results document itself."""
    if fmt == "json":
        return results_json(runs)
    workloads = list(dict.fromkeys(r["workload"] for r in runs))
    plugins = list(dict.fromkeys(r["plugin"] for r in runs))
    if fmt == "csv":
        return _csv(runs, workloads, plugins, metrics)
    blocks = []
    for workload in workloads:
        header, rows = workload_block(runs, workload, plugins, metrics)
        text = tabulate(rows, headers=header, tablefmt=_TABLEFMT[fmt], disable_numparse=True,
                        colalign=("left", "left", *(["right"] * (len(header) - 2))))
        if show_stats:
            text += "".join(f"\n  {p} stats: {s}" for p, s in stats_block(runs, workload, plugins))
        blocks.append(text)
    return "\n\n".join(blocks) + "\n"


def _csv(runs: Sequence[dict[str, Any]], workloads: list[str], plugins: list[str],
         metrics: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["workload", "metric", "unit", *plugins])
    for workload in workloads:
        _, rows = workload_block(runs, workload, plugins, metrics)
        for row in rows:
            writer.writerow([workload, *row])
    return out.getvalue()


SCHEMA = "framework.results/1"


def results_json(runs: Sequence[dict[str, Any]]) -> str:
    """The results document: ``{"schema": "framework.results/1", "runs": [...]}``.

    Keys sorted, so the same runs give byte-identical text.
    """
    return json.dumps({"schema": SCHEMA, "runs": list(runs)}, sort_keys=True, indent=1) + "\n"
