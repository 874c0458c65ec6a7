"""``framework review``: the thread's questions answered with numbers, as a markdown reply.

Each question runs a fixed scenario (designs, workloads, parameters: the ``framework bench``
command printed under its table reproduces it), and its one-sentence answer is computed from
the results, never written by hand: change the model and the sentence changes with it.
``docs/thread-answers.md`` is this module's output; a test regenerates it and compares.
Scenarios share runs where they ask the same command, and the whole document takes well
under a minute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from framework.engine import VERSION
from framework.summary import fmt_count, fmt_pages, fmt_pct
from framework.sweep import make_cells, run_cells
from framework.workloads.moddata import load_source, select_profile

UNMAPPED_SITES = frozenset({"secretmem", "guest", "dma_nokmap"})
TEXT_SITES = frozenset({"bpf_prog", "trampoline", "module_text", "module_init_text"})
MEM = ("machine.mem_gib", "16")  # every scenario's machine: 16 GiB keeps the review fast
Run = dict[str, Any]


@attrs.frozen(slots=True)
class Arm:
    """One ``framework bench`` command: designs, workloads and ``--set`` values."""

    label: str
    plugins: tuple[str, ...]
    workloads: tuple[str, ...]
    sets: tuple[tuple[str, str], ...] = ()

    def command(self, metrics: Sequence[str]) -> str:
        """The command line that reproduces this arm's rows."""
        sets = " ".join(f"--set {k}={v}" for k, v in (MEM, *self.sets))
        return (f"framework bench --plugins {','.join(self.plugins)} --workloads "
                f"{','.join(self.workloads)} {sets} --full --metrics {','.join(metrics)}")


@attrs.frozen(slots=True)
class Column:
    """A table column: header and how to read it from a run."""

    header: str
    metric: str
    fmt: Callable[[float], str] = fmt_count


def _run_arm(arm: Arm, cache: dict[Arm, list[Run]]) -> list[Run]:
    key = attrs.evolve(arm, label="")
    if key not in cache:
        sets: dict[str, dict[str, str]] = {}
        for k, v in (MEM, *arm.sets):
            scope, name = k.split(".", 1)
            sets.setdefault(scope, {})[name] = v
        cells = make_cells(arm.plugins, arm.workloads, "default", 1, 1, sets)
        outcomes = run_cells(cells)
        errors = [o.error for o in outcomes if o.error]
        if errors:
            raise RuntimeError(f"review scenario {arm.label}: {errors[0]}")
        cache[key] = [o.result for o in outcomes if o.result is not None]
    return cache[key]


def _table(rows: Sequence[tuple[str, Run]], columns: Sequence[Column]) -> str:
    head = "| design | workload | " + " | ".join(c.header for c in columns) + " |"
    rule = "|---|---|" + "---:|" * len(columns)
    body = [f"| {label} | {run['workload']} | "
            + " | ".join(c.fmt(float(run["metrics"].get(c.metric, 0))) for c in columns) + " |"
            for label, run in rows]
    return "\n".join([head, rule, *body])


def _m(run: Run, metric: str) -> float:
    return float(run["metrics"].get(metric, 0))


def _find(runs: Sequence[Run], plugin: str, workload: str) -> Run:
    return next(r for r in runs if r["plugin"] == plugin and r["workload"] == workload)


@attrs.frozen(slots=True)
class Answer:
    """A question, its computed one-sentence answer, the table and the commands."""

    title: str
    answer: str
    table: str
    commands: tuple[str, ...]
    note: str = ""

    def markdown(self, number: int) -> str:
        cmds = "\n".join(self.commands)
        parts = [f"## {number}. {self.title}", f"**Answer.** {self.answer}", self.table,
                 f"Reproduce:\n\n```sh\n{cmds}\n```"]
        if self.note:
            parts.append(self.note)
        return "\n\n".join(parts)


