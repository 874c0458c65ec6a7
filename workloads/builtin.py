"""Registers the built-in workloads through the same hook third parties use."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from framework.hookspecs import hookimpl
from framework.workload import Workload

BUILTIN: tuple[tuple[str, str], ...] = (
    ("workloads.secretmem", "Secretmem"),
    ("workloads.modules", "Modules"),
    ("workloads.bpf", "Bpf"),
    ("workloads.trampolines", "Trampolines"),
    ("workloads.pks_pagetables", "PksPagetables"),
    ("workloads.guest", "Guest"),
    ("workloads.dma_nokmap", "DmaNokmap"),
    ("workloads.background", "Background"),
    ("workloads.server_mix", "ServerMix"),
    ("workloads.trace", "Trace"),
    ("workloads.ftrace", "Ftrace"),
)


@hookimpl
def register_workloads(register: Callable[[type[Workload]], None]) -> None:
    """Register every built-in workload."""
    for module, cls in BUILTIN:
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # TODO(dev): remove once every module exists
            if exc.name != module:
                raise
            continue
        register(getattr(found, cls))
