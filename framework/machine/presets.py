"""Built-in machine presets, registered through the ``register_machines`` hook.

Figures from ``docs/hardware.md``: TLB geometry from "TLB geometry", sockets, cores and memory
from "Presets and kernel layout" (marked there as estimates anchored on the machines of the
published tests).
"""

from __future__ import annotations

from collections.abc import Callable

from framework.hookspecs import hookimpl
from framework.machine.spec import MachineSpec

PRESETS: tuple[MachineSpec, ...] = (
    MachineSpec(  # MachineSpec's defaults (framework/machine/spec.py MACHINE_PARAMS)
        name="default",
        summary="64 GiB, 1 node, 16 CPUs, Sapphire Rapids TLB",
        source="[E] a mid-size single-socket server; TLB: SPR CPUID (docs/hardware.md)",
    ),
    MachineSpec(
        name="laptop", mem_gib=16, nodes=1, cpus=8, tlb="sapphire-rapids",
        summary="16 GiB, 1 node, 8 CPUs, Golden Cove TLB",
        source="[E] a client machine; Golden Cove cores share SPR's TLB (docs/hardware.md)",
    ),
    MachineSpec(
        name="skylake-sp", mem_gib=384, nodes=2, cpus=48, tlb="skylake-sp",
        summary="384 GiB, 2 nodes, 48 CPUs, Skylake-SP TLB",
        source="docs/hardware.md: SKX 2x24C/384 GiB/2 nodes [E]; TLB: Xeon Gold 6154 CPUID",
    ),
    MachineSpec(
        name="sapphire-rapids-2s", mem_gib=1024, nodes=2, cpus=112, tlb="sapphire-rapids",
        summary="1 TiB, 2 nodes, 112 CPUs, Sapphire Rapids TLB",
        source="docs/hardware.md: SPR 2x56C/1 TiB/2 nodes [E]; TLB: w7-2475X CPUID",
    ),
    MachineSpec(
        name="genoa-2s", mem_gib=1536, nodes=2, cpus=192, tlb="zen4",
        summary="1.5 TiB, 2 nodes, 192 CPUs, Zen 4 TLB",
        source="docs/hardware.md: Genoa 2x96C/1.5 TiB/2 nodes [E]; TLB: EPYC 9654 CPUID",
    ),
    MachineSpec(
        name="huge-4t", mem_gib=4096, nodes=4, cpus=256, tlb="sapphire-rapids",
        summary="4 TiB, 4 nodes, 256 CPUs, Sapphire Rapids TLB",
        source="[E] a scale test: cost must follow what is touched, not memory size",
    ),
)


@hookimpl
def register_machines(register: Callable[[MachineSpec], None]) -> None:
    """Register the built-in presets."""
    for spec in PRESETS:
        register(spec)
