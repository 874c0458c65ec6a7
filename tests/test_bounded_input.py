"""Bounded resources on hostile input: every reader streams lines of bounded length, a
request bigger than the machine is refused before anything is modelled, unknown sites name
their line, and a UTF-8 byte-order mark is skipped.

The CLI cases run the installed command with a wall-clock bound: before the bounds,
``trace.path=/dev/zero`` grew until it was killed (24 GB) and a 64 GiB secretmem row took
over 100 s and 3 GB.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from framework.errors import InputError
from framework.lines import MAX_LINE, bounded_lines
from framework.workloads.ftrace_parse import read_trace
from framework.workloads.moddata import CSV_HEADER, read_csv
from framework.workloads.trace import HEADER, read_trace_csv
from tests.test_cli import one_line_error, run
from tests.test_hostile_input import GOOD_LINE

BOM = b"\xef\xbb\xbf"


def test_line_limit_counts_the_line_end() -> None:
    """limit 4: "abc\\n" is 4 characters and passes; "abcd\\n" is 5 and is refused as line
    2; a last line of exactly 4 characters without a line end passes."""
    assert list(bounded_lines(io.StringIO("abc\nabcd"), "f", 4)) == ["abc\n", "abcd"]
    lines = bounded_lines(io.StringIO("ab\nabcd\n"), "f", 4)
    assert next(lines) == "ab\n"
    with pytest.raises(InputError, match=r"^f:2: line longer than 4 characters"):
        next(lines)


def test_line_limit_reads_no_more_than_one_line() -> None:
    """The reader asks the stream for at most limit + 1 characters per line, so an endless
    stream without line ends costs one line's worth of memory."""

    asked: list[int] = []

    class Endless(io.RawIOBase):
        def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
            assert size is not None and size > 0
            asked.append(size)
            return b"\0" * size

    with pytest.raises(InputError, match="line longer than"):
        list(bounded_lines(Endless(), "zero"))  # type: ignore[arg-type]
    assert asked == [MAX_LINE + 1]


@pytest.mark.parametrize("workload", ["trace", "ftrace"])
def test_dev_zero_is_refused_quickly(workload: str) -> None:
    start = time.monotonic()
    proc = run("bench", "--plugins", "baseline", "--workloads", workload, "--set",
               f"{workload}.path=/dev/zero")
    one_line_error(proc, "/dev/zero:1: line longer than 65536 characters")
    assert time.monotonic() - start < 30


def test_module_csv_without_line_ends_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "zeros.csv"
    data.write_bytes(b"\0" * (MAX_LINE * 4))
    with pytest.raises(InputError, match=r"zeros\.csv:1: line longer than"):
        read_csv(data)


def test_request_bigger_than_the_machine_is_refused_at_once(tmp_path: Path) -> None:
    """64 GiB on the default 64 GiB machine: the buddy manages 64 GiB less the 64 MiB
    reserved, i.e. 65472 MiB = 68652367872 bytes, so the row is refused, naming line 2."""
    trace = tmp_path / "big.csv"
    trace.write_text(f"{','.join(HEADER)}\nalloc,1,secretmem,{64 << 30},RW,1,,OWNER\n"
                     "free,1,,,,,,\n", encoding="utf-8")
    start = time.monotonic()
    proc = run("bench", "--plugins", "baseline", "--workloads", "trace", "--set",
               f"trace.path={trace}")
    one_line_error(proc, "big.csv:2: size 68719476736: expected 1 to 68652367872")
    assert time.monotonic() - start < 30


def test_pressure_bigger_than_the_machine_is_refused(tmp_path: Path) -> None:
    """machine.mem_gib=4, reserved 64 MiB: 4032 MiB = 1032192 pages at most."""
    trace = tmp_path / "p.csv"
    trace.write_text(f"{','.join(HEADER)}\npressure,,,1032193,,,,\n", encoding="utf-8")
    proc = run("bench", "--plugins", "baseline", "--workloads", "trace", "--set",
               f"trace.path={trace}", "--set", "machine.mem_gib=4")
    one_line_error(proc, "p.csv:2: size 1032193: expected 0 to 1032192")


def test_unknown_site_names_its_line(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(f"{','.join(HEADER)}\nalloc,1,kernel,4096,RW,1,,OWNER\n"
                     "alloc,2,kernal,4096,RW,1,,OWNER\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"t.csv:3: site 'kernal': expected one of secretmem"):
        read_trace_csv(str(trace), 1)


def test_trace_csv_with_bom_runs(tmp_path: Path) -> None:
    trace = tmp_path / "bom.csv"
    trace.write_bytes(BOM + f"{','.join(HEADER)}\nalloc,1,kernel,4096,RW,1,,OWNER\n"
                      "free,1,,,,,,\n".encode())
    proc = run("bench", "--plugins", "baseline", "--workloads", "trace", "--set",
               f"trace.path={trace}", "--set", "machine.mem_gib=4", "--format", "csv",
               "--metrics", "requested_bytes")
    assert proc.returncode == 0, proc.stderr
    assert len(read_trace_csv(str(trace), 1)) == 2


def test_utf16_trace_is_named(tmp_path: Path) -> None:
    trace = tmp_path / "u16.csv"
    trace.write_bytes(",".join(HEADER).encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16 byte-order mark: save it as UTF-8"):
        read_trace_csv(str(trace), 1)


def test_ftrace_with_bom_parses(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(BOM + GOOD_LINE.encode() + b"\n")
    events, stats = read_trace(path)
    assert len(events) == 1 and events[0].pfn == 0x1000 and stats.lines == 1


def test_module_csv_with_bom_reads(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(BOM + (",".join(CSV_HEADER) + "\nxfs,1,2,3,4,5,6,7\n").encode())
    (mod,) = read_csv(path)
    assert mod.name == "xfs" and mod.core_bytes > 0
