"""``--fail-on`` conditions, parsed and evaluated on hand-made metrics."""

from __future__ import annotations

import pytest

from framework.errors import BadParameter
from framework.failon import failures, parse_condition

KNOWN = ["violations", "est_slowdown_pct", "tlb_ipis"]


@pytest.mark.parametrize(("text", "value", "holds"), [
    ("violations", 0, False), ("violations", 1, True),
    ("est_slowdown_pct>1", 1.0, False), ("est_slowdown_pct>=1", 1.0, True),
    ("est_slowdown_pct < 1", 0.5, True), ("est_slowdown_pct<=0.5", 0.5, True),
    ("tlb_ipis==1e3", 1000, True), ("tlb_ipis!=1e3", 1000, False),
])
def test_operators(text: str, value: float, holds: bool) -> None:
    metric = "violations" if text == "violations" else text.split()[0].rstrip("<>=!0123456789.e")
    cond = parse_condition(text, KNOWN)
    assert cond.holds({metric: value}) is holds


def test_missing_metric_never_holds_and_runs_are_named() -> None:
    cond = parse_condition("tlb_ipis>10", KNOWN)
    assert not cond.holds({})
    runs = [{"seed": s, "metrics": {"tlb_ipis": 5 * s}} for s in range(1, 7)]
    (line,) = failures([cond], runs, lambda r: "d/w")
    assert line.startswith("--fail-on 'tlb_ipis>10' holds for 4 run(s): d/w seed 3 "
                           "(tlb_ipis = 15); d/w seed 4")
    assert line.endswith("and 1 more")


@pytest.mark.parametrize("text", ["", "tlb_ipis", "tlb_ipis>", "1>tlb_ipis", "tlb_ipis>nan",
                                  "other>1", "tlb_ipis=1"])
def test_bad_conditions(text: str) -> None:
    with pytest.raises(BadParameter, match="--fail-on"):
        parse_condition(text, KNOWN)
