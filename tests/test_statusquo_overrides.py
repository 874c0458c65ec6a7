"""A design's overrides of the status quo's methods are called.

``StatusQuo`` calls its own ``secretmem_fault``, ``secretmem_free_folio`` and
``_free_blocks`` directly when the design's class does not define them (a call through
``self`` costs a Python-API call in the compiled core: docs/performance.md); a class that
defines them must still get every call. Setting as in tests/test_kernel_scenarios.py: one
secretmem page on a fresh 4 GiB machine is pfn 16384, the first free page.
"""

from __future__ import annotations

import pytest

from framework.config import Cell, freeze_sets
from framework.engine import Runner, Setup
from framework.errors import InputError
from framework.kernel.kernel import Kernel
from framework.request import ALLOC, FREE, WRITE, Allocation, Event, Request
from framework.statusquo import StatusQuo

SECRET = Request("secretmem", 4096, "UNMAPPED", True, None, "GENERIC")
FIRST = 16384  # first free pfn after the 64 MiB reservation


class Recording(StatusQuo):
    """The status quo with each secretmem hook recorded, then run as before."""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        self.calls: list[tuple[str, object]] = []

    def secretmem_fault(self, node: int | None) -> int:
        self.calls.append(("fault", node))
        return super().secretmem_fault(node)

    def secretmem_free_folio(self, pfn: int) -> None:
        self.calls.append(("free_folio", pfn))
        super().secretmem_free_folio(pfn)

    def _free_blocks(self, allocation: Allocation) -> None:
        self.calls.append(("free_blocks", allocation.blocks))
        super()._free_blocks(allocation)


def test_overridden_hooks_are_called(kernel: Kernel) -> None:
    """One page faulted in and freed by the generic path: the fault (node None, as the
    request says), then free_folio of pfn 16384 and _free_blocks of its one block, in that
    order (free_generic(): free_folio first); the pages are all back (conservation)."""
    sq = Recording(kernel)
    alloc = sq.alloc(SECRET)
    assert alloc is not None and alloc.blocks == ((FIRST, 0),)
    sq.free_generic(alloc)
    assert sq.calls == [("fault", None), ("free_folio", FIRST),
                        ("free_blocks", ((FIRST, 0),))]
    assert kernel.check_conservation() == 0


def test_free_of_plain_blocks_calls_the_override(kernel: Kernel) -> None:
    """An owner's free of a page-allocator allocation (``user`` site: alloc_pages of
    order 0, no secretmem hook) goes through the design's _free_blocks."""
    sq = Recording(kernel)
    alloc = sq.alloc(Request("user", 4096))
    assert alloc is not None and alloc.blocks[0][1] == 0
    sq.free(alloc)
    assert sq.calls == [("free_blocks", alloc.blocks)]
    assert kernel.check_conservation() == 0


def test_not_overridden_hooks_run_the_status_quo(kernel: Kernel) -> None:
    """The decision is made from the class: StatusQuo itself runs its own bodies, a class
    that defines a hook does not."""
    plain, recording = StatusQuo(kernel)._hot, Recording(kernel)._hot
    assert (plain.own_fault, plain.own_free_folio, plain.own_free_blocks) == (True,) * 3
    assert (recording.own_fault, recording.own_free_folio,
            recording.own_free_blocks) == (False,) * 3


class OwnAlloc(StatusQuo):
    """The status quo with secretmem_alloc defined in the class (recorded, then as before)."""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        self.sizes: list[int] = []

    def secretmem_alloc(self, request: Request) -> Allocation | None:
        self.sizes.append(request.size)
        return super().secretmem_alloc(request)


def test_overridden_secretmem_alloc_is_called(kernel: Kernel) -> None:
    """alloc() of a secretmem request reaches the class's secretmem_alloc (size 4096),
    which hands out the first free page as the status quo does."""
    sq = OwnAlloc(kernel)
    alloc = sq.alloc(SECRET)
    assert sq.sizes == [4096]
    assert alloc is not None and alloc.blocks == ((FIRST, 0),)


def test_a_replaced_site_entry_is_called(kernel: Kernel) -> None:
    """An entry of the site table replaced after __init__ (as framework/legacy.py does for
    old-style designs) serves the site instead of the status quo's own secretmem_alloc."""
    sq = StatusQuo(kernel)
    seen: list[Request] = []

    def serve(request: Request) -> Allocation | None:
        seen.append(request)
        return None

    sq._by_site[SECRET.site] = serve
    assert sq.alloc(SECRET) is None
    assert seen == [SECRET]
    assert kernel.nr_allocated == 0


class Counting(StatusQuo):
    """The status quo with its write and generic free overridden (and counted)."""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(kernel)
        self.seen: list[str] = []

    def write(self, allocation: Allocation, length: int) -> None:
        self.seen.append("write")
        super().write(allocation, length)

    def free_generic(self, allocation: Allocation) -> None:
        self.seen.append("free_generic")
        super().free_generic(allocation)


def _runner(kernel: Kernel, design: StatusQuo) -> Runner:
    setup = Setup(Cell("test", "secretmem", "default", 1, freeze_sets({})), {}, kernel,
                  design, iter(()))
    return Runner(setup)


def test_engine_calls_the_status_quo_body_only_where_not_overridden(kernel: Kernel) -> None:
    """The runner calls the status quo's own alloc and free directly (the design's class
    keeps them), the design's write and free_generic (its class overrides them), and an
    entry point set on the instance: one secretmem page allocated, written and freed by
    the generic path gives write, then free_generic, then the instance's alloc once more."""
    design = Counting(kernel)
    runner = _runner(kernel, design)
    assert runner.own_alloc is design._hot and runner.own_free is design._hot
    assert runner.own_write is None and runner.own_free_generic is None
    runner.on_alloc(Event(ALLOC, 1, SECRET))
    runner.on_write(Event(WRITE, 1))
    runner.on_free(Event(FREE, 1))
    assert design.seen == ["write", "free_generic"]
    assert kernel.check_conservation() == 0

    design.alloc = lambda request: (design.seen.append("alloc"),  # type: ignore[method-assign]
                                    StatusQuo.alloc(design, request))[1]
    runner = _runner(kernel, design)
    assert runner.own_alloc is None
    runner.on_alloc(Event(ALLOC, 2, SECRET))
    assert design.seen == ["write", "free_generic", "alloc"] and 2 in runner.live


def test_an_event_that_is_not_a_tuple_is_an_input_error(kernel: Kernel) -> None:
    """An event must be an Event (a tuple): a list with the same fields stops the run with
    InputError naming the event's index, in either core (the compiled handlers take
    tuples; the check makes the pure twin say the same)."""
    runner = _runner(kernel, StatusQuo(kernel))
    runner.setup.events = iter([Event(ALLOC, 1, SECRET), ["free", 1, None, 0]])
    with pytest.raises(InputError, match=r"^event 1: \['free', 1, None, 0\] is not an Event"):
        runner.run()
