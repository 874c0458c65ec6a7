"""``secretmem``: processes faulting in and freeing memfd_secret(2) regions.

Stands for: user space keeping secrets in ``memfd_secret`` memory. The documented user is the
``memsec`` library's ``memfd_secret`` allocator (crate ``memsec``, src/alloc/allocext/linux.rs,
used by the Rosenpass key-exchange daemon's secret memory): every secret is its own
``memfd_secret`` file of ``page_round(size + canary)`` pages, mapped ``MAP_LOCKED |
MAP_POPULATE`` so that all its pages are faulted in at once (``secretmem_fault``, one
``secretmem`` request of 4 KiB per page, ``perm=UNMAPPED``, ``zero``), written, and at free
zeroed, unmapped and closed (the file's pages leave the page cache). A process's secrets are
modelled as one region: it faults its pages in, writes them, may drop half of them
(``punch_prob``: secrets freed or rotated before exit), and frees the rest at exit. Every page
comes back through the page cache's generic free path (``freed_by=GENERIC``), which is what
lets ``__GFP_UNMAPPED`` divert it. Each process runs on one CPU of its node, drawn when it
starts (its faults and, by the engine's rule, its frees run there).

Numbers: secretmem pages count against ``RLIMIT_MEMLOCK`` (mm/secretmem.c
``secretmem_mmap()``: ``mlock_future_ok()``), whose default is 8 MiB since v5.16
(``MLOCK_LIMIT``), so a process holds at most ``max_pages`` = 2048 pages. Secret pages per
process are log-normal around ``mean_pages`` (an estimate [E]: no published distribution
exists; a key is one page with memsec's layout, a daemon such as Rosenpass holds its static
key pair and a few per-peer keys, a VMM keeping guest keys more): 32 pages (128 KiB) by
default. ``processes`` (512) and ``concurrent`` (64) are estimates [E] of a server's
key-holding processes over a run (daemons, per-session agents, VMMs). Process lifetimes
overlap: at most ``concurrent`` processes live at once, and each step either starts one or
acts on a random live one. A ``sample`` event is emitted every ``sample_every`` events
(0: none). Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

import numpy as np

from framework.kernel.consts import PAGE_SIZE
from framework.params import Param
from framework.request import ALLOC, FREE, WRITE, Event, Request, make_events
from framework.workload import Workload, lognormal_with_mean, sampled, start_next
from framework.workloads.cpus import CpuChooser


class Secretmem(Workload):
    """Process churn over memfd_secret regions (see the module docstring)."""

    name = "secretmem"
    summary = "memfd_secret regions faulted in, hole-punched and freed by many processes"
    source = ("mm/secretmem.c call pattern; memsec's per-secret memfd_secret regions; "
              "RLIMIT_MEMLOCK 8 MiB cap; counts and sizes an estimate (log-normal)")
    params = (
        Param("processes", int, 512, "processes started over the run", min=1, max=10**7),
        Param("concurrent", int, 64, "processes alive at once at most", min=1, max=10**6),
        Param("mean_pages", float, 32.0, "mean secret pages per process", min=1, max=1 << 20),
        Param("sigma", float, 1.0, "log-normal shape of region sizes", min=0, max=4),
        Param("max_pages", int, 2048, "most secret pages of a process (RLIMIT_MEMLOCK 8 MiB)",
              min=1, max=1 << 20),
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
        cpus = CpuChooser(rng, self.machine)
        started = 0
        alive: list[list[int]] = []
        punched: list[bool] = []
        next_id = 1
        while started < cfg["processes"] or alive:
            if start_next(rng, started, cfg["processes"], len(alive), cfg["concurrent"]):
                started += 1
                node = int(rng.integers(nodes))
                ids, next_id, evs = self._start(rng, next_id, node, cpus.on(node))
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

    def _start(self, rng: np.random.Generator, next_id: int, node: int, cpu: int
               ) -> tuple[list[int], int, list[Event]]:
        cfg = self.config
        pages = lognormal_with_mean(rng, cfg["mean_pages"], cfg["sigma"])
        pages = min(cfg["max_pages"], max(1, pages))  # secretmem_mmap(): mlock_future_ok()
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
