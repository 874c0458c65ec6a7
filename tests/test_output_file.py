"""``bench --output``: never replaces what is not a regular file, checks the directory before
any cell runs, and Ctrl-C keeps every finished run with no traceback or temporary file.

All through the installed command (a subprocess), as a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.test_cli import SMALL, framework_exe, one_line_error, run

BENCH = ("bench", "--plugins", "baseline", "--workloads", "secretmem", *SMALL)


def _runs(path: Path) -> list[dict[str, object]]:
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    assert isinstance(runs, list)
    return runs


def _no_temp(directory: Path) -> None:
    left = [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    assert left == [], left


@pytest.fixture
def null_device(tmp_path: Path) -> Path:
    """A private copy of ``/dev/null`` (char 1:3): a broken implementation under test (or a
    mutant of scripts/mutate.py) may rename a file over it, never over the real one."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    node = tmp_path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return node


def test_device_is_refused_untouched(null_device: Path) -> None:
    """A device stays a device: the old code renamed a JSON file over ``/dev/full``."""
    proc = run(*BENCH, "--output", str(null_device))
    one_line_error(proc, "character device", "regular file")
    assert null_device.is_char_device()
    assert proc.stdout == ""  # refused before any cell ran


def test_fifo_is_refused_untouched(tmp_path: Path) -> None:
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    one_line_error(run(*BENCH, "--output", str(fifo)), "FIFO")
    assert fifo.is_fifo()
    _no_temp(tmp_path)


def test_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        one_line_error(run(*BENCH, "--output", str(path)), "socket")


def test_directory_is_refused(tmp_path: Path) -> None:
    one_line_error(run(*BENCH, "--output", str(tmp_path)), "directory")
    assert tmp_path.is_dir()


def test_symlink_to_device_is_refused(tmp_path: Path, null_device: Path) -> None:
    link = tmp_path / "out.json"
    link.symlink_to(null_device)
    one_line_error(run(*BENCH, "--output", str(link)), "character device", "symlink")
    assert link.is_symlink() and null_device.is_char_device()


def test_symlink_is_written_through(tmp_path: Path) -> None:
    """The link stays a link and its target gets the results (it used to be replaced by a
    regular file, leaving the target stale)."""
    target = tmp_path / "real" / "results.json"
    target.parent.mkdir()
    target.write_text("stale", encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "out.json"
    link.symlink_to(target)
    proc = run(*BENCH, "--output", str(link))
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink()
    assert len(_runs(target)) == 1
    assert target.stat().st_mode & 0o777 == 0o640  # the file keeps its permissions
    _no_temp(tmp_path)
    _no_temp(target.parent)


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "new.json")
    assert run(*BENCH, "--output", str(link)).returncode == 0
    assert link.is_symlink() and len(_runs(tmp_path / "new.json")) == 1


def test_missing_directory_is_one_line_before_any_run(tmp_path: Path) -> None:
    proc = run(*BENCH, "--output", str(tmp_path / "no" / "such" / "r.json"))
    one_line_error(proc, "does not exist", "no/such")
    assert proc.stdout == ""


def test_unwritable_directory_is_one_line_before_any_run() -> None:
    """``/proc`` takes no new files, even for root (a mode-0555 directory would not stop
    root, so it cannot serve as the unwritable directory here)."""
    proc = run(*BENCH, "--output", "/proc/results.json")
    one_line_error(proc, "cannot write in directory", "/proc")
    assert proc.stdout == ""


def test_regular_file_is_replaced_and_no_temp_left(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text("old", encoding="utf-8")
    proc = run(*BENCH, "--seeds", "2", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [r["seed"] for r in _runs(out)] == [1, 2]
    _no_temp(tmp_path)


def _foreground_sigint() -> None:
    """The child gets SIGINT as a terminal's foreground job has it: default action, not
    blocked. A test run started in the background of a non-interactive shell (``cmd &``)
    inherits SIGINT ignored, and a process started with it ignored keeps ignoring it (as
    ``framework`` does, rightly), so without this the child would run all its cells."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_keeps_finished_runs(tmp_path: Path, jobs: str) -> None:
    """SIGINT to the whole process group (what a terminal's Ctrl-C does) once the first run
    is in the file: exit 130, one line on stderr, no traceback, no temporary file, and the
    file holds the runs that finished (at least the one seen, fewer than all), at once."""
    out = tmp_path / "r.json"
    args = [framework_exe(), "bench", "--plugins", "baseline", "--workloads", "secretmem",
            "--set", "machine.mem_gib=4", "--set", "secretmem.processes=3000",
            "--seeds", "12", "--jobs", jobs, "--output", str(out)]
    env = {**os.environ, "FRAMEWORK_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True, preexec_fn=_foreground_sigint)
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert out.exists(), "no run finished"
    os.killpg(proc.pid, signal.SIGINT)
    interrupted = time.monotonic()
    stdout, stderr = proc.communicate(timeout=120)
    # the running cells are stopped, not waited for (each takes seconds)
    took = time.monotonic() - interrupted
    assert took < 10, (took, proc.returncode, stderr)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], stderr
    kept = _runs(out)
    assert 1 <= len(kept) < 12
    assert f"{len(kept)} of 12 runs finished" in lines[0]
    assert "\nsecretmem\n" in stdout  # the finished runs' summary is still printed
    _no_temp(tmp_path)


def test_name_too_long_and_symlink_loop_are_one_line(tmp_path: Path) -> None:
    one_line_error(run(*BENCH, "--output", str(tmp_path / ("x" * 5000))), "File name too long")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    one_line_error(run(*BENCH, "--output", str(tmp_path / "a")), "symbolic links")
