"""``server-mix``: a day in the life of a server, every site the proposed designs serve at once.

Stands for: one host that boots, loads its modules, then spends a day running containers with
BPF programs, being traced, keeping secrets in ``memfd_secret`` memory, running a VM or two and
starting and ending processes, all over a loaded, fragmented memory (the ``background``
workload). Each of those activities is the built-in workload that models it, run with the
sizes below, and their events are interleaved at random:

- **boot**: :class:`workloads.modules.Modules` with the ``server`` profile (the modules a
  typical server loads, real ``.ko`` section sizes), no reloads. Boot comes first: every load
  is done before the day starts, as ``systemd-modules-load`` and udev do at boot.
- **the day**, uniformly interleaved with the run's random generator (each stream's events
  keep their order, and at every step the next event comes from a stream chosen with
  probability proportional to the events it has left, so all streams spread over the day):

  - ``bpf`` (:class:`workloads.bpf.Bpf`): ``150 x scale`` applications (container endpoints,
    systemd units, tracing tools) loading programs of 64 B to 4 KiB (``proglen`` cut to
    40..4072 B, plus the 24-byte JIT header and pad, as :mod:`framework.workloads.bpf` asks);
  - ``trampolines`` (:class:`workloads.trampolines.Trampolines`): ``1000 x scale`` kprobe,
    ftrace and BPF-trampoline attaches;
  - ``secretmem`` (:class:`workloads.secretmem.Secretmem`): ``48 x scale`` processes (ssh
    agents, key managers, VMMs keeping guest keys) faulting ``memfd_secret`` regions;
  - ``guest`` (:class:`workloads.guest.Guest`): ``vms`` confidential VMs of ``vm_mib`` MiB,
    faulted in 2 MiB ``guest`` folios (``UNMAPPED``, ``zero=False``), torn down at the end;
  - ``pks-pagetables`` (:class:`workloads.pks_pagetables.PksPagetables`): ``200 x scale``
    processes' page tables (``pagetable``, ``PKS``).

What a "day" is: not 86 400 modelled seconds. The model has no clock between events; a day
is the sequence of lifetimes above, compressed: every stream starts and ends within it, and
their relative volumes are what a day on a container host looks like by these estimates
[E]: BPF loads and tracing attaches are the most frequent events (Cilium regenerates an
endpoint's programs on every policy change; tracing tools attach hundreds of probes per
session), processes (page tables) next, secretmem users are few, VMs are one or two long
lifetimes. The counts are scaled by ``scale`` (1.0 runs in a couple of seconds per plugin on
``default`` without the background's fragmenting phase); the numbers each stream draws (sizes,
programs per application, concurrency) are the defaults of the stream's own workload, which
document their sources. Sub-streams run with their own generators, seeded in a fixed order
from the run's generator, and their ids are renumbered so that they never collide (and stay
positive: the background's are negative). Deterministic for a seed.

``background`` defaults to 0.1 here (every other workload's default is 0, off): the day runs
over a load whose free memory holds at most 10% in blocks of order >= 9. Set
``--set server-mix.background=0`` for a fresh machine. The load's fill touches all of RAM
(about 160 000 events in all on ``default``, some 20 s of wall-clock time per plugin with the
engine's per-page checks), so ``server-mix`` is not in the default suite (the whole default
suite takes under 10 s); without the load it runs in about 2 s per plugin on ``default``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from framework.machine.spec import MachineSpec
from framework.params import Param, resolve
from framework.request import Event
from framework.workload import BACKGROUND_PARAM, Workload
from framework.workloads.bpf import Bpf
from framework.workloads.guest import Guest
from framework.workloads.modules import Modules
from framework.workloads.pks_pagetables import PksPagetables
from framework.workloads.secretmem import Secretmem
from framework.workloads.trampolines import Trampolines


class ServerMix(Workload):
    """Boot, then a day of BPF, tracing, secretmem, VMs and processes (module docstring)."""

    name = "server-mix"
    default = False  # the background fill: ~20 s a plugin on default (module docstring)
    summary = "a server's day: boot-time modules, then BPF, trampolines, secretmem, VMs and " \
              "PKS page tables interleaved, over background load"
    source = "the built-in workloads' own figures; the day's mix an estimate [E]"
    params = (
        Param("scale", float, 1.0, "multiplies the day's event counts (bpf apps, attaches, "
              "processes)", min=0.01, max=10000),
        Param("modules_source", str, "debian", "module data set for the boot (as modules.source)"),
        Param("vms", int, 2, "confidential VMs over the day", min=0, max=10**5),
        Param("vm_mib", int, 512, "memory of each VM, MiB (2 MiB guest folios)",
              min=2, max=1 << 24),
        Param(BACKGROUND_PARAM, float, 0.1, "run on top of the background workload: its target "
              "share of free memory in order>=9 blocks (0: off)", min=0, max=1),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        scale = params["scale"]
        self.boot = _make(Modules, machine, source=params["modules_source"],
                          profile="server", reloads=0, unload_at_end=False)
        day: list[Workload] = [
            _make(Bpf, machine, apps=_scaled(150, scale), min_bytes=40, max_bytes=4072),
            _make(Trampolines, machine, attaches=_scaled(1000, scale)),
            _make(Secretmem, machine, processes=_scaled(48, scale)),
            _make(PksPagetables, machine, processes=_scaled(200, scale)),
        ]
        if params["vms"]:
            day.append(_make(Guest, machine, vms=params["vms"],
                             concurrent=min(2, params["vms"]), vm_mib=params["vm_mib"],
                             chunk_kib=2048))
        self.day = day

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Boot's module loads, then the day's streams interleaved at random."""
        streams = [self.boot, *self.day]
        nr = len(streams)
        seeds = [int(s) for s in rng.integers(0, 2**63, size=nr)]  # fixed order of streams
        yield from _renumber(self.boot.events(_child(seeds[0])), 0, nr)
        lists = [list(_renumber(w.events(_child(seeds[i])), i, nr))
                 for i, w in enumerate(self.day, start=1)]
        labels = np.repeat(np.arange(len(lists)), [len(evs) for evs in lists])
        cursors = [0] * len(lists)
        for label in rng.permutation(labels):
            evs = lists[label]
            yield evs[cursors[label]]
            cursors[label] += 1


def _make(cls: type[Workload], machine: MachineSpec, **given: Any) -> Workload:
    """A sub-workload with its defaults and ``given`` overrides (checked like ``--set``)."""
    return cls(resolve(cls.name, cls.params, given), machine)


def _scaled(count: int, scale: float) -> int:
    return max(1, round(count * scale))


def _child(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _renumber(events: Iterator[Event], stream: int, nr: int) -> Iterator[Event]:
    """Give stream ``stream`` of ``nr`` its own ids: id -> id * nr + stream (0 stays 0)."""
    for event in events:
        if event.id:
            yield event._replace(id=event.id * nr + stream)
        else:
            yield event
