#!/usr/bin/env python3
"""Time :func:`workloads.moddata.read_tree` on a directory of kernel modules.

Prints the module count, the wall-clock seconds of each run and modules per second (best run).

The tree is the argument; without one, ``/lib/modules`` if it exists, else Debian's kernel
image package downloaded and unpacked as ``scripts/gen_module_data.py`` does (needs
``apt-get``; not timed). ``--compress xz|gz|zst`` first copies the tree compressed the way
kbuild's ``modules_install`` does (``xz --check=crc32 --lzma2=dict=1MiB``, ``gzip -n``,
``zstd``; not timed), to time the decompressing path as on distributions that ship
``.ko.xz``/``.ko.zst``. The page cache is warm after the first run (``--repeat`` > 1); the
first run's figure after a fresh extraction is also warm, since the files were just written.

Usage::

    python benchmarks/bench_moddata.py [TREE] [--compress xz] [--repeat 3] [--workers N]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import lzma
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType

import zstandard

from framework.workloads import moddata

GENERATOR = Path(__file__).resolve().parent.parent / "scripts" / "gen_module_data.py"
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 20}]


def _generator() -> ModuleType:
    """``scripts/gen_module_data.py`` loaded as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_module_data", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compress_one(job: tuple[Path, Path, str]) -> None:
    """Write ``src`` compressed with ``kind`` to ``dst`` (``dst`` has the new suffix)."""
    src, dst, kind = job
    data = src.read_bytes()
    if kind == "xz":
        packed = lzma.compress(data, check=lzma.CHECK_CRC32, filters=XZ_FILTERS)
    elif kind == "gz":
        packed = gzip.compress(data, mtime=0)
    else:
        packed = zstandard.ZstdCompressor(level=3).compress(data)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(packed)


def compressed_copy(tree: Path, kind: str, out: Path) -> Path:
    """Copy every plain ``.ko`` under ``tree`` to ``out`` as ``.ko.<kind>``; return ``out``."""
    plain = sorted(tree.rglob("*.ko"))
    jobs = [(p, out / p.relative_to(tree).with_name(f"{p.name}.{kind}"), kind) for p in plain]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_compress_one, jobs, chunksize=16))
    return out


def default_tree(workdir: Path) -> tuple[Path, str]:
    """``/lib/modules`` if present, else a freshly unpacked Debian kernel image package."""
    if Path("/lib/modules").is_dir():
        return Path("/lib/modules"), "/lib/modules"
    gen = _generator()
    src = gen.fetch(gen.resolve_package(), workdir)
    return src.tree, f"{src.package} {src.version}"


def time_runs(
    tree: Path, repeat: int, workers: int | None, kallsyms: bool
) -> tuple[int, list[float]]:
    """Module count and wall-clock seconds of ``repeat`` calls of :func:`read_tree`."""
    times, count = [], 0
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        count = len(moddata.read_tree(tree, workers=workers, kallsyms=kallsyms))
        times.append(time.perf_counter() - start)
    return count, times


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", type=Path, help="directory of module files")
    parser.add_argument("--compress", choices=("none", "xz", "gz", "zst"), default="none")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: CPU count")
    parser.add_argument("--no-kallsyms", action="store_true", help="headers only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-moddata-") as tmp:
        tree, label = (args.tree, str(args.tree)) if args.tree else default_tree(Path(tmp))
        if args.compress != "none":
            tree = compressed_copy(tree, args.compress, Path(tmp) / f"compressed-{args.compress}")
            label += f" (recompressed .ko.{args.compress})"
        print(f"tree: {label}; cpus: {os.cpu_count()}; workers: {args.workers or os.cpu_count()}")
        count, times = time_runs(tree, args.repeat, args.workers, not args.no_kallsyms)
    print(f"modules: {count}")
    print("seconds: " + ", ".join(f"{t:.2f}" for t in times))
    print(f"best: {min(times):.2f} s, {count / min(times):.0f} modules/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
