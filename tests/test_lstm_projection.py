"""The LSTM with a projection (``proj_size``, PyTorch's LSTMP): its reference against
central finite differences (float64), its shapes, and everything built on it."""

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error

TOL = 1e-6


def random_state(layer, B, rng):
    L = layer.num_layers * layer.directions
    return tuple(rng.normal(size=(L, B, w)) for w in layer.state_sizes)


def check_finite_differences(layer, rng, *, with_lengths, with_reset=False):
    """Every gradient of a random linear loss on the outputs and the final state against
    central differences; shared with the peephole tests."""
    B, T = 3, 5
    x = rng.normal(size=(B, T, layer.input_size))
    h0 = random_state(layer, B, rng)
    lengths = np.array([5, 2, 4]) if with_lengths else None
    reset = np.zeros((B, T), bool)
    reset[0, 3] = reset[2, 1] = True
    reset = reset if with_reset else None
    wy = rng.normal(size=(B, T, layer.output_features))
    ws = [rng.normal(size=s.shape) for s in h0]

    def loss():
        y, s, _ = layer.forward(x, h0, lengths=lengths, reset=reset)
        return np.sum(y * wy) + sum(np.sum(a * w) for a, w in zip(s, ws, strict=True))

    _, _, cache = layer.forward(x, h0, lengths=lengths, reset=reset)
    grads, dx, d0 = layer.backward(cache, wy, tuple(ws))
    assert set(grads) == set(layer.params)
    for name, p in layer.params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < TOL, name
    assert rel_error(dx, numerical_grad(loss, x)) < TOL
    for a, s in zip(d0, h0, strict=True):
        assert rel_error(a, numerical_grad(loss, s)) < TOL


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_projection_matches_finite_differences(num_layers, bidirectional, with_lengths):
    rng = np.random.default_rng(11 + num_layers)
    layer = rnnlab.LSTM(3, 5, num_layers, proj_size=2, bidirectional=bidirectional, seed=4,
                        dtype=np.float64)
    check_finite_differences(layer, rng, with_lengths=with_lengths)


def test_projection_with_resets_matches_finite_differences():
    layer = rnnlab.LSTM(3, 5, 2, proj_size=3, seed=5, dtype=np.float64)
    check_finite_differences(layer, np.random.default_rng(2), with_lengths=True,
                             with_reset=True)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_shapes_follow_pytorch(bidirectional):
    layer = rnnlab.LSTM(3, 6, 2, proj_size=4, bidirectional=bidirectional, seed=0)
    dirs = 2 if bidirectional else 1
    assert layer.params["l0.W_h"].shape == (4, 24)
    assert layer.params["l0.W_hr"].shape == (6, 4)
    assert layer.params["l1.W_x"].shape == (4 * dirs, 24)
    y, (h, c) = layer.infer(np.zeros((2, 7, 3), np.float32))
    assert y.shape == (2, 7, 4 * dirs)
    assert h.shape == (2 * dirs, 2, 4) and c.shape == (2 * dirs, 2, 6)


@pytest.mark.parametrize("value,words", [(6, "less than hidden_size 6"), (-1, "proj_size"),
                                         (1.5, "proj_size")])
def test_bad_proj_size_is_named(value, words):
    with pytest.raises(ValueError, match=words):
        rnnlab.LSTM(3, 6, proj_size=value)
