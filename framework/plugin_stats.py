"""``--stats``: each design's own counters (``Allocator.stats()``) as tables, not JSON.

A design's stats are a JSON-ready dict; its shape picks the layout:

- lists of scalars of one length (``Order``, ``Free``, ``Cached``, ``Released``: the v3
  debugfs file) become the columns of one table, a row per index, as debugfs prints it;
- a list of dicts (one per node) becomes a table with a row per item;
- a dict of dicts (one per size class) becomes a table with a row per key;
- scalars go on one ``key value`` line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tabulate import tabulate

_TABLEFMT = {"plain": "plain", "markdown": "github", "rst": "rst"}


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def _columns(stats: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The longest group of same-length scalar lists (the debugfs table's columns)."""
    by_len: dict[int, dict[str, list[Any]]] = {}
    for key, value in stats.items():
        if isinstance(value, list) and len(value) > 1 and all(map(_scalar, value)):
            by_len.setdefault(len(value), {})[key] = value
    if not by_len:
        return {}
    best = max(by_len.values(), key=len)
    first = [k for k in ("Order", "order") if k in best]  # the index column leads
    return {k: best[k] for k in [*first, *(k for k in best if k not in first)]}


def _rows_table(key: str, items: Sequence[Mapping[str, Any]] | Mapping[str, Any],
                fmt: str) -> str:
    if isinstance(items, Mapping):
        rows = [{key: name, **{k: v for k, v in sub.items() if _scalar(v)}}
                for name, sub in items.items()]
    else:
        rows = [{k: v for k, v in item.items() if _scalar(v)} for item in items]
    headers = list(dict.fromkeys(k for row in rows for k in row))
    body = [[row.get(h, "") for h in headers] for row in rows]
    return f"{key}:\n" + str(tabulate(body, headers=headers, tablefmt=_TABLEFMT[fmt]))


def stats_text(stats: Mapping[str, Any], fmt: str) -> str:
    """One design's stats laid out as tables and a line of scalars."""
    parts = []
    columns = _columns(stats)
    if columns:
        body = list(zip(*columns.values(), strict=True))
        parts.append(tabulate(body, headers=list(columns), tablefmt=_TABLEFMT[fmt]))
    scalars = []
    for key, value in stats.items():
        if key in columns:
            continue
        if _scalar(value):
            scalars.append(f"{key} {value}")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            parts.append(_rows_table(key, value, fmt))
        elif isinstance(value, Mapping) and value and all(isinstance(v, Mapping)
                                                          for v in value.values()):
            parts.append(_rows_table(key, value, fmt))
        else:
            scalars.append(f"{key} {value}")
    if scalars:
        parts.append("; ".join(scalars))
    return "\n".join(parts)
