"""Handwriting: scikit-learn's 8x8 digits read row by row (8 steps of 8 pixels).

A many-to-one recurrent classifier (softmax on the state after the last row), trained with
rnnlab's Network, one ``Trainer.train_step`` (Adam, global-norm clipping) per mini-batch,
once per seed.
Prints each seed's test accuracy on the fixed stratified split of
``rnnlab.data.images.digits`` (1,347 / 450), their mean, the accuracy of their averaged
probabilities (an ensemble), and the wall time. Target: accuracy >= 0.97.

The defaults (LSTM, 64 units, Adam 1e-2, 30 epochs) were chosen on a validation split carved
from the training images (300 of them); the test split was not used to choose anything.

    python examples/apps_digits.py [--cell lstm] [--hidden 64] [--epochs 30] [--patch 2] [--seeds 3]
"""

import argparse
import time

import numpy as np

import rnnlab
from rnnlab.data.images import digits
from rnnlab.optim import cosine

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "elman"])
parser.add_argument("--hidden", type=int, default=64)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--lr", type=float, default=1e-2)
parser.add_argument("--patch", type=int, default=None, help="square patches instead of rows")
parser.add_argument("--seed", type=int, default=0, help="first seed")
parser.add_argument("--seeds", type=int, default=3, help="networks trained, seed, seed+1, ...")
args = parser.parse_args()

data = digits(patch=args.patch)
print(data, "|", data.meta["split"])


def train(seed):
    net = rnnlab.Network(data.input_size, args.hidden, data.output_size, cell=args.cell,
                         output="softmax", readout="last", seed=seed)
    steps_per_epoch = -(-len(data.X_train) // args.batch)
    trainer = rnnlab.Trainer(net, "adam", args.lr, clip_norm=1.0, progress=False,
                             schedule=cosine(args.lr, args.epochs * steps_per_epoch))
    rng = np.random.default_rng(seed)
    for _ in range(args.epochs):
        order = rng.permutation(len(data.X_train))
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            trainer.train_step(data.X_train[idx], data.y_train[idx])
    return net


accs, probs, start = [], [], time.perf_counter()
for seed in range(args.seed, args.seed + args.seeds):
    net = train(seed)
    probs.append(net.predict(data.X_test))  # (N, 10)
    accs.append(np.mean(probs[-1].argmax(1) == data.y_test))
    print(f"seed {seed}: train loss {net.loss(data.X_train, data.y_train):.4f}, test accuracy "
          f"{accs[-1]:.4f}, {time.perf_counter() - start:.0f} s so far")
wall = time.perf_counter() - start
ensemble = np.mean(np.mean(probs, axis=0).argmax(1) == data.y_test)
print(f"digits, {args.cell} H={args.hidden}, {data.X_train.shape[1]} steps of "
      f"{data.input_size}: test accuracy {np.mean(accs):.4f} mean over {args.seeds} seeds "
      f"({min(accs):.4f}-{max(accs):.4f}), {ensemble:.4f} for their averaged probabilities "
      f"({len(data.y_test)} images); training {wall:.0f} s, {wall / args.seeds:.0f} s per network")
