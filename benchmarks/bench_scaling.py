"""Per-event cost against history (1x, 10x, 100x the events) and machine size.

Usage::

    python benchmarks/bench_scaling.py                          # both tables, baseline
    python benchmarks/bench_scaling.py --only history --scales 1,10
    python benchmarks/bench_scaling.py --only machine --plugins baseline,vmap-area
    python benchmarks/bench_scaling.py --workloads bpf,guest --repeat 3

Each case runs one cell in a fresh interpreter and times three parts apart: ``prepare()``
(boot, start state, design), the event loop of ``Runner.run()`` (every event with its
checks and TLB samples), and ``Runner.finish()`` (the end-of-run checks, metrics and TLB
evaluation, done once). The per-event cost is the event loop's time over its events, in
microseconds; the once-per-run parts are shown beside it.

- **History**: the default machine, each default workload with its count parameter (the
  one that sets how many things happen over the run; concurrency stays as it is, so live
  state does not grow) multiplied by each ``--scales`` factor. A cost that follows the
  work gives the same microseconds per event at 1x, 10x and 100x; one that grows with
  what the run has seen (a list scanned per event) shows up as a rising column.
- **Machine**: each default workload at ``--machine-scale`` on ``default`` (64 GiB, one
  node) and ``huge-4t`` (4 TiB, four nodes); the ratio of their microseconds per event is
  the figure to hold within 1.5. Events differ a little between the two (the workloads
  place requests by node), so the ratio is per event, not per run.

Time is read here, outside the model: the child's CPU time (``time.process_time``), which
a busy shared machine inflates far less than wall-clock time (a process waiting for a core
is not charged). Each case is the best of ``--repeat`` runs, each in its own process.
``--measure bytecodes`` counts the event loop's Python bytecodes instead
(benchmarks/bytecodes_per_event.py): exact and independent of the machine's load, blind to
work done inside C (a ``set.update`` of 512 pages is one call), about 50 times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

CHILD = r"""
import json, os, sys, time
os.environ["FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"] = "1"
from framework.engine import Cell, Runner, freeze_sets, prepare
from framework.plugins import get_registry
plugin, workload, machine, sets = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
reg = get_registry()
cell = Cell(plugin, workload, machine, 1, freeze_sets(sets))
t0 = time.process_time()
setup = prepare(cell, reg)
t1 = time.process_time()
ends = []
def timed(events):  # the time the event loop ends: its events are used up, finish() starts
    yield from events
    ends.append(time.process_time())
setup.events = timed(setup.events)  # (the compiled Runner's methods cannot be replaced)
runner = Runner(setup)
result = runner.run()
t2 = time.process_time()
print(json.dumps({"events": result["metrics"]["events"], "prepare": t1 - t0,
                  "run": ends[0] - t1, "finish": t2 - ends[0]}))
"""

# --measure bytecodes: Python bytecodes of the event loop (benchmarks/bytecodes_per_event.py),
# reported as "run" so the tables read the same; about 50 times slower, but exact
CHILD_BYTECODES = r"""
import json, sys
sys.path.insert(0, sys.argv[5])
from bytecodes_per_event import count
plugin, workload, machine, sets = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
events, counts = count(plugin, workload, machine, sets)
print(json.dumps({"events": events, "prepare": 0.0, "finish": 0.0,
                  "run": sum(counts.values()) / 1e6}))
