"""Run under ``mpiexec -n N``: ``python lm_ranks.py TEXT RUN STEPS [resume]`` trains the
tiny language model of tests/test_parallel.py data-parallel (or resumes RUN)."""

import sys
from pathlib import Path

from rnnlab import lm


def config(text, steps):
    return lm.LMConfig(data=str(text), steps=steps, hidden=8, bptt=8, batch=4,
                       time_budget=None, eval_every=100, sample_every=0, checkpoint_every=3,
                       eval_tokens=50, lr_decay=0)  # constant: a run stopped early ends
                                                     # on the rates of a longer one


def main():
    text, run, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    quiet = dict(progress=False, echo=lambda *a: None)
    if len(sys.argv) > 4:
        lm.train(config(text, steps), resume=run, **quiet)
    else:
        lm.train(config(text, steps), out=run, **quiet)


if __name__ == "__main__":
    main()
