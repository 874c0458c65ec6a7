"""The summary that opens the text output of ``framework bench`` and ``framework compare``.

One table a mail can carry (plain text stays under 80 columns): per workload, a row per
design (or per ``FILE:plugin`` column of ``compare``) with the figures that decide: 2 MiB and
1 GiB direct-map splits, TLB-shootdown IPIs, memory held in caches, the estimated slowdown
(with its band when the run carries ``est_slowdown_pct_low``/``_high``) and the violations
(a count, or ✓ for none). Rows equal in every column share one line. A design that serves
none of the sites the workload emitted (its class's ``covers``) and whose metrics all equal
the reference's says so on one line ("= baseline: does not serve secretmem") instead of
repeating the reference's numbers.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from tabulate import tabulate

from framework.stats import summarize

WIDTH = 79  # a mail line
LABEL_WIDTH = 15  # design names wrap here when several share a row
Column = Callable[[dict[str, Any]], str]
Covers = Mapping[str, frozenset[str]]


@attrs.frozen(slots=True)
class Line:
    """One row of a workload's group: the columns it stands for and its cells (or a note)."""

    labels: tuple[str, ...]
    cells: tuple[str, ...] = ()
    note: str = ""


@attrs.frozen(slots=True)
class Group:
    """One workload's rows; ``sites`` are the request sites its runs emitted."""

    workload: str
    sites: tuple[str, ...]
    lines: tuple[Line, ...]


# -- cell formats ----------------------------------------------------------------------
def fmt_count(value: float) -> str:
    """A count in at most six characters: 3, 4022, 60.4k, 1.2M (means keep one decimal)."""
    if value != value:
        return "nan"
    mag = abs(value)
    if mag >= 1e6:
        return f"{value / 1e6:.1f}M"
    if mag >= 1e4:
        return f"{value / 1e3:.1f}k"
    if value == int(value) or mag >= 10:
        return f"{value:.0f}"
    return f"{value:.1f}"


def fmt_pages(pages: float) -> str:
    """4 KiB pages as bytes with a binary unit: 0, 12 KiB, 6.0 MiB, 1.5 GiB."""
    kib = pages * 4.0
    if kib == 0:
        return "0"
    if kib < 1024:
        return f"{kib:.0f} KiB"
    if kib < 1024 * 1024:
        return f"{kib / 1024:.1f} MiB"
    return f"{kib / 1024 / 1024:.1f} GiB"


def fmt_pct(value: float) -> str:
    """A percentage with two significant digits below 10: -0.0062, 0.12, 3.4, 27."""
    if value == 0:
        return "0"
    if abs(value) >= 10:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.2g}"


def _mean(samples: Sequence[Mapping[str, Any]], key: str) -> float:
    return summarize([float(m.get(key, 0.0)) for m in samples]).mean


def _slowdown(samples: Sequence[Mapping[str, Any]]) -> str:
    mid = fmt_pct(_mean(samples, "est_slowdown_pct"))
    if all("est_slowdown_pct_low" in m and "est_slowdown_pct_high" in m for m in samples):
        low = _fmt_bound(_mean(samples, "est_slowdown_pct_low"))
        high = _fmt_bound(_mean(samples, "est_slowdown_pct_high"))
        return f"{mid} [{low},{high}]"
    return mid


def _fmt_bound(value: float) -> str:
    """A band's end with one significant digit (the band is a range, not a measurement)."""
    return fmt_pct(float(f"{value:.1g}"))


def _violations(samples: Sequence[Mapping[str, Any]]) -> str:
    if all(float(m.get("violations", 0)) == 0 for m in samples):
        return "✓"
    return fmt_count(_mean(samples, "violations"))


HEADERS: tuple[str, ...] = ("L2 spl.", "L3 spl.", "IPIs", "cached", "slowdown %", "viol.")


