"""Gradient flow and friends: an analytic case, finite differences, and clear errors."""

import contextlib
import importlib

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error
from rnnlab import diagnostics as dg
from rnnlab import losses

CELLS = {
    "elman": lambda **kw: rnnlab.Elman(3, 4, activation="tanh", **kw),
    "elman-relu": lambda **kw: rnnlab.Elman(3, 4, activation="relu", **kw),
    "lstm": lambda **kw: rnnlab.LSTM(3, 4, **kw),
    "gru": lambda **kw: rnnlab.GRU(3, 4, **kw),
}


def plain():
    """The plain NumPy path for the reference forwards: no kernel compilation in tests."""
    try:
        kernels = importlib.import_module("rnnlab.kernels")
        return kernels.use_fast(False)
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def random_state(layer, B, rng):
    shape = (layer.num_layers, B, layer.hidden_size)
    if layer.n_state == 1:
        return rng.normal(size=shape) * 0.5
    return (rng.normal(size=shape) * 0.5, rng.normal(size=shape) * 0.5)


# ------------------------------------------------------------------------------------------
# gradient_flow
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("a", [0.5, 1.5])
@pytest.mark.parametrize("norm", ["fro", "spectral"])
def test_flow_of_scaled_identity_is_a_to_the_k(a, norm):
    # zero input, state and bias keep h = 0, so tanh' = 1 and dh_T/dh_{T-k} = a^k I exactly
    H, T = 5, 40
    layer = rnnlab.Elman(2, H, seed=0, dtype=np.float64)
    layer.params["l0.W_h"][:] = a * np.eye(H)
    layer.params["l0.b"][:] = 0
    flow = dg.gradient_flow(layer, np.zeros((3, T, 2)), norm=norm)
    assert flow[0] == pytest.approx(np.sqrt(H) if norm == "fro" else 1.0, rel=1e-15)
    rel = dg.gradient_flow(layer, np.zeros((3, T, 2)), norm=norm, relative=True)
    expected = a ** np.arange(T)
    np.testing.assert_allclose(rel, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(flow / flow[0], expected, rtol=1e-12, atol=0)


def fd_flow(layer, x, state, k, norm, eps=1e-6):
    """Batch-mean norm of dh_T/dh_{T-k} by central differences on the split sequence."""
    B, T, _ = x.shape
    H, top = layer.hidden_size, layer.num_layers - 1
    with plain():
        _, s, _ = layer.forward(x[:, : T - k], state)  # the state after T-k steps
    h = s if layer.n_state == 1 else s[0]

    def last_output(hh):
        with plain():
            y, _, _ = layer.forward(x[:, T - k:], hh if layer.n_state == 1 else (hh, s[1]))
        return y[:, -1]  # (B, H)

    J = np.zeros((B, H, H))  # J[b, i, j] = dh_T[i] / dh_{T-k}[j]
    for j in range(H):
        up, down = h.copy(), h.copy()
        up[top, :, j] += eps
        down[top, :, j] -= eps
        J[:, :, j] = (last_output(up) - last_output(down)) / (2 * eps)
    ord_ = "fro" if norm == "fro" else 2
    return np.mean([np.linalg.norm(Jb, ord_) for Jb in J])


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("num_layers", [1, 2])
def test_flow_matches_finite_differences(cell, num_layers):
    rng = np.random.default_rng(11 + num_layers)
    layer = CELLS[cell](num_layers=num_layers, seed=5, dtype=np.float64)
    for name in layer.params:  # larger weights than the default, so the flow is not tiny
        layer.params[name] *= 2.0
    B, T = 3, 6
    x = rng.normal(size=(B, T, 3))
    state = random_state(layer, B, rng)
    for norm in ("fro", "spectral"):
        flow = dg.gradient_flow(layer, x, state=state, norm=norm)
        assert flow.shape == (T,)
        for k in range(1, T):
            assert rel_error(flow[k], fd_flow(layer, x, state, k, norm)) < 1e-7, (norm, k)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_flow_with_lengths_is_each_sequence_measured_from_its_own_end(cell, monkeypatch):
    rng = np.random.default_rng(3)
    layer = CELLS[cell](num_layers=2, seed=2, dtype=np.float64)
    lengths = np.array([7, 3, 0, 5, 7])
    x = rng.normal(size=(5, 7, 3))
    state = random_state(layer, 5, rng)
    monkeypatch.setattr(dg.flow, "_MAX_ROWS", 8)  # two sequences per backward pass: chunks too
    flow = dg.gradient_flow(layer, x, state=state, lengths=lengths)
    assert flow.shape == (7,)
    per = []
    for b, n in enumerate(lengths):
        if n:
            st = state[:, b:b + 1] if layer.n_state == 1 else tuple(s[:, b:b + 1] for s in state)
            per.append(dg.gradient_flow(layer, x[b:b + 1, :n], state=st))
    for k in range(7):
        expected = np.mean([f[k] for f in per if f.size > k])
        assert flow[k] == pytest.approx(expected, rel=1e-12)


def test_flow_is_float64_and_leaves_the_model_alone():
    layer = rnnlab.LSTM(3, 4, seed=1)  # float32
    before = {k: v.copy() for k, v in layer.params.items()}
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    flow = dg.gradient_flow(layer, x)
    assert flow.dtype == np.float64
    twin = rnnlab.LSTM(3, 4, seed=1, dtype=np.float64)
    twin.params = {k: v.astype(np.float64) for k, v in layer.params.items()}
    np.testing.assert_array_equal(flow, dg.gradient_flow(twin, x.astype(np.float64)))
    for k, v in layer.params.items():
        assert v.dtype == np.float32 and np.array_equal(v, before[k])


def test_flow_of_a_network_is_that_of_its_layers():
    net = rnnlab.Network(3, 4, 2, cell="gru", seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    np.testing.assert_array_equal(dg.gradient_flow(net, x), dg.gradient_flow(net.rnn, x))


# ------------------------------------------------------------------------------------------
# loss_gradient_norms
# ------------------------------------------------------------------------------------------
def fd_loss_gradient(net, x, y, t):
    """||dL/dh_t|| by central differences on the top layer's state after t steps."""
    B, T, _ = x.shape
    with plain():
        _, s, _ = net.forward(x[:, :t])
    lstm = isinstance(s, tuple)
    h = s[0] if lstm else s
    h_t = h[net.rnn.num_layers - 1]  # (B, H) a view: numerical_grad perturbs h in place
    W, b = net.params["head.W_y"], net.params["head.b_y"]
    fn = losses.softmax_cross_entropy if net.output == "softmax" else losses.squared_error

    def loss():
        with plain():
            if net.readout == "last":
                return net.loss(x[:, t:], y, state=(h, s[1]) if lstm else h)
            # readouts before step t do not depend on h_t; the mean runs over all T steps
            rest = net.loss(x[:, t:], y[:, t:], state=(h, s[1]) if lstm else h)
            here = fn(h_t @ W + b, y[:, t - 1])[0]  # the readout at step t itself
            return (rest * (T - t) + here) / T

    return np.linalg.norm(numerical_grad(loss, h_t))


@pytest.mark.parametrize("cell,output,readout", [
    ("elman", "softmax", "last"), ("lstm", "softmax", "all"),
    ("gru", "linear", "last"), ("lstm", "linear", "all"),
])
def test_loss_gradient_norms_match_finite_differences(cell, output, readout):
    rng = np.random.default_rng(4)
    net = rnnlab.Network(3, 4, 3, cell=cell, output=output, readout=readout, num_layers=2,
                         seed=1, dtype=np.float64)
    B, T = 3, 6
    x = rng.normal(size=(B, T, 3))
    shape = (B,) if readout == "last" else (B, T)
    y = rng.integers(0, 3, size=shape) if output == "softmax" else rng.normal(size=shape + (3,))
    g = dg.loss_gradient_norms(net, x, y)
    assert g.shape == (T,)
    for t in range(1, T):
        assert rel_error(g[t - 1], fd_loss_gradient(net, x, y, t)) < 1e-7, t


def test_loss_gradient_norms_with_lengths_pool_the_real_sequences():
    rng = np.random.default_rng(5)
    net = rnnlab.Network(3, 4, 3, cell="lstm", readout="last", seed=0, dtype=np.float64)
    lengths = np.array([6, 2, 4])
    x, y = rng.normal(size=(3, 6, 3)), np.array([0, 2, 1])
    g = dg.loss_gradient_norms(net, x, y, lengths=lengths)
    # the batch loss is the mean of the three sequences' own losses
    per = [dg.loss_gradient_norms(net, x[b:b + 1, :n], y[b:b + 1]) / 3
           for b, n in enumerate(lengths)]
    expected = [np.sqrt(sum(p[t] ** 2 for p in per if p.size > t)) for t in range(6)]
    np.testing.assert_allclose(g, expected, rtol=1e-12)


# ------------------------------------------------------------------------------------------
# spectral_radius, saturation, memory_length
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell,gates", [("elman", [""]), ("lstm", list("ifgo")),
                                        ("gru", list("rzn"))])
