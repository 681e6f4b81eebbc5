"""What train-time masks cost: one training update (forward, loss, backward) of a
two-layer network without masks, with dropout between the layers (the kernels still run),
and with recurrent dropout or zoneout (the reference loop runs).

    python benchmarks/dropout.py [--rounds 5]

Prints one row per cell and shape: milliseconds per update (median), and the ratio to the
plain update.
"""

from __future__ import annotations

import argparse

import numpy as np

import rnnlab
from rnnlab.bench.timing import median_times

SHAPES = [(1, 100, 32, 128), (32, 64, 64, 256)]  # B, T, D, H
VARIANTS = {"plain": {}, "dropout 0.3": {"dropout": 0.3},
            "recurrent dropout 0.3": {"recurrent_dropout": 0.3}, "zoneout 0.1": {"zoneout": 0.1}}


def update(cell, B, T, D, H, opts):
    net = rnnlab.Network(D, H, 8, cell=cell, num_layers=2, seed=0, **opts)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype(np.float32)
    y = rng.integers(0, 8, size=(B, T))
    masks_rng = np.random.default_rng(1)

    def run():
        net.loss_and_grad(x, y, masks=net.draw_masks(masks_rng, B, T))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    print("| cell | B, T, D, H | " + " | ".join(VARIANTS) + " |")
    print("|---|---|" + "---|" * len(VARIANTS))
    for cell in ("lstm", "gru"):
        for shape in SHAPES:
            fns = {name: update(cell, *shape, opts) for name, opts in VARIANTS.items()}
            med, _ = median_times(fns, args.rounds, warmup=1)
            base = med["plain"]
            cells = [f"{1e3 * med[k]:.1f}" + ("" if k == "plain" else f" ({med[k] / base:.2f}x)")
                     for k in VARIANTS]
            print(f"| {cell} | {', '.join(map(str, shape))} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
