"""Events per second and peak RSS of one cell, each case in its own process.

Usage::

    python benchmarks/bench_engine.py                      # the issue's cases
    python benchmarks/bench_engine.py --plugins baseline,gfp-unmapped --workloads secretmem
    python benchmarks/bench_engine.py --workloads secretmem --machines default --alternate 5

Each case runs ``framework.engine.run_cell`` ``--repeat`` times (default 3) in a fresh
interpreter (so peak RSS is the case's own) and prints events, the best time, events/s for
the best and the median run, and peak RSS in MiB. A small VM's speed drifts between runs;
best-of-N is the usual way to read through that (hyperfine shows min and mean). Wall-clock
time is measured here, outside the model; the model itself never reads a clock.
``--alternate N`` compares the installed core (compiled, when it was built so) with its
pure-Python twin (``FRAMEWORK_PURE_PYTHON=1``), one process of each in turn, each counting
the best of its ``--repeat`` runs (``--repeat 1``: the first run alone, start-up costs
included, as the figures before this option were taken).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from typing import Any

CHILD = r"""
import json, os, resource, sys, time
os.environ["FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"] = "1"
from framework.engine import Cell, freeze_sets, run_cell
from framework.plugins import get_registry
plugin, workload, machine, sets = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
repeat = int(sys.argv[5])
reg = get_registry()
cell = Cell(plugin, workload, machine, 1, freeze_sets(sets))
seconds = []
for _ in range(repeat):  # each run prepares its own kernel: the same cell, the same result
    start = time.perf_counter()
    result = run_cell(cell, reg)
    seconds.append(time.perf_counter() - start)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from framework._purepython import core_kind
print(json.dumps({"events": result["metrics"]["events"], "seconds": seconds, "rss_mib": rss,
                  "core": core_kind()}))
"""
# Sized so each case runs a few seconds: enough events for a stable rate.
SIZES: dict[str, dict[str, dict[str, str]]] = {
    "secretmem": {"secretmem": {"processes": "2000", "concurrent": "64"}},
    "modules": {"modules": {"profile": "all", "reloads": "2000"}},
    "bpf": {"bpf": {}},
}


STATE = ["fresh"]  # machine.state of every case (--state); the figures in docs/ are fresh


def run_case(plugin: str, workload: str, machine: str, repeat: int,
             pure: bool = False) -> dict[str, Any]:
    """One case in a fresh interpreter; ``pure`` sets FRAMEWORK_PURE_PYTHON=1 for it."""
    sets = {**SIZES.get(workload, {}), "machine": {"state": STATE[0]}}
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "FRAMEWORK_PURE_PYTHON": "1" if pure else "0"}
    out = subprocess.run([sys.executable, "-c", CHILD, plugin, workload, machine,
                          json.dumps(sets), str(repeat)], capture_output=True, text=True,
                         check=True, env=env)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def alternate(plugin: str, workload: str, machine: str, pairs: int, repeat: int) -> None:
    """``--alternate N``: N processes as installed and N with FRAMEWORK_PURE_PYTHON=1, taken
    in turn (the VM's drift hits both alike); events/s of each, and the median of the ratios.

    Each process runs the cell ``repeat`` times and counts its best run: the first run of a
    process also pays one-time costs (the interpreter specialising the plain-Python parts,
    first calls into numpy), 0.1 to 0.2 s in either core here, which a ``framework bench`` worker
    pays once for all its cells."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    kinds = {}
    for _ in range(pairs):
        for pure in (False, True):
            r = run_case(plugin, workload, machine, repeat, pure)
            rates[pure].append(r["events"] / min(r["seconds"]))
            kinds[pure] = r["core"]
    ratios = [a / b for a, b in zip(rates[False], rates[True], strict=True)]
    print(f"{plugin} {workload} {machine}: {kinds[False]} "
          f"{min(rates[False]):.0f}-{max(rates[False]):.0f} events/s, {kinds[True]} "
          f"{min(rates[True]):.0f}-{max(rates[True]):.0f} events/s, ratio median "
          f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", default="baseline")
    parser.add_argument("--workloads", default="secretmem,modules")
    parser.add_argument("--machines", default="default,huge-4t")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per case in one process (best and median are shown)")
    parser.add_argument("--alternate", type=int, default=0, metavar="N",
                        help="N runs as installed and N pure-Python runs in turn, per case")
    parser.add_argument("--state", choices=("fresh", "aged"), default="fresh",
                        help="machine.state of every case (default fresh)")
    args = parser.parse_args()
    STATE[0] = args.state
    if args.alternate:
        for case in itertools.product(args.plugins.split(","), args.workloads.split(","),
                                      args.machines.split(",")):
            alternate(*case, args.alternate, max(1, args.repeat))
        return
    print(f"{'plugin':14} {'workload':10} {'machine':10} {'events':>9} {'best s':>7} "
          f"{'events/s best':>14} {'median':>10} {'peak RSS MiB':>13}")
    for workload in args.workloads.split(","):
        for machine in args.machines.split(","):
            for plugin in args.plugins.split(","):
                r = run_case(plugin, workload, machine, max(1, args.repeat))
                best, median = min(r["seconds"]), statistics.median(r["seconds"])
                print(f"{plugin:14} {workload:10} {machine:10} {r['events']:9d} "
                      f"{best:7.2f} {r['events'] / best:14.0f} {r['events'] / median:10.0f} "
                      f"{r['rss_mib']:13.1f}")


if __name__ == "__main__":
    main()
