"""Sweeps: the cells of ``framework bench`` and how they run (serially or in processes).

Each cell carries its own explicit seed, so a cell's result does not depend on where or in
which order it runs: ``--jobs N`` gives the same results as ``--jobs 1``. A cell that fails
on the user's input or on a plugin's fault is reported and the other cells still run.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import attrs

from framework.config import Cell, freeze_sets, resolve_cell, resolve_sets
from framework.engine import run_cell
from framework.errors import FrameworkError, UnknownName
from framework.plugins import Registry, get_registry
from framework.watchdog import watchdog


@attrs.frozen(slots=True)
class Outcome:
    """A finished cell: its result, or the one-line error that stopped it."""

    cell: Cell
    result: dict[str, Any] | None
    error: str = ""


def dask_executor(scheduler: str | None) -> Executor:
    """A ``concurrent.futures`` executor on an existing Dask cluster (extra ``dask``).

    :raises FrameworkError: without ``--scheduler`` or without the dask extra installed.
    """
    if not scheduler:
        raise FrameworkError("--executor dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    try:
        from distributed import Client
    except ImportError:
        raise FrameworkError("--executor dask needs the dask extra: pip install "
                             "'directmap-framework[dask]'") from None
    try:
        client = Client(scheduler, timeout=30)  # type: ignore[no-untyped-call]
    except OSError as exc:
        raise FrameworkError(f"--scheduler {scheduler!r}: cannot connect: {exc}") from None
    executor: Executor = client.get_executor(pure=False)  # type: ignore[no-untyped-call]
    return executor


@contextlib.contextmanager
def progress(total: int) -> Iterator[Any]:
    """A tqdm bar on stderr when stderr is a terminal, else a silent stand-in."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="run", file=sys.stderr, disable=not sys.stderr.isatty(),
               leave=False)
    try:
        yield bar
    finally:
        bar.close()


def pick(spec: str, known: Sequence[str], kind: str, defaults: Sequence[str] | None = None,
         check: Callable[[str], None] | None = None) -> list[str]:
    """Resolve ``all`` or a comma list against ``known``; :class:`UnknownName` otherwise.

    :param check: called with a name that is not known before UnknownName is raised (the
        registry's :meth:`~framework.plugins.Registry.check_loaded`: a plugin that failed
        to import is reported with its error).
    """
    if spec == "all":
        return list(defaults if defaults is not None else known)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UnknownName(f"no {kind} named in {spec!r}: choose from {', '.join(known)}")
    for name in names:
        if name not in known:
            if check is not None:
                check(name)
            raise UnknownName(f"unknown {kind} {name!r}: choose from {', '.join(known)}")
    return names


def validate_sets(sets: dict[str, dict[str, str]], reg: Registry, machine: str) -> None:
    """Check every ``--set`` scope, key and value (:func:`framework.config.resolve_sets`)."""
    resolve_sets(reg, sets, reg.machine(machine))


def make_cells(plugins: Sequence[str], workloads: Sequence[str], machine: str, seeds: int,
               seed: int, sets: dict[str, dict[str, str]], reg: Registry | None = None
               ) -> list[Cell]:
    """Workload-major, then plugin, then seed: the order tables print in.

    With ``reg``, each cell carries its resolved :class:`framework.config.CellConfig` (one
    per plugin and workload, shared by the seeds), so every ``--set`` scope is checked here,
    before anything runs, and no worker parses it again.

    :raises UnknownName, BadParameter: for a bad name, scope, key or value (with ``reg``).
    """
    frozen = freeze_sets(sets)
    cells: list[Cell] = []
    for w in workloads:
        for p in plugins:
            config = None if reg is None else resolve_cell(Cell(p, w, machine, seed, frozen), reg)
            cells.extend(Cell(p, w, machine, seed + i, frozen, config) for i in range(seeds))
    return cells


class CellTimeout(BaseException):
    """A cell ran past ``--cell-timeout`` (a design that loops). A BaseException, so the
    engine's handlers of a design's own exceptions do not catch it."""


