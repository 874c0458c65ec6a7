"""The event helpers workloads build their streams with: ``make_events`` and ``sampled``."""

from __future__ import annotations

import numpy as np

from framework.request import ALLOC, FREE, SAMPLE, WRITE, Event, Request, make_events
from framework.workload import sampled, start_next


def test_make_events_equals_one_event_per_id() -> None:
    """Three ids give the three Events a loop of ``Event(op, id, request, arg)`` gives, with
    the named-tuple fields in place (``id``, ``request``, ``arg``)."""
    req = Request("secretmem", 4096, "UNMAPPED")
    got = list(make_events(ALLOC, [7, 8, 9], req))
    assert got == [Event(ALLOC, 7, req), Event(ALLOC, 8, req), Event(ALLOC, 9, req)]
    assert all(type(ev) is Event for ev in got)
    assert [ev.id for ev in got] == [7, 8, 9] and got[0].request is req
    writes = list(make_events(WRITE, [7], None, 4096))
    assert writes == [Event(WRITE, 7, None, 4096)] and writes[0].arg == 4096


def test_sampled_inserts_a_sample_after_every_nth_event() -> None:
    """Five events with ``every=2``: a sample follows the 2nd and the 4th, none after the
    5th (it is not a multiple of 2), so the stream is 1 2 S 3 4 S 5."""
    events = [Event(FREE, i) for i in range(1, 6)]
    got = [ev.op if ev.op == SAMPLE else ev.id for ev in sampled(iter(events), 2)]
    assert got == [1, 2, SAMPLE, 3, 4, SAMPLE, 5]


def test_sampled_with_zero_is_the_stream_itself() -> None:
    """``every=0`` adds nothing and no wrapper: the same iterator comes back."""
    stream = iter([Event(FREE, 1)])
    assert sampled(stream, 0) is stream


def test_start_next_draws_the_coin_only_with_some_live() -> None:
    """All started, or ``concurrent`` live: no start, no draw. None live: start, no draw.
    Some live and room left: the coin decides, one draw (the generator moves on)."""
    rng = np.random.Generator(np.random.PCG64(1))
    state = rng.bit_generator.state
    assert not start_next(rng, 5, 5, 0, 3)
    assert not start_next(rng, 0, 5, 3, 3)
    assert start_next(rng, 0, 5, 0, 3)
    assert rng.bit_generator.state == state
    coin = np.random.Generator(np.random.PCG64(1)).random() < 0.5
    assert start_next(rng, 0, 5, 1, 3) == coin
    assert rng.bit_generator.state != state
