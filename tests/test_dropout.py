"""Zoneout, recurrent dropout and dropout between layers: gradients with the masks fixed,
the options off being today's model, the inference model, seeded and resumable training,
model files, the command line and ONNX."""

import json

import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error
from rnnlab import dropout

TOL = 1e-6
LAYERS = {"elman": rnnlab.Elman, "lstm": rnnlab.LSTM, "gru": rnnlab.GRU}


def as_list(state):
    return list(state) if isinstance(state, tuple) else [state]


def random_state(layer, B, rng):
    parts = [rng.normal(size=s) for s in layer.state_shapes(B)]
    return parts[0] if len(parts) == 1 else tuple(parts)


VARIANTS = [
    ("elman", {}, {"zoneout": 0.3}),
    ("elman", {}, {"recurrent_dropout": 0.4}),
    ("gru", {}, {"zoneout": 0.3}),
    ("gru", {}, {"recurrent_dropout": 0.4}),
    ("lstm", {}, {"zoneout": (0.3, 0.2)}),
    ("lstm", {}, {"zoneout": (0.0, 0.4)}),
    ("lstm", {}, {"recurrent_dropout": 0.4}),
    ("lstm", {"proj_size": 2, "peepholes": True}, {"zoneout": 0.3, "recurrent_dropout": 0.3}),
    ("gru", {}, {"zoneout": 0.3, "recurrent_dropout": 0.4}),
    ("gru", {"layer_norm": True}, {"zoneout": 0.3, "recurrent_dropout": 0.4}),
    ("lstm", {"layer_norm": True}, {"zoneout": (0.3, 0.2), "recurrent_dropout": 0.4}),
    ("elman", {}, {}),  # dropout between layers alone
]


