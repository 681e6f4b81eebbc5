"""Network: the head, the losses and the whole chain against finite differences."""

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error

HEADS = [(o, r) for o in ("softmax", "linear") for r in ("all", "last")]


def targets(net, rng, B, T, lengths):
    K = net.output_size
    shape = (B, T) if net.readout == "all" else (B,)
    if net.output == "softmax":
        y = rng.integers(0, K, size=shape)
        if lengths is not None and net.readout == "all":
            # padding labels may be anything, even out of range: they are ignored
            y = np.where(np.arange(T)[None, :] < np.asarray(lengths)[:, None], y, -1)
        return y
    return rng.normal(size=shape + (K,))


@pytest.mark.parametrize("output,readout", HEADS)
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_network_gradients_match_finite_differences(output, readout, cell, with_lengths):
    rng = np.random.default_rng(11)
    B, T = 3, 4
    net = rnnlab.Network(3, 4, 5, cell=cell, num_layers=2, output=output, readout=readout,
                         seed=5, dtype=np.float64)
    x = rng.normal(size=(B, T, 3))
    lengths = np.array([4, 1, 3]) if with_lengths else None
    y = targets(net, rng, B, T, lengths)
    h0 = net.rnn.initial_state(B)
    h0 = tuple(rng.normal(size=s.shape) for s in h0) if isinstance(h0, tuple) else \
        rng.normal(size=h0.shape)

    def loss():
        return net.loss(x, y, lengths=lengths, state=h0)

    res = net.loss_and_grad(x, y, lengths=lengths, state=h0)
    assert res.loss == pytest.approx(loss(), rel=1e-14)
    for name, p in net.params.items():
        assert rel_error(res.grads[name], numerical_grad(loss, p)) < 1e-6, name
    z, _, cache = net.forward(x, h0, lengths=lengths)
    _, dz = net.output_loss(z, y, cache.lengths)
    _, dx, _ = net.backward(cache, dz)
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-6


def test_padding_positions_carry_no_loss():
    rng = np.random.default_rng(0)
    net = rnnlab.Network(2, 3, 4, cell="gru", seed=0, dtype=np.float64)
    x = rng.normal(size=(2, 5, 2))
    y = rng.integers(0, 4, size=(2, 5))
    full = net.loss(x[:1, :3], y[:1, :3])
    padded_x = x.copy()
    padded_x[0, 3:] = 100.0  # whatever is in the padding must not matter
    both = net.loss(padded_x, y, lengths=[3, 5])
    # mean over 3 + 5 real positions = (3 * loss of seq 0 + 5 * loss of seq 1) / 8
    second = net.loss(x[1:], y[1:])
    assert both == pytest.approx((3 * full + 5 * second) / 8, rel=1e-12)


def test_predict_shapes_and_probabilities():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 2)).astype(np.float32)
    p = rnnlab.Network(2, 8, 5, seed=0).predict(x)
    assert p.shape == (3, 6, 5) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    v = rnnlab.Network(2, 8, 3, output="linear", readout="last", seed=0).predict(x)
    assert v.shape == (3, 3)


@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_infer_and_loss_equal_forward_without_a_cache(readout, cell):
    """``infer`` (and ``loss``, ``predict``, which use it) give forward's outputs and
    state exactly, with lengths and two layers, and keep nothing for backward."""
    rng = np.random.default_rng(1)
    net = rnnlab.Network(3, 7, 4, num_layers=2, cell=cell, readout=readout, seed=0)
    x = rng.normal(size=(5, 6, 3)).astype(np.float32)
    lengths = [6, 2, 0, 5, 6]
    z, state, cache = net.forward(x, lengths=lengths)
    z_inf, state_inf = net.infer(x, lengths=lengths)
    np.testing.assert_array_equal(z_inf, z)
    for a, b in zip(state_inf if cell == "lstm" else [state_inf],
                    state if cell == "lstm" else [state], strict=True):
        np.testing.assert_array_equal(a, b)
    y = rng.integers(0, 4, size=z.shape[:-1])
    assert net.loss(x, y, lengths=lengths) == net.output_loss(z, y, cache.lengths)[0]
    np.testing.assert_array_equal(net.predict(x, lengths=lengths),
                                  rnnlab.losses.softmax(z))


def test_readout_last_reads_each_sequences_own_last_step():
    rng = np.random.default_rng(1)
    net = rnnlab.Network(2, 4, 3, cell="lstm", output="linear", readout="last", seed=2,
                         dtype=np.float64)
    x = rng.normal(size=(2, 6, 2))
    together = net.predict(x, lengths=[6, 3])
    np.testing.assert_allclose(together[0], net.predict(x[:1])[0], atol=1e-14)
    np.testing.assert_allclose(together[1], net.predict(x[1:, :3])[0], atol=1e-14)


def test_bad_targets_are_refused():
    net = rnnlab.Network(2, 3, 4, seed=0)
    x = np.zeros((2, 5, 2))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\).*= 4"):
        net.loss(x, np.full((2, 5), 4))
    with pytest.raises(ValueError, match="shape"):
        net.loss(x, np.zeros((2, 4), int))
    with pytest.raises(ValueError, match="integer"):
        net.loss(x, np.full((2, 5), 0.5))
    lin = rnnlab.Network(2, 3, 4, output="linear", seed=0)
    with pytest.raises(ValueError, match="NaN"):
        lin.loss(x, np.full((2, 5, 4), np.nan))


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="unknown cell 'transformer'"):
        rnnlab.Network(2, 3, 4, cell="transformer")
    with pytest.raises(ValueError, match="unknown output"):
        rnnlab.Network(2, 3, 4, output="sigmoid")
    with pytest.raises(ValueError, match="unknown readout"):
        rnnlab.Network(2, 3, 4, readout="first")
    with pytest.raises(ValueError, match="the elman and ffnn cells only"):
        rnnlab.Network(2, 3, 4, cell="lstm", activation="relu")


def test_a_replaced_parameter_reaches_the_layer_and_truncated_bptt():
    """net.params is the one source of truth: the layer holds the very same arrays."""
    from rnnlab import bptt

    rng = np.random.default_rng(0)
    net = rnnlab.Network(3, 4, 5, cell="gru", seed=0, dtype=np.float64)
    assert all(net.rnn.params[k[4:]] is v for k, v in net.params.items() if k[:4] == "rnn.")
    x, y = rng.normal(size=(2, 6, 3)), rng.integers(0, 5, size=(2, 6))
    net.params["rnn.l0.W_h"] = net.params["rnn.l0.W_h"] * 3.0  # a new array, not in place
    assert net.rnn.params["l0.W_h"] is net.params["rnn.l0.W_h"]
    net.params.update({"head.b_y": np.ones(5)})
    # k2 reaches back over the earlier windows: those run on the layer alone
    loss, grads = 0.0, None
    for res in bptt.Truncated(net, x, y, None, 2, 6):
        loss += res.loss * res.count
        grads = res.grads if grads is None else {k: grads[k] + res.grads[k] for k in grads}
    other = rnnlab.Network(3, 4, 5, cell="gru", seed=0, dtype=np.float64)
    for k, v in net.params.items():
        other.params[k][...] = v
    full = other.loss_and_grad(x, y)
    assert loss / y.size == pytest.approx(full.loss, rel=1e-12)
    with pytest.raises(TypeError, match="cannot be removed"):
        del net.params["head.W_y"]
