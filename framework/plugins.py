"""Plugin loading: built-ins and third-party packages through the same hooks.

Built-in modules are registered from :data:`DEFAULT_PLUGINS`; installed packages from the
entry-point group ``framework``, each loaded on its own so that one broken package is listed
as failed (with its error) and the rest keep working. ``FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD=1``
turns entry-point loading off (the test suite and a reviewer who wants only the built-ins).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import attrs
import pluggy

from framework import hookspecs
from framework.allocator import Allocator
from framework.errors import PluginError, UnknownName
from framework.machine.spec import MachineSpec
from framework.workload import Workload

AUTOLOAD_ENV = "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "framework.machine.presets",
    "plugins.baseline",
    "plugins.gfp_unmapped",
    "plugins.unmapped_api",
    "plugins.migratetype",
    "plugins.jit_slab",
    "plugins.vmap_area",
    "workloads.builtin",
)


@attrs.frozen(slots=True)
class Origin:
    """Where a registered thing comes from: ``builtin`` or a distribution name and version."""

    package: str
    version: str = ""


@attrs.define(slots=True)
class Registry:
    """Everything the hooks registered, by name, with where each came from."""

    allocators: dict[str, type[Allocator]] = attrs.field(factory=dict)
    workloads: dict[str, type[Workload]] = attrs.field(factory=dict)
    machines: dict[str, MachineSpec] = attrs.field(factory=dict)
    origins: dict[str, Origin] = attrs.field(factory=dict)
    failed: dict[str, str] = attrs.field(factory=dict)

    def allocator(self, name: str) -> type[Allocator]:
        """The allocator class called ``name``; :class:`UnknownName` lists the known ones.

        :raises PluginError: when ``name`` is a plugin that failed to load (an import
            error in its module), with that error, rather than "unknown plugin".
        """
        self.check_loaded(name)
        return _lookup("plugin", self.allocators, name)

    def workload(self, name: str) -> type[Workload]:
        """The workload class called ``name`` (see :meth:`allocator` for the errors)."""
        self.check_loaded(name)
        return _lookup("workload", self.workloads, name)

    def check_loaded(self, name: str) -> None:
        """:raises PluginError: when ``name`` is not registered because its plugin failed
        to load (its import error is in :attr:`failed`)."""
        if name in self.allocators or name in self.workloads:
            return
        error = self.failed.get(name)
        if error is None:  # a built-in module records its module path, e.g. plugins.x_y
            error = next((e for key, e in self.failed.items()
                          if key.rsplit(".", 1)[-1].replace("_", "-") == name), None)
        if error is not None:
            raise PluginError(f"plugin {name!r} failed to load: {error} (framework list "
                              "shows every plugin that failed)")

    def machine(self, name: str) -> MachineSpec:
        """The machine preset called ``name``."""
        return _lookup("machine", self.machines, name)


def _lookup(kind: str, table: dict[str, Any], name: str) -> Any:
    if name not in table:
        raise UnknownName(f"unknown {kind} {name!r}: choose from {', '.join(table)}")
    return table[name]


def plugin_manager(failed: dict[str, str] | None = None) -> pluggy.PluginManager:
    """A manager with the hookspecs and the built-in plugin modules.

    A built-in module that fails to import is recorded in ``failed`` (like a broken
    third-party plugin) instead of taking the command down.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        try:
            pm.register(importlib.import_module(name), name)
        except Exception as exc:
            if failed is not None:
                failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return pm


def load_entry_points(pm: pluggy.PluginManager, failed: dict[str, str]) -> dict[str, Origin]:
    """Load each ``framework`` entry point on its own; record failures instead of raising."""
    origins: dict[str, Origin] = {}
    if os.environ.get(AUTOLOAD_ENV, "") not in ("", "0"):
        return origins
    for ep in entry_points(group=hookspecs.PROJECT):
        try:
            module = ep.load()
            pm.register(module, ep.name)
            pm.check_pending()
        except Exception as exc:
            failed[ep.name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            _unregister(pm, ep.name)
            continue
        dist = ep.dist
        origins[ep.name] = Origin(dist.name if dist else ep.value,
                                  dist.version if dist else "")
    return origins


def _unregister(pm: pluggy.PluginManager, name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)


def build_registry(pm: pluggy.PluginManager | None = None) -> Registry:
    """Call every plugin's hooks and collect what they register.

    Each hook implementation is called on its own: a duplicate name, or a hook that raises,
    marks that plugin as failed and the others stay.
    """
    reg = Registry()
    manager = pm or plugin_manager(reg.failed)
    ep_origins = load_entry_points(manager, reg.failed) if pm is None else {}
    tables: list[tuple[str, dict[str, Any]]] = [
        ("register_machines", reg.machines),
        ("register_allocators", reg.allocators),
        ("register_workloads", reg.workloads),
    ]
    for hook, table in tables:
        for impl in getattr(manager.hook, hook).get_hookimpls():  # registration order
            name = impl.plugin_name
            origin = ep_origins.get(name, Origin("builtin"))
            try:
                impl.function(_registrar(table, name, origin, reg))
            except Exception as exc:
                reg.failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return reg


def _registrar(table: dict[str, Any], plugin_name: str, origin: Origin,
               reg: Registry) -> Callable[[Any], None]:
    def register(obj: Any) -> None:
        name = obj.name
        if name in table:
            raise PluginError(f"{plugin_name} registers {name!r}, which is already registered")
        table[name] = obj
        reg.origins[name] = origin
    return register


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY
