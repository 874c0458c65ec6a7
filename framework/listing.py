"""Text for ``framework list``: what is registered, its parameters and where it comes from."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from tabulate import tabulate

from framework.kernel.faults import FAULT_PARAMS
from framework.machine.costs import DEFAULT_COSTS
from framework.machine.spec import MACHINE_PARAMS
from framework.metric_defs import METRICS, metrics_table
from framework.metric_defs import Kind as MetricKind
from framework.params import Param
from framework.plugins import Kind, Registry
from framework.tlb.settings import TLB_PARAMS


def _params(scope: str, params: Iterable[Param]) -> list[str]:
    return [f"    --set {scope}.{p.name}={p.show_default()}  ({p.allowed()}) {p.help}"
            for p in params]


def list_registry(reg: Registry) -> str:
    """Plugins, workloads, machines (with parameters and origins), commands from plugins,
    then failed plugins."""
    lines = ["Allocator plugins:"]
    for name, cls in reg.allocators.items():
        lines.append(f"  {name} [{reg.origin(Kind.ALLOCATOR, name)}]: {cls.summary}")
        lines.append(f"    source: {cls.source}")
        lines.extend(_params(name, cls.params))
    lines.append("Workloads:")
    for name, wcls in reg.workloads.items():
        suite = "" if wcls.default else " (not in the default suite)"
        lines.append(f"  {name} [{reg.origin(Kind.WORKLOAD, name)}]{suite}: {wcls.summary}")
        lines.append(f"    source: {wcls.source}")
        lines.extend(_params(name, wcls.params))
    lines.append("Machines:")
    for name, spec in reg.machines.items():
        lines.append(f"  {name} [{reg.origin(Kind.MACHINE, name)}]: {spec.summary}")
        lines.append(f"    source: {spec.source}")
    lines.append("Machine parameters (override any preset):")
    lines.extend(_params("machine", MACHINE_PARAMS))
    lines.append("Fault injection:")
    lines.extend(_params("faults", FAULT_PARAMS))
    lines.append("TLB model (estimates; see docs/validation.md):")
    lines.extend(_params("tlb", TLB_PARAMS))
    lines.append("Commands from plugins:")
    for name, command in reg.commands.items():
        lines.append(f"  framework {name} [{reg.origin(Kind.COMMAND, name)}]: "
                     f"{command.get_short_help_str(limit=80)}")
    if reg.failed:
        lines.append("Failed plugins:")
        lines.extend(f"  {name}: {error}" for name, error in reg.failed.items())
    return "\n".join(lines) + "\n"


def list_costs() -> str:
    """The cost table: name, cycles, category, unit and source of every constant."""
    rows = [(e.name, f"{e.cycles:g}", e.category, e.unit, e.source)
            for e in DEFAULT_COSTS.values()]
    table = tabulate(rows, headers=["cost", "cycles", "category", "per", "source"],
                     tablefmt="simple", disable_numparse=True)
    return table + "\n\nOverride with --set costs.NAME=CYCLES. [V] source read, [E] estimate.\n"


def list_metrics() -> str:
    """Every metric: name, unit, kind, what counts, and the kernel's counterpart."""
    lines = ["Metrics, by kind:"]
    lines.extend(f"  {k.name.lower()}: {k.value}" for k in MetricKind)
    lines.append("Every metric (docs/metrics.md has the same table):")
    for name, unit, kind, definition, kernel in metrics_table():
        lines.append(f"  {name} ({unit}, {kind})")
        lines.extend(textwrap.wrap(definition, 96, initial_indent="    ",
                                   subsequent_indent="    "))
        lines.append(f"    kernel: {kernel or 'none'}")
    return "\n".join(lines) + "\n"


def metrics_markdown() -> str:
    """The metric table of docs/metrics.md (a test checks the file carries it verbatim)."""
    rows = [(f"`{m.name}`", m.unit, m.kind.name.lower(),
             "better lower" if m.lower_is_better else "better higher", m.definition,
             m.kernel or "none") for m in METRICS]
    return str(tabulate(rows, headers=["metric", "unit", "kind", "direction", "definition",
                                       "kernel counterpart"], tablefmt="github",
                        disable_numparse=True)) + "\n"
