"""A wall-clock watchdog for code that may never return (a design that loops).

Outside the model: the model never reads a clock; this only stops a run or a check that does
not end. SIGALRM-based, so it guards only the main thread (the CLI, or a worker process of
``--jobs``); elsewhere, and with ``seconds`` 0, the body runs unguarded.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def watchdog(seconds: float, on_expiry: Callable[[], None]) -> Iterator[None]:
    """Call ``on_expiry`` (which raises) if the body runs longer than ``seconds``."""
    usable = (seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        on_expiry()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
