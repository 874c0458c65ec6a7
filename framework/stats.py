"""Statistics over seeds: mean, confidence interval, paired t-test, geometric means.

A cell run with ``--seeds N`` gives N samples of every metric, and every design of a
workload runs on the same N seeds (the same events, the same background load): the samples
of two designs are paired by seed. Tables show the arithmetic mean and a two-sided
Student-t confidence interval; a difference from the reference column is marked significant
when a paired t-test over the seeds both share rejects a zero mean difference at
:data:`ALPHA`. A paired t-test rather than Wilcoxon's signed-rank test: with 5 seeds the
smallest two-sided Wilcoxon p-value is 2/32 = 0.0625, so it could never reach 0.05. Columns
that share fewer than two seeds (``framework compare`` of files run on other seeds) fall back
to Welch's unequal-variance t-test. Zero variance is never significance: when the paired
differences (or, for Welch, both samples) do not vary, nothing is marked. With one seed
nothing is marked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

ALPHA = 0.05
TEST_NAME = ("a paired t-test over the seeds both columns share (Welch's t-test when they "
             "share fewer than two); no variance, no mark")
CONFIDENCE = 0.95


@attrs.frozen(slots=True)
class Summary:
    """Mean, sample standard deviation, CI half-width and sample count of one metric."""

    mean: float
    stddev: float
    ci: float
    n: int


def summarize(values: Sequence[float]) -> Summary:
    """Summarise samples; the CI half-width is 0 with fewer than two samples."""
    n = len(values)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = math.fsum(values) / n
    if n < 2:
        return Summary(mean, 0.0, 0.0, n)
    from scipy.special import stdtrit  # Student t quantile; imported on first use

    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    sd = math.sqrt(var)
    half = float(stdtrit(n - 1, 0.5 + CONFIDENCE / 2)) * sd / math.sqrt(n)
    return Summary(mean, sd, half, n)


def welch_significant(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> bool:
    """Welch's t-test: do ``a`` and ``b`` have different means at level ``alpha``?

    Needs at least two samples on each side; zero variance on both sides is not significant
    (there is no spread to test against).
    """
    if len(a) < 2 or len(b) < 2:
        return False
    sa, sb = summarize(a), summarize(b)
    if sa.stddev == 0 and sb.stddev == 0:
        return False
    return welch_p(sa, sb) < alpha


def paired_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of the paired t-test of ``a[i]`` against ``b[i]``.

    t = mean(d) / (s_d / sqrt(n)) over the differences d = a - b, n - 1 degrees of freedom
    (scipy.stats.ttest_rel). None with fewer than two pairs or when the differences do not
    vary (t is undefined: zero variance is not significance).
    """
    from scipy.special import stdtr

    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = summarize([x - y for x, y in zip(a, b, strict=True)])
    if diffs.n < 2 or diffs.stddev == 0:
        return None
    t = diffs.mean / (diffs.stddev / math.sqrt(diffs.n))
    return float(2 * stdtr(diffs.n - 1, -abs(t)))


def paired_significant(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> bool:
    """Does the paired t-test reject a zero mean difference at ``alpha``?"""
    p = paired_p(a, b)
    return p is not None and p < alpha


def seed_significant(a: dict[int, float], b: dict[int, float], alpha: float = ALPHA) -> bool:
    """Samples keyed by seed: paired over the shared seeds when there are two or more,
    else Welch's t-test over all samples."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        return paired_significant([a[s] for s in shared], [b[s] for s in shared], alpha)
    return welch_significant(list(a.values()), list(b.values()), alpha)


def welch_p(a: Summary, b: Summary) -> float:
    """Two-sided p-value of Welch's t-test from two summaries (n >= 2 each).

    t = (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b), with the Welch-Satterthwaite degrees
    of freedom; the Student t CDF is scipy's ``stdtr``.
    """
    from scipy.special import stdtr

    va, vb = a.stddev ** 2 / a.n, b.stddev ** 2 / b.n
    se = math.sqrt(va + vb)
    if se == 0:
        return 1.0 if a.mean == b.mean else 0.0
    t = (a.mean - b.mean) / se
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    return float(2 * stdtr(df, -abs(t)))


def pct_better(value: float, ref: float, lower_is_better: bool) -> float | None:
    """Percent change from ``ref`` where positive always means better (mmtests' pdiff/pndiff).

    None when ``ref`` is 0 and ``value`` is not (no ratio exists).
    """
    if ref == 0:
        return 0.0 if value == 0 else None
    change = (value - ref) / abs(ref) * 100.0
    return (-change if lower_is_better else change) + 0.0  # + 0.0: no "-0.00%"


def ratio_better(value: float, ref: float, lower_is_better: bool) -> float | None:
    """``value / ref`` turned so that above 1 is better; None when either is not positive."""
    if value <= 0 or ref <= 0:
        return None
    return ref / value if lower_is_better else value / ref


def gmean(values: Sequence[float]) -> float | None:
    """Geometric mean of positive values; None for none."""
    if not values:
        return None
    return math.exp(math.fsum(math.log(v) for v in values) / len(values))


def summary_ratio(value: float, ref: float, lower_is_better: bool, unit: str) -> float | None:
    """One row's ratio for the summary row, turned so that above 1 is better; zeros count.

    A percentage (a slowdown) compares run times, ``(100 + ref) / (100 + value)``; any other
    metric compares ``value + 1`` with ``ref + 1``, so a count that goes from 0 to 10958
    weighs as much as one that goes from 10958 to 0, inversely. None only where the shifted
    values are not positive (a slowdown of -100% or less, a negative count).
    """
    shift = 100.0 if unit == "%" else 1.0
    a, b = value + shift, ref + shift
    if a <= 0 or b <= 0:
        return None
    return b / a if lower_is_better else a / b


def rank_scores(scores: Sequence[float | None], violations: Sequence[float]
                ) -> tuple[float | None, ...]:
    """Scores with the rule that a column with violations never scores above a clean one.

    A column whose mean ``violations`` is above 0 gets ``min(its score, the lowest clean
    column's score)``; with no clean column the scores stay as they are.
    """
    clean = [s for s, v in zip(scores, violations, strict=True) if v == 0 and s is not None]
    if not clean:
        return tuple(scores)
    floor = min(clean)
    return tuple(s if v == 0 or s is None else min(s, floor)
                 for s, v in zip(scores, violations, strict=True))
