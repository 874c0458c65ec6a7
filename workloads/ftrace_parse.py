"""Parse ``kmem:mm_page_alloc`` / ``mm_page_free`` / ``mm_page_free_batched`` tracepoint text.

The ``ftrace`` workload replays page allocations recorded on a real machine. This module turns
the recorded text into :class:`PageEvent` values; it knows nothing about replaying them.

Field layouts are the ``TP_printk`` formats of ``include/trace/events/kmem.h`` in Linux v6.3
(pfn has been printed as ``0x%lx`` since v5.14)::

    mm_page_alloc:        "page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s"
    mm_page_free:         "page=%p pfn=0x%lx order=%d"
    mm_page_free_batched: "page=%p pfn=0x%lx order=0"

Each line starts with the context that ``trace_print_context()`` (the ``trace`` and
``trace_pipe`` files) or ``trace-cmd report`` prints, where the ``(<tgid>)`` column and the
irq flags are optional::

    <task>-<pid> (<tgid>) [<cpu>] <irq flags> <seconds>: <event>: <fields>
    <task>-<pid> <cpu><latency flags> <seconds>: <event>: <fields>      (trace-cmd report -l)

``docs/ftrace.md`` shows exact example lines of every accepted form.
"""

from __future__ import annotations

import gc
import gzip
import io
import lzma
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, Final, Literal, cast

import attrs

from framework.errors import InputError
from framework.kernel.consts import MAX_ORDER  # v6.3: exclusive, so orders 0..10
from framework.lines import bounded_lines

__all__ = [
    "ALLOC",
    "EVENTS",
    "FREE",
    "FREE_BATCHED",
    "Form",
    "PageEvent",
    "ParseStats",
    "error_message",
    "format_event",
    "parse",
    "read_trace",
]

ALLOC: Final = "mm_page_alloc"
FREE: Final = "mm_page_free"
FREE_BATCHED: Final = "mm_page_free_batched"
EVENTS: Final = (ALLOC, FREE, FREE_BATCHED)

MAX_MIGRATETYPE: Final = 5  # MIGRATE_ISOLATE, the last of enum migratetype in v6.3
PFN_LIMIT: Final = 1 << 52  # 64-bit physical addresses, 4 KiB pages
# What a failed allocation records as its pfn: ``page ? page_to_pfn(page) : -1UL``
# (TP_fast_assign of mm_page_alloc). The kernel's TP_printk maps it back to 0, but trace-cmd
# and perf print the raw field when they cannot evaluate pfn_to_page(): 0xffffffffffffffff.
FAILED_PFN: Final = (1 << 64) - 1
KEEP_SKIPPED: Final = 10  # how many skipped line numbers (and reasons) ParseStats keeps
EXCERPT_CHARS: Final = 80  # how much of a bad line an error message quotes

Form = Literal["trace", "trace-cmd", "trace-cmd-latency"]


@attrs.frozen(slots=True)
class PageEvent:
    """One page allocation or free, as a tracepoint recorded it.

    :param lineno: 1-based line number in the source text.
    :param timestamp: the trace clock in seconds (a raw count for the ``counter``/``x86-tsc``
        clocks, which print no decimal point).
    :param cpu: the CPU that hit the tracepoint.
    :param event: ``mm_page_alloc``, ``mm_page_free`` or ``mm_page_free_batched``.
    :param pfn: the first page frame number of the block, ``0 <= pfn < 2**52``.
    :param order: the block is ``2**order`` pages, ``0 <= order < MAX_ORDER``; always 0 for
        ``mm_page_free_batched``.
    :param migratetype: ``ac.migratetype`` of the allocation (0..5); None for frees.
    :param gfp_flags: ``show_gfp_flags()`` text, e.g. ``GFP_KERNEL|__GFP_ZERO`` or ``none``;
        None for frees.
    """

    lineno: int
    timestamp: float
    cpu: int
    event: str
    pfn: int
    order: int
    migratetype: int | None = None
    gfp_flags: str | None = None


