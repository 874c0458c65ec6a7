"""Hostile input and injected faults: only FrameworkError may escape, and no fault may crash
a design or lose a page.

- Fault injection (``--set faults.*``): every registered design replays a small trace that
  touches every site, under each fault kind; the run must finish (no exception) with the
  accounting intact (no ``conservation`` or ``counters`` violation). Other rules may be
  recorded: that is the run reporting what the failure did (docs/faults.md).
- Hypothesis fuzzing of the trace CSV reader, the ftrace reader and the ``--set`` parser with
  huge and negative numbers, unknown names, bytes that are not UTF-8 and truncated files.
- Through the CLI: a design that raises and one that returns garbage are each reported as
  that design's failure (one line, exit 2) while the other runs' results are printed.
"""

from __future__ import annotations

import functools
import gzip
import lzma
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.engine import Cell, freeze_sets, run_cell
from framework.errors import FrameworkError
from framework.kernel.faults import FAULT_PARAMS
from framework.machine.costs import DEFAULT_COSTS
from framework.machine.spec import MACHINE_PARAMS
from framework.params import parse_set, resolve
from framework.plugins import build_registry, plugin_manager
from framework.request import FREED_BY, OPS, PERMS
from framework.sweep import validate_sets
from framework.testing.sites import SITE_PROFILES
from framework.workloads.ftrace_parse import parse, read_trace
from framework.workloads.trace import read_trace_csv
from tests.helpers import load_file

FIXTURES = Path(__file__).parent / "fixtures"
REGISTRY = build_registry(plugin_manager())
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
HEADER = "op,id,site,size,perm,zero,node,freed_by"

# -- fault injection -----------------------------------------------------------------------
FAULT_KINDS: dict[str, dict[str, str]] = {
    "alloc_fail_orders=0": {"alloc_fail_orders": "0"},  # every order-0 allocation fails
    "alloc_fail_orders=9": {"alloc_fail_orders": "9"},  # no 2 MiB block (refills fall back)
    "alloc_fail_rate=0.2": {"alloc_fail_rate": "0.2"},
    "cpa_fail_rate=0.2": {"cpa_fail_rate": "0.2"},
    "pt_fail_rate=0.5": {"pt_fail_rate": "0.5"},
}