@pytest.mark.parametrize("cell,opts,reg", VARIANTS,
                         ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v)))
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_with_fixed_masks_matches_finite_differences(cell, opts, reg, num_layers,
                                                             with_lengths):
    rng = np.random.default_rng(11 + num_layers)
    layer = LAYERS[cell](3, 4, num_layers, seed=3, dtype=np.float64, **opts, **reg)
    B, T = 3, 5
    masks = layer.draw_masks(np.random.default_rng(5), B, T, between=0.5)
    if num_layers == 1 and not reg:
        assert masks is None
        return
    x = rng.normal(size=(B, T, 3))
    h0 = random_state(layer, B, rng)
    lengths = np.array([5, 2, 4]) if with_lengths else None
    wy = rng.normal(size=(B, T, layer.output_features))
    ws = [rng.normal(size=s.shape) for s in as_list(h0)]

    def loss():
        y, s, _ = layer.forward(x, h0, lengths=lengths, masks=masks)
        return np.sum(y * wy) + sum(np.sum(a * w) for a, w in zip(as_list(s), ws, strict=True))

    _, _, cache = layer.forward(x, h0, lengths=lengths, masks=masks)
    grads, dx, d0 = layer.backward(cache, wy, ws[0] if len(ws) == 1 else tuple(ws))
    for name, p in layer.params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < TOL, name
    assert rel_error(dx, numerical_grad(loss, x)) < TOL
    for a, s in zip(as_list(d0), as_list(h0), strict=True):
        assert rel_error(a, numerical_grad(loss, s)) < TOL
    # the masks change the function: the same forward without them differs
    y0, _, _ = layer.forward(x, h0, lengths=lengths)
    y1, _, _ = layer.forward(x, h0, lengths=lengths, masks=masks)
    assert not np.allclose(y0, y1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_with_fixed_masks_matches_finite_differences(cell):
    rng = np.random.default_rng(2)
    layer = LAYERS[cell](3, 3, 2, seed=1, dtype=np.float64, bidirectional=True,
                         zoneout=0.25, recurrent_dropout=0.3)
    B, T = 2, 4
    masks = layer.draw_masks(np.random.default_rng(9), B, T, between=0.4)
    assert masks.between.shape == (1, T, B, 6) and masks.recurrent.shape == (4, B, 3)
    x = rng.normal(size=(B, T, 3))
    lengths = np.array([4, 3])
    wy = rng.normal(size=(B, T, 6))

    def loss():
        return np.sum(layer.forward(x, lengths=lengths, masks=masks)[0] * wy)

    _, _, cache = layer.forward(x, lengths=lengths, masks=masks)
    grads, dx, _ = layer.backward(cache, wy)
    for name, p in layer.params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < TOL, name
    assert rel_error(dx, numerical_grad(loss, x)) < TOL


def test_recurrent_dropout_masks_only_the_recurrent_product():
    """Gal's mask on h_{t-1} in h_{t-1} W_h: for the GRU the z * h_{t-1} term reads the
    unmasked state; written out by hand for one step."""
    layer = rnnlab.GRU(2, 3, seed=0, dtype=np.float64, recurrent_dropout=0.5)
    rng = np.random.default_rng(0)
    x, h0 = rng.normal(size=(2, 1, 2)), rng.normal(size=(1, 2, 3))
    masks = layer.draw_masks(np.random.default_rng(1), 2, 1)
    m = masks.recurrent[0]
    assert set(np.unique(m)) <= {0.0, 2.0}
    p = {k[3:]: v for k, v in layer.params.items()}
    h = h0[0]
    hp = (h * m) @ p["W_h"] + p["b_h"]
    xp = x[:, 0] @ p["W_x"] + p["b"]
    sig = 1 / (1 + np.exp(-(xp[:, :6] + hp[:, :6])))
    r, z = sig[:, :3], sig[:, 3:]
    n = np.tanh(xp[:, 6:] + r * hp[:, 6:])
    want = (1 - z) * n + z * h
    y, _, _ = layer.forward(x, h0, masks=masks)
    np.testing.assert_allclose(y[:, 0], want, rtol=1e-12)


def test_zoneout_keeps_exactly_the_masked_units():
    layer = rnnlab.LSTM(2, 4, seed=0, dtype=np.float64, zoneout=(0.5, 0.5))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 6, 2))
    masks = layer.draw_masks(np.random.default_rng(4), 3, 6)
    y, _, _ = layer.forward(x, masks=masks)
    kept = masks.zoneout[0][0].transpose(1, 0, 2).astype(bool)  # (B, T, H)
    prev = np.concatenate([np.zeros((3, 1, 4)), y[:, :-1]], axis=1)
    assert kept.any() and (~kept).any()
    np.testing.assert_array_equal(y[kept], prev[kept])
    assert not np.any(y[~kept] == prev[~kept])


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_off_is_bit_identical_to_the_plain_layer(cell):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7, 3)).astype(np.float32)
    plain = LAYERS[cell](3, 5, 2, seed=1)
    off = LAYERS[cell](3, 5, 2, seed=1, zoneout=0.0, recurrent_dropout=0.0)
    assert off.config == plain.config and type(off.cell) is type(plain.cell)
    assert off.draw_masks(np.random.default_rng(0), 4, 7) is None
    y0, s0, c0 = plain.forward(x)
    y1, s1, c1 = off.forward(x, masks=None)
    np.testing.assert_array_equal(y0, y1)
    g0, dx0, _ = plain.backward(c0, np.ones_like(y0))
    g1, dx1, _ = off.backward(c1, np.ones_like(y1))
    for k in g0:
        np.testing.assert_array_equal(g0[k], g1[k])
    np.testing.assert_array_equal(dx0, dx1)
    net0 = rnnlab.Network(3, 5, 2, cell=cell, num_layers=2, seed=1)
    net1 = rnnlab.Network(3, 5, 2, cell=cell, num_layers=2, seed=1, dropout=0.0,
                          zoneout=0.0, recurrent_dropout=0.0)
    assert net0.config == net1.config
    np.testing.assert_array_equal(net0.infer(x)[0], net1.infer(x)[0])


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_dropout_is_the_identity_at_inference(cell):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 3)).astype(np.float32)
    plain = rnnlab.Network(3, 5, 2, cell=cell, num_layers=2, seed=4)
    dropped = rnnlab.Network(3, 5, 2, cell=cell, num_layers=2, seed=4, dropout=0.5,
                             recurrent_dropout=0.5)
    for a, b in ((plain.infer(x)[0], dropped.infer(x)[0]),
                 (plain.forward(x)[0], dropped.forward(x)[0]),
                 (plain.predict(x), dropped.predict(x))):
        np.testing.assert_array_equal(a, b)
    xt = x[:, 0]
    np.testing.assert_array_equal(plain.step(xt)[0], dropped.step(xt)[0])


