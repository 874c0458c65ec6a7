"""The kernel model knows nothing of requests, designs or plugins (docs/model.md, "Layers").

Nothing under ``framework/kernel/`` imports the request, allocator, status-quo, engine or
plugin modules; designs reach the model only through the facade and the extension points it
declares. The one exception is ``framework/kernel/callsites.py``, the deprecated alias of the
status quo's old location, which imports it lazily on the old name only.
"""

from __future__ import annotations

import ast
from pathlib import Path

KERNEL = Path(__file__).resolve().parent.parent / "framework" / "kernel"
FORBIDDEN = ("framework.request", "framework.allocator", "framework.statusquo",
             "framework.legacy", "framework.engine", "framework.plugins",
             "framework.hookspecs", "framework.checks", "plugins", "workloads")
ALIAS = "callsites.py"


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (any depth)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def forbidden_in(path: Path) -> list[str]:
    return sorted(name for name in imported_modules(path)
                  if any(name == f or name.startswith(f + ".") for f in FORBIDDEN))


def test_kernel_model_imports_no_design_layer() -> None:
    offenders = {p.name: forbidden_in(p) for p in sorted(KERNEL.glob("*.py"))
                 if p.name != ALIAS and forbidden_in(p)}
    assert offenders == {}


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The scanner itself: a kernel file importing the request module would be caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from framework.request import Request\n    return Request\n")
    assert forbidden_in(bad) == ["framework.request", "framework.request.Request"]


def test_the_alias_is_the_only_exception() -> None:
    assert forbidden_in(KERNEL / ALIAS) == ["framework.statusquo"]
