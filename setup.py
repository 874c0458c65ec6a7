"""Build hook: compile the core with mypyc when it can, else install it as plain Python.

Everything else about the package is in pyproject.toml. A non-editable install (``pip install
.``) compiles :data:`framework._purepython.CORE_MODULES` with mypyc when a C compiler is
present; the ``.py`` sources are installed beside the extension modules, so
``FRAMEWORK_PURE_PYTHON=1`` can still run them (docs/performance.md, "Compiled core").
The install still succeeds, with the plain modules only, when:

- it is editable (``pip install -e .``): an extension module built into the source tree
  would shadow the ``.py`` a developer edits, and stale compiled code would run silently;
- there is no C compiler, or mypyc is missing, or it fails on the sources, or the C build
  fails (a warning says which);
- ``FRAMEWORK_NO_COMPILE=1`` is set.
"""

from __future__ import annotations

import importlib.machinery
import os
import runpy
import shlex
import shutil
import sys
import sysconfig
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CORE = runpy.run_path(os.path.join(HERE, "framework", "_purepython.py"))["CORE_MODULES"]
EDITABLE_COMMANDS = {"editable_wheel", "develop"}
#: The commands that build extension modules; metadata commands (egg_info, dist_info, sdist)
#: skip mypyc, which would otherwise run once more just to describe the package.
BUILD_COMMANDS = {"bdist_wheel", "build", "build_ext", "install"}


def _warn(why: str) -> None:
    print(f"directmap-framework: installing the core as plain Python: {why}", file=sys.stderr)


def _why_not_compile() -> str | None:
    """The reason not to compile, or None to compile."""
    if os.environ.get("FRAMEWORK_NO_COMPILE", "") not in ("", "0"):
        return "FRAMEWORK_NO_COMPILE is set"
    if EDITABLE_COMMANDS.intersection(sys.argv[1:]):
        return "editable install (compiled modules would shadow the edited sources)"
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if shutil.which(shlex.split(cc)[0]) is None:
        return f"no C compiler ({cc!r} not found)"
    return None


class CleanBuildPy(build_py):
    """build_py that first removes extension modules left in the build folder.

    pip builds in the source tree's ``build/``, and the wheel takes everything there: an
    extension module from an earlier compiled build would otherwise ship beside newer
    sources (and shadow them) when this build does not compile, or fails to.
    """

    def run(self) -> None:
        package = os.path.join(self.build_lib, "framework")
        suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
        for folder, _, files in os.walk(package):
            for name in files:
                if name.endswith(suffixes):
                    os.remove(os.path.join(folder, name))
        super().run()


class OptionalBuildExt(build_ext):
    """build_ext that drops every compiled module when any of them fails to build.

    The modules share one mypyc runtime library: half a compiled core would fail to import,
    so it is all of them or none.
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CompileError, LinkError, a missing header: all the same
            _warn(f"the C build failed ({type(exc).__name__}: {exc})")
            for ext in self.extensions:
                built = self.get_ext_fullpath(ext.name)
                if os.path.exists(built):
                    os.remove(built)
            self.extensions = []


def _extensions() -> list[Any]:
    editable = bool(EDITABLE_COMMANDS.intersection(sys.argv[1:]))
    if not editable and not BUILD_COMMANDS.intersection(sys.argv[1:]):
        return []
    why = _why_not_compile()
    if why is not None:
        _warn(why)
        return []
    paths = [os.path.join(*name.split(".")) + ".py" for name in CORE]
    try:
        from mypyc.build import mypycify

        # One group (one shared library), compiled as mypyc's "separate" mode does, without
        # whole-program class analysis: with it, a compiled method checks ``self`` by exact
        # type, and the designs' plain-Python subclasses of StatusQuo could not call it.
        # The group's shared library is framework/_core__mypyc.*.so: inside the package.
        return list(mypycify(paths, opt_level="3", debug_level="0",
                             separate=[(paths, "framework._core")]))
    except BaseException as exc:  # mypyc reports type errors by SystemExit
        _warn(f"mypyc failed ({type(exc).__name__}: {exc})")
        return []


setup(ext_modules=_extensions(),
      cmdclass={"build_py": CleanBuildPy, "build_ext": OptionalBuildExt})
