"""Other kernel users' unmovable pages turning over on a loader's CPU between its loads.

Stands for: the rest of a long-running server's kernel allocating and freeing unmovable pages
(slab, network buffers, page tables) on every CPU, all the time. A workload that loads
something every few seconds meets a per-cpu list that thousands of other allocations and
frees went through since its last load, so the page it gets is the page some other kernel
user freed last on that CPU: ``rmqueue_pcplist`` takes the head of the list and
``free_unref_page_commit`` puts a freed page at the head (LIFO). A run of a few thousand
loads without that traffic keeps taking back the pages it freed itself, on a few 2 MiB
regions, where days of uptime spread them over every pageblock that holds unmovable pages.

Nothing here places a page. A *pool* of long-lived unmovable pages (site ``kernel``,
``MIGRATE_UNMOVABLE``, order 0) is allocated at the start, spread evenly over the CPUs; before
each load the workload frees ``pages`` random pool pages of the loader's CPU (each page is
freed on the CPU that allocated it, the engine's rule), the load follows, and as many new
pool pages are allocated on that CPU after it. Which pages these are is the kernel model's
doing: the freed pool page is at the head of that CPU's list when the load asks.

Numbers (estimates [E], docs/workloads.md "Turnover"): the pool stands for the slab that turns
over during the uptime: 1-5% of RAM on real servers (docs/model.md, the aged start state's
slab); ``pages`` = 1 is the least traffic that makes the load's page another user's page.
The pool's pages belong to the rest of the kernel, not to the workload: their ids are
negative, ``POOL_ID_BASE`` and down (the ``background`` load's negative ids count down from
-1), so the engine keeps them out of the workload's metrics and the TLB sampler's clock, as
it does the ``background`` load's (framework/engine.py); the pool stays allocated at the
end, as that load does. Its random numbers come from a stream spawned from the workload's
generator, so the workload's own draws are the same with or without it.
"""

from __future__ import annotations

import numpy as np

from framework.kernel.consts import PAGE_SIZE
from framework.machine.spec import MachineSpec
from framework.request import ALLOC, FREE, Event, Request

POOL_ID_BASE = -(1 << 40)  # far below the background load's ids (-1, -2, ...)


class Turnover:
    """The pool and its turnover for one run (see the module docstring).

    :param rng: the workload's generator (a child stream is spawned from it).
    :param machine: the machine (its CPU count).
    :param pages: pool pages freed before and allocated after each load (0: no traffic).
    :param pool_pages: pages in the pool, spread evenly over the CPUs.
    """

    __slots__ = ("next_id", "pages", "pool", "pool_pages", "requests", "rng")

    def __init__(self, rng: np.random.Generator, machine: MachineSpec, pages: int,
                 pool_pages: int) -> None:
        self.rng = rng.spawn(1)[0]
        self.pages = pages
        self.pool_pages = pool_pages if pages else 0
        self.pool: list[list[int]] = [[] for _ in range(machine.cpus)]
        # one request per CPU, shared by its pool pages (a Request is frozen), as a workload
        # shares one among a process's pages
        self.requests = [Request("kernel", PAGE_SIZE, "RW", False, None, "OWNER", cpu)
                         for cpu in range(machine.cpus)]
        self.next_id = POOL_ID_BASE

    def _alloc(self, cpu: int) -> Event:
        pid = self.next_id
        self.next_id -= 1
        self.pool[cpu].append(pid)
        return Event(ALLOC, pid, self.requests[cpu])

    def fill(self) -> list[Event]:
        """The pool's allocations: page ``k`` on CPU ``k mod cpus``."""
        cpus = len(self.pool)
        return [self._alloc(k % cpus) for k in range(self.pool_pages)]

    def around(self, cpu: int, load: list[Event]) -> list[Event]:
        """``load`` (a load's events on ``cpu``) after freeing ``pages`` random pool pages of
        ``cpu`` (fewer if it holds fewer), followed by as many new pool pages on ``cpu``."""
        mine = self.pool[cpu]
        nr = min(self.pages, len(mine))
        if not nr:
            return load
        evs = []
        for _ in range(nr):
            i = int(self.rng.integers(len(mine)))
            mine[i], mine[-1] = mine[-1], mine[i]  # O(1) removal of a random one
            evs.append(Event(FREE, mine.pop()))
        evs.extend(load)
        evs.extend(self._alloc(cpu) for _ in range(nr))
        return evs
