"""A small mutation run: does the test suite notice a wrong model, check or reader?

Each mutant is one line of the code changed the way a plausible bug would change it (a
ceiling off by one, a merge condition inverted, a rule's page range cut to one page, a
metric's direction flipped). The script applies one mutant at a time in place, runs the
tests that should catch it (``pytest -x``), restores the file, and prints which mutants were
caught (a test failed) and which survived. Survivors are the gaps to close: either a test is
missing, or the mutant is equivalent (changes nothing observable), which the table says.

    python scripts/mutate.py            # every mutant
    python scripts/mutate.py 3 7        # mutants 3 and 7 only
    python scripts/mutate.py --list     # the table, nothing run

It refuses to run when a file it mutates has uncommitted changes, and it always restores
the original text (even on Ctrl-C). A mutant runs real code with a real bug: its tests must
not touch anything outside their temporary directories (the ``--output`` tests use a
private device node, not ``/dev/null``) nor ask for unbounded work. See docs/testing.md.
"""

# ruff: noqa: E501  (each mutant quotes its source line verbatim, whatever its length)
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Mutant(NamedTuple):
    """One-line change: in ``path``, the unique text ``old`` becomes ``new``."""

    path: str
    old: str
    new: str
    what: str
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant("framework/kernel/consts.py", "TLB_SINGLE_PAGE_FLUSH_CEILING = 33",
           "TLB_SINGLE_PAGE_FLUSH_CEILING = 34", "flush ceiling off by one",
           ("tests/test_kernel_scenarios.py",)),
    Mutant("framework/kernel/buddy.py", "if info is None or info & 15 != order:",
           "if info is None or info & 15 > order:", "merge with a smaller free buddy",
           ("tests/test_buddy_properties.py", "tests/test_kernel_scenarios.py")),
    Mutant("framework/kernel/directmap.py", "            self.nr_4k += PTRS_PER_TABLE",
           "            self.nr_4k += PTRS_PER_TABLE - 1", "a PMD split counts 511 PTEs",
           ("tests/test_kernel_scenarios.py", "tests/test_checks.py")),
    Mutant("framework/checks.py",
           "            for p in range(pfn, pfn + (1 << order)):\n                if dm.is_present(p):",
           "            for p in range(pfn, pfn + 1):\n                if dm.is_present(p):",
           "unmapped rule checks only a block's first page", ("tests/test_mutation_gaps.py",
                                                                "tests/test_checks.py")),
    Mutant("framework/checks.py", "        if p in self.kernel.dirty:\n            self.record(\"stale_data\"",
           "        if p not in self.kernel.dirty:\n            self.record(\"stale_data\"",
           "stale_data on the clean pages instead", ("tests/test_kit_promises.py",)),
    Mutant("framework/checks.py", "            if p not in dirty:\n                self.secret.discard(p)\n            elif self._buddy_free(p):",
           "            if p not in dirty:\n                self.secret.discard(p)\n            elif not self._buddy_free(p):",
           "stale_data in the buddy inverted", ("tests/test_kit_promises.py",)),
    Mutant("framework/checks.py", "            if self._buddy_free(p):\n                    self._bad_prot(p, prot)",
           "            if not self._buddy_free(p):\n                    self._bad_prot(p, prot)",
           "buddy_prot over 2 MiB entries inverted", ("tests/test_mutation_gaps.py",
                                                        "tests/test_kit_promises.py")),
    Mutant("framework/metrics.py", 'Metric("unmapped_served_mapped_bytes", "bytes", True,',
           'Metric("unmapped_served_mapped_bytes", "bytes", False,',
           "a metric's better/worse direction flipped", ("tests/test_mutation_gaps.py",
                                                           "tests/test_report.py")),
    Mutant("framework/kernel/kernel.py", "            if head < pfn or head + size > end:",
           "            if head < pfn and head + size > end:",
           "a CPA covering half a large entry counted as no split",
           ("tests/test_kit_promises.py",)),
    Mutant("framework/kernel/faults.py", "        if not 0 <= order < MAX_ORDER:",
           "        if not 0 <= order <= MAX_ORDER:", "fault order 11 accepted",
           ("tests/test_fuzz_inputs.py",)),
    Mutant("framework/lines.py", "        if len(line) > limit:", "        if len(line) > limit + 1:",
           "line limit off by one", ("tests/test_bounded_input.py",)),
    Mutant("framework/output.py", "        if mode is not None and not stat.S_ISREG(mode):",
           "        if mode is not None and stat.S_ISDIR(mode):",
           "devices and FIFOs taken as output files", ("tests/test_output_file.py",)),
    Mutant("workloads/trace.py", "        pages = machine.mem_pages - (machine.reserved_mib << (20 - PAGE_SHIFT))",
           "        pages = machine.mem_pages", "reserved memory counted as the buddy's",
           # the pressure case only: the 64 GiB request case would fault in 64 GiB first
           ("tests/test_bounded_input.py::test_pressure_bigger_than_the_machine_is_refused",)),
    Mutant("framework/testing/harness.py", '        if mine and req.perm == "UNMAPPED" and not alloc.unmapped:',
           '        if mine and req.perm == "UNMAPPED" and alloc.unmapped:',
           "the kit's unmapped promise inverted", ("tests/test_kit_promises.py",)),
)


def _dirty(paths: set[str]) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--", *sorted(paths)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def run_one(m: Mutant) -> tuple[bool, float]:
    """Apply ``m``, run its tests, restore. (caught, seconds)."""
    path = ROOT / m.path
    original = path.read_text(encoding="utf-8")
    if original.count(m.old) != 1:
        raise SystemExit(f"{m.path}: the text to mutate is not there exactly once: {m.old!r}")
    start = time.monotonic()
    try:
        path.write_text(original.replace(m.old, m.new), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                               "no:cacheprovider", *m.tests], cwd=ROOT, capture_output=True,
                              text=True, check=False, timeout=900)
    finally:
        path.write_text(original, encoding="utf-8")
    return proc.returncode != 0, time.monotonic() - start


def main(argv: list[str]) -> int:
    if "--list" in argv:
        for i, m in enumerate(MUTANTS, 1):
            print(f"{i:2} {m.path}: {m.what}")
        return 0
    chosen = [int(a) for a in argv] or list(range(1, len(MUTANTS) + 1))
    picked = [MUTANTS[i - 1] for i in chosen]
    dirty = _dirty({m.path for m in picked})
    if dirty:
        print("mutate: commit or stash these first:\n" + "\n".join(dirty), file=sys.stderr)
        return 2
    caught = 0
    for i, m in zip(chosen, picked, strict=True):
        hit, seconds = run_one(m)
        caught += hit
        print(f"{i:2} {'caught  ' if hit else 'SURVIVED'} {seconds:5.1f} s  {m.path}: {m.what}",
              flush=True)
    print(f"{caught} of {len(picked)} mutants caught ({100 * caught // max(1, len(picked))}%)")
    return 0 if caught == len(picked) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
