"""The TLB reach model: what a direct-map (or module text) page mix costs in address translation.

Pure functions, no kernel-model dependency:

- :mod:`framework.tlb.che`: Che's approximation for LRU caches under the independent reference
  model, fully or set associative, with items given as ``(count, probability)`` groups.
- :mod:`framework.tlb.lru`: exact LRU simulation, to validate the approximation.
- :mod:`framework.tlb.reach`: the reach model proper, :func:`dtlb_reach` for direct-map data
  accesses and :func:`itlb_reach` for module/BPF text fetch.
- :mod:`framework.tlb.stream`: one core's access stream, the same for every design of a cell.
- :mod:`framework.tlb.mix`: the stream's populations competing in the core's TLB arrays.
- :mod:`framework.tlb.sampler`: the mapping sampled over a run and the run's TLB metrics.

The validation figures are in ``docs/validation.md`` (``python benchmarks/validate_che.py``).
"""

from framework.tlb.che import (
    characteristic_time,
    hit_ratio,
    set_assoc_hit_ratio,
)
from framework.tlb.lru import simulate_lru
from framework.tlb.reach import DtlbReach, ItlbReach, dtlb_reach, itlb_reach

__all__ = [
    "DtlbReach",
    "ItlbReach",
    "characteristic_time",
    "dtlb_reach",
    "hit_ratio",
    "itlb_reach",
    "set_assoc_hit_ratio",
    "simulate_lru",
]
