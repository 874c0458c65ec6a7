"""The conformance checks, as plain functions: the pytest kit and ``check-plugin`` run these.

Each check boots its own small kernel model, builds the design with the suite's factory and
returns :class:`CheckResult` values. Every check carries the contract version that
introduced it (:data:`CONTRACT_VERSION` is the newest); a suite that opts in to version N
runs only the checks with ``since <= N``, so a new check never turns a third party's CI red
before it opts in.

Deterministic contract checks (the Allocator ABC, docs/contracts.md):

- ``construct``: the factory returns an :class:`~framework.allocator.Allocator`.
- ``attributes``: ``name`` (a CLI token), ``summary``, ``source`` are non-empty strings;
  ``covers`` (class and instance) is a set of strings; ``params`` a tuple of uniquely named
  :class:`~framework.params.Param` whose defaults pass their own checks.
- ``alloc_returns``: ``alloc`` returns an :class:`~framework.request.Allocation` (blocks of
  ``(pfn, order)`` ints inside RAM, ``0 <= order < MAX_ORDER``; ``vaddr`` set when there are
  no blocks; ``size`` at least the request's) or None, and does not raise.
- ``free_accepts``: ``write``, then ``free`` / ``free_generic`` (as the request's
  ``freed_by`` says) accept what ``alloc`` returned, without raising or ``bad_free``.
- ``stats_json``: ``stats()`` is a dict that ``json.dumps`` accepts.
- ``cache_and_metadata``: ``cache_pages()`` and ``metadata_bytes()`` are ints >= 0 at boot,
  with allocations live, and after they are freed.
- ``accounting``: after freeing everything and shrinking, ``kernel.nr_allocated`` equals the
  page-table pages plus ``cache_pages()``, and the buddy's free + allocated + reserved pages
  add up to RAM.
- ``shrinker``: a registered shrinker gives back pages and ``cache_pages()`` drops by what it
  returned; a ``shrink()`` that frees pages with no shrinker registered is never called by
  the engine (only ``kernel.register_shrinker`` is), which is a failure.
- ``unmapped_promise``: for every covered site whose requests ask for ``UNMAPPED`` memory
  (from the design's own ``covers``), and the sites the suite adds (``unmapped_sites``), the
  allocation says ``unmapped=True`` and is not present in the direct map.
- ``zeroing``: alloc / write / free rounds at each covered site whose requests can ask for
  zeroed memory, then a request with ``zero``: no ``not_zeroed``.

Then random sequences (:mod:`framework.testing.stateful`): one result per docs/checks.md
rule, plus ``plugin_error`` (the design raised, or returned garbage) and ``timeout``. With
``Effort.long_examples`` a last round of long sequences, and with
``Effort.workload_events`` the built-in workloads, short and seeded, with every check after
every event (:mod:`framework.testing.drive`): bugs that need many events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from framework.allocator import Allocator
from framework.kernel.consts import MAX_ORDER
from framework.kernel.kernel import Kernel
from framework.params import Param
from framework.request import Allocation, Event, Request
from framework.testing.harness import KINDS, Harness, KitFailure, StepTimeout, Target
from framework.testing.sites import (
    NEIGHBOUR_SITES,
    SITE_PROFILES,
    SiteProfile,
    mixed_sites,
    profile_for,
)
from framework.testing.stateful import TRACE_HEADER, Effort, Finding, search_all, trace_rows
from framework.watchdog import watchdog

#: The newest contract version. Version 1: every check listed in this module's docstring.
CONTRACT_VERSION = 1

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*")


@attrs.frozen(slots=True)
class KitConfig:
    """Everything a check needs: the target and the suite's capability answers.

    :param target: factory, machine, costs, faults, known-bad rules, watchdog.
    :param sites: the sites the design serves, or None for the instance's ``covers``.
    :param profiles: request profiles by site (:data:`SITE_PROFILES` by default).
    :param unmapped_sites: sites whose allocations the design promises to unmap.
    :param has_shrinker: whether it registers a shrinker; None: look at the kernel.
    :param effort: the hypothesis effort of the random sequences.
    :param neighbours: uncovered sites mixed into the random sequences.
    """

    target: Target
    sites: tuple[str, ...] | None = None
    profiles: Mapping[str, SiteProfile] = attrs.field(factory=lambda: dict(SITE_PROFILES))
    unmapped_sites: frozenset[str] = frozenset()
    has_shrinker: bool | None = None
    effort: Effort = attrs.field(factory=Effort)
    neighbours: tuple[str, ...] = NEIGHBOUR_SITES


@attrs.frozen(slots=True)
class CheckResult:
    """One line of the verdict.

    :param name: the check (or, for random sequences, the rule).
    :param status: ``PASS``, ``FAIL`` or ``SKIP``.
    :param detail: why it failed or was skipped (one line).
    :param events: the smallest failing event sequence, for random-sequence failures.
    :param rule: the docs/checks.md rule a failure broke, when there is one.
    :param since: the contract version that introduced the check.
    """

    name: str
    status: str
    detail: str = ""
    events: tuple[Event, ...] = ()
    rule: str = ""
    since: int = 1


class CheckFailed(Exception):
    """Raised inside a check: the check fails with this message (and maybe a rule)."""

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class CheckSkipped(Exception):
    """Raised inside a check: the check does not apply to this design."""


@attrs.frozen(slots=True)
class Check:
    """A named check, the contract version that introduced it, and the checks it builds on
    (when one of those fails, ``run_all`` skips it rather than repeat the same failure)."""

    name: str
    since: int
    run: Callable[[KitConfig], None]
    needs: tuple[str, ...] = ()


# -- helpers ------------------------------------------------------------------------------
def boot(config: KitConfig) -> tuple[Kernel, Allocator]:
    """A fresh kernel model and the design on it; CheckFailed if the factory breaks."""
    t = config.target
    kernel = Kernel(t.spec, t.costs, t.faults)
    try:
        allocator = t.factory(kernel)
    except Exception as exc:
        raise CheckFailed(f"the factory raised {_exc(exc)}") from exc
    if not isinstance(allocator, Allocator):
        raise CheckFailed(f"the factory returned {type(allocator).__name__}, expected an "
                          "instance of framework.allocator.Allocator")
    return kernel, allocator


def covered(config: KitConfig, allocator: Allocator) -> list[str]:
    """The sites the design serves: the suite's answer, else the instance's ``covers``."""
    if config.sites is not None:
        return list(config.sites)
    return sorted(allocator.covers)


def samples(config: KitConfig, allocator: Allocator) -> list[Request]:
    """The fixed requests of the deterministic checks: a few per covered site."""
    return [r for site in covered(config, allocator)
            for r in profile_for(site, config.profiles).samples()]


def _exc(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call a design's method; its exception, or a call past the watchdog, fails the check."""
    def expired() -> None:
        raise StepTimeout(_WATCHDOG[0], ())

    try:
        with watchdog(_WATCHDOG[0], expired):
            return fn(*args)
    except StepTimeout as exc:
        raise CheckFailed(f"{what} did not return within {exc.seconds:g} s", "timeout") from None
    except Exception as exc:
        raise CheckFailed(f"{what} raised {_exc(exc)}") from exc


