"""The training loop: learning, clipping, bit-identical resume, the NaN guard, bad input."""

import json
import os
import signal
import warnings

import numpy as np
import pytest

import rnnlab
from rnnlab.data.synthetic import adding_accuracy, adding_problem
from rnnlab.train import NonFiniteError, Trainer


def small_task(n=96, T=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 3))
    Y = (X[..., 0] > 0).astype(int) + (X[..., 1] > 0)  # 3 classes, per step
    return X, Y


def test_learns_the_adding_problem_at_a_short_lag():
    X, Y = adding_problem(2000, 10, seed=0)
    Xt, Yt = adding_problem(500, 10, seed=1)
    net = rnnlab.Network(2, 24, 1, cell="lstm", output="linear", readout="last", seed=0)
    tr = Trainer(net, "adam", 1e-2, clip_norm=1.0, batch_size=50, seed=0, progress=False)
    h = tr.fit(X, Y, epochs=8, validation=(Xt, Yt))
    assert h.val_loss[-1] < 0.1 * Yt.var()  # predicting the mean would give Yt.var()
    # Hochreiter & Schmidhuber's criterion |error| < 0.04: far above the mean predictor's rate
    chance = adding_accuracy(np.full_like(Yt, Y.mean()), Yt)
    assert adding_accuracy(net.predict(Xt), Yt) > 3 * chance
    assert h.steps == 8 * 40 and len(h.train_loss) == 8


def test_global_norm_clipping_tames_an_exploding_elman_net():
    """Large recurrent weights (2 x orthogonal): plain SGD blows up, clipped SGD learns."""
    warnings.simplefilter("ignore", RuntimeWarning)  # the unclipped run overflows on purpose
    X, Y = adding_problem(1024, 10, seed=0)
    Xv, Yv = adding_problem(256, 10, seed=1)
    baseline = float(Yv.var())
    runs = {}
    for clip_norm in (None, 1.0):
        net = rnnlab.Network(2, 32, 1, cell="elman", output="linear", readout="last",
                             init="orthogonal", seed=0, dtype=np.float64)
        net.params["rnn.l0.W_h"] *= 2.0
        tr = Trainer(net, "sgd", 0.05, clip_norm=clip_norm, batch_size=32, seed=0,
                     momentum=0.9, progress=False)
        runs[clip_norm] = tr.fit(X, Y, epochs=20, validation=(Xv, Yv))
    wild, tame = runs[None], runs[1.0]
    assert max(wild.val_loss) > 100 * baseline  # the loss explodes at least once
    assert wild.val_loss[-1] > baseline  # and ends worse than predicting the mean
    # bounded, far from the >100x explosion: over seeds 0-3 and both per-step product paths
    # (tile, BLAS) the clipped run's worst epoch was 1.2-3.2x the baseline
    assert max(tame.val_loss) < 5 * baseline
    assert tame.val_loss[-1] < 0.8 * baseline
    assert tame.clip_rate[0] > 0.5 and wild.clip_rate[0] == 0.0


def interrupt_at(trainer, step):
    """Press Ctrl-C (a real SIGINT) right after update number ``step``."""
    apply = trainer.apply

    def patched(loss, grads):
        info = apply(loss, grads)
        if trainer.step_count == step:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    trainer.apply = patched


