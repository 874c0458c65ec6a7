"""``trace``: replay requests from a CSV file (DESIGN section 5, a contract).

Header ``op,id,site,size,perm,zero,node,freed_by``; one event per row; unused fields empty.
``op`` is ``alloc``, ``free``, ``write``, ``pressure`` (pages wanted back in ``size``) or
``sample``. ``zero`` is 0 or 1 (empty: 1), ``node`` empty for any node, ``freed_by`` ``OWNER``
(default) or ``GENERIC``. ``site`` is one of :data:`framework.request.SITES`. The whole file
is read and checked when the run is prepared, so a bad row stops the run before anything is
modelled, with the file and line in the message; it is then read again as the run goes, so
memory does not grow with the file (only with the ids live at once).

Bounds: a line is at most :data:`framework.lines.MAX_LINE` characters, and a request or a
pressure asks for at most the memory the buddy manages (``machine.mem_gib`` less
``machine.reserved_mib``): a bigger one could never be met, and the status-quo secretmem
path would fault it in page by page before failing. A UTF-8 byte-order mark at the
start is skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

import attrs
import numpy as np

from framework.errors import InputError
from framework.filecache import once_per_file
from framework.kernel.consts import PAGE_SHIFT
from framework.lines import bounded_lines
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import (
    ALLOC,
    FREE,
    FREED_BY,
    OPS,
    PERMS,
    PRESSURE,
    SITES,
    WRITE,
    Event,
    Request,
)
from framework.workload import Workload

HEADER = ["op", "id", "site", "size", "perm", "zero", "node", "freed_by"]
MAX_SIZE = 1 << 46  # 64 TiB: machine.mem_gib's largest value


@attrs.frozen(slots=True)
class Limits:
    """What a row may ask for on this machine."""

    nodes: int = 1
    max_bytes: int = MAX_SIZE  # a request's size, in bytes
    max_pages: int = MAX_SIZE >> PAGE_SHIFT  # a pressure's pages

    @classmethod
    def of(cls, machine: MachineSpec) -> Limits:
        """The memory the buddy manages (all of it less ``machine.reserved_mib``) bounds
        one request: a bigger one could never be met."""
        pages = machine.mem_pages - (machine.reserved_mib << (20 - PAGE_SHIFT))
        return cls(machine.nodes, pages << PAGE_SHIFT, pages)


class Trace(Workload):
    """Replays a CSV of requests."""

    name = "trace"
    summary = "replay a CSV of alloc/free/write/pressure/sample events"
    source = "the user's file (--set trace.path=FILE)"
    default = False
    params = (Param("path", str, "", "CSV file to replay (header op,id,site,size,perm,zero,"
                    "node,freed_by)"),)

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        if not params["path"]:
            raise InputError("trace needs a file: --set trace.path=FILE.csv")
        self.path: str = params["path"]
        self.limits = Limits.of(machine)
        self.count = count_trace_csv(self.path, self.limits)

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """The file's events, in order, read again as the run consumes them."""
        return iter_trace_csv(self.path, self.limits)


@once_per_file
def count_trace_csv(path: str, limits: Limits) -> int:
    """Check the whole file and count its events, once per invocation for every cell that
    replays it (:func:`framework.filecache.once_per_file`); each cell then streams the rows
    again, so memory stays bounded whatever the file's size."""
    return sum(1 for _ in iter_trace_csv(path, limits))


def read_trace_csv(path: str, nodes: int, limits: Limits | None = None) -> list[Event]:
    """Parse and check a whole trace CSV (see :func:`iter_trace_csv`) into a list."""
    return list(iter_trace_csv(path, limits or Limits(nodes)))


def iter_trace_csv(path: str, limits: Limits) -> Iterator[Event]:
    """Parse and check a trace CSV row by row. Ids must be allocated before they are
    written or freed.

    :raises InputError: naming the file, the line and the bad value.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            yield from _parse(csv.reader(bounded_lines(fh, path)), path, limits)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason}){_utf16(exc.object)}"
                         ) from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from None
    except ValueError as exc:  # a path with a NUL byte
        raise InputError(f"{path!r}: cannot read: {exc}") from None


def _utf16(data: object) -> str:
    """A hint when the bytes start with a UTF-16 byte-order mark."""
    if isinstance(data, bytes) and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "; it starts with a UTF-16 byte-order mark: save it as UTF-8"
    return ""


def _parse(reader: Iterable[list[str]], path: str, limits: Limits) -> Iterator[Event]:
    rows = iter(reader)
    header = next(rows, None)
    if header is None or [h.strip() for h in header] != HEADER:
        raise InputError(f"{path}:1: header must be {','.join(HEADER)}")
    live: set[int] = set()
    for lineno, row in enumerate(rows, start=2):
        if not row:
            continue
        yield _row(row, live, limits, f"{path}:{lineno}")


def _row(row: list[str], live: set[int], limits: Limits, where: str) -> Event:
    if len(row) != len(HEADER):
        raise InputError(f"{where}: expected {len(HEADER)} fields, got {len(row)}")
    op, ident, site, size, perm, zero, node, freed_by = (f.strip() for f in row)
    if op not in OPS:
        raise InputError(f"{where}: op {op!r}: expected one of {', '.join(OPS)}")
    if op == ALLOC:
        aid = _int(ident, "id", where, 0, 1 << 62)
        if aid in live:
            raise InputError(f"{where}: id {aid} is already live")
        live.add(aid)
        return Event(ALLOC, aid, _request(site, size, perm, zero, node, freed_by, limits, where))
    if op in (FREE, WRITE):
        aid = _int(ident, "id", where, 0, 1 << 62)
        if aid not in live:
            raise InputError(f"{where}: {op} of id {aid}, which is not live")
        if op == FREE:
            live.discard(aid)
            return Event(FREE, aid)
        return Event(WRITE, aid, None,
                     _int(size, "size", where, 0, limits.max_bytes) if size else 0)
    if op == PRESSURE:
        return Event(PRESSURE, 0, None, _int(size, "size", where, 0, limits.max_pages,
                                             "pages the machine's buddy manages"))
    return Event(op)


def _request(site: str, size: str, perm: str, zero: str, node: str, freed_by: str,
             limits: Limits, where: str) -> Request:
    if not site:
        raise InputError(f"{where}: alloc needs a site")
    if site not in SITES:
        raise InputError(f"{where}: site {site[:40]!r}: expected one of {', '.join(SITES)}")
    if perm not in PERMS:
        raise InputError(f"{where}: perm {perm!r}: expected one of {', '.join(PERMS)}")
    freed = freed_by or "OWNER"
    if freed not in FREED_BY:
        raise InputError(f"{where}: freed_by {freed_by!r}: expected OWNER or GENERIC")
    if zero not in ("", "0", "1"):
        raise InputError(f"{where}: zero {zero!r}: expected 0 or 1")
    return Request(
        site, _int(size, "size", where, 1, limits.max_bytes, "bytes the machine's buddy manages"),
        perm, zero != "0",
        _int(node, "node", where, 0, limits.nodes - 1) if node else None, freed,
    )


def _int(text: str, what: str, where: str, low: int, high: int, unit: str = "") -> int:
    """An integer from ``low`` to ``high`` (Python refuses over 4300 digits by itself)."""
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where}: {what} {text[:40]!r}: expected an integer") from None
    if not low <= value <= high:
        raise InputError(f"{where}: {what} {value}: expected {low} to {high}"
                         f"{f' ({unit})' if unit else ''}")
    return value