#: The watchdog budget of the check running now (set by :func:`run_check`).
_WATCHDOG: list[float] = [0.0]


def _alloc_all(allocator: Allocator, requests: Sequence[Request]
               ) -> list[tuple[Request, Allocation]]:
    out = []
    for req in requests:
        got = _call(f"alloc({_req(req)})", allocator.alloc, req)
        if got is not None and not isinstance(got, Allocation):
            raise CheckFailed(f"alloc({_req(req)}) returned {type(got).__name__}, expected "
                              "Allocation or None")
        if got is not None:
            out.append((req, got))
    return out


def _free(allocator: Allocator, req: Request, allocation: Allocation) -> None:
    if req.freed_by == "GENERIC":
        _call(f"free_generic() of {_req(req)}", allocator.free_generic, allocation)
    else:
        _call(f"free() of {_req(req)}", allocator.free, allocation)


def _req(req: Request) -> str:
    return f"{req.site} {req.size} B {req.perm}{' zero' if req.zero else ''}"


def _violations(kernel: Kernel, rule: str) -> list[str]:
    return [f"{hex(where)}: {detail}" for r, where, detail in kernel.violations if r == rule]


# -- the deterministic checks -------------------------------------------------------------
def check_construct(config: KitConfig) -> None:
    """The factory builds an Allocator on a fresh kernel."""
    boot(config)


