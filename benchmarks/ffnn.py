"""The feedforward baseline against the LSTM on the default language model's shapes.

    python benchmarks/ffnn.py [--rounds 5] [--hidden 256]

One training gradient (``Network.loss_and_grad``) and one inference (``Network.infer``) on a
window of the default language model: 32 streams of 64 character ids, vocabulary 80, hidden
``--hidden``, for the LSTM and for ``cell="ffnn"`` with windows 4, 8 and 16. Median of
``--rounds`` blocks of about 0.3 s each, in one process; parameters per model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnnlab
from rnnlab.bench import cpu_description


def _median_time(fn, rounds: int) -> float:
    fn()
    out = []
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.3:
            fn()
            n += 1
        out.append((time.perf_counter() - t0) / n)
    return float(np.median(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    B, T, V, H = 32, 64, 80, args.hidden
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, size=(B, T))  # token ids (B, T)
    y = rng.integers(0, V, size=(B, T))
    models = {"lstm": {"cell": "lstm"}}
    models.update({f"ffnn k={k}": {"cell": "ffnn", "window": k} for k in (4, 8, 16)})
    print(f"{cpu_description()}; B={B} T={T} V={V} H={H}, median of {args.rounds}")
    print("| model | parameters | gradient, ms | inference, ms |")
    print("|---|---|---|---|")
    for name, kw in models.items():
        net = rnnlab.Network(V, H, V, seed=0, **kw)
        grad = _median_time(lambda net=net: net.loss_and_grad(x, y), args.rounds)
        infer = _median_time(lambda net=net: net.infer(x), args.rounds)
        print(f"| {name} | {net.n_params:,} | {grad * 1e3:.1f} | {infer * 1e3:.1f} |")


if __name__ == "__main__":
    main()
