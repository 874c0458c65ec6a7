"""Machine instructions per secretmem event, compiled core against pure-Python twin (callgrind).

Usage::

    python benchmarks/instructions_per_event.py                  # baseline on secretmem
    python benchmarks/instructions_per_event.py --sizes 50,100 --plugin gfp-unmapped

Wall-clock time on a shared VM drifts; the instructions a run executes do not. Each core
(as installed, then ``FRAMEWORK_PURE_PYTHON=1``) runs one cell at two ``secretmem.processes``
sizes under ``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0`` and one openblas thread
(``OPENBLAS_NUM_THREADS=1``: rows measured before it include up to a few hundred
instructions of idle BLAS threads spinning); the difference of the
two totals over the difference of their events is the cost of one event, without imports
and set-up. Needs valgrind; takes minutes (callgrind runs code about 50 times slower).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys
os.environ["FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"] = "1"
from framework._purepython import core_kind
from framework.engine import Cell, freeze_sets, run_cell
from framework.plugins import get_registry
plugin, procs = sys.argv[1], sys.argv[2]
sets = freeze_sets({"secretmem": {"processes": procs},
                    "machine": {"state": "fresh"}})  # the engine figures are fresh-machine
result = run_cell(Cell(plugin, "secretmem", "default", 1, sets), get_registry())
print(json.dumps({"events": result["metrics"]["events"], "core": core_kind()}))
"""


def measure(plugin: str, size: str, pure: bool) -> tuple[int, int, str]:
    """(instructions, events, core) of one run under callgrind."""
    # One openblas thread: numpy's idle BLAS threads spin (blas_thread_server) for 0 to 460
    # instructions per event, differently from run to run; the model does no BLAS work.
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1",
           "FRAMEWORK_PURE_PYTHON": "1" if pure else "0"}
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                               sys.executable, "-c", CHILD, plugin, size],
                              capture_output=True, text=True, check=True, env=env)
        with open(out_file) as f:
            found = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.MULTILINE)
    assert found, "no instruction total in callgrind's output"
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(found.group(1)), int(run["events"]), str(run["core"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", default="baseline")
    parser.add_argument("--sizes", default="100,400", help="two secretmem.processes values")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("instructions_per_event.py: valgrind is not installed")
    small, large = args.sizes.split(",")
    per_event = {}
    for pure in (False, True):
        ins_a, ev_a, core = measure(args.plugin, small, pure)
        ins_b, ev_b, _ = measure(args.plugin, large, pure)
        per_event[pure] = (ins_b - ins_a) / (ev_b - ev_a)
        print(f"{core:18} {per_event[pure]:10,.0f} instructions per event "
              f"({ev_b - ev_a} events between the two sizes)")
    print(f"ratio {per_event[False] / per_event[True]:.2f}")


if __name__ == "__main__":
    main()