SPLITS = (Column("L2 splits", "direct_map_level2_splits"),
          Column("L3 splits", "direct_map_level3_splits"),
          Column("DirectMap4k", "DirectMap4k", lambda kb: fmt_pages(kb / 4)),
          Column("IPIs", "tlb_ipis"),
          Column("slowdown %", "est_slowdown_pct", fmt_pct),
          Column("violations", "violations"))


def _columns_metrics(columns: Sequence[Column]) -> list[str]:
    return list(dict.fromkeys(c.metric for c in columns))


#: Song Liu's bpf_prog_pack scenario (docs/validation.md): program churn amid the rest of the
#: kernel's unmovable traffic, with v6.3's packs and with v5.17's page per program.
PACK_ARMS = tuple(Arm(label, ("baseline",), ("bpf",),
                      (("bpf.turnover", "1"), ("baseline.bpf_prog_pack", pack)))
                  for label, pack in (("baseline, packs (v6.3)", "1"),
                                      ("baseline, bpf_prog_pack=0 (v5.17)", "0")))


def q_fragmentation(cache: dict[Arm, list[Run]]) -> Answer:
    arm = Arm("day", ("baseline", "gfp-unmapped", "unmapped-api", "migratetype", "jit-slab",
                      "vmap-area"), ("server-mix",))
    runs = _run_arm(arm, cache)
    base = _find(runs, "baseline", "server-mix")
    clean = [r for r in runs if _m(r, "violations") == 0]
    best = min(clean, key=lambda r: (_m(r, "direct_map_level2_splits")
                                     + 512 * _m(r, "direct_map_level3_splits")))
    packs, pages = (_run_arm(a, cache)[0] for a in PACK_ARMS)
    answer = (f"On a loaded, fragmented machine (server-mix's background load) the v6.3 "
              f"status quo splits 1 GiB mappings {_m(base, 'direct_map_level3_splits'):.0f} "
              f"times and 2 MiB mappings {_m(base, 'direct_map_level2_splits'):.0f} times over "
              f"the modelled server day, leaves "
              f"{fmt_pages(_m(base, 'DirectMap4k') / 4)} of the direct map in 4 KiB pages and "
              f"costs an estimated {fmt_pct(_m(base, 'est_slowdown_pct'))}% of kernel time; "
              f"the design without violations that splits least, {best['plugin']}, splits "
              f"them {_m(best, 'direct_map_level3_splits'):.0f} and "
              f"{_m(best, 'direct_map_level2_splits'):.0f} times. With BPF programs loaded "
              f"amid the rest of the kernel's traffic (bpf.turnover=1), v5.17's page per "
              f"program leaves {fmt_pages(_m(pages, 'DirectMap4k') / 4)} in 4 KiB pages and "
              f"costs {fmt_pct(_m(pages, 'est_slowdown_pct'))}%, v6.3's packs "
              f"{fmt_pct(_m(packs, 'est_slowdown_pct'))}%: the packs gain "
              f"{fmt_pct(_m(pages, 'est_slowdown_pct') - _m(packs, 'est_slowdown_pct'))}%, "
              f"where Song Liu measured +0.5 to +0.7% on Meta's hosts.")
    rows = [(r["plugin"], r) for r in runs]
    rows += [(a.label, run) for a, run in zip(PACK_ARMS, (packs, pages), strict=True)]
    metrics = _columns_metrics(SPLITS)
    return Answer("Is direct-map fragmentation a real problem?", answer,
                  _table(rows, SPLITS),
                  (arm.command(metrics), *(a.command(metrics) for a in PACK_ARMS)),
                  "The slowdown is the TLB model's estimate (docs/metrics.md, "
                  "docs/validation.md, where Song Liu's scenario is explained): read it as "
                  "a ranking.")


ZERO = (Column("violations", "violations"), Column("zeroed pages", "zeroed_pages"),
        Column("cycles", "cycles_total"), Column("alloc p50 cycles", "alloc_p50_cycles"))


