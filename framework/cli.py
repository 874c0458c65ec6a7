"""The ``framework`` command (DESIGN section 10).

Tables go to stdout, progress and errors to stderr. Bad input exits 2 with one line naming
the bad value and what is allowed, and results already computed are still printed/written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from framework.errors import FrameworkError
from framework.metrics import METRIC_BY_NAME
from framework.output import OutputFile
from framework.params import parse_set
from framework.plugins import Registry, get_registry
from framework.report import FORMATS, metric_names, render, results_json
from framework.results import load_results
from framework.sweep import (
    Outcome,
    dask_executor,
    make_cells,
    pick,
    progress,
    run_cells,
    validate_sets,
)

EXIT_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def _fail(message: str) -> None:
    click.echo(f"framework: error: {message}", err=True)
    sys.exit(EXIT_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Compare kernel allocator designs for memory that leaves the x86-64 direct map."""


@cli.command()
@click.option("--plugins", "plugins_spec", default="all", show_default=True,
              help="'all' or a comma list of allocator plugins.")
@click.option("--workloads", "workloads_spec", default="all", show_default=True,
              help="'all' (the default suite) or a comma list of workloads.")
@click.option("--machine", default="default", show_default=True, help="Machine preset.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 10000),
              help="Runs per cell, each with its own seed.")
@click.option("--seed", default=1, show_default=True, type=click.IntRange(0, 2**63 - 1),
              help="First seed.")
@click.option("--set", "sets", multiple=True, metavar="SCOPE.KEY=VALUE",
              help="Set a parameter of the machine, costs, faults, a workload or a plugin.")
@click.option("--format", "fmt", default="plain", show_default=True,
              type=click.Choice(FORMATS), help="Output format.")
@click.option("--metrics", "metrics_spec", default="default", show_default=True,
              help="'default', 'all' or a comma list of metrics shown in tables.")
@click.option("--stats", "show_stats", is_flag=True, help="Show each plugin's own counters.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the JSON results here, updated as each run finishes.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="Parallel processes.")
@click.option("--baseline", "reference", default=None,
              help="Reference column of the comparison (default: the first plugin).")
@click.option("--executor", default="local", show_default=True,
              type=click.Choice(["local", "dask"]),
              help="Where cells run: local processes (--jobs) or a Dask cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (tcp://host:8786) for --executor dask.")
@click.option("--cell-timeout", default=1800.0, show_default=True,
              type=click.FloatRange(0, None),
              help="Wall seconds one run may take before it is reported as its plugin's "
                   "failure (0: no limit).")
def bench(plugins_spec: str, workloads_spec: str, machine: str, seeds: int, seed: int,
          sets: Sequence[str], fmt: str, metrics_spec: str, show_stats: bool,
          output: str | None, jobs: int, reference: str | None, executor: str,
          scheduler: str | None, cell_timeout: float) -> None:
    """Run every chosen plugin on every chosen workload and print the comparison."""
    try:
        reg = get_registry()
        cells, metrics = _plan(reg, plugins_spec, workloads_spec, machine, seeds, seed, sets,
                               metrics_spec)
        if reference is not None and reference not in {c.plugin for c in cells}:
            raise FrameworkError(f"--baseline {reference!r} is not among the plugins run: "
                                 f"{', '.join(dict.fromkeys(c.plugin for c in cells))}")
        out = OutputFile(output) if output else None
        pool = dask_executor(scheduler) if executor == "dask" else None
    except FrameworkError as exc:
        _fail(str(exc))
    finished: list[Outcome] = []
    with progress(len(cells)) as bar:
        writer = _Writer(out, bar, finished)
        try:
            run_cells(cells, jobs, pool, on_done=writer, timeout=cell_timeout)
        except KeyboardInterrupt:
            _interrupted(finished, len(cells), output, fmt, metrics, show_stats, reference)
    _finish(finished, fmt, metrics, show_stats, reference, writer.failed)


def _plan(reg: Registry, plugins_spec: str, workloads_spec: str, machine: str, seeds: int,
          seed: int, sets: Sequence[str], metrics_spec: str) -> tuple[list[Any], list[str]]:
    plugins = pick(plugins_spec, list(reg.allocators), "plugin", check=reg.check_loaded)
    suite = [n for n, w in reg.workloads.items() if w.default]
    workloads = pick(workloads_spec, list(reg.workloads), "workload", suite,
                     check=reg.check_loaded)
    reg.machine(machine)
    parsed = parse_set(sets)
    validate_sets(parsed, reg, machine)
    metrics = metric_names(metrics_spec)
    for name in metrics:
        if name not in METRIC_BY_NAME:
            raise FrameworkError(f"unknown metric {name!r}: choose from "
                                 f"{', '.join(METRIC_BY_NAME)}")
    return make_cells(plugins, workloads, machine, seeds, seed, parsed), metrics


class _Writer:
    """Called as each run finishes: report its error, keep it, rewrite ``--output``.

    A write that fails (disk full) is reported once; later runs are still kept in memory
    and printed, and the command exits 2.
    """

    def __init__(self, out: OutputFile | None, bar: Any, finished: list[Outcome]) -> None:
        self.out, self.bar, self.finished = out, bar, finished
        self.failed = False

    def __call__(self, outcome: Outcome) -> None:
        self.bar.update(1)
        self.finished.append(outcome)
        if outcome.error:
            click.echo(f"framework: error: {outcome.cell.plugin}/{outcome.cell.workload}: "
                       f"{outcome.error}", err=True)
        if outcome.result is None or self.out is None or self.failed:
            return
        try:
            self.out.write(results_json([o.result for o in self.finished
                                         if o.result is not None]))
        except FrameworkError as exc:
            self.failed = True
            click.echo(f"framework: error: {exc}", err=True)


def _interrupted(finished: list[Outcome], total: int, output: str | None, fmt: str,
                 metrics: list[str], show_stats: bool, reference: str | None) -> None:
    """Ctrl-C: print what finished, say where it is kept, exit 130 (128 + SIGINT)."""
    runs = [o.result for o in finished if o.result is not None]
    if runs:
        click.echo(render(runs, fmt, metrics, show_stats, reference), nl=False)
    kept = f"; kept in {output}" if output and runs else ""
    click.echo(f"framework: interrupted: {len(runs)} of {total} runs finished{kept}",
               err=True)
    sys.exit(EXIT_INTERRUPTED)


def _finish(outcomes: list[Outcome], fmt: str, metrics: list[str], show_stats: bool,
            reference: str | None, write_failed: bool = False) -> None:
    runs = [o.result for o in outcomes if o.result is not None]
    if runs:
        click.echo(render(runs, fmt, metrics, show_stats, reference), nl=False)
    if write_failed or any(o.error for o in outcomes):
        sys.exit(EXIT_INPUT)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default="plain", show_default=True,
              type=click.Choice(FORMATS), help="Output format.")
