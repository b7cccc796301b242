"""The store's fsync helper: a process of its own that fsyncs the WAL when asked (see
:mod:`gitops.store.syncer`). Run as ``python -I -S fsync_helper.py WAL``; it imports nothing of the
project.

Each byte read on stdin asks for a sync of every commit made before it; the asks read together share
one ``fdatasync``, and each gets its answer byte on stdout, in order: 0, or the errno of the failure.
It ends when stdin closes (the service closed the store, or died).
"""

from __future__ import annotations

import os
import sys

_sync_data = getattr(os, "fdatasync", os.fsync)


def sync(wal: str, fd: int | None) -> tuple[int | None, int]:
    """fsyncs `wal` (opened once, on the first sync that finds it); returns the descriptor and 0 or
    the errno of the failure."""
    try:
        if fd is None:
            fd = os.open(wal, os.O_RDONLY)
            folder = os.open(os.path.dirname(wal) or ".", os.O_RDONLY)  # the file's name is new
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        _sync_data(fd)
    except FileNotFoundError:  # no WAL yet: every commit is in the database file, synced
        return fd, 0
    except OSError as failure:
        return fd, (failure.errno or 5) & 0xFF
    return fd, 0


def main(wal: str) -> None:
    fd = None
    while asks := os.read(0, 65536):
        fd, failure = sync(wal, fd)
        os.write(1, bytes([failure]) * len(asks))


if __name__ == "__main__":
    main(sys.argv[1])