def q_zeroing(cache: dict[Arm, list[Run]]) -> Answer:
    arms = [Arm(f"gfp-unmapped {v}", ("gfp-unmapped",), ("secretmem",),
                (("gfp-unmapped.variant", v),)) for v in ("posted", "fixed")]
    posted, fixed = (_run_arm(a, cache)[0] for a in arms)
    missed = posted.get("violation_counts", {}).get("not_zeroed", 0)
    zero_cycles = fixed["metrics"].get("cycles_by_category", {}).get("zeroing", 0)
    share = 100 * zero_cycles / max(1.0, _m(fixed, "cycles_total"))
    answer = (f"Yes: on the secretmem workload the checker catches the posted v3 code handing "
              f"a page one owner wrote to another unzeroed {missed} times (not_zeroed), and "
              f"the fixed variant, which zeroes before "
              f"a page returns to its cache, clears {_m(fixed, 'zeroed_pages'):.0f} pages for "
              f"{fmt_count(zero_cycles)} cycles, {share:.0f}% of its modelled cycles.")
    rows = [(a.label, r) for a, r in zip(arms, (posted, fixed), strict=True)]
    metrics = _columns_metrics(ZERO)
    return Answer('"The page has to be zeroed before it goes back on the list, right?"',
                  answer, _table(rows, ZERO), tuple(a.command(metrics) for a in arms),
                  "not_zeroed is the checker's rule 5 (docs/checks.md); the violations column "
                  "counts every broken rule (the posted code also leaves pages mapped).")


def q_sites(cache: dict[Arm, list[Run]]) -> Answer:
    runs = _run_arm(Arm("day", ("baseline", "gfp-unmapped", "unmapped-api", "migratetype",
                                "jit-slab", "vmap-area"), ("server-mix",)), cache)
    base = _find(runs, "baseline", "server-mix")
    sites = {s: int(v["allocs"]) for s, v in base["latency_by_site"].items()}
    total = sum(sites.values())
    ordered = sorted(sites.items(), key=lambda kv: -kv[1])
    unmapped = sum(n for s, n in sites.items() if s in UNMAPPED_SITES)
    text = sum(n for s, n in sites.items() if s in TEXT_SITES)
    answer = (f"Over the modelled server day these sites make {total} allocations: "
              f"{100 * unmapped / total:.0f}% want memory out of the direct map "
              f"({', '.join(s for s, _ in ordered if s in UNMAPPED_SITES)}), "
              f"{100 * text / total:.0f}% want ROX text "
              f"({', '.join(s for s, _ in ordered if s in TEXT_SITES)}), and the most "
              f"frequent single site is {ordered[0][0]} ({100 * ordered[0][1] / total:.0f}%).")
    table = "| site | allocations | share |\n|---|---:|---:|\n" + "\n".join(
        f"| {s} | {n} | {100 * n / total:.1f}% |" for s, n in ordered)
    cmd = ("framework bench --plugins baseline --workloads server-mix "
           f"--set {MEM[0]}={MEM[1]} --format json   # runs[0].latency_by_site")
    return Answer("Are the callers of unmapped_pages_alloc/free rare? (allocations per site "
                  "over a day)", answer, table, (cmd,),
                  "Nothing in an API-only allocator stops another caller; what the model "
                  "shows is how many calls each site makes. The background load's own "
                  "allocations (kernel, user, reclaimable) are not counted.")


TEXT = (Column("L2 splits", "direct_map_level2_splits"), Column("IPIs", "tlb_ipis"),
        Column("footprint", "footprint_bytes", lambda b: fmt_pages(b / 4096)),
        Column("cached", "cache_pages", fmt_pages),
        Column("alloc p99 cycles", "alloc_p99_cycles"), Column("violations", "violations"))


