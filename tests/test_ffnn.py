"""The feedforward baseline (cell "ffnn"): gradients against central differences and
PyTorch, the state carried between windows, streaming, the network around it, files, and
what it can and cannot learn."""

import os
import signal

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error
from rnnlab.cells.ffnn import FFNN

RTOL = 1e-6  # finite differences, float64


def _layer(D=3, H=4, L=2, k=3, seed=0, **kw):
    return FFNN(D, H, L, window=k, seed=seed, dtype=np.float64, **kw)


def _random_state(layer, B, rng):
    h = rng.normal(size=(layer.num_layers, B, layer.hidden_size))
    w = rng.normal(size=(layer.window - 1, B, layer.input_size))
    return h, w


def _check_gradients(layer, x, *, lengths=None, reset=None, state=None, seed=0):
    """Every gradient of ``sum(y wy) + sum(h_n wh) + sum(window_n ww)`` against central
    differences: the weights, the input (floats) and the initial window."""
    rng = np.random.default_rng(seed)
    y, (h_n, w_n), cache = layer.forward(x, state, lengths=lengths, reset=reset)
    wy, wh, ww = rng.normal(size=y.shape), rng.normal(size=h_n.shape), rng.normal(size=w_n.shape)
    grads, dx, (dh0, dw0) = layer.backward(cache, wy, (wh, ww))

    def loss():
        y, (h, w), _ = layer.forward(x, state, lengths=lengths, reset=reset)
        return float(np.sum(y * wy) + np.sum(h * wh) + np.sum(w * ww))

    for name, p in layer.params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < RTOL, name
    if x.ndim == 3:
        assert rel_error(dx, numerical_grad(loss, x)) < RTOL
    else:
        assert dx is None
    if state is not None:
        assert rel_error(dw0, numerical_grad(loss, state[1])) < RTOL
        assert rel_error(dh0, numerical_grad(loss, state[0])) < RTOL
    return grads


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("L", [1, 2])
def test_gradients_match_central_differences(k, L):
    rng = np.random.default_rng(k * 10 + L)
    layer = _layer(k=k, L=L, seed=k)
    x = rng.normal(size=(3, 6, 3))
    _check_gradients(layer, x, state=_random_state(layer, 3, rng))


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_gradients_with_lengths_resets_and_state(activation):
    rng = np.random.default_rng(1)
    layer = _layer(k=4, activation=activation, seed=2)
    x = rng.normal(size=(4, 7, 3))
    reset = np.zeros((4, 7), bool)
    reset[0, 3] = reset[1, 0] = reset[2, 5] = True
    lengths = np.array([7, 2, 5, 0])  # an empty sequence passes its state through
    _check_gradients(layer, x, lengths=lengths, reset=reset,
                     state=_random_state(layer, 4, rng), seed=3)


def test_gradients_with_token_ids():
    rng = np.random.default_rng(2)
    layer = _layer(D=5, k=3, seed=4)
    ids = rng.integers(0, 5, size=(3, 6))
    reset = np.zeros((3, 6), bool)
    reset[1, 2] = True
    _check_gradients(layer, ids, lengths=np.array([6, 4, 1]), reset=reset,
                     state=_random_state(layer, 3, rng))
    short = _layer(D=5, k=4, seed=5)  # fewer steps than the window: most lags in the state
    _check_gradients(short, ids[:, :2], state=_random_state(short, 3, rng))


def test_token_ids_are_their_one_hot_vectors():
    rng = np.random.default_rng(3)
    layer = _layer(D=5, k=3, seed=5)
    ids = rng.integers(0, 5, size=(2, 6))
    onehot = np.eye(5)[ids]
    y1, s1, c1 = layer.forward(ids)
    y2, s2, c2 = layer.forward(onehot)
    np.testing.assert_allclose(y1, y2, atol=1e-14)
    np.testing.assert_allclose(s1[1], s2[1], atol=0)  # the window holds one-hot vectors
    dy = rng.normal(size=y1.shape)
    g1, _, _ = layer.backward(c1, dy)
    g2, _, _ = layer.backward(c2, dy)
    for name in g1:
        np.testing.assert_allclose(g1[name], g2[name], atol=1e-13)


