"""Fuzzing every parameter parser and input reader: only FrameworkError (or success) comes out.

A ``--set`` value is not only parsed: it is *used* (the fault orders are split, the machine
is laid out, the workload reads its file and starts making events, the design is built).
So each fuzzed value goes through :func:`framework.engine.prepare` and the first events,
which is where ``faults.alloc_fail_orders=9,x`` used to escape as a ValueError traceback.
The trace CSV and ftrace readers have their own fuzz tests in ``test_hostile_input.py``;
here the module-data CSV reader and the module source names.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.engine import Cell, freeze_sets, prepare
from framework.errors import BadParameter, FrameworkError
from framework.kernel.faults import FAULT_PARAMS, Faults
from framework.machine.costs import DEFAULT_COSTS
from framework.machine.spec import MACHINE_PARAMS
from framework.params import resolve
from framework.plugins import build_registry, plugin_manager
from framework.tlb.settings import TLB_PARAMS
from framework.workloads.moddata import CSV_HEADER, load_source, read_csv
from tests.test_cli import one_line_error, run
from tests.test_hostile_input import NUMBERS, WORDS

REGISTRY = build_registry(plugin_manager())
# derandomized: CI sees the same examples every run (a random run found the ENAMETOOLONG
# of a 5000-character module source; "1" * 5000 is among the values now)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
SMALL = {"machine": {"mem_gib": "2"}}
# Workloads whose file parameter would read the fuzzed text as a path; they have their own
# reader fuzz tests, and a real path is given them here so their other parameters are used.
NEEDS_FILE = {"trace", "ftrace"}


def _keys() -> list[tuple[str, str]]:
    pairs = [("machine", p.name) for p in MACHINE_PARAMS]
    pairs += [("faults", p.name) for p in FAULT_PARAMS]
    pairs += [("tlb", p.name) for p in TLB_PARAMS]
    pairs += [("costs", name) for name in DEFAULT_COSTS]
    for name, cls in {**REGISTRY.allocators, **REGISTRY.workloads}.items():
        pairs += [(name, p.name) for p in cls.params]
    return pairs


VALUES = st.one_of(NUMBERS, WORDS, st.sampled_from([
    "inf", "-inf", "1e400", "nan", "true", "off", "posted", "fixed", "0.5", "-0.0", "9,x",
    "99", "0,10", "10,11", ",", "0x9", "1" * 5000, "\x00", "1e-400", "0" * 40 + "1"]),
    st.text(max_size=12))


def _cell(scope: str, key: str, value: str) -> Cell:
    plugin = scope if scope in REGISTRY.allocators else "baseline"
    workload = scope if scope in REGISTRY.workloads and scope not in NEEDS_FILE else "secretmem"
    sets = {**SMALL, scope: {key: value}} if scope != "machine" else {scope: {key: value}}
    return Cell(plugin, workload, "default", 1, freeze_sets(sets))


@FUZZ
@given(pair=st.sampled_from(_keys()), value=VALUES)
def test_every_set_value_is_used_or_refused_in_one_line(pair: tuple[str, str], value: str
                                                        ) -> None:
    scope, key = pair
    try:
        setup = prepare(_cell(scope, key, value), REGISTRY)
        list(itertools.islice(setup.events, 64))
    except FrameworkError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize(("raw", "orders"), [
    ("", frozenset()), ("0", {0}), ("9,0", {0, 9}), (" 10 , 3 ,", {3, 10}),
])
def test_fault_orders_parsed(raw: str, orders: set[int]) -> None:
    """Orders 0..10 (v6.3 MAX_ORDER = 11, exclusive), spaces and empty items allowed."""
    params = resolve("faults", FAULT_PARAMS, {"alloc_fail_orders": raw})
    assert Faults.from_params(params, 0).alloc_fail_orders == orders


@pytest.mark.parametrize("raw", ["9,x", "99", "11", "-1", "0x3", "1.5", "9;8"])
def test_fault_orders_refused(raw: str) -> None:
    with pytest.raises(BadParameter, match="comma list of orders 0 to 10"):
        resolve("faults", FAULT_PARAMS, {"alloc_fail_orders": raw})


# -- the module-data CSV reader ------------------------------------------------------------
HEADER = ",".join(CSV_HEADER)
MOD_ROW = st.lists(st.one_of(NUMBERS, WORDS), max_size=len(CSV_HEADER) + 2).map(",".join)


@FUZZ
@given(rows=st.lists(MOD_ROW, max_size=8), header=st.booleans(), junk=st.binary(max_size=16),
       cut=st.integers(0, 300), bom=st.booleans())
def test_module_csv_reader_only_raises_input_errors(rows: list[str], header: bool,
                                                    junk: bytes, cut: int, bom: bool) -> None:
    text = "\n".join(([HEADER] if header else []) + rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        for i, blob in enumerate([data, data[:cut], data + junk, junk + data]):
            path = Path(tmp) / f"{i}.csv"
            path.write_bytes(blob)
            try:
                read_csv(path)
            except FrameworkError:
                pass


@FUZZ
@given(source=st.one_of(WORDS, st.sampled_from(["debian", "./debian", "/dev/null",
                                                "/proc/self/status", "x.csv", "no/such",
                                                "1" * 5000, "a/" * 3000])))
def test_module_source_names_only_raise_input_errors(source: str) -> None:
    try:
        load_source(source)
    except FrameworkError:
        pass


# -- through the installed command -----------------------------------------------------------
@pytest.mark.parametrize("command", [
    ("bench", "--plugins", "baseline", "--workloads", "secretmem"),
    ("check-plugin", "baseline", "--examples", "1", "--steps", "1"),
])
@pytest.mark.parametrize("value", ["9,x", "99"])
def test_cli_bad_fault_orders_one_line(command: tuple[str, ...], value: str) -> None:
    proc = run(*command, "--set", f"faults.alloc_fail_orders={value}")
    one_line_error(proc, f"faults.alloc_fail_orders='{value}'", "orders 0 to 10")
    assert proc.stdout == ""


def test_cli_save_failures_unwritable_is_one_line_before_the_search() -> None:
    proc = run("check-plugin", "baseline", "--save-failures", "/proc/framework-failures")
    one_line_error(proc, "--save-failures /proc/framework-failures", "cannot write")
    assert proc.stdout == ""  # refused before any check ran
