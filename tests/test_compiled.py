"""The compiled core and its pure-Python twin give the same bytes (docs/performance.md).

A non-editable install compiles ``framework._purepython.CORE_MODULES`` with mypyc when a C
compiler is present (setup.py); ``FRAMEWORK_PURE_PYTHON=1`` runs the same installation on
the ``.py`` sources. ``python -m pytest`` from a checkout imports the checkout in-process,
so what is installed is exercised here through the installed ``framework`` command and
through a child interpreter started outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from framework._purepython import COMPILED, CORE_MODULES, ENV, PURE
from tests.helpers import same_text
from tests.test_cli import run

GOLDEN = Path(__file__).parent / "golden" / "default-suite.json"
DEFAULT_SUITE = ("bench", "--plugins", "all", "--format", "json")

# Run in a child interpreter outside the checkout: where the installed framework is, which
# core modules are extension modules and which core runs.
PROBE = """
import importlib, importlib.metadata, json, framework, framework._purepython as p
mods = {m: importlib.import_module(m) for m in p.CORE_MODULES}
files = importlib.metadata.files(framework.DISTRIBUTION) or []
print(json.dumps({"package": framework.__path__[0], "kind": p.core_kind(),
                  "compiled": sorted(m for m, mod in mods.items() if p.is_compiled(mod)),
                  "files": {m: mod.__file__ for m, mod in mods.items()},
                  "installed": sorted(str(f) for f in files)}))
"""


def probe(tmp_path: Path, pure: bool) -> dict[str, object]:
    """What a plain ``python`` (not pytest's sys.path) imports, with or without the twin."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", ENV)}
    if pure:
        env[ENV] = "1"
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    found: dict[str, object] = json.loads(proc.stdout)
    return found


def has_extension_modules(package: Path) -> bool:
    """True when ``package`` holds a compiled core module (``engine.cpython-*.so`` etc.)."""
    return (package / f"engine{sysconfig.get_config_var('EXT_SUFFIX')}").exists()


def test_default_suite_byte_identical_compiled_and_pure() -> None:
    """The default suite through the installed command, as installed (compiled when it
    was built so) and with FRAMEWORK_PURE_PYTHON=1: the same bytes, and the golden ones."""
    as_installed = run(*DEFAULT_SUITE, env={ENV: "0"})
    pure = run(*DEFAULT_SUITE, env={ENV: "1"})
    assert as_installed.returncode == 0, as_installed.stderr
    assert pure.returncode == 0, pure.stderr
    same_text(pure.stdout, as_installed.stdout)
    same_text(GOLDEN.read_text(), pure.stdout)


def test_version_names_the_core() -> None:
    """``framework --version`` says which core runs; the twin always says pure Python."""
    pure = run("--version", env={ENV: "1"})
    assert pure.stdout.splitlines()[1] == f"core: {PURE}"
    default = run("--version", env={ENV: "0"})
    assert default.stdout.splitlines()[1] in (f"core: {COMPILED}", f"core: {PURE}")


def test_twin_loads_every_core_module_from_source(tmp_path: Path) -> None:
    """With FRAMEWORK_PURE_PYTHON=1 no core module is an extension module, whether the
    installation has them or not."""
    found = probe(tmp_path, pure=True)
    assert found["kind"] == PURE and found["compiled"] == []
    files = found["files"]
    assert isinstance(files, dict)
    assert sorted(files) == sorted(CORE_MODULES)
    assert all(str(f).endswith(".py") for f in files.values())


def test_installed_core_is_compiled(tmp_path: Path) -> None:
    """An installation that holds the compiled core runs all of it compiled; one installed
    from a wheel (not the checkout) where a C compiler exists must hold it (a mypyc or C
    failure at install time falls back silently to plain Python, with only a warning)."""
    found = probe(tmp_path, pure=False)
    package = Path(str(found["package"]))
    installed = found["installed"]
    assert isinstance(installed, list)
    if "framework/engine.py" not in installed:  # an editable install lists no sources
        pytest.skip(f"framework is imported from the source tree {package} (an editable "
                    "install), which holds no compiled modules by design")
    if not has_extension_modules(package):
        if os.environ.get("FRAMEWORK_NO_COMPILE", "") not in ("", "0"):
            pytest.skip("FRAMEWORK_NO_COMPILE is set: the core was installed as plain Python")
        cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
        if shutil.which(cc) is None:
            pytest.skip(f"no C compiler ({cc}): the core was installed as plain Python")
        pytest.fail(f"{package} was installed without its compiled core although {cc} "
                    "exists: see the warning of `pip install -v .`")
    assert found["kind"] == COMPILED
    assert found["compiled"] == sorted(CORE_MODULES)
    tops = {f.split("/")[0] for f in installed if not f.split("/")[0].endswith(".dist-info")}
    tops.discard("..")  # the console script, in the environment's bin/
    assert tops == {"framework"}  # mypyc's shared library too (framework/_core__mypyc.*)
    assert any(f.startswith("framework/_core__mypyc.") for f in installed)
