"""PNG plots of a results file (optional extra ``plot``: matplotlib).

- ``metric-<workload>-<metric>.png``: one bar per plugin (mean over seeds, CI as error bar).
- ``directmap-<workload>-<plugin>.png``: DirectMap4k/2M/1G over the run from ``sample``
  events (only for runs that emitted samples).
- ``map-<workload>-<plugin>.png``: the direct map at the end of the run, one cell per 2 MiB
  region coloured by how it is mapped (1 GiB, 2 MiB, 4 KiB, 4 KiB partly not present, not
  present): the picture a reviewer would rather look at than read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from framework.errors import FrameworkError
from framework.kernel.directmap import MAP_STATES
from framework.report import DEFAULT_METRICS
from framework.stats import summarize

MAP_COLOURS: tuple[str, ...] = ("#1b7837", "#a6dba0", "#f4a582", "#b2182b", "#404040")
PLOT_METRICS: tuple[str, ...] = tuple(m for m in DEFAULT_METRICS if m != "violations")


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise FrameworkError("plots need the plot extra: pip install 'framework[plot]'") from None
    return plt


def write_plots(runs: Sequence[dict[str, Any]], out_dir: str) -> list[str]:
    """Write every plot for ``runs`` into ``out_dir``; return the paths written."""
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    for workload in dict.fromkeys(r["workload"] for r in runs):
        mine = [r for r in runs if r["workload"] == workload]
        for metric in PLOT_METRICS:
            written.append(_metric_plot(plt, mine, workload, metric, out_dir))
        for run in _first_seed(mine):
            if run.get("series"):
                written.append(_series_plot(plt, run, out_dir))
            if run.get("directmap_map"):
                written.append(_map_plot(plt, run, out_dir))
    return written


def _first_seed(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for run in runs:
        seen.setdefault(run["plugin"], run)
    return list(seen.values())


def _save(plt: Any, fig: Any, out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, name.replace("/", "_"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _metric_plot(plt: Any, runs: Sequence[dict[str, Any]], workload: str, metric: str,
                 out_dir: str) -> str:
    plugins = list(dict.fromkeys(r["plugin"] for r in runs))
    sums = [summarize([float(r["metrics"].get(metric, 0)) for r in runs if r["plugin"] == p])
            for p in plugins]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(plugins) + 2), 3.2))
    ax.bar(plugins, [s.mean for s in sums], yerr=[s.ci for s in sums], color="#4393c3",
           capsize=4)
    ax.set_title(f"{workload}: {metric}")
    ax.tick_params(axis="x", rotation=30)
    return _save(plt, fig, out_dir, f"metric-{workload}-{metric}.png")


def _series_plot(plt: Any, run: dict[str, Any], out_dir: str) -> str:
    series = run["series"]
    xs = [s["event"] for s in series]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for key in ("DirectMap4k", "DirectMap2M", "DirectMap1G"):
        ax.plot(xs, [s[key] / 1024 for s in series], label=key)
    ax.set_xlabel("event")
    ax.set_ylabel("MiB")
    ax.set_yscale("symlog")
    ax.legend()
    ax.set_title(f"{run['workload']} / {run['plugin']}: direct map over time")
    return _save(plt, fig, out_dir, f"directmap-{run['workload']}-{run['plugin']}.png")


def _map_plot(plt: Any, run: dict[str, Any], out_dir: str) -> str:
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    cells = [state for state, count in run["directmap_map"] for _ in range(count)]
    width = 512  # one row per GiB: a row is what one PUD entry maps
    rows = -(-len(cells) // width)
    cells += [len(MAP_STATES)] * (rows * width - len(cells))
    grid = [cells[i * width:(i + 1) * width] for i in range(rows)]
    cmap = ListedColormap([*MAP_COLOURS, "#ffffff"])
    fig, ax = plt.subplots(figsize=(8, min(12.0, max(2.5, 0.12 * rows + 1.5))))
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(MAP_STATES), aspect="auto",
              interpolation="nearest")
    ax.set_xlabel("2 MiB region within the GiB")
    ax.set_ylabel("GiB")
    ax.set_title(f"{run['workload']} / {run['plugin']}: direct map at the end")
    used = sorted({s for s, _ in run["directmap_map"]})
    ax.legend(handles=[Patch(color=MAP_COLOURS[s], label=MAP_STATES[s]) for s in used],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return _save(plt, fig, out_dir, f"map-{run['workload']}-{run['plugin']}.png")
