"""Run under ``mpiexec -n N``: train a small network data-parallel and let rank 0 save its
parameters (``python train_ranks.py OUT.npz DTYPE BPTT [masks]``); tests/test_parallel.py
and tests/test_dropout.py (with ``masks``: dropout, recurrent dropout and zoneout) compare
them with one process's."""

import sys

import numpy as np

import rnnlab
from rnnlab import parallel

#: the train-time options of the ``masks`` variant
MASKED = dict(num_layers=2, dropout=0.3, recurrent_dropout=0.2, zoneout=(0.2, 0.1))


def problem(dtype, bptt, masks=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(22, 9, 3)).astype(dtype)
    lengths = rng.integers(3, 10, size=22)
    y = rng.integers(0, 4, size=(22, 9))
    net = rnnlab.Network(3, 6, 4, cell="lstm", readout="all", seed=1, dtype=dtype,
                         **(MASKED if masks else {}))
    trainer = rnnlab.Trainer(net, "adam", 0.01, clip_norm=0.5, batch_size=8, seed=2,
                             bptt_steps=bptt, log=None, progress=False)
    return net, trainer, x, y, lengths


def main():
    out, dtype, bptt = sys.argv[1], np.dtype(sys.argv[2]), sys.argv[3]
    bptt = None if bptt == "none" else tuple(int(k) for k in bptt.split(","))
    net, trainer, x, y, lengths = problem(dtype, bptt, masks=sys.argv[4:] == ["masks"])
    assert trainer.parallel is not None or parallel.launched_ranks() == 1
    trainer.fit(x, y, lengths=lengths, epochs=7 if bptt is None else 3)
    if trainer.parallel is None or trainer.parallel.root:
        np.savez(out, steps=trainer.step_count, **net.params)


if __name__ == "__main__":
    main()
