"""benchmarks/bench_scaling.py scales the workloads it says it scales (it runs on demand,
not here; this only holds its table of count parameters to the workloads)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from framework.plugins import get_registry
from tests.helpers import load_file

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "bench_scaling.py"


def _load() -> ModuleType:
    return load_file(SCRIPT, "bench_scaling")


def test_every_default_workload_has_a_count_parameter_that_exists() -> None:
    """The history table covers the default suite, each by a parameter the workload has."""
    bench = _load()
    reg = get_registry()
    default = {name for name, cls in reg.workloads.items() if cls.default}
    assert set(bench.COUNT_PARAM) == default
    for name, param in bench.COUNT_PARAM.items():
        assert param in {p.name for p in reg.workload(name).params}, name


def test_scale_multiplies_the_default() -> None:
    """secretmem starts 512 processes by default (``framework list``): 10x is 5120;
    1x sets only the machine, so the cell is the default suite's own on a fresh machine
    (the engine figures are fresh-machine figures)."""
    bench = _load()
    fresh = {"machine": {"state": "fresh"}}
    assert bench.workload_sets("secretmem", 1) == fresh
    assert bench.workload_sets("secretmem", 10) == {**fresh, "secretmem": {"processes": "5120"}}
    assert bench.workload_sets("guest", 100) == {**fresh, "guest": {"vms": "200"}}
