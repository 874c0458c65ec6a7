"""``guest``: confidential-VM guest memory faulted in chunk by chunk and freed at teardown.

Stands for: a VMM backing confidential guests (TDX, SEV-SNP, pKVM) with memory the host kernel
must not map: ``guest_memfd`` with ``GUEST_MEMFD_FLAG_NO_DIRECT_MAP`` (Patrick Roy / Nikita
Kalyazin, RFC Oct 2024, 20241030134912.515725-3-roypat) and the v3 thread's wish for
``__GFP_UNMAPPED`` without zeroing for CoCo (Sean Christopherson: the trusted module, not the
host, initialises guest memory). A VM starts, its guest faults its memory in one folio at a
time (``kvm_gmem_get_folio``), each folio is one ``guest`` request of ``chunk_kib``
(``perm=UNMAPPED``, ``zero=False``, ``freed_by=OWNER``) on the VM's node followed by a ``write``
(the guest fills it), and at teardown (``kvm_gmem_release`` / truncation) every folio of the
VM is freed.

CPUs: a folio is faulted in by the host CPU that takes the fault: the VMM's vCPU thread that
touched the memory, or the VMM thread populating it. vCPU threads of a VM run on its node,
so each fault runs on a CPU drawn uniformly over the VM's node (a VMM pins vCPUs to a node;
which of its CPUs is an estimate [E]); the teardown frees on the CPUs that faulted (the
engine's rule).

Numbers: the sizes are parameters, not measurements. The defaults, two VMs of 256 MiB faulted
in 2 MiB folios (a PMD-sized ``guest_memfd`` folio, the huge-page size a VMM asks for), keep
the default suite fast; real confidential VMs are GiBs to hundreds of GiBs (raise
``vm_mib``). ``touch`` is the share of its memory a guest faults in before teardown (1.0: all,
as a guest that accepts all memory at boot does; lower with lazy acceptance). VM lifetimes
overlap: at most ``concurrent`` VMs live at once; each step either starts a VM (even odds while
below the cap) or advances a random live VM by one fault, or tears it down once it has
faulted everything it will. A ``sample`` event is emitted every ``sample_every`` events
(0: none). Every folio is freed by the end. Deterministic for a seed.

Parameters (``--set guest.KEY=VALUE``):

- ``vms`` (count, default 2): VMs started over the run.
- ``concurrent`` (count, default 2): VMs alive at once at most.
- ``vm_mib`` (MiB, default 256): guest memory per VM.
- ``chunk_kib`` (KiB, default 2048): folio size, a power of two from 4 KiB to 1 GiB.
- ``touch`` (fraction, default 1.0): share of a VM's folios faulted in before teardown.
- ``sample_every`` (events, default 0): emit a sample every N events.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

import attrs
import numpy as np

from framework.errors import BadParameter
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, WRITE, Event, Request
from framework.workload import Workload, sampled, start_next
from framework.workloads.cpus import CpuChooser


@attrs.define(slots=True)
class _Vm:
    """One live VM: its node, folios still to fault in, and the ids of those faulted in."""

    node: int
    left: int
    ids: list[int] = attrs.Factory(list)


class Guest(Workload):
    """Confidential-VM lifetimes over unmapped guest memory (see the module docstring)."""

    name = "guest"
    summary = "confidential-VM memory faulted in folios (UNMAPPED, not zeroed), freed at exit"
    source = ("guest_memfd NO_DIRECT_MAP (Roy/Kalyazin 2024) and the v3 thread's CoCo no-zero "
              "request; VM and folio sizes are parameters")
    params = (
        Param("vms", int, 2, "VMs started over the run", min=1, max=10**6),
        Param("concurrent", int, 2, "VMs alive at once at most", min=1, max=10**5),
        Param("vm_mib", int, 256, "guest memory per VM, MiB", min=1, max=1 << 24),
        Param("chunk_kib", int, 2048, "folio faulted in at a time, KiB (power of two)",
              min=4, max=1 << 20),
        Param("touch", float, 1.0, "share of a VM's memory faulted in before teardown",
              min=0, max=1),
        Param("sample_every", int, 0, "emit a sample event every N events (0: never)",
              min=0, max=10**9),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        chunk = params["chunk_kib"]
        if chunk & (chunk - 1) or chunk % 4:
            raise BadParameter(f"guest.chunk_kib={chunk}: expected a power of two from 4 "
                               "to 1048576")
        self.chunk_bytes = chunk << 10
        self.chunks = -(-(params["vm_mib"] << 20) // self.chunk_bytes)
        self.faults = round(self.chunks * params["touch"])

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Yield fault (alloc + write) and teardown (free) events; all freed by the end."""
        return sampled(chain.from_iterable(self._batches(rng)), self.config["sample_every"])

    def _batches(self, rng: np.random.Generator) -> Iterator[list[Event]]:
        cfg = self.config
        cpus = CpuChooser(rng, self.machine)
        started = 0
        alive: list[_Vm] = []
        next_id = 1
        while started < cfg["vms"] or alive:
            if start_next(rng, started, cfg["vms"], len(alive), cfg["concurrent"]):
                started += 1
                alive.append(_Vm(int(rng.integers(self.machine.nodes)), self.faults))
                continue
            i = int(rng.integers(len(alive)))
            vm = alive[i]
            if vm.left:
                evs = self._fault(vm, next_id, cpus.on(vm.node))
                next_id += 1
            else:
                evs = [Event(FREE, aid) for aid in alive.pop(i).ids]  # kvm_gmem_release()
            yield evs

    def _fault(self, vm: _Vm, aid: int, cpu: int) -> list[Event]:
        """kvm_gmem_get_folio() on ``cpu``: one folio of ``chunk_kib``, the guest writes it."""
        vm.left -= 1
        vm.ids.append(aid)
        req = Request("guest", self.chunk_bytes, "UNMAPPED", False, vm.node, "OWNER", cpu)
        return [Event(ALLOC, aid, req), Event(WRITE, aid, None, self.chunk_bytes)]