@attrs.frozen(slots=True)
class ParseStats:
    """What :func:`parse` saw besides the events it returned.

    :param lines: lines read, including blank, comment and header lines.
    :param events: page events returned.
    :param other_events: trace lines of other events (ignored).
    :param other_by_event: ``other_events`` per event name (``kmalloc``,
        ``mm_page_alloc_zone_locked``, ``mm_page_pcpu_drain``, ...), names in sorted order.
    :param skipped: malformed lines skipped (only when not strict).
    :param skipped_lines: line numbers of the first :data:`KEEP_SKIPPED` skipped lines.
    :param skip_reasons: the error message of each of those lines, as strict mode raises it.
    :param failed_allocs: ``mm_page_alloc`` lines of failed allocations (``page`` NULL and
        ``pfn=0x0``, or ``pfn=0xffffffffffffffff``), which are not events.
    :param lost_markers: ``CPU:N [LOST n EVENTS]`` / ``[n EVENTS DROPPED]`` lines: the ring
        buffer overran, so frees of pages whose allocation was lost may follow.
    :param lost_events: the sum of the counts those lines give (some give none).
    """

    lines: int = 0
    events: int = 0
    other_events: int = 0
    skipped: int = 0
    skipped_lines: tuple[int, ...] = ()
    skip_reasons: tuple[str, ...] = ()
    failed_allocs: int = 0
    lost_markers: int = 0
    lost_events: int = 0
    other_by_event: dict[str, int] = attrs.field(factory=dict, hash=False)


# --- the line grammar -------------------------------------------------------------------------
# "%16s-%-7d " then, with the record-tgid option, "(%7d) " or "(-------) ". The patterns are
# used with search(), so the task name is whatever precedes the first "-<pid>" after which the
# rest of the line matches: it may hold spaces and dashes ("Web Content", "systemd-journal").
_PID: Final = r"-\d+[ \t]+(?:\((?:[ \t]*\d+|-+)\)[ \t]+)?"
# "[%03d] " then the irq-info flags ("d..1." in v6.3, 4 chars before v5.14, up to 7 from
# libtraceevent); or trace-cmd -l: "%3d" immediately followed by the latency flags.
_CPU_FORMS: Final = (
    r"\[(\d{1,6})\](?:[ \t]+[^\s:\[\]()]{1,8})?",
    r"(\d{1,6})[^\s\d:\[\]()][^\s:]{0,7}",
)
# " %5lu.%06lu: " (trace-cmd -t: 9 decimals; counter clocks: an integer).
_TIME: Final = r"[ \t]+(\d{1,20}(?:\.\d{1,9})?):[ \t]+"
_PAGE_BODY: Final = (
    r"(mm_page_alloc|mm_page_free_batched|mm_page_free):[ \t]+"
    r"page=(\S+)[ \t]+pfn=0x([0-9a-fA-F]{1,16})[ \t]+order=(\d{1,6})"
    r"(?:[ \t]+migratetype=(\d{1,6})[ \t]+gfp_flags=([\w|]+))?[ \t\r\n]*\Z"
)
_FAST: Final = tuple(re.compile(_PID + cpu + _TIME + _PAGE_BODY, re.ASCII) for cpu in _CPU_FORMS)
_PREFIX: Final = tuple(
    re.compile(_PID + cpu + _TIME + r"([^\s:]+)(.*)", re.ASCII | re.DOTALL) for cpu in _CPU_FORMS
)
_HEADER: Final = re.compile(
    r"cpus=\d+|version = \S+|CPU \d+ is empty|CPU:\d+ \[SUBBUFFER START\].*", re.ASCII
)
_LOST: Final = re.compile(
    r"CPU:\d+ \[(?:LOST (\d+) EVENTS|(\d+) EVENTS DROPPED|LOST EVENTS|EVENTS DROPPED)\]", re.ASCII
)
_NULL_PAGE: Final = re.compile(r"(?:0x)?0+|\((?:null|nil)\)", re.ASCII)
_HEX: Final = re.compile(r"0x[0-9a-fA-F]+", re.ASCII)
_DECIMAL: Final = re.compile(r"[0-9]+", re.ASCII)
_GFP: Final = re.compile(r"[\w|]+", re.ASCII)

_LAYOUT: Final = {
    ALLOC: ("page", "pfn", "order", "migratetype", "gfp_flags"),
    FREE: ("page", "pfn", "order"),
    FREE_BATCHED: ("page", "pfn", "order"),
}
_MAX_ORDER_OF: Final = {ALLOC: MAX_ORDER - 1, FREE: MAX_ORDER - 1, FREE_BATCHED: 0}
# What _event_from_match returns for a failed allocation, which is no event (compared by identity).
_FAILED: Final = PageEvent(0, 0.0, 0, ALLOC, 0, 0, 0, "none")


