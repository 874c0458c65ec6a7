"""Tests of :mod:`framework.workloads.moddata`: module layout, file formats, CSV, profiles,
shipped data."""

from __future__ import annotations

import csv
import gzip
import lzma
import statistics
import struct
from pathlib import Path

import numpy as np
import pytest
import zstandard
from elfwriter import (
    AX,
    SHF_INFO_LINK,
    SHF_MERGE,
    SHF_STRINGS,
    SHT_NOBITS,
    SHT_RELA,
    WA,
    A,
    Sec,
    Sym,
    build_elf,
    section_header_offset,
)

from framework.errors import BadParameter, InputError
from framework.workloads import moddata
from framework.workloads.moddata import ModuleSections, read_csv, read_ko, read_tree, write_csv

PAGE = 4096

SECTIONS = [
    Sec(".text", AX, 16, 5000),  # 1
    Sec(".init.text", AX, 1, 50),  # 2
    Sec(".rodata.str1.1", A | SHF_MERGE | SHF_STRINGS, 1, 7),  # 3
    Sec(".rodata.aligned", A, 64, 8),  # 4
    Sec(".data", WA, 8, 40),  # 5
    Sec(".data..ro_after_init", WA, 8, 16),  # 6
    Sec("__jump_table", WA, 8, 32),  # 7
    Sec(".bss", WA, 32, 100, SHT_NOBITS),  # 8
    Sec(".modinfo", A, 1, 30),  # 9
    Sec("__versions", A, 32, 64),  # 10
    Sec(".data..percpu", WA, 8, 8),  # 11
    Sec(".gnu.linkonce.this_module", WA, 64, 896),  # 12
    Sec(".init.data", WA, 16, 20),  # 13
    Sec(".init.rodata", A, 8, 12),  # 14
    Sec(".exit.text", AX, 1, 5),  # 15
    Sec(".comment", SHF_MERGE | SHF_STRINGS, 1, 10),  # 16
    Sec(".rela.text", SHF_INFO_LINK, 8, 24, SHT_RELA),  # 17
]
SYMBOLS = [
    Sym("mod.c", "ABS", 4),
    Sym("my_func", ".text", 2),
    Sym("my_init", ".init.text", 2),
    Sym("my_data", ".data"),
    Sym("pcpu_var", ".data..percpu"),
    Sym("modinfo_sym", ".modinfo"),
    Sym("undef_sym", "UNDEF"),
    Sym("bss_var", ".bss"),
]

# Derived by hand in test_layout_by_hand's docstring.
EXPECTED = ModuleSections("snd_demo", 5005, 72, 48, 4255, 50, 12, 4425)
EXPECTED_NO_KALLSYMS = ModuleSections("snd_demo", 5005, 72, 48, 1088, 50, 12, 20)


@pytest.fixture
def elf() -> bytes:
    return build_elf(SECTIONS, SYMBOLS)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _compress(kind: str, data: bytes) -> bytes:
    if kind == "xz":
        return lzma.compress(data, check=lzma.CHECK_CRC32)
    if kind == "gz":
        return gzip.compress(data)
    return zstandard.ZstdCompressor().compress(data)


def test_layout_by_hand(tmp_path: Path, elf: bytes) -> None:
    """Every rule of v6.3 layout_sections()/layout_symtab() on one hand-made module.

    Core (sections in index order within each mask pass; each group starts page-aligned):

    - text: .text [0, 5000), .exit.text stays core (module unload is on) [5000, 5005) -> 5005.
      .init.text goes to init.
    - rodata: .rodata.str1.1 [0, 7), .rodata.aligned aligned to 64: [64, 72) -> 72.
      .modinfo and __versions lose SHF_ALLOC, so they are not laid out.
    - ro_after_init: .data..ro_after_init [0, 16), __jump_table [16, 48) -> 48.
    - data: .data [0, 40), .bss aligned to 32: [64, 164), .data..percpu goes to the per-cpu
      area, .gnu.linkonce.this_module aligned to 64: [192, 1088) -> 1088 without kallsyms.
      layout_symtab() then appends, after PAGE_ALIGN(1088) = 4096, the core symbols: symbol 0,
      my_func, my_data, pcpu_var (per-cpu symbols are kept), bss_var = 5 symbols (mod.c is
      SHN_ABS, my_init is init, modinfo_sym's section is no longer SHF_ALLOC, undef_sym is
      undefined): 5 * 24 + (1 + 8 + 8 + 9 + 8) names + 5 type bytes = 159 -> 4096 + 159 = 4255.

    Init:

    - init_text: .init.text [0, 50) -> 50; init_rodata: .init.rodata -> 12.
    - init_data: .init.data [0, 20) -> 20 without kallsyms. With it, from the page after it
      (relative offset 4096): .symtab 9 * 24 = 216 (aligned 8), .strtab 1 + 6 + 8 + 8 + 8 + 9
      + 12 + 10 + 8 = 70, align to 8 (4382 -> 4384), struct mod_kallsyms 32, 9 type bytes
      -> 4096 + 216 + 70 + 2 + 32 + 9 = 4425.
    """
    path = _write(tmp_path / "snd-demo.ko", elf)
    assert read_ko(path) == EXPECTED
    assert read_ko(path, kallsyms=False) == EXPECTED_NO_KALLSYMS


