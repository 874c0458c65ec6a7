"""Compare Linux kernel allocator designs for memory that leaves the x86-64 direct map.

The distribution is :data:`DISTRIBUTION`; it installs one top-level package, ``framework``,
whose ``framework.designs`` and ``framework.workloads`` are the repository's ``plugins/`` and
``workloads/`` folders (the built-in designs and workloads).
"""

#: The name pip knows this project by (a plugin package depends on it).
DISTRIBUTION = "directmap-framework"