def parse(
    lines: Iterable[str], *, strict: bool = True, source: str = "<trace>"
) -> tuple[list[PageEvent], ParseStats]:
    """Parse trace text into page events, in line order.

    Blank lines, ``#`` comments and the header lines ``trace-cmd report`` prints are skipped
    silently; lines of other events are counted in ``other_events``; lost-event markers and
    failed allocations are counted (see :class:`ParseStats`).

    :param lines: the text, one line per item (a trailing newline is allowed).
    :param strict: raise on the first malformed line; else skip and count it.
    :param source: what error messages call the text, usually its path.
    :raises InputError: (strict only) ``<source>:<lineno>: <what is wrong>: <line excerpt>``
        for a malformed page-event line or a line that is not a trace line at all.
    """
    events: list[PageEvent] = []
    append = events.append
    counts = _Counts(source, strict)
    ints = _IntCache()
    texts: dict[str, str] = {}
    first, second = (pattern.search for pattern in _FAST)
    lineno = 0
    with _gc_paused():
        for lineno, line in enumerate(lines, 1):
            match = first(line)
            if match is None:
                match = second(line)
                if match is not None:  # a trace-cmd -l file: try its form first from now on
                    first, second = second, first
            event = None if match is None else _event_from_match(match, lineno, ints, texts)
            if event is None:
                counts.classify(lineno, line)
            elif event is _FAILED:
                counts.failed_allocs += 1
            else:
                append(event)
    return events, counts.stats(lineno, len(events))


def _event_from_match(
    match: re.Match[str], lineno: int, ints: _IntCache, texts: dict[str, str]
) -> PageEvent | None:
    """Build the event from a fast-regex match; None when a value is out of range.

    Returns :data:`_FAILED` for a failed allocation (NULL page, pfn 0). ``ints`` and ``texts``
    cache the conversions of the small fields and share one string per distinct text.
    """
    cpu, ts, name, page, pfn_text, order_text, mt, gfp = match.groups()
    pfn = int(pfn_text, 16)
    order = ints[order_text]
    if pfn == FAILED_PFN and name == ALLOC and mt is not None:
        return _FAILED
    if pfn >= PFN_LIMIT or order > _MAX_ORDER_OF[name]:
        return None
    if name != ALLOC:
        if mt is not None:
            return None
        return PageEvent(lineno, float(ts), ints[cpu], texts.setdefault(name, name), pfn, order)
    if mt is None or ints[mt] > MAX_MIGRATETYPE:
        return None
    if pfn == 0 and _NULL_PAGE.fullmatch(page):
        return _FAILED
    gfp = texts.setdefault(gfp, gfp)
    return PageEvent(lineno, float(ts), ints[cpu], ALLOC, pfn, order, ints[mt], gfp)


class _IntCache(dict[str, int]):
    """Decimal text -> int for cpu, order and migratetype, which take few distinct values."""

    def __missing__(self, text: str) -> int:
        value = self[text] = int(text)
        return value


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while events pile up.

    Events hold no reference cycles, and the collections that a million new objects trigger
    cost about a quarter of the parse time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@attrs.define