def check_attributes(config: KitConfig) -> None:
    """name, summary, source, covers and params are set and typed."""
    _, allocator = boot(config)
    cls = type(allocator)
    problems = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        problems.append(f"name {name!r} is not a CLI token (letters, digits, - _ +)")
    for attr in ("summary", "source"):
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{attr} {value!r} is not a non-empty string")
    for where, covers in (("class", getattr(cls, "covers", None)),
                          ("instance", getattr(allocator, "covers", None))):
        if not isinstance(covers, (set, frozenset)) or not all(
                isinstance(s, str) for s in covers):
            problems.append(f"{where} covers {covers!r} is not a set of site names")
    problems.extend(_param_problems(getattr(cls, "params", None)))
    if problems:
        raise CheckFailed("; ".join(problems))


def _param_problems(params: Any) -> list[str]:
    if not isinstance(params, tuple) or not all(isinstance(p, Param) for p in params):
        return [f"params {params!r} is not a tuple of framework.params.Param"]
    names = [p.name for p in params]
    problems = [f"parameter {n!r} declared twice" for n in sorted(set(names))
                if names.count(n) > 1]
    for p in params:
        try:
            p.parse("params", p.default)
        except Exception as exc:
            problems.append(f"default of {p.name!r} fails its own check: {_exc(exc)}")
    return problems


def check_alloc_returns(config: KitConfig) -> None:
    """alloc returns a well-formed Allocation or None, and does not raise."""
    kernel, allocator = boot(config)
    layout = kernel.page_alloc.layout
    for req, got in _alloc_all(allocator, samples(config, allocator)):
        problem = _shape_problem(got, req, layout.ram)
        if problem:
            raise CheckFailed(f"alloc({_req(req)}) returned {got!r:.160}: {problem}")


def _shape_problem(a: Allocation, req: Request, ram: tuple[tuple[int, int], ...]) -> str:
    if not isinstance(a.blocks, tuple):
        return "blocks is not a tuple"
    for block in a.blocks:
        if not (isinstance(block, tuple) and len(block) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in block)):
            return f"block {block!r} is not a (pfn, order) pair of ints"
        pfn, order = block
        if not 0 <= order < MAX_ORDER:
            return f"order {order} outside 0..{MAX_ORDER - 1}"
        if not any(start <= pfn and pfn + (1 << order) <= end for start, end in ram):
            spans = ", ".join(f"{start:#x}..{end:#x}" for start, end in ram)
            return f"block {block!r} lies outside RAM ({spans})"
    if not isinstance(a.vaddr, int) or a.vaddr < 0:
        return f"vaddr {a.vaddr!r} is not a byte address"
    if not a.blocks and not a.vaddr:
        return "no blocks and no vaddr: the memory cannot be addressed"
    if not isinstance(a.size, int) or a.size < req.size:
        return f"size {a.size!r} is less than the {req.size} bytes asked for"
    if not isinstance(a.unmapped, bool):
        return f"unmapped {a.unmapped!r} is not a bool"
    return ""


def check_free_accepts(config: KitConfig) -> None:
    """write, then free / free_generic, accept what alloc returned: no raise, no bad_free."""
    kernel, allocator = boot(config)
    done = _alloc_all(allocator, samples(config, allocator))
    for req, got in done:
        _call(f"write() of {_req(req)}", allocator.write, got, 0)
    for req, got in done:
        _free(allocator, req, got)
    bad = _violations(kernel, "bad_free")
    if bad:
        raise CheckFailed(f"bad_free: {bad[0]}", "bad_free")


def _at_every_stage(config: KitConfig, probe: Callable[[Allocator, str], None]) -> None:
    """Run ``probe`` at boot, with sample allocations live, and after freeing them."""
    _, allocator = boot(config)
    probe(allocator, "at boot")
    done = _alloc_all(allocator, samples(config, allocator))
    probe(allocator, "with allocations live")
    for req, got in done:
        _free(allocator, req, got)
    probe(allocator, "after freeing")


