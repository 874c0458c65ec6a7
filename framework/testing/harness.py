"""The engine path, one event at a time, with every check of docs/checks.md after each.

:class:`Harness` drives a :class:`framework.engine.Runner` the way ``Runner.run`` does (covered
sites to the design, the rest to the v6.3 status-quo path; the engine's own checker), but takes
its events one by one from the kit's random sequences, and after *every* event runs the
whole-state checks (conservation and the DirectMap counters) that a run makes only at
``sample`` events and at the end. The first broken rule the design has not declared as known
raises :class:`KitFailure` carrying the events so far, which is what hypothesis shrinks.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from framework.allocator import Allocator
from framework.checks import RULES
from framework.engine import Cell, Runner, Setup
from framework.errors import PluginError
from framework.kernel.faults import Faults
from framework.kernel.kernel import Kernel
from framework.legacy import as_design
from framework.machine.spec import MachineSpec
from framework.request import ALLOC, FREE, PRESSURE, WRITE, Event, Request
from framework.watchdog import watchdog

#: Failure kinds besides the rules of docs/checks.md: the design raised or returned garbage
#: (the engine's PluginError), or one event ran past the watchdog's budget.
PLUGIN_ERROR = "plugin_error"
TIMEOUT = "timeout"
KINDS: tuple[str, ...] = (*RULES, PLUGIN_ERROR, TIMEOUT)

Factory = Callable[[Kernel], Allocator]


class KitFailure(Exception):
    """A broken rule, with the events that led to it (the last one broke it)."""

    def __init__(self, rule: str, detail: str, events: tuple[Event, ...]) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail
        self.events = events


class StepTimeout(BaseException):
    """One event ran longer than the watchdog allows (a design that loops).

    A BaseException so that neither the engine's ``except Exception`` nor hypothesis turns
    it into an ordinary failing example to shrink: a loop is reported at once.
    """

    def __init__(self, seconds: float, events: tuple[Event, ...]) -> None:
        super().__init__(f"one event ran longer than {seconds:g} s")
        self.seconds = seconds
        self.events = events


@attrs.frozen(slots=True)
class Target:
    """What to test and on what: the design, the machine, costs and faults.

    :param factory: ``(kernel) -> Allocator``.
    :param spec: the modelled machine.
    :param costs: the cost table (``resolve_costs({})`` for the defaults).
    :param faults: fault injection (none by default).
    :param known: rules this design (variant) is declared to break; not failures.
    :param step_seconds: watchdog budget for one event, 0 for none (wall clock, outside the
        model: it only stops a design that never returns).
    """

    factory: Factory
    spec: MachineSpec
    costs: dict[str, float]
    faults: Faults = attrs.field(factory=Faults)
    known: frozenset[str] = frozenset()
    step_seconds: float = 0.0


class Harness:
    """One booted kernel, one design instance, the engine's runner and checker."""

    def __init__(self, target: Target) -> None:
        self.target = target
        kernel = Kernel(target.spec, target.costs, target.faults)
        allocator = as_design(target.factory(kernel))  # first-API designs: framework/legacy.py
        cell = Cell(allocator.name, "conformance", target.spec.name, target.faults.seed)
        setup = Setup(cell=cell, params={}, kernel=kernel, allocator=allocator,
                      events=iter(()))
        self.kernel = kernel
        self.allocator = allocator
        self.runner = Runner(setup)
        self.events: list[Event] = []
        self.sizes: dict[int, int] = {}
        self.next_id = 1
        self.failed = False
        runner = self.runner
        self._handlers: dict[str, Callable[[Event], None]] = {
            ALLOC: runner.on_alloc, FREE: runner.on_free, WRITE: runner.on_write,
            PRESSURE: runner.on_pressure}

    # -- events --------------------------------------------------------------------------
    def alloc(self, request: Request) -> int | None:
        """Ask for ``request``; the new id, or None when the design returned NULL."""
        aid = self.next_id
        self.next_id += 1
        self.apply(Event(ALLOC, aid, request))
        if aid not in self.runner.live:
            return None
        self.sizes[aid] = request.size
        return aid

    def check_promise(self, aid: int) -> None:
        """The unmapped promise of a covered site: an UNMAPPED request the design served
        itself must come back ``unmapped=True`` (the engine only counts a mapped answer in
        ``unmapped_served_mapped_bytes``, since the status quo makes no such promise)."""
        entry = self.runner.live.get(aid)
        if entry is None or "unmapped_present" in self.target.known:
            return
        alloc, req = entry
        mine = req.site in self.allocator.covers
        if mine and req.perm == "UNMAPPED" and not alloc.unmapped:
            self.fail("unmapped_present", f"event {len(self.events) - 1}: {req.site} asked "
                      "for UNMAPPED memory and the design, which covers it, handed out "
                      "unmapped=False (present in the direct map)")

    def free(self, aid: int) -> None:
        """Free a live id (the design's free or free_generic, as its request said)."""
        self.sizes.pop(aid, None)
        self.apply(Event(FREE, aid))

    def write(self, aid: int, length: int) -> None:
        """The owner writes ``length`` bytes (0: all of it)."""
        self.apply(Event(WRITE, aid, None, length))

    def pressure(self, nr_pages: int) -> None:
        """Memory pressure: shrinkers are asked for ``nr_pages``."""
        self.apply(Event(PRESSURE, 0, None, nr_pages))

    def live_ids(self) -> list[int]:
        """Ids allocated and not freed, oldest first."""
        return sorted(self.runner.live)

    def finish(self) -> None:
        """Free everything, let the shrinkers take all they will, check the final state.

        This is the accounting contract: with nothing live and the caches shrunk, every
        page still taken from the buddy is a page table or in ``cache_pages()``.
        """
        for aid in self.live_ids():
            self.free(aid)
        self.pressure(max(1, self.kernel.nr_allocated))

    def apply(self, event: Event) -> None:
        """Run one event through the engine's handler, then judge the whole state."""
        runner = self.runner
        checker = runner.checker
        checker.event = len(self.events)
        self.events.append(event)
        try:
            with watchdog(self.target.step_seconds, self._timeout):
                self._handlers[event.op](event)
        except PluginError as exc:
            self.fail(PLUGIN_ERROR, str(exc))
        if event.op == ALLOC:
            self.check_promise(event.id)
        if self.kernel.violations:
            checker.drain_kernel()
        try:
            checker.check_state(runner.held_pages())
        except Exception as exc:  # cache_pages() itself raised
            self.fail(PLUGIN_ERROR, f"cache_pages() raised {type(exc).__name__}: {exc}")
        self.judge()

    def _timeout(self) -> None:
        self.failed = True
        raise StepTimeout(self.target.step_seconds, tuple(self.events))

    def judge(self) -> None:
        """Raise for the first rule broken so far that is not declared known."""
        counts = self.runner.checker.counts
        for rule in RULES:
            if counts[rule] and rule not in self.target.known:
                self.fail(rule, self.first_detail(rule))

    def first_detail(self, rule: str) -> str:
        """The first recorded violation of ``rule``: where and what."""
        for v in self.runner.checker.kept:
            if v.rule == rule:
                return f"at {hex(v.where)}, event {v.event}: {v.detail}"
        return "recorded"

    def broken(self) -> set[str]:
        """Every rule with at least one violation so far (known ones included)."""
        return {rule for rule, n in self.runner.checker.counts.items() if n}

    def fail(self, rule: str, detail: str) -> None:
        """Stop this sequence: raise :class:`KitFailure` with the events so far."""
        self.failed = True
        raise KitFailure(rule, detail, tuple(self.events))


