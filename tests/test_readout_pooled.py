"""Pooled readouts ("mean", "max" over real steps): values and gradients against central
finite differences in float64, with and without lengths."""

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error
from rnnlab import Network


def fd_check(net, x, y, lengths):
    """The worst norm-wise relative error over the parameters (tests/gradcheck.py)."""
    r = net.loss_and_grad(x, y, lengths=lengths)
    return max(rel_error(r.grads[name], numerical_grad(
        lambda: net.loss_and_grad(x, y, lengths=lengths).loss, p))
        for name, p in net.params.items())


@pytest.mark.parametrize("readout", ["mean", "max"])
@pytest.mark.parametrize("with_lengths", [False, True])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_pooled_gradients(readout, with_lengths, cell):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 2))
    lengths = np.array([7, 4, 2]) if with_lengths else None
    if with_lengths:
        x[1, 4:] = x[2, 2:] = 0.0
    net = Network(2, 5, 3, cell=cell, readout=readout, seed=0, dtype=np.float64)
    assert fd_check(net, x, np.array([0, 2, 1]), lengths) < 1e-6


def test_pooled_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 2))
    lengths = np.array([6, 3])
    nets = {r: Network(2, 4, 2, cell="gru", readout=r, seed=0, dtype=np.float64)
            for r in ("all", "mean", "max")}
    W, b = nets["all"].params["head.W_y"], nets["all"].params["head.b_y"]
    # the per-step outputs: recover the top layer's outputs from the "all" network's head
    y, _, _, _ = nets["all"].rnn.run(x, None, lengths, keep=False)
    for i, n in enumerate(lengths):
        real = y[i, :n]
        z_mean, _ = nets["mean"].infer(x[i:i + 1], lengths=lengths[i:i + 1])
        z_max, _ = nets["max"].infer(x[i:i + 1], lengths=lengths[i:i + 1])
        np.testing.assert_allclose(z_mean[0], real.mean(axis=0) @ W + b, rtol=1e-12)
        np.testing.assert_allclose(z_max[0], real.max(axis=0) @ W + b, rtol=1e-12)
    # padded steps do not count, whatever they hold
    x2 = x.copy()
    x2[1, 3:] = 50.0
    for r in ("mean", "max"):
        np.testing.assert_allclose(nets[r].infer(x2, lengths=lengths)[0][1],
                                   nets[r].infer(x, lengths=lengths)[0][1], rtol=1e-12)


@pytest.mark.parametrize("readout", ["mean", "max"])
def test_pooled_bidirectional_gradients(readout):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 2))
    net = Network(2, 3, 2, cell="gru", readout=readout, bidirectional=True, seed=0,
                  dtype=np.float64)
    assert net.predict(x).shape == (2, 2)
    assert fd_check(net, x, np.array([1, 0]), np.array([5, 3])) < 1e-6


def test_pooled_refused_where_unsupported():
    net = Network(2, 3, 2, cell="gru", readout="mean", seed=0)
    pytest.importorskip("onnx")
    from rnnlab import onnx as rnnlab_onnx
    with pytest.raises(ValueError, match="readout='mean'"):
        rnnlab_onnx.export(net, "never-written.onnx")


def test_pooled_saves_and_trains(tmp_path):
    from rnnlab import Trainer, load
    rng = np.random.default_rng(3)
    x = rng.standard_normal((24, 6, 1)).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) > 0).astype(np.int64)
    net = Network(1, 8, 2, cell="gru", readout="max", seed=0)
    Trainer(net, "adam", lr=1e-2, batch_size=8, seed=0).fit(x, y, epochs=2)
    net.save(tmp_path / "m.rnnlab")
    back = load(tmp_path / "m.rnnlab")
    assert back.readout == "max"
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
