"""arch/x86/kernel/alternative.c: ``text_poke_copy()`` through the poking mm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from framework.kernel.consts import PAGE_SHIFT, PAGE_SIZE
from framework.kernel.ledger import Ledger
from framework.kernel.vmalloc import VmStruct

PAGE_MASK_LOW: Final = PAGE_SIZE - 1  # offset bits within a page (~PAGE_MASK)


class TextPoke:
    """Writes to read-only text: a temporary writable alias, then a local flush."""

    def __init__(self, costs: dict[str, float], ledger: Ledger,
                 flush_local: Callable[[int], None],
                 find_area: Callable[[int], VmStruct | None], dirty: set[int]) -> None:
        self.costs = costs
        self.ledger = ledger
        self.flush_local = flush_local
        self.find_area = find_area
        self.dirty = dirty

    def text_poke(self, vpage: int, offset: int, length: int) -> None:
        """text_poke_copy(): chunks of up to two pages through the poking mm, local flush each."""
        done = 0
        pos = offset
        while done < length:
            size = min(2 * PAGE_SIZE - (pos & PAGE_MASK_LOW), length - done)
            pages = ((pos & PAGE_MASK_LOW) + size + PAGE_MASK_LOW) >> PAGE_SHIFT
            self.ledger.text_poke_calls += 1
            self.ledger.charge("text_poke", self.costs["text_poke"]
                               + self.costs["text_poke_page"] * pages)
            self.flush_local(pages)
            done += size
            pos += size
        area = self.find_area(vpage + (offset >> PAGE_SHIFT))
        if area is not None:
            a = vpage + (offset >> PAGE_SHIFT) - area.addr
            b = vpage + ((offset + max(length, 1) - 1) >> PAGE_SHIFT) - area.addr
            self.dirty.update(area.pages[a:b + 1])
