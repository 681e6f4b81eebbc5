"""Language-model runs: an interrupted and resumed run ends where a straight one does."""

import itertools
import json
import os
import signal

import numpy as np
import pytest

from rnnlab import lm
from rnnlab.train import Trainer

TEXT = "".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"] * 4)
QUIET = dict(progress=False, echo=lambda *a: None)


def config(tmp_path, steps, **options):
    """A tiny language-model run of ``steps`` updates (``options`` change its settings)."""
    data = tmp_path / "tiny.txt"
    data.write_text(TEXT, encoding="utf-8")
    # 384 characters, 365 for training: 11 windows of 8 steps in 4 streams per epoch
    settings = dict(hidden=8, bptt=8, batch=4, time_budget=None, eval_every=100,
                    sample_every=0, checkpoint_every=100, eval_tokens=50)
    return lm.LMConfig(data=str(data), steps=steps, **{**settings, **options})


def params(run):
    return lm.open_run(run).net.params


@pytest.mark.parametrize("stop", [5, 11, 16])  # mid-epoch; after an epoch's last window; end
def test_a_shorter_run_resumed_ends_as_a_straight_one(tmp_path, stop):
    # at a constant rate: a decaying one falls towards the end each run was given
    straight = params(lm.train(config(tmp_path, 20, lr_decay=0), out=tmp_path / "straight",
                               **QUIET))
    lm.train(config(tmp_path, stop, lr_decay=0), out=tmp_path / "resumed", **QUIET)
    resumed = params(lm.train(config(tmp_path, 20), resume=tmp_path / "resumed", **QUIET))
    for k, v in straight.items():
        np.testing.assert_array_equal(resumed[k], v, err_msg=k)


@pytest.mark.parametrize("stop", [5, 11])  # with the default decay of the rate, by steps here
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


def test_resume_drops_the_log_lines_of_updates_after_the_checkpoint(tmp_path):
    """A run killed after its checkpoint logged updates that resume makes again: their
    lines (and a last line cut short) go, so each update is logged once, as in a straight
    run."""
    straight = tmp_path / "straight"
    lm.train(config(tmp_path, 40), out=straight, **QUIET)
    run = tmp_path / "run"
    lm.train(config(tmp_path, 20), out=run, **QUIET)  # checkpoint at step 20
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as f:  # what the kill left
        f.write('{"step": 30, "loss": 9.0, "seconds": 1.0}\n{"step": 40, "lo')
    lm.train(config(tmp_path, 40), resume=run, **QUIET)

    def steps(folder, key):
        lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        return [r["step"] for r in map(json.loads, lines) if key in r]

    assert steps(run, "loss") == steps(straight, "loss") == list(range(10, 41, 10))
    assert steps(run, "val_nats") == [20, 40] and 9.0 not in [
        r.get("loss") for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_trainer_resume_truncates_its_log(tmp_path):
    from rnnlab import Network

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(12, 5, 2)), rng.integers(0, 3, size=12)

    def trainer(**kw):
        net = Network(2, 4, 3, cell="gru", readout="last", seed=0, dtype=np.float64)
        return Trainer(net, batch_size=4, log=tmp_path / "log.jsonl", log_every=1,
                       checkpoint=tmp_path / "c.ckpt", progress=False, **kw)

    trainer().fit(X, Y, epochs=1)  # 3 updates, a checkpoint at the epoch's end
    (tmp_path / "c1.ckpt").write_bytes((tmp_path / "c.ckpt").read_bytes())
    trainer().fit(X, Y, epochs=2, resume=tmp_path / "c.ckpt")  # updates 4-6 logged
    trainer().fit(X, Y, epochs=2, resume=tmp_path / "c1.ckpt")  # 4-6 again, from step 3
    logged = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "step" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in logged if "train_loss" in r] == [1, 2]


def logged_rates(run):
    lines = (json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["lr"] for r in lines if "lr" in r}


def test_the_rate_falls_linearly_over_the_last_share_of_the_steps(tmp_path):
    run = lm.train(config(tmp_path, 40, lr=0.01, lr_decay=0.5), out=tmp_path / "d", **QUIET)
    rates = logged_rates(run)
    # update k is made at progress (k - 1) / 40: full rate up to half-way, then linear to 0
    assert rates[10] == rates[20] == 0.01
    assert rates[30] == pytest.approx(0.01 * (1 - 29 / 40) / 0.5)
    assert rates[40] == pytest.approx(0.01 * (1 - 39 / 40) / 0.5)
    constant = lm.train(config(tmp_path, 40, lr=0.01, lr_decay=0), out=tmp_path / "c", **QUIET)
    assert set(logged_rates(constant).values()) == {0.01}
    assert lm.open_run(run).config.lr_decay == 0.5  # in config.toml, for --resume


def test_the_rate_follows_the_time_budget_when_it_ends_the_run(tmp_path, monkeypatch):
    clock = itertools.count()  # each reading of the clock: one second later
    monkeypatch.setattr(lm.time, "perf_counter", lambda: float(next(clock)))
    cfg = config(tmp_path, None, time_budget=1000.0, lr=0.01, lr_decay=0.5)
    run = lm.train(cfg, out=tmp_path / "t", **QUIET)
    rates = logged_rates(run)
    assert rates[10] == 0.01 and 0 < min(rates.values()) < 0.01 * 0.2
    assert list(rates.values()) == sorted(rates.values(), reverse=True)


def test_tail_decay():
    d = lm.TailDecay(1.0, 0.25)
    for progress, want in ((0.0, 1.0), (0.75, 1.0), (0.8, 0.8), (0.95, 0.2), (1.0, 0.0)):
        d.progress = progress
        assert d(7) == pytest.approx(want)
    assert lm.TailDecay(0.5, 0)(3) == 0.5


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.3", float("nan")])
def test_a_bad_decay_share_is_refused(bad):
    with pytest.raises(ValueError, match="lr_decay"):
        lm.LMConfig(lr_decay=bad).check()


def test_a_run_written_before_the_decay_existed_resumes_at_a_constant_rate(tmp_path):
    run = lm.train(config(tmp_path, 10, lr_decay=0), out=tmp_path / "old", **QUIET)
    toml = run / "config.toml"
    toml.write_text("".join(line for line in toml.read_text().splitlines(keepends=True)
                            if not line.startswith("lr_decay")))
    assert lm.open_run(run).config.lr_decay == 0
    resumed = lm.train(config(tmp_path, 20), resume=run, **QUIET)
    assert set(logged_rates(resumed).values()) == {lm.LMConfig().lr}  # through step 20
    assert lm.LMConfig.from_toml(toml).lr_decay == 0.3  # a settings file: the default
