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
    """The summary opens the output; --full adds the per-workload table after its legend,
    rows labelled by metric and unit alone (no "Value " prefix)."""
    proc = run("bench", "--plugins", "baseline", "--workloads", "secretmem", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Summary:")
    assert "Legend:" not in proc.stdout and "--full" in proc.stdout
    full = run("bench", "--plugins", "baseline", "--workloads", "secretmem", *SMALL, "--full")
    assert full.stdout.startswith(proc.stdout.split("Every metric")[0])
    legend_at = full.stdout.index("Legend:")
    table = full.stdout[legend_at:].split("\n\n")[1].splitlines()
    assert table[0].split() == ["secretmem", "baseline"]
    assert any(line.startswith("DirectMap4k (kB)") for line in table)
    assert "Value " not in full.stdout


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
    assert "\nsecretmem\n  baseline " in proc.stdout, "secretmem results must still be printed"


def test_trace_replay(tmp_path: Path) -> None:
    trace = tmp_path / "ok.csv"
    trace.write_text("op,id,site,size,perm,zero,node,freed_by\n"
                     "alloc,1,secretmem,4096,UNMAPPED,1,,GENERIC\n"
                     "write,1,,,,,,\n"
                     "pressure,,,64,,,,\n"
                     "sample,,,,,,,\n"
                     "free,1,,,,,,\n")
    proc = run("bench", "--plugins", "baseline", "--workloads", "trace", "--format", "json",
               "--set", "machine.mem_gib=4", "--set", "machine.state=fresh",
               "--set", f"trace.path={trace}")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)["runs"][0]["metrics"]
    assert metrics["direct_map_level2_splits"] == 1
    assert metrics["events"] == 5


def test_output_file_written(tmp_path: Path) -> None:
    """The finished --output file is what --format json prints: the runs and the
    ``comparison`` records docs/sweeps.md promises."""
    out = tmp_path / "r.json"
    args = ("bench", "--plugins", "baseline,unmapped-api", "--workloads", "secretmem", *SMALL)
    proc = run(*args, "--output", str(out))
    assert proc.returncode == 0
    doc = json.loads(out.read_text())
    assert doc["runs"][0]["workload"] == "secretmem"
    assert {r["column"] for r in doc["comparison"]} == {"baseline", "unmapped-api"}
    assert out.read_text() == run(*args, "--format", "json").stdout


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
    """The ten built-in designs run; the status quo is the reference column."""
    proc = run("bench", "--plugins", "all", "--workloads", "secretmem", *SMALL,
               "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    columns = [line.split(",")[3] for line in proc.stdout.splitlines()[1:]]
    assert list(dict.fromkeys(columns)) == [
        "baseline", "gfp-unmapped", "unmapped-api", "migratetype", "jit-slab", "vmap-area",
        "execmem-rox", "grouped-pages", "secretmem-pmd", "guest-memfd"]
    summary = run("bench", "--plugins", "all", "--workloads", "secretmem", *SMALL)
    rows = summary.stdout.split("\nsecretmem\n")[1].splitlines()
    assert rows[0].split()[0].rstrip(",") == "baseline"


def test_version() -> None:
    """The version, then which core runs (tests/test_compiled.py checks which one)."""
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "framework 0.1.0"
    assert proc.stdout.splitlines()[1] in ("core: compiled (mypyc)", "core: pure Python")


def test_fail_on_exits_1_after_printing_everything(tmp_path: Path) -> None:
    """The posted v3 gfp-unmapped breaks promises on secretmem (docs/checks.md), the
    baseline does not: `--fail-on violations` exits 1, the table is still printed and the
    --output file written; a threshold nothing meets (IPIs above 1e12) leaves exit 0."""
    out = tmp_path / "r.json"
    args = ("bench", "--plugins", "baseline,gfp-unmapped", "--workloads", "secretmem", *SMALL,
            "--output", str(out))
    proc = run(*args, "--fail-on", "tlb_ipis>1e12", "--fail-on", "violations")
    assert proc.returncode == 1, proc.stderr
    assert "\nsecretmem\n  baseline " in proc.stdout and out.exists()
    (line,) = proc.stderr.strip().splitlines()
    assert "'violations' holds for 1 run(s): gfp-unmapped/secretmem seed 1" in line
    assert run(*args, "--fail-on", "tlb_ipis >= 1e12").returncode == 0
    again = run("compare", str(out), str(out), "--fail-on", "violations!=0")
    assert again.returncode == 1 and "2 run(s)" in again.stderr


@pytest.mark.parametrize(("spec", "needle"), [
    ("est_slowdown_pct=>1", "expected 'violations' or METRIC OP NUMBER"),
    ("nosuch>1", "unknown metric 'nosuch'"),
    ("tlb_ipis>lots", "'lots' is not a number"),
])
def test_fail_on_bad_expression_one_line(spec: str, needle: str) -> None:
    one_line_error(run("bench", "--fail-on", spec), spec, needle)


def test_list_metrics_and_docs_describe_every_metric() -> None:
    """One source: `framework list --metrics` names every metric with its unit and kernel
    counterpart, and docs/metrics.md carries the generated table verbatim."""
    from framework.listing import metrics_markdown
    from framework.metric_defs import METRICS

    proc = run("list", "--metrics")
    assert proc.returncode == 0, proc.stderr
    for m in METRICS:
        assert f"  {m.name} ({m.unit}, {m.kind.name.lower()})\n" in proc.stdout
        assert m.definition and m.kernel
    assert "kernel: /proc/vmstat nr_tlb_remote_flush_received" in proc.stdout
    doc = (Path(__file__).parent.parent / "docs" / "metrics.md").read_text()
    assert metrics_markdown() in doc, "regenerate the table in docs/metrics.md"
    for m in METRICS:
        assert f"| `{m.name}` " in doc


def test_docs_have_a_section_per_workload() -> None:
    """docs/workloads.md has a `## NAME` section for every built-in workload, and the trace
    section shows the CSV header."""
    from framework.plugins import get_registry

    doc = (Path(__file__).parent.parent / "docs" / "workloads.md").read_text()
    for name in get_registry().workloads:
        assert f"\n## {name}\n" in doc, name
    trace = doc.split("\n## trace\n")[1].split("\n## ")[0]
    assert "op,id,site,size,perm,zero,node,freed_by" in trace


def test_readme_new_plugin_before_check_plugin() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for line in readme.splitlines():
        if "new-plugin" in line and "check-plugin" in line:
            assert line.index("new-plugin") < line.index("check-plugin"), line


COMMAND_PLUGIN = '''
import click
from framework.hookspecs import hookimpl

@click.command("hello-cmd")
@click.argument("who")
def hello(who):
    """Greet WHO (a test plugin's command)."""
    click.echo(f"hello {who}")

@hookimpl
def register_commands(register):
    register(hello)
'''
BROKEN_COMMAND_PLUGIN = '''
from framework.hookspecs import hookimpl

@hookimpl
def register_commands(register):
    raise RuntimeError("no commands today")
'''


def _install(site: Path, module: str, text: str) -> None:
    """A module and a .dist-info naming it as a ``framework`` entry point, as pip would."""
    (site / f"{module}.py").write_text(text, encoding="utf-8")
    info = site / f"{module}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\n"
                                   "Version: 1.2\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[framework]\n{module} = {module}\n",
                                           encoding="utf-8")


