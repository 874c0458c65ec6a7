"""Sweeps: parallel processes and a Dask cluster give the same results as a serial run."""

from __future__ import annotations

import json

import pytest

from framework.engine import Cell, freeze_sets
from framework.report import results_json
from framework.sweep import make_cells, run_cells
from tests.test_cli import run

SETS = {"machine": {"mem_gib": "4"}, "secretmem": {"processes": "6"},
        "modules": {"reloads": "5"}}


def cells() -> list[Cell]:
    return make_cells(["baseline"], ["secretmem", "modules"], "default", 2, 7, SETS)


def as_json(outcomes: list) -> str:  # type: ignore[type-arg]
    return results_json([o.result for o in outcomes])


def test_cells_carry_explicit_seeds() -> None:
    got = [(c.workload, c.seed) for c in cells()]
    assert got == [("secretmem", 7), ("secretmem", 8), ("modules", 7), ("modules", 8)]
    assert cells()[0].sets == freeze_sets(SETS)


def test_jobs_2_identical_to_serial() -> None:
    serial = as_json(run_cells(cells(), jobs=1))
    parallel = as_json(run_cells(cells(), jobs=2))
    assert serial == parallel


def test_cli_jobs_identical() -> None:
    args = ("bench", "--plugins", "baseline", "--workloads", "secretmem,modules", "--seeds",
            "2", "--format", "json", "--set", "machine.mem_gib=4", "--set",
            "secretmem.processes=6", "--set", "modules.reloads=5")
    one, two = run(*args, "--jobs", "1"), run(*args, "--jobs", "2")
    assert one.returncode == 0 and one.stdout == two.stdout
    assert len(json.loads(one.stdout)["runs"]) == 4


def test_dask_local_cluster_identical() -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        remote = as_json(run_cells(cells(), executor=client.get_executor(pure=False)))
    assert remote == as_json(run_cells(cells(), jobs=1))
