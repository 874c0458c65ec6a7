"""The cycle-cost table: every default cost constant, with its source.

Each operation of the kernel model charges modelled CPU cycles to a category. The defaults
below are derived in ``docs/hardware.md``, "Cost table defaults", which gives each figure's
original source; ``[V]`` marks a figure read from a primary source, ``[E]`` an estimate (a
tunable default, not a fact). Every entry can be overridden with
``--set costs.NAME=VALUE`` and is listed by ``framework list --costs``. Cycles are at the
reference clock of 3.0 GHz where a source gives time; the model has no clock parameter
(results are in cycles), so a faster machine is modelled by overriding these entries.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from framework.errors import BadParameter, UnknownName


@attrs.frozen(slots=True)
class CostEntry:
    """One cost constant: cycles charged per operation, its ledger category and its source."""

    name: str
    cycles: float
    category: str
    unit: str
    source: str


_ENTRIES = (
    CostEntry("buddy_op", 120, "buddy", "per rmqueue_smallest / free_one_page call",
              "[E] zone->lock round trip plus list manipulation; docs/hardware.md"),
    CostEntry("buddy_step", 20, "buddy", "per expand or merge level",
              "[E] one list_add/list_del and page flag update; docs/hardware.md"),
    CostEntry("zero_page", 897, "zeroing", "per 4 KiB page cleared",
              "[V] 13.7 GB/s rep stosq on Milan, 4 KiB chunks (A. Arora, clear_pages(), "
              "Sep 2025) -> 0.30 us at 3.0 GHz; docs/hardware.md, 'Zeroing cost'"),
    CostEntry("cpa_call", 400, "cpa", "per change_page_attr_set_clr call",
              "[E] cpa setup, vm_unmap_aliases with nothing to purge, pgd_lock; docs/hardware.md"),
    CostEntry("cpa_pte", 150, "cpa", "per page-table entry changed",
              "[E] lookup_address + set_pte + cpa_process_alias lookup; docs/hardware.md"),
    CostEntry("split_large_page", 6000, "split", "per large page split (local work)",
              "[E] docs/hardware.md, 'CPA and split cost': ~1-3 us local work, 2 us at "
              "3.0 GHz; flush charged apart"),
    CostEntry("flush_all_local", 96, "flush_local", "per full local TLB flush (CR3 write)",
              "[V] Ingo Molnar 2015-06-08, 20150608195237.GA15429@gmail.com; "
              "docs/hardware.md, 'Local flush cost'"),
    CostEntry("invlpg", 260, "flush_local", "per page invalidated locally",
              "[V] Ingo Molnar 2015-06-08; arch/x86/mm/tlb.c comment ~100 ns; "
              "docs/hardware.md, 'Local flush cost'"),
    CostEntry("shootdown_base", 4500, "shootdown", "per remote shootdown (IPI round)",
              "[E] docs/hardware.md, 'Shootdown cost': t = 1-2 us + 0.1-0.3 us x CPUs; "
              "1.5 us at 3.0 GHz"),
    CostEntry("shootdown_per_cpu", 600, "shootdown", "per other CPU in a shootdown",
              "[E] docs/hardware.md, 'Shootdown cost' scaling model, 0.2 us per CPU at "
              "3.0 GHz"),
    CostEntry("text_poke", 3000, "text_poke", "per text_poke_copy call",
              "[E] temporary mm switch, two CR3 writes, local flush; docs/hardware.md"),
    CostEntry("text_poke_page", 300, "text_poke", "per page written by text_poke",
              "[E] map and copy one page through the poking mm; docs/hardware.md"),
    CostEntry("vmap_area", 800, "vmap", "per vmap_area alloc or free",
              "[E] vmap_area_lock, augmented rbtree lookup and insert; docs/hardware.md"),
    CostEntry("vmap_page", 60, "vmap", "per page mapped or unmapped in vmalloc space",
              "[E] one PTE write in vmap_pages_range / vunmap_range; docs/hardware.md"),
    CostEntry("slab_op", 80, "slab", "per slab bitmap or partial-list operation",
              "[E] find_first_zero_bit + list_move under a mutex; docs/hardware.md"),
    CostEntry("tree_op", 300, "tree", "per free-range tree lookup or insert",
              "[E] augmented rbtree walk of free_text_area_root; docs/hardware.md"),
    CostEntry("stlb_hit", 8, "tlb", "per L1 miss that hits the STLB",
              "[E] docs/hardware.md, 'Translation costs': ~7-9 cycles (9 on SKL, 8 in "
              "ChampSim configs)"),
    CostEntry("walk_cached", 40, "tlb", "per page walk whose entries are in cache",
              "[E] docs/hardware.md, 'Translation costs': ~20-60 cycles (AIDA i7-7800X "
              "derivation)"),
    CostEntry("walk_dram", 300, "tlb", "per page walk whose leaf entry is in DRAM",
              "[E] docs/hardware.md, 'Translation costs': ~290-350 cycles at 3.5 GHz"),
    CostEntry("remote_page", 180, "numa", "per 4 KiB page a cache hands to a CPU of another "
              "node", "[E] one first-touch miss at remote minus local DRAM latency: 60 ns "
              "(135 vs 195 ns, Intel MLC, one QPI hop) at 3.0 GHz; docs/hardware.md, "
              "'Remote memory cost'"),
    CostEntry("reclaim_page", 2400, "reclaim", "per clean page-cache page reclaimed",
              "[E] shrink_folio_list() + __remove_mapping() + the free: 0.8 us at 3.0 GHz; "
              "docs/hardware.md, 'Reclaim and migration cost'"),
    CostEntry("migrate_page", 7500, "compaction", "per 4 KiB page migrated by compaction",
              "[E] isolate, unmap with its TLB flush, copy 4 KiB, remap: 2.5 us at 3.0 GHz; "
              "docs/hardware.md, 'Reclaim and migration cost'"),
    CostEntry("compact_scan_block", 1500, "compaction", "per pageblock the migrate scanner "
              "examines", "[E] a pass over 512 struct pages: 0.5 us at 3.0 GHz; "
              "docs/hardware.md, 'Reclaim and migration cost'"),
)

DEFAULT_COSTS: dict[str, CostEntry] = {e.name: e for e in _ENTRIES}
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(e.category for e in _ENTRIES))


def resolve_costs(overrides: Mapping[str, str | float]) -> dict[str, float]:
    """Return ``{name: cycles}`` with ``overrides`` applied.

    :raises UnknownName: for a cost name not in the table.
    :raises BadParameter: for a value that is not a number >= 0.
    """
    out = {name: e.cycles for name, e in DEFAULT_COSTS.items()}
    for name, raw in overrides.items():
        if name not in out:
            raise UnknownName(
                f"unknown cost costs.{name}: costs are {', '.join(sorted(out))}"
            )
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise BadParameter(f"costs.{name}={raw!r}: expected a number of cycles >= 0") from None
        if not value >= 0 or value == float("inf"):
            raise BadParameter(f"costs.{name}={raw!r}: expected a number of cycles >= 0")
        out[name] = value
    return out
