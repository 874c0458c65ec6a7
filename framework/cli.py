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
from framework.params import parse_set
from framework.plugins import Registry, get_registry
from framework.report import FORMATS, metric_names, render, results_json
from framework.sweep import Outcome, make_cells, pick, run_cells, validate_sets

EXIT_INPUT = 2


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
def bench(plugins_spec: str, workloads_spec: str, machine: str, seeds: int, seed: int,
          sets: Sequence[str], fmt: str, metrics_spec: str, show_stats: bool,
          output: str | None, jobs: int) -> None:
    """Run every chosen plugin on every chosen workload and print the comparison."""
    try:
        reg = get_registry()
        cells, metrics = _plan(reg, plugins_spec, workloads_spec, machine, seeds, seed, sets,
                               metrics_spec)
    except FrameworkError as exc:
        _fail(str(exc))
    outcomes = run_cells(cells, jobs, on_done=_writer(output))
    _finish(outcomes, fmt, metrics, show_stats)


def _plan(reg: Registry, plugins_spec: str, workloads_spec: str, machine: str, seeds: int,
          seed: int, sets: Sequence[str], metrics_spec: str) -> tuple[list[Any], list[str]]:
    plugins = pick(plugins_spec, list(reg.allocators), "plugin")
    suite = [n for n, w in reg.workloads.items() if w.default]
    workloads = pick(workloads_spec, list(reg.workloads), "workload", suite)
    reg.machine(machine)
    parsed = parse_set(sets)
    validate_sets(parsed, reg, machine)
    metrics = metric_names(metrics_spec)
    for name in metrics:
        if name not in METRIC_BY_NAME:
            raise FrameworkError(f"unknown metric {name!r}: choose from "
                                 f"{', '.join(METRIC_BY_NAME)}")
    return make_cells(plugins, workloads, machine, seeds, seed, parsed), metrics


def _writer(output: str | None) -> Any:
    done: list[dict[str, Any]] = []

    def on_done(outcome: Outcome) -> None:
        if outcome.error:
            click.echo(f"framework: error: {outcome.cell.plugin}/{outcome.cell.workload}: "
                       f"{outcome.error}", err=True)
        if outcome.result is not None and output:
            done.append(outcome.result)
            tmp = f"{output}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(results_json(done))
            os.replace(tmp, output)
    return on_done


def _finish(outcomes: list[Outcome], fmt: str, metrics: list[str], show_stats: bool) -> None:
    runs = [o.result for o in outcomes if o.result is not None]
    if runs:
        click.echo(render(runs, fmt, metrics, show_stats), nl=False)
    if any(o.error for o in outcomes):
        sys.exit(EXIT_INPUT)


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
    except click.exceptions.Abort:
        click.echo("framework: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        _fail(exc.format_message().replace("\n", " "))
    except FrameworkError as exc:
        _fail(str(exc))
