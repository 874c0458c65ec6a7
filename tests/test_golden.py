"""Results change only on purpose: the default suite's JSON against a golden file.

``tests/golden/default-suite.json`` is ``framework bench --plugins all --format json`` and
``tests/golden/secretmem-sampled.json`` adds a sampled secretmem run (the time series path).
A commit that changes a result on purpose regenerates them with ``python
-m tests.test_golden --update`` and says in its message why the numbers moved.
"""

from __future__ import annotations

import difflib
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


def _first_difference(want: str, got: str) -> str:
    diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "golden", "now", n=3)
    return "\n".join(list(diff)[:60])


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