def q_jit(cache: dict[Arm, list[Run]]) -> Answer:
    arm = Arm("jit", ("baseline", "jit-slab", "vmap-area"), ("bpf", "trampolines"))
    runs = _run_arm(arm, cache)
    parts = []
    for w in arm.workloads:
        js, va = _find(runs, "jit-slab", w), _find(runs, "vmap-area", w)
        fewer = "vmap-area" if _m(va, "tlb_ipis") < _m(js, "tlb_ipis") else "jit-slab"
        parts.append(f"on {w} {fewer} sends fewer IPIs ({fmt_count(_m(va, 'tlb_ipis'))} for "
                     f"vmap-area, {fmt_count(_m(js, 'tlb_ipis'))} for jit-slab), with "
                     f"{fmt_count(_m(va, 'alloc_p99_cycles'))} vs "
                     f"{fmt_count(_m(js, 'alloc_p99_cycles'))} p99 alloc cycles and "
                     f"{fmt_count(_m(va, 'violations'))} vs {fmt_count(_m(js, 'violations'))} "
                     "violations")
    answer = "; ".join(parts)
    answer = answer[0].upper() + answer[1:] + "."
    return Answer("Kent's jit slab or Song's vmap_area for BPF and trampolines?", answer,
                  _table([(r["plugin"], r) for r in runs], TEXT),
                  (arm.command(_columns_metrics(TEXT)),))


def q_gfp_vs_api(cache: dict[Arm, list[Run]]) -> Answer:
    arm = Arm("gfp", ("gfp-unmapped", "unmapped-api"), ("secretmem", "modules"),
              (("gfp-unmapped.variant", "fixed"),))
    runs = _run_arm(arm, cache)
    gfp, api = (_find(runs, p, "secretmem") for p in arm.plugins)
    mods = _find(runs, "unmapped-api", "modules")
    base_like = _m(mods, "direct_map_level2_splits")
    answer = (f"On secretmem the flag (fixed v3) and the API split 2 MiB mappings "
              f"{_m(gfp, 'direct_map_level2_splits'):.0f} and "
              f"{_m(api, 'direct_map_level2_splits'):.0f} times and send "
              f"{fmt_count(_m(gfp, 'tlb_ipis'))} and {fmt_count(_m(api, 'tlb_ipis'))} IPIs; "
              f"the API serves no module site, so on modules it keeps the status quo's "
              f"{base_like:.0f} splits.")
    cols = (*SPLITS[:2], Column("IPIs", "tlb_ipis"), Column("cached", "cache_pages", fmt_pages),
            Column("violations", "violations"))
    return Answer("A GFP flag or an API-only allocator?", answer,
                  _table([(r["plugin"], r) for r in runs], cols),
                  (arm.command(_columns_metrics(cols)),))


def q_rox(cache: dict[Arm, list[Run]]) -> Answer:
    arm = Arm("rox", ("baseline", "gfp-unmapped", "vmap-area"), ("modules",),
              (("gfp-unmapped.variant", "fixed"), ("vmap-area.modules", "1")))
    runs = _run_arm(arm, cache)
    base, unmap, rox = (_find(runs, p, "modules") for p in arm.plugins)
    answer = (f"For module loads, caching text by permission (vmap-area's ROX 2 MiB chunks) "
              f"splits 2 MiB mappings {_m(rox, 'direct_map_level2_splits'):.0f} times and sends "
              f"{fmt_count(_m(rox, 'tlb_ipis'))} IPIs, against "
              f"{_m(unmap, 'direct_map_level2_splits'):.0f} and "
              f"{fmt_count(_m(unmap, 'tlb_ipis'))} for unmapping (fixed gfp-unmapped) and "
              f"{_m(base, 'direct_map_level2_splits'):.0f} and "
              f"{fmt_count(_m(base, 'tlb_ipis'))} for v6.3.")
    return Answer("Caching by permission (ROX) or unmapping?", answer,
                  _table([(r["plugin"], r) for r in runs], TEXT),
                  (arm.command(_columns_metrics(TEXT)),),
                  "vmap-area serves module text only with --set vmap-area.modules=1; its "
                  "other module sections take the v6.3 path.")


