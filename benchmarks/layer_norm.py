"""The layer-normalised LSTM and GRU (``layer_norm=True``): their fused kernels against the
plain cells' kernels of the same shape, and against their own reference loop.

    python benchmarks/layer_norm.py [--rounds 5] [--shape B,T,D,H]

A training step (forward and backward of a one-layer layer under a linear loss, float32)
timed in one process in alternating blocks of about 0.2 s for: the plain LSTM's kernel,
the layer-normalised LSTM's kernel (``lstm_ln``) and its reference loop, and the same for
the GRU (``gru_ln``). Prints medians in milliseconds and each layer-normalised kernel's
ratio to its plain cell's, with the CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnlab
from rnnlab import kernels
from rnnlab.bench import cpu_description
from rnnlab.kernels import blas


def timed(fn, seconds=0.2):
    fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def training_step(layer, x, dy, fast):
    def run():
        with kernels.use_fast(fast):
            _, _, cache = layer.forward(x)
            layer.backward(cache, dy)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shape", default="32,64,64,256", help="B,T,D,H")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the (slow) reference loops")
    args = parser.parse_args()
    B, T, D, H = (int(v) for v in args.shape.split(","))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    dy = rng.normal(size=(B, T, H)).astype(np.float32)
    runs = {}
    for name, cls in (("LSTM", rnnlab.LSTM), ("GRU", rnnlab.GRU)):
        plain, ln = cls(D, H, seed=0), cls(D, H, seed=0, layer_norm=True)
        runs[f"{name} kernel"] = training_step(plain, x, dy, True)
        runs[f"{name} layer_norm kernel"] = training_step(ln, x, dy, True)
        if not args.no_reference:
            runs[f"{name} layer_norm reference"] = training_step(ln, x, dy, False)
    times = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, fn in runs.items():
            times[k].append(timed(fn))
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    print(f"{cpu_description()}; {blas.allowed_threads()} threads; float32; B={B} T={T} D={D} "
          f"H={H}, one layer; {args.rounds} alternating rounds; ms per training step, medians")
    print("| | ms |")
    print("|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.1f} |")
    for name in ("LSTM", "GRU"):
        print(f"{name}: layer_norm kernel / plain kernel = "
              f"{med[f'{name} layer_norm kernel'] / med[f'{name} kernel']:.2f}")


if __name__ == "__main__":
    main()
