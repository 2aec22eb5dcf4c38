"""Owner-only data files: 0600 files and 0700 directories for what relaygate keeps on disk.

Databases (the control plane's SQLite file, the sidecar's receipt spool and
ledger), signing keys, the bundle cache and run directories hold receipts,
usage and key material; nobody but the service's own user should read them.
Both services set a process umask of 0o077 as they start (so anything they or
a library create is private, SQLite's -wal/-shm files included), and the
paths below are also created and tightened explicitly, so a file left 0644
by an older version (or created under another umask) is made private on the
next start.
"""

from __future__ import annotations

import os
from pathlib import Path

UMASK = 0o077
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def restrict_umask() -> None:
    """Call first thing in a service's main(): every file it creates is owner-only."""
    os.umask(UMASK)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing (never truncating) and make it 0600."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def private_sqlite(path: Path) -> Path:
    """A SQLite database file made 0600 before SQLite opens it, in a 0700 directory.

    SQLite creates its -wal and -shm files with the database file's permissions;
    ones that already exist are tightened here too.
    """
    path = Path(path)
    private_dir(path.parent)
    private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, 0o600)
    return path
