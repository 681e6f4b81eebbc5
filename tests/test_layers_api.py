"""The layer contract: shapes, dtypes, state layouts, streaming, initialisation and errors."""

import numpy as np
import pytest

import rnnlab

LAYERS = [rnnlab.Elman, rnnlab.LSTM, rnnlab.GRU]


@pytest.mark.parametrize("cls", LAYERS)
def test_shapes_dtypes_and_state_layout(cls):
    layer = cls(3, 5, 2, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 7, 3))
    y, state, _ = layer.forward(x)
    assert y.shape == (4, 7, 5) and y.dtype == np.float32
    parts = state if cls is rnnlab.LSTM else (state,)
    assert isinstance(state, tuple) == (cls is rnnlab.LSTM)
    for s in parts:
        assert s.shape == (2, 4, 5) and s.dtype == np.float32
    # the top layer's last output is the final state's top h
    np.testing.assert_array_equal(y[:, -1], parts[0][-1])


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
@pytest.mark.parametrize("cls", LAYERS)
def test_forward_output_is_read_only_and_backward_unharmed(cls, fast):
    """forward's y shares memory with the cache (no copy): it is handed out read-only, so
    an in-place change fails loudly instead of corrupting backward; a copy is writable."""
    layer = cls(3, 5, 2, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(4, 7, 3))
    dy = np.random.default_rng(1).normal(size=(4, 7, 5))
    with rnnlab.kernels.use_fast(fast):
        y, _, cache = layer.forward(x)
        want = layer.backward(layer.forward(x)[2], dy)[0]
        with pytest.raises(ValueError, match="read-only"):
            y *= 2
        mine = y.copy()
        mine *= 2
        got = layer.backward(cache, dy)[0]
        y_inf, _ = layer.infer(x)
    assert y_inf.flags.writeable  # nothing is kept: the caller owns it
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("cls", LAYERS)
def test_streaming_step_equals_forward(cls):
    layer = cls(3, 4, 2, seed=1, dtype=np.float64)
    x = np.random.default_rng(2).normal(size=(2, 6, 3))
    y, final, _ = layer.forward(x)
    state = None
    for t in range(6):
        y_t, state = layer.step(x[:, t], state)
        np.testing.assert_allclose(y_t, y[:, t], rtol=0, atol=1e-14)
    for a, b in zip(np.atleast_1d(state) if cls is not rnnlab.LSTM else state,
                    np.atleast_1d(final) if cls is not rnnlab.LSTM else final, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-14)


@pytest.mark.parametrize("cls", LAYERS)
def test_lengths_final_state_is_each_sequences_own(cls):
    layer = cls(2, 3, 2, seed=3, dtype=np.float64)
    x = np.random.default_rng(4).normal(size=(3, 5, 2))
    y, state, _ = layer.forward(x, lengths=[5, 2, 0])
    for b, n in enumerate([5, 2, 0]):
        if n:
            yb, sb, _ = layer.forward(x[b:b + 1, :n])
        else:
            yb, sb = np.zeros((1, 0, 3)), layer.initial_state(1)
        for a, c in zip(state if isinstance(state, tuple) else (state,),
                        sb if isinstance(sb, tuple) else (sb,), strict=True):
            np.testing.assert_allclose(a[:, b], c[:, 0], atol=1e-14)
        np.testing.assert_allclose(y[b, :n], yb[0], atol=1e-14)
        assert np.all(y[b, n:] == 0)


def test_same_seed_same_weights_and_different_seed_differs():
    a, b, c = (rnnlab.LSTM(3, 4, 2, seed=s).params for s in (7, 7, 8))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_uniform_init_bound_and_lstm_forget_bias():
    layer = rnnlab.LSTM(6, 16, seed=0, dtype=np.float64)
    bound = 1 / np.sqrt(16)
    for name in ("l0.W_x", "l0.W_h"):
        assert np.abs(layer.params[name]).max() <= bound, name
    b = layer.params["l0.b"]
    np.testing.assert_array_equal(b[16:32], 1.0)  # forget gate block
    assert np.abs(np.delete(b, np.s_[16:32])).max() <= bound
    no_fb = rnnlab.LSTM(6, 16, seed=0, forget_bias=None).params["l0.b"]
    assert np.abs(no_fb[16:32]).max() <= bound


