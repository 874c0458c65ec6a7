"""Random alloc / write / free / pressure sequences, shrunk to the smallest that breaks a rule.

:func:`machine_class` builds a hypothesis ``RuleBasedStateMachine`` over a :class:`Harness`;
:func:`search` runs it and returns the shrunk failing sequence, or None when every example
held. :func:`search_all` repeats the search, each time declaring the rules already found as
known, so each broken rule gets its own smallest sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from framework.request import ALLOC, FREE, PRESSURE, WRITE, Event
from framework.testing.harness import (
    KINDS,
    PLUGIN_ERROR,
    TIMEOUT,
    Harness,
    KitFailure,
    StepTimeout,
    Target,
)
from framework.testing.sites import PAGE, SiteProfile, request_strategy

TRACE_HEADER = "op,id,site,size,perm,zero,node,freed_by"
PAIR_LIMIT = 16


@attrs.frozen(slots=True)
class Effort:
    """How hard hypothesis looks: examples, steps per example, and whether to randomise.

    ``derandomize`` (the default) makes every run of the same suite try the same examples,
    so a third party's CI cannot turn red by luck.
    """

    max_examples: int = 25
    steps: int = 30
    derandomize: bool = True
    long_examples: int = 0  # a last round of this many long sequences (0: none)
    long_steps: int = 300  # events per long sequence, at most
    workload_events: int = 0  # the workload phase (framework/testing/drive.py): events per
    # built-in workload, 0 for none

    def ladder(self) -> list[Effort]:
        """The search split into rounds of growing sequence length (same total examples),
        then ``long_examples`` sequences of up to ``long_steps`` events: a bug that needs
        many events (a cache that breaks after its 100th allocation) is out of reach of the
        short ones."""
        short = min(5, self.steps)
        middle = max(short, self.steps // 3)
        first = max(1, self.max_examples // 5)
        second = max(1, self.max_examples // 3)
        rounds = [(first, short), (second, middle),
                  (max(1, self.max_examples - first - second), self.steps)]
        out: list[Effort] = []
        for examples, steps in rounds:
            if out and out[-1].steps == steps:
                out[-1] = attrs.evolve(out[-1], max_examples=out[-1].max_examples + examples)
            else:
                out.append(attrs.evolve(self, max_examples=examples, steps=steps))
        if self.long_examples and self.long_steps > self.steps:
            out.append(attrs.evolve(self, max_examples=self.long_examples,
                                    steps=self.long_steps))
        return out

    def settings(self) -> Any:
        """The hypothesis settings for one search.

        Hypothesis only generates: its own shrinker replays hundreds of examples through the
        kernel model (minutes on a design with costly steps), so :func:`minimise` shrinks the
        failing sequence instead, by deleting events and replaying, which is cheap and
        leaves a sequence from which no single event can be removed.
        """
        from hypothesis import HealthCheck, Phase, settings

        return settings(max_examples=self.max_examples, stateful_step_count=self.steps,
                        deadline=None, database=None, derandomize=self.derandomize,
                        report_multiple_bugs=False, print_blob=False,
                        phases=(Phase.explicit, Phase.reuse, Phase.generate),
                        suppress_health_check=list(HealthCheck))


@attrs.frozen(slots=True)
class Finding:
    """A broken rule and the smallest event sequence hypothesis found for it."""

    rule: str
    detail: str
    events: tuple[Event, ...]


def machine_class(target: Target, sites: Sequence[str],
                  profiles: Mapping[str, SiteProfile]) -> type:
    """A RuleBasedStateMachine class driving ``target`` with requests for ``sites``."""
    from hypothesis import strategies as st
    from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, multiple, rule

    requests = request_strategy(list(sites), profiles)

    class Conformance(RuleBasedStateMachine):
        """Allocations are a bundle: free consumes one, write uses one."""

        ids = Bundle("ids")

        def __init__(self) -> None:
            super().__init__()
            self.h = Harness(target)

        @rule(target=ids, request=requests)
        def alloc(self, request: Any) -> Any:
            aid = self.h.alloc(request)
            return multiple() if aid is None else aid

        @rule(aid=consumes(ids))
        def free(self, aid: int) -> None:
            self.h.free(aid)

        @rule(aid=ids, percent=st.integers(0, 100))
        def write(self, aid: int, percent: int) -> None:
            size = self.h.sizes[aid]
            self.h.write(aid, 0 if percent == 0 else max(1, size * percent // 100))

        @rule(target=ids, aid=consumes(ids), request=requests)
        def recycle(self, aid: int, request: Any) -> Any:
            """Write, free, allocate again at once: the page just written is the buddy's
            (or the cache's) first choice, so reuse bugs show up in short sequences."""
            self.h.write(aid, 0)
            self.h.free(aid)
            new = self.h.alloc(request)
            return multiple() if new is None else new

        @rule(nr_pages=st.integers(1, 1 << 12))
        def pressure(self, nr_pages: int) -> None:
            self.h.pressure(nr_pages)

        def teardown(self) -> None:
            if not self.h.failed:
                self.h.finish()

    return Conformance


def search(target: Target, sites: Sequence[str], profiles: Mapping[str, SiteProfile],
           effort: Effort) -> Finding | None:
    """Run the state machine; the shrunk failure, or None if every example held.

    Short sequences first: a fifth of the examples with at most 5 steps, then a third with
    a third of the steps, then the rest at full length, so that a simple bug is found in a
    short sequence and minimising it is quick.
    """
    for part in effort.ladder():
        finding = _search_once(target, sites, profiles, part)
        if finding is not None:
            return finding
    return None


def _search_once(target: Target, sites: Sequence[str], profiles: Mapping[str, SiteProfile],
                 effort: Effort) -> Finding | None:
    from hypothesis.reporting import with_reporter
    from hypothesis.stateful import run_state_machine_as_test

    cls = machine_class(target, sites, profiles)
    try:
        with with_reporter(lambda _text: None):
            run_state_machine_as_test(cls, settings=effort.settings())
    except KitFailure as exc:
        return minimise(target, Finding(exc.rule, exc.detail, exc.events))
    except StepTimeout as exc:
        return _shorter_timeout(target, Finding(TIMEOUT, str(exc), exc.events))
    except Exception as exc:  # the design raised outside the engine's handlers
        return Finding(PLUGIN_ERROR, f"{type(exc).__name__}: {exc}".splitlines()[0], ())
    return None


def replay(target: Target, events: Sequence[Event]) -> Finding | None:
    """Run ``events`` on a fresh harness, then free everything and shrink (the teardown).

    Writes and frees of ids that are not live (their alloc was deleted, or got NULL this
    time) are dropped. Returns the failure, with the events that actually ran, or None.
    """
    h = Harness(target)
    renumber: dict[int, int] = {}
    try:
        for ev in events:
            if ev.op == ALLOC:
                aid = h.alloc(ev.request)  # type: ignore[arg-type]
                if aid is not None:
                    renumber[ev.id] = aid
            elif ev.op == FREE:
                if ev.id in renumber:
                    h.free(renumber.pop(ev.id))
            elif ev.op == WRITE:
                if ev.id in renumber:
                    h.write(renumber[ev.id], ev.arg)
            elif ev.op == PRESSURE:
                h.pressure(ev.arg)
        h.finish()
    except KitFailure as exc:
        return Finding(exc.rule, exc.detail, exc.events)
    except StepTimeout as exc:
        return Finding(TIMEOUT, str(exc), exc.events)
    return None


def _shorter_timeout(target: Target, finding: Finding) -> Finding:
    """A hang costs the whole watchdog budget per replay, so try one replay only: the event
    that hung, on a fresh harness."""
    if len(finding.events) > 1:
        alone = replay(target, finding.events[-1:])
        if alone is not None and alone.rule == TIMEOUT:
            return alone
    return finding


class _OutOfReplays(Exception):
    """The replay budget of :func:`minimise` is spent: keep the best sequence so far."""


def minimise(target: Target, finding: Finding, budget: int | None = None) -> Finding:
    """Delete events (in halving chunks, down to single ones) while the same rule breaks.

    Deterministic. Without a ``budget`` the result is 1-minimal: deleting any one more event
    makes the rule hold. With one, at most ``budget`` replays are spent and the smallest
    failing sequence found by then is returned (a long workload sequence would otherwise
    cost minutes). Allocation ids are renumbered from 1 in the order the replay made them.
    """
    if budget is None:
        return _minimise(target, finding, replay)
    left = [budget]

    def counted(t: Target, events: Sequence[Event]) -> Finding | None:
        if left[0] <= 0:
            raise _OutOfReplays
        left[0] -= 1
        return replay(t, events)

    best: list[Finding] = [finding]
    try:
        return _minimise(target, finding, counted, best)
    except _OutOfReplays:
        return best[-1]


def _minimise(target: Target, finding: Finding, replay: Any,
              progress: list[Finding] | None = None) -> Finding:
    """:func:`minimise` with its replay function; each smaller failing sequence found is
    appended to ``progress``."""
    def keep(found: Finding) -> Finding:
        if progress is not None:
            progress.append(found)
        return found

    best = replay(target, finding.events)
    if best is None or best.rule != finding.rule:
        return finding  # not reproducible on a fresh harness: report it as found
    keep(best)
    core = [ev for ev in best.events]
    chunk = max(1, len(core) // 2)
    while True:
        i = 0
        while i < len(core):
            trial = replay(target, core[:i] + core[i + chunk:])
            if trial is not None and trial.rule == finding.rule:
                best = keep(trial)
                core = core[:i] + core[i + chunk:]
            else:
                i += chunk
        if chunk == 1:
            best, core = _drop_pairs(target, best, core, replay)
            return _smaller_sizes(target, best, core, replay)
        chunk //= 2


def _drop_pairs(target: Target, best: Finding, core: list[Event], replay: Any = replay
                ) -> tuple[Finding, list[Event]]:
    """Try deleting two events at once (an alloc and the free that hides its effect...).

    Quadratic in the events, so only for sequences of at most :data:`PAIR_LIMIT` events.
    """
    restart = True
    while restart and len(core) <= PAIR_LIMIT:
        restart = False
        for i in range(len(core)):
            for j in range(i + 1, len(core)):
                trial_events = core[:i] + core[i + 1:j] + core[j + 1:]
                trial = replay(target, trial_events)
                if trial is not None and trial.rule == best.rule:
                    best, core, restart = trial, trial_events, True
                    break
            if restart:
                break
    return best, core


def _smaller_sizes(target: Target, best: Finding, core: list[Event], replay: Any = replay
                   ) -> Finding:
    """Try each allocation with a smaller size (1 byte, one page) while the rule breaks."""
    for i, ev in enumerate(core):
        if ev.op != ALLOC or ev.request is None:
            continue
        for size in (1, PAGE):
            if size >= ev.request.size:
                continue
            trial_events = [*core[:i], ev._replace(request=attrs.evolve(ev.request, size=size)),
                            *core[i + 1:]]
            trial = replay(target, trial_events)
            if trial is not None and trial.rule == best.rule:
                best, core = trial, trial_events
                break
    return best


def search_all(target: Target, sites: Sequence[str], profiles: Mapping[str, SiteProfile],
               effort: Effort, kinds: Sequence[str] = KINDS) -> dict[str, Finding]:
    """One shrunk sequence per broken rule among ``kinds``.

    Each round declares the rules found so far as known and searches again. A design that
    raises or hangs stops the rounds: later rules cannot be judged past that point.
    """
    found: dict[str, Finding] = {}
    known = set(target.known) | (set(KINDS) - set(kinds))
    while True:
        finding = search(attrs.evolve(target, known=frozenset(known)), sites, profiles, effort)
        if finding is None or finding.rule in found:
            return found
        found[finding.rule] = finding
        if finding.rule in (PLUGIN_ERROR, TIMEOUT):
            return found
        known.add(finding.rule)


def trace_rows(events: Sequence[Event]) -> list[str]:
    """``events`` as rows of the trace CSV (docs/contracts.md): replayable with ``trace``."""
    rows = []
    for ev in events:
        if ev.op == ALLOC and ev.request is not None:
            r = ev.request
            node = "" if r.node is None else str(r.node)
            rows.append(f"alloc,{ev.id},{r.site},{r.size},{r.perm},{int(r.zero)},{node},"
                        f"{r.freed_by}")
        elif ev.op == WRITE:
            rows.append(f"write,{ev.id},,{ev.arg or ''},,,,")
        elif ev.op == FREE:
            rows.append(f"free,{ev.id},,,,,,")
        elif ev.op == PRESSURE:
            rows.append(f"pressure,,,{ev.arg},,,,")
        else:
            rows.append(f"{ev.op},,,,,,,")
    return rows
