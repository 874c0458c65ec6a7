"""What share of a run the TLB cost model takes (target: at most 10%).

Runs every plugin on every workload of the default suite in one process, as
``framework bench --plugins all`` does, and measures with ``time.process_time`` (CPU time of
this process) the whole run and the two parts of the cost model: the samples the engine takes
during the run (:meth:`framework.tlb.sampler.TlbSampler.sample`) and the evaluation at the end
(:func:`framework.tlb.sampler.tlb_metrics`). Prints the totals, the share per workload and
overall. Best of ``--repeat`` passes, each in a fresh evaluation cache.

Usage: ``python benchmarks/bench_tlb_cost.py [--repeat 3] [--machine default]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import framework.metrics as metrics_module
from framework.engine import Cell, Runner, prepare
from framework.plugins import get_registry
from framework.tlb import mix, sampler

WORKLOADS = ("secretmem", "modules", "bpf", "trampolines", "pks-pagetables", "guest",
             "dma-nokmap")


def _timed(fn: Callable[..., Any], sink: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append(time.process_time() - start)
    return wrapper


def one_pass(machine: str) -> dict[str, tuple[float, float]]:
    """``{workload: (run seconds, cost-model seconds)}`` over every plugin."""
    reg = get_registry()
    mix._evaluate.cache_clear()
    spent: list[float] = []
    out = {}
    # framework.metrics calls the TLB evaluation by the name it imported; time it there
    with mock.patch.object(metrics_module, "tlb_metrics", _timed(sampler.tlb_metrics, spent)), \
            mock.patch.object(sampler.TlbSampler, "sample",
                              _timed(sampler.TlbSampler.sample, spent)):
        for workload in WORKLOADS:
            spent.clear()
            start = time.process_time()
            for plugin in reg.allocators:
                Runner(prepare(Cell(plugin, workload, machine, 1), reg)).run()
            out[workload] = (time.process_time() - start, sum(spent))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--machine", default="default")
    args = parser.parse_args()
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeat):
        for workload, (run, cost) in one_pass(args.machine).items():
            if workload not in best or run < best[workload][0]:
                best[workload] = (run, cost)
    print("| workload | run s (all plugins) | cost model s | share |")
    print("|---|---|---|---|")
    for workload, (run, cost) in best.items():
        print(f"| {workload} | {run:.3f} | {cost:.3f} | {100 * cost / run:.1f}% |")
    run = sum(r for r, _ in best.values())
    cost = sum(c for _, c in best.values())
    print(f"| all | {run:.3f} | {cost:.3f} | {100 * cost / run:.1f}% |")


if __name__ == "__main__":
    main()
