"""``--stats`` tables: a design's own counters laid out as its debugfs file prints them."""

from __future__ import annotations

from framework.plugin_stats import stats_text
from tests.test_cli import SMALL, run


def test_debugfs_columns_and_scalars() -> None:
    """Same-length lists become columns with Order first (v3's debugfs Order / Free / Cached
    / Released); a dict of dicts is a row per key; scalars go on one line."""
    stats = {"Cached": [0, 3], "Free": [1, 0], "Order": [0, 1], "Released": [0, 2],
             "refills": 3, "classes": {"16": {"objects": 4, "slabs": 1}}}
    text = stats_text(stats, "plain")
    assert text.splitlines()[:3] == ["  Order    Cached    Free    Released",
                                     "      0         0       1           0",
                                     "      1         3       0           2"]
    assert "classes:\n  classes    objects    slabs\n       16          4        1" in text
    assert text.endswith("refills 3")


def test_cli_stats_prints_the_debugfs_table() -> None:
    proc = run("bench", "--plugins", "gfp-unmapped", "--workloads", "secretmem", *SMALL,
               "--stats")
    assert proc.returncode == 0, proc.stderr
    assert "gfp-unmapped stats on secretmem (seed 1):\n  Order    Free    Cached    Released\n" \
        in proc.stdout
    assert "{" not in proc.stdout  # no raw JSON
