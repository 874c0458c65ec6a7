"""framework.workloads.ftrace_parse: kmem page tracepoint text (Linux v6.3) -> PageEvent.

The hand-written lines follow ``trace_print_context()`` (kernel/trace/trace_output.c), the
``TP_printk`` formats of include/trace/events/kmem.h, and ``trace-cmd report`` (trace-read.c).
"""

from __future__ import annotations

import gc
import gzip
import lzma
import string
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.errors import InputError
from framework.kernel.consts import MAX_ORDER
from framework.workloads.ftrace_parse import (
    ALLOC,
    EVENTS,
    FREE,
    FREE_BATCHED,
    KEEP_SKIPPED,
    MAX_MIGRATETYPE,
    PFN_LIMIT,
    Form,
    PageEvent,
    ParseStats,
    error_message,
    format_event,
    parse,
    read_trace,
)

# --- exact lines ------------------------------------------------------------------------------
# /sys/kernel/tracing/trace (and trace_pipe), v6.3: "%16s-%-7d [%03d] <5 irq flags> %5lu.%06lu: "
TRACE_ALLOC = (
    "           <...>-1234    [003] d..1.  5678.901234: mm_page_alloc: page=00000000a1b2c3d4"
    " pfn=0x12345 order=0 migratetype=1 gfp_flags=GFP_KERNEL|__GFP_ZERO\n"
)
TRACE_FREE = (
    "            bash-1234    [001] .....  5678.901300: mm_page_free:"
    " page=ffffea000048d140 pfn=0x12345 order=2\n"
)
TRACE_FREE_BATCHED = (
    "     kworker/1:2-87      [001] ..s1.  5678.902000: mm_page_free_batched:"
    " page=ffffea0000048d40 pfn=0x1235 order=0\n"
)
# trace-cmd report: "%16s-%-5d [%03d] %6.1000d: " then the event name padded to 20 columns.
TRACECMD_ALLOC = (
    "        bash-1234  [003]  5678.901234: mm_page_alloc:        page=0xffffea0000123400"
    " pfn=0x12345 order=0 migratetype=1 gfp_flags=GFP_KERNEL"
)
TRACECMD_FREE = (
    "        bash-1234  [002]  5678.901240: mm_page_free:         page=0xffffea0000123400"
    " pfn=0x48d00 order=9"
)
TRACECMD_FREE_BATCHED = (
    "        bash-1234  [002]  5678.901250: mm_page_free_batched: page=0xffffea0000123400"
    " pfn=0xfffff order=0"
)
# trace-cmd report with latency flags in the kernel's layout, and trace-cmd report -l
# ("%8.8s-%-5d %3d" immediately followed by the latency flags).
TRACECMD_FLAGS_ALLOC = (
    "        bash-1234  [003] d..1.  5678.901234: mm_page_alloc:        page=0xffffea0000123400"
    " pfn=0x12345 order=3 migratetype=2 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_COMP"
)
TRACECMD_LATENCY_FREE = (
    "    bash-1234    3d..1. 5678.901234: mm_page_free:         page=0xffffea0000123400"
    " pfn=0x12345 order=3"
)

TRACE_HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 3/3   #P:4
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""
TRACECMD_HEADER = "version = 6\ncpus=4\nCPU 2 is empty\n"


def _one(line: str) -> PageEvent:
    events, stats = parse([line])
    assert stats.events == 1 and stats.skipped == 0 and stats.other_events == 0
    return events[0]


