"""Language-model runs: an interrupted and resumed run ends where a straight one does."""

import os
import signal

import numpy as np
import pytest

from rnnlab import lm
from rnnlab.train import Trainer

TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 4)
QUIET = dict(progress=False, echo=lambda *a: None)


def config(tmp_path, steps):
    data = tmp_path / "tiny.txt"
    data.write_text(TEXT, encoding="utf-8")
    # 384 characters, 365 for training: 11 windows of 8 steps in 4 streams per epoch
    return lm.LMConfig(data=str(data), hidden=8, bptt=8, batch=4, steps=steps,
                       time_budget=None, eval_every=100, sample_every=0, checkpoint_every=100,
                       eval_tokens=50)


def params(run):
    return lm.open_run(run).net.params


@pytest.mark.parametrize("stop", [5, 11, 16])  # mid-epoch; after an epoch's last window; end
def test_a_shorter_run_resumed_ends_as_a_straight_one(tmp_path, stop):
    straight = params(lm.train(config(tmp_path, 20), out=tmp_path / "straight", **QUIET))
    lm.train(config(tmp_path, stop), out=tmp_path / "resumed", **QUIET)
    resumed = params(lm.train(config(tmp_path, 20), resume=tmp_path / "resumed", **QUIET))
    for k, v in straight.items():
        np.testing.assert_array_equal(resumed[k], v, err_msg=k)


@pytest.mark.parametrize("stop", [5, 11])
def test_ctrl_c_then_resume_ends_as_a_straight_run(tmp_path, stop, monkeypatch):
    straight = params(lm.train(config(tmp_path, 20), out=tmp_path / "straight", **QUIET))
    apply = Trainer.apply

    def apply_then_interrupt(self, loss, grads):
        info = apply(self, loss, grads)
        if self.step_count == stop:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    monkeypatch.setattr(Trainer, "apply", apply_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        lm.train(config(tmp_path, 20), out=tmp_path / "resumed", **QUIET)
    monkeypatch.setattr(Trainer, "apply", apply)
    resumed = params(lm.train(config(tmp_path, 20), resume=tmp_path / "resumed", **QUIET))
    for k, v in straight.items():
        np.testing.assert_array_equal(resumed[k], v, err_msg=k)