def figures(samples: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The summary cells of one column of one workload (means over its seeds)."""
    return (fmt_count(_mean(samples, "direct_map_level2_splits")),
            fmt_count(_mean(samples, "direct_map_level3_splits")),
            fmt_count(_mean(samples, "tlb_ipis")),
            fmt_pages(_mean(samples, "cache_pages")),
            _slowdown(samples),
            _violations(samples))


# -- the model -------------------------------------------------------------------------
def _numeric_means(samples: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in samples[0].items() if isinstance(v, (int, float))]
    return {k: _mean(samples, k) for k in keys}


def sites_text(sites: Sequence[str]) -> str:
    """``secretmem``; ``bpf_prog, trampoline``; ``module_* (7 sites)`` for a family."""
    if len(sites) <= 2:
        return ", ".join(sites)
    head = sites[0].split("_")[0] + "_"
    if all(s.startswith(head) for s in sites):
        return f"{head}* ({len(sites)} sites)"
    return f"{sites[0]} and {len(sites) - 1} other sites"


def _emitted(runs: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    sites: dict[str, None] = {}
    for run in runs:
        for site, lat in (run.get("latency_by_site") or {}).items():
            if lat.get("allocs", 0):
                sites[site] = None
    return tuple(sorted(sites))


def _group(workload: str, runs: Sequence[dict[str, Any]], column: Column,
           reference: str | None, covers: Covers) -> Group:
    samples: dict[str, list[dict[str, Any]]] = {}
    plugin_of: dict[str, str] = {}
    for run in runs:
        samples.setdefault(column(run), []).append(run["metrics"])
        plugin_of.setdefault(column(run), run["plugin"])
    cols = list(samples)
    ref = reference if reference in samples else cols[0]
    cols.remove(ref)
    cols.insert(0, ref)
    sites = _emitted(runs)
    ref_means = _numeric_means(samples[ref])
    unserved: list[str] = []
    by_cells: dict[tuple[str, ...], list[str]] = {}
    for col in cols:
        served = covers.get(plugin_of[col])
        if (col != ref and sites and served is not None and not served & set(sites)
                and _numeric_means(samples[col]) == ref_means):
            unserved.append(col)
        else:
            by_cells.setdefault(figures(samples[col]), []).append(col)
    lines = [Line(tuple(names), cells) for cells, names in by_cells.items()]
    if unserved:
        lines.append(Line(tuple(unserved), note=f"= {ref}: does not serve {sites_text(sites)}"))
    return Group(workload, sites, tuple(lines))


def build_summary(runs: Sequence[dict[str, Any]], column: Column = lambda r: r["plugin"],
                  reference: str | None = None, covers: Covers | None = None) -> list[Group]:
    """The summary of ``runs``: workloads and columns in first-seen order, the reference
    column first. ``covers`` maps a plugin name to the sites its class serves; a plugin not
    in it is never said not to serve a site."""
    out = []
    for workload in dict.fromkeys(r["workload"] for r in runs):
        mine = [r for r in runs if r["workload"] == workload]
        out.append(_group(workload, mine, column, reference, covers or {}))
    return out


# -- text ------------------------------------------------------------------------------
def legend(seeds: int, banded: bool) -> str:
    """What the summary's columns mean (printed above it)."""
    parts = ["Summary: per workload, a row per design; designs with equal figures share a row",
             "L2/L3 spl.: 2 MiB/1 GiB direct-map mappings split (/proc/vmstat "
             "direct_map_level2_splits, direct_map_level3_splits)",
             "IPIs: TLB-shootdown IPIs sent",
             "cached: memory held in the allocators' caches at the end",
             "slowdown %: estimated kernel-time slowdown against a 1 GiB direct map"
             + (" [band: low,high]" if banded else ""),
             "viol.: broken promises (✓: none)"]
    if seeds > 1:
        parts.append(f"means over {seeds} seeds")
    return textwrap.fill("; ".join(parts) + ".", WIDTH)


def _wrap_labels(labels: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for i, label in enumerate(labels):
        piece = label + ("," if i < len(labels) - 1 else "")
        if lines and len(lines[-1]) + 1 + len(piece) <= LABEL_WIDTH:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return lines


def _plain(groups: Sequence[Group]) -> str:
    rows = [line for g in groups for line in g.lines]
    label_w = max([len(s) + 2 for r in rows for s in _wrap_labels(r.labels)] + [6])
    widths = [max([len(h)] + [len(r.cells[i]) for r in rows if r.cells])
              for i, h in enumerate(HEADERS)]

    def row(label: str, cells: Sequence[str]) -> str:
        nums = " ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        return f"{label.ljust(label_w)} {nums}".rstrip()

    out = [row("design", HEADERS), row("-" * label_w, ["-" * w for w in widths])]
    for group in groups:
        out.append(group.workload)
        for line in group.lines:
            names = _wrap_labels(line.labels)
            first = "  " + names[0]
            out.append(row(first, line.cells) if line.cells
                       else f"{first.ljust(label_w)} {line.note}")
            out.extend("  " + name for name in names[1:])
    return "\n".join(out)


def _tabular(groups: Sequence[Group], tablefmt: str) -> str:
    rows = []
    for group in groups:
        for i, line in enumerate(group.lines):
            cells = list(line.cells) if line.cells else [line.note, *[""] * (len(HEADERS) - 1)]
            rows.append([group.workload if i == 0 else "", ", ".join(line.labels), *cells])
    return str(tabulate(rows, headers=["workload", "design", *HEADERS], tablefmt=tablefmt,
                        disable_numparse=True))


def render_summary(groups: Sequence[Group], tablefmt: str, seeds: int) -> str:
    """The legend and the summary table; ``tablefmt`` ``simple`` is the 80-column text."""
    banded = any("[" in c for g in groups for line in g.lines for c in line.cells)
    table = _plain(groups) if tablefmt == "simple" else _tabular(groups, tablefmt)
    return legend(seeds, banded) + "\n\n" + table
