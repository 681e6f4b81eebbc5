"""NoisyTrainer: Gaussian input noise on the real steps of training batches (apps tasks)."""

import json

import numpy as np
import pytest

import rnnlab
from rnnlab import apps, cli


def small_net(seed=0):
    return rnnlab.Network(3, 5, 4, output="softmax", readout="last", seed=seed,
                          dtype=np.float64)


def test_noise_only_on_real_steps_and_inputs_left_alone():
    net = small_net()
    seen = []
    real_loss_and_grad = net.loss_and_grad

    def spy(x, y, **kw):
        seen.append(np.array(x))
        return real_loss_and_grad(x, y, **kw)

    net.loss_and_grad = spy
    trainer = apps.NoisyTrainer(net, "adam", 1e-3, noise=0.5, noise_seed=3, progress=False)
    x = np.zeros((2, 6, 3))
    trainer.train_step(x, np.array([1, 2]), lengths=np.array([6, 2]))
    got = seen[0]
    assert np.all(x == 0)  # the caller's batch is not changed
    assert np.all(got[1, 2:] == 0)  # padding stays zero
    assert np.all(got[0] != 0) and np.all(got[1, :2] != 0)
    assert 0.3 < got[got != 0].std() < 0.7


def test_zero_noise_trains_exactly_as_the_trainer():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 4, 3)), rng.integers(0, 4, size=20)
    lengths = rng.integers(1, 5, size=20)
    a, b = small_net(1), small_net(1)
    rnnlab.Trainer(a, "adam", 1e-2, batch_size=8, progress=False).fit(X, y, epochs=2,
                                                                     lengths=lengths)
    apps.NoisyTrainer(b, "adam", 1e-2, batch_size=8, progress=False, noise=0.0).fit(
        X, y, epochs=2, lengths=lengths)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


@pytest.mark.parametrize("noise", [-0.1, float("nan"), "0.2", True])
def test_bad_noise_is_refused(noise):
    with pytest.raises(ValueError, match="noise must be a non-negative number"):
        apps.NoisyTrainer(small_net(), "adam", 1e-3, noise=noise)


def test_japanese_vowels_run_records_its_noise(tmp_path):
    pytest.importorskip("sktime")
    out = tmp_path / "jv"
    assert cli.main(["train", "--task", "japanese-vowels", "--epochs", "1", "--hidden", "8",
                     "--no-progress", "--max-train", "40", "--max-test", "30",
                     "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["input_noise"] == apps.TASKS["japanese-vowels"].noise > 0
    assert cli.main(["eval", str(out)]) == 0


def test_noise_is_applied_under_truncated_bptt_too():
    """The noise comes in through the Trainer's batch hook, which both BPTT paths call."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 6, 3)), rng.integers(0, 4, size=(8, 6))
    seen = []

    def net():
        n = rnnlab.Network(3, 5, 4, seed=0, dtype=np.float64)
        real = n.forward

        def spy(x, *a, **k):
            seen.append(np.array(x))
            return real(x, *a, **k)

        n.forward = spy
        return n

    plain, noisy = net(), net()
    rnnlab.Trainer(plain, "adam", 1e-2, bptt_steps=3, batch_size=8, progress=False).fit(X, y)
    clean = seen[:]
    seen.clear()
    apps.NoisyTrainer(noisy, "adam", 1e-2, bptt_steps=3, batch_size=8, progress=False,
                      noise=0.5).fit(X, y)
    assert len(seen) == len(clean) == 2  # two windows of three steps
    for got, want in zip(seen, clean, strict=True):
        assert got.shape == want.shape == (8, 3, 3)
        assert 0.3 < (got - want).std() < 0.7
    assert not np.array_equal(noisy.params["rnn.l0.W_h"], plain.params["rnn.l0.W_h"])