@pytest.fixture(scope="module")
def every_site_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight rounds of: one typical request per site, each written, pressure, all freed."""
    rows = [HEADER]
    aid = 0
    for _round in range(8):
        ids = []
        for profile in SITE_PROFILES.values():
            req = profile.typical()
            aid += 1
            ids.append(aid)
            rows.append(f"alloc,{aid},{req.site},{req.size},{req.perm},{int(req.zero)},,"
                        f"{req.freed_by}")
            rows.append(f"write,{aid},,,,,,")
        rows.append("pressure,,,64,,,,")
        rows.extend(f"free,{i},,,,,," for i in ids)
    path = tmp_path_factory.mktemp("trace") / "every_site.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("fault", list(FAULT_KINDS))
@pytest.mark.parametrize("plugin", list(REGISTRY.allocators))
def test_faults_never_crash_or_lose_pages(plugin: str, fault: str, every_site_trace: Path
                                          ) -> None:
    sets = {"machine": {"mem_gib": "4"}, "faults": FAULT_KINDS[fault],
            "trace": {"path": str(every_site_trace)}}
    result = run_cell(Cell(plugin, "trace", "default", 7, freeze_sets(sets)), REGISTRY)
    counts = result["violation_counts"]
    assert "conservation" not in counts, result["violations"]
    assert "counters" not in counts, result["violations"]
    assert result["metrics"]["events"] == 8 * (3 * len(SITE_PROFILES) + 1)


def test_every_order_0_failing_gives_null_not_a_crash() -> None:
    """baseline on secretmem with every order-0 allocation failing: each fault is NULL
    (secretmem_fault -> VM_FAULT_OOM), nothing is handed out, nothing leaks."""
    sets = {"machine": {"mem_gib": "4"}, "faults": {"alloc_fail_orders": "0"},
            "secretmem": {"processes": "2"}}
    result = run_cell(Cell("baseline", "secretmem", "default", 1, freeze_sets(sets)), REGISTRY)
    metrics = result["metrics"]
    assert metrics["footprint_bytes"] == 0
    assert metrics["alloc_failures"] > 0
    assert result["violation_counts"] == {}


# -- the trace CSV reader --------------------------------------------------------------------
NUMBERS = st.one_of(st.integers(-(1 << 70), 1 << 70).map(str), st.sampled_from(
    ["", "0", "-1", "1e9", "0x10", "1_000", " 7 ", "９", "nan", "4096" * 300,
     "18446744073709551616"]))
WORDS = st.one_of(st.sampled_from([*OPS, *PERMS, *FREED_BY, *SITE_PROFILES, "", "ALLOC",
                                   "rox", "bogus", "\x00", "é", '"', "a,b"]), st.text(max_size=8))
ROW = st.lists(st.one_of(NUMBERS, WORDS), min_size=0, max_size=10).map(",".join)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _only_framework_errors(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except FrameworkError:
        pass


@FUZZ
@given(rows=st.lists(ROW, max_size=12), header=st.booleans(), junk=st.binary(max_size=16),
       cut=st.integers(0, 400), nodes=st.integers(1, 4))
def test_trace_csv_reader_only_raises_input_errors(rows: list[str], header: bool, junk: bytes,
                                                   cut: int, nodes: int) -> None:
    text = "\n".join(([HEADER] if header else []) + rows)
    data = text.encode("utf-8")
    variants = [data, data[:cut], data + junk, junk + data, data.replace(b",", b"\xff", 1)]
    with tempfile.TemporaryDirectory() as tmp:
        for i, blob in enumerate(variants):
            _only_framework_errors(read_trace_csv, _write(Path(tmp) / f"{i}.csv", blob), nodes)


def test_trace_csv_reader_named_failures(tmp_path: Path) -> None:
    """Exact messages for the classic bad inputs: missing, not UTF-8, huge and negative."""
    cases = {
        b"\xff\xfe" + HEADER.encode(): "not UTF-8",
        (HEADER + "\nalloc,1,kernel,99999999999999999999,RW,1,,OWNER\n").encode():
            "size 99999999999999999999: expected 1 to 70368744177664",  # 2**46: mem_gib <= 65536
        (HEADER + "\nalloc,-1,kernel,4096,RW,1,,OWNER\n").encode(): "id -1: expected 0 to",
        (HEADER + "\nalloc,1,kernel,4096,RWX,1,,OWNER\n").encode(): "perm 'RWX'",
        (HEADER + "\nalloc,1,kernel,4096,RW,1,9,OWNER\n").encode(): "node 9: expected 0 to 0",
        (HEADER + "\nalloc,1,kernel,40").encode(): "expected 8 fields, got 4",
    }
    for i, (blob, needle) in enumerate(cases.items()):
        with pytest.raises(FrameworkError, match=needle.replace("(", r"\(")):
            read_trace_csv(_write(tmp_path / f"{i}.csv", blob), 1)
    with pytest.raises(FrameworkError, match="cannot read"):
        read_trace_csv(str(tmp_path / "missing.csv"), 1)


# -- the ftrace reader -----------------------------------------------------------------------
GOOD_LINE = ("bash-1234    [001] d..1.   100.000001: mm_page_alloc: page=ffffea0000040000 "
             "pfn=0x1000 order=0 migratetype=0 gfp_flags=GFP_KERNEL")
FIELD = st.one_of(st.sampled_from([
    "page=0", "pfn=0x", "pfn=0x" + "f" * 30, "order=99", "order=-1", "migratetype=9",
    "gfp_flags=GFP_KERNEL|__GFP_ZERO", "mm_page_free:", "mm_page_free_batched:",
    "mm_page_alloc:", "[FAILED TO PARSE]", "CPU:1 [LOST 5 EVENTS]", "#", "\x00", "\u2028",
    "[001]", "100.5:", "bash-1", "(-------)"]), st.text(max_size=12))
TRACE_LINE = st.one_of(st.lists(FIELD, max_size=10).map(" ".join),
                       st.builds(lambda cut: GOOD_LINE[:cut], st.integers(0, len(GOOD_LINE))))


@FUZZ
@given(lines=st.lists(TRACE_LINE, max_size=10), strict=st.booleans())
def test_ftrace_parse_only_raises_input_errors(lines: list[str], strict: bool) -> None:
    _only_framework_errors(lambda: parse(lines, strict=strict, source="fuzz"))


@FUZZ
@given(lines=st.lists(TRACE_LINE, max_size=6), junk=st.binary(max_size=24),
       cut=st.integers(0, 200), strict=st.booleans())
def test_ftrace_files_only_raise_input_errors(lines: list[str], junk: bytes, cut: int,
                                              strict: bool) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass") + junk
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        files = {
            "plain.txt": data, "cut.txt": data[:cut],
            "trace.gz": gzip.compress(data), "cut.gz": gzip.compress(data)[:cut],
            "trace.xz": lzma.compress(data), "cut.xz": lzma.compress(data)[:cut],
            "junk.gz": junk, "junk.xz": junk,
        }
        for name, blob in files.items():
            path = _write(base / name, blob)
            _only_framework_errors(functools.partial(read_trace, path, strict=strict))


# -- the --set parser ------------------------------------------------------------------------
SCOPES = ["machine", "costs", "faults", "tlb", *REGISTRY.allocators, *REGISTRY.workloads,
          "nosuch", "", "gfp-unmapped.variant"]
KEYS = sorted({p.name for p in MACHINE_PARAMS} | {p.name for p in FAULT_PARAMS}
              | set(DEFAULT_COSTS) | {p.name for c in REGISTRY.allocators.values()
                                      for p in c.params}
              | {p.name for w in REGISTRY.workloads.values() for p in w.params} | {"", "x"})
VALUES = st.one_of(NUMBERS, WORDS, st.sampled_from(["inf", "-inf", "1e400", "true", "off",
                                                    "posted", "fixed", "0.5", "-0.0"]))
SET_ITEM = st.one_of(
    st.builds(lambda s, k, v: f"{s}.{k}={v}", st.sampled_from(SCOPES), st.sampled_from(KEYS),
              VALUES),
    st.text(max_size=20))


@FUZZ
@given(items=st.lists(SET_ITEM, max_size=5))
def test_set_parser_only_raises_framework_errors(items: list[str]) -> None:
    try:
        parsed = parse_set(items)
    except FrameworkError:
        return
    _only_framework_errors(validate_sets, parsed, REGISTRY, "default")
    for scope, values in parsed.items():
        cls = REGISTRY.allocators.get(scope)
        if cls is not None:
            _only_framework_errors(resolve, scope, cls.params, values)


# -- through the CLI -------------------------------------------------------------------------
def _load_broken() -> Any:
    return load_file(FIXTURES / "broken_allocators.py", "broken_allocators_cli")


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The broken designs behind an entry point, and a trace that reaches them."""
    site = _load_broken().write_entry_point(tmp_path_factory.mktemp("site"))
    trace = site / "kernel.csv"
    trace.write_text(f"{HEADER}\nalloc,1,kernel,4096,RW,1,,OWNER\nwrite,1,,,,,,\nfree,1,,,,,,\n")
    return {"PYTHONPATH": f"{site}{os.pathsep}{FIXTURES}", "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "",
            "TRACE": str(trace)}


