"""Mutation runs: does the test suite notice a wrong model, check, metric or reader?

Each mutant is one line of the code changed the way a plausible bug would change it. Two
sets:

- the seeded sample (default): ``SAMPLE_SIZE`` mutants drawn by scripts/mutate_sample.py
  from the model (framework/kernel), the checks, the metrics and the TLB model, in the
  quotas of ``GROUPS``; each runs the small test subset its group maps to;
- ``--hand``: the hand-picked ``MUTANTS`` below (readers, output files, the kit too).

The script copies the repository's files (tracked and untracked, not ignored) to a
temporary directory once, applies one mutant at a time there, runs its tests (``pytest
-x``, with the copy first on ``PYTHONPATH`` so the installed ``framework`` command runs the
mutant too), restores the file, and prints ``caught``, ``timeout`` (counted as caught: the
bug made the tests hang), ``equiv`` (a survivor ``EQUIVALENT`` explains) or ``SURVIVED``.
The working tree is never touched. ``--report FILE`` writes the table in Markdown.

    python scripts/mutate.py --list             # the sample, nothing run
    python scripts/mutate.py --report out.md    # run the sample (tens of minutes)
    python scripts/mutate.py --only 3 7         # sample mutants 3 and 7
    python scripts/mutate.py --hand             # the hand-picked mutants

A mutant runs real code with a real bug: its tests must not touch anything outside their
temporary directories (the ``--output`` tests use a private device node, not
``/dev/null``) nor ask for unbounded work. See docs/testing.md.
"""

# ruff: noqa: E501  (each mutant quotes its source line verbatim, whatever its length)
from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutate_sample import Generated, sample

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


#: The seed and size of the sample the figure in docs/testing.md is for.
SEED = 14
#: (name, files, how many mutants, tests run against each). The tests are the files written
#: for that part (seconds each; ``-k`` leaves out the kit's subprocess runs of minutes).
GROUPS: tuple[tuple[str, tuple[str, ...], int, tuple[str, ...]], ...] = (
    ("model", ("framework/kernel/*.py",), 26,
     ("tests/test_kernel_scenarios.py", "tests/test_buddy_properties.py",
      "tests/test_checks.py", "tests/test_ledger.py", "tests/test_mutation_gaps.py",
      "tests/test_mutation_sample.py", "tests/test_kit_promises.py",
      "-k", "not check_plugin")),
    ("checks", ("framework/checks.py",), 12,
     ("tests/test_checks.py", "tests/test_mutation_gaps.py", "tests/test_mutation_sample.py",
      "tests/test_kit_promises.py", "-k", "not check_plugin")),
    ("metrics", ("framework/metrics.py", "framework/metric_defs.py", "framework/summary.py"),
     12, ("tests/test_mutation_gaps.py", "tests/test_mutation_sample.py",
          "tests/test_summary.py", "tests/test_report.py")),
    ("tlb", ("framework/tlb/*.py",), 14,
     ("tests/test_tlb.py", "tests/test_mutation_sample.py", "tests/test_tlb_cost.py")),
)
SAMPLE_SIZE = sum(g[2] for g in GROUPS)
#: Files whose tests live elsewhere too: added to their group's tests.
EXTRA_TESTS: dict[str, tuple[str, ...]] = {
    "framework/kernel/initial.py": ("tests/test_startstate.py",),
    "framework/kernel/e820.py": ("tests/test_realistic_machine.py",),
}
TIMEOUT = 150.0
#: Address space a mutant's tests may use: a mutant that makes the model huge fails with
#: MemoryError (caught) instead of pushing the machine into swap.
MEMORY_LIMIT = 4 << 30

#: Survivors that change nothing observable, by Generated.key, and why.
EQUIVALENT: dict[str, str] = {
    "framework/kernel/buddy.py|const|return len(self.free_area[0]) - 1|"
    "return len(self.free_area[1]) - 1":
        "Zone.add_migratetype()'s result is discarded by its only caller, "
        "PageAlloc.add_migratetype(), which numbers the new type itself; every order has "
        "the same number of lists, so index 1 gives the same value anyway.",
    "framework/kernel/faults.py|cmp|return self.alloc_fail_rate > 0 and rng.random() < "
    "self.alloc_fail_rate|return self.alloc_fail_rate > 0 and (rng.random() <= "
    "self.alloc_fail_rate)":
        "random() returns one of 2^53 evenly spaced floats in [0, 1): it equals the rate "
        "with probability 2^-53 per draw, and rate 1.0 fails every draw either way.",
    "framework/kernel/directmap.py|const|self.changes.append((LEVEL_2M, m, -1))|"
    "self.changes.append((LEVEL_2M, m, -2))":
        "the change log's third field is read only for its sign (framework/tlb/sampler.py "
        "replay(): sign > 0 is a split, anything else a collapse); -2 is a collapse too.",
    "framework/tlb/reach.py|const|return {n: float(h) for n, h in zip(names, hits, "
    "strict=True)}|return {n: float(h) for n, h in zip(names, hits, strict=False)}":
        "hits has one probability per entry of lines, which has one per name (both built "
        "from the same list of live classes): the lengths are always equal, and strict= "
        "only matters when they are not.",
}


