"""Xing Zhengjun's direct-map report, reproduced: ``machine.directmap=1g|2m|4k`` per preset.

Runs ``baseline`` on every workload of the default suite, on every preset, with the largest
direct-map page 1g (the default), 2m (``nogbpages``) and 4k (the debug setting), and prints
the mean ``est_slowdown_pct`` (with its band) per preset and setting, in markdown. The same
numbers come from, e.g.::

    framework bench --plugins baseline --machine skylake-sp --set machine.directmap=2m \\
        --metrics est_slowdown_pct,est_slowdown_pct_low,est_slowdown_pct_high

docs/validation.md ("Xing's report") shows the table and its tolerances;
tests/test_tlb_cost.py holds the direction. About 20 s on a 2-core machine.

Usage: ``python benchmarks/xing_directmap.py [--workloads a,b] [--presets a,b]``
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

from framework.engine import Cell, freeze_sets, run_cell
from framework.plugins import get_registry

SIZES = ("1g", "2m", "4k")
METRICS = ("est_slowdown_pct", "est_slowdown_pct_low", "est_slowdown_pct_high")


def directmap_table(presets: Sequence[str], workloads: Sequence[str], seed: int = 1
                    ) -> dict[str, dict[str, dict[str, float]]]:
    """``{preset: {size: {metric: mean over workloads}}}`` for ``baseline``."""
    reg = get_registry()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for preset in presets:
        out[preset] = {}
        for size in SIZES:
            sets = freeze_sets({"machine": {"directmap": size}})
            runs = [run_cell(Cell("baseline", w, preset, seed, sets), reg)["metrics"]
                    for w in workloads]
            out[preset][size] = {m: math.fsum(r[m] for r in runs) / len(runs) for m in METRICS}
    return out


def render(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """The markdown table of docs/validation.md."""
    reg = get_registry()
    lines = ["| preset | core | 1g | 2m | 4k | best |", "|---|---|---|---|---|---|"]
    for preset, row in table.items():
        cells = [f"{row[s]['est_slowdown_pct']:+.2f} [{row[s]['est_slowdown_pct_low']:+.2f}, "
                 f"{row[s]['est_slowdown_pct_high']:+.2f}]" for s in SIZES]
        best = min(SIZES, key=lambda s: row[s]["est_slowdown_pct"])
        core = reg.machine(preset).tlb
        lines.append(f"| {preset} | {core} | {' | '.join(cells)} | {best} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="default,laptop,skylake-sp,sapphire-rapids-2s,"
                        "genoa-2s,huge-4t")
    parser.add_argument("--workloads", default="secretmem,modules,bpf,trampolines,"
                        "pks-pagetables,guest,dma-nokmap")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    table = directmap_table(args.presets.split(","), args.workloads.split(","), args.seed)
    print(render(table))


if __name__ == "__main__":
    main()
