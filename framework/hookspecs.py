"""The hooks a plugin implements. Built-in designs, workloads and machines use the same ones.

Each hook receives a ``register`` callback and returns nothing; it is called once per
plugin manager, through the manager, when :func:`framework.plugins.get_registry` first builds
the registry (at CLI start-up, before any run). Hooks are not on the hot path: the engine
calls the registered classes' methods directly.

A plugin module declares implementations with :data:`hookimpl`::

    from framework.hookspecs import hookimpl

    @hookimpl
    def register_allocators(register):
        register(MyAllocator)

Register the module under the entry-point group ``framework`` in its ``pyproject.toml``::

    [project.entry-points.framework]
    my_allocator = "my_allocator"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "framework"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_allocators(register: Callable[[type[Any]], None]) -> None:
    """Register allocator designs.

    Called once when the registry is built. Call ``register(cls)`` once per design, where
    ``cls`` is a subclass of :class:`framework.allocator.Allocator` with a unique ``name``.
    A duplicate name is an error reported against the second plugin. Returns nothing.
    """


@hookspec
def register_workloads(register: Callable[[type[Any]], None]) -> None:
    """Register workloads.

    Called once when the registry is built. Call ``register(cls)`` once per workload, where
    ``cls`` is a subclass of :class:`framework.workload.Workload` with a unique ``name``.
    Returns nothing.
    """


@hookspec
def register_machines(register: Callable[[Any], None]) -> None:
    """Register machine presets.

    Called once when the registry is built. Call ``register(spec)`` once per preset, where
    ``spec`` is a :class:`framework.machine.spec.MachineSpec` with a unique ``name``.
    Returns nothing.
    """


@hookspec
def register_commands(register: Callable[[Any], None]) -> None:
    """Register extra ``framework`` subcommands.

    Called once when the registry is built (``framework --help`` and an unknown command name
    build it). Call ``register(command)`` once per command, where ``command`` is a
    :class:`click.Command` whose ``name`` is not taken (the built-in ``bench``, ``compare``,
    ``plot``, ``list``, ``check-plugin`` and ``new-plugin`` are). Returns nothing.
    """