def test_spectral_radius_matches_numpy(cell, gates):
    layer = CELLS[cell](num_layers=2, seed=3)
    r = dg.spectral_radius(layer)
    names = [f"l{k}.W_h" + (f".{g}" if g else "") for k in range(2) for g in gates]
    assert list(r) == names
    H = layer.hidden_size
    for k in range(2):
        W = layer.params[f"l{k}.W_h"].astype(np.float64)
        for i, g in enumerate(gates):
            ev = np.linalg.eigvals(W[:, i * H:(i + 1) * H])
            assert r[f"l{k}.W_h" + (f".{g}" if g else "")] == pytest.approx(
                np.abs(ev).max(), rel=1e-12)


def test_saturation_on_known_states():
    H, x = 4, np.zeros((2, 5, 3))
    e = rnnlab.Elman(3, H, seed=0, dtype=np.float64)
    e.params["l0.W_h"][:] = 0
    e.params["l0.b"][:] = 0  # h = tanh(0) = 0: slope 1, nothing saturated
    s = dg.saturation(e, x)
    assert list(s) == ["h", "all"] and np.all(s["h"] == 0)
    e.params["l0.b"][:] = 3.0  # tanh(3) = 0.995: slope 0.01 < 0.1
    assert np.all(dg.saturation(e, x)["all"] == 1)
    assert np.all(dg.saturation(e, x, threshold=0.001)["all"] == 0)

    lstm = rnnlab.LSTM(3, H, seed=0, dtype=np.float64)
    lstm.params["l0.W_h"][:] = 0
    lstm.params["l0.b"][:] = 0
    lstm.params["l0.b"][H:2 * H] = 10.0  # f = sigmoid(10) ~ 1; i = o = 0.5, g = c = 0
    s = dg.saturation(lstm, x)
    assert list(s) == ["i", "f", "g", "o", "tanh(c)", "all"]
    assert np.all(s["f"] == 1) and np.all(s["all"] == 0.2)
    assert all(np.all(s[n] == 0) for n in ("i", "g", "o", "tanh(c)"))

    relu = rnnlab.Elman(3, H, activation="relu", seed=0, dtype=np.float64)
    relu.params["l0.b"][:] = -1.0  # every unit is off
    assert np.all(dg.saturation(relu, x)["h"] == 1)


