"""Wall time of a 96-cell sweep with --jobs 1 and --jobs 2, and the TLB model's share of a run.

Usage::

    python benchmarks/bench_sweep.py

The sweep is every built-in plugin on secretmem and modules with 8 seeds (96 cells) on the
default machine. ``--jobs 1`` and ``--jobs 2`` runs alternate (``--pairs``, default 3), so a
drift in the VM's speed hits both sides of a pair alike; it prints each pair's wall times and
ratio and the median ratio (the target is <= 0.6), then the time of the TLB metrics call
against the whole run for a few cells (the target is < 10%).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

SWEEP = ["bench", "--plugins", "all", "--workloads", "secretmem,modules", "--format", "json"]


def framework_exe() -> str:
    return os.path.join(os.path.dirname(sys.executable), "framework")


def wall(jobs: int, seeds: int) -> float:
    start = time.perf_counter()
    subprocess.run([framework_exe(), *SWEEP, "--seeds", str(seeds), "--jobs", str(jobs)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def tlb_share() -> None:
    os.environ["FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    from framework.engine import Cell, Runner, freeze_sets, prepare
    from framework.plugins import get_registry
    from framework.tlb.sampler import tlb_metrics

    reg = get_registry()
    for plugin, workload, machine in (("baseline", "secretmem", "default"),
                                      ("vmap-area", "modules", "default"),
                                      ("baseline", "secretmem", "huge-4t")):
        setup = prepare(Cell(plugin, workload, machine, 1,
                             freeze_sets({"machine": {"state": "fresh"}})), reg)
        runner = Runner(setup)
        start = time.process_time()
        runner.run()
        total = time.process_time() - start
        start = time.process_time()
        for _ in range(5):
            tlb_metrics(runner.tlb_sampler, setup.kernel.spec, setup.kernel.costs,
                        setup.params["tlb"], setup.cell.seed)
        one = (time.process_time() - start) / 5
        print(f"{plugin:10} {workload:10} {machine:8} run {total:6.3f} s CPU, TLB model "
              f"{one * 1000:6.2f} ms = {100 * one / total:5.2f}% of the run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3,
                        help="interleaved (--jobs 1, --jobs 2) pairs; the result is the median")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per cell (8: 96 cells)")
    args = parser.parse_args()
    ratios = []
    for _ in range(max(1, args.pairs)):  # interleaved, so both sides see the same VM speed
        one, two = wall(1, args.seeds), wall(2, args.seeds)
        ratios.append(two / one)
        print(f"sweep of {12 * args.seeds} cells: --jobs 1 {one:6.2f} s, --jobs 2 {two:6.2f} s, "
              f"ratio {two / one:.2f}")
    print(f"median ratio {statistics.median(ratios):.2f} over {len(ratios)} pairs")
    tlb_share()


if __name__ == "__main__":
    main()
