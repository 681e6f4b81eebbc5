"""The projected LSTM (``proj_size``): its fused kernel against the reference loop and
PyTorch's ``nn.LSTM(proj_size=...)``, and against the unprojected LSTM of the same H.

    python benchmarks/lstm_projection.py [--rounds 5]

For each shape (B, T, D, H, P), a training step (forward and backward of a one-layer
module under a linear loss) timed in one process in alternating blocks of about 0.2 s:
rnnlab's kernel (``lstmp``), rnnlab's reference loop (``use_fast(False)``), PyTorch
(float32, the same number of threads), and rnnlab's plain LSTM of the same H (no
projection), and rnnlab's peephole LSTM of the same H (its kernel, ``lstm_peepholes``).
Prints medians in milliseconds, with the CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import rnnlab
from rnnlab import interop, kernels
from rnnlab.bench import cpu_description
from rnnlab.kernels import blas

SHAPES = ((1, 100, 32, 128, 32), (8, 100, 64, 256, 64), (32, 100, 64, 256, 64))


def timed(fn, seconds=0.2):
    fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def rnnlab_step(layer, x, dy, fast):
    def run():
        with kernels.use_fast(fast):
            _, _, cache = layer.forward(x)
            layer.backward(cache, dy)
    return run


def torch_step(module, x, dy):
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)

    def run():
        module.zero_grad()
        y, _ = module(xt)
        (y * dyt).sum().backward()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    threads = blas.allowed_threads()
    torch.set_num_threads(threads)
    print(f"{cpu_description()}; {threads} threads; float32; {args.rounds} alternating rounds;"
          " ms per training step, medians")
    print("| B, T, D, H, P | kernel | reference loop | PyTorch | plain LSTM (H) "
          "| peepholes (H, kernel) | kernel/PyTorch |")
    print("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for B, T, D, H, P in SHAPES:
        torch.manual_seed(0)
        module = torch.nn.LSTM(D, H, proj_size=P, batch_first=True)
        layer = interop.from_torch(module)
        plain = rnnlab.LSTM(D, H, seed=0)
        peep = rnnlab.LSTM(D, H, peepholes=True, seed=0)
        x = rng.normal(size=(B, T, D)).astype(np.float32)
        dy = rng.normal(size=(B, T, P)).astype(np.float32)
        dyh = rng.normal(size=(B, T, H)).astype(np.float32)
        runs = {"kernel": rnnlab_step(layer, x, dy, True),
                "reference": rnnlab_step(layer, x, dy, False),
                "torch": torch_step(module, x, dy),
                "plain": rnnlab_step(plain, x, dyh, True),
                "peepholes": rnnlab_step(peep, x, dyh, True)}
        times = {k: [] for k in runs}
        for _ in range(args.rounds):
            for k, fn in runs.items():
                times[k].append(timed(fn))
        ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
        print(f"| {B}, {T}, {D}, {H}, {P} | {ms['kernel']:.2f} | {ms['reference']:.2f} | "
              f"{ms['torch']:.2f} | {ms['plain']:.2f} | {ms['peepholes']:.2f} | "
              f"{ms['kernel'] / ms['torch']:.2f} |")


if __name__ == "__main__":
    main()
