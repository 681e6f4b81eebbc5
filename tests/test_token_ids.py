"""Token ids as inputs: the same model as their one-hot vectors, with the input projection a
row gather and its weight gradient summed per id (float64: equal to 1e-12 on both paths)."""

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error
from rnnlab import kernels
from rnnlab.data.batching import one_hot
from rnnlab.kernels import layers

LAYERS = {"elman": rnnlab.Elman, "lstm": rnnlab.LSTM, "gru": rnnlab.GRU}


def parts(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("cell", list(LAYERS))
@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "both-ways"])
@pytest.mark.parametrize("batch", [1, 5])
def test_ids_compute_what_their_one_hot_vectors_do(cell, fast, bidirectional, batch):
    rng = np.random.default_rng(0)
    layer = LAYERS[cell](9, 4, 2, seed=1, dtype=np.float64, bidirectional=bidirectional)
    ids = rng.integers(0, 9, size=(batch, 7))
    ids[0, :3] = 4  # an id seen several times
    lengths = rng.integers(1, 8, size=batch)
    reset = rng.random((batch, 7)) < 0.2
    out = {}
    for name, x in (("ids", ids), ("one-hot", one_hot(ids, 9, np.float64))):
        with kernels.use_fast(fast):
            y, state, cache = layer.forward(x, lengths=lengths, reset=reset)
            grads, dx, _ = layer.backward(cache, np.cos(y))
            y_inf, _ = layer.infer(x, lengths=lengths, reset=reset)
        out[name] = (y, state, grads, dx, y_inf)
    (y, state, grads, dx, y_inf), (y1, state1, grads1, _, y1_inf) = out["ids"], out["one-hot"]
    assert dx is None  # ids have no gradient
    np.testing.assert_allclose(y, y1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(y_inf, y1_inf, rtol=0, atol=1e-12)
    for a, b in zip(parts(state), parts(state1), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert grads.keys() == grads1.keys()
    for name in grads:
        np.testing.assert_allclose(grads[name], grads1[name], rtol=0, atol=1e-12, err_msg=name)


def test_the_input_weights_gradient_of_ids_matches_finite_differences():
    rng = np.random.default_rng(1)
    layer = rnnlab.GRU(6, 3, seed=0, dtype=np.float64)
    ids = rng.integers(0, 6, size=(3, 5))
    dy = rng.normal(size=(3, 5, 3))

    def loss():
        return float((layer.forward(ids)[0] * dy).sum())

    _, _, cache = layer.forward(ids)
    grads, _, _ = layer.backward(cache, dy)
    assert rel_error(grads["l0.W_x"], numerical_grad(loss, layer.params["l0.W_x"])) < 1e-6


def test_summed_by_id_against_add_at():
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 50, size=(40, 30))
    rows = rng.normal(size=(1200, 17))
    want = np.zeros((60, 17))
    np.add.at(want, ids.reshape(-1), rows)
    np.testing.assert_allclose(layers.summed_by_id(ids, rows, 60), want, rtol=0, atol=1e-12)


def test_a_network_trains_on_ids_as_on_one_hot_vectors():
    rng = np.random.default_rng(3)
    ids, y = rng.integers(0, 8, size=(4, 10)), rng.integers(0, 8, size=(4, 10))
    nets = [rnnlab.Network(8, 6, 8, cell="lstm", seed=0, dtype=np.float64) for _ in range(2)]
    for net, x in zip(nets, (ids, one_hot(ids, 8, np.float64)), strict=True):
        trainer = rnnlab.Trainer(net, "adam", 0.01, log=None, progress=False)
        for _ in range(5):
            trainer.train_step(x, y)
    for name, v in nets[0].params.items():
        np.testing.assert_allclose(v, nets[1].params[name], rtol=0, atol=1e-10, err_msg=name)


def test_ids_out_of_range_are_refused():
    layer = rnnlab.LSTM(5, 3)
    with pytest.raises(ValueError, match=r"x holds token ids, which must be in \[0, 5\) "
                                         r"\(the input size\), got 5 at index \(1, 2\)"):
        layer.forward(np.array([[0, 1, 2], [3, 4, 5]]))
    with pytest.raises(ValueError, match=r"got -1 at index \(0, 0\)"):
        layer.infer(np.array([[-1]]))
