"""One cell's parameters: the ``--set`` scopes, resolved once into typed values.

A :class:`Cell` names a run (plugin, workload, machine preset, seed) and carries the user's
``--set`` strings by scope. :func:`resolve_cell` turns them into a :class:`CellConfig` of
typed, checked values with every default filled in; the sweep resolves each cell once before
anything runs and the config travels with the cell to the process that runs it, so the engine
never parses a string.

:func:`resolve_scope` is the only place a scope name is told apart: ``machine`` (a preset
with overrides), ``costs`` (the cycle table), ``faults``, ``tlb``, then any workload or
allocator plugin by name (``background`` is a workload too). ``framework bench``,
``framework check-plugin`` and the engine all go through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from framework.errors import UnknownName
from framework.kernel.faults import FAULT_PARAMS
from framework.machine.costs import resolve_costs
from framework.machine.spec import MACHINE_PARAMS, MachineSpec, configure
from framework.params import FIXED_SCOPES, Param, resolve
from framework.plugins import Registry
from framework.tlb.settings import TLB_PARAMS, resolve_tlb
from framework.workload import BACKGROUND_PARAM

BACKGROUND = "background"  # the workload a --set NAME.background=X runs underneath
_DECLARED: dict[str, tuple[Param, ...]] = {"faults": FAULT_PARAMS, "tlb": TLB_PARAMS}

SetsKey = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


def freeze_sets(sets: Mapping[str, Mapping[str, str]]) -> SetsKey:
    """Make ``--set`` values hashable and ordered for a :class:`Cell`."""
    return tuple(sorted((s, tuple(sorted(kv.items()))) for s, kv in sets.items()))


@attrs.frozen(slots=True)
class CellConfig:
    """Every parameter of one cell, typed and checked, defaults filled in.

    :param machine: the preset with ``--set machine.*`` applied.
    :param costs: cycles per cost name (``--set costs.*``).
    :param faults: ``faults.*`` (see :mod:`framework.kernel.faults`).
    :param tlb: ``tlb.*`` (see :mod:`framework.tlb.settings`).
    :param workload: the cell's workload's parameters.
    :param plugin: the cell's allocator's parameters.
    :param background: the ``background`` load's parameters when the workload runs on top of
        it (``--set NAME.background=X`` with X > 0), else None.
    """

    machine: MachineSpec
    costs: Mapping[str, float]
    faults: Mapping[str, Any]
    tlb: Mapping[str, Any]
    workload: Mapping[str, Any]
    plugin: Mapping[str, Any]
    background: Mapping[str, Any] | None = None

    def params(self) -> dict[str, dict[str, Any]]:
        """The run's JSON ``params`` (fresh dicts: every resolved value, by scope)."""
        out: dict[str, dict[str, Any]] = {
            "machine": {p.name: getattr(self.machine, p.name) for p in MACHINE_PARAMS},
            "costs": dict(self.costs), "faults": dict(self.faults), "tlb": dict(self.tlb),
            "workload": dict(self.workload), "plugin": dict(self.plugin),
        }
        if self.background is not None:
            out[BACKGROUND] = dict(self.background)
        return out


@attrs.frozen(slots=True)
class Cell:
    """What one run is: names, the seed, and the user's ``--set`` values by scope.

    ``config`` is the resolved form of the rest (:func:`resolve_cell`), attached by the
    sweep so a worker does not parse again; it is derived, so equality ignores it.
    """

    plugin: str
    workload: str
    machine: str
    seed: int
    sets: SetsKey = ()
    config: CellConfig | None = attrs.field(default=None, eq=False, repr=False)

    def scope(self, name: str) -> dict[str, str]:
        """The ``--set`` values given for one scope."""
        for scope, items in self.sets:
            if scope == name:
                return dict(items)
        return {}


def scope_names(reg: Registry) -> list[str]:
    """Every ``--set`` scope: the fixed ones, then workloads, then allocator plugins."""
    return [*FIXED_SCOPES, *reg.workloads, *reg.allocators]


def resolve_scope(reg: Registry, scope: str, given: Mapping[str, Any],
                  preset: MachineSpec) -> Any:
    """One scope's values, parsed and checked, defaults filled in.

    :param preset: the machine ``machine.*`` values apply to.
    :returns: a :class:`MachineSpec` for ``machine``, ``{name: cycles}`` for ``costs``,
        ``{key: typed value}`` for the rest.
    :raises UnknownName: for a scope, key or cost name that does not exist.
    :raises BadParameter: for a value of the wrong type or out of range.
    """
    if scope == "machine":
        return configure(preset, given)
    if scope == "costs":
        return resolve_costs(given)
    return resolve(scope, _declared(reg, scope), given)


def _declared(reg: Registry, scope: str) -> tuple[Param, ...]:
    if scope in _DECLARED:
        return _DECLARED[scope]
    if scope in reg.allocators:  # the registry keeps plugin and workload names apart
        return reg.allocators[scope].params
    if scope in reg.workloads:
        return reg.workloads[scope].params
    raise UnknownName(f"unknown --set scope {scope!r}: choose from "
                      f"{', '.join(scope_names(reg))}")


def resolve_sets(reg: Registry, sets: Mapping[str, Mapping[str, Any]],
                 preset: MachineSpec) -> dict[str, Any]:
    """Every scope in ``sets`` resolved (in the order given, so the first bad one is named)."""
    return {scope: resolve_scope(reg, scope, values, preset) for scope, values in sets.items()}


def resolve_cell(cell: Cell, reg: Registry) -> CellConfig:
    """The cell's :class:`CellConfig`; every scope in ``cell.sets`` is checked too.

    :raises UnknownName: for an unknown machine, plugin, workload, scope or key.
    :raises BadParameter: for a bad value.
    """
    preset = reg.machine(cell.machine)
    reg.allocator(cell.plugin)
    reg.workload(cell.workload)
    given = {scope: dict(items) for scope, items in cell.sets}
    wanted = dict.fromkeys([*given, *FIXED_SCOPES, cell.workload, cell.plugin])
    done = {scope: resolve_scope(reg, scope, given.get(scope, {}), preset) for scope in wanted}
    target = done[cell.workload].get(BACKGROUND_PARAM, 0.0)
    background = None
    if target and cell.workload != BACKGROUND:  # the load's own knob is its "target"
        background = resolve_scope(reg, BACKGROUND, {**given.get(BACKGROUND, {}),
                                                     "target": target}, preset)
    tlb = resolve_tlb(cell.workload, given.get("tlb", {}))  # over the workload's profile
    return CellConfig(machine=done["machine"], costs=done["costs"], faults=done["faults"],
                      tlb=tlb, workload=done[cell.workload], plugin=done[cell.plugin],
                      background=background)
