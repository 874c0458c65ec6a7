"""Read an input file once per invocation, however many cells use it.

``framework bench`` prepares one workload per cell (design x workload x seed), and a trace,
ftrace or module-data file would otherwise be read and parsed again for each: a 1e6-line
ftrace took 14 s for one design and 82 s for six. :func:`once_per_file` memoises a reader
on the file's identity (absolute path, modification time, size) and its other arguments,
and remembers a :class:`~framework.errors.FrameworkError` too, so a bad file costs one parse
and gives the same message to every cell. The result is shared between cells: callers treat
it as read-only. With ``--jobs N`` each worker process keeps its own cache.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from framework.errors import FrameworkError

T = TypeVar("T")
MAX_FILES = 4  # parsed files kept per reader: a big trace is held, not a history of them


def file_key(path: str | os.PathLike[str]) -> tuple[Hashable, ...]:
    """What identifies a file's content within one invocation: path, mtime, size.

    A path that cannot be stat'ed keys on its name alone (the reader reports the error).
    """
    full = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(full)
    except OSError:
        return (full,)
    return (full, st.st_mtime_ns, st.st_size)


def once_per_file(reader: Callable[..., T]) -> Callable[..., T]:
    """Memoise ``reader(path, *args, **kwargs)`` by :func:`file_key` and the arguments."""
    memo: OrderedDict[tuple[Hashable, ...], T | FrameworkError] = OrderedDict()

    @functools.wraps(reader)
    def read(path: str | os.PathLike[str], *args: Hashable, **kwargs: Hashable) -> T:
        key = (file_key(path), args, tuple(sorted(kwargs.items())))
        if key in memo:
            memo.move_to_end(key)
        else:
            try:
                memo[key] = reader(path, *args, **kwargs)
            except FrameworkError as exc:
                memo[key] = exc
            while len(memo) > MAX_FILES:
                memo.popitem(last=False)
        value = memo[key]
        if isinstance(value, FrameworkError):
            raise type(value)(*value.args) from None
        return value

    read.cache_clear = memo.clear  # type: ignore[attr-defined]
    return read
