"""``kill -9`` during training: every run folder resumes, and ends as a straight run.

A child process trains and kills itself with SIGKILL at a chosen point (before the first
checkpoint, inside a checkpoint write, in the middle of a log line); the run is resumed
here and compared with an uninterrupted run. The campaign script, at random moments, runs
with three kills.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlab import lm

ROOT = Path(__file__).resolve().parents[1]
TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 4)
QUIET = dict(progress=False, echo=lambda *a: None)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="no SIGKILL")

CHILD = """
import json, os, signal, sys
import numpy as np
from rnnlab import io, lm
from rnnlab.train import Trainer

cfg = lm.LMConfig(**json.loads(sys.argv[1]))
where = sys.argv[2]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if where == "update 3":
    apply = Trainer.apply
    def apply_then_die(self, loss, grads):
        info = apply(self, loss, grads)
        if self.step_count == 3:
            die()
        return info
    Trainer.apply = apply_then_die
elif where == "checkpoint write at update 10":
    savez = np.savez
    def savez_then_die(f, **arrays):
        if "optim/" in " ".join(arrays) and json.loads(arrays["meta"].tobytes())["step"] == 10:
            f.write(b"PK\\x03\\x04 half an archive")
            f.flush()
            die()
        savez(f, **arrays)
    io.np.savez = savez_then_die
elif where == "log line at update 20":
    write = lm._Job._write
    def write_then_die(self, record):
        if record.get("step") == 20 and "loss" in record:
            self.metrics.write(json.dumps(record)[:12])
            self.metrics.flush()
            die()
        write(self, record)
    lm._Job._write = write_then_die
lm.train(cfg, out=sys.argv[3], progress=False)
"""


def config(tmp_path, steps):
    data = tmp_path / "tiny.txt"
    data.write_text(TEXT, encoding="utf-8")
    return dict(data=str(data), hidden=8, bptt=8, batch=4, steps=steps, time_budget=None,
                eval_every=10, sample_every=0, checkpoint_every=5, eval_tokens=50)


def lines(run):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("where", ["update 3", "checkpoint write at update 10",
                                   "log line at update 20"])
def test_a_run_killed_anywhere_resumes_and_ends_as_a_straight_one(tmp_path, where):
    cfg = config(tmp_path, 30)
    straight = lm.train(lm.LMConfig(**cfg), out=tmp_path / "straight", **QUIET)
    run = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), where, str(run)],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    if where.startswith("checkpoint"):
        assert [p.name for p in run.glob(".checkpoint.ckpt.*.tmp")]  # caught mid-write
    lm.train(lm.LMConfig(**cfg), resume=run, **QUIET)
    assert not list(run.glob(".*.tmp"))  # what the kill left is cleaned up
    a, b = lm.open_run(run).net.params, lm.open_run(straight).net.params
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert lines(run) == lines(straight)  # each update logged once, the same mean losses


def test_the_kill_campaign_with_three_kills(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kill_campaign.py"),
                        "--kills", "3", "--seed", "0", "--extra-steps", "5",
                        "--work", str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 of 3 kills left a run folder that resumed" in r.stdout, r.stdout
    assert "bit-identical" in r.stdout, r.stdout
