"""``framework check-plugin NAME`` and ``framework new-plugin NAME``.

``check-plugin`` runs the conformance kit (:mod:`framework.testing`) on any registered
allocator, built-in or installed, and prints one line per check, PASS, FAIL or SKIP, with the
smallest failing event sequence under each failed rule; exit status 0 when nothing failed,
1 when a check failed, 2 for bad input (an unknown name, a bad ``--set``), with one line on
stderr as the rest of the CLI.

``new-plugin`` writes a plugin package that passes ``check-plugin`` as generated.

Both come in through the ``register_commands`` hook, as a third party's commands do: this
module is one of the built-in plugins (:data:`framework.plugins.DEFAULT_PLUGINS`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from framework.config import resolve_scope
from framework.errors import FrameworkError, UnknownName
from framework.hookspecs import hookimpl
from framework.kernel.faults import Faults
from framework.params import parse_set

EXIT_FAILED = 1
EXIT_INPUT = 2
DEFAULT_EXAMPLES = 100  # about 5-15 s of random sequences on a 2-core machine
DEFAULT_STEPS = 30
DEFAULT_LONG = 10  # long random sequences after the short ones
DEFAULT_LONG_STEPS = 300
DEFAULT_WORKLOAD_EVENTS = 400  # events of each built-in workload in the workload phase


def _fail(message: str) -> None:
    click.echo(f"framework: error: {message}", err=True)
    sys.exit(EXIT_INPUT)


@click.command("check-plugin")
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="SCOPE.KEY=VALUE",
              help="A parameter of the plugin (NAME.KEY=VALUE, e.g. a variant), or of the "
                   "machine, costs or faults.")
@click.option("--examples", default=DEFAULT_EXAMPLES, show_default=True,
              type=click.IntRange(1, 100000),
              help="Random sequences hypothesis tries per search (the effort).")
@click.option("--steps", default=DEFAULT_STEPS, show_default=True,
              type=click.IntRange(1, 10000), help="Events per random sequence, at most.")
@click.option("--long", "long_examples", default=DEFAULT_LONG, show_default=True,
              type=click.IntRange(0, 100000),
              help=f"Long random sequences (up to {DEFAULT_LONG_STEPS} events) after the "
                   "short ones (0: none).")
@click.option("--workload-events", default=DEFAULT_WORKLOAD_EVENTS, show_default=True,
              type=click.IntRange(0, 1000000),
              help="Events of each built-in workload driven through the design with every "
                   "check on (0: no workload phase).")
@click.option("--contract-version", "contract", default=None, type=click.IntRange(1, None),
              help="Run only the checks up to this contract version (default: all).")
@click.option("--timeout", "step_seconds", default=10.0, show_default=True,
              type=click.FloatRange(0, None),
              help="Wall-clock seconds one event may take before the plugin is reported "
                   "as hanging (0: no watchdog).")
@click.option("--save-failures", "save_dir", default=None,
              type=click.Path(file_okay=False),
              help="Write each failing sequence here as a trace CSV to replay with "
                   "'framework bench --workloads trace'.")
def check_plugin(name: str, sets: Sequence[str], examples: int, steps: int,
                 long_examples: int, workload_events: int, contract: int | None,
                 step_seconds: float, save_dir: str | None) -> None:
    """Run the conformance kit on the allocator plugin NAME; one line per check."""
    if importlib.util.find_spec("hypothesis") is None:
        _fail("check-plugin needs hypothesis: pip install 'directmap-framework[test]'")
    _hypothesis_home()
    from framework.testing.checks import CONTRACT_VERSION, FAIL, format_result, run_all

    try:
        effort = (examples, steps, long_examples, workload_events)
        config, header = _plan(name, sets, effort, step_seconds)
        if save_dir is not None:
            _check_save_dir(Path(save_dir))
    except FrameworkError as exc:
        _fail(str(exc))
    version = CONTRACT_VERSION if contract is None else min(contract, CONTRACT_VERSION)
    phases = f"{examples} examples x {steps} steps"
    if long_examples:
        phases += f" + {long_examples} x {DEFAULT_LONG_STEPS}"
    if workload_events:
        phases += f"; workloads x {workload_events} events"
    click.echo(f"{header}; contract v{version}; {phases}")
    results = run_all(config, version)
    for result in results:
        click.echo("\n".join(format_result(result)))
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    click.echo(f"{name}: {counts['PASS']} pass, {counts['FAIL']} fail, "
               f"{counts['SKIP']} skip")
    if save_dir is not None:
        try:
            for path in _save(results, Path(save_dir), name):
                click.echo(f"wrote {path}", err=True)
        except OSError as exc:
            _fail(f"--save-failures {save_dir}: cannot write {exc.filename}: "
                  f"{exc.strerror or exc}")
    if counts[FAIL]:
        sys.exit(EXIT_FAILED)


def cache_dir() -> Path:
    """Where the framework keeps files it can rebuild: ``$XDG_CACHE_HOME/framework``, else
    ``~/.cache/framework`` (the XDG base-directory default)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "framework"


