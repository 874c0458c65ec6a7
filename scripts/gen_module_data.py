#!/usr/bin/env python3
"""Regenerate ``workloads/data/modules-debian.csv`` from a Debian x86-64 kernel image package.

Steps: resolve the package (``linux-image-amd64``'s ``linux-image-<abi>-amd64`` dependency, or
``--package``), ``apt-get download`` it into a temporary directory, ``dpkg-deb -x`` it, run
:func:`workloads.moddata.read_tree` on ``lib/modules/<version>/``, write the CSV and the
provenance note ``modules-debian.txt``, and print the package, its version and summary
statistics (all modules and the ``server`` profile).

Needs ``apt-get``, ``apt-cache`` and ``dpkg-deb`` (run ``apt-get update`` first on a fresh
machine). ``--tree DIR`` skips the download and reads an already extracted module tree.

Usage::

    python scripts/gen_module_data.py                 # newest linux-image-amd64 dependency
    python scripts/gen_module_data.py --package linux-image-6.1.0-56-amd64
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np

from framework.workloads import moddata
from framework.workloads.moddata import ModuleSections

DATA_DIR = Path(moddata.__file__).parent / "data"
KIB = 1024


@attrs.frozen(slots=True)
class Extracted:
    """A kernel image package unpacked on disk."""

    package: str
    version: str
    tree: Path  # lib/modules/<kernel version>/


def _run(args: Sequence[str], cwd: Path | None = None) -> str:
    """Run a command, return its standard output; exit with its message if it fails."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def resolve_package(meta: str = "linux-image-amd64") -> str:
    """The ``linux-image-<abi>-amd64`` package that ``meta`` currently depends on."""
    for line in _run(["apt-cache", "depends", meta]).splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    sys.exit(f"apt-cache depends {meta}: no linux-image dependency (run apt-get update?)")


def fetch(package: str, workdir: Path) -> Extracted:
    """``apt-get download`` ``package`` into ``workdir`` and ``dpkg-deb -x`` it there."""
    _run(["apt-get", "download", package], cwd=workdir)
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if not debs:
        sys.exit(f"apt-get download {package}: no .deb in {workdir}")
    deb = debs[0]
    version = _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()
    root = workdir / "root"
    _run(["dpkg-deb", "-x", str(deb), str(root)])
    trees = sorted([*root.glob("lib/modules/*/"), *root.glob("usr/lib/modules/*/")])
    if not trees:
        sys.exit(f"{deb.name}: no lib/modules/<version>/ directory inside")
    return Extracted(package, version, trees[0])


def summary(modules: Sequence[ModuleSections]) -> dict[str, float]:
    """Mean and median (KiB) of text and of core size, in bytes and in whole pages."""
    text = [m.text / KIB for m in modules]
    core = [m.core_bytes / KIB for m in modules]
    core_paged = [m.core_pages * 4 for m in modules]
    init_paged = [m.init_pages * 4 for m in modules]
    return {
        "modules": len(modules),
        "text_mean_kib": statistics.fmean(text),
        "text_median_kib": statistics.median(text),
        "core_mean_kib": statistics.fmean(core),
        "core_median_kib": statistics.median(core),
        "core_pages_mean_kib": statistics.fmean(core_paged),
        "core_pages_median_kib": statistics.median(core_paged),
        "init_pages_mean_kib": statistics.fmean(init_paged),
        "core_total_mib": sum(core_paged) / KIB,
    }


def print_summary(label: str, modules: Sequence[ModuleSections]) -> None:
    """Print :func:`summary` of ``modules`` on one line per figure."""
    print(f"{label}:")
    for key, value in summary(modules).items():
        print(f"  {key:24s} {value:10d}" if key == "modules" else f"  {key:24s} {value:10.1f}")


def write_provenance(path: Path, src: Extracted, count: int, command: str) -> None:
    """Write the small provenance note beside the CSV."""
    path.write_text(
        "# Provenance of modules-debian.csv (section sizes in bytes; see docs/module-data.md)\n"
        f"package: {src.package}\n"
        f"version: {src.version}\n"
        f"kernel: {src.tree.name}\n"
        "architecture: amd64\n"
        f"date: {dt.date.today().isoformat()}\n"
        f"modules: {count}\n"
        f"command: {command}\n",
        encoding="utf-8",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", help="kernel image package (default: linux-image-amd64's)")
    parser.add_argument("--tree", type=Path, help="read this extracted module tree instead")
    parser.add_argument("--out", type=Path, default=DATA_DIR / "modules-debian.csv")
    args = parser.parse_args(argv)
    command = "python scripts/gen_module_data.py " + " ".join(argv or sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="moddata-") as tmp:
        if args.tree:
            src = Extracted("(local tree)", "(unknown)", args.tree)
        else:
            src = fetch(args.package or resolve_package(), Path(tmp))
        modules = moddata.read_tree(src.tree)
    moddata.write_csv(args.out, modules)
    write_provenance(args.out.with_suffix(".txt"), src, len(modules), command.strip())
    print(f"package {src.package} version {src.version} ({src.tree.name}): {len(modules)} modules")
    print(f"wrote {args.out}")
    print_summary("all modules", modules)
    server = moddata.select_profile(modules, "server", 0, np.random.default_rng(0))
    print_summary("server profile", server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
