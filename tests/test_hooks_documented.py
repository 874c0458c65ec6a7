"""Every hook is documented with its exact signature and has a test (datasette's rule).

``docs/plugin-guide.md`` must hold a heading ``### `NAME(ARGS)``` for every hookspec in
:mod:`framework.hookspecs`, with the argument names in order; and this file must hold a
``test_hook_NAME`` for every hook, which calls the hook through a real pluggy manager with a
tiny plugin object registering something, and checks the registry picks it up.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest

from framework import hookspecs
from framework.allocator import Allocator
from framework.hookspecs import hookimpl
from framework.machine.spec import MachineSpec
from framework.plugins import (
    BUILTIN,
    Kind,
    Origin,
    build_registry,
    plugin_manager,
)
from framework.request import ALLOC, FREE, Allocation, Event, Request
from framework.workload import Workload

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugin-guide.md"


def hookspec_functions() -> dict[str, Callable[..., Any]]:
    """The functions pluggy treats as hookspecs (they carry the ``framework_spec`` mark)."""
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")}


def signature(fn: Callable[..., Any]) -> str:
    """``name(arg, ...)``: the names a hookimpl may take, in order."""
    return f"{fn.__name__}({', '.join(inspect.signature(fn).parameters)})"


def documented() -> list[str]:
    return re.findall(r"^### `(\w+\([^`]*\))`", GUIDE.read_text(encoding="utf-8"), re.M)


def test_hooks_exist() -> None:
    assert set(hookspec_functions()) == {"register_allocators", "register_workloads",
                                         "register_machines", "register_commands"}


def test_every_hook_documented_with_its_exact_signature() -> None:
    headings = documented()
    for fn in hookspec_functions().values():
        assert signature(fn) in headings, f"docs/plugin-guide.md lacks ### `{signature(fn)}`"


def test_no_documented_hook_that_does_not_exist() -> None:
    names = {signature(fn) for fn in hookspec_functions().values()}
    assert set(documented()) <= names


def test_every_hook_has_a_test() -> None:
    for name in hookspec_functions():
        assert callable(globals().get(f"test_hook_{name}")), f"no test_hook_{name}"


# -- one tiny plugin per hook --------------------------------------------------------------
class Tiny(Allocator):
    """Serves ``kernel`` requests with one buddy block each."""

    name = "tiny"
    summary = "a test design"
    source = "tests/test_hooks_documented.py"
    covers = frozenset({"kernel"})

    def alloc(self, request: Request) -> Allocation | None:
        pfn = self.kernel.alloc_pages(0, zero=request.zero)
        return None if pfn < 0 else Allocation(((pfn, 0),), 0, request.size)

    def free(self, allocation: Allocation) -> None:
        for pfn, order in allocation.blocks:
            self.kernel.free_pages(pfn, order)


class TinyWorkload(Workload):
    """One page allocated and freed."""

    name = "tiny-load"
    summary = "a test workload"

    def events(self, rng: np.random.Generator) -> Iterator[Event]:
        yield Event(ALLOC, 1, Request("kernel", 4096))
        yield Event(FREE, 1)


TINY_MACHINE = MachineSpec(name="tiny-box", mem_gib=2, nodes=1, cpus=2, reserved_mib=64)


@click.command("tiny-cmd")
def tiny_cmd() -> None:
    """Say hello."""
    click.echo("hello from tiny-cmd")


class TinyPlugin:
    """A plugin object (pluggy takes any object with marked methods, modules included)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def register_allocators(self, register: Callable[[type[Allocator]], None]) -> None:
        self.calls.append("register_allocators")
        register(Tiny)

    @hookimpl
    def register_workloads(self, register: Callable[[type[Workload]], None]) -> None:
        self.calls.append("register_workloads")
        register(TinyWorkload)

    @hookimpl
    def register_machines(self, register: Callable[[MachineSpec], None]) -> None:
        self.calls.append("register_machines")
        register(TINY_MACHINE)

    @hookimpl
    def register_commands(self, register: Callable[[click.Command], None]) -> None:
        self.calls.append("register_commands")
        register(tiny_cmd)


def _registry_with_tiny() -> tuple[Any, TinyPlugin]:
    plugin = TinyPlugin()
    pm = plugin_manager()
    pm.register(plugin, "tiny-plugin")
    pm.check_pending()  # pluggy rejects hookimpls the specs do not declare
    return build_registry(pm), plugin


def test_hook_register_allocators() -> None:
    reg, plugin = _registry_with_tiny()
    assert plugin.calls.count("register_allocators") == 1
    assert reg.allocator("tiny") is Tiny
    assert reg.origin(Kind.ALLOCATOR, "tiny") == BUILTIN  # no entry point: no distribution
    assert "baseline" in reg.allocators  # the built-ins are still there


def test_hook_register_workloads() -> None:
    reg, plugin = _registry_with_tiny()
    assert plugin.calls.count("register_workloads") == 1
    assert reg.workload("tiny-load") is TinyWorkload


def test_hook_register_machines() -> None:
    reg, plugin = _registry_with_tiny()
    assert plugin.calls.count("register_machines") == 1
    assert reg.machine("tiny-box") is TINY_MACHINE


def test_hook_register_commands() -> None:
    reg, plugin = _registry_with_tiny()
    assert plugin.calls.count("register_commands") == 1
    assert reg.commands["tiny-cmd"] is tiny_cmd
    # the built-in commands come in through the same hook, from framework/plugin_commands.py
    assert {"check-plugin", "new-plugin"} <= set(reg.commands)