def test_pages_and_bytes() -> None:
    """Groups round up separately: 5005 -> 2 pages, 72 -> 1, 48 -> 1, 4255 -> 2 (= 6)."""
    assert EXPECTED.core_pages == 2 + 1 + 1 + 2
    assert EXPECTED.init_pages == 1 + 1 + 2
    assert EXPECTED.core_bytes == 5005 + 72 + 48 + 4255
    assert EXPECTED.init_bytes == 50 + 12 + 4425
    assert ModuleSections("empty", 0, 0, 0, 0, 0, 0, 0).core_pages == 0
    assert ModuleSections("x", PAGE, PAGE + 1, 1, 0, 0, 0, 0).core_pages == 1 + 2 + 1


def test_minimal_module_has_empty_groups(tmp_path: Path) -> None:
    """Only .text and struct module: the read-only and init groups are empty (0 pages).

    init_data is the kallsyms part alone: symtab 2 * 24 = 48, strtab 1 + 2 = 3, align 8 ->
    56, + 32 + 2 type bytes = 90. Core data: 896 -> page, + 2 symbols (0 and "f") 48 + 3 + 2.
    """
    sections = [Sec(".text", AX, 16, 10), Sec(".gnu.linkonce.this_module", WA, 64, 896)]
    path = _write(tmp_path / "tiny.ko", build_elf(sections, [Sym("f", ".text", 2)]))
    assert read_ko(path) == ModuleSections("tiny", 10, 0, 0, PAGE + 53, 0, 0, 90)


@pytest.mark.parametrize("kind", ["xz", "gz", "zst"])
def test_compressed_modules_read_the_same(tmp_path: Path, elf: bytes, kind: str) -> None:
    path = _write(tmp_path / f"snd-demo.ko.{kind}", _compress(kind, elf))
    assert read_ko(path) == EXPECTED


