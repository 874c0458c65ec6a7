"""Registers the built-in workloads through the same hook third parties use."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from framework.hookspecs import hookimpl
from framework.workload import Workload

BUILTIN: tuple[tuple[str, str], ...] = (
    ("framework.workloads.secretmem", "Secretmem"),
    ("framework.workloads.modules", "Modules"),
    ("framework.workloads.bpf", "Bpf"),
    ("framework.workloads.trampolines", "Trampolines"),
    ("framework.workloads.pks_pagetables", "PksPagetables"),
    ("framework.workloads.guest", "Guest"),
    ("framework.workloads.dma_nokmap", "DmaNokmap"),
    ("framework.workloads.background", "Background"),
    ("framework.workloads.server_mix", "ServerMix"),
    ("framework.workloads.trace", "Trace"),
    ("framework.workloads.ftrace", "Ftrace"),
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
