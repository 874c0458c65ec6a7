"""Errors the framework raises on purpose.

Every error a user can cause (a bad name, a bad ``--set`` value, a trace line that does not
parse) is a :class:`FrameworkError`; the CLI prints its message on one line and exits 2.
Errors a plugin causes in the kernel model are not exceptions: they are recorded as
violations (see :mod:`framework.checks`) and the run goes on.
"""

from __future__ import annotations


class FrameworkError(Exception):
    """Base class: a problem the user can fix.

    The message names the bad value and what is allowed.
    """


class UnknownName(FrameworkError):
    """A plugin, workload, machine, parameter or cost name that is not registered."""


class BadParameter(FrameworkError):
    """A ``--set`` value of the wrong type or out of range, or a malformed ``--set``."""


class InputError(FrameworkError):
    """A trace, CSV or module file that does not parse; the message names the file and line."""


class PluginError(FrameworkError):
    """A plugin that failed to load or broke its contract (raised, looped, returned garbage)."""
