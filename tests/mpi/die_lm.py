"""Run under ``mpiexec -n 2``: ``python die_lm.py CONFIG RUN`` is ``rnnlab train --config
CONFIG --out RUN`` in which rank 1 dies (exit 9, no cleanup) at update 4."""

import os
import sys

from rnnlab import cli, parallel
from rnnlab.train import Trainer

apply = Trainer.apply


def apply_then_die(self, loss, grads):
    if parallel.DataParallel.of(None).rank == 1 and self.step_count == 4:
        os._exit(9)
    return apply(self, loss, grads)


if __name__ == "__main__":
    Trainer.apply = apply_then_die
    sys.exit(cli.main(["train", "--config", sys.argv[1], "--out", sys.argv[2],
                       "--no-progress"]))