# --- the three events in both forms -----------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (TRACE_ALLOC, PageEvent(1, 5678.901234, 3, ALLOC, 0x12345, 0, 1, "GFP_KERNEL|__GFP_ZERO")),
        (TRACE_FREE, PageEvent(1, 5678.9013, 1, FREE, 0x12345, 2, None, None)),
        (TRACE_FREE_BATCHED, PageEvent(1, 5678.902, 1, FREE_BATCHED, 0x1235, 0, None, None)),
        (TRACECMD_ALLOC, PageEvent(1, 5678.901234, 3, ALLOC, 0x12345, 0, 1, "GFP_KERNEL")),
        (TRACECMD_FREE, PageEvent(1, 5678.90124, 2, FREE, 0x48D00, 9, None, None)),
        (TRACECMD_FREE_BATCHED, PageEvent(1, 5678.90125, 2, FREE_BATCHED, 0xFFFFF, 0, None, None)),
        (
            TRACECMD_FLAGS_ALLOC,
            PageEvent(1, 5678.901234, 3, ALLOC, 0x12345, 3, 2, "GFP_KERNEL_ACCOUNT|__GFP_COMP"),
        ),
        (TRACECMD_LATENCY_FREE, PageEvent(1, 5678.901234, 3, FREE, 0x12345, 3, None, None)),
    ],
    ids=[
        "trace-alloc",
        "trace-free",
        "trace-free-batched",
        "trace-cmd-alloc",
        "trace-cmd-free",
        "trace-cmd-free-batched",
        "trace-cmd-flags-alloc",
        "trace-cmd-latency-free",
    ],
)
def test_every_field_of_each_event_and_form(line: str, expected: PageEvent) -> None:
    event = _one(line)
    assert event == expected
    assert (event.lineno, event.timestamp, event.cpu, event.event) == (
        expected.lineno,
        expected.timestamp,
        expected.cpu,
        expected.event,
    )
    assert (event.pfn, event.order, event.migratetype, event.gfp_flags) == (
        expected.pfn,
        expected.order,
        expected.migratetype,
        expected.gfp_flags,
    )


@pytest.mark.parametrize(
    "prefix",
    [
        "            bash-1234    [003] 5678.901234: ",  # irq-info option off
        "            bash-1234    [003] d..1 5678.901234: ",  # 4 flag columns (before v5.14)
        "            bash-1234    (   1200) [003] d..1. 5678.901234: ",  # record-tgid
        "          <idle>-0       (-------) [003] dNh2. 5678.901234: ",  # record-tgid, no tgid
        "     Web Content-1234    [003] d..1. 5678.901234: ",  # a space in the task name
        " systemd-journal-1234    [003] d..1. 5678.901234: ",  # a dash in the task name
        "        foo-12-9-1234    [003] d..1. 5678.901234: ",  # "-<digits>" in the task name
        "            bash-1234    [003] d..1. 5678.901234000: ",  # trace-cmd report -t (ns)
    ],
)
def test_context_variants(prefix: str) -> None:
    event = _one(prefix + "mm_page_free: page=ffffea000048d140 pfn=0x12345 order=1\r\n")
    assert (event.timestamp, event.cpu, event.event, event.pfn, event.order) == (
        5678.901234,
        3,
        FREE,
        0x12345,
        1,
    )


def test_counter_clock_timestamps_are_raw_counts() -> None:
    line = "bash-1234 [000] ....  123456789012: mm_page_free: page=0 pfn=0x1 order=0"
    assert _one(line).timestamp == 123456789012.0


def test_gfp_flags_none_and_leftover_bits() -> None:
    base = "bash-1 [000] ..... 1.000000: mm_page_alloc: page=ffffea0000000040 pfn=0x1 order=0 "
    assert _one(base + "migratetype=0 gfp_flags=none").gfp_flags == "none"
    assert _one(base + "migratetype=5 gfp_flags=GFP_NOWAIT|0x400").gfp_flags == "GFP_NOWAIT|0x400"


def test_line_numbers_count_every_line() -> None:
    events, stats = parse(["# c\n", "\n", TRACE_ALLOC, "cpus=4\n", TRACE_FREE])
    assert [e.lineno for e in events] == [3, 5]
    assert stats == ParseStats(lines=5, events=2)


# --- lines that are not events ----------------------------------------------------------------
def test_comments_blank_lines_and_headers_are_skipped_silently() -> None:
    text = TRACE_HEADER + TRACECMD_HEADER + "\n   \n"
    events, stats = parse(text.splitlines(keepends=True))
    assert events == []
    assert stats == ParseStats(lines=len(text.splitlines()))