def test_hooks_called_through_the_plugin_manager() -> None:
    """pluggy's call monitoring sees every registration hook, once per implementing
    plugin and with only that plugin's implementation (calling ``impl.function`` directly
    would bypass it)."""
    pm = plugin_manager()
    pm.register(TinyPlugin(), "tiny-plugin")
    seen: list[tuple[str, list[str]]] = []
    pm.add_hookcall_monitoring(
        lambda hook, impls, kwargs: seen.append((hook, [i.plugin_name for i in impls])),
        lambda outcome, hook, impls, kwargs: None)
    build_registry(pm)
    assert ("register_allocators", ["tiny-plugin"]) in seen
    assert ("register_allocators", ["framework.designs.baseline"]) in seen
    assert ("register_commands", ["framework.plugin_commands"]) in seen
    assert ("register_commands", ["tiny-plugin"]) in seen
    assert all(len(impls) == 1 for _, impls in seen)
    hooks = {hook for hook, _ in seen}
    assert hooks == set(hookspec_functions())


class Clash:
    """A third party whose design is called ``default`` (a machine's name: another kind)
    and whose workload is called ``modules`` (a built-in workload's name)."""

    @hookimpl
    def register_allocators(self, register: Callable[[type[Allocator]], None]) -> None:
        register(type("DefaultDesign", (Tiny,), {"name": "default"}))

    @hookimpl
    def register_workloads(self, register: Callable[[type[Workload]], None]) -> None:
        register(type("Modules", (TinyWorkload,), {"name": "modules"}))


def test_origins_kept_per_kind() -> None:
    """The design ``default`` from package clash-pkg 2.0 and the built-in machine preset
    ``default`` keep their own origins; the workload ``modules`` stays the built-in one."""
    pm = plugin_manager()
    pm.register(Clash(), "clash")
    reg = build_registry(pm, origins={"clash": Origin("clash-pkg", "2.0")})
    assert reg.origin(Kind.ALLOCATOR, "default") == Origin("clash-pkg", "2.0")
    assert reg.origin(Kind.MACHINE, "default") == BUILTIN
    assert reg.workloads["modules"].__module__ == "framework.workloads.modules"
    assert reg.origin(Kind.WORKLOAD, "modules") == BUILTIN
    assert "already registered" in reg.failed["clash"]
    from framework.listing import list_registry

    text = list_registry(reg)
    assert "  default [clash-pkg 2.0]: a test design" in text
    assert "  default [builtin]: 64 GiB" in text


@pytest.mark.parametrize("name", ["secretmem", "machine", "tlb"])
def test_a_design_may_not_take_a_set_scope(name: str) -> None:
    """``--set NAME.KEY`` must mean one thing: a design named like a workload or a fixed
    scope fails its plugin."""
    class Taker:
        @hookimpl
        def register_allocators(self, register: Callable[[type[Allocator]], None]) -> None:
            register(type("Taker", (Tiny,), {"name": name}))

    pm = plugin_manager()
    pm.register(Taker(), "taker")
    reg = build_registry(pm)
    assert name not in reg.allocators
    assert "scope of that name is taken" in reg.failed["taker"]


@pytest.mark.parametrize("bad", ["bench", "check-plugin", "not a command"])
def test_a_bad_command_fails_only_its_plugin(bad: str) -> None:
    class Bad:
        @hookimpl
        def register_commands(self, register: Callable[[Any], None]) -> None:
            register(click.Command(bad) if bad != "not a command" else bad)

    pm = plugin_manager()
    pm.register(Bad(), "bad")
    reg = build_registry(pm)
    assert "bad" in reg.failed and "baseline" in reg.allocators
    assert "bench" not in reg.commands  # the CLI's own; a plugin never shadows it
    assert reg.commands["check-plugin"].callback is not None
    assert reg.commands["check-plugin"].name == "check-plugin"  # the built-in one stays


def test_duplicate_name_fails_only_that_plugin() -> None:
    """A second registration of ``tiny`` marks its plugin failed; the first stays."""
    class Again(TinyPlugin):
        @hookimpl
        def register_allocators(self, register: Callable[[type[Allocator]], None]) -> None:
            register(Tiny)

    pm = plugin_manager()
    pm.register(TinyPlugin(), "first")
    pm.register(Again(), "second")
    reg = build_registry(pm)
    assert reg.allocator("tiny") is Tiny
    assert "second" in reg.failed and "already registered" in reg.failed["second"]


# -- the guide's worked example ----------------------------------------------------------
def test_guide_example_passes_the_kit() -> None:
    """The per-page cache of docs/plugin-guide.md, executed as written, passes every check."""
    from framework.machine.costs import resolve_costs
    from framework.testing import Effort, KitConfig, Target, factory_for, run_all, small_machine

    text = GUIDE.read_text(encoding="utf-8")
    block = re.search(r"<!-- example: page-cache -->\n```python\n(.*?)```", text, re.S)
    assert block is not None
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), str(GUIDE), "exec"), namespace)
    cls = namespace["PageCacheAllocator"]
    target = Target(factory_for(cls), small_machine(), resolve_costs({}), step_seconds=10)
    config = KitConfig(target, unmapped_sites=frozenset({"secretmem"}), effort=Effort(15, 20))
    results = run_all(config)
    assert [r.name for r in results if r.status == "FAIL"] == []
    assert {r.name for r in results if r.status == "SKIP"} == set()

