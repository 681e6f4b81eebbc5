"""Bidirectional layers and networks: exact against PyTorch's autograd (float64, 1e-10,
packed sequences for lengths) and central finite differences (float64, < 1e-6), on both
of rnnlab's paths, with every refusal a bidirectional layer has."""

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error
from rnnlab import interop, kernels

torch = pytest.importorskip("torch")
pack = torch.nn.utils.rnn.pack_padded_sequence
unpack = torch.nn.utils.rnn.pad_packed_sequence

MODULES = {
    "elman-tanh": lambda *a: torch.nn.RNN(*a, nonlinearity="tanh", batch_first=True,
                                          bidirectional=True),
    "elman-relu": lambda *a: torch.nn.RNN(*a, nonlinearity="relu", batch_first=True,
                                          bidirectional=True),
    "lstm": lambda *a: torch.nn.LSTM(*a, batch_first=True, bidirectional=True),
    "gru": lambda *a: torch.nn.GRU(*a, batch_first=True, bidirectional=True),
}
LAYERS = {"elman": rnnlab.Elman, "lstm": rnnlab.LSTM, "gru": rnnlab.GRU}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["fast", "plain"])
def path(request):
    with kernels.use_fast(request.param == "fast"):
        yield request.param


def parts(state):
    return list(state) if isinstance(state, (tuple, list)) else [state]


def joined(arrays):
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


@pytest.mark.parametrize("cell", sorted(MODULES))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_bidirectional_layers_match_pytorch(cell, num_layers, with_lengths, path):
    B, T, D, H = 4, 6, 3, 5
    rng = np.random.default_rng(7)
    torch.manual_seed(3)
    module = MODULES[cell](D, H, num_layers).double()
    layer = interop.from_torch(module)
    assert layer.bidirectional and layer.config["bidirectional"] is True
    n_state = 2 if cell == "lstm" else 1
    shape = (2 * num_layers, B, H)
    x = rng.normal(size=(B, T, D))
    h0 = [rng.normal(size=shape) for _ in range(n_state)]
    lengths = np.array([6, 3, 1, 5]) if with_lengths else None
    wy, ws = rng.normal(size=(B, T, 2 * H)), [rng.normal(size=shape) for _ in range(n_state)]

    y, final, cache = layer.forward(x, joined(h0), lengths=lengths)
    grads, dx, d0 = layer.backward(cache, wy, joined(ws))

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in h0]
    inp = xt if lengths is None else pack(xt, torch.as_tensor(lengths), batch_first=True,
                                          enforce_sorted=False)
    yt, ft = module(inp, joined(st))
    if lengths is not None:
        yt, _ = unpack(yt, batch_first=True, total_length=T)
    loss = (yt * torch.from_numpy(wy)).sum()
    for f, w in zip(parts(ft), ws, strict=True):
        loss = loss + (f * torch.from_numpy(w)).sum()
    loss.backward()
    theirs = interop.grads_from_torch(module)

    assert y.shape == (B, T, 2 * H)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-10)
    for a, b in zip(parts(final), parts(ft), strict=True):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-10)
    for a, b in zip(parts(d0), st, strict=True):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=0, atol=1e-10)
    assert grads.keys() == theirs.keys() == layer.params.keys()
    for name, g in grads.items():
        np.testing.assert_allclose(g, theirs[name], rtol=0, atol=1e-10, err_msg=name)
    # and back: the module rnnlab builds computes the same
    again = interop.to_torch(layer)
    assert again.bidirectional
    with torch.no_grad():
        y2, _ = again(torch.from_numpy(x), joined([torch.from_numpy(s) for s in h0]))
    y_full, _ = layer.infer(x, joined(h0))
    np.testing.assert_allclose(y2.numpy(), y_full, rtol=0, atol=1e-10)


