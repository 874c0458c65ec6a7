"""A tiny ELF64 relocatable-file writer for tests of :mod:`framework.workloads.moddata`.

It writes only what the module loader looks at: the ELF header, section contents, a symbol
table with its string table, the section-name table and the section header table (at the end,
as ``ld -r`` puts it). Everything is little-endian x86-64 unless a test asks otherwise.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHT_STRTAB = 3
SHT_RELA = 4
SHT_NOBITS = 8
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_MERGE = 0x10
SHF_STRINGS = 0x20
SHF_INFO_LINK = 0x40
SHN_UNDEF = 0
SHN_ABS = 0xFFF1
STT_OBJECT, STT_FUNC, STT_FILE = 1, 2, 4
STB_GLOBAL = 1

A, WA, AX = SHF_ALLOC, SHF_WRITE | SHF_ALLOC, SHF_ALLOC | SHF_EXECINSTR


@dataclass(frozen=True, slots=True)
class Sec:
    """A section to write: ``size`` bytes of zeros (none in the file for ``SHT_NOBITS``)."""

    name: str
    flags: int = 0
    addralign: int = 1
    size: int = 0
    type: int = SHT_PROGBITS


@dataclass(frozen=True, slots=True)
class Sym:
    """A symbol defined in section ``section`` (a name), or ``"UNDEF"`` / ``"ABS"``."""

    name: str
    section: str
    type: int = STT_OBJECT


def _align(value: int, alignment: int) -> int:
    return -(-value // max(alignment, 1)) * max(alignment, 1)


def _strtab(names: Sequence[str]) -> tuple[bytes, list[int]]:
    """A string table ``\\0name\\0name\\0...`` (no sharing) and each name's offset."""
    blob, offsets = bytearray(b"\0"), []
    for name in names:
        offsets.append(len(blob) if name else 0)
        if name:
            blob += name.encode() + b"\0"
    return bytes(blob), offsets


def build_elf(
    sections: Sequence[Sec],
    symbols: Sequence[Sym] = (),
    *,
    endian: str = "<",
    elf_class: int = 2,
    data_encoding: int = 1,
    e_type: int = 1,
    machine: int = 62,
) -> bytes:
    """An ELF relocatable file with ``sections`` (indices 1..), then .symtab, .strtab, .shstrtab.

    The symbol table holds the null symbol, then ``symbols`` in order.
    """
    index = {sec.name: i + 1 for i, sec in enumerate(sections)}
    n = len(sections)
    sym_strtab, sym_names = _strtab([s.name for s in symbols])
    symtab = bytearray(24)  # symbol 0
    for sym, st_name in zip(symbols, sym_names, strict=True):
        specials = {"UNDEF": SHN_UNDEF, "ABS": SHN_ABS}
        shndx = specials[sym.section] if sym.section in specials else index[sym.section]
        info = (STB_GLOBAL << 4) | sym.type
        symtab += struct.pack(endian + "IBBHQQ", st_name, info, 0, shndx, 0, 0)
    all_secs = [
        *sections,
        Sec(".symtab", 0, 8, len(symtab), SHT_SYMTAB),
        Sec(".strtab", 0, 1, len(sym_strtab), SHT_STRTAB),
    ]
    contents = {n + 1: bytes(symtab), n + 2: sym_strtab}
    sh_strtab, sh_names = _strtab([s.name for s in all_secs] + [".shstrtab"])
    all_secs.append(Sec(".shstrtab", 0, 1, len(sh_strtab), SHT_STRTAB))
    contents[n + 3] = sh_strtab

    body, headers = bytearray(64), [bytes(64)]  # room for the ELF header; section 0
    for i, sec in enumerate(all_secs, start=1):
        data = contents.get(i, bytes(sec.size))
        offset = _align(len(body), sec.addralign)
        if sec.type != SHT_NOBITS:
            body += bytes(offset - len(body)) + data
        link, info, entsize = (n + 2, 1, 24) if sec.type == SHT_SYMTAB else (0, 0, 0)
        if sec.type == SHT_RELA:
            link, info, entsize = n + 1, 1, 24
        headers.append(
            struct.pack(
                endian + "IIQQQQIIQQ",
                sh_names[i - 1], sec.type, sec.flags, 0, offset, sec.size,
                link, info, sec.addralign, entsize,
            )
        )  # fmt: skip
    shoff = _align(len(body), 8)
    body += bytes(shoff - len(body)) + b"".join(headers)
    ident = b"\x7fELF" + bytes([elf_class, data_encoding, 1]) + bytes(9)
    body[:64] = ident + struct.pack(
        endian + "HHIQQQIHHHHHH", e_type, machine, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
        len(headers), n + 3,
    )  # fmt: skip
    return bytes(body)


def section_header_offset(elf: bytes, index: int) -> int:
    """File offset of section header ``index`` in a little-endian file from :func:`build_elf`."""
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    return shoff + 64 * index
