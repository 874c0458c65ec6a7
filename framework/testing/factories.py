"""Turning what a suite supplies into a ``(kernel) -> Allocator`` factory, and small machines.

The kit's one required fixture, ``allocator_factory``, may return any of:

- a callable ``(kernel) -> Allocator`` (the general form);
- an :class:`~framework.allocator.Allocator` subclass (built with its default parameters);
- a pair ``(cls, {"key": value, ...})`` (parameters as ``--set`` would give them, strings or
  typed values, resolved and checked against ``cls.params``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from framework.allocator import Allocator
from framework.kernel.kernel import Kernel
from framework.machine.costs import resolve_costs
from framework.machine.spec import MachineSpec
from framework.params import resolve
from framework.testing.harness import Factory


def factory_for(cls: type[Allocator], params: Mapping[str, Any] | None = None) -> Factory:
    """A factory building ``cls`` with ``params`` resolved against ``cls.params``.

    :raises UnknownName, BadParameter: for a parameter ``cls`` does not declare or a bad value.
    """
    resolved = resolve(cls.name, cls.params, dict(params or {}))

    def build(kernel: Kernel) -> Allocator:
        return cls(kernel, dict(resolved))

    build.__qualname__ = f"factory_for({cls.__name__})"
    return build


def as_factory(supplied: Any) -> Factory:
    """Normalise what ``allocator_factory`` returned (see the module docstring)."""
    if isinstance(supplied, type) and issubclass(supplied, Allocator):
        return factory_for(supplied)
    if (isinstance(supplied, tuple) and len(supplied) == 2 and isinstance(supplied[0], type)
            and issubclass(supplied[0], Allocator)):
        return factory_for(supplied[0], supplied[1])
    if callable(supplied):
        return supplied  # type: ignore[no-any-return]
    raise TypeError(f"allocator_factory returned {supplied!r}: expected a callable "
                    "(kernel) -> Allocator, an Allocator subclass, or (cls, params)")


def small_machine(**overrides: Any) -> MachineSpec:
    """The kit's machine: 4 GiB, one node, 4 CPUs, 64 MiB reserved, fresh (override any field)."""
    fields: dict[str, Any] = {"name": "kit", "mem_gib": 4, "nodes": 1, "cpus": 4,
                              "reserved_mib": 64, "state": "fresh"}
    fields.update(overrides)
    return MachineSpec(**fields)


def small_kernel(**overrides: Any) -> Kernel:
    """A freshly booted kernel model on :func:`small_machine` with the default costs."""
    return Kernel(small_machine(**overrides), resolve_costs({}))
