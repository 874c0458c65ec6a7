"""Plugin loading: built-ins and third-party packages through the same hooks.

Built-in modules are registered from :data:`DEFAULT_PLUGINS`; installed packages from the
entry-point group ``framework``, each loaded on its own so that one broken package is listed
as failed (with its error) and the rest keep working. ``FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD=1``
turns entry-point loading off (the test suite and a reviewer who wants only the built-ins).

Hooks are called through the plugin manager (so pluggy's tracing, call monitoring and
wrappers see them), one plugin at a time with a ``register`` callback bound to that plugin:
what it registers is recorded with its origin per kind (:class:`Kind`), and a hook that
raises fails only its own plugin.
"""

from __future__ import annotations

import enum
import importlib
import os
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

import attrs
import click
import pluggy

from framework import hookspecs
from framework.allocator import Allocator
from framework.errors import PluginError, UnknownName
from framework.machine.spec import MachineSpec
from framework.params import FIXED_SCOPES
from framework.workload import Workload

AUTOLOAD_ENV = "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "framework.machine.presets",
    "framework.designs.baseline",
    "framework.designs.gfp_unmapped",
    "framework.designs.unmapped_api",
    "framework.designs.migratetype",
    "framework.designs.jit_slab",
    "framework.designs.vmap_area",
    "framework.designs.execmem_rox",
    "framework.designs.grouped_pages",
    "framework.designs.secretmem_pmd",
    "framework.designs.guest_memfd",
    "framework.workloads.builtin",
    "framework.plugin_commands",
)
# The commands the CLI defines itself (framework/cli.py); a plugin may not take their names.
CORE_COMMANDS: frozenset[str] = frozenset({"bench", "compare", "plot", "review", "list"})


class Kind(enum.Enum):
    """What a plugin registers; each kind has its own namespace of names."""

    ALLOCATOR = "allocator"
    WORKLOAD = "workload"
    MACHINE = "machine"
    COMMAND = "command"


@attrs.frozen(slots=True)
class Origin:
    """Where a registered thing comes from: ``builtin`` or a distribution name and version."""

    package: str
    version: str = ""

    def __str__(self) -> str:
        """``builtin``, or ``DISTRIBUTION VERSION`` as ``framework list`` shows it."""
        return f"{self.package} {self.version}".strip()


BUILTIN = Origin("builtin")


@attrs.define(slots=True)
class Registry:
    """Everything the hooks registered, by kind and name, with where each came from."""

    allocators: dict[str, type[Allocator]] = attrs.field(factory=dict)
    workloads: dict[str, type[Workload]] = attrs.field(factory=dict)
    machines: dict[str, MachineSpec] = attrs.field(factory=dict)
    commands: dict[str, click.Command] = attrs.field(factory=dict)
    origins: dict[Kind, dict[str, Origin]] = attrs.field(
        factory=lambda: {kind: {} for kind in Kind})
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

    def origin(self, kind: Kind, name: str) -> Origin:
        """Where the ``kind`` called ``name`` comes from (``builtin`` when not recorded)."""
        return self.origins[kind].get(name, BUILTIN)

    def table(self, kind: Kind) -> dict[str, Any]:
        """The registered things of one kind, by name."""
        tables: dict[Kind, dict[str, Any]] = {
            Kind.ALLOCATOR: self.allocators, Kind.WORKLOAD: self.workloads,
            Kind.MACHINE: self.machines, Kind.COMMAND: self.commands}
        return tables[kind]


T = TypeVar("T")


def _lookup(kind: str, table: dict[str, T], name: str) -> T:
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


# Each plugin's hooks are called in this order; plugins in registration order (built-ins
# first, so a third party can never take a built-in's name, whatever its kind).
HOOKS: tuple[tuple[str, Kind], ...] = (
    ("register_machines", Kind.MACHINE),
    ("register_allocators", Kind.ALLOCATOR),
    ("register_workloads", Kind.WORKLOAD),
    ("register_commands", Kind.COMMAND),
)


def build_registry(pm: pluggy.PluginManager | None = None,
                   origins: Mapping[str, Origin] | None = None) -> Registry:
    """Call every plugin's hooks through ``pm`` and collect what they register.

    :param pm: a manager with plugins registered (default: the built-ins and the entry
        points, which then also give ``origins``).
    :param origins: the distribution of each plugin name; plugins not in it are built-in.

    Each plugin's implementation of a hook is called on its own: a duplicate or reserved
    name, or a hook that raises, marks that plugin as failed and the others stay.
    """
    reg = Registry()
    manager = pm or plugin_manager(reg.failed)
    by_plugin = dict(origins or {})
    if pm is None:
        by_plugin.update(load_entry_points(manager, reg.failed))
    for name, plugin in manager.list_name_plugin():  # registration order
        for hook, kind in HOOKS:
            if plugin is None or not _implements(manager, hook, plugin):
                continue
            register = _registrar(reg, kind, name, by_plugin.get(name, BUILTIN))
            try:
                _only(manager, hook, name)(register=register)
            except Exception as exc:
                reg.failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return reg


def _implements(pm: pluggy.PluginManager, hook: str, plugin: object) -> bool:
    return any(impl.plugin is plugin for impl in getattr(pm.hook, hook).get_hookimpls())


def _only(pm: pluggy.PluginManager, hook: str, plugin_name: str) -> pluggy.HookCaller:
    """The manager's caller of ``hook`` restricted to the plugin called ``plugin_name``."""
    others = [plugin for name, plugin in pm.list_name_plugin()
              if name != plugin_name and plugin is not None]
    return pm.subset_hook_caller(hook, remove_plugins=others)


def _registrar(reg: Registry, kind: Kind, plugin_name: str,
               origin: Origin) -> Callable[[Any], None]:
    table = reg.table(kind)

    def register(obj: Any) -> None:
        name = _checked_name(reg, kind, plugin_name, obj)
        table[name] = obj
        reg.origins[kind][name] = origin
    return register


def _checked_name(reg: Registry, kind: Kind, plugin_name: str, obj: Any) -> str:
    """The name ``obj`` registers under, if free in its kind (and as a ``--set`` scope)."""
    if kind is Kind.COMMAND and not isinstance(obj, click.Command):
        raise PluginError(f"{plugin_name} registers {obj!r} as a command: expected a "
                          "click.Command")
    name: str = obj.name
    if name in reg.table(kind):
        raise PluginError(f"{plugin_name} registers {kind.value} {name!r}, which is "
                          "already registered")
    if kind is Kind.COMMAND and name in CORE_COMMANDS:
        raise PluginError(f"{plugin_name} registers command {name!r}, a built-in command")
    if kind in (Kind.ALLOCATOR, Kind.WORKLOAD):  # both are --set scopes: one namespace
        other = reg.workloads if kind is Kind.ALLOCATOR else reg.allocators
        if name in other or name in FIXED_SCOPES:
            raise PluginError(f"{plugin_name} registers {kind.value} {name!r}: the --set "
                              "scope of that name is taken")
    return name


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry()
    return _REGISTRY
