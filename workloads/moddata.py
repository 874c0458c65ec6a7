"""Real kernel-module section sizes for the ``modules`` workload.

A loadable module is an ELF64 relocatable file. When it is loaded, Linux v6.3 (x86-64, with
``CONFIG_STRICT_MODULE_RWX``) lays its ``SHF_ALLOC`` sections out in two ``module_alloc``
regions, *core* (kept while the module is loaded) and *init* (freed after ``mod->init``
returns), each split into page-aligned groups that later get different permissions:

========================  ==============================  ====================================
group                     core sections                   protection after load
========================  ==============================  ====================================
text                      executable                      RO + X (``module_enable_x``)
rodata                    read-only, not writable         RO + NX
ro_after_init             ``.data..ro_after_init``,       RW until init returns, then RO + NX
                          ``__jump_table``
data                      writable (incl. ``.bss``)       RW + NX
========================  ==============================  ====================================

This module reads those group sizes from ``.ko`` files (plain, ``.xz``, ``.gz``, ``.zst``), stores
them in a small CSV contract format, ships one data set (``debian``) and picks subsets of it
(*profiles*) for the workload. Each modelled loader rule names its kernel function in a comment.

Modelled (v6.3, Debian's configuration: ``CONFIG_KALLSYMS_ALL=y``, ``CONFIG_MODULE_UNLOAD=y``,
``CONFIG_SMP=y``):

- ``layout_sections()``: the masks table, the order within each group (section index order),
  each section aligned to its ``sh_addralign`` (``module_get_offset()``), ``strict_align()``
  (page alignment) after each group, ``.init*`` sections in the init layout
  (``module_init_layout_section()``), ``.exit*`` sections in the core one (module unload is on).
- The loader's flag edits before the layout: ``.modinfo`` and ``__versions`` lose ``SHF_ALLOC``
  (``rewrite_section_headers()``), ``.data..percpu`` too, since it goes to the per-cpu area
  (``layout_and_allocate()``), and ``.data..ro_after_init``/``__jump_table`` gain
  ``SHF_RO_AFTER_INIT`` (``layout_and_allocate()``).
- ``layout_symtab()`` (``kernel/module/kallsyms.c``): the core copy of the kept symbols (with
  ``CONFIG_KALLSYMS_ALL`` every named symbol of a core ``SHF_ALLOC`` section or of the per-cpu
  section), their names and type bytes are appended to the core *data* group; the full
  ``.symtab``, ``.strtab``, a ``struct mod_kallsyms`` and the type bytes to the init *data*
  group. Pass ``kallsyms=False`` to leave them out (then only the ELF and section headers and
  the section-name table are read).

Not modelled: livepatch modules (``is_livepatch_module()`` keeps every symbol in the core copy;
such modules are treated like the others), the per-cpu area itself (``percpu_modalloc()``, not
``module_alloc`` memory), ``arch_mod_section_prepend()`` (parisc only) and
``module_frob_arch_sections()`` (x86-64 uses the empty weak default, so there is nothing to
model), ``ARCH_SHF_SMALL`` (0 on x86-64), ``MODULE_INIT_IGNORE_MODVERSIONS`` (``modprobe
--force-modversion``), and memory outside ``module_alloc`` (``struct module_sect_attrs``, sysfs,
the temporary copy of the file).

Module names are taken from the file name with ``-`` turned into ``_``, as ``lsmod`` shows them.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import lzma
import os
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import IO, Protocol

import attrs
import numpy as np
import zstandard

from framework.errors import BadParameter, InputError
from framework.filecache import once_per_file
from framework.kernel.consts import PAGE_SIZE
from framework.lines import bounded_lines

__all__ = [
    "CSV_HEADER",
    "DATASETS",
    "MODULE_SUFFIXES",
    "PROFILES",
    "ModuleSections",
    "load_source",
    "read_csv",
    "read_ko",
    "read_tree",
    "select_profile",
    "server_module_names",
    "write_csv",
]

#: The CSV contract header (sizes in bytes).
CSV_HEADER: tuple[str, ...] = (
    "module",
    "text",
    "rodata",
    "ro_after_init",
    "data",
    "init_text",
    "init_rodata",
    "init_data",
)
#: Shipped data sets: name -> CSV file in ``workloads/data``.
DATASETS: dict[str, str] = {"debian": "modules-debian.csv"}
#: Profiles understood by :func:`select_profile`.
PROFILES: tuple[str, ...] = ("all", "server", "sample")
#: File names :func:`read_tree` treats as modules.
MODULE_SUFFIXES: tuple[str, ...] = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")
SERVER_LIST = "server-modules.txt"

# include/uapi/linux/elf.h
ELFMAG = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
ET_REL = 1
EM_X86_64 = 62
SHT_NULL = 0
SHT_SYMTAB = 2
SHT_NOBITS = 8
SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
SHF_RO_AFTER_INIT = 0x00200000
ARCH_SHF_SMALL = 0  # include/linux/moduleloader.h: only ia64 defines it
ELF64_SYM_SIZE = 24  # sizeof(Elf64_Sym)
MOD_KALLSYMS_SIZE = 32  # sizeof(struct mod_kallsyms) on x86-64: 3 pointers + an int, padded
MOD_KALLSYMS_ALIGN = 8  # __alignof__(struct mod_kallsyms)

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")

# kernel/module/main.c layout_sections(): masks[][2] = {must have, must not have}
_MASKS: tuple[tuple[int, int], ...] = (
    (SHF_EXECINSTR | SHF_ALLOC, ARCH_SHF_SMALL),  # executable
    (SHF_ALLOC, SHF_WRITE | ARCH_SHF_SMALL),  # read-only data
    (SHF_RO_AFTER_INIT | SHF_ALLOC, ARCH_SHF_SMALL),  # ro_after_init
    (SHF_WRITE | SHF_ALLOC, ARCH_SHF_SMALL),  # writable data
    (ARCH_SHF_SMALL | SHF_ALLOC, 0),  # small data (empty on x86-64)
)
# kernel/module/main.c layout_sections(): passes followed by strict_align(), core and init
# (init skips case 2: ro_after_init does not apply to the init layout).
_CORE_ALIGNED_PASSES = frozenset({0, 1, 2, 4})
_INIT_ALIGNED_PASSES = frozenset({0, 1, 4})

_SYM_DTYPE = np.dtype(
    [
        ("st_name", "<u4"),
        ("st_info", "u1"),
        ("st_other", "u1"),
        ("st_shndx", "<u2"),
        ("st_value", "<u8"),
        ("st_size", "<u8"),
    ]
)
_STREAM_CHUNK = 1 << 18  # bytes decompressed a step
_ZSTD_MAX_WINDOW = 1 << 27  # kbuild's zstd never needs more (zstd --long=27 at most)
_DIGITS = re.compile(r"[0-9]+")


def _pages(nbytes: int) -> int:
    """Number of 4 KiB pages that ``nbytes`` bytes occupy (``PAGE_ALIGN(nbytes) / PAGE_SIZE``)."""
    return -(-nbytes // PAGE_SIZE)


def _align(value: int, alignment: int) -> int:
    """``ALIGN(value, alignment)`` for a positive ``alignment`` (any, not only powers of two)."""
    return -(-value // alignment) * alignment


_size = attrs.field(validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)])


@attrs.frozen(slots=True)
class ModuleSections:
    """Byte sizes of one module's page-aligned groups, as v6.3 lays the module out.

    Each size is the span of its group from the group's page-aligned start to the end of its
    last section (section alignment padding included, the final page padding not), so
    ``_pages(size)`` is exactly the number of pages the kernel gives the group.

    :ivar name: module name as ``lsmod`` shows it (``-`` replaced by ``_``).
    :ivar text: core executable group (``mod->core_layout.text_size`` before page alignment).
    :ivar rodata: core read-only group.
    :ivar ro_after_init: core group made read-only after init.
    :ivar data: core writable group, including the core kallsyms copy when it was modelled.
    :ivar init_text: init executable group.
    :ivar init_rodata: init read-only group.
    :ivar init_data: init writable group, including ``.symtab``/``.strtab`` when modelled.
    """

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    text: int = _size
    rodata: int = _size
    ro_after_init: int = _size
    data: int = _size
    init_text: int = _size
    init_rodata: int = _size
    init_data: int = _size

    @property
    def core_pages(self) -> int:
        """Pages of the core ``module_alloc`` region: each core group rounded up separately."""
        return sum(map(_pages, (self.text, self.rodata, self.ro_after_init, self.data)))

    @property
    def init_pages(self) -> int:
        """Pages of the init ``module_alloc`` region: each init group rounded up separately."""
        return sum(map(_pages, (self.init_text, self.init_rodata, self.init_data)))

    @property
    def core_bytes(self) -> int:
        """Sum of the four core group sizes, without the page padding between groups."""
        return self.text + self.rodata + self.ro_after_init + self.data

    @property
    def init_bytes(self) -> int:
        """Sum of the three init group sizes, without the page padding between groups."""
        return self.init_text + self.init_rodata + self.init_data

    def as_row(self) -> tuple[str | int, ...]:
        """The CSV row of this module, in :data:`CSV_HEADER` order."""
        return attrs.astuple(self)


@attrs.frozen(slots=True)
class _Section:
    """One section header, with the flags the loader has edited so far."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    addralign: int

    @property
    def alloc(self) -> bool:
        """Whether the loader copies the section into module memory."""
        return bool(self.flags & SHF_ALLOC)


