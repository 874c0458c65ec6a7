"""``--fail-on``: conditions on the runs' metrics that make ``bench`` and ``compare`` exit 1.

A condition is ``violations`` (any broken promise: ``violations > 0``) or ``METRIC OP
NUMBER`` with OP one of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=`` (``est_slowdown_pct>1``,
``tlb_ipis >= 1e5``). Each is checked against every run (one design, one workload, one
seed), after everything is printed; CI then fails on what a reviewer would object to.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from framework.errors import BadParameter

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, "<": operator.lt,
}
_PATTERN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*")


@attrs.frozen(slots=True)
class Condition:
    """``metric op threshold``, as the user wrote it in ``text``."""

    text: str
    metric: str
    op: str
    threshold: float

    def holds(self, metrics: Mapping[str, Any]) -> bool:
        """True when the run's metric satisfies the condition (a missing metric never does)."""
        value = metrics.get(self.metric)
        if not isinstance(value, (int, float)):
            return False
        return OPERATORS[self.op](float(value), self.threshold)


def parse_condition(text: str, known: Sequence[str]) -> Condition:
    """Parse one ``--fail-on`` value.

    :raises BadParameter: naming the value and what is allowed.
    """
    if text.strip() == "violations":
        return Condition(text, "violations", ">", 0.0)
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise BadParameter(f"--fail-on {text!r}: expected 'violations' or METRIC OP NUMBER "
                           f"with OP one of {' '.join(sorted(OPERATORS))} "
                           "(e.g. 'est_slowdown_pct>1')")
    metric, op, number = match.groups()
    if metric not in known:
        raise BadParameter(f"--fail-on {text!r}: unknown metric {metric!r}: choose from "
                           f"{', '.join(known)}")
    try:
        threshold = float(number)
    except ValueError:
        raise BadParameter(f"--fail-on {text!r}: {number!r} is not a number") from None
    if threshold != threshold:
        raise BadParameter(f"--fail-on {text!r}: the threshold must be a number, not nan")
    return Condition(text, metric, op, threshold)


def failures(conditions: Sequence[Condition], runs: Sequence[Mapping[str, Any]],
             label: Callable[[Mapping[str, Any]], str]) -> list[str]:
    """One line per condition that holds for some run, naming the runs (at most three)."""
    lines = []
    for cond in conditions:
        hits = [f"{label(r)} seed {r['seed']} ({cond.metric} = {r['metrics'][cond.metric]:g})"
                for r in runs if cond.holds(r["metrics"])]
        if hits:
            more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
            lines.append(f"--fail-on {cond.text!r} holds for {len(hits)} run(s): "
                         f"{'; '.join(hits[:3])}{more}")
    return lines
