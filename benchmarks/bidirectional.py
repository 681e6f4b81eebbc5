"""Bidirectional layers: rnnlab against PyTorch, and the two directions side by side or not.

    python benchmarks/bidirectional.py [--rounds 9]

For each cell and shape (B, T, D, H), a training step (forward and backward of a
bidirectional one-layer module under a linear loss) and an inference, timed in one process
in alternating blocks of about 0.2 s: rnnlab with the directions side by side, one after
the other, and as it chooses by default (side by side from
``rnnlab.kernels.blas.SIDE_BY_SIDE_FROM`` multiply-adds per direction), and PyTorch
(float32, the same number of threads, what a PyTorch user writes:
``nn.LSTM(..., bidirectional=True)``). Prints medians and ratios (below 1: rnnlab
faster), with the CPU.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnnlab import interop
from rnnlab.bench import cpu_description
from rnnlab.kernels import blas

SHAPES = ((1, 100, 32, 64), (8, 100, 64, 128), (32, 100, 64, 128))


def timed(fn, seconds=0.2):
    fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    threads = blas.allowed_threads()
    torch.set_num_threads(threads)
    print(f"{cpu_description()}; {threads} threads; float32; {args.rounds} alternating rounds")
    print("| cell | B, T, D, H | work | rnnlab side by side | one after the other | PyTorch "
          "| side/one | rnnlab (default)/PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for cell, module_cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        for shape in SHAPES:
            measure(cell, module_cls, *shape, args.rounds, rng)


def measure(cell, module_cls, B, T, D, H, rounds, rng) -> None:
    """Print the two rows (train, infer) of one cell and shape."""
    torch.manual_seed(0)
    module = module_cls(D, H, batch_first=True, bidirectional=True)
    layer = interop.from_torch(module)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    w = np.cos(np.arange(B * T * 2 * H, dtype=np.float32)).reshape(B, T, 2 * H)
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)

    def ours_train():
        y, _, cache = layer.forward(x)
        layer.backward(cache, w, input_grad=False)

    def theirs_train():
        module.zero_grad(set_to_none=True)
        y, _ = module(xt)
        (y * wt).sum().backward()

    def ours_infer():
        layer.infer(x)

    def theirs_infer():
        with torch.inference_mode():
            module(xt)

    for work, ours, theirs in (("train", ours_train, theirs_train),
                               ("infer", ours_infer, theirs_infer)):
        times = {"side": [], "one": [], "default": [], "torch": []}
        default = blas.SIDE_BY_SIDE_FROM
        for _ in range(rounds):
            blas.SIDE_BY_SIDE_FROM = 0
            times["side"].append(timed(ours))
            blas.SIDE_BY_SIDE_FROM = 1 << 62
            times["one"].append(timed(ours))
            blas.SIDE_BY_SIDE_FROM = default
            times["default"].append(timed(ours))
            times["torch"].append(timed(theirs))
        med = {k: float(np.median(v)) for k, v in times.items()}
        print(f"| {cell} | {B}, {T}, {D}, {H} | {work} | {med['side'] * 1e3:.2f} ms "
              f"| {med['one'] * 1e3:.2f} ms | {med['torch'] * 1e3:.2f} ms "
              f"| {med['side'] / med['one']:.2f} "
              f"| {med['default'] / med['torch']:.2f} |", flush=True)

if __name__ == "__main__":
    main()