class _Readable(Protocol):
    """A decompressing reader (``LZMAFile``, ``GzipFile``, a zstandard stream reader)."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end of the stream."""
        ...

    def close(self) -> None:
        """Release the reader."""
        ...


class _Source(Protocol):
    """Random access to the bytes of one (possibly compressed) module file."""

    def read(self, offset: int, size: int, what: str) -> bytes:
        """Bytes ``[offset, offset + size)``; raise :class:`InputError` naming ``what`` if short."""
        ...

    def has(self, end: int) -> bool:
        """Whether the (decompressed) file is at least ``end`` bytes long."""
        ...


class _FileSource:
    """A plain ``.ko`` file: only the requested ranges are read (``os.pread``)."""

    def __init__(self, path: Path, fd: int) -> None:
        self._path = path
        self._fd = fd
        self._length = os.fstat(fd).st_size

    def has(self, end: int) -> bool:
        """Whether the file is at least ``end`` bytes long."""
        return end <= self._length

    def read(self, offset: int, size: int, what: str) -> bytes:
        """Read ``size`` bytes at ``offset`` or raise :class:`InputError` naming ``what``."""
        if not self.has(offset + size):
            raise _truncated(self._path, what, offset + size, self._length)
        data = os.pread(self._fd, size, offset)
        if len(data) != size:
            raise _truncated(self._path, what, offset + size, offset + len(data))
        return data