@pytest.mark.parametrize("cls,G", [(rnnlab.Elman, 1), (rnnlab.LSTM, 4), (rnnlab.GRU, 3)])
def test_orthogonal_recurrent_weights(cls, G):
    W = cls(3, 8, seed=0, init="orthogonal", dtype=np.float64).params["l0.W_h"]
    for g in range(G):
        block = W[:, g * 8:(g + 1) * 8]
        np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-12)


def test_identity_init_is_irnn():
    p = rnnlab.Elman(3, 8, activation="relu", init="identity", seed=0, dtype=np.float64).params
    np.testing.assert_array_equal(p["l0.W_h"], np.eye(8))
    np.testing.assert_array_equal(p["l0.b"], 0)
    assert 0 < np.abs(p["l0.W_x"]).max() < 0.01
    with pytest.raises(ValueError, match="Elman cell only"):
        rnnlab.LSTM(3, 8, init="identity")


def test_seed_accepts_a_generator_and_leaves_global_state_alone():
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what must stay untouched
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    gen = np.random.default_rng(0)
    a = rnnlab.GRU(3, 4, seed=gen).params["l0.W_h"]
    b = rnnlab.GRU(3, 4, seed=gen).params["l0.W_h"]  # the generator moved on
    assert not np.array_equal(a, b)
    rnnlab.GRU(3, 4, seed=None)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


@pytest.mark.parametrize("cls", LAYERS)
def test_bad_input_names_the_value(cls):
    layer = cls(3, 4, 2, seed=0)
    good = np.zeros((2, 5, 3))
    msg = r"x must have 3 dimensions \(\?, \?, 3\), got shape \(5, 3\)"
    with pytest.raises(ValueError, match=msg):
        layer.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"x must have shape \(\?, \?, 3\), got \(2, 5, 7\)"):
        layer.forward(np.zeros((2, 5, 7)))
    bad = good.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(first at index \(1, 2, 0\)\)"):
        layer.forward(bad)
    bad[1, 2, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        layer.forward(bad)
    state = layer.initial_state(3)
    with pytest.raises(ValueError, match="batch size 3 but the input has 2"):
        layer.forward(good, state)
    with pytest.raises(ValueError, match=r"lengths\[1\] = 6"):
        layer.forward(good, lengths=[5, 6])
    with pytest.raises(ValueError, match=r"lengths\[0\] = -1"):
        layer.forward(good, lengths=[-1, 2])
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        layer.forward(good, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="whole numbers"):
        layer.forward(good, lengths=[1.5, 2])
    with pytest.raises(ValueError, match="at least one"):
        layer.forward(np.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match=r"x_t must have shape \(\?, 3\)"):
        layer.step(np.zeros((2, 4)))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        rnnlab.Elman(3, 4, activation="softplus")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        rnnlab.LSTM(3, 0)
    with pytest.raises(ValueError, match="num_layers must be a positive integer, got 1.5"):
        rnnlab.GRU(3, 4, 1.5)
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        rnnlab.GRU(3, 4, dtype=np.int32)
    with pytest.raises(ValueError, match="unknown init"):
        rnnlab.GRU(3, 4, init="xavier")
    with pytest.raises(ValueError, match="unknown cell 'rnn'"):
        rnnlab.layer_from_config({"cell": "rnn", "input_size": 3, "hidden_size": 4})
    with pytest.raises(ValueError, match="seed must be"):
        rnnlab.GRU(3, 4, seed="zero")


def test_lstm_state_must_be_a_pair():
    layer = rnnlab.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"tuple \(h, c\)"):
        layer.forward(np.zeros((2, 5, 3)), np.zeros((1, 2, 4)))