def _assert_input_error(path: Path, *words: str) -> None:
    with pytest.raises(InputError) as info:
        read_ko(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def test_bad_files_raise_input_error(tmp_path: Path, elf: bytes) -> None:
    rng = np.random.default_rng(7)
    bad = {
        "empty.ko": (b"", "truncated"),
        "garbage.ko": (rng.bytes(4096), "not an ELF"),
        "half.ko": (elf[: len(elf) // 2], "truncated"),
        "elf32.ko": (build_elf(SECTIONS, SYMBOLS, elf_class=1), "ELFCLASS64"),
        "bigendian.ko": (
            build_elf(SECTIONS, SYMBOLS, endian=">", data_encoding=2),
            "little-endian",
        ),
        "exec.ko": (build_elf(SECTIONS, SYMBOLS, e_type=2), "ET_REL"),
        "arm64.ko": (build_elf(SECTIONS, SYMBOLS, machine=183), "x86-64"),
        "shoff.ko": (_patch(elf, 0x28, "<Q", 1 << 40), "section header table"),
        "section.ko": (_patch(elf, section_header_offset(elf, 1) + 24, "<Q", 1 << 30), "'.text'"),
        "stripped.ko": (build_elf(SECTIONS[:1]), "no .gnu.linkonce.this_module"),
    }
    for name, (data, word) in bad.items():
        _assert_input_error(_write(tmp_path / name, data), word)


@pytest.mark.parametrize("kind", ["xz", "gz", "zst"])
def test_corrupt_compression_raises_input_error(tmp_path: Path, elf: bytes, kind: str) -> None:
    garbage = _write(tmp_path / f"garbage.ko.{kind}", b"\x00not compressed at all" * 50)
    _assert_input_error(garbage)
    packed = _compress(kind, elf)
    cut = _write(tmp_path / f"cut.ko.{kind}", packed[: len(packed) // 2])
    _assert_input_error(cut)
    not_elf = _write(tmp_path / f"text.ko.{kind}", _compress(kind, b"hello world" * 100))
    _assert_input_error(not_elf, "not an ELF")


def test_read_tree_recurses_and_sorts(tmp_path: Path, elf: bytes) -> None:
    _write(tmp_path / "kernel/sound/snd-demo.ko.xz", _compress("xz", elf))
    _write(tmp_path / "kernel/fs/a-first.ko", elf)
    _write(tmp_path / "kernel/zz.ko.zst", _compress("zst", elf))
    _write(tmp_path / "kernel/b.ko.gz", _compress("gz", elf))
    _write(tmp_path / "modules.order", b"kernel/fs/a-first.ko\n")
    _write(tmp_path / "kernel/readme.txt", b"not a module")
    modules = read_tree(tmp_path)
    assert [m.name for m in modules] == ["a_first", "b", "snd_demo", "zz"]
    assert all(m == ModuleSections(m.name, *EXPECTED.as_row()[1:]) for m in modules)
    assert read_tree(tmp_path, workers=1) == modules


def test_read_tree_errors(tmp_path: Path, elf: bytes) -> None:
    with pytest.raises(InputError, match="no module files"):
        read_tree(tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        read_tree(tmp_path / "missing")
    _write(tmp_path / "good.ko", elf)
    bad = _write(tmp_path / "sub/bad.ko", b"junk")
    with pytest.raises(InputError, match=str(bad)):
        read_tree(tmp_path)


def test_csv_round_trip(tmp_path: Path) -> None:
    modules = [EXPECTED, ModuleSections("a", 1, 2, 3, 4, 5, 6, 7)]
    path = tmp_path / "m.csv"
    write_csv(path, modules)
    assert path.read_text().splitlines()[0] == (
        "module,text,rodata,ro_after_init,data,init_text,init_rodata,init_data"
    )
    assert read_csv(path) == modules


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("m,1,2,3,-4,5,6,7", ["data", "'-4'"]),
        ("m,1,2.5,3,4,5,6,7", ["rodata", "'2.5'"]),
        ("m,1,2,3,4,5,6,", ["init_data", "''"]),
        ("m,1,2,3,4,5,6", ["7 fields"]),
        (",1,2,3,4,5,6,7", ["module name"]),
    ],
)
def test_csv_bad_rows_name_the_line(tmp_path: Path, row: str, words: list[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(",".join(moddata.CSV_HEADER) + "\nok,1,2,3,4,5,6,7\n" + row + "\n")
    with pytest.raises(InputError) as info:
        read_csv(path)
    assert f"{path}:3:" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_csv_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,text\n")
    with pytest.raises(InputError, match=":1: header"):
        read_csv(path)


def test_load_source(tmp_path: Path, elf: bytes) -> None:
    _write(tmp_path / "tree/snd-demo.ko", elf)
    assert moddata.load_source(str(tmp_path / "tree")) == [EXPECTED]
    write_csv(tmp_path / "m.csv", [EXPECTED])
    assert moddata.load_source(str(tmp_path / "m.csv")) == [EXPECTED]
    assert len(moddata.load_source("debian")) > 1000
    with pytest.raises(InputError, match="debian"):
        moddata.load_source("no-such-source")


def _named(*names: str) -> list[ModuleSections]:
    return [ModuleSections(n, 1, 1, 1, 1, 1, 1, 1) for n in names]


def test_profiles() -> None:
    modules = _named("nvme", "ext4", "not_on_servers", "kvm", "snd_demo")
    rng = np.random.default_rng(1)
    assert moddata.select_profile(modules, "all", 0, rng) == modules
    server = moddata.select_profile(modules, "server", 0, rng)
    assert [m.name for m in server] == ["nvme", "ext4", "kvm"]
    assert {m.name for m in server} <= moddata.server_module_names()


def test_sample_is_deterministic_for_a_seed() -> None:
    modules = _named(*(f"m{i}" for i in range(50)))
    first = moddata.select_profile(modules, "sample", 10, np.random.default_rng(42))
    again = moddata.select_profile(modules, "sample", 10, np.random.default_rng(42))
    other = moddata.select_profile(modules, "sample", 10, np.random.default_rng(43))
    assert first == again and first != other
    assert len({m.name for m in first}) == 10


def test_profile_errors() -> None:
    modules = _named("a", "b")
    rng = np.random.default_rng(0)
    with pytest.raises(BadParameter, match="server"):
        moddata.select_profile(modules, "desktop", 1, rng)
    for n in (0, 3):
        with pytest.raises(BadParameter, match=f"n={n}"):
            moddata.select_profile(modules, "sample", n, rng)
    with pytest.raises(InputError):
        moddata.select_profile(modules, "server", 0, rng)


def _shipped_rows() -> list[dict[str, str]]:
    path = Path(moddata.__file__).parent / "data" / "modules-debian.csv"
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _core_pages_by_hand(row: dict[str, str]) -> int:
    groups = ("text", "rodata", "ro_after_init", "data")
    return sum((int(row[g]) + PAGE - 1) // PAGE for g in groups)


def test_shipped_dataset_statistics() -> None:
    """Means from the data set equal a hand computation over the raw CSV text."""
    rows = _shipped_rows()
    modules = moddata.load_source("debian")
    assert [m.name for m in modules] == [r["module"] for r in rows]
    text = [int(r["text"]) for r in rows]
    core = [sum(int(r[g]) for g in ("text", "rodata", "ro_after_init", "data")) for r in rows]
    assert statistics.fmean(m.text for m in modules) == pytest.approx(statistics.fmean(text))
    assert statistics.fmean(m.core_bytes for m in modules) == pytest.approx(statistics.fmean(core))
    assert [m.core_pages for m in modules] == [_core_pages_by_hand(r) for r in rows]


def test_server_list_names_shipped_modules() -> None:
    names = moddata.server_module_names()
    shipped = {m.name for m in moddata.load_source("debian")}
    assert 60 <= len(names) <= 100
    assert names <= shipped, sorted(names - shipped)