def check_stats_json(config: KitConfig) -> None:
    """stats() is a dict json.dumps accepts, before and after some allocations."""
    _at_every_stage(config, _stats_ok)


def _stats_ok(allocator: Allocator, when: str) -> None:
    stats = _call("stats()", allocator.stats)
    if not isinstance(stats, dict):
        raise CheckFailed(f"stats() {when} returned {type(stats).__name__}, expected a dict")
    try:
        json.dumps(stats, default=_numpy_scalar, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckFailed(f"stats() {when} is not JSON-serialisable: {exc}") from exc


def _numpy_scalar(value: Any) -> Any:
    """The engine turns numpy scalars into Python numbers; accept them here too."""
    item = getattr(value, "item", None)
    if item is not None and type(value).__module__ == "numpy":
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def check_cache_and_metadata(config: KitConfig) -> None:
    """cache_pages() and metadata_bytes() are ints >= 0 at every stage."""
    _at_every_stage(config, _counts_ok)


def _counts_ok(allocator: Allocator, when: str) -> None:
    for method in ("cache_pages", "metadata_bytes"):
        value = _call(f"{method}()", getattr(allocator, method))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckFailed(f"{method}() {when} returned {value!r}, expected an int >= 0")


def check_accounting(config: KitConfig) -> None:
    """With everything freed and shrunk, the buddy's allocated pages are page tables + cache."""
    kernel, allocator = boot(config)
    for _round in range(2):  # twice: the second round reuses what the first left cached
        done = _alloc_all(allocator, samples(config, allocator))
        for req, got in done:
            _call(f"write() of {_req(req)}", allocator.write, got, 0)
        for req, got in done:
            _free(allocator, req, got)
    kernel.shrink(max(1, kernel.nr_allocated))
    cached = _call("cache_pages()", allocator.cache_pages)
    tables = len(kernel.pt_pfns)
    if kernel.nr_allocated != tables + cached:
        raise CheckFailed(
            f"after freeing everything and shrinking, {kernel.nr_allocated} pages are "
            f"allocated from the buddy but only {tables} page-table pages + {cached} "
            "cache_pages() are accounted for", "conservation")
    gap = kernel.check_conservation()
    if gap:
        raise CheckFailed(f"free + allocated + reserved pages differ from RAM by {gap}",
                          "conservation")


def check_shrinker(config: KitConfig) -> None:
    """A registered shrinker returns pages and cache_pages() drops by what it returned."""
    kernel, allocator = boot(config)
    registered = bool(kernel.shrinkers) if config.has_shrinker is None else config.has_shrinker
    for req, got in _alloc_all(allocator, samples(config, allocator)):
        _free(allocator, req, got)
    before = _call("cache_pages()", allocator.cache_pages)
    if not registered:
        _unregistered_shrink(allocator, before)
        raise CheckSkipped("no shrinker registered")
    if not kernel.shrinkers:
        raise CheckFailed("the suite says the design has a shrinker, but none was "
                          "registered with kernel.register_shrinker()")
    freed = _call("the shrinker", kernel.shrink, max(1, before))
    after = _call("cache_pages()", allocator.cache_pages)
    if isinstance(freed, bool) or not isinstance(freed, int) or freed < 0:
        raise CheckFailed(f"the shrinker returned {freed!r}, expected an int >= 0")
    if before - after != freed:
        raise CheckFailed(f"the shrinker said it freed {freed} pages but cache_pages() went "
                          f"from {before} to {after}", "conservation")
    if before and not freed:
        raise CheckFailed(f"nothing is live and {before} pages are cached, but the shrinker "
                          "freed none")


def _unregistered_shrink(allocator: Allocator, before: int) -> None:
    if type(allocator).shrink is Allocator.shrink or not before:
        return
    freed = _call("shrink()", allocator.shrink, before)
    if freed:
        raise CheckFailed(f"shrink() gave back {freed} pages, but no shrinker is registered: "
                          "pressure events call only kernel.register_shrinker() shrinkers, "
                          "so the engine never calls it")


def promised_unmapped(config: KitConfig, allocator: Allocator) -> list[str]:
    """The sites whose allocations must be unmapped: every covered site whose requests ask
    for ``UNMAPPED`` memory (the design's own ``covers`` with the site profiles), plus the
    suite's ``unmapped_sites`` (a design that also unmaps, say, module text)."""
    mine = set(covered(config, allocator))
    asked = {s for s in mine if "UNMAPPED" in profile_for(s, config.profiles).perms}
    return sorted(asked | (config.unmapped_sites & mine))


def check_unmapped_promise(config: KitConfig) -> None:
    """Each covered site asking for UNMAPPED memory (and each of the suite's unmapped_sites)
    gets unmapped=True, absent from the direct map, at every sample size."""
    kernel, allocator = boot(config)
    sites = promised_unmapped(config, allocator)
    if not sites:
        raise CheckSkipped("no covered site asks for UNMAPPED memory")
    for site in sites:
        prof = profile_for(site, config.profiles)
        # every sample size where requests ask for UNMAPPED; the usual request of a site
        # the suite adds (its other sizes may take another path: a 16 B kprobe slot)
        asked = "UNMAPPED" in prof.perms
        reqs = [attrs.evolve(r, perm="UNMAPPED")
                for r in (prof.samples() if asked else [prof.typical()])]
        for req, got in _alloc_all(allocator, reqs):
            if not got.unmapped:
                raise CheckFailed(f"alloc({_req(req)}) returned unmapped=False: the design "
                                  f"covers {site}, whose requests ask for UNMAPPED memory",
                                  "unmapped_present")
            present = [p for p in got.pfns() if kernel.directmap.is_present(p)]
            if present:
                raise CheckFailed(f"alloc({_req(req)}): pfn {present[0]:#x} is present in "
                                  "the direct map", "unmapped_present")


def check_zeroing(config: KitConfig) -> None:
    """Written memory freed and asked for again with zero=True reads as zero."""
    _, allocator = boot(config)
    sites = [s for s in covered(config, allocator) if True in profile_for(s, config.profiles).zero]
    if not sites:
        raise CheckSkipped("no covered site asks for zeroed memory")
    target = attrs.evolve(config.target, known=frozenset(KINDS) - {"not_zeroed"})
    h = Harness(target)
    try:
        for site in sites:
            req = attrs.evolve(profile_for(site, config.profiles).typical(), zero=True)
            for _round in range(3):
                aid = h.alloc(req)
                if aid is not None:
                    h.write(aid, 0)
                    h.free(aid)
            aid = h.alloc(req)
            if aid is not None:
                h.free(aid)
    except KitFailure as exc:
        raise CheckFailed(exc.detail, exc.rule) from exc


_ALLOC = ("alloc_returns",)
CHECKS: tuple[Check, ...] = (
    Check("construct", 1, check_construct),
    Check("attributes", 1, check_attributes),
    Check("alloc_returns", 1, check_alloc_returns),
    Check("free_accepts", 1, check_free_accepts, _ALLOC),
    Check("stats_json", 1, check_stats_json, _ALLOC),
    Check("cache_and_metadata", 1, check_cache_and_metadata, _ALLOC),
    Check("accounting", 1, check_accounting, _ALLOC),
    Check("shrinker", 1, check_shrinker, _ALLOC),
    Check("unmapped_promise", 1, check_unmapped_promise, _ALLOC),
    Check("zeroing", 1, check_zeroing, _ALLOC),
)
CHECK_BY_NAME: dict[str, Check] = {c.name: c for c in CHECKS}
#: The contract version that introduced the random-sequence checks.
RANDOM_SINCE = 1


def run_check(check: Check, config: KitConfig) -> CheckResult:
    """Run one deterministic check and say how it went."""
    _WATCHDOG[0] = config.target.step_seconds
    try:
        check.run(config)
    except StepTimeout as exc:  # a hang inside the engine path (the zeroing check)
        return CheckResult(check.name, FAIL, str(exc), rule="timeout", since=check.since)
    except CheckSkipped as exc:
        return CheckResult(check.name, SKIP, str(exc), since=check.since)
    except CheckFailed as exc:
        return CheckResult(check.name, FAIL, str(exc), rule=exc.rule, since=check.since)
    except Exception as exc:  # the design broke in a way no check anticipated
        return CheckResult(check.name, FAIL, _exc(exc), rule="plugin_error",
                           since=check.since)
    return CheckResult(check.name, PASS, since=check.since)


def random_sites(config: KitConfig) -> list[str]:
    """Covered sites, then the neighbours it does not cover (they go to the v6.3 path)."""
    _, allocator = boot(config)
    return mixed_sites(covered(config, allocator), config.neighbours)


def run_random(config: KitConfig, kinds: Sequence[str] = KINDS) -> list[CheckResult]:
    """Random sequences through the engine path: one result per rule in ``kinds``."""
    try:
        sites = random_sites(config)
    except CheckFailed as exc:
        return [CheckResult(k, SKIP, f"not reached: {exc}", since=RANDOM_SINCE) for k in kinds]
    found = search_all(config.target, sites, config.profiles, config.effort, kinds)
    if config.effort.workload_events and not _stopped(found):
        _add_workload_findings(config, sites, kinds, found)
    stopped = next((f for f in found.values() if f.rule in ("plugin_error", "timeout")), None)
    out = []
    for kind in kinds:
        finding = found.get(kind)
        if finding is not None:
            out.append(_failed(finding))
        elif stopped is not None:
            out.append(CheckResult(kind, SKIP, f"not reached: the design stopped with "
                                   f"{stopped.rule}", since=RANDOM_SINCE))
        else:
            out.append(CheckResult(kind, PASS, since=RANDOM_SINCE))
    return out


def _stopped(found: Mapping[str, Finding]) -> bool:
    return any(rule in found for rule in ("plugin_error", "timeout"))


def _add_workload_findings(config: KitConfig, sites: Sequence[str], kinds: Sequence[str],
                           found: dict[str, Finding]) -> None:
    """The workload phase (:mod:`framework.testing.drive`) for the rules the random
    sequences did not break."""
    from framework.testing.drive import drive_all

    known = set(config.target.known) | set(found) | (set(KINDS) - set(kinds))
    target = attrs.evolve(config.target, known=frozenset(known))
    _, allocator = boot(config)
    for finding in drive_all(target, covered(config, allocator), config.effort.workload_events):
        found.setdefault(finding.rule, finding)


def _failed(finding: Finding) -> CheckResult:
    return CheckResult(finding.rule, FAIL, finding.detail, finding.events, finding.rule,
                       RANDOM_SINCE)


def run_all(config: KitConfig, contract_version: int = CONTRACT_VERSION) -> list[CheckResult]:
    """Every check up to ``contract_version``; random sequences only if the design builds."""
    results: list[CheckResult] = []
    failed: set[str] = set()
    for check in CHECKS:
        if check.since > contract_version:
            continue
        blocked = [n for n in check.needs if n in failed]
        if blocked:
            results.append(CheckResult(check.name, SKIP, f"not reached: {blocked[0]} failed",
                                       since=check.since))
            continue
        results.append(run_check(check, config))
        if results[-1].status == FAIL:
            failed.add(check.name)
        if check.name == "construct" and results[-1].status == FAIL:
            return results
    if RANDOM_SINCE <= contract_version:
        results.extend(run_random(config))
    return results


def format_result(result: CheckResult, indent: str = "    ") -> list[str]:
    """The verdict line, then (for a random-sequence failure) the replayable sequence.

    The sequence is printed as trace CSV rows (docs/contracts.md): save it under the header
    and replay it with ``framework bench --workloads trace --set trace.path=FILE``.
    """
    line = f"{result.status} {result.name}"
    if result.detail:
        line += f": {result.detail}"
    lines = [line]
    if result.events:
        n = len(result.events)
        lines.append(f"{indent}smallest failing sequence ({n} event{'s' if n != 1 else ''}, "
                     f"as trace CSV):")
        lines.append(f"{indent}{TRACE_HEADER}")
        lines.extend(f"{indent}{row}" for row in trace_rows(result.events))
    return lines