@pytest.mark.parametrize("cell", list(LAYERS))
def test_bidirectional_gradients_match_finite_differences(cell, path):
    rng = np.random.default_rng(0)
    layer = LAYERS[cell](2, 3, 2, seed=1, dtype=np.float64, bidirectional=True)
    x = rng.normal(size=(3, 5, 2))
    lengths = np.array([5, 2, 4])
    h0 = joined([rng.normal(size=(4, 3, 3)) for _ in range(layer.n_state)])
    dy = rng.normal(size=(3, 5, 6))

    def loss():
        y, final, _ = layer.forward(x, h0, lengths=lengths)
        return float((y * dy).sum() + sum((f ** 2).sum() for f in parts(final)))

    _, final, cache = layer.forward(x, h0, lengths=lengths)
    grads, dx, d0 = layer.backward(cache, dy, joined([2 * f for f in parts(final)]))
    for name, p in layer.params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < 1e-6, name
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-6
    for g, s in zip(parts(d0), parts(h0), strict=True):
        assert rel_error(g, numerical_grad(loss, s)) < 1e-6


@pytest.mark.parametrize("cell", list(LAYERS))
def test_the_reverse_direction_reads_each_sequence_within_its_length(cell):
    rng = np.random.default_rng(1)
    layer = LAYERS[cell](2, 4, seed=2, dtype=np.float64, bidirectional=True)
    x = rng.normal(size=(2, 7, 2))
    y, final = layer.infer(x, lengths=[7, 4])
    alone, alone_final = layer.infer(x[1:, :4])  # the short sequence, with no padding
    np.testing.assert_allclose(y[1:, :4], alone, rtol=0, atol=1e-12)
    assert not y[1, 4:].any()  # padding stays padding
    for a, b in zip(parts(final), parts(alone_final), strict=True):
        np.testing.assert_allclose(a[:, 1:], b, rtol=0, atol=1e-12)
    # the reverse half at step 0 is the reverse direction's final state
    h = parts(final)[0]
    np.testing.assert_allclose(y[:, 0, 4:], h[1], rtol=0, atol=1e-12)


def test_kernels_run_both_directions_as_the_plain_loop_does():
    rng = np.random.default_rng(2)
    for cell, cls in LAYERS.items():
        layer = cls(3, 6, 2, seed=0, dtype=np.float64, bidirectional=True)
        x, lengths = rng.normal(size=(5, 8, 3)), np.array([8, 1, 5, 8, 3])
        reset = rng.random((5, 8)) < 0.2
        out = {}
        for fast in (False, True):
            with kernels.use_fast(fast):
                y, s, cache = layer.forward(x, lengths=lengths, reset=reset)
                g, dx, d0 = layer.backward(cache, np.cos(y), None)
            out[fast] = [y, dx, *parts(s), *parts(d0), *g.values()]
        for a, b in zip(*out.values(), strict=True):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-10, err_msg=cell)


