"""The one resolver of ``--set`` scopes (framework/config.py).

Expected values are the declared defaults and the figures of the ``default`` preset as written
in the source (framework/machine/presets.py: 64 GiB, 1 node, 16 CPUs; framework/machine/
costs.py: ``zero_page`` 897 cycles; framework/tlb/settings.py: ``dist`` zipf), or the values
the test sets itself.
"""

from __future__ import annotations

import pickle

import attrs
import pytest

from framework.config import (
    Cell,
    CellConfig,
    freeze_sets,
    resolve_cell,
    resolve_scope,
    resolve_sets,
    scope_names,
)
from framework.engine import prepare
from framework.errors import BadParameter, UnknownName
from framework.plugins import get_registry
from framework.sweep import make_cells

REG = get_registry()
DEFAULT = REG.machine("default")


def cell(plugin: str = "baseline", workload: str = "secretmem",
         **sets: dict[str, str]) -> Cell:
    return Cell(plugin, workload, "default", 1, freeze_sets(sets))


def test_no_sets_gives_every_default() -> None:
    config = resolve_cell(cell("gfp-unmapped"), REG)
    assert (config.machine.mem_gib, config.machine.nodes, config.machine.cpus) == (64, 1, 16)
    assert config.costs["zero_page"] == 897
    assert config.faults["alloc_fail_rate"] == 0.0
    assert config.tlb["dist"] == "zipf"
    assert config.workload["processes"] == 512
    assert config.plugin["variant"] == "posted"
    assert config.background is None


def test_each_scope_parsed_into_its_type() -> None:
    config = resolve_cell(cell(
        "gfp-unmapped", machine={"mem_gib": "4", "gbpages": "0"}, costs={"zero_page": "10"},
        faults={"alloc_fail_rate": "0.5"}, tlb={"dist": "uniform"},
        secretmem={"processes": "0x10"}, **{"gfp-unmapped": {"variant": "fixed"}}), REG)
    assert (config.machine.mem_gib, config.machine.gbpages) == (4, False)
    assert config.machine.cpus == 16  # the preset's, not overridden
    assert config.costs["zero_page"] == 10.0
    assert config.faults["alloc_fail_rate"] == 0.5
    assert config.tlb["dist"] == "uniform"
    assert config.workload["processes"] == 16  # int(..., 0): hex accepted
    assert config.plugin["variant"] == "fixed"


def test_background_resolved_with_the_workloads_target() -> None:
    """``secretmem.background=0.2`` runs the load with target 0.2 and its other knobs."""
    config = resolve_cell(cell(secretmem={"background": "0.2"}, background={"used": "0.5"}),
                          REG)
    assert config.background is not None
    assert (config.background["target"], config.background["used"]) == (0.2, 0.5)
    assert config.params()["background"] == dict(config.background)
    alone = resolve_cell(cell(workload="background"), REG)
    assert alone.background is None  # the load itself never runs on top of itself


def test_params_json_has_every_scope() -> None:
    params = resolve_cell(cell(), REG).params()
    assert sorted(params) == ["costs", "faults", "machine", "plugin", "tlb", "workload"]
    assert params["machine"]["mem_gib"] == 64 and "name" not in params["machine"]


@pytest.mark.parametrize(
    ("sets", "error", "needles"),
    [
        ({"machine": {"mem_gib": "lots"}}, BadParameter, ("machine.mem_gib='lots'", "integer")),
        ({"costs": {"invlpg": "-1"}}, BadParameter, ("costs.invlpg", ">= 0")),
        ({"faults": {"cpa_fail_rate": "2"}}, BadParameter, ("faults.cpa_fail_rate", "0 to 1")),
        ({"tlb": {"dist": "gauss"}}, BadParameter, ("tlb.dist='gauss'", "zipf, uniform")),
        ({"secretmem": {"processes": "0"}}, BadParameter, ("secretmem.processes",)),
        ({"jit-slab": {"variant": "x"}}, BadParameter, ("jit-slab.variant='x'", "posted")),
        ({"tlb": {"nosuch": "1"}}, UnknownName, ("tlb.nosuch", "dist")),
        ({"nosuch": {"x": "1"}}, UnknownName, ("'nosuch'", "machine, costs, faults, tlb")),
    ],
)
def test_bad_values_raise_naming_them(sets: dict[str, dict[str, str]], error: type[Exception],
                                      needles: tuple[str, ...]) -> None:
    """Every given scope is checked, also one the cell does not use (jit-slab here)."""
    with pytest.raises(error) as info:
        resolve_cell(cell(**sets), REG)
    for needle in needles:
        assert needle in str(info.value)
    with pytest.raises(error):
        resolve_sets(REG, sets, DEFAULT)


