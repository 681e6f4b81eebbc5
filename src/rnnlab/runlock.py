"""One writer per run folder: an operating-system lock held while a run is being written.

``rnnlab train --resume RUN`` started twice, or a new run aimed at a folder in use, would
otherwise interleave checkpoints and log lines of two processes. :func:`hold` takes an
exclusive ``flock`` on ``RUN/.lock`` and refuses, with one line, a folder another process
holds. The kernel drops the lock when its holder exits however it exits, ``kill -9``
included, so a lock is never stale and nothing has to be cleaned up by hand; the file
itself stays, holding the last holder's process id for the message. Where ``fcntl`` does
not exist (Windows), no lock is taken.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: run folders are not locked
    fcntl = None

LOCK_FILE = ".lock"


@contextmanager
def hold(folder):
    """Hold ``folder``'s lock for the ``with`` block; yields ``folder`` as a Path.

    A folder that does not exist yet is created (with its parents) so that its lock can be
    taken before anything is written in it; if the block fails while the folder holds
    nothing but the lock, the folder is removed again, so a refused run leaves no trace.

    Raises
    ------
    ValueError
        ``"RUN is in use by another rnnlab process (pid N)"`` when another process holds
        the lock (this one as well, through another ``hold``).
    """
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield folder
        return
    lock = folder / LOCK_FILE
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ValueError(f"{folder} is in use by another rnnlab process (pid {pid})"
                             ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        try:
            yield folder
        except BaseException:
            if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
                with suppress(OSError):  # another process may just have written in it
                    lock.unlink()  # still held: whoever opens it next makes a new one
                    folder.rmdir()
            raise
    finally:
        os.close(fd)  # releases the lock
