"""``bpf``: BPF programs JIT-compiled, loaded and unloaded by applications that come and go.

Stands for: ``bpf_prog_load()`` -> ``bpf_int_jit_compile()`` on x86-64, whose final pass
calls ``bpf_jit_binary_pack_alloc()`` (kernel/bpf/core.c) for the read-only executable image
and ``bpf_jit_binary_pack_finalize()`` to copy the JITed code in with ``text_poke_copy``;
unloading the program frees the image (``bpf_jit_binary_pack_free``). Programs arrive in
groups: an application (a Cilium endpoint, a systemd unit's cgroup programs) loads a few
programs together and unloads them together when it goes away. Each program is one
``bpf_prog`` request (``perm=ROX``, ``zero=False``, ``freed_by=OWNER``, any node: the
loader's CPU's node first), one ``write`` of the whole image (``arg`` = the request size),
and one ``free``.

Request size: v6.3 asks the pack allocator for ``round_up(proglen + sizeof(struct
bpf_binary_header) + 16, BPF_PROG_CHUNK_SIZE)``: the JITed code, the 8-byte header (``u32
size`` padded to ``BPF_IMAGE_ALIGNMENT``) and at least 16 bytes of illegal instructions in
front of the code. The workload asks for ``proglen + 24`` and leaves the round-up to the
design: the 64-byte chunk is bpf_prog_pack's own granule (the status-quo path rounds to it
itself, so baseline sees exactly the v6.3 size), while jit-slab rounds to powers of two and
vmap-area to its own alignment.

Loaders and CPUs: a host running systemd and a CNI (Cilium) carries two kinds of programs.

- **Resident** programs, loaded at boot and kept for the whole run: ``systemd_progs`` loaded
  by systemd (PID 1: the cgroup device, IP firewall/accounting, socket-bind and
  restrict-filesystems programs of units that ask for them), all on one CPU drawn once; and
  ``host_progs`` loaded by the CNI agent for the host datapath (Cilium's ``bpf_host``,
  ``bpf_sock`` socket-LB, ``bpf_overlay`` and ``bpf_xdp`` objects with their tail-call
  programs), one batch on one drawn CPU.
- **Endpoint** programs: every pod's datapath (Cilium's ``bpf_lxc`` object: ``cil_from_container``,
  ``cil_to_container`` and their tail calls), loaded when the endpoint is created or
  regenerated and unloaded when it goes away: the ``apps`` below. ``cilium-agent`` is a
  multi-threaded Go program, so each endpoint's load runs on a CPU drawn uniformly.

Each program is allocated on its loader's CPU; its free runs there too (the engine's rule).
The CPUs and the resident programs' sizes are drawn from their own streams spawned from the
run's generator, so the endpoint stream is the same with or without them.

Numbers: ``proglen`` (bytes of JITed x86 code) is log-normal with mean ``mean_bytes`` and
shape ``sigma``, cut to ``[min_bytes, max_bytes]``. This is an estimate: no published
distribution of JITed program sizes exists. It rests on Song Liu's bpf_prog_pack cover letter
("Most BPF programs are small, but they consume a page each", 20211215060102.3793196-1-song)
and on ``bpftool prog show`` figures in public reports: systemd's cgroup device and socket
programs (``jited`` 54 B), small kprobe and tracepoint tools (49..639 B), the example of
bpftool-prog(8) (370 B), and datapath programs such as Cilium's ``cil_from_container`` (hundreds
of bytes to a few KiB, their logic split over tail calls). A mean of 512 B with ``sigma`` 1
puts the median near 310 B and about 3% of programs above 2 KiB. The counts are estimates
[E] for a Kubernetes node: ``systemd_progs`` 32 (a few dozen hardened units), ``host_progs``
64 (Cilium's host, socket-LB, overlay and XDP objects with their tail calls), endpoints with a
geometric number of programs of mean ``progs_per_app`` 12 (a ``bpf_lxc`` object's entry
points and tail calls), at most ``concurrent`` 40 endpoints loaded at once (a node's pods),
``apps`` 200 endpoint loads over the run (pod churn and regenerations): about 500 programs
loaded at once, the "hundreds" such hosts show. Each step either starts an endpoint or unloads
a random loaded one (even odds while below the cap). A ``sample`` event is emitted every
``sample_every`` events (0: none). Everything is unloaded by the end, resident programs last.
Deterministic for a seed.

Parameters (``--set bpf.KEY=VALUE``):

- ``apps`` (count, default 200): endpoint loads over the run.
- ``concurrent`` (count, default 40): endpoints loaded at once at most.
- ``progs_per_app`` (programs, default 12.0): mean programs an endpoint loads.
- ``systemd_progs`` / ``host_progs`` (programs, defaults 32 / 64): resident programs.
- ``mean_bytes`` (bytes, default 512.0): mean JITed program length ``proglen``.
- ``sigma`` (default 1.0): log-normal shape of ``proglen``.
- ``min_bytes`` / ``max_bytes`` (bytes, defaults 16 / 65536): cut-offs of ``proglen``.
- ``sample_every`` (events, default 0): emit a sample every N events.
- ``turnover`` (pages, default 0): other kernel users' pages freed on the loader's CPU before
  each program load and allocated back after it (:mod:`framework.workloads.turnover`: over
  days of uptime a program gets the page another kernel user freed last on its CPU).
- ``turnover_pool_pct`` (% of RAM, default 1.0): the long-lived unmovable pool they come from.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

import numpy as np

from framework.errors import BadParameter
from framework.machine.spec import MachineSpec
from framework.params import Param
from framework.request import ALLOC, FREE, WRITE, Event, Request
from framework.workload import Workload, lognormal_with_mean, sampled, start_next
from framework.workloads.cpus import CpuChooser
from framework.workloads.turnover import Turnover

# kernel/bpf/core.c bpf_jit_binary_pack_alloc(): sizeof(struct bpf_binary_header) + 16
JIT_OVERHEAD = 8 + 16


class Bpf(Workload):
    """Load/unload churn of JITed BPF programs (see the module docstring)."""

    name = "bpf"
    summary = "BPF programs JIT-loaded and unloaded in application groups (bpf_prog, ROX)"
    source = ("bpf_jit_binary_pack_alloc() call pattern (kernel/bpf/core.c); program sizes "
              "an estimate (log-normal, mean 512 B) anchored on bpftool figures")
    params = (
        Param("apps", int, 200, "endpoint (application) loads over the run", min=1,
              max=10**7),
        Param("concurrent", int, 40, "endpoints loaded at once at most", min=1, max=10**6),
        Param("progs_per_app", float, 12.0, "mean programs per endpoint (geometric)",
              min=1, max=10**4),
        Param("systemd_progs", int, 32, "resident programs systemd loads at boot", min=0,
              max=10**6),
        Param("host_progs", int, 64, "resident host-datapath programs of the CNI agent",
              min=0, max=10**6),
        Param("mean_bytes", float, 512.0, "mean JITed program length, bytes", min=1,
              max=1 << 26),
        Param("sigma", float, 1.0, "log-normal shape of program lengths", min=0, max=4),
        Param("min_bytes", int, 16, "shortest JITed program, bytes", min=1, max=1 << 26),
        Param("max_bytes", int, 65536, "longest JITed program, bytes", min=1, max=1 << 26),
        Param("sample_every", int, 0, "emit a sample event every N events (0: never)",
              min=0, max=10**9),
        Param("turnover", int, 0, "other kernel users' pages freed on the loader's CPU "
              "before each program load and allocated back after it (0: none)", min=0,
              max=64),
        Param("turnover_pool_pct", float, 1.0, "the pool those pages come from, % of RAM "
              "(slab that turns over during the uptime; 1-5% on servers)", min=0.0,
              max=50.0),
    )

    def __init__(self, params: dict[str, Any], machine: MachineSpec) -> None:
        super().__init__(params, machine)
        if params["min_bytes"] > params["max_bytes"]:
            raise BadParameter(f"bpf.min_bytes={params['min_bytes']} is above "
                               f"bpf.max_bytes={params['max_bytes']}")

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        """Yield load (alloc + write) and unload (free) events; all freed by the end."""
        return sampled(chain.from_iterable(self._batches(rng)), self.config["sample_every"])

    def _batches(self, rng: np.random.Generator) -> Iterator[list[Event]]:
        cfg = self.config
        cpus = CpuChooser(rng, self.machine)
        boot_rng = rng.spawn(1)[0]  # the resident programs' sizes: the endpoint stream stays
        pool = int(cfg["turnover_pool_pct"] / 100 * self.machine.mem_pages)
        turnover = Turnover(rng, self.machine, cfg["turnover"], pool)
        resident: list[int] = []
        next_id = 1
        if turnover.pool_pages:
            yield turnover.fill()
        for count in (cfg["systemd_progs"], cfg["host_progs"]):  # systemd, then the agent
            if count:
                ids, evs = self._programs(boot_rng, next_id, count, cpus.any(), turnover)
                next_id += count
                resident.extend(ids)
                yield evs
        started = 0
        loaded: list[list[int]] = []
        while started < cfg["apps"] or loaded:
            if start_next(rng, started, cfg["apps"], len(loaded), cfg["concurrent"]):
                started += 1
                ids, evs = self._load(rng, next_id, cpus.any(), turnover)
                next_id += len(ids)
                loaded.append(ids)
            else:
                evs = [Event(FREE, pid) for pid in loaded.pop(int(rng.integers(len(loaded))))]
            yield evs
        yield [Event(FREE, pid) for pid in resident]

    def proglen(self, rng: np.random.Generator) -> int:
        """One JITed program length in bytes: log-normal with mean ``mean_bytes``, cut."""
        cfg = self.config
        length = lognormal_with_mean(rng, cfg["mean_bytes"], cfg["sigma"])
        return int(min(cfg["max_bytes"], max(cfg["min_bytes"], length)))

    def _load(self, rng: np.random.Generator, next_id: int, cpu: int, turnover: Turnover
              ) -> tuple[list[int], list[Event]]:
        """One endpoint: a geometric number of programs, loaded on ``cpu``."""
        nr = int(rng.geometric(1.0 / self.config["progs_per_app"]))
        return self._programs(rng, next_id, nr, cpu, turnover)

    def _programs(self, rng: np.random.Generator, next_id: int, nr: int, cpu: int,
                  turnover: Turnover) -> tuple[list[int], list[Event]]:
        """``nr`` programs loaded one after the other by a loader on ``cpu``, each amid the
        other kernel users' ``turnover`` on that CPU."""
        ids = list(range(next_id, next_id + nr))
        evs = []
        for pid in ids:
            size = self.proglen(rng) + JIT_OVERHEAD
            req = Request("bpf_prog", size, "ROX", False, None, "OWNER", cpu)
            load = [Event(ALLOC, pid, req),
                    Event(WRITE, pid, None, size)]  # bpf_jit_binary_pack_finalize()
            evs.extend(turnover.around(cpu, load))
        return ids, evs