@pytest.mark.parametrize("cell,rates", [("elman", 0.3), ("gru", 0.4), ("lstm", (0.3, 0.1))])
def test_zoneout_inference_is_the_expectation(cell, rates):
    layer = LAYERS[cell](3, 4, 2, seed=2, dtype=np.float64, zoneout=rates)
    plain = LAYERS[cell](3, 4, 2, seed=2, dtype=np.float64)
    z = dropout.zoneout_rates(rates, layer.n_state)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 3))
    # by hand: each layer's plain step, mixed with the previous state at the rates
    states = [tuple(np.zeros((2, 4)) for _ in range(layer.n_state)) for _ in range(2)]
    want = []
    for t in range(5):
        inp = x[:, t]
        for k in range(2):
            new, _ = plain.cell.step({n[3:]: v for n, v in plain.params.items()
                                      if n.startswith(f"l{k}.")},
                                     inp @ plain.params[f"l{k}.W_x"] + plain.params[f"l{k}.b"],
                                     states[k])
            states[k] = tuple(zk * s + (1 - zk) * n
                              for zk, s, n in zip(z, states[k], new, strict=True))
            inp = states[k][0]
        want.append(inp)
    want = np.stack(want, axis=1)
    y, _ = layer.infer(x)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.forward(x)[0], want, rtol=1e-12, atol=1e-14)
    stream = rnnlab.Stream(layer, 2)
    np.testing.assert_allclose(np.stack([stream.step(x[:, t]) for t in range(5)], axis=1),
                               want, rtol=1e-12, atol=1e-14)
    assert not np.allclose(plain.infer(x)[0], want)


def test_bad_rates_are_refused_naming_the_value():
    with pytest.raises(ValueError, match=r"zoneout must be a number in \[0, 1\), got 1.0"):
        rnnlab.LSTM(2, 3, zoneout=1.0)
    with pytest.raises(ValueError, match="zoneout must be a number, got"):
        rnnlab.GRU(2, 3, zoneout=(0.1, 0.2))
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a number in \[0, 1\), "
                                         r"got -0.1"):
        rnnlab.Elman(2, 3, recurrent_dropout=-0.1)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 'x'"):
        rnnlab.Network(2, 3, 2, num_layers=2, dropout="x")
    with pytest.raises(ValueError, match="dropout between layers needs num_layers >= 2"):
        rnnlab.Network(2, 3, 2, dropout=0.2)
    with pytest.raises(ValueError, match="ffnn"):
        rnnlab.Network(2, 3, 2, cell="ffnn", zoneout=0.1)


# training ---------------------------------------------------------------------------------
def small_task(n=96, T=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, 3))
    Y = (X[..., 0] > 0).astype(int) + (X[..., 1] > 0)  # 3 classes, per step
    return X, Y


def interrupt_at(trainer, step):
    """Press Ctrl-C (a real SIGINT) right after update number ``step``."""
    import os
    import signal

    apply = trainer.apply

    def patched(loss, grads):
        info = apply(loss, grads)
        if trainer.step_count == step:
            os.kill(os.getpid(), signal.SIGINT)
        return info

    trainer.apply = patched


REGULARIZED = dict(num_layers=2, dropout=0.3, recurrent_dropout=0.25, zoneout=(0.2, 0.1))


@pytest.mark.parametrize("bptt_steps,step", [(None, 7), ((2, 4), 9), (3, 4)])
def test_interrupted_and_resumed_run_with_masks_is_bit_identical(tmp_path, bptt_steps, step):
    X, Y = small_task()
    kw = dict(optimizer="adam", lr=1e-2, clip_norm=0.5, bptt_steps=bptt_steps, batch_size=16,
              seed=3, progress=False)

    def net(seed=0):
        return rnnlab.Network(3, 6, 3, cell="lstm", seed=seed, dtype=np.float64, **REGULARIZED)

    straight = net()
    Trainer = rnnlab.Trainer
    Trainer(straight, **kw).fit(X, Y, epochs=2)
    ckpt = tmp_path / "run.ckpt"
    first = Trainer(net(), checkpoint=ckpt, **kw)
    interrupt_at(first, step)
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, epochs=2)
    meta = json.loads(np.load(ckpt)["meta"].tobytes())
    assert meta["masks_rng"]["bit_generator"] == "PCG64"
    resumed = net(seed=99)
    Trainer(resumed, checkpoint=ckpt, **kw).fit(X, Y, epochs=2, resume=ckpt)
    for k, v in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], v, err_msg=k)
    # the masks mattered: a run without them, or with another seed, ends elsewhere
    plain = rnnlab.Network(3, 6, 3, cell="lstm", seed=0, dtype=np.float64, num_layers=2)
    Trainer(plain, **kw).fit(X, Y, epochs=2)
    other = net()
    Trainer(other, **{**kw, "seed": 4}).fit(X, Y, epochs=2)
    for w in (plain, other):
        assert not np.allclose(w.params["rnn.l0.W_h"], straight.params["rnn.l0.W_h"])


