"""Run under ``mpiexec -n 2``: ``python die_ranks.py CHECKPOINT``; rank 1 dies (exit 9,
no cleanup) at update 3 of a data-parallel fit that checkpoints every update."""

import os
import sys

import numpy as np

import rnnlab


def trainer(checkpoint=None):
    net = rnnlab.Network(3, 4, 2, seed=0, readout="last")
    return rnnlab.Trainer(net, "sgd", 0.1, batch_size=4, log=None, progress=False,
                          checkpoint=checkpoint, checkpoint_every=1)


def main():
    t = trainer(sys.argv[1])
    apply = t.apply

    def apply_then_die(loss, grads):
        if t.parallel.rank == 1 and t.step_count == 3:
            os._exit(9)
        return apply(loss, grads)

    t.apply = apply_then_die
    t.fit(np.zeros((40, 5, 3), np.float32), np.zeros(40, int), epochs=5)


if __name__ == "__main__":
    main()
