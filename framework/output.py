"""The ``--output`` results file: checked before anything runs, replaced atomically after.

Contract:

- The path must name a regular file or nothing. A device (``/dev/full``), a FIFO, a socket or
  a directory is refused, so running as root can never turn ``/dev/null`` into a JSON file.
- A symlink is written *through*: the link stays, its target is replaced. A link to something
  that is not a regular file is refused like the thing itself.
- The directory must exist and take a new file: this is tried (a temporary file created and
  removed) before the first cell runs, so a typo costs no modelling time.
- Each write goes to a temporary file in the same directory and is renamed over the target
  (readers never see half a file). The temporary file is removed whatever happens, including
  Ctrl-C in the middle of a write.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from framework.errors import FrameworkError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


class OutputError(FrameworkError):
    """The ``--output`` path cannot take the results file."""


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


class OutputFile:
    """A results file that is checked on creation and replaced whole on each :meth:`write`.

    :param path: what the user gave ``--output``.
    :raises OutputError: (one line) when the path cannot take a regular file.
    """

    def __init__(self, path: str) -> None:
        self.shown = path
        try:
            self.target = self._resolve(Path(path))
        except OSError as exc:  # a name too long, a loop of symlinks
            raise OutputError(f"--output {path[:60]}: cannot use: {_strerror(exc)}") from None
        self._probe()

    def _resolve(self, path: Path) -> Path:
        where = f"--output {self.shown}"
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise OutputError(f"{where}: cannot use: {_strerror(exc)}") from None
        if mode is not None and not stat.S_ISREG(mode):
            via = f" (the symlink's target {target})" if target != path else ""
            raise OutputError(f"{where}: is {_kind(mode)}{via}; expected a regular file "
                              "or a new file name")
        parent = target.parent
        if not parent.is_dir():
            raise OutputError(f"{where}: directory {str(parent)!r} does not exist")
        return target

    def _probe(self) -> None:
        """Create and remove a file beside the target: the directory really takes files."""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp",
                                       dir=self.target.parent)
        except OSError as exc:
            raise OutputError(f"--output {self.shown}: cannot write in directory "
                              f"{str(self.target.parent)!r}: {_strerror(exc)}") from None
        os.close(fd)
        os.unlink(tmp)

    def write(self, text: str) -> None:
        """Replace the target's contents with ``text`` atomically.

        :raises OutputError: when the write fails (disk full, directory removed meanwhile).
        """
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".tmp",
                                       dir=self.target.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            self._keep_mode(tmp)
            os.replace(tmp, self.target)
            tmp = ""
        except OSError as exc:
            raise OutputError(f"--output {self.shown}: cannot write: {_strerror(exc)}"
                              ) from None
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _keep_mode(self, tmp: str) -> None:
        """An existing file keeps its permissions (mkstemp creates 0600); a new one gets the
        mode ``open()`` would give it under the user's umask."""
        try:
            mode = stat.S_IMODE(os.stat(self.target).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
