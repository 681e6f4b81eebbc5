"""Series augmentations (rnnlab.data.augment) and the Trainer's augment hook."""

import os
import signal

import numpy as np
import pytest

import rnnlab
from rnnlab.data.augment import Augmenter, jitter, parse_augment, scale, time_warp, window_slice
from rnnlab.train import Trainer

ALL = (jitter, scale, window_slice, time_warp)


def batch(seed=0, B=5, T=20, D=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(np.float32)
    lengths = np.array([20, 13, 7, 1, 20][:B])
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    return x, lengths


@pytest.mark.parametrize("fn", ALL)
def test_shape_dtype_and_padding_kept(fn):
    x, lengths = batch()
    y = fn(x, lengths, np.random.default_rng(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    pad = np.arange(x.shape[1])[None, :] >= lengths[:, None]
    assert not y[pad].any()  # padded steps stay zero
    assert not np.array_equal(y[:3], x[:3])  # and the real ones change
    assert np.isfinite(y).all()


@pytest.mark.parametrize("fn", ALL)
def test_padding_does_not_leak_into_the_real_steps(fn):
    """A series padded to 20 steps comes out as the same series unpadded does."""
    x, lengths = batch()
    padded = fn(x[1:2], lengths[1:2], np.random.default_rng(4))
    alone = fn(x[1:2, :13], None, np.random.default_rng(4))
    np.testing.assert_allclose(padded[0, :13], alone[0], rtol=1e-6, atol=1e-7)


def test_what_each_one_does():
    x, lengths = batch(B=4, T=400, D=1)
    lengths[:] = 400
    x = np.random.default_rng(0).standard_normal((4, 400, 1)).astype(np.float64)
    e = jitter(x, None, np.random.default_rng(0), sigma=0.5) - x
    assert abs(e.std() - 0.5) < 0.02 and abs(e.mean()) < 0.03
    y = scale(x, None, np.random.default_rng(0), sigma=0.3)
    ratio = y / x  # one factor per series
    assert np.allclose(ratio, ratio[:, :1]) and np.ptp(ratio[:, 0, 0]) > 0.05
    np.testing.assert_allclose(window_slice(x, None, np.random.default_rng(0), ratio=1.0), x)
    np.testing.assert_allclose(time_warp(x, None, np.random.default_rng(0), sigma=0.0), x)
    ramp = np.tile(np.arange(100.0)[None, :, None], (3, 1, 1))  # (3, 100, 1)
    cut = window_slice(ramp, None, np.random.default_rng(2), ratio=0.5)
    # a window of 50 steps of a ramp, stretched to 100 steps: a ramp of slope 49/99
    np.testing.assert_allclose(np.diff(cut[..., 0], axis=1), 49 / 99, rtol=1e-9)
    assert (cut[:, 0, 0] >= 0).all() and (cut[:, -1, 0] <= 99).all()
    warped = time_warp(ramp, None, np.random.default_rng(3), sigma=0.5)
    # a warp of a ramp is the warp itself: increasing, the end points kept, not the identity
    assert (np.diff(warped[..., 0], axis=1) > 0).all()
    np.testing.assert_allclose(warped[:, [0, -1], 0], [[0, 99]] * 3, atol=1e-9)
    assert np.abs(warped - ramp).max() > 1.0


def test_augmenter_is_seeded_and_patch_aware():
    x, lengths = batch()
    a, b, c = (Augmenter("jitter,scale,slice,warp", seed=s) for s in (7, 7, 8))
    ya, yb, yc = a(x, lengths), b(x, lengths), c(x, lengths)
    np.testing.assert_array_equal(ya, yb)
    assert not np.allclose(ya, yc)
    assert not np.array_equal(a(x, lengths), ya)  # the next batch draws anew
    # a patched batch (B, T/P, P*D) is augmented as the series it holds
    from rnnlab.data.series import patches
    z, zl = patches(x, None, 4)
    scaled = Augmenter("scale", seed=1, patch=4)(z, zl)
    plain = Augmenter("scale", seed=1)(x, None)
    np.testing.assert_array_equal(scaled, patches(plain, None, 4)[0])
    warped = Augmenter("warp", seed=1, patch=4)(z, zl)
    np.testing.assert_allclose(warped, patches(Augmenter("warp", seed=1)(x, None), None, 4)[0])


def test_augmenter_state_round_trip():
    x, lengths = batch()
    a = Augmenter("jitter,warp", seed=3)
    a(x, lengths)
    state = a.state_dict()
    second = a(x, lengths)
    b = Augmenter("jitter,warp", seed=0)
    b.load_state_dict(state)
    np.testing.assert_array_equal(b(x, lengths), second)
    b.load_state_dict(a.state_dict(), redo=True)  # the latest batch again
    np.testing.assert_array_equal(b(x, lengths), second)


@pytest.mark.parametrize("spec,message", [
    ("jitter,shake", "unknown augmentation 'shake'; expected some of jitter, scale"),
    ("slice=1.5", r"slice='1.5': expected a ratio in \(0, 1\]"),
    ("scale=-1", "scale='-1': expected a non-negative number"),
    ("", "unknown augmentation ''"),
])
def test_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_augment(spec)


def test_parse():
    assert parse_augment("jitter, scale=0.2") == [("jitter", None), ("scale", 0.2)]


def small_task(n=48, T=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 3))
    return X, (X[..., 0] > 0).astype(int) + (X[..., 1] > 0)


def test_training_batches_only():
    X, Y = small_task()
    Xv, Yv = small_task(16, seed=1)
    seen = []

    class Counting(Augmenter):
        def __call__(self, x, lengths=None):
            seen.append(x.shape)
            return super().__call__(x, lengths)

    net = rnnlab.Network(3, 5, 3, cell="gru", seed=0, dtype=np.float64)
    tr = Trainer(net, "adam", 1e-2, batch_size=16, seed=0, progress=False,
                 augment=Counting("jitter=0.5", seed=0))
    h = tr.fit(X, Y, epochs=2, validation=(Xv, Yv))
    assert seen == [(16, 8, 3)] * 6  # 3 batches per epoch, nothing from the validation
    assert h.val_loss[-1] == pytest.approx(net.loss(Xv, Yv), rel=1e-12)
    plain = rnnlab.Network(3, 5, 3, cell="gru", seed=0, dtype=np.float64)
    Trainer(plain, "adam", 1e-2, batch_size=16, seed=0, progress=False).fit(X, Y, epochs=2)
    assert not np.allclose(plain.params["rnn.l0.W_h"], net.params["rnn.l0.W_h"])
    # a task's trainer adds its noise first and then augments, and its evaluate sees neither
    from rnnlab.apps import NoisyTrainer
    seen.clear()
    noisy = rnnlab.Network(3, 5, 3, cell="gru", seed=0, dtype=np.float64)
    h = NoisyTrainer(noisy, "adam", 1e-2, batch_size=16, seed=0, progress=False, noise=0.1,
                     augment=Counting("scale", seed=0)).fit(X, Y, epochs=1,
                                                            validation=(Xv, Yv))
    assert seen == [(16, 8, 3)] * 3
    assert h.val_loss[-1] == pytest.approx(noisy.loss(Xv, Yv), rel=1e-12)
    with pytest.raises(ValueError, match="augment must be callable"):
        Trainer(net, augment="jitter")


@pytest.mark.parametrize("bptt_steps,step", [(None, 4), ((2, 4), 9)])
def test_resumed_augmented_run_is_bit_identical(tmp_path, bptt_steps, step):
    """The generator is in the checkpoint: inside a batch (truncated BPTT's later windows)
    the resumed run draws that batch again as it was."""
    X, Y = small_task()
    kw = dict(optimizer="adam", lr=1e-2, bptt_steps=bptt_steps, batch_size=16, seed=3,
              progress=False)

    def run(net_seed, **extra):
        net = rnnlab.Network(3, 6, 3, cell="gru", seed=net_seed, dtype=np.float64)
        return net, Trainer(net, augment=Augmenter("jitter,scale,warp", seed=[3, 2]),
                            **kw, **extra)

    straight, tr = run(0)
    tr.fit(X, Y, epochs=3)
    ckpt = tmp_path / "run.ckpt"
    _, first = run(0, checkpoint=ckpt)
    apply = first.apply

    def patched(loss, grads):
        info = apply(loss, grads)
        if first.step_count == step:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    first.apply = patched
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, epochs=3)
    resumed, second = run(99, checkpoint=ckpt)
    second.fit(X, Y, epochs=3, resume=ckpt)
    for k, v in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], v, err_msg=k)


