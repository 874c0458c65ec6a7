"""What ``framework compare`` checks before it compares: what differs between result files.

Each file is reduced to what produced its runs: the machine preset and its resolved
``machine.*`` parameters, every other parameter by scope (``costs``, ``faults``, ``tlb``,
the workload's and the plugin's, ``background``), the seeds and the framework versions.
Files that ran on different machines are refused unless the user says otherwise; every other
difference is named above the tables, so a reader knows what the columns compare.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from framework.errors import FrameworkError, InputError, UnknownName

MAX_SHOWN = 8  # differences named per file pair; the rest are counted


@attrs.frozen(slots=True)
class ResultFile:
    """One file's label (its base name) and runs."""

    label: str
    runs: tuple[dict[str, Any], ...]


def _flat(run: Mapping[str, Any]) -> dict[str, str]:
    """``scope.key`` -> value text of one run, scopes named as ``--set`` names them."""
    out = {"machine": str(run.get("machine"))}
    names = {"workload": run.get("workload"), "plugin": run.get("plugin")}
    for scope, values in (run.get("params") or {}).items():
        if not isinstance(values, dict):
            continue
        name = names.get(scope, scope)
        for key, value in values.items():
            out[f"{name}.{key}"] = json.dumps(value, sort_keys=True)
    return out


def settings(runs: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Every setting of the runs with the values it took."""
    out: dict[str, set[str]] = {}
    for run in runs:
        for key, value in _flat(run).items():
            out.setdefault(key, set()).add(value)
    out["seeds"] = {_seeds(runs)}
    out["framework_version"] = {str(r.get("framework_version")) for r in runs}
    return out


def _seeds(runs: Sequence[Mapping[str, Any]]) -> str:
    seeds = sorted({int(r["seed"]) for r in runs})
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _show(values: set[str] | None) -> str:
    if not values:
        return "(absent)"
    return "|".join(sorted(values))


def differences(first: ResultFile, other: ResultFile) -> list[tuple[str, str, str]]:
    """(setting, value in ``first``, value in ``other``) for each setting that differs."""
    a, b = settings(first.runs), settings(other.runs)
    return [(key, _show(a.get(key)), _show(b.get(key)))
            for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def is_machine(key: str) -> bool:
    """Settings that make another modelled machine: the preset and ``machine.*``."""
    return key == "machine" or key.startswith("machine.")


def describe(files: Sequence[ResultFile]) -> str:
    """The lines printed above the tables: each file, then what differs from the first."""
    lines = ["Files: " + "; ".join(f"{f.label} ({len(f.runs)} run{'s' * (len(f.runs) != 1)})"
                                   for f in files)]
    for other in files[1:]:
        diffs = differences(files[0], other)
        if not diffs:
            lines.append(f"{other.label} vs {files[0].label}: same machine, parameters, "
                         "seeds and version")
            continue
        shown = [f"{k} {b} vs {a}" for k, a, b in diffs[:MAX_SHOWN]]
        more = f"; and {len(diffs) - MAX_SHOWN} more" if len(diffs) > MAX_SHOWN else ""
        lines.append(f"{other.label} vs {files[0].label}: " + "; ".join(shown) + more)
    return "\n".join(lines)


def check_machines(files: Sequence[ResultFile]) -> None:
    """:raises FrameworkError: when a file ran on another machine than the first."""
    for other in files[1:]:
        diffs = [d for d in differences(files[0], other) if is_machine(d[0])]
        if diffs:
            key, a, b = diffs[0]
            raise FrameworkError(f"{other.label} ran on another machine than {files[0].label} "
                                 f"({key}: {b} vs {a}); pass --allow-different-machines to "
                                 "compare them anyway")


def select(files: Sequence[ResultFile], plugins: str, workloads: str) -> list[ResultFile]:
    """Keep the runs of the named plugins and workloads (``all``: every one).

    :raises InputError: for a file without runs, or one the filters leave empty.
    :raises UnknownName: for a name no file has a run of.
    """
    for f in files:
        if not f.runs:
            raise InputError(f"{f.label}: no runs in this results file")
    want_p = _names(plugins, files, "plugin")
    want_w = _names(workloads, files, "workload")
    out = []
    for f in files:
        runs = tuple(r for r in f.runs if (want_p is None or r["plugin"] in want_p)
                     and (want_w is None or r["workload"] in want_w))
        if not runs:
            raise InputError(f"{f.label}: no runs of --plugins {plugins} --workloads "
                             f"{workloads}")
        out.append(ResultFile(f.label, runs))
    return out


def _names(spec: str, files: Sequence[ResultFile], kind: str) -> set[str] | None:
    if spec == "all":
        return None
    known = list(dict.fromkeys(r[kind] for f in files for r in f.runs))
    names = {s.strip() for s in spec.split(",") if s.strip()}
    for name in sorted(names):
        if name not in known:
            raise UnknownName(f"--{kind}s: no run of {kind} {name!r} in these files: choose "
                              f"from {', '.join(known)}")
    return names