@pytest.mark.parametrize("ids", [False, True])
def test_results_do_not_depend_on_where_a_window_starts(ids):
    rng = np.random.default_rng(4)
    layer = _layer(k=4, seed=6)
    x = rng.integers(0, 3, size=(3, 11)) if ids else rng.normal(size=(3, 11, 3))
    reset = np.zeros((3, 11), bool)
    reset[0, 6] = reset[2, 1] = True
    y, state, _ = layer.forward(x, reset=reset)
    pieces, s = [], None
    for a, b in ((0, 2), (2, 3), (3, 8), (8, 11)):  # windows shorter and longer than k
        yp, s, _ = layer.forward(x[:, a:b], s, reset=reset[:, a:b])
        pieces.append(yp)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), y, atol=1e-14)
    for got, want in zip(s, state, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-14)


def test_lengths_final_state_is_each_sequences_own():
    rng = np.random.default_rng(5)
    layer = _layer(k=3, seed=7)
    x = rng.normal(size=(3, 6, 3))
    lengths = np.array([6, 1, 4])
    y, (h, w), _ = layer.forward(x, lengths=lengths)
    for b, n in enumerate(lengths):
        yb, (hb, wb), _ = layer.forward(x[b:b + 1, :n])
        np.testing.assert_allclose(y[b, :n], yb[0], atol=1e-14)
        assert not y[b, n:].any()  # padded steps output zeros
        np.testing.assert_allclose(h[:, b], hb[:, 0], atol=1e-14)
        np.testing.assert_allclose(w[:, b], wb[:, 0], atol=1e-14)


def test_step_and_stream_match_forward_with_resets():
    rng = np.random.default_rng(6)
    layer = _layer(k=3, seed=8)
    x = rng.normal(size=(2, 8, 3))
    reset = np.zeros((2, 8), bool)
    reset[1, 4] = True
    y, state, _ = layer.forward(x, reset=reset)
    stream = rnnlab.Stream(layer, 2)
    ys = [stream.step(x[:, t], reset=reset[:, t]) for t in range(8)]
    np.testing.assert_allclose(np.stack(ys, axis=1), y, atol=1e-14)
    for got, want in zip(stream.state, state, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-14)
    s, ys = None, []
    for t in range(5):
        yt, s = layer.step(x[:1, t], s)
        ys.append(yt)
    y1, _, _ = layer.forward(x[:1, :5])
    np.testing.assert_allclose(np.stack(ys, axis=1), y1, atol=1e-14)


# ---------------------------------------------------------------------------------------
# PyTorch: the same MLP written as unfold + nn.Sequential