def draw(root: Path = ROOT) -> list[tuple[Generated, tuple[str, ...]]]:
    """The seeded sample: each group's quota from its files, with the group's tests."""
    out: list[tuple[Generated, tuple[str, ...]]] = []
    for _name, patterns, size, tests in GROUPS:
        files = sorted(str(p.relative_to(root)) for pat in patterns for p in root.glob(pat)
                       if p.name != "__init__.py")
        out.extend((g, _with_extra(tests, g.path)) for g in sample(root, files, size, SEED))
    return out


def _with_extra(tests: tuple[str, ...], path: str) -> tuple[str, ...]:
    """``tests`` plus the file's EXTRA_TESTS, before any ``-k`` option."""
    extra = EXTRA_TESTS.get(path, ())
    if "-k" in tests:
        k = tests.index("-k")
        return (*tests[:k], *extra, *tests[k:])
    return (*tests, *extra)


def _hand() -> list[tuple[Generated, tuple[str, ...]]]:
    """The hand-picked mutants as (possibly multi-line) text replacements."""
    return [(Generated(m.path, 0, m.what, m.old, m.new), m.tests) for m in MUTANTS]


def _copy_tree(dest: Path) -> None:
    """The repository's files (tracked and untracked, not ignored) under dest."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src, dst = ROOT / name, dest / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _pytest(copy: Path, tests: tuple[str, ...], timeout: float) -> str:
    """Run the tests in the copy: 'caught', 'timeout' or 'survived'."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-x", "-q", "-p",
                             "no:cacheprovider", *tests], cwd=copy, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_limit_memory)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timeout"
    except BaseException:  # Ctrl-C or SIGTERM: stop the tests too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return "survived" if code == 0 else "caught"


def run_one(copy: Path, g: Generated, tests: tuple[str, ...], timeout: float) -> str:
    """Apply g in the copy, run its tests, restore."""
    path = copy / g.path
    original = path.read_text(encoding="utf-8")
    if g.line:
        lines = original.splitlines(keepends=True)
        if lines[g.line - 1].rstrip("\n") != g.old:
            raise SystemExit(f"{g.path}:{g.line} is not {g.old!r}")
        ending = lines[g.line - 1][len(g.old):]
        lines[g.line - 1] = g.new + ending
        mutated = "".join(lines)
    elif original.count(g.old) == 1:
        mutated = original.replace(g.old, g.new)
    else:
        raise SystemExit(f"{g.path}: the text to mutate is not there exactly once: {g.old!r}")
    try:
        path.write_text(mutated, encoding="utf-8")
        return _pytest(copy, tests, timeout)
    finally:
        path.write_text(original, encoding="utf-8")


def _head() -> str:
    out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                         capture_output=True, text=True, check=False).stdout.strip()
    return out or "unknown"


def _row(i: int, g: Generated, status: str, seconds: float) -> str:
    return (f"| {i} | {status} | {seconds:.0f} | `{g.path}:{g.line}` {g.kind} | "
            f"`{g.old.strip()}` → `{g.new.strip()}` |")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hand", action="store_true", help="the hand-picked mutants")
    ap.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    ap.add_argument("--only", type=int, nargs="+", help="these mutant numbers only")
    ap.add_argument("--report", type=Path, help="write the Markdown table here")
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per mutant")
    args = ap.parse_args(argv)
    # SIGTERM (a killed background run) unwinds like Ctrl-C: the copy is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mutants = _hand() if args.hand else draw()
    if args.list:
        for i, (g, _tests) in enumerate(mutants, 1):
            print(f"{i:2} {g.path}:{g.line} {g.kind}: {g.old.strip()} -> {g.new.strip()}")
        return 0
    chosen = args.only or list(range(1, len(mutants) + 1))
    rows, tally = [], {"caught": 0, "timeout": 0, "equiv": 0, "SURVIVED": 0}
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy)
        for i in chosen:
            g, tests = mutants[i - 1]
            start = time.monotonic()
            status = run_one(copy, g, tests, args.timeout)
            if status == "survived":
                status = "equiv" if g.key in EQUIVALENT else "SURVIVED"
            tally[status] += 1
            seconds = time.monotonic() - start
            print(f"{i:2} {status:8} {seconds:5.1f} s  {g.path}:{g.line} {g.kind}: "
                  f"{g.old.strip()} -> {g.new.strip()}", flush=True)
            rows.append(_row(i, g, status, seconds))
    real = len(chosen) - tally["equiv"]
    hit = tally["caught"] + tally["timeout"]
    summary = (f"{hit} of {real} non-equivalent mutants caught ({100 * hit / max(1, real):.1f}%)"
               f"; {tally['equiv']} equivalent; {tally['timeout']} of the caught by timeout")
    print(summary)
    if args.report:
        ran = {mutants[i - 1][0].key for i in chosen}
        notes = [f"- `{k}`: {why}" for k, why in sorted(EQUIVALENT.items()) if k in ran]
        args.report.write_text("\n".join([
            f"# Mutation run ({'hand-picked' if args.hand else f'seed {SEED}'}, {_head()})", "",
            summary, "", "| # | result | s | where | mutation |", "|---|---|---|---|---|",
            *rows, "", "## Equivalent mutants", "", *notes, ""]), encoding="utf-8")
    return 0 if tally["SURVIVED"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
