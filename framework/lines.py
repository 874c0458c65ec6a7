"""Reading the user's text files line by line with a bound on each line.

Every input reader goes through :func:`bounded_lines`, so a file without line ends
(``/dev/zero``, a binary file, a core dump given by mistake) costs at most one line's worth
of memory before it is refused, instead of being read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, AnyStr

from framework.errors import InputError

MAX_LINE = 1 << 16  # characters (or bytes): 300 times the longest line a reader expects
BOM = "\ufeff"  # a UTF-8 byte-order mark as decoded text; spreadsheets write one


def bounded_lines(stream: IO[AnyStr], source: str, limit: int = MAX_LINE) -> Iterator[AnyStr]:
    """Yield the lines of ``stream`` (line end kept), each at most ``limit`` long, its line
    end included.

    :raises InputError: naming ``source`` and the line number at the first longer line.
    """
    lineno = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        lineno += 1
        if len(line) > limit:
            raise InputError(f"{source}:{lineno}: line longer than {limit} characters: not "
                             "a text file of this format?")
        yield line
