"""Data parallelism over MPI: every process (rank) takes its share of each global batch.

Shape legend: B rows of a global batch, N ranks.

Each rank computes the loss and gradients of its rows; :meth:`DataParallel.mean` adds up
``count * loss`` and ``count * gradient`` of every rank in one flat buffer (one
all-reduce) and divides by the total count, so every rank holds the global batch's mean
loss and gradient, the same to the last bits on every rank, before the NaN guard, the
clip and the optimiser step (:meth:`rnnlab.Trainer.gathered`, then ``apply``), which
therefore make the same update everywhere. Rank 0 alone writes files. The transport is
MPI (mpi4py, optional: ``pip install "rnnlab[cluster]"``), nothing of rnnlab's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

#: environment variables through which MPI launchers (MPICH's and Intel's hydra, Open MPI,
#: Slurm's PMI) tell a process how many ranks it belongs to
LAUNCH_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")
#: seconds a collective may wait for the other ranks before this one gives up
TIMEOUT = 600.0


class RankLost(RuntimeError):
    """This rank stops because another one has: one line for the user, no traceback."""


#: signals through which launchers tell the surviving ranks that one has failed: MPICH's
#: hydra with -disable-auto-cleanup sends SIGUSR1; Open MPI and Slurm send SIGTERM (Slurm
#: also at a time limit). MPICH's default is SIGKILL at once, which nothing can catch.
STOP_SIGNALS = {"SIGUSR1": "another rank has failed", "SIGTERM": "the launcher is ending "
                "the job (a rank that failed, or a time limit)"}


def mpi():
    """The ``mpi4py.MPI`` module, or an ImportError naming the extra."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError('data-parallel training needs mpi4py and an MPI library: pip install '
                          '"rnnlab[cluster]"') from None
    return MPI


def launched_ranks() -> int:
    """How many ranks the launcher started this process among (1 when none did)."""
    for name in LAUNCH_SIZE:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


class DataParallel:
    """One rank's view of data-parallel training over an MPI communicator ``comm``."""

    def __init__(self, comm, timeout: float = TIMEOUT):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.timeout = timeout

    @classmethod
    def of(cls, comm):
        """``comm`` as a :class:`DataParallel`, or None for one process: ``comm`` None
        means the MPI world when a launcher started more than one rank (mpiexec, srun),
        False never; a world of one rank is None too."""
        if comm is False:
            return None
        if comm is None:
            if launched_ranks() < 2:
                return None
            comm = mpi().COMM_WORLD
        if isinstance(comm, DataParallel):
            return comm
        if not all(hasattr(comm, name) for name in ("Get_rank", "Get_size", "Iallreduce")):
            raise ValueError(f"comm must be an mpi4py communicator, None or False, got "
                             f"{type(comm).__name__}")
        return None if comm.Get_size() == 1 else cls(comm)

    @property
    def root(self) -> bool:
        """Whether this is rank 0, the one that writes files."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n``: a contiguous block, the first
        ``n % N`` ranks one row more (none when ``n`` < N for the last ranks)."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def mean(self, loss: float, grads: dict, count: int, like: dict):
        """The global mean loss and gradients from this rank's mean ``loss`` and
        ``grads`` over ``count`` positions (``grads`` None with ``count`` 0: zeros shaped
        as ``like``); ``(loss, grads)``, the same on every rank."""
        names = list(like)
        dtype = np.result_type(*(like[k].dtype for k in names))
        sizes = [like[k].size for k in names]
        buf = np.empty(sum(sizes) + 2, dtype=np.float64 if dtype == np.float64 else dtype)
        at = 0
        for name, n in zip(names, sizes, strict=True):
            if count:
                np.multiply(grads[name].reshape(-1), count, out=buf[at:at + n])
            else:
                buf[at:at + n] = 0
            at += n
        buf[-2], buf[-1] = (loss * count if count else 0.0), count
        self._allreduce(buf)
        total = buf[-1]
        if total == 0:
            raise ValueError("a global batch with no real positions on any rank")
        buf /= total
        out, at = {}, 0
        for name, n in zip(names, sizes, strict=True):
            out[name] = buf[at:at + n].reshape(like[name].shape).astype(like[name].dtype)
            at += n
        return float(buf[-2]), out

    @contextlib.contextmanager
    def watched(self):
        """Within the block, a launcher's stop signal (:data:`STOP_SIGNALS`) raises
        :class:`RankLost` at once, rather than leaving this rank in a collective that the
        lost rank never joins (outside the main thread: nothing is installed)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(signum, frame):
            name = signal.Signals(signum).name
            raise RankLost(f"rank {self.rank} of {self.size} stopped: {STOP_SIGNALS[name]} "
                           f"({name})")

        before = {name: signal.signal(getattr(signal, name), stop) for name in STOP_SIGNALS}
        try:
            yield
        finally:
            for name, handler in before.items():
                signal.signal(getattr(signal, name), handler)

    @contextlib.contextmanager
    def witnessed(self, run_dir, resumes: bool = True):
        """On rank 0, a witness for the block: a small process of its own session (so a
        launcher that kills the ranks does not kill it) that waits on a pipe from this one.
        If the block ends in any way Python sees, the witness stays silent; if this
        process vanishes instead (killed: MPICH's launcher kills every rank at once when
        one dies), it writes the one line that says so, and whether the last checkpoint
        in ``run_dir`` resumes (``resumes``). Other ranks: nothing."""
        if not self.root:
            yield
            return
        read, write = os.pipe()
        message = (f"rnnlab: error: the run on {self.size} ranks ended before it finished: a "
                   f"rank died (or was killed) and the launcher stopped the others")
        hint = f"rnnlab train --resume {run_dir}" if resumes else ""
        subprocess.Popen([sys.executable, "-c", "from rnnlab.parallel import _witness; "
                          "_witness()", str(read), message, str(run_dir), hint],
                         pass_fds=[read], start_new_session=True, stdin=subprocess.DEVNULL)
        os.close(read)
        try:
            yield
        finally:
            os.write(write, b"done")
            os.close(write)

    def _allreduce(self, buf: np.ndarray) -> None:
        """Sum ``buf`` over the ranks in place, giving up after :attr:`timeout` seconds
        with one line (a rank that stopped answering) rather than waiting forever."""
        MPI = mpi()
        request = self.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        deadline, pause = time.monotonic() + self.timeout, 1e-5
        while not request.Test():
            if time.monotonic() > deadline:
                raise RankLost(f"rank {self.rank} of {self.size}: another rank has not "
                               f"answered for {self.timeout:g} s; stopping")
            time.sleep(pause)
            pause = min(2 * pause, 1e-3)


def _witness() -> None:
    """The witness process of :meth:`DataParallel.witnessed`: ``FD MESSAGE RUN HINT``."""
    fd, message, run_dir, hint = int(sys.argv[1]), *sys.argv[2:5]
    data = b""
    while chunk := os.read(fd, 64):
        data += chunk
    if data.endswith(b"done"):
        return
    if hint and (Path(run_dir) / "checkpoint.ckpt").exists():
        message += f"; the last checkpoint resumes: {hint}"
    elif hint:
        message += f"; it had written no checkpoint yet ({run_dir} starts from update 0)"
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