def _bench(env: dict[str, str], plugins: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "framework"
    return subprocess.run(
        [str(exe), "bench", "--plugins", plugins, "--workloads", "trace", "--set",
         f"trace.path={env['TRACE']}", "--set", "machine.mem_gib=4", "--metrics",
         "violations", "--format", "csv"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=300, check=False)


def test_cli_raising_and_garbage_designs_are_their_own_failures(cli_env: dict[str, str]
                                                                ) -> None:
    proc = _bench(cli_env, "simple,broken-raises,broken-garbage")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "framework: error: broken-raises/trace: plugin broken-raises raised in alloc: "
        "RuntimeError: the design fell over",
        "framework: error: broken-garbage/trace: plugin broken-garbage: alloc returned "
        "tuple, expected Allocation or None",
    ]
    assert "simple" in proc.stdout and "violations" in proc.stdout


def test_cli_looping_design_is_stopped_and_reported(cli_env: dict[str, str]) -> None:
    """--cell-timeout stops a design that never returns; the other results are printed."""
    exe = Path(sys.executable).parent / "framework"
    proc = subprocess.run(
        [str(exe), "bench", "--plugins", "simple,broken-loops", "--workloads", "trace",
         "--set", f"trace.path={cli_env['TRACE']}", "--set", "machine.mem_gib=4",
         "--metrics", "violations", "--format", "csv", "--cell-timeout", "2"],
        capture_output=True, text=True, env={**os.environ, **cli_env}, timeout=300,
        check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "framework: error: broken-loops/trace: plugin broken-loops did not finish within 2 s "
        "(--cell-timeout)"]
    assert "simple" in proc.stdout


@pytest.mark.parametrize("plugin", ["broken-init", "broken-stats"])
def test_cli_design_raising_outside_alloc_is_its_own_failure(cli_env: dict[str, str],
                                                             plugin: str) -> None:
    proc = _bench(cli_env, f"simple,{plugin}")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and plugin in proc.stderr
    assert "simple" in proc.stdout