def test_other_events_are_ignored_but_counted() -> None:
    lines = [
        "bash-1234 [003] d..1. 5678.901234: kmalloc: call_site=kmem_cache_alloc+0x1 ptr=0",
        "bash-1234 [003] d..1. 5678.901234: mm_page_alloc_zone_locked: page=0 pfn=0x1 order=0"
        " migratetype=1 percpu_refill=1",
        "bash-1234 [003] d..1. 5678.901234: mm_page_pcpu_drain: page=0 pfn=0x1 order=0"
        " migratetype=1",
        "bash-1234 [003] d..1. 5678.901234: do_sys_openat2 <-do_sys_open",  # function tracer
        TRACECMD_ALLOC,
    ]
    events, stats = parse(lines)
    assert [e.event for e in events] == [ALLOC]
    assert (stats.other_events, stats.events, stats.skipped) == (4, 1, 0)


def test_lost_event_markers_are_counted() -> None:
    lines = ["CPU:2 [LOST 1234 EVENTS]", "CPU:7 [204600 EVENTS DROPPED]", "CPU:1 [EVENTS DROPPED]"]
    events, stats = parse([*lines, TRACE_FREE])
    assert len(events) == 1
    assert (stats.lost_markers, stats.lost_events) == (3, 1234 + 204600)


@pytest.mark.parametrize("page", ["0000000000000000", "(null)", "(nil)", "0x0"])
def test_failed_allocations_are_counted_not_returned(page: str) -> None:
    line = (
        f"bash-1234 [003] d..1. 5678.901234: mm_page_alloc: page={page} pfn=0x0 order=4"
        " migratetype=0 gfp_flags=GFP_NOWAIT|__GFP_NOWARN"
    )
    events, stats = parse([line, TRACE_FREE])
    assert [e.event for e in events] == [FREE]
    assert (stats.failed_allocs, stats.skipped) == (1, 0)


# --- malformed lines --------------------------------------------------------------------------
_HEAD = "            bash-1234    [003] d..1.  5678.901234: "
_MALFORMED = [
    ("decimal-pfn", _HEAD + "mm_page_free: page=0 pfn=74565 order=0", "bad pfn '74565'"),
    ("non-hex-pfn", _HEAD + "mm_page_free: page=0 pfn=0x12g45 order=0", "bad pfn '0x12g45'"),
    ("huge-pfn", _HEAD + "mm_page_free: page=0 pfn=0x10000000000000 order=0", "not below 2**52"),
    ("missing-order", _HEAD + "mm_page_free: page=0 pfn=0x12345", "missing order="),
    ("order-11", _HEAD + "mm_page_free: page=0 pfn=0x12345 order=11", "order '11' out of range"),
    ("negative-order", _HEAD + "mm_page_free: page=0 pfn=0x1 order=-1", "bad order '-1'"),
    ("batched-order-1", _HEAD + "mm_page_free_batched: page=0 pfn=0x1 order=1", "range 0..0"),
    (
        "migratetype-9",
        _HEAD + "mm_page_alloc: page=0 pfn=0x1 order=0 migratetype=9 gfp_flags=GFP_KERNEL",
        "migratetype '9' out of range 0..5",
    ),
    (
        "alloc-without-migratetype",
        _HEAD + "mm_page_alloc: page=0 pfn=0x1 order=0 gfp_flags=GFP_KERNEL",
        "expected migratetype=",
    ),
    (
        "free-with-alloc-fields",
        _HEAD + "mm_page_free: page=0 pfn=0x1 order=0 migratetype=1 gfp_flags=GFP_KERNEL",
        "unexpected 'migratetype=1'",
    ),
    ("truncated-field", _HEAD + "mm_page_alloc: page=00000000a1b2c3d4 pfn=0x123", "missing order"),
    ("truncated-context", "            bash-1234    [003] d..1.  5678.90", "not a trace line"),
    ("garbage", "\x00\x01 this is not ftrace \u2028 at all", "not a trace line"),
    (
        "failed-to-parse",
        _HEAD + "mm_page_alloc: [FAILED TO PARSE] pfn=74565 order=0 gfp_flags=3264",
        "FAILED TO PARSE",
    ),
]


