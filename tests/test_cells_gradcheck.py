"""Every cell's backward against central finite differences in float64."""

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error

CELLS = [
    ("elman", {"activation": "tanh"}),
    ("elman", {"activation": "relu"}),
    ("elman", {"activation": "sigmoid"}),
    ("lstm", {}),
    ("gru", {}),
]
TOL = 1e-6


def make(cell, opts, num_layers, seed):
    cls = {"elman": rnnlab.Elman, "lstm": rnnlab.LSTM, "gru": rnnlab.GRU}[cell]
    return cls(3, 4, num_layers, seed=seed, dtype=np.float64, **opts)


def random_state(layer, B, rng):
    shape = (layer.num_layers, B, layer.hidden_size)
    if layer.n_state == 1:
        return rng.normal(size=shape)
    return (rng.normal(size=shape), rng.normal(size=shape))


def as_list(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("cell,opts", CELLS, ids=lambda v: v if isinstance(v, str) else
                         "-".join(map(str, v.values())))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_matches_finite_differences(cell, opts, num_layers, with_lengths):
    rng = np.random.default_rng(7 + num_layers)
    layer = make(cell, opts, num_layers, seed=3)
    B, T = 3, 5
    x = rng.normal(size=(B, T, 3))
    h0 = random_state(layer, B, rng)
    lengths = np.array([5, 2, 4]) if with_lengths else None
    # a random linear loss on every output and on the final state
    wy = rng.normal(size=(B, T, 4))
    ws = [rng.normal(size=s.shape) for s in as_list(h0)]

    def loss():
        y, s, _ = layer.forward(x, h0, lengths=lengths)
        return np.sum(y * wy) + sum(np.sum(a * w) for a, w in zip(as_list(s), ws, strict=True))

    _, _, cache = layer.forward(x, h0, lengths=lengths)
    dstate = ws[0] if len(ws) == 1 else tuple(ws)
    grads, dx, d0 = layer.backward(cache, wy, dstate)

    for name, p in layer.params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < TOL, name
    assert rel_error(dx, numerical_grad(loss, x)) < TOL
    for a, s in zip(as_list(d0), as_list(h0), strict=True):
        assert rel_error(a, numerical_grad(loss, s)) < TOL
    if with_lengths:
        # padded steps: outputs are zero and the input there gets no gradient
        y, _, _ = layer.forward(x, h0, lengths=lengths)
        assert np.all(y[1, 2:] == 0) and np.all(dx[1, 2:] == 0) and np.all(dx[2, 4:] == 0)
