"""The installed ``framework`` command, run as a user runs it (subprocess).

Bad input must give exit code 2 and exactly one line on stderr naming the bad value, and
results of the runs that did work must still be printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = ["--set", "machine.mem_gib=4", "--set", "secretmem.processes=8"]


def framework_exe() -> str:
    beside = Path(sys.executable).parent / "framework"
    exe = str(beside) if beside.exists() else shutil.which("framework")
    assert exe, "the framework console script is not installed"
    return exe


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})}
    return subprocess.run([framework_exe(), *args], capture_output=True, text=True,
                          env=full_env, timeout=300, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bench_plain_table() -> None:
    proc = run("bench", "--plugins", "baseline", "--workloads", "secretmem", *SMALL)
    assert proc.returncode == 0, proc.stderr
    head = proc.stdout.splitlines()[0].split()
    assert head == ["secretmem", "baseline"]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("Value DirectMap4k (kB)") and "(  0.00%)" in line
               for line in lines)
    assert "Legend:" in proc.stdout


def test_json_is_deterministic() -> None:
    args = ("bench", "--plugins", "baseline", "--workloads", "secretmem,modules", "--format",
            "json", *SMALL, "--set", "modules.reloads=5")
    first, second = run(*args), run(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    doc = json.loads(first.stdout)
    assert doc["schema"] == "framework.results/1"
    run0 = doc["runs"][0]
    for key in ("plugin", "workload", "machine", "seed", "params", "metrics", "violations",
                "framework_version"):
        assert key in run0
    assert run0["params"]["machine"]["mem_gib"] == 4


def test_different_seed_differs() -> None:
    a = run("bench", "--plugins", "baseline", "--workloads", "secretmem", "--format", "json",
            *SMALL, "--seed", "1")
    b = run("bench", "--plugins", "baseline", "--workloads", "secretmem", "--format", "json",
            *SMALL, "--seed", "2")
    assert json.loads(a.stdout)["runs"][0]["metrics"] != json.loads(b.stdout)["runs"][0]["metrics"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--plugins", "nosuch"), ("nosuch", "baseline")),
        (("--workloads", "nosuch"), ("nosuch", "secretmem")),
        (("--machine", "nosuch"), ("nosuch", "huge-4t")),
        (("--set", "machine.mem_gib"), ("machine.mem_gib", "SCOPE.KEY=VALUE")),
        (("--set", "machine.mem_gib=lots"), ("lots", "integer")),
        (("--set", "machine.mem_gib=0"), ("mem_gib=0", "from 1 to")),
        (("--set", "machine.tlb=pentium"), ("pentium", "sapphire-rapids")),
        (("--set", "secretmem.nosuch=1"), ("secretmem.nosuch", "processes")),
        (("--set", "nosuch.x=1"), ("nosuch", "machine")),
        (("--set", "costs.nosuch=1"), ("costs.nosuch", "zero_page")),
        (("--set", "costs.invlpg=-5"), ("costs.invlpg", ">= 0")),
        (("--format", "yaml"), ("yaml", "plain")),
        (("--seeds", "0"), ("0",)),
        (("--metrics", "nosuch"), ("nosuch", "DirectMap4k")),
    ],
)
def test_bad_input_one_line_exit_2(args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    one_line_error(run("bench", *args), *needles)


def test_bad_trace_row_names_line_and_keeps_other_results(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("op,id,site,size,perm,zero,node,freed_by\n"
                     "alloc,1,secretmem,4096,UNMAPPED,1,,GENERIC\n"
                     "free,2,,,,,,\n")
    proc = run("bench", "--plugins", "baseline", "--workloads", "secretmem,trace", *SMALL,
               "--set", f"trace.path={trace}")
    one_line_error(proc, "t.csv:3", "id 2", "not live")
    assert proc.stdout.startswith("secretmem"), "secretmem results must still be printed"


def test_trace_replay(tmp_path: Path) -> None:
    trace = tmp_path / "ok.csv"
    trace.write_text("op,id,site,size,perm,zero,node,freed_by\n"
                     "alloc,1,secretmem,4096,UNMAPPED,1,,GENERIC\n"
                     "write,1,,,,,,\n"
                     "pressure,,,64,,,,\n"
                     "sample,,,,,,,\n"
                     "free,1,,,,,,\n")
    proc = run("bench", "--plugins", "baseline", "--workloads", "trace", "--format", "json",
               "--set", "machine.mem_gib=4", "--set", f"trace.path={trace}")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["runs"][0]["metrics"]
    assert metrics["direct_map_level2_splits"] == 1
    assert metrics["events"] == 5


def test_output_file_written(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = run("bench", "--plugins", "baseline", "--workloads", "secretmem", *SMALL,
               "--output", str(out))
    assert proc.returncode == 0
    assert json.loads(out.read_text())["runs"][0]["workload"] == "secretmem"


def test_list_and_costs() -> None:
    proc = run("list")
    assert proc.returncode == 0
    for name in ("baseline", "secretmem", "modules", "trace", "huge-4t", "machine.mem_gib"):
        assert name in proc.stdout
    costs = run("list", "--costs")
    assert "zero_page" in costs.stdout and "Molnar" in costs.stdout


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the two third-party test packages (one broken) into a private site dir."""
    site = tmp_path_factory.mktemp("site")
    for pkg in ("framework_example_plugin", "framework_broken_plugin"):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(site),
                        str(FIXTURES / pkg)], check=True, capture_output=True, timeout=300)
    return site


def test_third_party_plugin_found_and_broken_one_listed(plugin_site: Path) -> None:
    env = {"PYTHONPATH": str(plugin_site), "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": ""}
    listing = run("list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "example-passthrough [framework-example-plugin 0.0.1]" in listing.stdout
    assert "Failed plugins:" in listing.stdout
    assert "broken: ImportError" in listing.stdout
    bench = run("bench", "--plugins", "baseline,example-passthrough", "--workloads",
                "secretmem", "--format", "json", *SMALL, env=env)
    assert bench.returncode == 0, bench.stderr
    runs = json.loads(bench.stdout)["runs"]
    assert [r["plugin"] for r in runs] == ["baseline", "example-passthrough"]
    assert runs[0]["metrics"] == runs[1]["metrics"]


def test_import_error_is_reported_as_such(plugin_site: Path) -> None:
    """The fixture package's entry point ``broken`` raises ImportError on import."""
    env = {"PYTHONPATH": str(plugin_site), "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": ""}
    for args in (("check-plugin", "broken"),
                 ("bench", "--plugins", "baseline,broken", "--workloads", "secretmem")):
        proc = run(*args, env=env)
        one_line_error(proc, "plugin 'broken' failed to load: ImportError: "
                             "framework_broken_plugin needs a module")
        assert "unknown" not in proc.stderr


def test_autoload_off_hides_third_party(plugin_site: Path) -> None:
    env = {"PYTHONPATH": str(plugin_site), "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    listing = run("list", env=env)
    assert "example-passthrough" not in listing.stdout
    assert "broken" not in listing.stdout


def test_all_plugins_baseline_first() -> None:
    """The six built-in designs run; the status quo is the reference column."""
    proc = run("bench", "--plugins", "all", "--workloads", "secretmem", *SMALL)
    assert proc.returncode == 0, proc.stderr
    head = proc.stdout.splitlines()[0].split()
    assert head == ["secretmem", "baseline", "gfp-unmapped", "unmapped-api", "migratetype",
                    "jit-slab", "vmap-area"]