def test_saturation_with_lengths_counts_real_steps_only():
    gru = rnnlab.GRU(3, 4, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 6, 3)) * 5
    s = dg.saturation(gru, x, lengths=[4, 2, 3])
    assert list(s) == ["r", "z", "n", "all"]
    assert all(v.shape == (4,) and np.all((v >= 0) & (v <= 1)) for v in s.values())
    s1 = dg.saturation(gru, x[:1, :4])
    assert s["all"][3] == s1["all"][3]  # only the first sequence is 4 steps long


def test_memory_length_of_geometric_flows():
    k = np.arange(60)
    assert dg.memory_length(3.0 * 0.5 ** k, 0.01) == 7  # 0.5^7 = 0.0078
    assert dg.memory_length(0.9 ** k, 0.01) == 44  # ceil(ln 0.01 / ln 0.9) = ceil(43.7)
    assert dg.memory_length(0.5 ** k, 0.25) == 3  # strictly below: 0.5^2 = 0.25 is not
    assert dg.memory_length(1.01 ** k, 0.01) == 60  # never: the length of the flow
    assert dg.memory_length(np.array([2.0, np.inf, 0.0])) == 2


# ------------------------------------------------------------------------------------------
# diagnose
# ------------------------------------------------------------------------------------------
def test_diagnose_report_and_summary():
    rng = np.random.default_rng(0)
    net = rnnlab.Network(3, 8, 2, cell="lstm", readout="last", seed=0)
    x, y = rng.normal(size=(4, 30, 3)), rng.integers(0, 2, size=4)
    r = dg.diagnose(net, x, y)
    assert r.steps == 30 and r.batch == 4 and r.flow.shape == (30,)
    assert r.relative_flow[0] == 1 and r.memory_length == dg.memory_length(r.flow, 0.01)
    with plain():
        assert r.loss == pytest.approx(net.loss(x, y), rel=1e-5)
    assert r.loss_gradients.shape == (30,)
    text = r.summary()
    for part in ("LSTM, 1 layer, H=8", "k=1:", "k=29:", "memory length", "l0.W_h.f",
                 "tanh(c)", "loss"):
        assert part in text, part
    r2 = dg.diagnose(rnnlab.Elman(3, 8, seed=0), x)
    assert r2.loss_gradients is None and "Elman(tanh)" in r2.summary()


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
def test_nan_weights_are_named():
    layer = rnnlab.LSTM(3, 4, seed=0)
    layer.params["l0.W_h"][1, 2] = np.nan
    x = np.zeros((2, 5, 3))
    for f in (lambda: dg.gradient_flow(layer, x), lambda: dg.saturation(layer, x),
              lambda: dg.spectral_radius(layer), lambda: dg.diagnose(layer, x)):
        with pytest.raises(ValueError, match=r"l0\.W_h contains NaN.*\(1, 2\)"):
            f()
    net = rnnlab.Network(3, 4, 2, seed=0)
    net.params["head.W_y"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"head\.W_y contains NaN or Inf"):
        dg.loss_gradient_norms(net, x, np.zeros((2, 5), int))
    net.params["head.W_y"][0, 0] = 0
    net.params["rnn.l0.b"][0] = np.nan
    with pytest.raises(ValueError, match=r"rnn\.l0\.b contains NaN"):
        dg.gradient_flow(net, x)


