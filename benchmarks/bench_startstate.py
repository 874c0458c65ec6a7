"""Build the aged start state of a preset and report time and peak memory.

Usage: ``python benchmarks/bench_startstate.py [PRESET ...]`` (default: ``default huge-4t``).
Each preset runs in a fresh interpreter: the time covers building the layout, the aged
state, every zone's totals (``zone_start``), the direct-map splits and 1000 touched blocks
of node 0's ZONE_NORMAL; the peak is the child's maximum resident set size. The issue's
target: ``huge-4t`` within 1.5x of ``default`` in time and peak memory.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from framework.kernel.e820 import build_layout
from framework.machine.presets import PRESETS
from framework.machine.startstate import AgedState, usable_blocks
t_import = time.perf_counter()
spec = {p.name: p for p in PRESETS}[sys.argv[1]]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
layout = build_layout(spec.mem_pages, spec.nodes, (512 << 20) >> 12, spec.reserved_mib << 8)
state = AgedState(layout, seed=1)
totals = [state.zone_start(z) for z in layout.zones]
splits = state.split_pmds(layout)
normal = [z for z in layout.zones if z.name == "Normal"][0]
for head in usable_blocks(layout, normal)[:1000]:
    state.block(normal, head)
elapsed = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"preset": spec.name, "build_s": elapsed, "peak_rss_kb": rss,
                  "rss_growth_kb": rss - rss0, "zones": len(layout.zones),
                  "splits": len(splits)}))
"""


def main(presets: list[str]) -> None:
    rows = []
    for name in presets:
        out = subprocess.run([sys.executable, "-c", CHILD, name], capture_output=True,
                             text=True, check=True).stdout
        rows.append(json.loads(out))
    base = rows[0]
    for row in rows:
        print(f"{row['preset']:<12} build {row['build_s'] * 1000:7.1f} ms "
              f"({row['build_s'] / base['build_s']:.2f}x)  peak RSS {row['peak_rss_kb']:>7} kB "
              f"({row['peak_rss_kb'] / base['peak_rss_kb']:.2f}x)  zones {row['zones']}  "
              f"split PMDs {row['splits']}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["default", "huge-4t"])
