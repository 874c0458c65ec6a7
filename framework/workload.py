"""The workload contract (docs/contracts.md, "Workloads").

A workload is a deterministic generator of :class:`framework.request.Event` s. It declares
typed parameters with defaults sized so the default suite runs in seconds, and draws every
random number from the generator the engine passes in (seeded from the run's seed with
numpy's ``SeedSequence``), so the same seed gives the same event stream.

Two additions serve the ``background`` workload and running any workload on top of it:

- **The probe** (:class:`FreeAreaProbe`). Before it calls :meth:`Workload.events`, the engine
  sets ``workload.probe`` to a read-only view of the kernel model: the free blocks per order
  summed over zones (or of one node), over all migratetypes as ``/proc/buddyinfo`` shows
  them or for one migratetype as a row of ``/proc/pagetypeinfo``. The engine pulls
  events one at a time and handles each before it asks for the next, so a generator that
  reads the probe sees the state after every event it has yielded so far. The probe is a
  function of the (deterministic) model state, so a workload that uses it is still
  deterministic for a seed and a design. It changes nothing and costs no modelled cycles.
- **The common parameter** ``background`` (:data:`COMMON_PARAMS`), appended to every
  workload's ``params`` by :meth:`Workload.__init_subclass__` (so ``--set NAME.background=X``
  validates for every workload, built-in or third-party, and ``framework list`` shows it).
  0 (the default) is off. A value ``0 < X <= 1`` runs the ``background`` workload's
  fragmenting phase first, with ``X`` as its ``target`` (the share of free memory left in
  blocks of order >= ``pageblock_order``), then interleaves background churn with the
  workload's own events (:func:`with_background`). The other knobs of the load come from
  ``--set background.KEY=VALUE``. Background events use negative ids and their own random
  stream (``SeedSequence(seed, spawn_key=(1,))``), so the workload's own events are exactly
  those it yields when run alone. Negative ids are reserved for the load: the engine keeps
  those allocations out of the alloc/free latency percentiles, ``requested_bytes`` and
  ``footprint_bytes`` (they still count in every kernel-wide metric: DirectMap, splits,
  flushes, ``cycles_total``; and in ``alloc_failures``, which the load avoids by asking only
  for what the buddy can serve). The load stays allocated when the workload ends.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from framework.kernel.consts import MAX_ORDER
from framework.machine.spec import MachineSpec
from framework.params import Param, resolve
from framework.request import SAMPLE, Event

if TYPE_CHECKING:
    from framework.kernel.kernel import Kernel

TOP = MAX_ORDER - 1
BACKGROUND_PARAM = "background"
BACKGROUND_STREAM = 1  # spawn_key of the background's random stream
COMMON_PARAMS: tuple[Param, ...] = (
    Param(BACKGROUND_PARAM, float, 0.0,
          "run on top of the background workload: its target share of free memory in "
          "order>=9 blocks (0: off)", min=0, max=1),
)


class FreeAreaProbe:
    """Read-only view of the kernel model a workload may consult (see the module docstring)."""

    __slots__ = ("_zones",)

    def __init__(self, kernel: Kernel) -> None:
        self._zones = kernel.zones

    def free_blocks(self, migratetype: int | None = None, node: int | None = None
                    ) -> tuple[int, ...]:
        """Free blocks per order 0..MAX_ORDER-1, summed over zones (or of one node's zone).

        :param migratetype: None for ``free_area[order].nr_free`` over every migratetype (as
            ``/proc/buddyinfo`` prints it), or one migratetype's ``free_list`` lengths (a row
            of ``/proc/pagetypeinfo``). Untouched boot blocks count as ``MIGRATE_MOVABLE``.
        :param node: None for every node, else that node's zones only.
        """
        zones = self._zones if node is None else tuple(z for z in self._zones if z.node == node)
        if migratetype is not None:
            return tuple(sum(z.list_len(order, migratetype) for z in zones)
                         for order in range(MAX_ORDER))
        if len(zones) == 1:  # the common case, without the per-order sums
            counts = list(zones[0].nr_free)
            counts[TOP] = zones[0].nr_free_at(TOP)
            return tuple(counts)
        return tuple(sum(z.nr_free_at(order) for z in zones) for order in range(MAX_ORDER))

    def reserved_pages(self, node: int | None = None) -> int:
        """Free pages an ordinary request (highest zone ``ZONE_NORMAL``: ``GFP_KERNEL``,
        ``GFP_HIGHUSER_MOVABLE``) cannot take without reclaim: per zone its high watermark
        plus its ``lowmem_reserve`` for such a request (mm/page_alloc.c
        ``__zone_watermark_ok``, kswapd's goal), at most the zone's free pages."""
        zones = self._zones if node is None else tuple(z for z in self._zones if z.node == node)
        return sum(min(z.nr_free_pages, z.wmark[2] + z.lowmem_reserve[-1]) for z in zones)



class Workload(ABC):
    """Base class of a workload.

    :cvar name: the name used on the command line (unique).
    :cvar summary: one line for ``framework list``.
    :cvar source: where its numbers come from.
    :cvar params: typed parameters, set with ``--set NAME.KEY=VALUE``; :data:`COMMON_PARAMS`
        are appended to every subclass's tuple unless it declares a parameter of that name
        itself (which then also sets its default).
    :cvar default: part of ``--workloads all`` (the default suite).
    :ivar probe: set by the engine before :meth:`events` is called; None outside the engine.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    source: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    default: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Append the common parameters the subclass does not declare itself."""
        super().__init_subclass__(**kwargs)
        have = {p.name for p in cls.params}
        cls.params = (*cls.params, *(p for p in COMMON_PARAMS if p.name not in have))

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        """Keep the resolved parameters and the machine (read files here, not in events)."""
        self.config = params
        self.machine = machine
        self.probe: FreeAreaProbe | None = None

    @abstractmethod
    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Yield the events of one run. Every id freed or written must be allocated first;
        an id whose allocation got NULL may still be written and freed (skipped, counted)."""

    def stats(self) -> dict[str, Any]:
        """Workload-specific counts for the result's ``workload_stats`` (JSON-serialisable)."""
        return {}


class BackgroundLoad(Protocol):
    """What :func:`with_background` needs of the ``background`` workload."""

    probe: FreeAreaProbe | None

    def fragment(self, rng: np.random.Generator, ids: Iterator[int]) -> Iterator[Event]:
        """The fragmenting phase: ends when the target is met."""

    def churn(self, rng: np.random.Generator, ids: Iterator[int]) -> Iterator[Event]:
        """Endless churn that keeps the load (and the target) in place."""

    def churn_per_event(self) -> float:
        """Background events interleaved per event of the workload on top."""


def start_next(rng: np.random.Generator, started: int, total: int, live: int,
               concurrent: int) -> bool:
    """One step of a churn workload: start a new process, app or VM (True) or act on a live one.

    Starts while fewer than ``total`` have started and fewer than ``concurrent`` are live;
    with some live, a fair coin decides (drawn only then, so the stream is the same as the
    workloads' original inline test).
    """
    return started < total and live < concurrent and (not live or rng.random() < 0.5)


def lognormal_with_mean(rng: np.random.Generator, mean: float, sigma: float) -> int:
    """One log-normal draw whose mean is ``mean``, rounded to an integer."""
    mu = np.log(mean) - sigma * sigma / 2  # E[X] = exp(mu + sigma^2 / 2) = mean
    return round(float(rng.lognormal(mu, sigma)))


def sampled(stream: Iterator[Event], every: int) -> Iterator[Event]:
    """``stream`` with a ``sample`` event after every ``every`` of its events (0: none).

    With ``every == 0`` the stream itself is returned: no per-event cost.
    """
    if not every:
        return stream
    return _sampled(stream, every)


def _sampled(stream: Iterator[Event], every: int) -> Iterator[Event]:
    for count, event in enumerate(stream, start=1):
        yield event
        if count % every == 0:
            yield Event(SAMPLE)


def background_rng(seed: int) -> np.random.Generator:
    """The background's own random stream, independent of the workload's."""
    seq = np.random.SeedSequence(seed, spawn_key=(BACKGROUND_STREAM,))
    return np.random.Generator(np.random.PCG64(seq))


def background_params(bg_cls: type[Workload], target: float,
                      given: Mapping[str, Any]) -> dict[str, Any]:
    """The background's parameters: ``--set background.*`` values, ``target`` from the caller.

    :raises UnknownName, BadParameter: for bad ``background.*`` values.
    """
    return resolve(bg_cls.name, bg_cls.params, {**given, "target": target})


def with_background(main: Iterator[Event], load: BackgroundLoad,
                    rng: np.random.Generator) -> Iterator[Event]:
    """Run ``load``'s fragmenting phase, then ``main``'s events interleaved with its churn.

    After each event of ``main``, ``load.churn_per_event()`` background events follow on
    average (a fractional rate accumulates). Background ids are -1, -2, ...; the load stays
    live when ``main`` ends.
    """
    ids = itertools.count(-1, -1)
    yield from load.fragment(rng, ids)
    churn = load.churn(rng, ids)
    rate = load.churn_per_event()
    credit = 0.0
    for event in main:
        yield event
        credit += rate
        while credit >= 1.0:
            credit -= 1.0
            yield next(churn)
