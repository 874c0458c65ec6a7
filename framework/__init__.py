"""Compare Linux kernel allocator designs for memory that leaves the x86-64 direct map.

The distribution is :data:`DISTRIBUTION`; it installs one top-level package, ``framework``,
whose ``framework.designs`` and ``framework.workloads`` are the repository's ``plugins/`` and
``workloads/`` folders (the built-in designs and workloads).

An installed copy may run a core compiled with mypyc; ``FRAMEWORK_PURE_PYTHON=1`` forces the
plain modules (:mod:`framework._purepython`), which must happen here, before any of them is
imported.
"""

from framework import _purepython

_purepython.install()

#: The name pip knows this project by (a plugin package depends on it).
DISTRIBUTION = "directmap-framework"
