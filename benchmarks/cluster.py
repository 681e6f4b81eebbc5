"""Data-parallel training over MPI: updates per second at N ranks, and the all-reduce's cost.

    mpiexec -n 1 python benchmarks/cluster.py
    mpiexec -n 2 python benchmarks/cluster.py

Rank 0 prints, for the default language-model update (1x256 LSTM, V = 80, 32 streams of 64
steps, Adam, clip 1; each rank trains 32/N streams on 2/N threads... the cores are
shared out), the median time of an update and updates per second, then the time of
:meth:`rnnlab.parallel.DataParallel.mean`'s one all-reduce for 10^3 to 10^7 float32
parameters (median of 20). With one rank only the update is timed.
"""

from __future__ import annotations

import os
import time

import numpy as np

import rnnlab
from rnnlab import kernels, parallel
from rnnlab.bench import cpu_description


def main() -> None:
    dp = parallel.DataParallel.of(None)
    size = 1 if dp is None else dp.size
    rank = 0 if dp is None else dp.rank
    threads = max(1, (os.cpu_count() or 1) // size)
    rng = np.random.default_rng(0)
    V = 80
    net = rnnlab.Network(V, 256, V, cell="lstm", output="softmax", readout="all", seed=0)
    trainer = rnnlab.Trainer(net, "adam", 1e-3, clip_norm=1.0, log=None, progress=False,
                             comm=dp if dp is not None else False)
    ids, y = rng.integers(0, V, size=(32, 64)), rng.integers(0, V, size=(32, 64))
    times = []
    with kernels.threads(threads):
        for i in range(25):
            start = time.perf_counter()
            trainer.train_step(ids, y)
            if i >= 5:
                times.append(time.perf_counter() - start)
    step = float(np.median(times))
    if rank == 0:
        print(f"{cpu_description()}; {size} rank(s), {threads} thread(s) each")
        print(f"default update: {step * 1e3:.1f} ms, {1 / step:.1f} updates/s "
              f"({net.n_params:,} parameters)")
    if dp is None:
        return
    print("| parameters | all-reduce (median of 20) | per parameter |") if rank == 0 else None
    print("|---|---|---|") if rank == 0 else None
    for n in (10**3, 10**4, 10**5, 10**6, 10**7):
        like = {"w": np.zeros(n, np.float32)}
        grads = {"w": rng.normal(size=n).astype(np.float32)}
        ts = []
        for _ in range(20):
            dp.comm.Barrier()
            start = time.perf_counter()
            dp.mean(1.0, grads, 10, like)
            ts.append(time.perf_counter() - start)
        t = float(np.median(ts))
        if rank == 0:
            print(f"| {n:,} | {t * 1e3:.3f} ms | {t / n * 1e9:.2f} ns |")


if __name__ == "__main__":
    main()
