"""``modules``: kernel modules loaded at boot, then unloaded and reloaded.

Stands for: ``load_module()`` of each module (kernel/module/main.c): one allocation per
section type (``module_text`` ROX, ``module_rodata`` RO, ``module_ro_after_init`` RO,
``module_data`` RW, and the init sections ``module_init_text`` / ``_init_rodata`` /
``_init_data``), the loader's copy (a ``write`` of the whole section, after which the
status-quo path applies the STRICT_MODULE_RWX permissions), the init sections freed once
``mod->init`` returns (``do_free_init``), then unload/reload churn of random loaded modules
(livepatch and kprobe-style modules come and go).

CPUs: at boot ``systemd-udevd``'s workers and ``systemd-modules-load`` run ``modprobe`` in
parallel, so each boot-time load runs on a CPU drawn uniformly over the machine (on a
uniformly drawn node, then one of its CPUs); the churn after boot is one administrator's or
agent's ``modprobe``/``rmmod`` sequence, all on one CPU drawn once. ``module_alloc`` asks for
``NUMA_NO_NODE``: its pages come from the loading CPU's node first.

Numbers: section sizes come from real ``.ko`` files (see docs/module-data.md): the shipped
``debian`` data set by default, or ``--set modules.source=DIR|FILE.csv``. ``profile`` picks
which modules load: ``server`` (a documented list of a typical server's modules), ``all``
(every module once) or ``sample`` (``n`` drawn at random). Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, SAMPLE, WRITE, Event, Request
from framework.workload import Workload
from framework.workloads.cpus import CpuChooser
from framework.workloads.moddata import PROFILES, ModuleSections, load_source, select_profile

CORE = (("text", "module_text", "ROX"), ("rodata", "module_rodata", "RO"),
        ("ro_after_init", "module_ro_after_init", "RO"), ("data", "module_data", "RW"))
INIT = (("init_text", "module_init_text", "ROX"), ("init_rodata", "module_init_rodata", "RO"),
        ("init_data", "module_init_data", "RW"))


class Modules(Workload):
    """Boot-time module loads, init-section release, unload/reload churn."""

    name = "modules"
    summary = "module loads (real .ko section sizes), init release, unload/reload churn"
    source = "section sizes from Debian's linux-image .ko files (workloads/data)"
    params = (
        Param("source", str, "debian", "data set name, directory of .ko files, or CSV file"),
        Param("profile", str, "server", "which modules load", choices=PROFILES),
        Param("n", int, 100, "modules drawn for profile=sample", min=1, max=100000),
        Param("reloads", int, 200, "unload + reload cycles after boot", min=0, max=10**7),
        Param("unload_at_end", bool, False, "unload every module at the end"),
        Param("sample_every", int, 0, "emit a sample event every N loads (0: never)",
              min=0, max=10**9),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        self.table = load_source(params["source"])

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Load the profile, churn, optionally unload all."""
        cfg = self.config
        chosen = select_profile(self.table, cfg["profile"], cfg["n"], rng)
        cpus = CpuChooser(rng, self.machine)
        loaded: list[list[int]] = []
        ids = iter(range(1, 1 << 62))
        every = cfg["sample_every"]
        for count, mod in enumerate(chosen, start=1):
            core, evs = self._load(mod, ids, rng, cpus, None)
            loaded.append(core)
            yield from evs
            if every and count % every == 0:
                yield Event(SAMPLE)
        churn_cpu = cpus.any()  # one modprobe/rmmod caller after boot
        for _ in range(cfg["reloads"] if loaded else 0):
            i = int(rng.integers(len(loaded)))
            yield from (Event(FREE, aid) for aid in loaded[i])
            core, evs = self._load(chosen[i], ids, rng, cpus, churn_cpu)
            loaded[i] = core
            yield from evs
        if cfg["unload_at_end"]:
            for core in loaded:
                yield from (Event(FREE, aid) for aid in core)

    def _load(self, mod: ModuleSections, ids: Iterator[int], rng: np.random.Generator,
              cpus: CpuChooser, cpu: int | None) -> tuple[list[int], list[Event]]:
        """One load_module() on ``cpu`` (None: a boot-time load, on a drawn node's CPU)."""
        node = int(rng.integers(self.machine.nodes))  # drawn always: the stream stays the same
        if cpu is None:
            cpu = cpus.on(node)
        else:
            node = cpu * self.machine.nodes // self.machine.cpus  # the caller's cpu_to_node()
        core: list[int] = []
        init: list[int] = []
        evs: list[Event] = []
        for group, out in ((CORE, core), (INIT, init)):
            for field, site, perm in group:
                size = getattr(mod, field)
                if size <= 0:
                    continue
                aid = next(ids)
                out.append(aid)
                evs.append(Event(ALLOC, aid, Request(site, size, perm, False, node, "OWNER", cpu)))
        for aid in core + init:  # the loader copies every section, then formation seals
            evs.append(Event(WRITE, aid, None, 0))
        evs.extend(Event(FREE, aid) for aid in init)  # do_free_init()
        return core, evs