def q_caches(cache: dict[Arm, list[Run]]) -> Answer:
    arms = [Arm(f"unmapped-api shrinker={s}", ("unmapped-api",), ("secretmem",),
                (("secretmem.background", "0.1"), ("unmapped-api.shrinker", s)))
            for s in ("0", "1")]
    off, on = (_run_arm(a, cache)[0] for a in arms)
    answer = (f"On a loaded machine whose background asks the shrinkers for pages every 500 "
              f"events, the API allocator's cache strands {fmt_pages(_m(off, 'cache_pages'))} "
              f"at the end without a shrinker and {fmt_pages(_m(on, 'cache_pages'))} with "
              f"one, at the price of {_m(on, 'direct_map_level2_splits'):.0f} instead of "
              f"{_m(off, 'direct_map_level2_splits'):.0f} 2 MiB splits (the pages it gives "
              "back are refilled from elsewhere).")
    cols = (Column("cached", "cache_pages", fmt_pages),
            Column("footprint", "footprint_bytes", lambda b: fmt_pages(b / 4096)),
            *SPLITS[:2], Column("IPIs", "tlb_ipis"))
    rows = [(a.label, r) for a, r in zip(arms, (off, on), strict=True)]
    metrics = _columns_metrics(cols)
    return Answer("How much memory do the caches strand, and what does the shrinker return?",
                  answer, _table(rows, cols), tuple(a.command(metrics) for a in arms))


def q_module_sizes(cache: dict[Arm, list[Run]]) -> Answer:
    import numpy as np

    table = load_source("debian")
    loaded = select_profile(table, "server", 0, np.random.default_rng(0))
    rows = []
    for label, mods in (("all modules", table), ("server set", loaded)):
        text = sum(m.text for m in mods) / len(mods)
        whole = sum(m.text + m.rodata + m.ro_after_init + m.data for m in mods) / len(mods)
        rows.append((label, len(mods), text, whole))
    answer = (f"In the shipped Debian data set the average module has {rows[0][2] / 1024:.1f} "
              f"KiB of .text and {rows[0][3] / 1024:.1f} KiB in all core sections; the "
              f"{rows[1][1]} modules a typical server loads average {rows[1][2] / 1024:.1f} "
              f"and {rows[1][3] / 1024:.1f} KiB.")
    table_md = ("| modules | count | mean .text (KiB) | mean core (KiB) |\n|---|---:|---:|---:|\n"
            + "\n".join(f"| {label} | {n} | {t / 1024:.1f} | {w / 1024:.1f} |"
                        for label, n, t, w in rows))
    return Answer("What is the average size of a module?", answer, table_md,
                  ("framework bench --plugins baseline --workloads modules "
                   "--set modules.profile=all --format json   # or read "
                   "workloads/data/modules-debian.csv",),
                  "Core = text + rodata + ro_after_init + data (init sections are freed after "
                  "load); sizes per docs/module-data.md.")


NUMA_COLUMNS = (Column("remote pages", "remote_pages"), Column("numa_miss", "numa_miss"),
                Column("cached", "cache_pages", fmt_pages), *SPLITS[:2],
                Column("IPIs", "tlb_ipis"))


def _remote(run: Run) -> float:
    return float(run.get("stats", {}).get("remote_pages", 0))


def q_numa(cache: dict[Arm, list[Run]]) -> Answer:
    arms = [Arm(f"{p} per_node={n}", (p,), ("secretmem",),
                (("machine.nodes", "2"), (f"{p}.per_node", n),
                 *((("gfp-unmapped.variant", "fixed"),) if p == "gfp-unmapped" else ())))
            for p in ("gfp-unmapped", "unmapped-api") for n in ("0", "1")]
    runs = [_run_arm(a, cache)[0] for a in arms]
    for run in runs:  # the design's own count of pages handed to a CPU of another node
        run["metrics"] = {**run["metrics"], "remote_pages": _remote(run)}
    g0, g1, a0, a1 = runs
    answer = (f"Yes: on a 2-node machine one central cache hands secretmem pages of the other "
              f"node to {fmt_count(_m(a0, 'remote_pages'))} faults (unmapped-api) and "
              f"{fmt_count(_m(g0, 'remote_pages'))} (fixed gfp-unmapped); a cache per node "
              f"hands out {fmt_count(_m(a1, 'remote_pages'))} and "
              f"{fmt_count(_m(g1, 'remote_pages'))}, for "
              f"{fmt_pages(_m(a1, 'cache_pages'))} instead of "
              f"{fmt_pages(_m(a0, 'cache_pages'))} held in the caches.")
    rows = [(a.label, r) for a, r in zip(arms, runs, strict=True)]
    metrics = [m for m in _columns_metrics(NUMA_COLUMNS) if m != "remote_pages"]
    return Answer("Does secretmem care about NUMA; one central cache or little caches per "
                  "user?", answer, _table(rows, NUMA_COLUMNS),
                  tuple(a.command(metrics) + " --stats" for a in arms),
                  "remote pages: the design's `remote_pages` stat (`--stats`); a remote page "
                  "costs a remote-DRAM access per use (`costs.remote_page`, "
                  "docs/hardware.md).")