class _StreamSource:
    """A compressed module: decompressed as a stream, only as far as the reads need."""

    def __init__(self, path: Path, stream: _Readable, kind: str) -> None:
        self._path = path
        self._stream = stream
        self._kind = kind
        self._buf = bytearray()
        self._eof = False

    def _fill(self, end: int) -> None:
        """Decompress until ``end`` bytes are buffered or the stream ends."""
        try:
            while len(self._buf) < end and not self._eof:
                chunk = self._stream.read(_STREAM_CHUNK)
                self._eof = not chunk
                self._buf += chunk
        except (OSError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
            detail = str(exc).strip() or type(exc).__name__
            raise InputError(
                f"{self._path}: corrupt or truncated {self._kind} data: {detail}"
            ) from None

    def has(self, end: int) -> bool:
        """Whether the decompressed file is at least ``end`` bytes long."""
        self._fill(end)
        return end <= len(self._buf)

    def read(self, offset: int, size: int, what: str) -> bytes:
        """Read ``size`` decompressed bytes at ``offset`` or raise :class:`InputError`."""
        if not self.has(offset + size):
            raise _truncated(self._path, what, offset + size, len(self._buf), self._kind)
        return bytes(self._buf[offset : offset + size])


def _truncated(path: Path, what: str, needed: int, length: int, kind: str = "") -> InputError:
    """The error for a file (``kind``: its compression, if any) too short to hold ``what``."""
    holds = f"the {kind} data decompresses to {length}" if kind else f"the file has {length}"
    return InputError(f"{path}: truncated: {what} needs {needed} bytes, {holds}")


def module_name(path: Path) -> str:
    """Module name of a module file: the file name without suffix, ``-`` turned into ``_``.

    :raises InputError: if the name does not end in one of :data:`MODULE_SUFFIXES`.
    """
    for suffix in sorted(MODULE_SUFFIXES, key=len, reverse=True):
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)].replace("-", "_")
    raise InputError(
        f"{path}: not a module file name (expected one of {', '.join(MODULE_SUFFIXES)})"
    )


