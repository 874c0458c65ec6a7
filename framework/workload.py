"""The workload contract (DESIGN section 7).

A workload is a deterministic generator of :class:`framework.request.Event` s. It declares
typed parameters with defaults sized so the default suite runs in seconds, and draws every
random number from the generator the engine passes in (seeded from the run's seed with
numpy's ``SeedSequence``), so the same seed gives the same event stream.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import Event


class Workload(ABC):
    """Base class of a workload.

    :cvar name: the name used on the command line (unique).
    :cvar summary: one line for ``framework list``.
    :cvar source: where its numbers come from.
    :cvar params: typed parameters, set with ``--set NAME.KEY=VALUE``.
    :cvar default: part of ``--workloads all`` (the default suite).
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    default: ClassVar[bool] = True

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        """Keep the resolved parameters and the machine (read files here, not in events)."""
        self.config = params
        self.machine = machine

    @abstractmethod
    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Yield the events of one run. Every id freed or written must be live."""