THREAD = ("baseline", "gfp-unmapped", "unmapped-api", "migratetype", "jit-slab", "vmap-area")
LATER = ("execmem-rox", "grouped-pages", "secretmem-pmd", "guest-memfd")
DAY = ("secretmem", "modules", "bpf", "trampolines", "pks-pagetables", "guest", "dma-nokmap")


def q_later(cache: dict[Arm, list[Run]]) -> Answer:
    arm = Arm("later", (*THREAD, *LATER), DAY,
              (("gfp-unmapped.variant", "fixed"), ("jit-slab.variant", "fixed")))
    runs = _run_arm(arm, cache)
    totals = {p: sum(_m(_find(runs, p, w), "direct_map_level2_splits") for w in DAY)
              for p in arm.plugins}
    ipis = {p: sum(_m(_find(runs, p, w), "tlb_ipis") for w in DAY) for p in arm.plugins}
    best_thread = min(THREAD, key=lambda p: (totals[p], ipis[p]))
    best_later = min(LATER, key=lambda p: (totals[p], ipis[p]))
    answer = (f"Over the default day (every built-in workload once), the thread's best design "
              f"for the direct map is {best_thread} ({totals[best_thread]:.0f} splits of 2 MiB "
              f"pages, "
              f"{fmt_count(ipis[best_thread])} IPIs in all) and the best later one "
              f"{best_later} ({totals[best_later]:.0f}, {fmt_count(ipis[best_later])}); v6.3 "
              f"splits {totals['baseline']:.0f} times with {fmt_count(ipis['baseline'])} IPIs. "
              "Each later design serves only its own sites, so the per-workload table says "
              "where each one helps.")
    header = "| design | " + " | ".join(DAY) + " | all |\n|---|" + "---:|" * (len(DAY) + 1)
    lines = [f"| {p} | " + " | ".join(f"{_m(_find(runs, p, w), 'direct_map_level2_splits'):.0f}"
                                        for w in DAY) + f" | {totals[p]:.0f} |"
             for p in arm.plugins]
    return Answer("The thread's designs against the ones that came after it", answer,
                  header + "\n" + "\n".join(lines),
                  (arm.command(["direct_map_level2_splits", "tlb_ipis"]),),
                  "Level-2 (2 MiB) direct-map splits per workload; fixed variants of "
                  "gfp-unmapped and jit-slab.")

QUESTIONS: tuple[Callable[[dict[Arm, list[Run]]], Answer], ...] = (
    q_fragmentation, q_zeroing, q_sites, q_rox, q_module_sizes, q_jit, q_gfp_vs_api,
    q_caches, q_numa, q_later,
)


def review() -> str:
    """The whole markdown document."""
    cache: dict[Arm, list[Run]] = {}
    answers = [q(cache).markdown(i) for i, q in enumerate(QUESTIONS, start=1)]
    head = (f"# The thread's questions, answered with numbers\n\n"
            f"Generated by `framework review` (framework {VERSION}). Every answer is computed "
            f"from the runs of the command under its table (seed 1, a 16 GiB machine); "
            f"rerun them to check, or change a parameter to test the answer.")
    return "\n\n".join([head, *answers]) + "\n"
