"""Shared fixtures: small machines and kernels. Entry-point autoloading is off in-process."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD", "1")

from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.machine.spec import MachineSpec


def small_spec(mem_gib: int = 4, cpus: int = 4, gbpages: bool = True, nodes: int = 1,
               collapse: bool = False) -> MachineSpec:
    """A small machine for hand-derived scenarios: 64 MiB reserved at the start, no MMIO hole
    (so RAM is one range), boot pagesets (no per-cpu lists: every page passes straight to
    and from the buddy), ``vm.min_free_kbytes=0`` (watermarks only from
    ``watermark_scale_factor``), a fresh start state (every page free at boot). GFP_KERNEL
    allocations come from ZONE_DMA32, its first zone."""
    return MachineSpec(name="test", mem_gib=mem_gib, nodes=nodes, cpus=cpus,
                       directmap="1g" if gbpages else "2m", reserved_mib=64, collapse=collapse,
                       hole_mib=0, pcp=False, min_free_kbytes=0, state="fresh")


@pytest.fixture
def kernel() -> Kernel:
    """A fresh 4 GiB, 4-CPU, gbpages kernel model."""
    return Kernel(small_spec(), resolve_costs({}))