def _check_ident(path: Path, ehdr: bytes) -> None:
    """kernel/module/main.c elf_validity_check(): magic, then our ELF64 little-endian x86-64."""
    if ehdr[:4] != ELFMAG:
        raise InputError(f"{path}: not an ELF file (bad magic {ehdr[:4]!r})")
    if ehdr[4] != ELFCLASS64:
        raise InputError(
            f"{path}: ELF class {ehdr[4]} is not ELFCLASS64 (2); only x86-64 is modelled"
        )
    if ehdr[5] != ELFDATA2LSB:
        raise InputError(f"{path}: ELF data encoding {ehdr[5]} is not little-endian (1)")


def _read_header(path: Path, src: _Source) -> tuple[int, int, int]:
    """Validate the ELF header; return ``(e_shoff, e_shnum, e_shstrndx)``.

    :raises InputError: on any check ``elf_validity_check()`` makes of the header.
    """
    ehdr = src.read(0, _EHDR.size, "the ELF header")
    _check_ident(path, ehdr)
    fields = _EHDR.unpack(ehdr)
    e_type, e_machine, e_shoff = fields[1], fields[2], fields[6]
    e_shentsize, e_shnum, e_shstrndx = fields[11], fields[12], fields[13]
    if e_type != ET_REL:
        raise InputError(f"{path}: ELF type {e_type} is not ET_REL (1): not a kernel module")
    if e_machine != EM_X86_64:
        raise InputError(f"{path}: ELF machine {e_machine} is not x86-64 ({EM_X86_64})")
    if e_shentsize != _SHDR.size or e_shnum == 0:
        raise InputError(
            f"{path}: bad section header table (e_shentsize {e_shentsize}, e_shnum {e_shnum})"
        )
    if not 0 < e_shstrndx < e_shnum:
        raise InputError(
            f"{path}: section name table index {e_shstrndx} out of range 1..{e_shnum - 1}"
        )
    return e_shoff, e_shnum, e_shstrndx


def _section_name(path: Path, names: bytes, offset: int, alloc: bool) -> str:
    """Name at ``offset`` in the section-name table (``elf_validity_check()`` checks ALLOC ones)."""
    if offset >= len(names):
        if alloc:
            raise InputError(f"{path}: section name offset {offset} outside the section name table")
        return ""
    end = names.find(b"\0", offset)
    return names[offset:end].decode("latin-1")


def _read_sections(path: Path, src: _Source) -> list[_Section]:
    """Read and validate the section header table and the section names.

    :raises InputError: if the table, the name table or a section lies outside the file.
    """
    e_shoff, e_shnum, e_shstrndx = _read_header(path, src)
    table = src.read(e_shoff, e_shnum * _SHDR.size, "the section header table")
    raw = list(_SHDR.iter_unpack(table))
    if raw[0][1] != SHT_NULL or raw[0][5] != 0 or raw[0][3] != 0:
        raise InputError(f"{path}: section 0 is not an empty SHT_NULL section")
    names_hdr = raw[e_shstrndx]
    names = src.read(names_hdr[4], names_hdr[5], "the section name table")
    if not names or names[-1] != 0:
        raise InputError(f"{path}: section name table is empty or not NUL-terminated")
    sections = []
    for index, (sh_name, sh_type, flags, _, offset, size, link, _, addralign, _) in enumerate(raw):
        alloc = bool(flags & SHF_ALLOC)
        name = _section_name(path, names, sh_name, alloc)
        sections.append(_Section(index, name, sh_type, flags, offset, size, link, addralign))
    _check_bounds(path, src, sections)
    return sections


