"""``trampolines``: kprobe, ftrace and BPF trampolines attached and detached by tracing tools.

Stands for: the small executable allocations tracing makes outside modules and BPF programs,
each one ``trampoline`` request (``perm=ROX``, ``zero=False``, ``freed_by=OWNER``, any node),
one ``write`` (the generated code) and one ``free``:

- ``kprobe``: one instruction slot per registered kprobe (``get_insn_slot()``,
  kernel/kprobes.c): ``kprobe_insn_slots.insn_size`` is ``MAX_INSN_SIZE`` = 16 bytes on x86,
  256 slots to an insn page that ``alloc_insn_page()`` gets from ``module_alloc(PAGE_SIZE)``
  and makes RO then X. Freed at ``unregister_kprobe()``.
- ``ftrace``: a dynamic ``ftrace_ops`` trampoline (arch/x86/kernel/ftrace.c
  ``create_trampoline()``): a copy of ``ftrace_regs_caller..ftrace_regs_caller_end`` plus
  ``RET_SIZE`` (``ret`` and, with CONFIG_SLS, ``int3``: 2 bytes) plus the 8-byte ``ftrace_ops``
  pointer, from ``alloc_tramp()`` = ``module_alloc``. Freed when the ops is unregistered.
- ``bpf``: a BPF trampoline image (kernel/bpf/trampoline.c): in v6.3
  ``bpf_tramp_image_alloc()`` takes a whole page (``bpf_jit_alloc_exec(PAGE_SIZE)``), and every
  attach or detach of a fentry/fexit/LSM program on a traced function builds a *new* image
  (``bpf_trampoline_update()``) and frees the old one (``bpf_tramp_image_put()``); detaching
  the last program frees the image.

CPU: one tracing agent (a bpftrace or perf-probe session, an fentry-based observability
daemon) makes every attach and detach from one thread, so every request runs on one CPU
drawn once per run (from its own stream: the attach stream does not change with it).

The request size is the object the caller needs (16 B, ``ftrace_bytes``, 4096 B); the
design decides how to place it. The v6.3 status-quo path packs kprobe slots (requests of at
most 16 B) 256 to a ROX page as ``get_insn_slot`` does, and gives every other trampoline its
own ``module_alloc`` sealed with ``set_memory_rox``; optprobe slots are not modelled.

Numbers: 16 B and 4096 B are read from v6.3 (above). ``ftrace_bytes`` is an estimate: about
300 bytes of ``ftrace_regs_caller`` code (saving and restoring ``pt_regs``, the ops load, the
call, the direct-call check) + 2 + 8, so 310 B by default. The mix of kinds (``kprobe_share``,
``ftrace_share``, ``bpf_share``, normalised) is an estimate too: a bpftrace or perf-probe
session attaches many kprobes, BPF fentry tools attach to a few hot functions. The scale is
a tracing agent's [E]: libbpf-tools and bpftrace scripts attach a few to dozens of
fentry/kprobe programs each, an observability or security agent built on fentry hooks
hundreds, so up to ``concurrent`` 256 attachments are live at once, BPF programs spread
over ``bpf_targets`` 128 traced functions. Each step either attaches (even odds while fewer
than ``concurrent`` attachments are live) or detaches a random live attachment; BPF programs
attach to one of ``bpf_targets`` functions. A ``sample``
event is emitted every ``sample_every`` events (0: none). Everything is detached by the end.
Deterministic for a seed.

Parameters (``--set trampolines.KEY=VALUE``):

- ``attaches`` (count, default 3000): attach operations over the run.
- ``concurrent`` (count, default 256): live attachments at most.
- ``kprobe_share`` / ``ftrace_share`` / ``bpf_share`` (weights, defaults 0.4 / 0.2 / 0.4).
- ``kprobe_bytes`` (bytes, default 16): kprobe insn slot.
- ``ftrace_bytes`` (bytes, default 310): ftrace ops trampoline.
- ``bpf_tramp_bytes`` (bytes, default 4096): BPF trampoline image.
- ``bpf_targets`` (functions, default 128): distinct functions BPF programs attach to.
- ``sample_every`` (events, default 0): emit a sample every N events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import numpy as np

from framework.errors import BadParameter
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, SAMPLE, WRITE, Event, Request
from framework.workload import Workload, start_next
from framework.workloads.cpus import CpuChooser

KINDS: tuple[str, ...] = ("kprobe", "ftrace", "bpf")


@attrs.define(slots=True)
class _State:
    """Live attachments and the BPF trampoline of each target function."""

    next_id: int = 1
    live: list[tuple[str, int]] = attrs.Factory(list)  # (kind, allocation id or target)
    progs: list[int] = attrs.Factory(list)  # BPF programs attached per target
    image: list[int] = attrs.Factory(list)  # live image id per target (0: none)
    cpu: int = 0  # the tracing agent's CPU


class Trampolines(Workload):
    """Attach/detach churn of kprobe slots, ftrace and BPF trampolines (module docstring)."""

    name = "trampolines"
    summary = "kprobe insn slots, ftrace ops and BPF trampolines attached/detached (ROX)"
    source = ("kernel/kprobes.c, arch/x86/kernel/ftrace.c, kernel/bpf/trampoline.c (v6.3); "
              "ftrace size and the kind mix estimates")
    params = (
        Param("attaches", int, 3000, "attach operations over the run", min=1, max=10**7),
        Param("concurrent", int, 256, "live attachments at most", min=1, max=10**6),
        Param("kprobe_share", float, 0.4, "weight of kprobe attaches", min=0, max=1),
        Param("ftrace_share", float, 0.2, "weight of ftrace ops attaches", min=0, max=1),
        Param("bpf_share", float, 0.4, "weight of BPF trampoline attaches", min=0, max=1),
        Param("kprobe_bytes", int, 16, "kprobe insn slot, bytes (x86 MAX_INSN_SIZE)",
              min=1, max=1 << 20),
        Param("ftrace_bytes", int, 310, "ftrace ops trampoline, bytes (estimate)",
              min=1, max=1 << 20),
        Param("bpf_tramp_bytes", int, 4096, "BPF trampoline image, bytes (v6.3: a page)",
              min=1, max=1 << 20),
        Param("bpf_targets", int, 128, "functions BPF programs attach to", min=1, max=10**6),
        Param("sample_every", int, 0, "emit a sample event every N events (0: never)",
              min=0, max=10**9),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        weights = [params[f"{kind}_share"] for kind in KINDS]
        if sum(weights) <= 0:
            raise BadParameter("trampolines: kprobe_share, ftrace_share and bpf_share "
                               "are all 0: expected at least one above 0")
        self.weights = weights
        self.total = sum(weights)
        self.sizes = {"kprobe": params["kprobe_bytes"], "ftrace": params["ftrace_bytes"],
                      "bpf": params["bpf_tramp_bytes"]}

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Yield attach and detach events; everything is detached by the end."""
        cfg = self.config
        targets = cfg["bpf_targets"]
        agent = CpuChooser(rng, self.machine).any()  # the tracing agent's CPU
        st = _State(progs=[0] * targets, image=[0] * targets, cpu=agent)
        attached = 0
        count = 0
        every = cfg["sample_every"]
        while attached < cfg["attaches"] or st.live:
            if start_next(rng, attached, cfg["attaches"], len(st.live), cfg["concurrent"]):
                attached += 1
                evs = self._attach(rng, st)
            else:
                evs = self._detach(st, st.live.pop(int(rng.integers(len(st.live)))))
            for ev in evs:
                yield ev
                count += 1
                if every and count % every == 0:
                    yield Event(SAMPLE)

    def _new(self, st: _State, kind: str) -> tuple[int, list[Event]]:
        """Allocate and write one trampoline of ``kind``."""
        aid = st.next_id
        st.next_id += 1
        size = self.sizes[kind]
        return aid, [Event(ALLOC, aid, Request("trampoline", size, "ROX", False, None, "OWNER",
                                                   st.cpu)),
                     Event(WRITE, aid, None, size)]

    def _attach(self, rng: np.random.Generator, st: _State) -> list[Event]:
        kind = self._kind(rng.random() * self.total)
        if kind != "bpf":
            aid, evs = self._new(st, kind)
            st.live.append((kind, aid))
            return evs
        target = int(rng.integers(self.config["bpf_targets"]))
        st.live.append(("bpf", target))
        st.progs[target] += 1
        return self._rebuild(st, target)

    def _kind(self, r: float) -> str:
        """The kind whose slice of [0, total) holds ``r`` (weights laid end to end)."""
        last = KINDS[0]
        for kind, weight in zip(KINDS, self.weights, strict=True):
            if weight > 0:
                if r < weight:
                    return kind
                r -= weight
                last = kind
        return last  # r landed on the float rounding at the very end

    def _detach(self, st: _State, entry: tuple[str, int]) -> list[Event]:
        kind, ref = entry
        if kind != "bpf":
            return [Event(FREE, ref)]
        st.progs[ref] -= 1
        if st.progs[ref]:
            return self._rebuild(st, ref)
        old, st.image[ref] = st.image[ref], 0
        return [Event(FREE, old)]  # unregister_fentry(): bpf_tramp_image_put()

    def _rebuild(self, st: _State, target: int) -> list[Event]:
        """kernel/bpf/trampoline.c bpf_trampoline_update(): new image, then put the old."""
        aid, evs = self._new(st, "bpf")
        old, st.image[target] = st.image[target], aid
        if old:
            evs.append(Event(FREE, old))
        return evs
