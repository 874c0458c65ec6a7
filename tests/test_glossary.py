"""``docs/glossary.md`` maps each model name to its kernel symbol, and stays true.

Two checks. Every name in the glossary's model column exists in the code, so a rename that
forgets the glossary fails here. Every public constant of ``framework/kernel/consts.py`` and
every ``register_*`` / ``add_*`` extension point of ``Kernel`` has a row, so a new kernel name
gets one.

The model column's convention (stated at the top of the glossary): each backticked item is
``Class.member`` or a bare name; a bare name after a ``Class.member`` item of the same cell is
another member of that class; otherwise it is a module-level name. ``[...]`` and ``()``
suffixes are dropped.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "docs" / "glossary.md"
SOURCES = sorted([*(ROOT / "framework" / "kernel").glob("*.py"),
                  ROOT / "framework" / "statusquo.py", *(ROOT / "plugins").glob("*.py")])


def module_names() -> set[str]:
    """Names bound at module level in the kernel model and the plugins."""
    names: set[str] = set()
    for path in SOURCES:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def class_members() -> dict[str, set[str]]:
    """Per class: its attributes at run time (methods, class attributes, ``__slots__``) and
    the ``self.X`` it assigns (instance attributes of classes without slots)."""
    out: dict[str, set[str]] = {}
    for path in SOURCES:
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for cls in (n for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.ClassDef)):
            members = out.setdefault(cls.name, set(dir(getattr(module, cls.name, object))))
            members.update(node.attr for node in ast.walk(cls)
                           if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                           and isinstance(node.value, ast.Name) and node.value.id == "self")
    return out


def model_cells() -> Iterator[str]:
    """The model column of every table row of the glossary."""
    for line in GLOSSARY.read_text().splitlines():
        if line.startswith("| `"):
            yield line.split("|")[1]


def glossary_names() -> list[tuple[str | None, str]]:
    """``(class or None, name)`` for every backticked item of the model column."""
    out: list[tuple[str | None, str]] = []
    for cell in model_cells():
        owner: str | None = None
        for item in re.findall(r"`([^`]+)`", cell):
            item = re.sub(r"\[.*?\]|\(\)", "", item)
            if "." in item:
                owner, item = item.split(".", 1)
            out.append((owner, item))
    return out


def test_glossary_parses() -> None:
    """The parser finds the rows (a guard against a reformatted glossary passing vacuously)."""
    names = glossary_names()
    assert len(names) > 80
    assert ("Zone", "rmqueue_smallest") in names
    assert (None, "TLB_SINGLE_PAGE_FLUSH_CEILING") in names
    assert ("Kernel", "set_memory_rox") in names


@pytest.mark.parametrize(("owner", "name"), glossary_names(),
                         ids=lambda v: str(v))
def test_glossary_name_exists(owner: str | None, name: str) -> None:
    """Each model name of the glossary is defined in framework/kernel/ or plugins/."""
    if owner is None:
        assert name in module_names(), f"{name} is in docs/glossary.md but not in the code"
    else:
        members = class_members()
        assert owner in members, f"class {owner} is in docs/glossary.md but not in the code"
        assert name in members[owner], f"{owner}.{name} is in docs/glossary.md, not the code"


def kernel_names_needing_rows() -> list[str]:
    """Public constants of consts.py and the extension points of ``Kernel``."""
    tree = ast.parse((ROOT / "framework" / "kernel" / "consts.py").read_text())
    names = [t.id for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)]
    names += [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    kernel = class_members()["Kernel"]
    names += sorted(m for m in kernel if m.startswith(("register_", "add_")))
    return names


@pytest.mark.parametrize("name", kernel_names_needing_rows())
def test_kernel_name_has_a_row(name: str) -> None:
    """Each kernel constant and extension point of the model has a glossary row."""
    assert name in {n for _, n in glossary_names()}, f"docs/glossary.md has no row for {name}"