def _expired() -> None:
    raise CellTimeout


def _run_safe(cell: Cell, timeout: float = 0.0) -> Outcome:
    try:
        with watchdog(timeout, _expired):
            return Outcome(cell, run_cell(cell, get_registry()))
    except FrameworkError as exc:
        return Outcome(cell, None, str(exc))
    except RecursionError as exc:
        return Outcome(cell, None, f"plugin {cell.plugin} failed: {exc}")
    except CellTimeout:
        return Outcome(cell, None, f"plugin {cell.plugin} did not finish within {timeout:g} s "
                       "(--cell-timeout)")
    finally:
        # A cell's machine (kernel, zones, design) is held by reference cycles, which only
        # a full collection frees; without one here a worker carries every finished cell's
        # machine until the collector's rare full pass (peak memory grew with each cell).
        # What survives it (imports, registry, caches) is frozen: later collections, this
        # one after the next cell included, no longer walk it (each full pass walked the
        # tens of thousands of startup objects again, 0.1 s a cell).
        gc.collect()
        gc.freeze()


def run_cells(cells: Sequence[Cell], jobs: int = 1, executor: Executor | None = None,
              on_done: Callable[[Outcome], None] | None = None,
              timeout: float = 0.0) -> list[Outcome]:
    """Run ``cells``; results come back in cell order whatever finishes first.

    :param timeout: wall seconds a cell may take before it is reported as its plugin's
        failure (0: no limit).
    """
    outcomes: list[Outcome] = []
    for outcome in _iterate(cells, jobs, executor, timeout):
        outcomes.append(outcome)
        if on_done is not None:
            on_done(outcome)
    return outcomes


def _iterate(cells: Sequence[Cell], jobs: int, executor: Executor | None,
             timeout: float) -> Iterator[Outcome]:
    if executor is None and jobs <= 1:
        yield from (_run_safe(cell, timeout) for cell in cells)
        return
    own = executor is None
    pool = executor or ProcessPoolExecutor(max_workers=min(jobs, os.cpu_count() or 1),
                                           initializer=_ignore_sigint)
    try:
        futures = [pool.submit(_run_safe, cell, timeout) for cell in cells]
        for future in futures:  # cell order, so output does not depend on timing
            yield future.result()
    except KeyboardInterrupt:
        if own and isinstance(pool, ProcessPoolExecutor):
            _stop_workers(pool)
        raise
    finally:
        if own:
            pool.shutdown(cancel_futures=True)


def group_errors(outcomes: Sequence[Outcome]) -> list[str]:
    """One line per distinct error, naming the cells it stopped: ``trace (every design): ...``
    when it stopped every design of a workload, ``every run: ...`` when it stopped all."""
    plugins = list(dict.fromkeys(o.cell.plugin for o in outcomes))
    workloads = list(dict.fromkeys(o.cell.workload for o in outcomes))
    by_error: dict[str, list[Cell]] = {}
    for o in outcomes:
        if o.error:
            by_error.setdefault(o.error, []).append(o.cell)
    lines = []
    for error, cells in by_error.items():
        ps = list(dict.fromkeys(c.plugin for c in cells))
        ws = list(dict.fromkeys(c.workload for c in cells))
        if len(cells) == len(outcomes) and len(outcomes) > 1:
            where = "every run"
        elif ps == plugins and len(plugins) > 1:
            where = f"{','.join(ws)} (every design)"
        elif ws == workloads and len(workloads) > 1:
            where = f"{','.join(ps)} (every workload)"
        else:
            where = f"{','.join(ps)}/{','.join(ws)}"
        lines.append(f"{where}: {error}")
    return lines


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent: it keeps what finished and stops them, so no
    worker prints a KeyboardInterrupt traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C: cancel what has not started and end the running workers now rather than
    wait for their cells (which may take minutes); their results were not wanted."""
    # ProcessPoolExecutor has no public terminate before Python 3.14 (terminate_workers);
    # take its processes before shutdown() forgets them.
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