def test_resets_in_a_bidirectional_layer_cut_both_directions():
    """A reset splits each sequence into documents that both directions read apart."""
    rng = np.random.default_rng(3)
    layer = rnnlab.GRU(2, 3, 2, seed=0, dtype=np.float64, bidirectional=True)
    x = rng.normal(size=(1, 9, 2))
    reset = np.zeros((1, 9), bool)
    reset[0, 4] = True
    y, _ = layer.infer(x, reset=reset)
    first, _ = layer.infer(x[:, :4])
    second, _ = layer.infer(x[:, 4:])
    np.testing.assert_allclose(y, np.concatenate([first, second], axis=1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("readout", ["all", "last"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_network(readout, cell):
    rng = np.random.default_rng(4)
    net = rnnlab.Network(3, 4, 2, cell=cell, readout=readout, output="linear",
                         bidirectional=True, seed=0, dtype=np.float64, num_layers=2)
    assert net.params["head.W_y"].shape == (8, 2)
    x, lengths = rng.normal(size=(3, 6, 3)), np.array([6, 2, 4])
    y = rng.normal(size=(3, 6, 2) if readout == "all" else (3, 2))
    res = net.loss_and_grad(x, y, lengths=lengths)

    def loss():
        return net.loss(x, y, lengths=lengths)

    for name in ("head.W_y", "rnn.l1r.W_h", "rnn.l0.W_x", "rnn.l0r.b"):
        assert rel_error(res.grads[name], numerical_grad(loss, net.params[name])) < 1e-6, name
    if readout == "last":  # forward's last real step beside reverse's first
        h, _ = net.rnn.infer(x, lengths=lengths)
        feats = np.stack([np.concatenate([h[b, lengths[b] - 1, :4], h[b, 0, 4:]])
                          for b in range(3)])
        want = feats @ net.params["head.W_y"] + net.params["head.b_y"]
        np.testing.assert_allclose(net.predict(x, lengths=lengths), want, rtol=0, atol=1e-12)


def test_a_bidirectional_network_trains_and_saves(tmp_path):
    rng = np.random.default_rng(5)
    # the label is the sign of the first step: only a reader from the end needs memory
    x = rng.normal(size=(64, 12, 1)).astype(np.float32)
    labels = (x[:, 0, 0] > 0).astype(int)
    net = rnnlab.Network(1, 8, 2, cell="gru", readout="last", bidirectional=True, seed=0)
    trainer = rnnlab.Trainer(net, "adam", 0.03, batch_size=16, seed=0, log=None,
                             progress=False)
    trainer.fit(x, labels, epochs=15)
    accuracy = float((net.predict(x).argmax(axis=1) == labels).mean())
    assert accuracy > 0.9
    net.save(tmp_path / "m.rnnlab")
    back = rnnlab.load(tmp_path / "m.rnnlab")
    assert back.rnn.bidirectional and back.config == net.config
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


def test_what_a_bidirectional_layer_refuses():
    layer = rnnlab.LSTM(2, 3, bidirectional=True)
    with pytest.raises(ValueError, match="a bidirectional layer reads whole sequences"):
        layer.step(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="a Stream needs a unidirectional layer"):
        rnnlab.Stream(layer)
    with pytest.raises(ValueError, match=r"state h must have shape \(2, 1, 3\)|shape"):
        layer.forward(np.zeros((1, 4, 2), np.float32),
                      (np.zeros((1, 1, 3), np.float32), np.zeros((1, 1, 3), np.float32)))
    with pytest.raises(ValueError, match="bidirectional must be"):
        rnnlab.GRU(2, 3, bidirectional="yes")
    net = rnnlab.Network(2, 3, 2, readout="all", bidirectional=True)
    with pytest.raises(ValueError, match="truncated BPTT .* bidirectional network"):
        rnnlab.Trainer(net, "sgd", 0.1, bptt_steps=2, log=None, progress=False)
    with pytest.raises(ValueError, match="bidirectional"):
        rnnlab.diagnostics.gradient_flow(layer, np.zeros((1, 4, 2), np.float32))


def test_the_two_directions_run_side_by_side_and_agree(monkeypatch):
    """With two threads allowed, the kernels run the reverse direction on a worker thread
    at the same time as the forward one (forward and backward), with the plain loop's
    results."""
    import threading

    from rnnlab.kernels import blas, layers

    monkeypatch.setattr(blas, "SIDE_BY_SIDE_FROM", 0)
    seen = set()
    real = layers._rows

    def spy(module, kernel, chunks, B, *args):
        seen.add((kernel, threading.current_thread().name.startswith("rnnlab-direction"),
                  chunks))
        return real(module, kernel, chunks, B, *args)

    monkeypatch.setattr(layers, "_rows", spy)
    rng = np.random.default_rng(6)
    layer = rnnlab.LSTM(3, 5, 2, seed=0, dtype=np.float64, bidirectional=True)
    x, lengths = rng.normal(size=(4, 7, 3)), np.array([7, 2, 5, 7])
    out = {}
    for fast in (False, True):
        with kernels.use_fast(fast), kernels.threads(2):
            y, s, cache = layer.forward(x, lengths=lengths)
            g, dx, d0 = layer.backward(cache, np.sin(y), None)
        out[fast] = [y, dx, *parts(s), *parts(d0), *g.values()]
    for a, b in zip(*out.values(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
    # each direction's loop ran whole on one thread, one of them the worker
    assert seen == {(k, w, 1) for k in ("forward", "backward") for w in (False, True)}