def test_unknown_names_of_the_cell() -> None:
    for bad in (Cell("nosuch", "secretmem", "default", 1), Cell("baseline", "nosuch", "default", 1),
                Cell("baseline", "secretmem", "nosuch", 1)):
        with pytest.raises(UnknownName, match="nosuch"):
            resolve_cell(bad, REG)


def test_scope_table() -> None:
    assert scope_names(REG)[:4] == ["machine", "costs", "faults", "tlb"]
    assert {"secretmem", "background", "baseline", "vmap-area"} <= set(scope_names(REG))
    assert resolve_scope(REG, "machine", {"cpus": "2"}, DEFAULT).cpus == 2
    assert resolve_scope(REG, "vmap-area", {}, DEFAULT) == {"variant": "posted", "chunk_mib": 2,
                                                             "modules": 0, "backend": "buddy"}


def test_cells_carry_their_config_and_the_engine_uses_it() -> None:
    """The engine takes the attached config as is: a config saying 4 GiB wins over the
    cell's (empty) strings, so nothing is parsed again in the worker."""
    cells = make_cells(["baseline"], ["secretmem"], "default", 2, 1,
                       {"machine": {"mem_gib": "8"}}, REG)
    assert [c.config is not None and c.config.machine.mem_gib for c in cells] == [8, 8]
    four = attrs.evolve(resolve_cell(cell(), REG), machine=attrs.evolve(DEFAULT, mem_gib=4))
    setup = prepare(Cell("baseline", "secretmem", "default", 1, (), four), REG)
    assert setup.kernel.spec.mem_gib == 4 and setup.params["machine"]["mem_gib"] == 4


def test_cell_equality_and_pickling_ignore_nothing_but_config() -> None:
    plain = cell(machine={"mem_gib": "4"})
    resolved = attrs.evolve(plain, config=resolve_cell(plain, REG))
    assert plain == resolved and hash(plain) == hash(resolved)
    back = pickle.loads(pickle.dumps(resolved))  # a worker process receives it so
    assert isinstance(back.config, CellConfig) and back.config.machine.mem_gib == 4


# -- each default written once ---------------------------------------------------------------
def test_machine_spec_defaults_are_the_params_defaults() -> None:
    """MachineSpec's hardware fields are exactly MACHINE_PARAMS, with the same defaults, and
    the ``default`` preset states none of them (it is MachineSpec's defaults)."""
    from framework.machine.spec import MACHINE_PARAMS, MachineSpec

    fields = {f.name: f.default for f in attrs.fields(MachineSpec)
              if f.name not in ("name", "summary", "source")}
    assert fields == {p.name: p.default for p in MACHINE_PARAMS}
    assert attrs.evolve(DEFAULT, summary="", source="") == MachineSpec(name="default")
    assert (DEFAULT.mem_gib, DEFAULT.nodes, DEFAULT.cpus, DEFAULT.reserved_mib) == (64, 1, 16, 64)


def test_no_dead_machine_parameter() -> None:
    """``cpu_ghz`` was accepted and never read (every cost is in cycles): it is gone."""
    with pytest.raises(UnknownName, match=r"machine\.cpu_ghz"):
        resolve_cell(cell(machine={"cpu_ghz": "2.0"}), REG)


def test_plugins_read_declared_defaults_only() -> None:
    """A design reads its resolved ``params[KEY]``; ``params.get(KEY, default)`` would write
    the default a second time beside its ``Param``."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "plugins").glob("*.py")):
        assert "params.get(" not in path.read_text(encoding="utf-8"), path.name


def test_metrics_does_not_import_the_engine() -> None:
    """framework.metrics reads a run through a protocol: no import of framework.engine in
    it, not even one for type checking, so the engine/metrics import cycle is gone."""
    import ast
    from pathlib import Path

    import framework.metrics

    tree = ast.parse(Path(framework.metrics.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    assert "framework.engine" not in imported
