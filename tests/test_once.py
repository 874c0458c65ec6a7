"""Once, not per run: an input file is parsed once per invocation, an error said once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import framework.workloads.ftrace as ftrace_mod
import framework.workloads.moddata as moddata
import framework.workloads.trace as trace_mod
from framework.errors import InputError
from framework.filecache import once_per_file
from framework.plugins import get_registry
from framework.sweep import make_cells, run_cells
from tests.test_cli import one_line_error, run

PLUGINS = list(get_registry().allocators)
SMALL = {"machine": {"mem_gib": "4"}}
FTRACE = ("bash-1 [000] ..... 1.000000: mm_page_alloc: page=0 pfn=0x1000 order=0 "
          "migratetype=0 gfp_flags=GFP_KERNEL\n"
          "bash-1 [000] ..... 1.000001: mm_page_free: page=0 pfn=0x1000 order=0\n")


def _count(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls = [0]
    real = getattr(module, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_reader_memo_keys_on_path_mtime_size_and_args(tmp_path: Path) -> None:
    """Same file and arguments: one read. Other arguments, or the file rewritten (size
    and mtime change): read again. An error is remembered too, and raised afresh."""
    reads: list[tuple[str, int]] = []

    @once_per_file
    def reader(path: Path, k: int) -> str:
        reads.append((path.name, k))
        text = path.read_text()
        if text == "bad":
            raise InputError(f"{path.name}: bad")
        return text * k

    f = tmp_path / "a.txt"
    f.write_text("x")
    assert reader(f, 2) == reader(f, 2) == "xx"
    assert reader(f, 3) == "xxx"
    assert reads == [("a.txt", 2), ("a.txt", 3)]
    f.write_text("yy")
    os.utime(f, ns=(1, 1))
    assert reader(f, 2) == "yyyy" and len(reads) == 3
    f.write_text("bad")
    for _ in range(2):
        with pytest.raises(InputError, match=r"a\.txt: bad"):
            reader(f, 1)
    assert len(reads) == 4


def test_trace_checked_once_for_every_design(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole file is checked once per invocation (count_trace_csv, cached); each of the
    cells then streams its rows again, so memory stays bounded whatever the file's size:
    one check plus one replay per cell."""
    trace = tmp_path / "once.csv"
    trace.write_text("op,id,site,size,perm,zero,node,freed_by\n"
                     "alloc,1,secretmem,4096,UNMAPPED,1,,GENERIC\nfree,1,,,,,,\n")
    calls = _count(monkeypatch, trace_mod, "_parse")
    cells = make_cells(PLUGINS, ["trace"], "default", 2, 1,
                       {**SMALL, "trace": {"path": str(trace)}})
    outcomes = run_cells(cells)
    assert all(o.result is not None for o in outcomes) and len(outcomes) == 2 * len(PLUGINS)
    assert calls[0] == 1 + len(outcomes)


def test_ftrace_and_module_data_parsed_once(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    trace = tmp_path / "once.txt"
    trace.write_text(FTRACE)
    parses = _count(monkeypatch, ftrace_mod, "read_trace")
    csv_reads = _count(monkeypatch, moddata, "read_csv")
    moddata._read_source.cache_clear()  # type: ignore[attr-defined]
    sets = {**SMALL, "ftrace": {"path": str(trace)}, "modules": {"reloads": "2"}}
    outcomes = run_cells(make_cells(PLUGINS, ["ftrace", "modules"], "default", 1, 1, sets))
    assert all(o.result is not None for o in outcomes)
    assert parses[0] == 1 and csv_reads[0] == 1


def test_error_of_every_design_said_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("op,id,site,size,perm,zero,node,freed_by\nfree,2,,,,,,\n")
    proc = run("bench", "--plugins", "all", "--workloads", "secretmem,trace", "--set",
               "machine.mem_gib=4", "--set", "secretmem.processes=4", "--set",
               f"trace.path={bad}")
    one_line_error(proc, "trace (every design): ", "bad.csv:2", "not live")
    assert "\nsecretmem\n  baseline" in proc.stdout