def _check_bounds(path: Path, src: _Source, sections: Sequence[_Section]) -> None:
    """kernel/module/main.c elf_validity_check(): sections lie inside the file, links are valid."""
    for sec in sections[1:]:
        if sec.type == SHT_SYMTAB and not 0 < sec.link < len(sections):
            raise InputError(f"{path}: symbol table {sec.name!r} links to bad section {sec.link}")
    stored = [s for s in sections[1:] if s.type not in (SHT_NULL, SHT_NOBITS)]
    if stored:
        last = max(stored, key=lambda s: s.offset + s.size)
        if not src.has(last.offset + last.size):
            raise InputError(
                f"{path}: section {last.index} ({last.name!r}) extends past the end of the file"
            )


def _find_sec(sections: Sequence[_Section], name: str) -> int:
    """kernel/module/main.c find_sec(): first SHF_ALLOC section called ``name``, 0 if none."""
    return next((s.index for s in sections[1:] if s.alloc and s.name == name), 0)


def _with_flags(sections: list[_Section], index: int, clear: int = 0, add: int = 0) -> None:
    """Edit the flags of section ``index`` in place (index 0 stands for "not found": no edit)."""
    if index:
        sec = sections[index]
        sections[index] = attrs.evolve(sec, flags=(sec.flags & ~clear) | add)


def _apply_loader_flags(sections: list[_Section]) -> int:
    """Make the flag edits v6.3 does before layout_sections(); return the per-cpu section index."""
    info = _find_sec(sections, ".modinfo")  # kernel/module/main.c setup_load_info()
    vers = _find_sec(sections, "__versions")  # kernel/module/main.c setup_load_info()
    pcpu = _find_sec(sections, ".data..percpu")  # kernel/module/main.c find_pcpusec()
    _with_flags(sections, vers, clear=SHF_ALLOC)  # kernel/module/main.c rewrite_section_headers()
    _with_flags(sections, info, clear=SHF_ALLOC)  # kernel/module/main.c rewrite_section_headers()
    _with_flags(sections, pcpu, clear=SHF_ALLOC)  # kernel/module/main.c layout_and_allocate()
    for name in (".data..ro_after_init", "__jump_table"):  # main.c layout_and_allocate()
        _with_flags(sections, _find_sec(sections, name), add=SHF_RO_AFTER_INIT)
    return pcpu


def _is_init_layout(name: str) -> bool:
    """kernel/module/main.c module_init_layout_section(): ``.init*`` (``.exit*`` stays core)."""
    return name.startswith(".init")  # module_init_section(); CONFIG_MODULE_UNLOAD=y


def _lay_out(sections: Sequence[_Section], init: bool) -> tuple[list[int], list[int], int]:
    """kernel/module/main.c layout_sections() for one layout (core or init).

    :returns: ``(starts, ends, size)``: the offset at which each mask pass starts and ends
        (before its ``strict_align()``), and the layout size after the last pass.
    """
    aligned = _INIT_ALIGNED_PASSES if init else _CORE_ALIGNED_PASSES
    placed: set[int] = set()
    starts, ends, size = [], [], 0
    for m, (must, must_not) in enumerate(_MASKS):
        starts.append(size)
        for sec in sections:
            if (
                sec.flags & must == must
                and not sec.flags & must_not
                and sec.index not in placed
                and _is_init_layout(sec.name) == init
            ):
                placed.add(sec.index)
                size = _align(size, sec.addralign or 1) + sec.size  # module_get_offset()
        ends.append(size)
        if m in aligned:
            size = _align(size, PAGE_SIZE)  # kernel/module/internal.h strict_align()
    return starts, ends, size


@attrs.frozen(slots=True)
class _Module:
    """A module file being laid out, after the loader's flag edits."""

    path: Path
    src: _Source
    sections: list[_Section]
    symtab: _Section  # the first SHT_SYMTAB (kernel/module/main.c setup_load_info())
    strtab: _Section  # its string table (symtab.sh_link)
    pcpu: int  # index of .data..percpu, 0 if none (kernel/module/main.c find_pcpusec())


@attrs.frozen(slots=True)
class _Kallsyms:
    """What kernel/module/kallsyms.c layout_symtab() appends to the two layouts, in bytes."""

    core: int  # symbols kept after init, their names and type bytes (data_layout)
    init: int  # .symtab, .strtab, struct mod_kallsyms, type bytes (init_layout)


