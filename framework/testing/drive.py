"""The kit's workload phase: the design driven through the built-in workloads, short and
seeded, with every check after every event.

Random sequences are short so that a failure shrinks to a few events; a bug that needs many
events (a cache that goes wrong after its 100th allocation, a pool that only refills once it
is empty) hides from them. Each built-in workload here makes the requests a real run makes,
scaled down (:data:`KIT_WORKLOADS`), cut at ``max_events``, with a ``pressure`` event every
:data:`PRESSURE_EVERY` events so shrinkers run, then everything freed and shrunk. A failure
is minimised within a bounded number of replays (:data:`REPLAY_BUDGET`), so a long
sequence costs seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs
import numpy as np

from framework.params import resolve
from framework.plugins import get_registry
from framework.request import ALLOC, FREE, PRESSURE, WRITE, Event
from framework.testing.harness import (
    PLUGIN_ERROR,
    TIMEOUT,
    Harness,
    KitFailure,
    StepTimeout,
    Target,
)
from framework.testing.stateful import Finding, minimise
from framework.workload import FreeAreaProbe

#: Built-in workloads and the parameters that make them short (seed 1, the first events).
KIT_WORKLOADS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("secretmem", (("processes", "12"), ("concurrent", "4"), ("mean_pages", "16"))),
    ("modules", (("profile", "sample"), ("n", "12"), ("reloads", "8"))),
    ("bpf", (("apps", "40"), ("concurrent", "8"))),
    ("trampolines", (("attaches", "200"), ("concurrent", "16"))),
    ("pks-pagetables", (("processes", "12"), ("concurrent", "4"), ("mean_pages", "8"))),
    ("guest", (("vms", "3"), ("concurrent", "2"), ("vm_mib", "8"))),
    ("dma-nokmap", (("drivers", "2"), ("probe_buffers", "2"), ("bursts", "8"),
                    ("max_kib", "256"))),
)
PRESSURE_EVERY = 100  # events between pressure events
PRESSURE_PAGES = 256  # pages each asks of the shrinkers
REPLAY_BUDGET = 40  # replays spent minimising one workload failure
SEED = 1


def workload_events(name: str, params: dict[str, str], target: Target, harness: Harness,
                    max_events: int) -> list[Event]:
    """The first ``max_events`` events of workload ``name`` (seed :data:`SEED`), with a
    pressure event every :data:`PRESSURE_EVERY`; ``sample`` events dropped (the harness
    checks the whole state after every event anyway)."""
    cls = get_registry().workload(name)
    workload = cls(resolve(name, cls.params, params), target.spec)
    workload.probe = FreeAreaProbe(harness.kernel)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(SEED)))
    out: list[Event] = []
    for event in workload.events(rng):
        if len(out) >= max_events:
            break
        if event.op in (ALLOC, FREE, WRITE, PRESSURE):
            out.append(event)
            if len(out) % PRESSURE_EVERY == 0:
                out.append(Event(PRESSURE, 0, None, PRESSURE_PAGES))
    return out


def touches(events: Sequence[Event], sites: Sequence[str]) -> bool:
    """Does any allocation of ``events`` ask for one of ``sites``?"""
    wanted = set(sites)
    return any(ev.op == ALLOC and ev.request is not None and ev.request.site in wanted
               for ev in events)


def drive(target: Target, name: str, params: dict[str, str], covered: Sequence[str],
          max_events: int) -> Finding | None:
    """Run one workload through a fresh harness; the first broken rule, or None.

    Skipped (None) when the design covers sites and none of the workload's requests is for
    one of them: the events would only exercise the status quo.
    """
    harness = Harness(target)
    events = workload_events(name, params, target, harness, max_events)
    if covered and not touches(events, covered):
        return None
    try:
        for event in events:
            if event.op in (FREE, WRITE) and event.id not in harness.runner.live:
                continue  # its allocation got NULL: the caller neither writes nor frees it
            harness.apply(event)
        harness.finish()
    except KitFailure as exc:
        return _shrunk(target, Finding(exc.rule, exc.detail, exc.events), name)
    except StepTimeout as exc:
        return Finding(TIMEOUT, str(exc), exc.events)
    return None


def _shrunk(target: Target, finding: Finding, name: str) -> Finding:
    best = minimise(target, finding, budget=REPLAY_BUDGET)
    return attrs.evolve(best, detail=f"{best.detail} (driving workload {name}, seed {SEED}; "
                        f"{len(finding.events)} events, {len(best.events)} after shrinking)")


def drive_all(target: Target, covered: Sequence[str], max_events: int,
              workloads: Sequence[tuple[str, tuple[tuple[str, str], ...]]] = KIT_WORKLOADS
              ) -> Iterator[Finding]:
    """Every rule the workloads break, each once: a rule found is declared known and the
    same workload runs again for the next. A plugin error or a hang stops the phase."""
    known = set(target.known)
    for name, params in workloads:
        while True:
            finding = drive(attrs.evolve(target, known=frozenset(known)), name, dict(params),
                            covered, max_events)
            if finding is None:
                break
            yield finding
            if finding.rule in (PLUGIN_ERROR, TIMEOUT):
                return
            known.add(finding.rule)
