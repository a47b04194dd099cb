"""Files and folders of the ledger that only their owner may read.

The SQLite database and the spool hold every key name, project, customer id and cost: they
are created 0600 (files) and 0700 (folders), never with the process umask's usual 0644/0755.
An explicit stricter umask still narrows them further (the mode is passed to open/mkdir, which
apply the umask). SQLite creates the ``-wal`` and ``-shm`` files with the database file's own
mode, so a database created private stays private with them.

Only what spendgate creates is affected: an existing file or folder keeps the mode it has
(an operator may have widened it on purpose).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def create_private_file(path: str | Path) -> bool:
    """Create ``path`` empty and private unless it exists; True if it was created here."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def make_private_dirs(path: str | Path) -> None:
    """``mkdir -p path`` where every folder created is private (``Path.mkdir(parents=True)``
    gives the parents it creates the umask's mode, not the one asked for)."""
    missing = []
    folder = Path(path)
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            folder.mkdir(mode=DIR_MODE)


def write_private(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (created private, or truncated if it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
