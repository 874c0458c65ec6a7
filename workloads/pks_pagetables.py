"""``pks-pagetables``: page-table pages protected by PKS, allocated and freed as processes come
and go.

Stands for: Rick Edgecombe's "PKS write protected page tables" RFC (May 2021,
20210505003032.489164-1-rick.p.edgecombe): every page-table page is mapped in the direct map
with a protection key that makes it read-only outside the page-table setters. A process's page
tables are allocated when it forks/execs and faults its address space in (``pte_alloc_one``,
``__pmd_alloc``, ``__pud_alloc``, ``pgd_alloc``: ``GFP_PGTABLE_USER``, zeroed, order 0 each in
this model) and freed when it exits (``free_pgtables``, ``pgd_free``). Each page is one
``pagetable`` request of 4096 B (``perm=PKS``, ``zero``, ``freed_by=OWNER``) on the process's
node, followed by a ``write`` (the kernel fills in entries).

Numbers: the page-table footprint of a process is log-normal with mean ``mean_pages`` and
shape ``sigma``, cut to ``[min_pages, max_pages]``. This is an estimate, not a published
distribution: a process needs at least a PGD (two pages with PTI), a PUD, a PMD and a PTE
page, so ``min_pages`` is 4 (the PTI PGD pair is modelled as two order-0 pages); a small
daemon's few mappings need a handful, a shell or a Python process a few dozen (one PTE page
maps 2 MiB of address space), a JVM or a database with tens of GiB mapped in 4 KiB pages
hundreds to thousands, hence the default mean of 32 pages and the long tail up to
``max_pages`` 4096. Process lifetimes overlap: at most ``concurrent`` processes live at once,
and each step either starts one (even odds while below the cap) or ends a random live one.
Each process runs on one CPU of its node, drawn when it starts: its page-table pages are
allocated by its own faults on that CPU (and freed there, by the engine's rule).
A ``sample`` event is emitted every ``sample_every`` events (0: none). Every page is freed by
the end. Deterministic for a seed.

Parameters (``--set pks-pagetables.KEY=VALUE``):

- ``processes`` (count, default 200): processes started over the run.
- ``concurrent`` (count, default 32): processes alive at once at most.
- ``mean_pages`` (pages, default 32.0): mean page-table pages per process.
- ``sigma`` (default 1.0): log-normal shape of the footprint.
- ``min_pages`` / ``max_pages`` (pages, defaults 4 / 4096): cut-offs of the footprint.
- ``sample_every`` (events, default 0): emit a sample every N events.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np

from framework.errors import BadParameter
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, WRITE, Event, Request
from framework.workload import Workload, lognormal_with_mean, sampled, start_next
from framework.workloads.cpus import CpuChooser

PAGE_SIZE = 4096


class PksPagetables(Workload):
    """Process churn over PKS-protected page-table pages (see the module docstring)."""

    name = "pks-pagetables"
    summary = "page-table pages (PKS-protected, 4 KiB, zeroed) of processes that come and go"
    source = ("Rick Edgecombe's PKS page tables RFC (2021); page-table footprints an "
              "estimate (log-normal, mean 32 pages)")
    params = (
        Param("processes", int, 200, "processes started over the run", min=1, max=10**7),
        Param("concurrent", int, 32, "processes alive at once at most", min=1, max=10**6),
        Param("mean_pages", float, 32.0, "mean page-table pages per process", min=1,
              max=1 << 20),
        Param("sigma", float, 1.0, "log-normal shape of the footprint", min=0, max=4),
        Param("min_pages", int, 4, "fewest page-table pages of a process", min=1,
              max=1 << 20),
        Param("max_pages", int, 4096, "most page-table pages of a process", min=1,
              max=1 << 20),
        Param("sample_every", int, 0, "emit a sample event every N events (0: never)",
              min=0, max=10**9),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        if params["min_pages"] > params["max_pages"]:
            raise BadParameter(f"pks-pagetables.min_pages={params['min_pages']} is above "
                               f"pks-pagetables.max_pages={params['max_pages']}")

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Yield process start (alloc + write per page) and exit (free) events."""
        return sampled(chain.from_iterable(self._batches(rng)), self.config["sample_every"])

    def _batches(self, rng: np.random.Generator) -> Iterator[list[Event]]:
        cfg = self.config
        nodes = self.machine.nodes
        cpus = CpuChooser(rng, self.machine)
        started = 0
        alive: list[list[int]] = []
        next_id = 1
        while started < cfg["processes"] or alive:
            if start_next(rng, started, cfg["processes"], len(alive), cfg["concurrent"]):
                started += 1
                node = int(rng.integers(nodes))
                ids, evs = self._start(next_id, self.footprint(rng), node, cpus.on(node))
                next_id += len(ids)
                alive.append(ids)
            else:
                evs = [Event(FREE, pid) for pid in alive.pop(int(rng.integers(len(alive))))]
            yield evs

    def footprint(self, rng: np.random.Generator) -> int:
        """Page-table pages of one process: log-normal with mean ``mean_pages``, cut."""
        cfg = self.config
        pages = lognormal_with_mean(rng, cfg["mean_pages"], cfg["sigma"])
        return int(min(cfg["max_pages"], max(cfg["min_pages"], pages)))

    @staticmethod
    def _start(next_id: int, pages: int, node: int, cpu: int) -> tuple[list[int], list[Event]]:
        req = Request("pagetable", PAGE_SIZE, "PKS", True, node, "OWNER", cpu)
        ids = list(range(next_id, next_id + pages))
        evs = []
        for pid in ids:
            evs.append(Event(ALLOC, pid, req))
            evs.append(Event(WRITE, pid, None, PAGE_SIZE))  # set_pte() and friends
        return ids, evs
