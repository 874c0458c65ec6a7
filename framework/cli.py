"""The ``framework`` command (its contract: docs/contracts.md, "CLI").

Tables go to stdout, progress and errors to stderr. Bad input exits 2 with one line naming
the bad value and what is allowed, and results already computed are still printed/written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from framework._purepython import core_kind
from framework.compare import ResultFile, check_machines, describe, select
from framework.engine import VERSION
from framework.errors import FrameworkError
from framework.failon import Condition, failures, parse_condition
from framework.metrics import METRIC_BY_NAME
from framework.output import OutputFile
from framework.params import parse_set
from framework.plugins import Registry, get_registry
from framework.report import FORMATS, metric_names, render, results_json
from framework.results import load_results
from framework.sweep import (
    Outcome,
    dask_executor,
    group_errors,
    make_cells,
    pick,
    progress,
    run_cells,
)

EXIT_INPUT = 2
EXIT_FAIL_ON = 1  # a --fail-on condition holds: results are printed, CI fails
USABLE_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
    os.cpu_count() or 1)  # --jobs default: the cores this process may run on
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
FAIL_ON_HELP = ("Exit 1 when a run matches: 'violations' or METRIC OP NUMBER, OP one of "
                "> >= < <= == != (e.g. 'est_slowdown_pct>1'). Repeatable.")


def _fail(message: str) -> None:
    click.echo(f"framework: error: {message}", err=True)
    sys.exit(EXIT_INPUT)


class PluginGroup(click.Group):
    """The core commands defined here, plus the commands plugins register through the
    ``register_commands`` hook (``check-plugin``, ``new-plugin`` and any installed
    package's). Plugins are loaded only when a name is not a core command, or for
    ``--help``; a broken plugin is listed by ``framework list`` and takes nothing down."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Core and plugin command names, sorted."""
        return sorted({*self.commands, *get_registry().commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A core command, else a plugin's."""
        found = self.commands.get(cmd_name)
        return found if found is not None else get_registry().commands.get(cmd_name)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(VERSION, "--version", prog_name="framework",
                      message=f"%(prog)s %(version)s\ncore: {core_kind()}")  # which core runs
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
@click.option("--full", is_flag=True,
              help="After the summary, print every metric per workload (text formats).")
@click.option("--fail-on", "fail_on", multiple=True, metavar="CONDITION", help=FAIL_ON_HELP)
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the JSON results here, updated as each run finishes.")
@click.option("--jobs", default=USABLE_CPUS, show_default="the usable cores",
              type=click.IntRange(1, 1024),
              help="Parallel processes (results are the same for any number).")
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
          sets: Sequence[str], fmt: str, metrics_spec: str, show_stats: bool, full: bool,
          fail_on: Sequence[str], output: str | None, jobs: int, reference: str | None,
          executor: str, scheduler: str | None, cell_timeout: float) -> None:
    """Run every chosen plugin on every chosen workload and print the comparison."""
    try:
        reg = get_registry()
        cells, metrics = _plan(reg, plugins_spec, workloads_spec, machine, seeds, seed, sets,
                               metrics_spec)
        if reference is not None and reference not in {c.plugin for c in cells}:
            raise FrameworkError(f"--baseline {reference!r} is not among the plugins run: "
                                 f"{', '.join(dict.fromkeys(c.plugin for c in cells))}")
        conditions = _conditions(fail_on)
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
    if out is not None and not writer.failed:
        writer.write_final(metrics, reference)
    for line in group_errors(finished):  # an error that stopped many cells: said once
        click.echo(f"framework: error: {line}", err=True)
    _finish(finished, fmt, metrics, show_stats, reference, full or metrics_spec != "default")
    _check_fail_on(conditions, [o.result for o in finished if o.result is not None],
                   lambda r: f"{r['plugin']}/{r['workload']}",
                   writer.failed or any(o.error for o in finished))


def _conditions(specs: Sequence[str]) -> list[Condition]:
    return [parse_condition(spec, list(METRIC_BY_NAME)) for spec in specs]


def _check_fail_on(conditions: Sequence[Condition], runs: Sequence[dict[str, Any]],
                   label: Any, failed_cells: bool = False) -> None:
    """Say on stderr which ``--fail-on`` conditions hold; exit 2 if a cell failed (bad
    input outranks a threshold), else 1 if a condition holds."""
    lines = failures(conditions, runs, label)
    for line in lines:
        click.echo(f"framework: {line}", err=True)
    if failed_cells:
        sys.exit(EXIT_INPUT)
    if lines:
        sys.exit(EXIT_FAIL_ON)


def _plan(reg: Registry, plugins_spec: str, workloads_spec: str, machine: str, seeds: int,
          seed: int, sets: Sequence[str], metrics_spec: str) -> tuple[list[Any], list[str]]:
    plugins = pick(plugins_spec, list(reg.allocators), "plugin", check=reg.check_loaded)
    suite = [n for n, w in reg.workloads.items() if w.default]
    workloads = pick(workloads_spec, list(reg.workloads), "workload", suite,
                     check=reg.check_loaded)
    cells = make_cells(plugins, workloads, machine, seeds, seed, parse_set(sets), reg)
    metrics = metric_names(metrics_spec)
    for name in metrics:
        if name not in METRIC_BY_NAME:
            raise FrameworkError(f"unknown metric {name!r}: choose from "
                                 f"{', '.join(METRIC_BY_NAME)}")
    return cells, metrics


class _Writer:
    """Called as each run finishes: keep it, rewrite ``--output`` (errors are reported
    once, after the run: :func:`framework.sweep.group_errors`).

    A write that fails (disk full) is reported once; later runs are still kept in memory
    and printed, and the command exits 2.
    """

    def __init__(self, out: OutputFile | None, bar: Any, finished: list[Outcome]) -> None:
        self.out, self.bar, self.finished = out, bar, finished
        self.failed = False

    def __call__(self, outcome: Outcome) -> None:
        self.bar.update(1)
        self.finished.append(outcome)
        if outcome.result is None or self.out is None or self.failed:
            return
        try:
            self.out.write(results_json([o.result for o in self.finished
                                         if o.result is not None]))
        except FrameworkError as exc:
            self.failed = True
            click.echo(f"framework: error: {exc}", err=True)

    def write_final(self, metrics: list[str], reference: str | None) -> None:
        """The finished file: the runs and the ``comparison`` of the tables, the same text
        ``--format json`` prints."""
        if self.out is None:
            return
        runs = [o.result for o in self.finished if o.result is not None]
        try:
            self.out.write(render(runs, "json", metrics, reference=reference))
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


def _covers() -> dict[str, frozenset[str]]:
    """The sites each registered design's class serves (for "does not serve" in tables)."""
    return {name: cls.covers for name, cls in get_registry().allocators.items()}


def _finish(outcomes: list[Outcome], fmt: str, metrics: list[str], show_stats: bool,
            reference: str | None, full: bool) -> None:
    runs = [o.result for o in outcomes if o.result is not None]
    if runs:
        click.echo(render(runs, fmt, metrics, show_stats, reference, full=full,
                          covers=_covers()), nl=False)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", default="plain", show_default=True,
              type=click.Choice(FORMATS), help="Output format.")
@click.option("--metrics", "metrics_spec", default="default", show_default=True,
              help="'default', 'all' or a comma list of metrics.")
@click.option("--full", is_flag=True,
              help="After the summary, print every metric per workload (text formats).")
@click.option("--fail-on", "fail_on", multiple=True, metavar="CONDITION", help=FAIL_ON_HELP)
@click.option("--plugins", "plugins_spec", default="all", show_default=True,
              help="'all' or a comma list of the plugins to compare.")
@click.option("--workloads", "workloads_spec", default="all", show_default=True,
              help="'all' or a comma list of the workloads to compare.")
@click.option("--allow-different-machines", is_flag=True,
              help="Compare files run on different machines (presets or machine.* values).")
def compare(files: Sequence[str], fmt: str, metrics_spec: str, full: bool,
            fail_on: Sequence[str], plugins_spec: str, workloads_spec: str,
            allow_different_machines: bool) -> None:
    """Compare saved result files (e.g. two parameter settings); the first is the reference.

    Columns are FILE:plugin; runs match by workload. What differs between the files
    (machine, parameters, seeds, versions) is named first; files run on different machines
    are refused unless --allow-different-machines.
    """
    if len(files) < 2:
        _fail(f"compare needs at least two result files, got {len(files)}")
    try:
        loaded = select(_load_files(files), plugins_spec, workloads_spec)
        if not allow_different_machines:
            check_machines(loaded)
        metrics = metric_names(metrics_spec)
        for name in metrics:
            if name not in METRIC_BY_NAME:
                raise FrameworkError(f"unknown metric {name!r}: choose from "
                                     f"{', '.join(METRIC_BY_NAME)}")
        conditions = _conditions(fail_on)
    except FrameworkError as exc:
        _fail(str(exc))
    runs = [{**r, "_column": f"{f.label}:{r['plugin']}"} for f in loaded for r in f.runs]
    text = fmt not in ("csv", "json")
    click.echo(describe(loaded) + ("\n" if text else ""), err=not text)
    click.echo(render(runs, fmt, metrics, column=lambda r: r["_column"],
                      full=full or metrics_spec != "default", covers=_covers()), nl=False)
    _check_fail_on(conditions, runs, lambda r: str(r["_column"]))


def _load_files(paths: Sequence[str]) -> list[ResultFile]:
    """Each file labelled by its base name (its path when two base names are the same)."""
    names = [os.path.basename(p) for p in paths]
    return [ResultFile(name if names.count(name) == 1 else path, tuple(load_results(path)))
            for name, path in zip(names, paths, strict=True)]


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


@cli.command()
def review() -> None:
    """Print the thread's questions answered with numbers (markdown; docs/thread-answers.md)."""
    from framework.review import review as make_review

    click.echo(make_review(), nl=False)


@cli.command("list")
@click.option("--costs", "show_costs", is_flag=True, help="List the cost table with sources.")
@click.option("--metrics", "show_metrics", is_flag=True,
              help="List every metric: unit, kind, definition and kernel counterpart.")
def list_cmd(show_costs: bool, show_metrics: bool) -> None:
    """List plugins, workloads, machines, their parameters and where each comes from."""
    from framework.listing import list_costs, list_metrics, list_registry

    if show_metrics:
        click.echo(list_metrics(), nl=False)
    if show_costs:
        click.echo(list_costs(), nl=False)
    if not (show_costs or show_metrics):
        click.echo(list_registry(get_registry()), nl=False)


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

