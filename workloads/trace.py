"""``trace``: replay requests from a CSV file (a contract: docs/contracts.md, "Requests and the
trace CSV").

Header ``op,id,site,size,perm,zero,node,freed_by``; one event per row; unused fields empty.
``op`` is ``alloc``, ``free``, ``write``, ``pressure`` (pages wanted back in ``size``) or
``sample``. ``zero`` is 0 or 1 (empty: 1), ``node`` empty for any node, ``freed_by`` ``OWNER``
(default) or ``GENERIC``. The whole file is read and checked when the run is prepared, so a
bad row stops the run before anything is modelled, with the file and line in the message.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

import numpy as np

from framework.errors import InputError
from framework.filecache import once_per_file
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, FREED_BY, OPS, PERMS, PRESSURE, WRITE, Event, Request
from framework.workload import Workload

HEADER = ["op", "id", "site", "size", "perm", "zero", "node", "freed_by"]
MAX_SIZE = 1 << 44  # 16 TiB: more than any modelled machine


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
        self.rows = read_trace_csv(params["path"], machine.nodes)

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """The file's events, in order."""
        return iter(self.rows)


@once_per_file
def read_trace_csv(path: str, nodes: int) -> list[Event]:
    """Parse and check a trace CSV. Ids must be allocated before they are written or freed.

    Read once per invocation (:func:`framework.filecache.once_per_file`): every cell replays
    the same list, which is not modified.

    :raises InputError: naming the file, the line and the bad value.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return _parse(csv.reader(fh), path, nodes)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV: {exc}") from None


def _parse(reader: Any, path: str, nodes: int) -> list[Event]:
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != HEADER:
        raise InputError(f"{path}:1: header must be {','.join(HEADER)}")
    live: set[int] = set()
    events = []
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        events.append(_row(row, live, nodes, f"{path}:{lineno}"))
    return events


def _row(row: list[str], live: set[int], nodes: int, where: str) -> Event:
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
        return Event(ALLOC, aid, _request(site, size, perm, zero, node, freed_by, nodes, where))
    if op in (FREE, WRITE):
        aid = _int(ident, "id", where, 0, 1 << 62)
        if aid not in live:
            raise InputError(f"{where}: {op} of id {aid}, which is not live")
        if op == FREE:
            live.discard(aid)
            return Event(FREE, aid)
        return Event(WRITE, aid, None, _int(size, "size", where, 0, MAX_SIZE) if size else 0)
    if op == PRESSURE:
        return Event(PRESSURE, 0, None, _int(size, "size", where, 0, MAX_SIZE))
    return Event(op)


def _request(site: str, size: str, perm: str, zero: str, node: str, freed_by: str,
             nodes: int, where: str) -> Request:
    if not site:
        raise InputError(f"{where}: alloc needs a site")
    if perm not in PERMS:
        raise InputError(f"{where}: perm {perm!r}: expected one of {', '.join(PERMS)}")
    freed = freed_by or "OWNER"
    if freed not in FREED_BY:
        raise InputError(f"{where}: freed_by {freed_by!r}: expected OWNER or GENERIC")
    if zero not in ("", "0", "1"):
        raise InputError(f"{where}: zero {zero!r}: expected 0 or 1")
    return Request(
        site, _int(size, "size", where, 1, MAX_SIZE), perm, zero != "0",
        _int(node, "node", where, 0, nodes - 1) if node else None, freed,
    )


def _int(text: str, what: str, where: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{where}: {what} {text!r}: expected an integer") from None
    if not low <= value <= high:
        raise InputError(f"{where}: {what} {value}: expected {low} to {high}")
    return value
