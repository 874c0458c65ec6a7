"""Summary figures of a results file (optional extra ``plot``: matplotlib).

A handful of figures a reviewer attaches to a reply, not one per metric:

- ``splits.png``: direct-map splits (2 MiB and 1 GiB mappings split) per design and workload;
- ``slowdown.png``: the estimated kernel-time slowdown per design and workload (with its band
  when the runs carry ``est_slowdown_pct_low``/``_high``);
- ``directmap-<workload>.png``: DirectMap4k over the run, a line per design (only for runs
  that emitted ``sample`` events);
- ``map-<workload>.png``: the direct map at the end, a panel per design, zoomed to the GiBs
  (rows) and 2 MiB regions (columns) mapped with 4 KiB pages anywhere.

Bars are means over seeds with the confidence interval as error bar; a design with violations
on a workload is drawn hatched with a red edge and named in the legend. Every axis has its
unit; a value axis goes logarithmic (symlog, so 0 stays drawable) when its positive values
span more than two orders of magnitude.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from framework.errors import FrameworkError
from framework.kernel.directmap import MAP_1G, MAP_2M, MAP_STATES
from framework.stats import summarize

MAP_COLOURS: tuple[str, ...] = ("#1b7837", "#a6dba0", "#f4a582", "#b2182b", "#404040")
DESIGN_COLOURS: tuple[str, ...] = ("#4d4d4d", "#2166ac", "#4393c3", "#92c5de", "#d6604d",
                                   "#b2182b", "#762a83", "#1b7837")
SPAN_FOR_LOG = 100.0  # max/min of the positive values above which an axis goes log
PAD_REGIONS = 8  # 2 MiB regions shown either side of the changed ones


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FrameworkError("plots need the plot extra: pip install "
                             "'directmap-framework[plot]'") from None
    return plt


def write_plots(runs: Sequence[dict[str, Any]], out_dir: str) -> list[str]:
    """Write the summary figures for ``runs`` into ``out_dir``; return the paths written."""
    if not runs:
        raise FrameworkError("no runs to plot")
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    written = [_splits(plt, runs, out_dir), _slowdown(plt, runs, out_dir)]
    for workload in dict.fromkeys(r["workload"] for r in runs):
        firsts = _first_seed([r for r in runs if r["workload"] == workload])
        if any(r.get("series") for r in firsts):
            written.append(_series(plt, workload, firsts, out_dir))
        if any(r.get("directmap_map") for r in firsts):
            written.append(_map(plt, workload, firsts, out_dir))
    return written


def needs_log(values: Sequence[float]) -> bool:
    """Do the positive ``values`` span more than :data:`SPAN_FOR_LOG` times?"""
    pos = [abs(v) for v in values if v]
    return bool(pos) and max(pos) / min(pos) > SPAN_FOR_LOG


def _first_seed(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for run in runs:
        seen.setdefault(run["plugin"], run)
    return list(seen.values())


def _save(plt: Any, fig: Any, out_dir: str, name: str,
          rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> str:
    path = os.path.join(out_dir, name.replace("/", "_"))
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cells(runs: Sequence[dict[str, Any]], metric: str
           ) -> tuple[list[str], list[str], dict[tuple[str, str], tuple[float, float, bool]]]:
    """Workloads, designs, and (workload, design) -> (mean, CI, any violations)."""
    workloads = list(dict.fromkeys(r["workload"] for r in runs))
    designs = list(dict.fromkeys(r["plugin"] for r in runs))
    out = {}
    for w in workloads:
        for d in designs:
            mine = [r["metrics"] for r in runs if r["workload"] == w and r["plugin"] == d]
            if mine:
                s = summarize([float(m.get(metric, 0.0)) for m in mine])
                bad = any(float(m.get("violations", 0)) > 0 for m in mine)
                out[(w, d)] = (s.mean, s.ci, bad)
    return workloads, designs, out


def _bars(ax: Any, runs: Sequence[dict[str, Any]], metric: str, ylabel: str) -> None:
    """Grouped bars: a group per workload, a bar per design; violations hatched red."""
    workloads, designs, cells = _cells(runs, metric)
    width = 0.8 / max(1, len(designs))
    for j, d in enumerate(designs):
        xs, ys, errs, bad = [], [], [], []
        for i, w in enumerate(workloads):
            if (w, d) in cells:
                mean, ci, viol = cells[(w, d)]
                xs.append(i + (j - (len(designs) - 1) / 2) * width)
                ys.append(mean)
                errs.append(ci)
                bad.append(viol)
        colour = DESIGN_COLOURS[j % len(DESIGN_COLOURS)]
        bars = ax.bar(xs, ys, width, yerr=errs, color=colour, label=d, capsize=2)
        for bar, viol in zip(bars, bad, strict=True):
            if viol:
                bar.set_hatch("///")
                bar.set_edgecolor("red")
    ax.set_xticks(range(len(workloads)), workloads, rotation=20, ha="right")
    ax.set_xlabel("workload")
    ax.set_ylabel(ylabel)
    means = [v[0] for v in cells.values()]
    if needs_log(means):
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylabel(ylabel + " (symlog)")
    elif means and min(means) >= 0 and max(means) == 0:
        ax.set_ylim(0, 1)  # all zero: say 0, not a -0.04..0.04 axis
    ax.axhline(0, color="black", linewidth=0.5)


def _legend(ax: Any, runs: Sequence[dict[str, Any]]) -> None:
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    if any(float(r["metrics"].get("violations", 0)) > 0 for r in runs):
        handles.append(Patch(facecolor="white", edgecolor="red", hatch="///",
                             label="violations > 0"))
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _splits(plt: Any, runs: Sequence[dict[str, Any]], out_dir: str) -> str:
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    _bars(axes[0], runs, "direct_map_level2_splits", "2 MiB mappings split (count)")
    _bars(axes[1], runs, "direct_map_level3_splits", "1 GiB mappings split (count)")
    axes[0].set_xlabel("")
    axes[0].set_title("Direct-map splits per design and workload (/proc/vmstat "
                      "direct_map_level2/3_splits)")
    _legend(axes[0], runs)
    return _save(plt, fig, out_dir, "splits.png")


def _slowdown(plt: Any, runs: Sequence[dict[str, Any]], out_dir: str) -> str:
    fig, ax = plt.subplots(figsize=(10, 4))
    _bars(ax, runs, "est_slowdown_pct", "estimated slowdown (%)")
    _band(ax, runs)
    ax.set_title("Estimated kernel-time slowdown against a 1 GiB direct map")
    _legend(ax, runs)
    return _save(plt, fig, out_dir, "slowdown.png")


def _band(ax: Any, runs: Sequence[dict[str, Any]]) -> None:
    """The low..high band of the slowdown estimate, where the runs carry one."""
    if not all("est_slowdown_pct_low" in r["metrics"] for r in runs):
        return
    workloads, designs, lows = _cells(runs, "est_slowdown_pct_low")
    _, _, highs = _cells(runs, "est_slowdown_pct_high")
    width = 0.8 / max(1, len(designs))
    for j, d in enumerate(designs):
        for i, w in enumerate(workloads):
            if (w, d) in lows:
                x = i + (j - (len(designs) - 1) / 2) * width
                ax.vlines(x, lows[(w, d)][0], highs[(w, d)][0], color="black", linewidth=2,
                          label="band (low..high)" if (i, j) == (0, 0) else None)


def _series(plt: Any, workload: str, runs: Sequence[dict[str, Any]], out_dir: str) -> str:
    fig, ax = plt.subplots(figsize=(8, 4))
    values = []
    for j, run in enumerate(runs):
        series = run.get("series") or []
        ys = [s["DirectMap4k"] / 1024 for s in series]
        values.extend(ys)
        bad = float(run["metrics"].get("violations", 0)) > 0
        ax.plot([s["event"] for s in series], ys, color=DESIGN_COLOURS[j % 8],
                linestyle="--" if bad else "-",
                label=run["plugin"] + (" (violations)" if bad else ""))
    ax.set_xlabel("event index")
    ax.set_ylabel("DirectMap4k (MiB)")
    if needs_log(values):
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylabel("DirectMap4k (MiB, symlog)")
    ax.set_title(f"{workload}: direct map mapped with 4 KiB pages over the run")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(plt, fig, out_dir, f"directmap-{workload}.png")


def expand_map(runmap: Sequence[Sequence[int]]) -> list[int]:
    """The run-length ``directmap_map`` as one state per 2 MiB region."""
    return [state for state, count in runmap for _ in range(count)]


def zoom(maps: Sequence[list[int]], width: int = 512) -> tuple[list[int], int, int]:
    """GiB rows and the column range [lo, hi) holding a region mapped below 2 MiB in any map
    (padded by :data:`PAD_REGIONS`); every row and column when none is."""
    rows: set[int] = set()
    cols: list[int] = []
    for cells in maps:
        for i, state in enumerate(cells):
            if state not in (MAP_1G, MAP_2M):
                rows.add(i // width)
                cols.append(i % width)
    if not rows:
        total = max((len(c) for c in maps), default=0)
        return list(range(-(-total // width))), 0, width
    return sorted(rows), max(0, min(cols) - PAD_REGIONS), min(width, max(cols) + 1 + PAD_REGIONS)


def _map(plt: Any, workload: str, runs: Sequence[dict[str, Any]], out_dir: str) -> str:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    maps = [expand_map(r.get("directmap_map") or []) for r in runs]
    rows, lo, hi = zoom(maps)
    blank = len(MAP_STATES)
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 1.2 + 0.9 * len(runs) + 0.05 * len(rows)
                                                    * len(runs)), squeeze=False)
    cmap = ListedColormap([*MAP_COLOURS, "#ffffff"])
    for ax, run, cells in zip(axes[:, 0], runs, maps, strict=True):
        grid = [[cells[r * 512 + c] if r * 512 + c < len(cells) else blank
                 for c in range(lo, hi)] for r in rows]
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=blank, aspect="auto", interpolation="nearest",
                  extent=(lo - 0.5, hi - 0.5, len(rows) - 0.5, -0.5))
        ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize="x-small")
        ax.set_ylabel("GiB", fontsize="small")
        bad = float(run["metrics"].get("violations", 0)) > 0
        ax.set_title(run["plugin"] + ("  (violations)" if bad else ""), fontsize="small",
                     loc="left", color="red" if bad else "black")
    axes[-1, 0].set_xlabel("2 MiB region within the GiB (index 0-511)")
    used = sorted({s for cells in maps for s in cells})
    fig.legend(handles=[Patch(color=MAP_COLOURS[s], label=MAP_STATES[s]) for s in used],
               loc="lower center", ncol=len(used), fontsize="small")
    fig.suptitle(f"{workload}: direct map at the end, GiBs with 4 KiB mappings", x=0.02,
                 ha="left")
    return _save(plt, fig, out_dir, f"map-{workload}.png", rect=(0, 0.06, 1, 1))