def test_a_resume_without_the_generator_state_would_differ(tmp_path):
    """The generator's state is what makes the resume exact: restarting it from the seed
    instead draws other masks after the checkpoint."""
    X, Y = small_task()
    kw = dict(lr=1e-2, batch_size=16, seed=3, progress=False)
    straight = rnnlab.Network(3, 6, 3, seed=0, dtype=np.float64, **REGULARIZED)
    rnnlab.Trainer(straight, **kw).fit(X, Y, epochs=2)
    ckpt = tmp_path / "run.ckpt"
    first = rnnlab.Trainer(rnnlab.Network(3, 6, 3, seed=0, dtype=np.float64, **REGULARIZED),
                           checkpoint=ckpt, **kw)
    interrupt_at(first, 5)
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, epochs=2)
    resumed = rnnlab.Network(3, 6, 3, seed=0, dtype=np.float64, **REGULARIZED)
    tr = rnnlab.Trainer(resumed, checkpoint=ckpt, **kw)
    seeded = tr.mask_rng.bit_generator.state
    tr.load_checkpoint(ckpt)
    assert tr.mask_rng.bit_generator.state != seeded
    tr.mask_rng.bit_generator.state = seeded  # forget it
    tr.load_checkpoint = lambda path, load=tr.load_checkpoint: (
        load(path), setattr(tr.mask_rng.bit_generator, "state", seeded))[0]
    tr.fit(X, Y, epochs=2, resume=ckpt)
    assert not np.array_equal(resumed.params["rnn.l0.W_h"], straight.params["rnn.l0.W_h"])


def test_a_corrupt_generator_state_is_refused_in_one_line(tmp_path):
    X, Y = small_task(32)
    ckpt = tmp_path / "run.ckpt"
    net = rnnlab.Network(3, 4, 3, seed=0, recurrent_dropout=0.2)
    rnnlab.Trainer(net, batch_size=16, progress=False, checkpoint=ckpt).fit(X, Y)
    arrays = dict(np.load(ckpt))
    meta = json.loads(arrays["meta"].tobytes())
    meta["masks_rng"] = {"bit_generator": "PCG64", "state": "nonsense"}
    arrays["meta"] = rnnlab.io.meta_array(meta)
    bad = tmp_path / "bad.ckpt.npz"
    np.savez(bad, **arrays)
    tr = rnnlab.Trainer(rnnlab.Network(3, 4, 3, seed=0, recurrent_dropout=0.2), batch_size=16,
                        progress=False)
    with pytest.raises(ValueError, match="corrupt rnnlab checkpoint: masks_rng is not a valid "
                                         "PCG64 state") as e:
        tr.load_checkpoint(bad)
    assert "\n" not in str(e.value)


def test_masks_come_from_the_trainer_only():
    """Training draws a fresh set per batch; evaluation, inference and a Trainer over a
    network without the options draw nothing."""
    X, Y = small_task(64)
    net = rnnlab.Network(3, 6, 3, seed=0, **REGULARIZED)
    tr = rnnlab.Trainer(net, batch_size=16, progress=False)
    before = tr.mask_rng.bit_generator.state
    tr.evaluate(X, Y)
    net.predict(X)
    assert tr.mask_rng.bit_generator.state == before
    tr.fit(X, Y)
    assert tr.mask_rng.bit_generator.state != before
    plain = rnnlab.Trainer(rnnlab.Network(3, 6, 3, seed=0), batch_size=16, progress=False)
    start = plain.mask_rng.bit_generator.state
    plain.fit(X, Y)
    assert plain.mask_rng.bit_generator.state == start