class _Counts:
    """The mutable counters behind :class:`ParseStats`, and the slow path of :func:`parse`."""

    source: str
    strict: bool
    other_events: int = 0
    other_by_event: dict[str, int] = attrs.Factory(dict)
    skipped: int = 0
    skipped_lines: list[int] = attrs.Factory(list)
    skip_reasons: list[str] = attrs.Factory(list)
    failed_allocs: int = 0
    lost_markers: int = 0
    lost_events: int = 0

    def classify(self, lineno: int, line: str) -> None:
        """Account for a line the fast path did not turn into an event.

        :raises InputError: (strict only) for a malformed line.
        """
        stripped = line.strip()
        if not stripped or stripped[0] == "#" or _HEADER.fullmatch(stripped):
            return
        lost = _LOST.fullmatch(stripped)
        if lost is not None:
            self.lost_markers += 1
            self.lost_events += int(lost[1] or lost[2] or 0)
            return
        name, rest = _split_event(line)
        if name is not None and name not in _LAYOUT:
            self.other_events += 1
            self.other_by_event[name] = self.other_by_event.get(name, 0) + 1
            return
        if name is None:
            problem = "not a trace line (want '<task>-<pid> [<cpu>] <seconds>: <event>: ...')"
        else:
            problem = _diagnose(name, rest)
        self.reject(lineno, line, problem)

    def reject(self, lineno: int, line: str, problem: str) -> None:
        """Raise (strict) or count (not strict) a malformed line."""
        message = error_message(self.source, lineno, problem, line)
        if self.strict:
            raise InputError(message)
        self.skipped += 1
        if len(self.skipped_lines) < KEEP_SKIPPED:
            self.skipped_lines.append(lineno)
            self.skip_reasons.append(message)

    def stats(self, lines: int, events: int) -> ParseStats:
        """Freeze the counters."""
        return ParseStats(
            lines=lines,
            events=events,
            other_events=self.other_events,
            skipped=self.skipped,
            skipped_lines=tuple(self.skipped_lines),
            skip_reasons=tuple(self.skip_reasons),
            failed_allocs=self.failed_allocs,
            lost_markers=self.lost_markers,
            lost_events=self.lost_events,
            other_by_event=dict(sorted(self.other_by_event.items())),
        )


def _split_event(line: str) -> tuple[str | None, str]:
    """Return (event name, text after it) of a trace line, or (None, "") if it is none."""
    for prefix in _PREFIX:
        match = prefix.search(line)
        if match is not None:
            return match[3], match[4]
    return None, ""


def _diagnose(name: str, rest: str) -> str:
    """Say what is wrong with the fields of a page-event line (``rest`` follows the name)."""
    if "[FAILED TO PARSE]" in rest:
        return "trace-cmd could not format this event ([FAILED TO PARSE])"
    if not rest.startswith(":"):
        return f"no ':' after the event name {name}"
    fields = rest[1:].split()
    layout = _LAYOUT[name]
    for index, key in enumerate(layout):
        if index >= len(fields):
            return f"missing {key}= (truncated line?)"
        found, _, value = fields[index].partition("=")
        if found != key:
            return f"expected {key}=, found {_quote(fields[index])}"
        problem = _check_value(name, key, value)
        if problem:
            return problem
    if len(fields) > len(layout):
        return f"unexpected {_quote(fields[len(layout)])} after {layout[-1]}="
    return f"does not match the v6.3 layout of {name}"


def _check_value(name: str, key: str, value: str) -> str | None:
    """Return what is wrong with one ``key=value`` of event ``name``, or None."""
    if not value:
        return f"empty {key}="
    if key == "pfn":
        return _check_pfn(value)
    if key == "gfp_flags":
        return None if _GFP.fullmatch(value) else f"bad gfp_flags {_quote(value)}"
    if key == "page":
        return None
    high = MAX_MIGRATETYPE if key == "migratetype" else _MAX_ORDER_OF[name]
    if not _DECIMAL.fullmatch(value):
        return f"bad {key} {_quote(value)} (want a decimal 0..{high})"
    if len(value) > 6 or int(value) > high:
        return f"{key} {_quote(value)} out of range 0..{high}"
    return None


def _check_pfn(value: str) -> str | None:
    """Return what is wrong with a ``pfn=`` value, or None."""
    if not _HEX.fullmatch(value):
        return f"bad pfn {_quote(value)} (v6.3 prints pfn=0x<hex>)"
    if len(value) > 18 or int(value, 16) >= PFN_LIMIT:
        return f"pfn {_quote(value)} is not below 2**52"
    return None


def _quote(text: str, limit: int = 24) -> str:
    """Quote a piece of a bad line for a message, shortened to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def error_message(source: str, lineno: int, problem: str, line: str) -> str:
    """Format ``<source>:<lineno>: <problem>: <line>`` on one printable line.

    The line loses its newline and is cut to about :data:`EXCERPT_CHARS` characters; control
    and other unprintable characters anywhere in the message are written as escapes.
    """
    excerpt = line.rstrip("\r\n")
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 3] + "..."
    return _printable(f"{source}:{lineno}: {problem}: {excerpt}")


def _printable(text: str) -> str:
    """Escape every character ``str.isprintable`` rejects (newlines, NUL, U+2028, ...)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