@pytest.mark.parametrize("bptt_steps,step", [(None, 7), ((2, 4), 9), (3, 4), ((3, 5), 8)])
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, bptt_steps, step):
    X, Y = small_task()
    Xv, Yv = small_task(32, seed=1)
    kw = dict(optimizer="adam", lr=1e-2, clip_norm=0.5, bptt_steps=bptt_steps, batch_size=16,
              seed=3, progress=False)

    def net(seed=0):
        return rnnlab.Network(3, 6, 3, cell="gru", seed=seed, dtype=np.float64)

    straight = net()
    Trainer(straight, **kw).fit(X, Y, epochs=3, validation=(Xv, Yv))

    ckpt = tmp_path / "run.ckpt"
    first = Trainer(net(), checkpoint=ckpt, **kw)
    interrupt_at(first, step)
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, epochs=3, validation=(Xv, Yv))
    assert ckpt.exists()

    resumed_net = net(seed=99)  # different initial weights: everything must come from the file
    second = Trainer(resumed_net, checkpoint=ckpt, **kw)
    h = second.fit(X, Y, epochs=3, validation=(Xv, Yv), resume=ckpt)
    for k, v in straight.params.items():
        np.testing.assert_array_equal(resumed_net.params[k], v, err_msg=k)
    k1 = None if bptt_steps is None else bptt_steps if isinstance(bptt_steps, int) \
        else bptt_steps[0]
    assert h.steps == second.step_count == 3 * 6 * (1 if k1 is None else -(-8 // k1))


def test_nan_stops_training_and_keeps_the_last_good_parameters():
    X, Y = small_task()
    net = rnnlab.Network(3, 6, 3, cell="lstm", seed=0)
    tr = Trainer(net, "adam", 1e-2, batch_size=16, progress=False)
    real = net.loss_and_grad
    kept = {}

    def poisoned(*a, **k):
        res = real(*a, **k)
        if tr.step_count == 4:
            kept.update({n: v.copy() for n, v in net.params.items()})
            res.grads["rnn.l0.W_h"][1, 2] = np.nan
        return res

    net.loss_and_grad = poisoned
    with pytest.raises(NonFiniteError, match=r"gradient of rnn.l0.W_h at step 4") as e:
        tr.fit(X, Y, epochs=2)
    assert e.value.step == 4 and e.value.where == "the gradient of rnn.l0.W_h"
    for n, v in kept.items():
        np.testing.assert_array_equal(net.params[n], v)


def test_nan_batches_can_be_skipped_and_counted(tmp_path):
    X, Y = small_task()
    net = rnnlab.Network(3, 6, 3, cell="elman", seed=0)
    log = tmp_path / "log.jsonl"
    tr = Trainer(net, "adam", 1e-2, batch_size=16, on_nonfinite="skip", log=log,
                 log_every=1, progress=False)
    real = net.loss_and_grad
    fired = set()

    def poisoned(x, y, **k):
        res = real(x, y, **k)
        if tr.step_count in (1, 3) and tr.step_count not in fired:
            fired.add(tr.step_count)
            return res._replace(loss=float("inf"))
        return res

    net.loss_and_grad = poisoned
    h = tr.fit(X, Y, epochs=1)
    assert h.skipped == 2 and h.steps == 4
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r.get("skipped") for r in records)
    assert all(np.isfinite(v).all() for v in net.params.values())


def test_log_and_history_record_what_happened(tmp_path):
    X, Y = small_task()
    log = tmp_path / "m.jsonl"
    net = rnnlab.Network(3, 6, 3, seed=0)
    h = Trainer(net, "sgd", 0.5, clip_norm=0.01, batch_size=32, log=log, log_every=1,
                progress=False).fit(X, Y, epochs=2, validation=small_task(16, seed=1))
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [r for r in recs if "step" in r]
    epochs = [r for r in recs if "val_loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 7))
    assert all(r["clipped"] and r["grad_norm"] > 0.01 for r in steps)  # tiny threshold: always
    assert len(epochs) == 2 and h.clip_rate == [1.0, 1.0]
    assert epochs[-1]["val_loss"] == pytest.approx(h.val_loss[-1])


def test_early_stopping_restores_the_best_parameters():
    X, Y = small_task()
    Xv, Yv = small_task(32, seed=1)
    net = rnnlab.Network(3, 6, 3, seed=0)
    # a learning rate far too high: validation gets worse soon
    tr = Trainer(net, "sgd", 30.0, batch_size=16, patience=2, progress=False)
    h = tr.fit(X, Y, epochs=30, validation=(Xv, Yv))
    assert h.stopped_early and len(h.epoch) < 30
    assert tr.evaluate(Xv, Yv) == pytest.approx(min(h.val_loss), rel=1e-6)


def test_bad_input_is_refused(tmp_path):
    X, Y = small_task()
    net = rnnlab.Network(3, 6, 3, seed=0)
    tr = Trainer(net, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="non-empty"):
        tr.fit(np.zeros((0, 8, 3)), np.zeros((0, 8), int))
    with pytest.raises(ValueError, match="96 sequences but Y holds 95"):
        tr.fit(X, Y[:95])
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        tr.fit(X, Y + 1)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        Trainer(net, batch_size=0)
    with pytest.raises(ValueError, match="clip_norm must be a positive number"):
        Trainer(net, clip_norm=-1)
    ckpt = tmp_path / "c.ckpt"
    Trainer(net, batch_size=8, checkpoint=ckpt, progress=False).fit(X, Y, epochs=1)
    before = ckpt.read_bytes()
    other = rnnlab.Network(3, 7, 3, seed=0)
    with pytest.raises(ValueError, match="another model shape.*hidden_size"):
        Trainer(other, batch_size=8, checkpoint=ckpt, progress=False).fit(X, Y, resume=ckpt)
    assert ckpt.read_bytes() == before  # the refused resume wrote nothing


def test_a_broken_model_never_overwrites_a_good_checkpoint(tmp_path):
    X, Y = small_task()
    net = rnnlab.Network(3, 6, 3, seed=0)
    ckpt = tmp_path / "c.ckpt"
    tr = Trainer(net, batch_size=8, checkpoint=ckpt, progress=False)
    tr.fit(X, Y, epochs=1)
    before = ckpt.read_bytes()
    net.params["head.b_y"][0] = np.nan
    tr.save_checkpoint(ckpt)
    assert ckpt.read_bytes() == before


def test_gradient_flow_is_recorded_every_n_updates(tmp_path):
    from rnnlab import diagnostics

    X, Y = small_task()  # 96 sequences of 8 steps: 6 updates per epoch at batch 16
    log = tmp_path / "m.jsonl"
    net = rnnlab.Network(3, 6, 3, cell="elman", seed=0, dtype=np.float64)
    tr = Trainer(net, "adam", 1e-2, batch_size=16, log=log, log_every=100, progress=False,
                 diagnostics_every=4)
    h = tr.fit(X, Y, epochs=2)  # 12 updates: recordings before the first and after 4, 8, 12
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    flows = [r for r in recs if "flow" in r]
    assert [r["step"] for r in flows] == [0, 4, 8, 12]
    assert [s for s, _ in h.flow] == [0, 4, 8, 12]
    assert [s for s, _ in h.memory_length] == [0, 4, 8, 12]
    for r, (_, f), (_, m) in zip(flows, h.flow, h.memory_length, strict=True):
        assert len(r["flow"]) == X.shape[1] and r["flow"] == f  # one entry per lag 0 .. T-1
        assert f[0] == pytest.approx(1.0)  # relative to lag 0
        assert r["memory_length"] == m == diagnostics.memory_length(f, 0.01)
        assert set(r["spectral_radius"]) == {"l0.W_h"}
    # the last recording is the trained network's flow on the default probe
    assert h.flow[-1][1] == pytest.approx(
        diagnostics.gradient_flow(net, X[:4], relative=True).tolist(), rel=1e-12)
    assert h.flow[0][1] != h.flow[-1][1]  # training changed it


def test_gradient_flow_recordings_on_a_given_probe_and_with_truncated_bptt():
    X, Y = small_task()
    probe = np.random.default_rng(5).normal(size=(2, 20, 3))  # longer than the training data
    net = rnnlab.Network(3, 5, 3, cell="lstm", seed=0)
    h = Trainer(net, "adam", 1e-2, bptt_steps=4, batch_size=32, progress=False,
                diagnostics_every=3, diagnostics_probe=probe).fit(X, Y, epochs=1)
    # 3 batches x 2 windows = 6 updates
    assert [s for s, _ in h.flow] == [0, 3, 6]
    assert all(len(f) == 20 for _, f in h.flow)
    assert all(0 <= m <= 20 for _, m in h.memory_length)
    assert Trainer(net, progress=False).fit(X, Y).flow == []  # off by default


def test_gradient_flow_recording_refuses_bad_settings():
    X, Y = small_task()
    net = rnnlab.Network(3, 6, 3, seed=0)
    with pytest.raises(ValueError, match="diagnostics_every must be a positive integer, got 0"):
        Trainer(net, diagnostics_every=0)
    tr = Trainer(net, progress=False, diagnostics_every=1, diagnostics_probe=np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="diagnostics_probe"):
        tr.fit(X, Y)
    tr = Trainer(net, progress=False, diagnostics_every=1, diagnostics_probe=np.zeros((0, 5, 3)))
    with pytest.raises(ValueError, match=r"diagnostics_probe must be a non-empty.*\(0, 5, 3\)"):
        tr.fit(X, Y)
