"""Results change only on purpose: the default suite's JSON against a golden file.

``tests/golden/default-suite.json`` is ``framework bench --plugins all --format json`` and
``tests/golden/secretmem-sampled.json`` adds a sampled secretmem run (the time series path).
A commit that changes a result on purpose regenerates them with ``python
-m tests.test_golden --update`` and says in its message why the numbers moved. The default
suite's file is compared by tests/test_compiled.py (both cores), the others here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import same_text
from tests.test_cli import run

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "default-suite.json": ("bench", "--plugins", "all", "--format", "json"),
    "secretmem-sampled.json": ("bench", "--plugins", "all", "--workloads", "secretmem",
                               "--set", "secretmem.sample_every=100", "--format", "json"),
}


#: The default suite is compared in tests/test_compiled.py, which runs it both ways (the
#: installed core and its pure-Python twin) against the same file: run once more here it
#: would only cost the suite's time.
CHECKED_ELSEWHERE = {"default-suite.json"}


@pytest.mark.parametrize("name", sorted(set(CASES) - CHECKED_ELSEWHERE))
def test_golden(name: str) -> None:
    proc = run(*CASES[name])
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)  # well-formed
    same_text((GOLDEN / name).read_text(), proc.stdout)


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    for name, args in CASES.items():
        proc = run(*args)
        proc.check_returncode()
        (GOLDEN / name).write_text(proc.stdout)
        print(f"wrote {GOLDEN / name}")
