"""Speech: name the speaker of a Japanese vowel utterance (JapaneseVowels, 9 speakers).

Each utterance is 7 to 29 frames of 12 LPC cepstra, standardised with training statistics;
the batch is zero-padded and the real lengths are passed to the network, so the softmax
reads each utterance's own last state (many-to-one). Trained with rnnlab's Network, Adam
with a cosine schedule and global-norm clipping, once per seed. Prints each seed's test
accuracy on the standard 270 / 370 split, their mean, the accuracy of their averaged
probabilities (an ensemble), and the wall time. Target: accuracy >= 0.97.

Training batches get Gaussian noise of standard deviation 1.2 on the real (standardised)
frames, a data augmentation for 30 utterances per speaker. The settings were chosen by 3-fold
cross-validation on the training split alone, folds stratified by speaker, 4 seeds per fold
(12 networks per setting); mean validation accuracy (LSTM 64, noise 0.2, lr 5e-3, 60 epochs,
batch 16 unless stated):

    setting                                        folds A                        folds B
    LSTM 64, noise 0.2 (the previous setting)      0.947                          0.965
    LSTM 64, noise 0 (2 seeds per fold)            0.944
    LSTM 64, noise 0.3 / 0.4 / 0.5 / 0.6           0.954 / 0.957 / 0.960 / 0.962
    LSTM 64, noise 0.8 / 1.0 / 1.2                 0.969 / 0.967 / 0.971          1.2: 0.977
    LSTM 96, noise 0.2 / 0.3 / 0.4 / 0.5 / 0.6     0.957 / 0.965 / 0.960 / 0.959 / 0.965
    LSTM 96, noise 0.8 / 1.0 / 1.5                 0.969 / 0.971 / 0.969          0.976 / 0.981 / -
    LSTM 96, noise 1.2 (chosen)                    0.979                          0.977
    LSTM 128, noise 0.2 / 0.5 / 0.8 / 1.0          0.948 / 0.963 / 0.962 / 0.972
    GRU 96, noise 0.4                              0.961
    100 epochs: LSTM 64 noise 0.2 / 0.6, 96 0.4    0.951 / 0.965 / 0.954
    lr 3e-3 / 1e-2 (LSTM 96, noise 0.4: 1e-2)      0.939 / 0.954 (0.958)
    batch 8; batch 32 with lr 1e-2 (noise 0.4)     0.954; 0.953
    AdamW weight decay 0.05 / 0.3                  0.952 / 0.950 (LSTM 96, noise 0.4: 0.962)
    time stretch by U(0.8, 1.2) per utterance      0.936
    head on the mean hidden state (real frames)    0.920 (LSTM 128: 0.915)

Folds B is a second random partition, for the leading settings; the loader standardises
with the whole training split's statistics. The test split was not used to choose anything;
scored for the chosen setting only: 0.9829 mean over seeds 0-2 (0.9838, 0.9838, 0.9811),
0.9865 for their averaged probabilities, with the noise drawn by ``rnnlab.apps.NoisyTrainer``
and the per-step products in rnnlab's tile (with BLAS per step, whose sums round
differently: 0.9847; an earlier draw of the noise from the batch-order generator gave
0.9811; the previous setting, LSTM 64 with noise 0.2: 0.9721, seeds 0.9757, 0.9622, 0.9784).

Needs sktime (or aeon) for the bundled .ts files: pip install 'rnnlab[data]'.

    python examples/apps_japanese_vowels.py [--cell lstm] [--hidden 96] [--epochs 60] [--noise 1.2]
        [--seeds 3]
"""

import argparse
import time

import numpy as np

import rnnlab
from rnnlab.apps import NoisyTrainer
from rnnlab.data.speech import japanese_vowels
from rnnlab.optim import cosine

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "elman"])
parser.add_argument("--hidden", type=int, default=96)
parser.add_argument("--epochs", type=int, default=60)
parser.add_argument("--batch", type=int, default=16)
parser.add_argument("--lr", type=float, default=5e-3)
parser.add_argument("--noise", type=float, default=1.2,
                    help="std of Gaussian noise added to training frames (0: none)")
parser.add_argument("--seed", type=int, default=0, help="first seed")
parser.add_argument("--seeds", type=int, default=3, help="networks trained, seed, seed+1, ...")
args = parser.parse_args()

try:
    data = japanese_vowels()
except ValueError as e:
    raise SystemExit(str(e)) from None
print(data, "|", data.meta["split"])
X, y, lengths = data.X_train, data.y_train, data.lengths_train


def train(seed):
    net = rnnlab.Network(data.input_size, args.hidden, data.output_size, cell=args.cell,
                         output="softmax", readout="last", seed=seed)
    steps_per_epoch = -(-len(X) // args.batch)
    # noise on the real (unpadded) frames of each training batch, as `rnnlab train` adds it
    trainer = NoisyTrainer(net, "adam", args.lr, clip_norm=1.0, progress=False,
                           schedule=cosine(args.lr, args.epochs * steps_per_epoch),
                           noise=args.noise, noise_seed=[seed, 1])
    rng = np.random.default_rng(seed)
    for _ in range(args.epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            trainer.train_step(X[idx], y[idx], lengths=lengths[idx])
    return net


accs, probs, start = [], [], time.perf_counter()
for seed in range(args.seed, args.seed + args.seeds):
    net = train(seed)
    probs.append(net.predict(data.X_test, lengths=data.lengths_test))  # (N, 9)
    accs.append(np.mean(probs[-1].argmax(1) == data.y_test))
    print(f"seed {seed}: train loss {net.loss(X, y, lengths=lengths):.4f}, test accuracy "
          f"{accs[-1]:.4f}, {time.perf_counter() - start:.0f} s so far")
wall = time.perf_counter() - start
ensemble = np.mean(np.mean(probs, axis=0).argmax(1) == data.y_test)
print(f"japanese-vowels, {args.cell} H={args.hidden}: test accuracy {np.mean(accs):.4f} mean "
      f"over {args.seeds} seeds ({min(accs):.4f}-{max(accs):.4f}), {ensemble:.4f} for their "
      f"averaged probabilities ({len(data.y_test)} utterances); training {wall:.0f} s, "
      f"{wall / args.seeds:.0f} s per network")
