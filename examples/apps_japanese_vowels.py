"""Speech: name the speaker of a Japanese vowel utterance (JapaneseVowels, 9 speakers).

Each utterance is 7 to 29 frames of 12 LPC cepstra, standardised with training statistics;
the batch is zero-padded and the real lengths are passed to the network, so the softmax
reads each utterance's own last state (many-to-one). Trained with rnnlab's Network, Adam
with a cosine schedule and global-norm clipping. Prints test accuracy on the standard
270 / 370 split and the wall time. Target (issue 7): accuracy >= 0.97.

Needs sktime (or aeon) for the bundled .ts files: pip install 'rnnlab[data]'.

    python examples/apps_japanese_vowels.py [--cell lstm] [--hidden 64] [--epochs 60]
"""

import argparse
import time

import numpy as np

import rnnlab
from rnnlab.data.speech import japanese_vowels
from rnnlab.optim import Adam, cosine

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "elman"])
parser.add_argument("--hidden", type=int, default=64)
parser.add_argument("--epochs", type=int, default=60)
parser.add_argument("--batch", type=int, default=16)
parser.add_argument("--lr", type=float, default=5e-3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

try:
    data = japanese_vowels()
except ValueError as e:
    raise SystemExit(str(e)) from None
print(data, "|", data.meta["split"])
X, y, lengths = data.X_train, data.y_train, data.lengths_train
net = rnnlab.Network(data.input_size, args.hidden, data.output_size, cell=args.cell,
                     output="softmax", readout="last", seed=args.seed)
steps_per_epoch = -(-len(X) // args.batch)
opt, schedule = Adam(lr=args.lr), cosine(args.lr, args.epochs * steps_per_epoch)
rng = np.random.default_rng(args.seed)
start, step = time.perf_counter(), 0
for epoch in range(args.epochs):
    order = rng.permutation(len(X))
    for i in range(0, len(order), args.batch):
        idx = order[i:i + args.batch]
        res = net.loss_and_grad(X[idx], y[idx], lengths=lengths[idx])
        rnnlab.clip.clip_by_global_norm(res.grads, 1.0)
        opt.step(net.params, res.grads, lr=schedule(step))
        step += 1
    if (epoch + 1) % 10 == 0 or epoch + 1 == args.epochs:
        loss = net.loss(X, y, lengths=lengths)
        print(f"epoch {epoch + 1}: train loss {loss:.4f}, {time.perf_counter() - start:.1f} s")
wall = time.perf_counter() - start
probs = net.predict(data.X_test, lengths=data.lengths_test)
acc = np.mean(probs.argmax(1) == data.y_test)
print(f"japanese-vowels, {args.cell} H={args.hidden}: test accuracy {acc:.4f} "
      f"({len(data.y_test)} utterances), training {wall:.1f} s for {args.epochs} epochs")