@pytest.mark.parametrize("x,kwargs,match", [
    (np.zeros((2, 0, 3)), {}, r"at least one step, got shape \(2, 0, 3\)"),
    (np.zeros((0, 4, 3)), {}, r"at least one sequence"),
    (np.zeros((2, 4, 5)), {}, r"x must have shape \(\?, \?, 3\), got \(2, 4, 5\)"),
    (np.zeros((4, 3)), {}, r"x must have 3 dimensions"),
    (np.full((2, 4, 3), np.nan), {}, r"x contains NaN"),
    (np.zeros((2, 4, 3)), {"lengths": [0, 0]}, r"every sequence is empty"),
    (np.zeros((2, 4, 3)), {"lengths": [5, 1]}, r"lengths\[0\] = 5"),
    (np.zeros((2, 4, 3)), {"norm": "nuclear"}, r"unknown norm 'nuclear'"),
    (np.zeros((2, 4, 3)), {"level": 2}, r"level must be a layer index in \[-2, 2\)"),
    (np.zeros((2, 4, 3)), {"state": np.zeros((2, 2, 4))}, r"state of an LSTM must be a tuple"),
    (np.zeros((2, 4, 3)), {"state": (np.zeros((2, 3, 4)),) * 2}, r"state has batch size 3 but"),
])
def test_bad_input_is_rejected_clearly(x, kwargs, match):
    layer = rnnlab.LSTM(3, 4, num_layers=2, seed=0)
    with pytest.raises(ValueError, match=match):
        dg.gradient_flow(layer, x, **kwargs)


def test_bad_arguments_are_rejected_clearly():
    layer, x = rnnlab.Elman(3, 4, seed=0), np.zeros((1, 3, 3))
    with pytest.raises(ValueError, match="expected an rnnlab layer.*got dict"):
        dg.gradient_flow({}, x)
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\), got 1.5"):
        dg.saturation(layer, x, threshold=1.5)
    with pytest.raises(ValueError, match="targets y need a Network"):
        dg.diagnose(layer, x, y=np.zeros(1))
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\), got 0"):
        dg.memory_length(np.ones(3), 0)
    with pytest.raises(ValueError, match=r"flow must be a non-empty 1-D array"):
        dg.memory_length(np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"flow must be a non-empty 1-D array"):
        dg.memory_length([])
    with pytest.raises(ValueError, match="NaN or a negative value at index 1"):
        dg.memory_length([1.0, np.nan])
    with pytest.raises(ValueError, match=r"flow\[0\] must be positive"):
        dg.memory_length([0.0, 1.0])


def test_loss_gradient_norms_refuse_a_readout_they_do_not_know():
    """A readout other than "all"/"last" must not be silently treated as "last"."""
    net = rnnlab.Network(3, 4, 3, cell="gru", readout="last", seed=0, dtype=np.float64)
    net.readout = "mean"  # as a future pooled readout would be
    x, y = np.zeros((2, 5, 3)), np.array([0, 1])
    with pytest.raises(ValueError, match="readout 'mean'"):
        dg.loss_gradient_norms(net, x, y)