@pytest.mark.skipif(__import__("shutil").which("mpiexec") is None,
                    reason="no mpiexec on PATH (the mpich wheel provides it)")
def test_ranks_augment_the_global_batch_as_one_process(tmp_path):
    """``mpiexec -n 2 rnnlab train --task ucr:PATH --augment ...``: each rank augments the
    whole global batch with the same generator and takes its rows, so the parameters are
    one process's (float32, 1e-5)."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("mpi4py")
    from rnnlab import cli, load
    from test_apps_ucr import make_set

    folder = make_set(tmp_path / "Toy", "Toy", D=2, lengths=[12, 9], seed=1)
    args = ["train", "--task", f"ucr:{folder}", "--epochs", "3", "--hidden", "6",
            "--batch", "5", "--no-progress", "--augment", "jitter,scale,slice,warp",
            "--patch", "2", "--seed", "4", "--precision", "fp32"]
    # fp32: in bf16 a weight a rounding's width from a bf16 tie rounds either way after the
    # ranks' float32 sums, and the runs part by far more than 1e-5 within a few updates
    assert cli.main([*args, "--out", str(tmp_path / "one")]) == 0
    done = subprocess.run([shutil.which("mpiexec"), "-n", "2", sys.executable, "-m", "rnnlab",
                           *args, "--out", str(tmp_path / "many")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, many = load(tmp_path / "one" / "model.rnnlab"), load(tmp_path / "many" / "model.rnnlab")
    for name, v in one.params.items():
        np.testing.assert_allclose(many.params[name], v, rtol=0, atol=1e-5, err_msg=name)
    plain = tmp_path / "plain"
    assert cli.main([*args[:-8], "--patch", "2", "--seed", "4", "--precision", "fp32",
                     "--out", str(plain)]) == 0
    assert not np.allclose(load(plain / "model.rnnlab").params["rnn.l0.W_h"],
                           one.params["rnn.l0.W_h"])  # the augmentations did something
