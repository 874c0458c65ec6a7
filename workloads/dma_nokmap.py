"""``dma-nokmap``: ``DMA_ATTR_NO_KERNEL_MAPPING`` buffers of media and GPU drivers.

Stands for: drivers that hand buffers to a device and never touch them from the CPU, so they
ask ``dma_alloc_attrs(dev, size, &handle, gfp, DMA_ATTR_NO_KERNEL_MAPPING)`` (kernel/dma/
mapping.c; on x86 ``dma_direct_alloc()``, which in v6.3 still leaves the pages in the direct
map). A reviewer of the v3 series named this user: "dma_alloc_attrs(DMA_ATTR_NO_KERNEL_MAPPING)
would be another easy one". Each buffer is one ``dma_nokmap`` request (``perm=UNMAPPED``,
``zero=False``, ``freed_by=OWNER``) on the driver's node, followed by a ``write`` (the device
fills it by DMA), and a ``free`` (``dma_free_attrs``). ``drivers`` drivers probe first, each
allocating ``probe_buffers`` long-lived buffers (firmware, ring and context buffers); then
``bursts`` bursts of ``burst_buffers`` buffers each come and go (a V4L2 queue set up with
``VIDIOC_REQBUFS`` for a capture or decode session, a GPU job's buffers), at most
``concurrent`` bursts at once; each step either starts a burst on a random driver (even odds
while below the cap) or ends a random live one. At the end the drivers unbind and free their
probe buffers, unless ``unbind_at_end=0`` keeps them live.

CPUs: a driver allocates in its probe and in the ioctl or job submission that sets up a
session; each driver's allocations run on one CPU of its node, drawn at probe (an estimate
[E]: the thread that calls into a media or GPU driver is usually one per device).

Numbers: an estimate, not a measurement. Buffer sizes are log-uniform between ``min_kib`` and
``max_kib`` (64 KiB to 4 MiB by default: a 1080p NV12 frame is 3 MiB, a 720p one 1.3 MiB,
compressed-bitstream and GPU context buffers are tens to hundreds of KiB), rounded up to whole
4 KiB pages as ``dma_direct_alloc`` does (``PAGE_ALIGN``). The mean of a log-uniform size on
``[a, b]`` is ``(b - a) / ln(b / a)``: 969 KiB for the defaults. A ``sample`` event is emitted
every ``sample_every`` events (0: none). Deterministic for a seed.

Parameters (``--set dma-nokmap.KEY=VALUE``):

- ``drivers`` (count, default 4): drivers that probe.
- ``probe_buffers`` (count, default 8): buffers each driver keeps from probe to unbind.
- ``bursts`` (count, default 50): bursts of short-lived buffers.
- ``burst_buffers`` (count, default 8): buffers per burst.
- ``concurrent`` (count, default 2): bursts live at once at most.
- ``min_kib`` / ``max_kib`` (KiB, defaults 64 / 4096): buffer size range.
- ``unbind_at_end`` (bool, default 1): free the probe buffers at the end.
- ``sample_every`` (events, default 0): emit a sample every N events.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from framework.errors import BadParameter
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, WRITE, Event, Request
from framework.workload import Workload, sampled, start_next
from framework.workloads.cpus import CpuChooser

PAGE_SIZE = 4096


class DmaNokmap(Workload):
    """Probe-time and bursty DMA buffers without a kernel mapping (module docstring)."""

    name = "dma-nokmap"
    summary = "DMA_ATTR_NO_KERNEL_MAPPING buffers (64 KiB..4 MiB) at probe and in bursts"
    source = "dma_alloc_attrs() call pattern of media/GPU drivers; sizes an estimate"
    params = (
        Param("drivers", int, 4, "drivers that probe", min=1, max=10**5),
        Param("probe_buffers", int, 8, "buffers each driver keeps from probe to unbind",
              min=0, max=10**5),
        Param("bursts", int, 50, "bursts of short-lived buffers", min=0, max=10**7),
        Param("burst_buffers", int, 8, "buffers per burst", min=1, max=10**5),
        Param("concurrent", int, 2, "bursts live at once at most", min=1, max=10**5),
        Param("min_kib", int, 64, "smallest buffer, KiB", min=4, max=1 << 22),
        Param("max_kib", int, 4096, "largest buffer, KiB", min=4, max=1 << 22),
        Param("unbind_at_end", bool, True, "free the probe buffers at the end"),
        Param("sample_every", int, 0, "emit a sample event every N events (0: never)",
              min=0, max=10**9),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        if params["min_kib"] > params["max_kib"]:
            raise BadParameter(f"dma-nokmap.min_kib={params['min_kib']} is above "
                               f"dma-nokmap.max_kib={params['max_kib']}")

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Probe, burst churn, unbind; with ``unbind_at_end`` everything is freed."""
        return sampled(self._stream(rng), self.config["sample_every"])

    def _stream(self, rng: np.random.Generator) -> Iterator[Event]:
        cfg = self.config
        ids = itertools.count(1)
        nodes = [int(rng.integers(self.machine.nodes)) for _ in range(cfg["drivers"])]
        chooser = CpuChooser(rng, self.machine)
        cpus = {driver: chooser.on(node) for driver, node in enumerate(nodes)}
        probed: list[int] = []
        for driver, node in enumerate(nodes):  # the drivers' probe()
            evs = self._buffers(rng, ids, cfg["probe_buffers"], node, cpus[driver])
            probed.extend(ev.id for ev in evs if ev.op == ALLOC)
            yield from evs
        started = 0
        live: list[list[int]] = []
        while started < cfg["bursts"] or live:
            if start_next(rng, started, cfg["bursts"], len(live), cfg["concurrent"]):
                started += 1
                driver = int(rng.integers(len(nodes)))
                evs = self._buffers(rng, ids, cfg["burst_buffers"], nodes[driver], cpus[driver])
                live.append([ev.id for ev in evs if ev.op == ALLOC])
                yield from evs
            else:
                yield from (Event(FREE, aid) for aid in live.pop(int(rng.integers(len(live)))))
        if cfg["unbind_at_end"]:
            yield from (Event(FREE, aid) for aid in probed)  # the drivers' remove()

    def buffer_size(self, rng: np.random.Generator) -> int:
        """One buffer: log-uniform on [min_kib, max_kib] KiB, PAGE_ALIGNed."""
        low, high = self.config["min_kib"] << 10, self.config["max_kib"] << 10
        size = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        size = min(float(high), max(float(low), size))  # exp(log(x)) may miss x by an ulp
        return -(-math.ceil(size) // PAGE_SIZE) * PAGE_SIZE

    def _buffers(self, rng: np.random.Generator, ids: Iterator[int], nr: int, node: int,
                 cpu: int) -> list[Event]:
        """Allocate (on ``cpu``) and DMA-fill ``nr`` buffers on ``node``."""
        evs = []
        for _ in range(nr):
            aid = next(ids)
            size = self.buffer_size(rng)
            evs.append(Event(ALLOC, aid, Request("dma_nokmap", size, "UNMAPPED", False, node,
                                                 "OWNER", cpu)))
            evs.append(Event(WRITE, aid, None, size))
        return evs
