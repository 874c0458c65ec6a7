"""Kernel constants of x86-64 Linux v6.3 used by the model (values, not policy).

The numbers are ``Final``: the compiled core (docs/performance.md) inlines them instead of
looking each up in this module's namespace on every use.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
MAX_ORDER: Final = 11  # include/linux/mmzone.h (v6.3: exclusive, orders 0..10)
# include/linux/pageblock-flags.h: min(HUGETLB_PAGE_ORDER, MAX_ORDER - 1)
PAGEBLOCK_ORDER: Final = 9
PAGEBLOCK_NR_PAGES: Final = 1 << PAGEBLOCK_ORDER
PMD_ORDER: Final = 9  # 2 MiB
PUD_ORDER: Final = 18  # 1 GiB
PTRS_PER_TABLE: Final = 512
# include/linux/pageblock-flags.h: 3 migratetype bits + PB_migrate_skip
NR_PAGEBLOCK_BITS: Final = 4
TLB_SINGLE_PAGE_FLUSH_CEILING: Final = 33  # arch/x86/mm/tlb.c tlb_single_page_flush_ceiling
MODULES_LEN_PAGES: Final = (1008 << 20) >> PAGE_SHIFT  # pgtable_64_types.h with KASLR: 1008 MiB

# Page protection bits of the model (arch/x86/include/asm/pgtable_types.h names).
_PAGE_PRESENT: Final = 1
_PAGE_RW: Final = 2
_PAGE_NX: Final = 4
_PAGE_GLOBAL: Final = 8
_PAGE_PKEY: Final = 16  # a non-zero PKS key on the entry (PKS page tables)
PAGE_KERNEL: Final = _PAGE_PRESENT | _PAGE_RW | _PAGE_NX | _PAGE_GLOBAL


class MigrateType(IntEnum):
    """include/linux/mmzone.h migratetypes the model keeps (plugins may add more)."""

    MIGRATE_UNMOVABLE = 0
    MIGRATE_MOVABLE = 1
    MIGRATE_RECLAIMABLE = 2


# The same values as plain int literals: the compiled core inlines them and compares a
# migratetype natively (an IntEnum member is an object, compared through the Python API).
# tests/test_mutation_sample.py holds them to MigrateType.
MIGRATE_UNMOVABLE: Final = 0
MIGRATE_MOVABLE: Final = 1
MIGRATE_RECLAIMABLE: Final = 2

# mm/page_alloc.c fallbacks[MIGRATE_TYPES][3] (v6.3), without the MIGRATE_TYPES sentinel.
FALLBACKS: Final[dict[int, tuple[int, ...]]] = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}


def get_order(size: int) -> int:
    """include/asm-generic/getorder.h get_order(): the order of the block ``size`` bytes need."""
    pages = max(1, -(-size // PAGE_SIZE))
    return (pages - 1).bit_length()
