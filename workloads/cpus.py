"""Which CPU a workload's caller runs on: the ``cpu`` of every :class:`Request`.

The CPU decides which per-cpu page lists (``per_cpu_pages``) an allocation and its free go
through, and, when the request names no node, which node it is local to. Each workload picks
CPUs as the kernel code it stands for is called (docs/workloads.md, "CPUs"): a task that
loads a module or a BPF program allocates on the CPU it runs on, a fault allocates on the
faulting CPU, a driver on the CPU its probe or ioctl runs on.

The choices are drawn from their own random stream, spawned from the workload's generator
(``Generator.spawn``, which does not advance the generator): the events a workload yields are
the same as before CPUs were drawn, only their ``cpu`` field is new, and the same seed gives
the same CPUs. The CPU numbering follows the engine's ``cpu_to_node``: CPU ``c`` is on node
``c * nodes // cpus`` (framework/engine.py), so a node's CPUs are one contiguous range.
"""

from __future__ import annotations

import numpy as np

from framework.machine.spec import MachineSpec


def node_cpus(machine: MachineSpec, node: int) -> range:
    """The CPUs of ``node``: every ``c`` with ``c * nodes // cpus == node``."""
    cpus, nodes = machine.cpus, machine.nodes
    return range(-(-node * cpus // nodes), -(-(node + 1) * cpus // nodes))


class CpuChooser:
    """Seeded CPU choices for one run of a workload (see the module docstring)."""

    __slots__ = ("cpus", "machine", "rng")

    def __init__(self, rng: np.random.Generator, machine: MachineSpec) -> None:
        self.rng = rng.spawn(1)[0]  # its own stream: the workload's draws are unchanged
        self.machine = machine
        self.cpus = machine.cpus

    def any(self) -> int:
        """A CPU drawn uniformly over the machine (a task the scheduler may put anywhere)."""
        return int(self.rng.integers(self.cpus))

    def on(self, node: int | None) -> int:
        """A CPU drawn uniformly over ``node``'s CPUs (any CPU for None)."""
        if node is None or self.machine.nodes == 1:
            return self.any()
        cpus = node_cpus(self.machine, node)
        if not cpus:  # fewer CPUs than nodes: a CPU-less node's tasks run elsewhere
            return self.any()
        return cpus.start + int(self.rng.integers(len(cpus)))