def _load_module(path: Path, src: _Source) -> _Module:
    """Read the sections, check the loader would take the file, make its flag edits.

    :raises InputError: if there is no symbol table or no struct module section
        (kernel/module/main.c setup_load_info() refuses such a file), or as
        :func:`_read_sections`.
    """
    sections = _read_sections(path, src)
    symtab = next((s for s in sections[1:] if s.type == SHT_SYMTAB), None)
    if symtab is None:
        raise InputError(f"{path}: no symbol table (stripped?); the loader refuses such a module")
    if not _find_sec(sections, ".gnu.linkonce.this_module"):
        raise InputError(f"{path}: no .gnu.linkonce.this_module section: not a kernel module")
    pcpu = _apply_loader_flags(sections)
    return _Module(path, src, sections, symtab, sections[symtab.link], pcpu)


def _core_symbols(mod: _Module) -> tuple[int, int]:
    """kernel/module/kallsyms.c layout_symtab(): ``(ndst, strtab_size)`` of the core copy.

    A symbol is kept by kernel/module/kallsyms.c is_core_symbol() with CONFIG_KALLSYMS_ALL:
    named, defined in a section that is SHF_ALLOC and not in the init layout, or in the
    per-cpu section. Symbol 0 is always kept.
    """
    count = mod.symtab.size // ELF64_SYM_SIZE
    raw = mod.src.read(mod.symtab.offset, count * ELF64_SYM_SIZE, "the symbol table")
    syms = np.frombuffer(raw, _SYM_DTYPE)
    core_sec = np.array([s.alloc and not _is_init_layout(s.name) for s in mod.sections])
    shndx = syms["st_shndx"].astype(np.int64)
    named = (shndx != 0) & (shndx < len(mod.sections)) & (syms["st_name"] != 0)
    in_pcpu = (shndx == mod.pcpu) & (mod.pcpu != 0)
    keep = named & (core_sec[np.where(named, shndx, 0)] | in_pcpu)
    keep[:1] = True
    return int(keep.sum()), _strtab_bytes(mod, syms["st_name"][keep])


def _strtab_bytes(mod: _Module, offsets: np.ndarray) -> int:
    """Sum of ``strlen(name) + 1`` over the names at ``offsets`` of the string table."""
    raw = mod.src.read(mod.strtab.offset, mod.strtab.size, "the string table")
    nuls = np.flatnonzero(np.frombuffer(raw, np.uint8) == 0)
    ends = np.searchsorted(nuls, offsets)
    if len(offsets) and ends.max() >= len(nuls):
        raise InputError(
            f"{mod.path}: a symbol name lies outside the string table or is not NUL-terminated"
        )
    return int((nuls[ends] - offsets + 1).sum())


def _kallsyms(mod: _Module, core_end: int, init_end: int) -> _Kallsyms:
    """kernel/module/kallsyms.c layout_symtab(): bytes appended after ``core_end``/``init_end``.

    Both ends are page-aligned layout sizes; each result spans from there to the end of the
    appended tables (before the final ``strict_align()``).
    """
    symtab, strtab = mod.symtab, mod.strtab
    ndst, strtab_size = _core_symbols(mod)
    symoffs = _align(core_end, symtab.addralign or 1)
    core = symoffs + ndst * ELF64_SYM_SIZE + strtab_size + ndst - core_end
    size = _align(init_end, symtab.addralign or 1) + symtab.size  # module_get_offset()
    size = _align(size, strtab.addralign or 1) + strtab.size  # module_get_offset()
    size = _align(size, MOD_KALLSYMS_ALIGN) + MOD_KALLSYMS_SIZE
    size += symtab.size // ELF64_SYM_SIZE  # init type bytes, one per symbol
    return _Kallsyms(core=core, init=size - init_end)


def _sections_of(path: Path, src: _Source, kallsyms: bool) -> ModuleSections:
    """Lay out the module readable through ``src`` (see :func:`read_ko`)."""
    mod = _load_module(path, src)
    c_starts, c_ends, core_end = _lay_out(mod.sections, init=False)
    i_starts, i_ends, init_end = _lay_out(mod.sections, init=True)
    extra = _kallsyms(mod, core_end, init_end) if kallsyms else None
    data_end = core_end + extra.core if extra else c_ends[4]
    init_data_end = init_end + extra.init if extra else i_ends[4]
    return ModuleSections(
        name=module_name(path),
        text=c_ends[0] - c_starts[0],
        rodata=c_ends[1] - c_starts[1],
        ro_after_init=c_ends[2] - c_starts[2],
        data=data_end - c_starts[3],
        init_text=i_ends[0] - i_starts[0],
        init_rodata=i_ends[1] - i_starts[1],
        init_data=init_data_end - i_starts[2],
    )