# --- files ------------------------------------------------------------------------------------
_COMPRESSED_MAGIC: Final = {b"\x1f\x8b": ".gz", b"\xfd7zXZ\x00": ".xz"}
_STREAM_ERRORS: Final = (OSError, EOFError, lzma.LZMAError, zlib.error)
_UTF8_BOM: Final = b"\xef\xbb\xbf"  # skipped at the start of the file (spreadsheets, editors)


def read_trace(
    path: str | os.PathLike[str], *, strict: bool = True
) -> tuple[list[PageEvent], ParseStats]:
    """Read and :func:`parse` a trace file: plain text, or gzip/xz compressed.

    A name ending in ``.gz`` or ``.xz`` is decompressed; any other is read as is. The text
    must be UTF-8: when strict, a line that is not raises InputError naming it; when not
    strict, bad bytes become U+FFFD and the line is parsed as usual.

    :raises InputError: for a missing or unreadable file, a corrupt compressed stream
        (strict or not), or (strict only) a malformed or undecodable line.
    """
    source = os.fspath(path)
    try:
        with ExitStack() as stack:
            binary = _open_binary(source, stack)
            return parse(_decode_lines(binary, source, strict), strict=strict, source=source)
    except FileNotFoundError:
        raise InputError(f"{_printable(source)}: no such file") from None
    except _STREAM_ERRORS as exc:
        raise InputError(f"{_printable(source)}: cannot read: {_printable(str(exc))}") from None


def _open_binary(source: str, stack: ExitStack) -> io.BufferedIOBase:
    """Open ``source`` for binary reading, through gzip or xz when its name ends so."""
    suffix = os.path.splitext(source)[1].lower()
    if suffix == ".gz":
        return stack.enter_context(gzip.open(source, "rb"))
    if suffix == ".xz":
        return stack.enter_context(lzma.open(source, "rb"))
    return stack.enter_context(open(source, "rb"))


def _decode_lines(binary: io.BufferedIOBase, source: str, strict: bool) -> Iterator[str]:
    """Yield the UTF-8 lines of ``binary`` (split at ``\\n`` only, newline kept).

    Bad bytes become U+FFFD when not strict.

    :raises InputError: (strict only) at the first line that is not UTF-8.
    """
    errors = "strict" if strict else "replace"
    lines: Iterator[bytes] = bounded_lines(cast(IO[bytes], binary), source)
    for lineno, raw in enumerate(lines, 1):
        if lineno == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM):]
        try:
            yield raw.decode("utf-8", errors)
        except UnicodeDecodeError as exc:
            problem = f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            for magic, suffix in _COMPRESSED_MAGIC.items():
                if lineno == 1 and raw.startswith(magic):
                    problem += f"; the file looks compressed: name it *{suffix}"
            text = raw.decode("utf-8", "replace")
            raise InputError(error_message(source, lineno, problem, text)) from None


# --- writing (tests, fixtures, docs) ----------------------------------------------------------
def format_event(
    event: PageEvent,
    form: Form = "trace",
    *,
    task: str = "bash",
    pid: int = 1234,
    flags: str = "d..1.",
    page: str | None = None,
) -> str:
    """Write ``event`` as one line (no newline) the way the kernel or trace-cmd prints it.

    :param form: ``trace`` (``/sys/kernel/tracing/trace``, irq-info on), ``trace-cmd``
        (``trace-cmd report``) or ``trace-cmd-latency`` (``trace-cmd report -l``).
    :param flags: the irq/latency flags column; ignored by the plain ``trace-cmd`` form.
    :param page: the ``page=`` text; by default a vmemmap address derived from the pfn.
    """
    if page is None:
        page = f"{0xFFFFEA0000000000 + 64 * event.pfn:016x}"
        page = page if form == "trace" else "0x" + page
    fields = f"page={page} pfn=0x{event.pfn:x} order={event.order}"
    if event.event == ALLOC:
        fields += f" migratetype={event.migratetype} gfp_flags={event.gfp_flags}"
    stamp = f"{event.timestamp:12.6f}"
    if form == "trace":
        return f"{task:>16}-{pid:<7} [{event.cpu:03d}] {flags} {stamp}: {event.event}: {fields}"
    name = f"{event.event}:".ljust(21)
    if form == "trace-cmd":
        return f"{task:>16}-{pid:<5} [{event.cpu:03d}] {stamp}: {name} {fields}"
    return f"{task[:8]:>8}-{pid:<5} {event.cpu:3d}{flags} {stamp}: {name} {fields}"
