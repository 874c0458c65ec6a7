"""Python bytecodes executed per event for one cell: a speed measure that does not drift.

Usage::

    python benchmarks/bytecodes_per_event.py                       # baseline on secretmem
    python benchmarks/bytecodes_per_event.py --plugin gfp-unmapped --top 15

Wall-clock figures on a small VM move by 30% between runs; the number of bytecodes the
interpreter executes for the same cell does not. This script counts them with the
interpreter's opcode tracing (``frame.f_trace_opcodes``) over the event loop only (not set-up
or the final metrics) and prints bytecodes per event, then the functions that execute most.
Use it to compare two versions of the model; use ``bench_engine.py`` for events per second.
Tracing makes the run about 50 times slower, hence the small default size. It always counts
the pure-Python core (``FRAMEWORK_PURE_PYTHON=1``): compiled modules execute no bytecodes.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from types import FrameType
from typing import Any


def count(plugin: str, workload: str, machine: str, sets: dict[str, dict[str, str]]
          ) -> tuple[int, collections.Counter[tuple[str, str]]]:
    """Run one cell's events under opcode tracing; return (events, bytecodes per function)."""
    os.environ["FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    # Compiled modules execute no bytecodes: count the pure-Python twin's (docs/performance.md,
    # "Compiled core"), whichever core the installation has.
    os.environ["FRAMEWORK_PURE_PYTHON"] = "1"
    from framework.engine import Cell, Runner, freeze_sets, prepare
    from framework.plugins import get_registry

    runner = Runner(prepare(Cell(plugin, workload, machine, 1, freeze_sets(sets)),
                            get_registry()))
    runner.finish = lambda: {}  # type: ignore[method-assign]  # the event loop only
    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[(os.path.basename(code.co_filename), code.co_name)] += 1
        return tracer

    sys.settrace(tracer)
    try:
        runner.run()
    finally:
        sys.settrace(None)
    return runner.events, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", default="baseline")
    parser.add_argument("--workload", default="secretmem")
    parser.add_argument("--machine", default="default")
    parser.add_argument("--processes", default="100", help="secretmem.processes (size)")
    parser.add_argument("--top", type=int, default=10, help="functions to list")
    args = parser.parse_args()
    sets: dict[str, dict[str, str]] = {"machine": {"state": "fresh"}}  # the figures are fresh
    if args.workload == "secretmem":
        sets["secretmem"] = {"processes": args.processes, "concurrent": "64"}
    events, counts = count(args.plugin, args.workload, args.machine, sets)
    print(f"{args.plugin} on {args.workload}, {args.machine}: {events} events, "
          f"{sum(counts.values()) / max(events, 1):.1f} bytecodes per event")
    for (filename, function), n in counts.most_common(args.top):
        print(f"{n / max(events, 1):8.1f}  {filename}:{function}")


if __name__ == "__main__":
    main()
