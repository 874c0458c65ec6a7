"""arch/x86/mm/tlb.c: kernel TLB flushes, their IPIs and their modelled cost.

``flush_tlb_all`` and ``flush_tlb_kernel_range`` reach every online CPU (IPIs to the others);
a range over ``tlb_single_page_flush_ceiling`` pages becomes a full flush; ``text_poke``'s
flush is local.
"""

from __future__ import annotations

from framework.kernel.consts import TLB_SINGLE_PAGE_FLUSH_CEILING
from framework.kernel.ledger import Ledger


class TlbFlush:
    """The flushes of one machine with ``cpus`` online CPUs."""

    def __init__(self, cpus: int, costs: dict[str, float], ledger: Ledger) -> None:
        self.cpus = cpus
        self.costs = costs
        self.ledger = ledger
        self.other_cpus = cpus - 1
        # hot-path costs, looked up once: the cost table is fixed for a run
        self.c_invlpg = costs["invlpg"]
        self.c_shootdown = costs["shootdown_base"] + costs["shootdown_per_cpu"] * (cpus - 1)

    def flush_tlb_all(self) -> None:
        """flush_tlb_all(): full flush on every online CPU, IPIs to the others."""
        led = self.ledger
        led.tlb_flush_all += 1
        led.charge("flush_local", self.costs["flush_all_local"])
        self._shootdown()

    def _shootdown(self) -> None:
        """IPIs to every other online CPU and their modelled cost (native_flush_tlb_multi)."""
        others = self.cpus - 1
        if others:
            led = self.ledger
            led.tlb_ipis += others
            led.shootdown_cycles += self.c_shootdown
            led.total_cycles += self.c_shootdown

    def flush_tlb_kernel_range(self, nr_pages: int) -> None:
        """flush_tlb_kernel_range(): per-page INVLPG on every CPU up to the ceiling (33)."""
        if nr_pages > TLB_SINGLE_PAGE_FLUSH_CEILING:
            self.flush_tlb_all()
            return
        led = self.ledger
        led.tlb_flush_range += 1
        local = self.c_invlpg * nr_pages
        led.flush_local_cycles += local  # Ledger.charge(), inlined on the hot path
        led.total_cycles += local
        others = self.other_cpus
        if others:  # _shootdown(), inlined
            led.tlb_ipis += others
            led.shootdown_cycles += self.c_shootdown
            led.total_cycles += self.c_shootdown

    def cpa_flush(self, nr_pages: int, force_flush_all: bool) -> None:
        """set_memory.c cpa_flush(): full flush if forced or over the ceiling, else per page."""
        if force_flush_all or nr_pages > TLB_SINGLE_PAGE_FLUSH_CEILING:
            self.flush_tlb_all()
        else:
            self.flush_tlb_kernel_range(nr_pages)

    def flush_local(self, nr_pages: int) -> None:
        """A flush on this CPU only (text_poke's poking mm)."""
        self.ledger.tlb_flush_local += 1
        self.ledger.charge("flush_local", self.costs["invlpg"] * nr_pages)