def _open_stream(path: Path, raw: IO[bytes]) -> tuple[_Readable, str] | None:
    """A decompressing reader over ``raw`` for a compressed module name, else ``None``."""
    if path.name.endswith(".xz"):
        return lzma.LZMAFile(raw), "xz"
    if path.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw), "gzip"
    if path.name.endswith(".zst"):
        dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        return dctx.stream_reader(raw, read_across_frames=True), "zstd"
    return None


def read_ko(path: str | os.PathLike[str], *, kallsyms: bool = True) -> ModuleSections:
    """Read one module file and lay it out as v6.3 would load it on x86-64.

    Plain files are read by range (ELF header, section headers, section names and, with
    ``kallsyms``, the symbol and string tables); ``.ko.xz``, ``.ko.gz`` and ``.ko.zst`` files
    are decompressed as a stream, only as far as those ranges need.

    :param path: a ``.ko``, ``.ko.xz``, ``.ko.gz`` or ``.ko.zst`` file.
    :param kallsyms: also model ``layout_symtab()`` (the default, as Debian's
        ``CONFIG_KALLSYMS=y`` kernels do).
    :raises InputError: naming the file, if it is not an ELF64 little-endian x86-64
        relocatable module, is truncated, has corrupt compression, or has section headers or
        sections outside the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            opened = _open_stream(path, raw)
            if opened is None:
                return _sections_of(path, _FileSource(path, raw.fileno()), kallsyms)
            stream, kind = opened
            with contextlib.closing(stream):
                return _sections_of(path, _StreamSource(path, stream, kind), kallsyms)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _module_files(root: Path) -> list[Path]:
    """Every module file under ``root`` (symbolic links to directories are not followed)."""
    found: list[Path] = []
    for dirpath, _, filenames in os.walk(root):
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(MODULE_SUFFIXES))
    return found


def read_tree(
    root: str | os.PathLike[str], *, kallsyms: bool = True, workers: int | None = None
) -> list[ModuleSections]:
    """Read every module file under ``root``, recursively, sorted by module name.

    Ties (the same module name twice, e.g. two kernel versions under ``/lib/modules``) are
    ordered by path, so the result is deterministic whatever the thread count.

    :param root: a directory, e.g. ``/lib/modules/6.1.0-56-amd64``.
    :param kallsyms: as for :func:`read_ko`.
    :param workers: reader threads (decompression releases the GIL); default: CPU count.
    :raises InputError: if ``root`` is not a directory, holds no module file, or a module file
        does not parse (the first bad file in sorted order is named).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    files = sorted(_module_files(root), key=lambda p: (module_name(p), str(p)))
    if not files:
        raise InputError(f"{root}: no module files ({', '.join(MODULE_SUFFIXES)}) under it")
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda p: read_ko(p, kallsyms=kallsyms), files))


def _parse_row(path: Path, line: int, row: list[str]) -> ModuleSections:
    """One CSV data row; :raises InputError: naming file, line and the bad value."""
    if len(row) != len(CSV_HEADER):
        raise InputError(
            f"{path}:{line}: {len(row)} fields, expected {len(CSV_HEADER)} ({','.join(CSV_HEADER)})"
        )
    name, *sizes = row
    if not name or name.strip() != name:
        raise InputError(f"{path}:{line}: bad module name {name!r}")
    for column, value in zip(CSV_HEADER[1:], sizes, strict=True):
        if not _DIGITS.fullmatch(value):
            raise InputError(
                f"{path}:{line}: bad {column} value {value!r}: expected a byte count (0-9 only)"
            )
    return ModuleSections(name, *map(int, sizes))