def test_truncated_windows_of_a_batch_share_its_masks():
    """One draw per batch: BPTT(k2 = T) over windows gives full BPTT's gradient with the
    same masks (the windows run again from the batch's start read the same steps)."""
    X, Y = small_task(8, T=6)
    net = rnnlab.Network(3, 5, 3, cell="gru", seed=0, dtype=np.float64, **{
        **REGULARIZED, "zoneout": 0.2})
    masks = net.draw_masks(np.random.default_rng(0), 8, 6)
    full = net.loss_and_grad(X, Y, masks=masks)
    tb = list(rnnlab.bptt.Truncated(net, X, Y, None, 3, 6, masks=masks))
    # the last window's gradient reaches back over the whole sequence: the loss on steps
    # 3..5 through all six steps; compare with full BPTT on those steps' loss alone
    Yw = Y.copy()
    z, _, cache = net.forward(X, masks=masks)
    dz = net.output_loss(z[:, 3:], Yw[:, 3:])[1]
    dz_full = np.zeros_like(z)
    dz_full[:, 3:] = dz
    grads, _, _ = net.backward(cache, dz_full, input_grad=False)
    for k, v in grads.items():
        np.testing.assert_allclose(tb[1].grads[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
    assert np.isfinite(full.loss)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_dropout_does_not_break_learning(cell):
    """The seeded learning test: with every option on at usual rates, a 2-layer net still
    learns the per-step task far below chance, close to the plain net (seed 0: LSTM 0.19
    against 0.17, GRU 0.15 against 0.10, chance 1.10)."""
    X, Y = small_task(512, seed=0)
    Xv, Yv = small_task(128, seed=1)
    chance = float(np.log(3))
    losses = {}
    for name, opts in (("plain", {}),
                       ("regularized", dict(dropout=0.2, recurrent_dropout=0.2, zoneout=0.1))):
        net = rnnlab.Network(3, 16, 3, cell=cell, seed=0, num_layers=2, **opts)
        h = rnnlab.Trainer(net, lr=1e-2, batch_size=32, seed=0, progress=False).fit(
            X, Y, epochs=8, validation=(Xv, Yv))
        losses[name] = h.val_loss[-1]
    assert losses["regularized"] < 0.25 * chance
    assert losses["regularized"] < losses["plain"] + 0.1


# model files, the command line, exports ---------------------------------------------------
def test_model_files_round_trip_the_options(tmp_path):
    net = rnnlab.Network(3, 5, 2, cell="lstm", seed=0, **REGULARIZED)
    assert net.config["dropout"] == 0.3 and net.config["zoneout"] == [0.2, 0.1]
    assert net.config["recurrent_dropout"] == 0.25
    rnnlab.save(net, tmp_path / "net.rnnlab")
    back = rnnlab.load(tmp_path / "net.rnnlab")
    assert back.config == net.config and back.rnn.zoneout == (0.2, 0.1)
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))
    layer = rnnlab.GRU(3, 4, seed=1, zoneout=0.3, recurrent_dropout=0.1)
    rnnlab.save(layer, tmp_path / "layer.rnnlab")
    again = rnnlab.load(tmp_path / "layer.rnnlab")
    assert again.config == layer.config and again.config["zoneout"] == [0.3]
    np.testing.assert_array_equal(again.infer(x)[0], layer.infer(x)[0])


