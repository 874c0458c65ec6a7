"""Results change only on purpose: the default suite's JSON against a golden file.

``tests/golden/default-suite.json`` is ``framework bench --plugins all --format json`` and
``tests/golden/secretmem-sampled.json`` adds a sampled secretmem run (the time series path).
A commit that changes a result on purpose regenerates them with ``python
-m tests.test_golden --update`` and says in its message why the numbers moved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.test_cli import run

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "default-suite.json": ("bench", "--plugins", "all", "--format", "json"),
    "secretmem-sampled.json": ("bench", "--plugins", "all", "--workloads", "secretmem",
                               "--set", "secretmem.sample_every=100", "--format", "json"),
}


def _first_difference(want: str, got: str, context: int = 3) -> str:
    """The first line that differs, with ``context`` lines before it from both sides.
    (A line-by-line scan: difflib's matcher is quadratic on two large, mostly different
    JSON texts and would take minutes to say that they differ.)"""
    old, new = want.splitlines(), got.splitlines()
    pairs = enumerate(zip(old, new, strict=False))  # the shorter text may end first
    at = next((i for i, (a, b) in pairs if a != b), min(len(old), len(new)))
    lo = max(0, at - context)
    return "\n".join([f"first difference at line {at + 1}:",
                      *(f"  golden: {line}" for line in old[lo:at + 1]),
                      *(f"  now:    {line}" for line in new[lo:at + 1])])


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    proc = run(*CASES[name])
    assert proc.returncode == 0, proc.stderr
    want = (GOLDEN / name).read_text()
    json.loads(proc.stdout)  # well-formed
    assert proc.stdout == want, _first_difference(want, proc.stdout)


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    for name, args in CASES.items():
        proc = run(*args)
        proc.check_returncode()
        (GOLDEN / name).write_text(proc.stdout)
        print(f"wrote {GOLDEN / name}")
