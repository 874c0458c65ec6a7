"""``secretmem``: processes faulting in and freeing memfd_secret(2) regions.

Stands for: user space keeping secrets in ``memfd_secret`` memory (ssh-agent and key
managers, VMMs keeping guest keys): each process maps a region, faults its pages in one at a
time (``secretmem_fault``, one ``secretmem`` request of 4 KiB per page, ``perm=UNMAPPED``,
``zero``), writes them, may punch a hole in the region (``fallocate(PUNCH_HOLE)``: those
pages leave the page cache), and exits. Every page comes back through the page cache's
generic free path (``freed_by=GENERIC``), which is what lets ``__GFP_UNMAPPED`` divert it.

Numbers: region sizes are log-normal around ``mean_pages`` (an estimate: no published
distribution of secretmem region sizes exists; key material is a few pages, VMM regions are
larger). Process lifetimes overlap: at most ``concurrent`` processes live at once, and each
step either starts one or acts on a random live one. A ``sample`` event is emitted every
``sample_every`` events (0: none). Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

import numpy as np

from framework.kernel.consts import PAGE_SIZE
from framework.params import Param
from framework.request import ALLOC, FREE, WRITE, Event, Request, make_events
from framework.workload import Workload, lognormal_with_mean, sampled, start_next


class Secretmem(Workload):
    """Process churn over memfd_secret regions (see the module docstring)."""

    name = "secretmem"
    summary = "memfd_secret regions faulted in, hole-punched and freed by many processes"
    source = "mm/secretmem.c call pattern; region sizes an estimate (log-normal)"
    params = (
        Param("processes", int, 96, "processes started over the run", min=1, max=10**7),
        Param("concurrent", int, 24, "processes alive at once at most", min=1, max=10**6),
        Param("mean_pages", float, 48.0, "mean region size, 4 KiB pages", min=1, max=1 << 20),
        Param("sigma", float, 1.0, "log-normal shape of region sizes", min=0, max=4),
        Param("punch_prob", float, 0.3, "chance a process punches out half its pages first",
              min=0, max=1),
        Param("sample_every", int, 0, "emit a sample event every N events (0: never)",
              min=0, max=10**9),
    )

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Yield the fault/write/punch/exit events; every page is freed by the end."""
        # One list per process start, punch or exit, chained in C: no generator resume per event.
        return sampled(chain.from_iterable(self._batches(rng)), self.config["sample_every"])

    def _batches(self, rng: np.random.Generator) -> Iterator[list[Event]]:
        cfg = self.config
        nodes = self.machine.nodes
        started = 0
        alive: list[list[int]] = []
        punched: list[bool] = []
        next_id = 1
        while started < cfg["processes"] or alive:
            if start_next(rng, started, cfg["processes"], len(alive), cfg["concurrent"]):
                started += 1
                ids, next_id, evs = self._start(rng, next_id, int(rng.integers(nodes)))
                alive.append(ids)
                punched.append(False)
            else:
                i = int(rng.integers(len(alive)))
                if not punched[i] and len(alive[i]) > 1 and rng.random() < cfg["punch_prob"]:
                    punched[i] = True
                    evs = self._punch(rng, alive[i])
                else:
                    evs = list(make_events(FREE, alive.pop(i)))
                    punched.pop(i)
            yield evs

    def _start(self, rng: np.random.Generator, next_id: int, node: int
               ) -> tuple[list[int], int, list[Event]]:
        pages = max(1, lognormal_with_mean(rng, self.config["mean_pages"], self.config["sigma"]))
        per_node = max(1, self.machine.cpus // self.machine.nodes)
        cpu = node * per_node + next_id % per_node  # the process runs on one CPU of its node
        req = Request("secretmem", PAGE_SIZE, "UNMAPPED", True, node, "GENERIC", cpu)
        ids = list(range(next_id, next_id + pages))
        faults = make_events(ALLOC, ids, req)  # alloc, write; alloc, write; ...
        writes = make_events(WRITE, ids, None, PAGE_SIZE)
        return ids, next_id + pages, list(chain.from_iterable(zip(faults, writes, strict=True)))

    @staticmethod
    def _punch(rng: np.random.Generator, ids: list[int]) -> list[Event]:
        gone = rng.choice(len(ids), size=len(ids) // 2, replace=False)
        drop = {ids[int(j)] for j in gone}
        ids[:] = [pid for pid in ids if pid not in drop]
        return list(make_events(FREE, sorted(drop)))