def read_csv(path: str | os.PathLike[str]) -> list[ModuleSections]:
    """Read the CSV contract format: the :data:`CSV_HEADER` line, then one module a row.

    Blank lines are skipped; the rows are returned in file order.

    :raises InputError: naming the file (and line), if it cannot be read, the header differs,
        or a row has the wrong field count, an empty name or a size that is not a
        non-negative decimal integer.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a BOM is skipped
            return _parse_csv(path, bounded_lines(fh, str(path)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read CSV: {exc}") from None


def _parse_csv(path: Path, fh: Iterable[str]) -> list[ModuleSections]:
    """Check the header and parse the data rows of the open CSV file's lines ``fh``."""
    reader = csv.reader(fh)
    header = next(reader, None)
    if header != list(CSV_HEADER):
        raise InputError(f"{path}:1: header {header!r}, expected {','.join(CSV_HEADER)}")
    return [_parse_row(path, reader.line_num, row) for row in reader if row]


def write_csv(path: str | os.PathLike[str], modules: Iterable[ModuleSections]) -> None:
    """Write ``modules`` in the CSV contract format (``\\n`` line ends), in the given order."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(m.as_row() for m in modules)


def _data_file(name: str) -> Path:
    """Path of a file shipped in ``workloads/data``."""
    return Path(str(resources.files("framework.workloads").joinpath("data").joinpath(name)))


def load_source(source: str) -> list[ModuleSections]:
    """Module sizes from a shipped data set name, a directory of module files, or a CSV file.

    A data set name wins over a relative path of the same name (write ``./debian`` for the
    directory).

    :param source: ``debian`` (see :data:`DATASETS`), a directory (read with
        :func:`read_tree`), or a ``.csv`` file (read with :func:`read_csv`).
    :raises InputError: if ``source`` is none of these, or does not parse.
    """
    if source in DATASETS:
        return _read_source(_data_file(DATASETS[source]), "csv")
    path = Path(source)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise InputError(f"module source {source[:60]!r}: {exc.strerror or exc}") from None
    if is_dir:
        return _read_source(path, "tree")
    if is_file and path.suffix.lower() == ".csv":
        return _read_source(path, "csv")
    allowed = ", ".join(sorted(DATASETS))
    raise InputError(
        f"unknown module source {source!r}: expected a data set ({allowed}), "
        "a directory of .ko files or a .csv file"
    )


@once_per_file
def _read_source(path: Path, kind: str) -> list[ModuleSections]:
    """:func:`read_csv` or :func:`read_tree` once per invocation (the list is shared by every
    cell and not modified; a directory is keyed by its own modification time)."""
    return read_csv(path) if kind == "csv" else read_tree(path)


def server_module_names() -> frozenset[str]:
    """Names in the shipped ``workloads/data/server-modules.txt`` (``#`` starts a comment)."""
    text = _data_file(SERVER_LIST).read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(line for line in lines if line)


def select_profile(
    modules: Sequence[ModuleSections], profile: str, n: int, rng: np.random.Generator
) -> list[ModuleSections]:
    """Pick the modules a workload loads.

    - ``all``: every module once, in the given order (``n`` is ignored);
    - ``server``: the modules named in :func:`server_module_names`, in the given order
      (``n`` is ignored);
    - ``sample``: ``n`` modules drawn without replacement with ``rng``, in draw order.

    :raises BadParameter: for an unknown profile, or a ``sample`` size outside
        ``1..len(modules)``.
    :raises InputError: if the ``server`` profile matches no module of ``modules``.
    """
    if profile == "all":
        return list(modules)
    if profile == "server":
        return _server_profile(modules)
    if profile == "sample":
        if not 1 <= n <= len(modules):
            raise BadParameter(
                f"sample size n={n} out of range 1..{len(modules)} (modules in the data set)"
            )
        return [modules[i] for i in rng.choice(len(modules), size=n, replace=False)]
    raise BadParameter(f"unknown module profile {profile!r}: expected one of {', '.join(PROFILES)}")


def _server_profile(modules: Sequence[ModuleSections]) -> list[ModuleSections]:
    """The ``server`` profile of :func:`select_profile`."""
    names = server_module_names()
    chosen = [m for m in modules if m.name in names]
    if not chosen:
        raise InputError(f"no module of {SERVER_LIST} is in the module data set")
    return chosen
