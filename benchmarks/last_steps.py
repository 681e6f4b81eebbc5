"""Truncated BPTT(k) of a many-to-one network against full BPTT: time and memory per gradient.

    python benchmarks/last_steps.py [--repeats 30] [--steps 400] [--k 20]

A 1x64 LSTM classifier (``readout="last"``) over 32 sequences of ``--steps`` steps of 8
features: ``Network.loss_and_grad`` (full BPTT) against ``bptt.last_steps`` (the gradient
through the last k steps, the earlier ones run forward without caches), timed in one process
in alternating blocks (:func:`rnnlab.bench.timing.median_times`); the peak of traced
allocations of one call each.
"""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np

import rnnlab
from rnnlab import bptt
from rnnlab.bench import cpu_description
from rnnlab.bench.timing import median_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    net = rnnlab.Network(8, 64, 4, cell="lstm", readout="last", seed=0)
    x = rng.normal(size=(32, args.steps, 8)).astype(np.float32)  # (B, T, D)
    y = rng.integers(0, 4, size=32)
    runs = {"full": lambda: net.loss_and_grad(x, y),
            f"k={args.k}": lambda: bptt.last_steps(net, x, y, None, args.k)}
    peaks = {}
    for name, fn in runs.items():
        fn()
        tracemalloc.start()
        fn()
        peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    med, _ = median_times(runs, repeats=args.repeats, warmup=2)  # alternating blocks
    print(f"{cpu_description()}; {args.repeats} timed calls each; T = {args.steps}")
    for name in runs:
        print(f"{name:>6}: {med[name] * 1e3:7.2f} ms per gradient, peak {peaks[name]:6.1f} MB")
    full, short = med["full"], med[f"k={args.k}"]
    print(f"ratio truncated / full: {short / full:.3f}")


if __name__ == "__main__":
    main()