def test_the_language_model_cli_trains_with_the_options_and_resumes(tmp_path):
    from rnnlab import cli, lm

    corpus = tmp_path / "tiny.txt"
    corpus.write_text("".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog"] * 60),
                      encoding="utf-8")
    out = tmp_path / "run"
    small = ["--hidden", "12", "--bptt", "8", "--batch", "4", "--no-progress"]
    assert cli.main(["train", "--data", str(corpus), "--steps", "4", "--out", str(out),
                     "--layers", "2", "--dropout", "0.2", "--recurrent-dropout", "0.1",
                     "--zoneout", "0.1,0.05", *small]) == 0
    cfg = lm.LMConfig.from_toml(out / "config.toml")
    assert (cfg.dropout, cfg.recurrent_dropout, cfg.zoneout) == (0.2, 0.1, [0.1, 0.05])
    net = rnnlab.load(out / "model.rnnlab")
    assert (net.dropout, net.rnn.recurrent_dropout, net.rnn.zoneout) == (0.2, 0.1, (0.1, 0.05))
    assert cli.main(["train", "--resume", str(out), "--steps", "6", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["steps"] == 6
    with pytest.raises(ValueError, match="dropout between layers needs layers >= 2"):
        lm.LMConfig.from_dict({"dropout": 0.2})
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a number in \[0, 1\)"):
        lm.LMConfig.from_dict({"recurrent_dropout": 1.5})


def test_the_cli_refuses_a_bad_zoneout_in_one_line(capsys):
    from rnnlab import cli

    with pytest.raises(SystemExit):
        cli.main(["train", "--zoneout", "0.1,0.2,0.3"])
    assert "expected a rate Z or a pair ZH,ZC, got '0.1,0.2,0.3'" in capsys.readouterr().err


def test_a_task_run_saves_the_options(tmp_path):
    pytest.importorskip("sklearn")
    from rnnlab import cli

    out = tmp_path / "digits"
    assert cli.main(["train", "--task", "digits", "--epochs", "1", "--hidden", "8",
                     "--layers", "2", "--dropout", "0.1", "--zoneout", "0.1",
                     "--max-train", "64", "--max-test", "32", "--no-progress",
                     "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dropout"] == 0.1 and config["zoneout"] == 0.1
    net = rnnlab.load(out / "model.rnnlab")
    assert net.dropout == 0.1 and net.rnn.zoneout == (0.1, 0.1)


def test_onnx_exports_dropout_and_refuses_zoneout_in_one_line(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from rnnlab import onnx as ronnx

    net = rnnlab.Network(3, 5, 2, cell="gru", num_layers=2, seed=0, dropout=0.4,
                         recurrent_dropout=0.3)
    path = ronnx.export(net, tmp_path / "net.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    s = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    (got,) = s.run(None, {"x": x})
    np.testing.assert_allclose(got, net.predict(x), rtol=1e-4, atol=1e-5)
    for cell, rates in (("lstm", (0.1, 0.2)), ("elman", 0.1)):
        zoned = rnnlab.Network(3, 5, 2, cell=cell, seed=0, zoneout=rates)
        with pytest.raises(ValueError, match=r"cannot export \w+ with zoneout=\[.*\]: its "
                                             r"inference form .* is not expressible with "
                                             r"ONNX's (LSTM|RNN) operator") as e:
            ronnx.export(zoned, tmp_path / "z.onnx")
        assert "\n" not in str(e.value)
    assert not (tmp_path / "z.onnx").exists()


def test_to_torch_refuses_zoneout():
    pytest.importorskip("torch")
    from rnnlab import interop

    with pytest.raises(ValueError, match=r"zoneout=\[0.2, 0.2\] has no PyTorch equivalent"):
        interop.to_torch(rnnlab.LSTM(3, 4, zoneout=0.2))
    module = interop.to_torch(rnnlab.LSTM(3, 4, recurrent_dropout=0.2))
    assert module.hidden_size == 4


@pytest.mark.parametrize("cell,rates", [("lstm", (0.3, 0.0)), ("gru", 0.3)])
def test_gradient_flow_of_a_zoneout_layer_is_its_inference_models(cell, rates):
    """Diagnostics read the inference model: at lag 1 the flow of a one-unit zoneout layer
    is |dh_1/dh_0| of the expectation, by central differences."""
    from rnnlab import diagnostics

    layer = LAYERS[cell](2, 1, seed=0, dtype=np.float64, zoneout=rates)
    x = np.random.default_rng(0).normal(size=(1, 2, 2))
    flow = diagnostics.gradient_flow(layer, x)
    _, s1 = layer.infer(x[:, :1])
    parts = as_list(s1)

    def h_after(eps):
        p = [a.copy() for a in parts]
        p[0][0, 0, 0] += eps
        return as_list(layer.infer(x[:, 1:], p[0] if len(p) == 1 else tuple(p))[1])[0][0, 0, 0]

    assert flow[1] == pytest.approx(abs(h_after(1e-6) - h_after(-1e-6)) / 2e-6, rel=1e-6)
    net = rnnlab.Network(2, 3, 2, cell=cell, seed=0, zoneout=rates)
    report = diagnostics.diagnose(net, x.astype(np.float32), np.zeros((1, 2), int))
    assert np.isfinite(report.loss_gradients).all()


@pytest.mark.parametrize("stop", [5, 11])  # mid-epoch; after an epoch's last window
def test_a_language_model_run_with_masks_resumed_ends_as_a_straight_one(tmp_path, stop):
    from rnnlab import lm

    data = tmp_path / "tiny.txt"
    data.write_text("".join(f"the {w} sat on the mat.\n" for w in ["cat", "dog", "bat", "rat"]
                            * 4), encoding="utf-8")
    quiet = dict(progress=False, echo=lambda *a: None)

    def config(steps):
        return lm.LMConfig(data=str(data), steps=steps, hidden=8, layers=2, bptt=8, batch=4,
                           time_budget=None, eval_every=100, sample_every=0,
                           checkpoint_every=100, eval_tokens=50, dropout=0.3,
                           recurrent_dropout=0.2, zoneout=[0.2, 0.1],
                           lr_decay=0)  # constant: the run stopped early plans no decay

    straight = lm.open_run(lm.train(config(20), out=tmp_path / "straight", **quiet)).net
    lm.train(config(stop), out=tmp_path / "resumed", **quiet)
    resumed = lm.open_run(lm.train(config(20), resume=tmp_path / "resumed", **quiet)).net
    for k, v in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], v, err_msg=k)


def test_last_steps_reads_each_steps_own_masks():
    """Many-to-one truncated BPTT(k) with masks: the prefix runs under its steps' masks and
    the last k steps under theirs, as a hand-made split of the same sequence does."""
    rng = np.random.default_rng(0)
    net = rnnlab.Network(3, 4, 2, cell="lstm", readout="last", seed=0, dtype=np.float64,
                         **REGULARIZED)
    B, T, k = 3, 7, 3
    x, y = rng.normal(size=(B, T, 3)), rng.integers(0, 2, size=B)
    masks = net.draw_masks(np.random.default_rng(1), B, T)
    got = rnnlab.bptt.last_steps(net, x, y, None, k, masks=masks)
    state = net.rnn.run(x[:, :T - k], None, None, keep=False, masks=masks.window(0, T - k))[1]
    want = net.loss_and_grad(x[:, T - k:], y, state=state, masks=masks.window(T - k, T))
    assert got.loss == pytest.approx(want.loss, rel=1e-12)
    for name, g in want.grads.items():
        np.testing.assert_allclose(got.grads[name], g, rtol=1e-10, atol=1e-13, err_msg=name)
    plain = rnnlab.bptt.last_steps(net, x, y, None, k)
    assert plain.loss != pytest.approx(got.loss, rel=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_all_three_against_a_pytorch_loop_written_out(cell):
    """The same masks in a PyTorch autograd loop written out here (PyTorch's equations and
    gate orders): dropout between the layers on the lower layer's outputs, Gal's mask on
    h_{t-1} in the recurrent product (for the GRU the interpolation z * h_{t-1} reads h
    itself), zoneout mixing each state with the previous one; float64 outputs and every
    gradient within 1e-10."""
    torch = pytest.importorskip("torch")
    B, T, D, H = 3, 5, 2, 4
    zone = (0.3, 0.2) if cell == "lstm" else 0.3
    layer = LAYERS[cell](D, H, 2, seed=0, dtype=np.float64, zoneout=zone,
                         recurrent_dropout=0.4)
    rng = np.random.default_rng(1)
    x, wy = rng.normal(size=(B, T, D)), rng.normal(size=(B, T, H))
    masks = layer.draw_masks(np.random.default_rng(2), B, T, between=0.5)
    y, _, cache = layer.forward(x, masks=masks)
    grads, dx, _ = layer.backward(cache, wy)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    inp = [xt[:, s] for s in range(T)]
    for k in range(2):
        if k:
            inp = [a * torch.tensor(masks.between[k - 1, s]) for s, a in enumerate(inp)]
        m = torch.tensor(masks.recurrent[k])
        h = torch.zeros(B, H, dtype=torch.float64)
        c = torch.zeros(B, H, dtype=torch.float64)
        out = []
        for s in range(T):
            W_x, W_h, b = t[f"l{k}.W_x"], t[f"l{k}.W_h"], t[f"l{k}.b"]
            if cell == "lstm":  # gate order i, f, g, o, PyTorch's
                a = inp[s] @ W_x + (h * m) @ W_h + b
                i, f, g, o = a.split(H, dim=1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                c_new = f * c + i * g
                h_new = o * c_new.tanh()
                dh, dc = (torch.tensor(z[k, s]) for z in masks.zoneout)
                h, c = dh * h + (1 - dh) * h_new, dc * c + (1 - dc) * c_new
            else:  # r, z, n as PyTorch's GRU
                xp = inp[s] @ W_x + b
                hp = (h * m) @ W_h + t[f"l{k}.b_h"]
                r = (xp[:, :H] + hp[:, :H]).sigmoid()
                z = (xp[:, H:2 * H] + hp[:, H:2 * H]).sigmoid()
                n = (xp[:, 2 * H:] + r * hp[:, 2 * H:]).tanh()
                h_new = (1 - z) * n + z * h
                d = torch.tensor(masks.zoneout[0][k, s])
                h = d * h + (1 - d) * h_new
            out.append(h)
        inp = out
    yt = torch.stack(inp, dim=1)
    (yt * torch.tensor(wy)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-10)
    for name, v in t.items():
        np.testing.assert_allclose(grads[name], v.grad.numpy(), rtol=0, atol=1e-10,
                                   err_msg=name)


def test_masks_that_do_not_fit_are_refused_naming_them():
    layer = rnnlab.LSTM(3, 4, 2, seed=0, zoneout=0.1, recurrent_dropout=0.2)
    x = np.zeros((2, 5, 3), np.float32)
    masks = layer.draw_masks(np.random.default_rng(0), 2, 5, between=0.3)
    with pytest.raises(ValueError, match=r"masks.between must be a \(1, 6, 2, 4\) float32 "
                                         r"array, got \(1, 5, 2, 4\) float32"):
        layer.forward(np.zeros((2, 6, 3), np.float32), masks=masks)
    with pytest.raises(ValueError, match=r"masks.recurrent must be a \(2, 2, 4\) float32 "
                                         r"array, got \(2, 2, 4\) float64"):
        layer.forward(x, masks=masks._replace(recurrent=masks.recurrent.astype(np.float64)))
    with pytest.raises(ValueError, match="masks.zoneout given to a layer without zoneout"):
        rnnlab.LSTM(3, 4, 2, seed=0).forward(x, masks=masks)


@pytest.mark.parametrize("bptt", ["none", "3,5"])
def test_two_ranks_draw_the_masks_one_process_draws(tmp_path, bptt):
    """Data-parallel: each rank takes its rows of the global batch's masks, so 2 ranks
    train the parameters one process trains (float64, 1e-12)."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("mpi4py")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec on PATH")
    here = Path(__file__).parent / "mpi"
    sys.path.insert(0, str(here))
    import train_ranks

    out = tmp_path / "params.npz"
    done = subprocess.run([mpiexec, "-n", "2", sys.executable, str(here / "train_ranks.py"),
                           str(out), "float64", bptt, "masks"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    net, trainer, x, y, lengths = train_ranks.problem(
        np.float64, None if bptt == "none" else (3, 5), masks=True)
    trainer.fit(x, y, lengths=lengths, epochs=7 if bptt == "none" else 3)
    got = np.load(out)
    assert int(got["steps"]) == trainer.step_count
    for name, v in net.params.items():
        np.testing.assert_allclose(got[name], v, rtol=0, atol=1e-12 * max(1, np.abs(v).max()),
                                   err_msg=name)


def test_training_with_the_options_at_zero_is_bit_identical_to_training_without():
    X, Y = small_task(64)
    nets = [rnnlab.Network(3, 6, 3, num_layers=2, seed=0, **opts)
            for opts in ({}, dict(dropout=0.0, recurrent_dropout=0.0, zoneout=(0.0, 0.0)))]
    for net in nets:
        rnnlab.Trainer(net, lr=1e-2, batch_size=16, bptt_steps=(2, 4), progress=False).fit(
            X, Y, epochs=2)
    for k, v in nets[0].params.items():
        np.testing.assert_array_equal(nets[1].params[k], v, err_msg=k)
