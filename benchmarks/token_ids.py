"""The default language-model update with token ids against the same with one-hot inputs.

    python benchmarks/token_ids.py [--rounds 9]

The update of ``rnnlab train`` (1x256 LSTM, V = 80, 32 streams of 64 steps, Adam, clip 1)
fed the ids themselves (the input projection a row gather, its weight gradient summed per
id) or their one-hot vectors (a (B, T, V) array, one GEMM each way, as before), timed in one
process in alternating blocks of about 0.5 s. Prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnlab
from rnnlab.bench import cpu_description
from rnnlab.data.batching import one_hot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    V = 80
    net = rnnlab.Network(V, 256, V, cell="lstm", output="softmax", readout="all", seed=0)
    trainer = rnnlab.Trainer(net, "adam", 1e-3, clip_norm=1.0, log=None, progress=False)
    ids, y = rng.integers(0, V, size=(32, 64)), rng.integers(0, V, size=(32, 64))
    runs = {"ids": lambda: trainer.train_step(ids, y),
            "one-hot": lambda: trainer.train_step(one_hot(ids, V), y)}
    times = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(args.rounds):
        for name, fn in runs.items():
            start, n = time.perf_counter(), 0
            while time.perf_counter() - start < 0.5:
                fn()
                n += 1
            times[name].append((time.perf_counter() - start) / n)
    a, b = (float(np.median(times[k])) for k in ("ids", "one-hot"))
    print(f"{cpu_description()}; {args.rounds} alternating rounds")
    print(f"default language-model update: ids {a * 1e3:.1f} ms, one-hot {b * 1e3:.1f} ms, "
          f"ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