def _hypothesis_home() -> None:
    """Hypothesis keeps its files (example database, constants cache) in ``./.hypothesis``
    by default; ``check-plugin`` runs wherever the user stands, so it uses the cache
    directory instead, unless the user chose one (``HYPOTHESIS_STORAGE_DIRECTORY``)."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(cache_dir() / "hypothesis")


def _plan(name: str, sets: Sequence[str], effort: tuple[int, int, int, int],
          step_seconds: float) -> tuple[Any, str]:
    """Resolve the plugin, its parameters, machine, costs and faults into a KitConfig."""
    from framework.plugins import Kind, get_registry
    from framework.testing.checks import KitConfig
    from framework.testing.factories import factory_for, small_machine
    from framework.testing.harness import Target
    from framework.testing.stateful import Effort

    reg = get_registry()
    cls = reg.allocator(name)
    parsed = parse_set(sets)
    allowed = (name, "machine", "costs", "faults")
    for scope in parsed:
        if scope not in allowed:
            raise UnknownName(f"unknown --set scope {scope!r}: check-plugin takes "
                              f"{', '.join(allowed)}")
    plugin_p, spec, costs, faults_p = (
        resolve_scope(reg, scope, parsed.get(scope, {}), small_machine()) for scope in allowed)
    faults = Faults.from_params(faults_p, 0)
    target = Target(factory_for(cls, plugin_p), spec, costs, faults, frozenset(),
                    step_seconds)
    where = reg.origin(Kind.ALLOCATOR, name)
    shown = " ".join(f"{k}={v}" for k, v in plugin_p.items())
    header = f"check-plugin {name} [{where}]" + (f" {shown}" if shown else "")
    examples, steps, long_examples, workload_events = effort
    return KitConfig(target, effort=Effort(examples, steps, long_examples=long_examples,
                                           long_steps=DEFAULT_LONG_STEPS,
                                           workload_events=workload_events)), header


def _check_save_dir(out: Path) -> None:
    """Create ``--save-failures``'s directory and a file in it now, not after the search.

    :raises FrameworkError: one line naming the directory and the system's reason.
    """
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise FrameworkError(f"--save-failures {out}: cannot write there: "
                             f"{exc.strerror or exc}") from None


def _save(results: Sequence[Any], out: Path, name: str) -> list[Path]:
    from framework.testing.stateful import TRACE_HEADER, trace_rows

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for result in results:
        if result.events:
            path = out / f"{name}-{result.name}.csv"
            path.write_text("\n".join([TRACE_HEADER, *trace_rows(result.events)]) + "\n",
                            encoding="utf-8")
            written.append(path)
    return written


@click.command("new-plugin")
@click.argument("name")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Directory to create (default: ./framework-NAME).")
@click.option("--covers", default="secretmem", show_default=True,
              help="Comma list of the sites the design serves (see 'framework list').")
@click.option("--variants", is_flag=True,
              help="Declare a 'variant' parameter (posted/fixed) and test both.")
def new_plugin(name: str, out_dir: str | None, covers: str, variants: bool) -> None:
    """Write a ready-to-install plugin package for an allocator called NAME."""
    from framework.plugins import get_registry
    from framework.testing.scaffold import parse_covers, write_package

    try:
        reg = get_registry()
        taken = [*reg.allocators, *reg.workloads]
        out = Path(out_dir) if out_dir is not None else Path(f"framework-{name}")
        files = write_package(name, out, parse_covers(covers), variants, taken)
    except FrameworkError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{exc.filename}: cannot write: {exc.strerror}")
    for path in files:
        click.echo(str(path))
    click.echo(f"next: pip install -e '{out}[test]' && framework check-plugin {name}",
               err=True)


@hookimpl
def register_commands(register: Callable[[click.Command], None]) -> None:
    """``check-plugin`` and ``new-plugin``."""
    register(check_plugin)
    register(new_plugin)
