"""Which CPU each workload's requests run on (docs/workloads.md, "CPUs")."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import pytest

from framework.params import resolve
from framework.request import ALLOC, Event
from framework.workload import Workload
from framework.workloads.bpf import Bpf
from framework.workloads.cpus import node_cpus
from framework.workloads.dma_nokmap import DmaNokmap
from framework.workloads.guest import Guest
from framework.workloads.modules import Modules
from framework.workloads.pks_pagetables import PksPagetables
from framework.workloads.secretmem import Secretmem
from framework.workloads.trampolines import Trampolines
from tests.conftest import small_spec

ALL = (Secretmem, Modules, Bpf, Trampolines, PksPagetables, Guest, DmaNokmap)


def make(cls: type[Workload], cpus: int = 16, nodes: int = 1, **sets: Any) -> Workload:
    spec = small_spec(mem_gib=8, cpus=cpus, nodes=nodes)
    return cls(resolve(cls.name, cls.params, {k: str(v) for k, v in sets.items()}), spec)


def run(workload: Workload, seed: int = 1) -> list[Event]:
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    return list(workload.events(rng))


def allocs(events: list[Event]) -> list[Event]:
    return [ev for ev in events if ev.op == ALLOC]


def test_node_cpus_by_hand() -> None:
    """cpu_to_node is c * nodes // cpus: 4 CPUs on 2 nodes: 0, 0, 1, 1; 3 CPUs on 2 nodes:
    0 * 2 // 3 = 0, 2 // 3 = 0, 4 // 3 = 1."""
    assert node_cpus(small_spec(cpus=4, nodes=2), 0) == range(0, 2)
    assert node_cpus(small_spec(cpus=4, nodes=2), 1) == range(2, 4)
    assert node_cpus(small_spec(cpus=3, nodes=2), 0) == range(0, 2)
    assert node_cpus(small_spec(cpus=3, nodes=2), 1) == range(2, 3)


@pytest.mark.parametrize(("cpus", "nodes"), [(16, 1), (7, 3), (12, 4), (5, 2)])
def test_node_cpus_follow_the_engine(cpus: int, nodes: int) -> None:
    """Every CPU is in exactly its own node's range (framework/engine.py cpu_to_node)."""
    spec = small_spec(cpus=cpus, nodes=nodes)
    for cpu in range(cpus):
        owners = [n for n in range(nodes) if cpu in node_cpus(spec, n)]
        assert owners == [cpu * nodes // cpus]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_cpus_change_only_the_cpu_field(cls: type[Workload]) -> None:
    """The CPUs come from a stream of their own: on 1 CPU (every cpu 0) and on 16 the events
    are the same once the cpu field is set aside; on 16 CPUs more than one CPU is used (except
    for trampolines: one agent) and every CPU is a CPU of the machine. Same seed, same CPUs."""
    def strip(evs: list[Event]) -> list[Event]:
        return [ev._replace(request=attrs.evolve(ev.request, cpu=0)) if ev.request else ev
                for ev in evs]
    one, many = run(make(cls, cpus=1)), run(make(cls, cpus=16))
    assert strip(one) == one
    assert strip(many) == one
    used = {ev.request.cpu for ev in allocs(many)}
    assert used <= set(range(16))
    assert len(used) == 1 if cls is Trampolines else len(used) > 1
    assert run(make(cls, cpus=16)) == many


def test_bpf_loaders() -> None:
    """systemd's resident programs share one CPU, the agent's host programs one CPU, and
    each endpoint's programs one CPU: the CPU changes only between loaders' batches."""
    events = allocs(run(make(Bpf, systemd_progs=5, host_progs=7, apps=30)))
    cpus = [ev.request.cpu for ev in events]
    assert len(set(cpus[:5])) == 1 and len(set(cpus[5:12])) == 1
    ids = [ev.id for ev in events]
    assert ids == sorted(ids)  # programs are numbered in load order, endpoint by endpoint


def test_modules_churn_on_one_cpu_boot_spread() -> None:
    """The server profile's boot loads spread over CPUs; every reload after boot runs on the
    one CPU the churn was given."""
    work = make(Modules, reloads=50)
    events = allocs(run(work))
    boot_sections = len(allocs(run(make(Modules, reloads=0))))
    boot, churn = events[:boot_sections], events[boot_sections:]
    assert len({ev.request.cpu for ev in boot}) > 4
    assert len({ev.request.cpu for ev in churn}) == 1 and churn


@pytest.mark.parametrize("cls", [Secretmem, PksPagetables, Guest, DmaNokmap],
                         ids=lambda c: c.name)
def test_cpu_is_on_the_requests_node(cls: type[Workload]) -> None:
    """On 2 nodes of 8 CPUs, a request that names a node runs on one of that node's CPUs."""
    events = allocs(run(make(cls, cpus=16, nodes=2)))
    assert {ev.request.node for ev in events} == {0, 1}
    for ev in events:
        assert ev.request.cpu * 2 // 16 == ev.request.node


@pytest.mark.parametrize("cls", [Secretmem, PksPagetables], ids=lambda c: c.name)
def test_a_process_stays_on_its_cpu(cls: type[Workload]) -> None:
    """Consecutive allocations of one process (ids in one run of +1) share one CPU."""
    events = allocs(run(make(cls, processes=20, concurrent=1)))
    by_process: dict[int, set[int]] = {}
    start = 0
    for prev, ev in zip([None, *events], events, strict=False):
        if prev is None or ev.id != prev.id + 1 or prev.request is not ev.request:
            start = ev.id
        by_process.setdefault(start, set()).add(ev.request.cpu)
    assert all(len(cpus) == 1 for cpus in by_process.values())
    assert len(set().union(*by_process.values())) > 1