def test_forward_and_gradients_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    B, T, D, H, k, L = 3, 9, 4, 5, 4, 3
    layer = FFNN(D, H, L, window=k, seed=1, dtype=np.float64)
    x = rng.normal(size=(B, T, D))
    w0 = rng.normal(size=(k - 1, B, D))
    wy = rng.normal(size=(B, T, H))

    mods = []
    for m in range(L):
        lin = torch.nn.Linear(k * D if m == 0 else H, H, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(layer.params[f"l{m}.W_x"].T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.params[f"l{m}.b"]))
        mods += [lin, torch.nn.Tanh()]
    mlp = torch.nn.Sequential(*mods)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w0.transpose(1, 0, 2).copy(), requires_grad=True)  # (B, k-1, D)
    xe = torch.cat([tw, tx], dim=1)  # (B, k-1+T, D): the window, then the sequence
    u = xe.unfold(1, k, 1)  # (B, T, D, k): oldest first along the last axis
    u = u.flip(-1).permute(0, 1, 3, 2).reshape(B, T, k * D)  # newest first, as W_x's rows
    ty = mlp(u)
    (ty * torch.from_numpy(wy)).sum().backward()

    y, _, cache = layer.forward(x, (np.zeros((L, B, H)), w0))
    grads, dx, (_, dw0) = layer.backward(cache, wy)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=0, atol=1e-10)
    lins = [mlp[2 * m] for m in range(L)]
    for m, lin in enumerate(lins):
        np.testing.assert_allclose(grads[f"l{m}.W_x"], lin.weight.grad.numpy().T, atol=1e-10)
        np.testing.assert_allclose(grads[f"l{m}.b"], lin.bias.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(dw0, tw.grad.numpy().transpose(1, 0, 2), atol=1e-10)


# ---------------------------------------------------------------------------------------
# the network, the trainer, files


def test_network_readout_last_gradients():
    rng = np.random.default_rng(8)
    net = rnnlab.Network(3, 4, 2, cell="ffnn", window=3, num_layers=2, output="linear",
                         readout="last", seed=0, dtype=np.float64)
    x = rng.normal(size=(4, 6, 3))
    y = rng.normal(size=(4, 2))
    lengths = np.array([6, 3, 1, 5])
    res = net.loss_and_grad(x, y, lengths=lengths)
    for name, p in net.params.items():
        num = numerical_grad(lambda: net.loss(x, y, lengths=lengths), p)
        assert rel_error(res.grads[name], num) < RTOL, name


def test_network_save_load_and_config(tmp_path):
    net = rnnlab.Network(5, 6, 3, cell="ffnn", window=4, num_layers=2, activation="relu",
                         seed=1)
    assert net.config["window"] == 4 and "window" not in rnnlab.Network(5, 6, 3).config
    # what a model file's size is checked against before anything is built
    assert rnnlab.saving.n_params("network", net.config) == net.n_params
    assert rnnlab.saving.n_params("layer", net.rnn.config) == sum(
        v.size for v in net.rnn.params.values())
    net.save(tmp_path / "m.rnnlab")
    back = rnnlab.load(tmp_path / "m.rnnlab")
    assert back.config == net.config
    x = np.random.default_rng(0).integers(0, 5, size=(2, 7))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


@pytest.mark.parametrize("bptt_steps", [4, (3, 5)])
def test_truncated_bptt_resumes_bit_identically(tmp_path, bptt_steps):
    """Interrupted mid-epoch (between windows: the carried window is in the checkpoint)."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(8, 12, 3))
    Y = rng.integers(0, 2, size=(8, 12))
    kw = dict(optimizer="adam", lr=1e-2, bptt_steps=bptt_steps, batch_size=4, seed=0,
              progress=False)

    def net(seed=0):
        return rnnlab.Network(3, 8, 2, cell="ffnn", window=3, seed=seed, dtype=np.float64)

    straight = net()
    rnnlab.Trainer(straight, **kw).fit(X, Y, epochs=2)
    ckpt = tmp_path / "c.ckpt"
    first = rnnlab.Trainer(net(), checkpoint=ckpt, **kw)
    apply = first.apply

    def interrupted(loss, grads):
        info = apply(loss, grads)
        if first.step_count == 5:  # inside the second batch's windows
            os.kill(os.getpid(), signal.SIGINT)
        return info

    first.apply = interrupted
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, epochs=2)
    saved = rnnlab.Trainer(net(seed=7), **kw).load_checkpoint(ckpt)
    assert saved.states and saved.states[0][1].shape == (2, 4, 3)  # (k-1, B, D) window
    resumed = net(seed=5)
    rnnlab.Trainer(resumed, checkpoint=ckpt, **kw).fit(X, Y, epochs=2, resume=ckpt)
    for name, v in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], v, err_msg=name)


@pytest.mark.parametrize("call, message", [
    (lambda: FFNN(3, 4, bidirectional=True), "bidirectional"),
    (lambda: FFNN(3, 4, init="orthogonal"), "recurrent initialisation"),
    (lambda: FFNN(3, 4, window=0), "window must be a positive integer"),
    (lambda: rnnlab.Network(3, 4, 2, cell="lstm", window=4), "window applies to the ffnn"),
    (lambda: rnnlab.diagnostics.gradient_flow(FFNN(3, 4), np.zeros((1, 5, 3))),
     "no state|has none"),
])
def test_what_makes_no_sense_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_export_and_torch_conversion_are_refused(tmp_path):
    layer = FFNN(3, 4)
    with pytest.raises(ValueError, match="PyTorch's recurrent modules have no counterpart"):
        rnnlab.interop.to_torch(layer)
    with pytest.raises(ValueError, match="no standard ONNX operator"):
        rnnlab.onnx.export(layer, tmp_path / "m.onnx")


def test_sklearn_estimator_takes_the_window():
    pytest.importorskip("sklearn")
    from rnnlab.sklearn import RNNClassifier

    rng = np.random.default_rng(11)
    X = rng.normal(size=(80, 10, 3)).astype(np.float32)
    y = (X[:, -2:, 0].sum(axis=1) > 0).astype(int)  # the sign of the last two steps' sum
    clf = RNNClassifier(cell="ffnn", window=3, epochs=30, random_state=0).fit(X, y)
    assert clf.network_.config["window"] == 3 and clf.get_params()["window"] == 3
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="window applies to the ffnn cell only"):
        RNNClassifier(cell="lstm", window=3, epochs=1).fit(X, y)


# ---------------------------------------------------------------------------------------
# what a window can and cannot learn (the notes' RNN against FFNN)


def _recall(lag, n, T, rng):
    """Random symbols of 4 kinds, one-hot; the target at step t is the symbol at t - lag
    (class 0 before there is one)."""
    s = rng.integers(0, 4, size=(n, T))
    y = np.zeros_like(s)
    y[:, lag:] = s[:, :-lag]
    return np.eye(4, dtype=np.float32)[s], y


@pytest.mark.parametrize("lag, low, high", [(3, 0.95, 1.0), (6, 0.0, 0.35)])
def test_recall_within_the_window_is_learned_and_beyond_it_is_not(lag, low, high):
    rng = np.random.default_rng(10)
    X, Y = _recall(lag, 256, 20, rng)
    Xt, Yt = _recall(lag, 128, 20, rng)
    net = rnnlab.Network(4, 32, 4, cell="ffnn", window=4, seed=0)
    rnnlab.Trainer(net, "adam", lr=1e-2, batch_size=32, seed=0, progress=False,
                   log=None).fit(X, Y, epochs=15)
    acc = float((net.predict(Xt).argmax(-1)[:, lag:] == Yt[:, lag:]).mean())
    assert low <= acc <= high, acc  # chance is 0.25


# ---------------------------------------------------------------------------------------
# the command line: the language model and the task runs

TEXT = "to be, or not to be, that is the question:\nwhether 'tis nobler in the mind\n" * 20
SMALL = ["--cell", "ffnn", "--window", "5", "--hidden", "16", "--bptt", "8", "--batch", "4",
         "--no-progress", "--lr-decay", "0"]  # constant: the 6-update run plans no decay


def test_language_model_trains_samples_evaluates_and_resumes_exactly(tmp_path, capsys):
    from rnnlab import cli, lm

    corpus = tmp_path / "tiny.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    assert cli.main(["train", "--data", str(corpus), "--steps", "9", "--out", str(straight),
                     *SMALL]) == 0
    assert cli.main(["train", "--data", str(corpus), "--steps", "6", "--out", str(cut),
                     *SMALL]) == 0
    assert cli.main(["train", "--resume", str(cut), "--steps", "9", "--no-progress"]) == 0
    a, b = lm.open_run(straight).net, lm.open_run(cut).net
    assert a.config["window"] == 5 and a.cell == "ffnn"
    for name, v in a.params.items():
        np.testing.assert_array_equal(b.params[name], v, err_msg=name)
    capsys.readouterr()
    assert cli.main(["sample", str(cut), "--prime", "to ", "--length", "30", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("to ") and len(out) >= 33 and set(out) <= set(TEXT) | {"\n"}
    assert cli.main(["eval", str(cut), "--data", str(corpus), "--json"]) == 0
    assert '"bits"' in capsys.readouterr().out
    config = cut / "config.toml"
    config.write_text(config.read_text().replace("window = 5", "window = 7"))
    with pytest.raises(ValueError, match="window 5.*does not match config.toml.*window 7"):
        lm.open_run(cut)


def test_task_run_and_a_window_for_another_cell(tmp_path, capsys):
    from rnnlab import cli

    out = tmp_path / "digits"
    assert cli.main(["train", "--task", "digits", "--cell", "ffnn", "--window", "3",
                     "--epochs", "1", "--max-train", "64", "--max-test", "32", "--out",
                     str(out), "--no-progress"]) == 0
    assert rnnlab.load(out / "model.rnnlab").config["window"] == 3
    assert cli.main(["eval", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--cell", "lstm", "--window", "4", "--steps", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "window applies to the ffnn cell only" in err[0]