@pytest.mark.parametrize(
    ("line", "problem"), [m[1:] for m in _MALFORMED], ids=[m[0] for m in _MALFORMED]
)
def test_malformed_line_raises_with_its_number_when_strict(line: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse([TRACE_ALLOC, TRACE_FREE, line + "\n"], source="trace.txt")
    message = str(caught.value)
    assert message.startswith("trace.txt:3: ")
    assert problem in message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(
    ("line", "problem"), [m[1:] for m in _MALFORMED], ids=[m[0] for m in _MALFORMED]
)
def test_malformed_line_is_skipped_and_counted_when_not_strict(line: str, problem: str) -> None:
    events, stats = parse([TRACE_ALLOC, TRACE_FREE, line + "\n", TRACE_FREE_BATCHED], strict=False)
    assert [e.lineno for e in events] == [1, 2, 4]
    assert (stats.skipped, stats.skipped_lines, stats.events) == (1, (3,), 3)
    assert stats.skip_reasons[0].startswith("<trace>:3: ") and problem in stats.skip_reasons[0]


def test_error_message_layout() -> None:
    line = _HEAD + "mm_page_free: page=0 pfn=74565 order=0"
    with pytest.raises(InputError) as caught:
        parse([line], source="t.txt")
    excerpt = line[:77] + "..."
    assert str(caught.value) == f"t.txt:1: bad pfn '74565' (v6.3 prints pfn=0x<hex>): {excerpt}"
    assert error_message("s", 2, "bad", "short\n") == "s:2: bad: short"
    assert error_message("s", 2, "bad", "a\tb\x00c") == "s:2: bad: a\\tb\\x00c"


def test_only_the_first_skipped_lines_are_kept() -> None:
    bad = _HEAD + "mm_page_free: page=0 pfn=0x1 order=99"
    events, stats = parse([bad] * (KEEP_SKIPPED + 5), strict=False)
    assert events == []
    assert stats.skipped == KEEP_SKIPPED + 5
    assert stats.skipped_lines == tuple(range(1, KEEP_SKIPPED + 1))
    assert len(stats.skip_reasons) == KEEP_SKIPPED


def test_garbage_collector_state_is_restored() -> None:
    assert gc.isenabled()
    parse([TRACE_ALLOC])
    assert gc.isenabled()
    with pytest.raises(InputError):
        parse(["garbage"])
    assert gc.isenabled()


# --- files ------------------------------------------------------------------------------------
_FILE_TEXT = TRACE_HEADER + TRACE_ALLOC + TRACE_FREE + TRACE_FREE_BATCHED


@pytest.mark.parametrize(
    ("name", "opener"),
    [("trace.txt", open), ("trace.txt.gz", gzip.open), ("trace.txt.xz", lzma.open)],
)
def test_read_trace_plain_gz_xz(tmp_path: Path, name: str, opener: object) -> None:
    path = tmp_path / name
    with opener(path, "wt", encoding="utf-8") as out:  # type: ignore[operator]
        out.write(_FILE_TEXT)
    events, stats = read_trace(path)
    assert [(e.lineno, e.event, e.pfn) for e in events] == [
        (13, ALLOC, 0x12345),
        (14, FREE, 0x12345),
        (15, FREE_BATCHED, 0x1235),
    ]
    assert (stats.lines, stats.events) == (15, 3)


def test_read_trace_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.txt"
    for strict in (True, False):
        with pytest.raises(InputError, match=r"nope\.txt: no such file"):
            read_trace(path, strict=strict)


def test_read_trace_directory_and_corrupt_gzip(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_trace(tmp_path)
    bad = tmp_path / "trace.gz"
    bad.write_bytes(b"this is not gzip\n")
    for strict in (True, False):
        with pytest.raises(InputError, match=r"trace\.gz: cannot read"):
            read_trace(bad, strict=strict)
    truncated = tmp_path / "cut.txt.gz"
    truncated.write_bytes(gzip.compress(_FILE_TEXT.encode())[:-20])
    with pytest.raises(InputError, match=r"cut\.txt\.gz: cannot read"):
        read_trace(truncated)


def test_non_utf8_bytes_strict_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    path.write_bytes(
        TRACE_ALLOC.encode() + b"   caf\xe9-1234    [003] d..1.  5678.9: mm_page_free:"
        b" page=0 pfn=0x1 order=0\n" + TRACE_FREE.encode()
    )
    with pytest.raises(InputError) as caught:
        read_trace(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: not UTF-8 (byte 0xe9 at column 7): ")
    assert len(message.splitlines()) == 1


def test_non_utf8_bytes_replaced_when_not_strict(tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    path.write_bytes(
        b"   caf\xe9-1234    [003] d..1.  5678.9: mm_page_free: page=0 pfn=0x1 order=0\n"
        + b"   bash-1234    [003] d..1.  5678.9: mm_page_free: page=0 pfn=0x\xff order=0\n"
        + TRACE_FREE.encode()
    )
    events, stats = read_trace(path, strict=False)
    assert [(e.lineno, e.pfn) for e in events] == [(1, 1), (3, 0x12345)]
    assert (stats.skipped, stats.skipped_lines) == (1, (2,))


def test_compressed_file_without_suffix_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    path.write_bytes(gzip.compress(_FILE_TEXT.encode()))
    with pytest.raises(InputError, match=r"name it \*\.gz"):
        read_trace(path)


# --- writing ----------------------------------------------------------------------------------
def test_format_event_writes_the_exact_layouts() -> None:
    alloc = PageEvent(1, 5678.901234, 3, ALLOC, 0x12345, 0, 1, "GFP_KERNEL")
    assert format_event(alloc) == (
        "            bash-1234    [003] d..1.  5678.901234: mm_page_alloc:"
        " page=ffffea000048d140 pfn=0x12345 order=0 migratetype=1 gfp_flags=GFP_KERNEL"
    )
    free = PageEvent(1, 5678.901234, 3, FREE, 0x12345, 3)
    assert format_event(free, "trace-cmd") == (
        "            bash-1234  [003]  5678.901234: mm_page_free:         page=0xffffea000048d140"
        " pfn=0x12345 order=3"
    )
    assert format_event(free, "trace-cmd-latency") == (
        "    bash-1234    3d..1.  5678.901234: mm_page_free:         page=0xffffea000048d140"
        " pfn=0x12345 order=3"
    )


def _plain_code_blocks(markdown: str) -> list[str]:
    """The lines of the fenced blocks without a language tag, fences at column 0."""
    lines: list[str] = []
    fence: str | None = None  # the opening fence of the block we are in
    for line in markdown.splitlines():
        if fence is None and line.startswith("```"):
            fence = line
        elif fence is not None and line == "```":
            fence = None
        elif fence == "```":
            lines.append(line)
    return lines


def test_example_lines_in_the_docs_parse() -> None:
    text = (Path(__file__).parents[1] / "docs" / "ftrace.md").read_text(encoding="utf-8")
    lines = _plain_code_blocks(text)
    _, stats = parse(lines, source="docs/ftrace.md")
    assert len(lines) >= 7
    assert stats.events == len(lines)


# --- properties -------------------------------------------------------------------------------
_GFP_NAMES = ["GFP_KERNEL", "GFP_NOWAIT", "__GFP_ZERO", "__GFP_COMP", "__GFP_NOWARN", "0x400"]
_FORMS: tuple[Form, ...] = ("trace", "trace-cmd", "trace-cmd-latency")
_TASK_CHARS = string.ascii_letters + string.digits + " -_/:.<>[]()#=+"


@st.composite
def page_events(draw: st.DrawFn) -> PageEvent:
    """Any event the v6.3 tracepoints can print (lineno 0: the caller numbers them)."""
    name = draw(st.sampled_from(EVENTS))
    order = 0 if name == FREE_BATCHED else draw(st.integers(0, MAX_ORDER - 1))
    timestamp = draw(st.integers(0, 10**12)) / 1e6  # whole microseconds, as printed
    cpu = draw(st.integers(0, 8191))
    pfn = draw(st.integers(1, PFN_LIMIT - 1))
    event = PageEvent(0, timestamp, cpu, name, pfn, order)
    if name != ALLOC:
        return event
    flags = draw(st.lists(st.sampled_from(_GFP_NAMES), min_size=1, max_size=4))
    mt = draw(st.integers(0, MAX_MIGRATETYPE))
    return attrs.evolve(event, migratetype=mt, gfp_flags="|".join(flags))


@st.composite
def trace_lines(draw: st.DrawFn, event: PageEvent) -> str:
    """``event`` written in a random form, task, pid and flags."""
    form = draw(st.sampled_from(_FORMS))
    task = draw(st.text(_TASK_CHARS, min_size=1, max_size=15))
    pid = draw(st.integers(0, 4_194_304))
    flags = draw(st.sampled_from(["d..1.", ".....", "dNs2.", "d..1", "..s1.", "X.h11"]))
    return format_event(event, form, task=task, pid=pid, flags=flags) + "\n"


_NOISE = st.sampled_from(
    [
        "# tracer: nop\n",
        "\n",
        "cpus=8\n",
        "CPU:1 [LOST 3 EVENTS]\n",
        "  bash-1 [000] ..... 1.000000: kfree: call_site=x ptr=0\n",
    ]
)


@given(st.lists(st.one_of(page_events(), _NOISE), max_size=40), st.data())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_formatted_events_parse_back(items: list[PageEvent | str], data: st.DataObject) -> None:
    lines: list[str] = []
    expected: list[PageEvent] = []
    for item in items:
        if isinstance(item, PageEvent):
            item = attrs.evolve(item, lineno=len(lines) + 1)
            expected.append(item)
            lines.append(data.draw(trace_lines(item)))
        else:
            lines.append(item)
    events, stats = parse(lines)
    assert events == expected
    assert stats.events == len(expected)
    assert stats.other_events == sum("kfree" in line for line in lines)
    assert stats.lost_markers == sum("LOST" in line for line in lines)
    assert stats.skipped == 0


def _check_error(error: InputError, source: str) -> None:
    message = str(error)
    assert message.startswith(source + ":")
    assert len(message.splitlines()) == 1


@given(st.lists(st.text(max_size=200), max_size=20))
@settings(max_examples=400, deadline=None)
def test_arbitrary_text_raises_only_input_error(lines: list[str]) -> None:
    try:
        parse(lines, source="fuzz")
    except InputError as error:
        _check_error(error, "fuzz")
    events, stats = parse(lines, strict=False)
    assert stats.lines == len(lines)
    assert stats.events == len(events)


_ALMOST = st.sampled_from([TRACE_ALLOC, TRACECMD_FREE, TRACE_FREE_BATCHED]).flatmap(
    lambda line: st.integers(0, len(line)).flatmap(
        lambda cut: st.text(max_size=8).map(lambda junk: line[:cut] + junk + line[cut:])
    )
)


@given(st.lists(_ALMOST, max_size=10))
@settings(max_examples=300, deadline=None)
def test_near_miss_lines_raise_only_input_error(lines: list[str]) -> None:
    try:
        parse(lines, source="near")
    except InputError as error:
        _check_error(error, "near")
    parse(lines, strict=False)


@given(st.binary(max_size=600))
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_arbitrary_bytes_in_a_file(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(blob)
    try:
        read_trace(path)
    except InputError as error:
        _check_error(error, str(path))
    events, stats = read_trace(path, strict=False)
    assert stats.events == len(events)
