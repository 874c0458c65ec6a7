"""``framework plot`` writes the promised PNGs; the direct-map picture shows what was split."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.kernel.directmap import MAP_1G, MAP_2M, MAP_4K, MAP_4K_NP, MAP_NP
from tests.test_cli import run

pytest.importorskip("matplotlib")


def test_plot_files(tmp_path: Path) -> None:
    """Two designs on two workloads, one sampled: splits, slowdown, one DirectMap series
    (secretmem sampled) and one zoomed map per workload: six PNGs, not one per metric."""
    res = tmp_path / "r.json"
    proc = run("bench", "--plugins", "baseline,gfp-unmapped", "--workloads", "secretmem,bpf",
               "--set", "machine.mem_gib=4", "--set", "secretmem.processes=6", "--set",
               "secretmem.sample_every=200", "--set", "bpf.apps=10", "--output", str(res))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "plots"
    proc = run("plot", str(res), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in out.iterdir()}
    assert names == {"splits.png", "slowdown.png", "directmap-secretmem.png",
                     "map-secretmem.png", "map-bpf.png"}
    for path in out.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_scale_and_zoom_by_hand() -> None:
    """Values 3 and 60375 span 20125 times (> 100): log; 1 and 90 do not; zeros are
    ignored. A 4 KiB region at GiB 1, region 40 (cell 512 + 40) zooms to row 1 and columns
    40 - 8 .. 40 + 1 + 8."""
    from framework.plot import needs_log, zoom

    assert needs_log([3, 60375, 0]) and not needs_log([1, 90, 0]) and not needs_log([0])
    cells = [MAP_2M] * 1024
    cells[512 + 40] = MAP_4K
    assert zoom([cells, [MAP_2M] * 1024]) == ([1], 32, 49)
    assert zoom([[MAP_1G] * 1024]) == ([0, 1], 0, 512)


def test_region_map_by_hand(tmp_path: Path) -> None:
    """A fresh 4 GiB machine with the default 1 GiB MMIO hole has RAM at GiBs 0-2 and 4 (GiB 3
    relocated above 4 GiB). Its one secretmem page comes from ZONE_NORMAL, the first page of
    GiB 4: PUD 4 and its first PMD split, the page stays non-present (the trace never frees
    it). GiB 0: region 0 is 4K from boot, 1..511 2M; GiBs 1-2: 1G; GiB 3: no entries; GiB 4:
    region 0 4K with a page not present, 1..511 2M. Run-length encoded: [4K,1] [2M,511]
    [1G,1024] [not present,512] [4K-np,1] [2M,511]."""
    trace = tmp_path / "t.csv"
    trace.write_text("op,id,site,size,perm,zero,node,freed_by\n"
                     "alloc,1,secretmem,4096,UNMAPPED,1,,GENERIC\n")
    res = tmp_path / "r.json"
    proc = run("bench", "--plugins", "baseline", "--workloads", "trace", "--set",
               "machine.mem_gib=4", "--set", "machine.state=fresh", "--set",
               f"trace.path={trace}", "--output", str(res))
    assert proc.returncode == 0, proc.stderr
    import json

    runmap = json.loads(res.read_text())["runs"][0]["directmap_map"]
    assert runmap == [[MAP_4K, 1], [MAP_2M, 511], [MAP_1G, 1024], [MAP_NP, 512],
                      [MAP_4K_NP, 1], [MAP_2M, 511]]