"""

#: The default suite's workloads and the parameter that sets how much happens over a run.
COUNT_PARAM: dict[str, str] = {
    "secretmem": "processes",
    "modules": "reloads",
    "bpf": "apps",
    "trampolines": "attaches",
    "pks-pagetables": "processes",
    "guest": "vms",
    "dma-nokmap": "bursts",
}


def workload_sets(workload: str, scale: int) -> dict[str, dict[str, str]]:
    """``--set`` values multiplying the workload's count parameter by ``scale``, on a fresh
    machine (an aged one adds reclaim and compaction, which follow the machine's state)."""
    fresh = {"machine": {"state": "fresh"}}
    if scale == 1:
        return fresh
    from framework.plugins import get_registry

    param = COUNT_PARAM[workload]
    default = next(p.default for p in get_registry().workload(workload).params
                   if p.name == param)
    return {**fresh, workload: {param: str(int(default) * scale)}}


MEASURE = {"cpu": CHILD, "bytecodes": CHILD_BYTECODES}
UNIT = {"cpu": "us/ev", "bytecodes": "bc/ev"}  # bytecodes: ev/s columns are not rates


def run_case(plugin: str, workload: str, machine: str, scale: int,
             repeat: int, measure: str = "cpu") -> dict[str, Any]:
    """Best of ``repeat`` fresh-process runs of one cell: events, prepare and run seconds
    (with ``measure="bytecodes"``, "run" is millions of bytecodes and "us" bytecodes per
    event)."""
    sets = json.dumps(workload_sets(workload, scale))
    best: dict[str, Any] | None = None
    here = os.path.dirname(os.path.abspath(__file__))
    for _ in range(1 if measure == "bytecodes" else repeat):
        out = subprocess.run([sys.executable, "-c", MEASURE[measure], plugin, workload,
                              machine, sets, here],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or r["run"] < best["run"]:
            best = r
    assert best is not None
    best["us"] = best["run"] / max(1, best["events"]) * 1e6
    return best


def history(plugins: list[str], workloads: list[str], scales: list[int], repeat: int,
            measure: str) -> None:
    """Microseconds per event at each scale on the default machine, and last / first."""
    unit = UNIT[measure]
    head = " ".join(f"{f'{s}x events':>11} {unit:>6}" for s in scales)
    print(f"\nHistory (default machine)\n{'plugin':14} {'workload':15} {head} {'ratio':>6}")
    for plugin in plugins:
        for workload in workloads:
            rows = [run_case(plugin, workload, "default", s, repeat, measure) for s in scales]
            cells = " ".join(f"{r['events']:11d} {r['us']:6.2f}" for r in rows)
            print(f"{plugin:14} {workload:15} {cells} {rows[-1]['us'] / rows[0]['us']:6.2f}",
                  flush=True)


def machines(plugins: list[str], workloads: list[str], scale: int, repeat: int,
             measure: str) -> None:
    """Microseconds per event on default and huge-4t, their ratio, and the once-per-run
    parts (prepare, finish: default / huge-4t seconds)."""
    unit = UNIT[measure]
    print(f"\nMachine size ({scale}x events)\n{'plugin':14} {'workload':15} "
          f"{'default ev':>10} {'ev/s':>8} {unit:>6} {'huge ev':>9} {'ev/s':>8} "
          f"{unit:>6} {'ratio':>6} {'prepare s':>11} {'finish s':>11}")
    for plugin in plugins:
        for workload in workloads:
            d = run_case(plugin, workload, "default", scale, repeat, measure)
            h = run_case(plugin, workload, "huge-4t", scale, repeat, measure)
            print(f"{plugin:14} {workload:15} {d['events']:10d} {1e6 / d['us']:8.0f} "
                  f"{d['us']:6.2f} {h['events']:9d} {1e6 / h['us']:8.0f} {h['us']:6.2f} "
                  f"{h['us'] / d['us']:6.2f} {d['prepare']:5.2f}/{h['prepare']:5.2f} "
                  f"{d['finish']:5.2f}/{h['finish']:5.2f}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", default="baseline")
    parser.add_argument("--workloads", default=",".join(COUNT_PARAM))
    parser.add_argument("--scales", default="1,10,100",
                        help="history: multiples of each workload's count parameter")
    parser.add_argument("--machine-scale", type=int, default=1,
                        help="machine table: the multiple of the count parameter to run")
    parser.add_argument("--only", choices=("history", "machine"), default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (best is shown)")
    parser.add_argument("--measure", choices=tuple(MEASURE), default="cpu",
                        help="cpu: CPU time (us/ev columns in microseconds); bytecodes: "
                        "Python bytecodes per event instead (exact, about 50 times slower)")
    args = parser.parse_args()
    plugins = args.plugins.split(",")
    workloads = args.workloads.split(",")
    unknown = sorted(set(workloads) - set(COUNT_PARAM))
    if unknown:
        parser.error(f"unknown workload {unknown[0]!r}: expected some of "
                     f"{', '.join(COUNT_PARAM)}")
    repeat = max(1, args.repeat)
    if args.only in (None, "history"):
        history(plugins, workloads, [int(s) for s in args.scales.split(",")], repeat,
                args.measure)
    if args.only in (None, "machine"):
        machines(plugins, workloads, args.machine_scale, repeat, args.measure)


if __name__ == "__main__":
    main()