@click.option("--metrics", "metrics_spec", default="default", show_default=True,
              help="'default', 'all' or a comma list of metrics.")
def compare(files: Sequence[str], fmt: str, metrics_spec: str) -> None:
    """Compare saved result files (e.g. two parameter settings); the first is the reference.

    Columns are FILE:plugin; runs match by workload.
    """
    if len(files) < 2:
        _fail(f"compare needs at least two result files, got {len(files)}")
    try:
        runs = []
        for path in files:
            label = os.path.basename(path)
            runs.extend({**r, "_column": f"{label}:{r['plugin']}"} for r in load_results(path))
        metrics = metric_names(metrics_spec)
        for name in metrics:
            if name not in METRIC_BY_NAME:
                raise FrameworkError(f"unknown metric {name!r}: choose from "
                                     f"{', '.join(METRIC_BY_NAME)}")
    except FrameworkError as exc:
        _fail(str(exc))
    click.echo(render(runs, fmt, metrics, column=lambda r: r["_column"]), nl=False)


@cli.command()
@click.argument("results", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the PNG files.")
def plot(results: str, out_dir: str) -> None:
    """Write PNG plots of a results file (needs the 'plot' extra: matplotlib)."""
    try:
        from framework.plot import write_plots

        written = write_plots(load_results(results), out_dir)
    except FrameworkError as exc:
        _fail(str(exc))
    for path in written:
        click.echo(path)


@cli.command("list")
@click.option("--costs", "show_costs", is_flag=True, help="List the cost table with sources.")
def list_cmd(show_costs: bool) -> None:
    """List plugins, workloads, machines, their parameters and where each comes from."""
    from framework.listing import list_costs, list_registry

    click.echo(list_costs() if show_costs else list_registry(get_registry()), nl=False)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: click's usage errors become one line and exit 2 too."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="framework",
                 standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("framework: aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "))
    except FrameworkError as exc:
        _fail(str(exc))


from framework.plugin_commands import check_plugin, new_plugin  # noqa: E402

cli.add_command(check_plugin)
cli.add_command(new_plugin)