def test_plugin_command_through_register_commands(tmp_path: Path) -> None:
    """An installed package's command shows in --help, runs, and is listed with its
    package; a package whose register_commands raises is listed as failed, nothing else."""
    _install(tmp_path, "cmd_plugin", COMMAND_PLUGIN)
    _install(tmp_path, "broken_cmd_plugin", BROKEN_COMMAND_PLUGIN)
    env = {"PYTHONPATH": str(tmp_path), "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": ""}
    helped = run("--help", env=env)
    assert helped.returncode == 0, helped.stderr
    assert any(line.split()[:1] == ["hello-cmd"] and "Greet WHO" in line
               for line in helped.stdout.splitlines()), helped.stdout
    assert "check-plugin" in helped.stdout and "bench" in helped.stdout
    said = run("hello-cmd", "reviewer", env=env)
    assert (said.returncode, said.stdout) == (0, "hello reviewer\n"), said.stderr
    listing = run("list", env=env)
    assert "framework hello-cmd [cmd-plugin 1.2]: Greet WHO" in listing.stdout
    assert "broken_cmd_plugin: RuntimeError: no commands today" in listing.stdout
    off = run("--help", env={**env, "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "hello-cmd" not in off.stdout and "check-plugin" in off.stdout


def test_core_commands_are_the_clis_own() -> None:
    """framework.plugins.CORE_COMMANDS (names no plugin may take) are exactly the commands
    framework/cli.py defines itself; the rest come through register_commands. Run in a
    child process, as the other CLI tests are."""
    code = ("from framework.cli import cli; from framework.plugins import CORE_COMMANDS; "
            "print(sorted(cli.commands) == sorted(CORE_COMMANDS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "True"
