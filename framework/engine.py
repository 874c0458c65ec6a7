"""The engine: one plugin x workload x machine x seed -> one result.

The hot loop feeds each event to the design (a :class:`framework.statusquo.StatusQuo`
subclass: one call per event, whatever the site), measures the cycles each alloc and free
charged, and runs the checks.
No pluggy call, no wall clock, no global random state: the same cell gives the same result.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs
import numpy as np

from framework.allocator import Allocator
from framework.checks import Checker
from framework.config import Cell, CellConfig, SetsKey, freeze_sets, resolve_cell
from framework.errors import FrameworkError, InputError, PluginError
from framework.kernel.consts import PAGE_SHIFT
from framework.kernel.directmap import region_map
from framework.kernel.faults import Faults
from framework.kernel.kernel import Kernel
from framework.kernel.ledger import Ledger
from framework.legacy import adopt
from framework.machine.spec import MachineSpec
from framework.metrics import build_metrics, latency_by_site, snapshot
from framework.plugins import Registry
from framework.procview import proc_record
from framework.request import (
    ALLOC,
    FREE,
    PRESSURE,
    SAMPLE,
    WRITE,
    Allocation,
    Event,
    FreedBy,
    Perm,
    Request,
)
from framework.statusquo import SqHot, StatusQuo, sq_alloc, sq_free, sq_free_generic, sq_write
from framework.tlb.sampler import TextExtent, TlbSampler
from framework.workload import FreeAreaProbe, Workload, background_rng, with_background

__all__ = ["VERSION", "Cell", "Runner", "SetsKey", "Setup", "freeze_sets", "prepare",
           "run_cell"]  # Cell, SetsKey, freeze_sets: framework.config's, imported from here too

VERSION: Final = "0.1.0"

# Enum members the hot path compares with on every event, read once: the compiled core keeps
# a module's Final names in C statics, where ``Perm.UNMAPPED`` would be a lookup in this
# module's namespace and then through the Enum metaclass.
_UNMAPPED: Final = Perm.UNMAPPED
_GENERIC: Final = FreedBy.GENERIC
_ROX: Final = Perm.ROX
# The same for the ops and the Allocation class (framework.request is interpreted, so each
# use of its names would be a lookup in this module's namespace).
_ALLOC: Final = ALLOC
_FREE: Final = FREE
_WRITE: Final = WRITE
_ALLOCATION: Final = Allocation


@attrs.define(slots=True)
class Setup:
    """Everything resolved for one cell, before it runs."""

    cell: Cell
    params: dict[str, dict[str, Any]]
    kernel: Kernel
    allocator: Allocator
    events: Any
    workload: Workload | None = None
    config: CellConfig | None = None


def prepare(cell: Cell, reg: Registry) -> Setup:
    """Boot the kernel model on the cell's resolved parameters and attach the design.

    The parameters come from ``cell.config`` when the sweep resolved them, else from
    :func:`framework.config.resolve_cell` here.

    :raises UnknownName, BadParameter, InputError: for the user's bad input.
    """
    config = cell.config if cell.config is not None else resolve_cell(cell, reg)
    spec = config.machine
    kernel = Kernel(spec, dict(config.costs), Faults.from_params(dict(config.faults), cell.seed))
    work_cls = reg.workload(cell.workload)
    workload = work_cls(dict(config.workload), spec)
    try:
        allocator = adopt(reg.allocator(cell.plugin), kernel, dict(config.plugin))
    except Exception as exc:
        raise _plugin_failure(cell.plugin, "__init__", exc) from exc
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(cell.seed)))
    workload.probe = FreeAreaProbe(kernel)  # framework/workload.py: the read-only probe
    events = workload.events(rng)
    if config.background is not None:
        events = _on_background(cell, reg, spec, workload, events, config.background)
    return Setup(cell, config.params(), kernel, allocator, events, workload, config)


def _on_background(cell: Cell, reg: Registry, spec: MachineSpec, workload: Workload,
                   events: Iterator[Event], bg_p: Mapping[str, Any]) -> Iterator[Event]:
    """``--set NAME.background=X``: the workload's events on top of the ``background`` load.

    The load's parameters (``--set background.*`` with ``target`` = X) were resolved with
    the cell; they are recorded in the run's ``params`` under ``background``.
    """
    load = reg.workload("background")(dict(bg_p), spec)
    load.probe = workload.probe
    return with_background(events, load, background_rng(cell.seed))  # type: ignore[arg-type]


class SamplesBySite(dict[str, list[float]]):
    """Latency samples of one kind (``kind`` 0: alloc, 1: free) by request site.

    A site seen for the first time gets its ``(alloc, free)`` pair of lists in ``pairs``;
    this map then hands out the list of its kind. Python lists rather than ``array('d')``:
    the compiled core appends to a list natively, where ``array.append`` is a call through
    the Python API that parses its argument (about 550 instructions a sample; a float in a
    list takes 32 bytes instead of 8: docs/performance.md).
    """

    def __init__(self, pairs: dict[str, tuple[list[float], list[float]]], kind: int) -> None:
        super().__init__()
        self.pairs = pairs
        self.kind = kind

    def __missing__(self, site: str) -> list[float]:
        pair = self.pairs.get(site)
        if pair is None:
            pair = self.pairs[site] = ([], [])
        found = self[site] = pair[self.kind]
        return found


class Runner:
    """Runs one prepared cell's events through its design."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.kernel = setup.kernel
        self.allocator = setup.allocator
        # the design's entry points, looked up once per cell: a method lookup on a Python
        # class costs as much as a short compiled handler (docs/performance.md)
        self.design_alloc = setup.allocator.alloc
        self.design_free = setup.allocator.free
        self.design_free_generic = setup.allocator.free_generic
        self.design_write = setup.allocator.write
        # ... and the status quo's own entry points, where the design keeps them: called as
        # module functions, a native call in the compiled core (a bound method's call goes
        # through the Python API). None: the design's method above runs.
        self.own_alloc = _own_entry(setup.allocator, "alloc")
        self.own_free = _own_entry(setup.allocator, "free")
        self.own_free_generic = _own_entry(setup.allocator, "free_generic")
        self.own_write = _own_entry(setup.allocator, "write")
        self.checker = Checker(setup.kernel)
        self.ledger = setup.kernel.ledger
        self.pages = setup.kernel.page_alloc  # read and set on every alloc: no facade layer
        self.proc_start = proc_record(setup.kernel)
        spec = setup.kernel.spec
        self.cpus = spec.cpus
        self.cpu_node = [cpu * spec.nodes // spec.cpus for cpu in range(spec.cpus)]  # cpu_to_node
        self.live: dict[int, tuple[Allocation, Request]] = {}
        self.failed: set[int] = set()  # ids whose allocation got NULL
        self.latency: dict[str, tuple[list[float], list[float]]] = {}  # site: alloc, free
        self.alloc_samples = SamplesBySite(self.latency, 0)  # site: alloc samples, same lists
        self.free_samples = SamplesBySite(self.latency, 1)
        self.series: list[dict[str, Any]] = []
        self.alloc_failures = 0
        self.pressure_freed = 0
        self.live_bytes = 0
        self.peak_requested_bytes = 0
        self.peak_footprint_pages = 0
        self.unmapped_served_mapped_bytes = 0
        self.events = 0
        self.load_pages = 0  # pages live in background-load allocations (ids < 0)
        # The fields of the last request an alloc, and a free, read: workloads reuse one
        # Request for many events (a process's pages, a free batch), and each read of a
        # field of the interpreted attrs class is an attribute lookup, compiled too.
        self.alloc_req: Request | None = None
        self.alloc_cpu = self.alloc_size = 0
        self.alloc_node: int | None = None
        self.alloc_site = ""
        self.alloc_unmapped = False
        self.alloc_rox = False
        # the latency list of the request's site, from its first sample on (a background
        # load's request, whose events record none, adds no site to the latency table)
        self.alloc_list: list[float] | None = None
        self.free_list: list[float] | None = None
        self.free_req: Request | None = None
        self.free_cpu = self.free_size = 0
        self.free_site = ""
        self.free_generic = False
        self.free_rox = False
        #: live executable module-area allocations: their text extents, for the TLB sampler
        self.text_live: dict[int, TextExtent] = {}
        self.tlb_sampler = TlbSampler(self.kernel.directmap, self.text_live.values,
                                      setup.params.get("tlb", {}).get("samples", 8),
                                      self.own_events)

    def own_events(self) -> int:
        """The workload's allocs and frees so far (the TLB sampler's clock; no load's)."""
        return sum(len(a) + len(f) for a, f in self.latency.values())

    @property
    def totals(self) -> dict[str, int]:
        """The run's counters for :func:`framework.metrics.build_metrics`."""
        return {"alloc_failures": self.alloc_failures, "pressure_freed": self.pressure_freed,
                "peak_requested_bytes": self.peak_requested_bytes,
                "peak_footprint_pages": self.peak_footprint_pages,
                "unmapped_served_mapped_bytes": self.unmapped_served_mapped_bytes}

    def run(self) -> dict[str, Any]:
        """Feed every event, then check the final state; return the result record."""
        handlers = {ALLOC: self.on_alloc, FREE: self.on_free, WRITE: self.on_write,
                    PRESSURE: self.on_pressure, SAMPLE: self.on_sample}
        checker = self.checker
        kernel_violations = self.kernel.violations
        index = -1
        event = None
        sampler = self.tlb_sampler
        next_sample = sampler.next  # framework/tlb/sampler.py: the mapping every N events
        # No cyclic garbage collection while events run (docs/performance.md, "Per-cpu
        # lookups, the collector and direct status-quo calls"): the events, allocations and
        # tuples each event makes would start a collection every 700 of them, and the
        # events make no reference cycles to reclaim.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for index, event in enumerate(self.setup.events):
                checker.event = index
                if not isinstance(event, tuple):  # (the compiled handlers take tuples)
                    raise InputError(f"event {index}: {event!r} is not an Event: expected a "
                                     "tuple (op, id, request, arg)")
                op = event[0]  # event.op, a tuple's item read
                # the three ops of nearly every event called directly (a compiled call, not
                # one through a bound method), the rest through the table
                if op is _ALLOC:
                    self.on_alloc(event)
                elif op is _FREE:
                    self.on_free(event)
                elif op is _WRITE:
                    self.on_write(event)
                else:
                    handlers[op](event)
                if kernel_violations:
                    checker.drain_kernel()
                if index >= next_sample:
                    next_sample = sampler.sample(index)
        except KeyError:
            if event is not None and event[0] not in handlers:
                raise InputError(f"event {index}: unknown op {event[0]!r}: "
                                 f"expected one of {', '.join(handlers)}") from None
            raise
        finally:
            if gc_was_enabled:
                gc.enable()
        self.events = index + 1
        return self.finish()

    # -- handlers ------------------------------------------------------------------------
    def on_alloc(self, event: tuple[Any, ...]) -> None:
        # ``event`` is an Event (run() checked that it is a tuple). The id as the workload's
        # own int object, the key live[] keeps: a workload frees with the same objects it
        # allocated with, so the free's dict lookup matches by identity, and the compiled
        # core boxes no new int for it (docs/performance.md).
        eid: Any = event[1]
        req: Request = event[2]  # an alloc event always carries its request (Event's contract)
        if eid in self.live:
            raise InputError(f"event {self.checker.event}: id {eid} allocated while live")
        if req is not self.alloc_req:
            self._read_alloc_request(req)
        pages = self.pages
        ledger = self.ledger
        before, daemon = ledger.total_cycles, ledger.daemon_cycles
        cpu = pages.current_cpu = self.alloc_cpu  # the CPU the caller runs on
        node = self.alloc_node
        pages.current_node = node if node is not None else self.cpu_node[cpu]
        own = self.own_alloc
        try:
            alloc = sq_alloc(own, req) if own is not None else self.design_alloc(req)
        except Exception as exc:
            raise _plugin_failure(self.setup.cell.plugin, "alloc", exc) from exc
        if eid < 0:  # ids < 0: the background load's, kept out of the workload's metrics
            self._load_alloc(eid, alloc, req)
            return
        samples = self.alloc_list
        if samples is None:  # the request's site's list, looked up at its first sample
            samples = self.alloc_list = self.alloc_samples[self.alloc_site]
        samples.append(_latency(ledger, before, daemon))
        if alloc is None:  # the kernel's NULL: the caller neither writes nor frees it
            self.alloc_failures += 1
            self.failed.add(eid)
            return
        if type(alloc) is not _ALLOCATION:
            self._check_type(alloc)
        self.live[eid] = (alloc, req)
        size = self.alloc_size
        if self.alloc_rox and alloc.vaddr:
            self.text_live[eid] = self._text_extent(alloc.vaddr, size)
        live_bytes = self.live_bytes = self.live_bytes + size
        if self.alloc_unmapped and not alloc.unmapped:
            self.unmapped_served_mapped_bytes += size
        self.checker.on_alloc(eid, alloc, req)
        if live_bytes > self.peak_requested_bytes:  # peaks, inline
            self.peak_requested_bytes = live_bytes
        used = pages.nr_allocated - len(pages.pt_pfns) - self.load_pages
        if used > self.peak_footprint_pages:
            self.peak_footprint_pages = used

    def _read_alloc_request(self, req: Request) -> None:
        """The fields of ``req`` on_alloc() uses (see ``alloc_req`` in __init__)."""
        self.alloc_req = req
        self.alloc_list = None
        self.alloc_cpu = req.cpu % self.cpus
        self.alloc_node = req.node
        self.alloc_site = req.site
        self.alloc_size = req.size
        self.alloc_unmapped = req.perm is _UNMAPPED
        self.alloc_rox = req.perm is _ROX

    def _read_free_request(self, req: Request) -> None:
        """The fields of ``req`` on_free() uses (see ``alloc_req`` in __init__)."""
        self.free_req = req
        self.free_list = None
        self.free_cpu = req.cpu % self.cpus
        self.free_site = req.site
        self.free_size = req.size
        self.free_generic = req.freed_by is _GENERIC
        self.free_rox = req.perm is _ROX

    def _text_extent(self, vaddr: int, size: int) -> TextExtent:
        """The TLB sampler's record of an executable allocation at ``vaddr``: first and last
        module-area page, whether its area is mapped with 2 MiB pages, size. Worked out once,
        when it is made: its pages and its area do not change while it lives."""
        first = vaddr >> PAGE_SHIFT
        last = (vaddr + max(size, 1) - 1) >> PAGE_SHIFT
        area = self.kernel.find_area(first)
        return first, last, area is not None and area.page_order > 0, size

    def _check_type(self, alloc: object) -> None:
        if not isinstance(alloc, Allocation):
            raise PluginError(f"plugin {self.setup.cell.plugin}: alloc returned "
                              f"{type(alloc).__name__}, expected Allocation or None")

    def _load_alloc(self, eid: int, alloc: Allocation | None, req: Request) -> None:
        """framework/workload.py with_background(): an allocation of the background load."""
        if alloc is None:
            self.alloc_failures += 1
            self.failed.add(eid)
            return
        self._check_type(alloc)
        self.live[eid] = (alloc, req)
        if self.alloc_rox and alloc.vaddr:  # on_alloc() read the request's fields
            self.text_live[eid] = self._text_extent(alloc.vaddr, self.alloc_size)
        self.load_pages += alloc.nr_pages()
        self.checker.on_alloc(eid, alloc, req)

    def on_free(self, event: tuple[Any, ...]) -> None:
        eid: Any = event[1]  # event.id, the object on_alloc() keyed live[] by (see there)
        live = self.live
        entry = live.get(eid)  # get and del: the compiled core's own dict operations
        if entry is not None:
            del live[eid]
        else:
            if eid in self.failed:
                self.failed.discard(eid)
                return
            raise InputError(f"event {self.checker.event}: free of id {eid}, "
                             "which is not live")
        alloc, req = entry
        if req is not self.free_req:
            self._read_free_request(req)
        if self.free_rox:
            self.text_live.pop(eid, None)
        self.checker.on_free(alloc)
        self.pages.current_cpu = self.free_cpu  # freed on the CPU that allocated it
        ledger = self.ledger
        before, daemon = ledger.total_cycles, ledger.daemon_cycles
        try:
            if self.free_generic:
                own = self.own_free_generic
                if own is not None:
                    sq_free_generic(own, alloc)
                else:
                    self.design_free_generic(alloc)
            elif (own := self.own_free) is not None:
                sq_free(own, alloc)
            else:
                self.design_free(alloc)
        except Exception as exc:
            raise _plugin_failure(self.setup.cell.plugin, "free", exc) from exc
        if eid < 0:  # the background load's
            self.load_pages -= alloc.nr_pages()
            return
        samples = self.free_list
        if samples is None:  # as in on_alloc()
            samples = self.free_list = self.free_samples[self.free_site]
        samples.append(_latency(ledger, before, daemon))
        self.live_bytes -= self.free_size

    def on_write(self, event: tuple[Any, ...]) -> None:
        eid: Any = event[1]  # the object live[] is keyed by (see on_alloc())
        arg: int = event[3]
        entry = self.live.get(eid)
        if entry is None:
            if eid in self.failed:
                return
            raise InputError(f"event {self.checker.event}: write to id {eid}, "
                             "which is not live")
        own = self.own_write
        try:
            if own is not None:
                sq_write(own, entry[0], arg)
            else:
                self.design_write(entry[0], arg)
        except Exception as exc:
            raise _plugin_failure(self.setup.cell.plugin, "write", exc) from exc

    def on_pressure(self, event: Any) -> None:
        try:
            self.pressure_freed += self.kernel.shrink(event.arg)
        except Exception as exc:
            raise _plugin_failure(self.setup.cell.plugin, "shrink", exc) from exc

    def on_sample(self, event: Any) -> None:
        try:
            held = self.held_pages()
        except Exception as exc:
            raise _plugin_failure(self.setup.cell.plugin, "cache_pages", exc) from exc
        self.checker.check_state(held)
        self.series.append({"event": self.checker.event, **snapshot(self.kernel)})

    def held_pages(self) -> int:
        """Pages the design holds outside live allocations (status-quo packs included)."""
        return self.allocator.cache_pages()

    # -- the end -------------------------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Final checks and the result record (docs/contracts.md, "Metrics and JSON results")."""
        cell = self.setup.cell
        try:  # cache_pages(), metadata_bytes(), stats(): the design's code too
            self.checker.drain_kernel()
            self.checker.check_state(self.held_pages())
            metrics = build_metrics(self)
            stats = _jsonable(self.allocator.stats())
        except FrameworkError:
            raise
        except Exception as exc:
            raise _plugin_failure(cell.plugin, "finish (stats, cache_pages)", exc) from exc
        return {
            "plugin": cell.plugin, "workload": cell.workload, "machine": cell.machine,
            "seed": cell.seed, "params": self.setup.params, "metrics": metrics,
            "violations": [v.to_json() for v in self.checker.kept],
            "violation_counts": {k: v for k, v in self.checker.counts.items() if v},
            "stats": stats,
            "workload_stats": _jsonable(self.setup.workload.stats() if self.setup.workload
                                        else {}),
            "latency_by_site": latency_by_site(self.latency),
            "series": self.series, "framework_version": VERSION,
            "directmap_map": region_map(self.kernel.directmap),
            "proc": proc_record(self.kernel),  # /proc/buddyinfo and pagetypeinfo at the end
            "proc_start": self.proc_start,  # the same at the start (fresh, aged or snapshot)
        }


def _plugin_failure(plugin: str, what: str, exc: Exception) -> PluginError:
    if isinstance(exc, FrameworkError):
        return exc  # type: ignore[return-value]
    return PluginError(f"plugin {plugin} raised in {what}: {type(exc).__name__}: {exc}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def _own_entry(allocator: Allocator, name: str) -> SqHot | None:
    """The status quo's state of ``allocator`` (:class:`framework.statusquo.SqHot`) if its
    entry point ``name`` is the status quo's own (its class does not override it and the
    instance does not set it), else None."""
    if (isinstance(allocator, StatusQuo) and name not in vars(allocator)
            and getattr(type(allocator), name) is getattr(StatusQuo, name)):
        return allocator._hot
    return None


def _latency(ledger: Ledger, before: float, daemon: float) -> float:
    """The cycles a call took since ``before`` (``total_cycles``), less what the kernel
    threads it woke spent meanwhile (``daemon_cycles`` was ``daemon``): kswapd and kcompactd
    run on their own CPUs, the caller does not wait for them (mm/vmscan.c kswapd())."""
    return ledger.total_cycles - before - (ledger.daemon_cycles - daemon)


def run_cell(cell: Cell, reg: Registry) -> dict[str, Any]:
    """Prepare and run one cell. The result is a plain JSON-ready dict."""
    runner = Runner(prepare(cell, reg))
    try:
        return runner.run()
    finally:
        runner.kernel.release()  # free the machine now, not at the next full collection
