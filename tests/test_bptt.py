"""Truncated BPTT: exact when it reaches back far enough, and the carried state is the real one."""

import numpy as np
import pytest

import rnnlab
from rnnlab import bptt


def setup(cell="lstm", T=12):
    rng = np.random.default_rng(0)
    net = rnnlab.Network(3, 5, 4, cell=cell, num_layers=2, seed=1, dtype=np.float64)
    x = rng.normal(size=(4, T, 3))
    y = rng.integers(0, 4, size=(4, T))
    return net, x, y


def weighted_sum(windows):
    """Sum of window gradients weighted by positions: the gradient of the whole-batch mean."""
    total, count, loss = {}, 0, 0.0
    for res in windows:
        for k, v in res.grads.items():
            total[k] = total.get(k, 0) + v * res.count
        count += res.count
        loss += res.loss * res.count
    return loss / count, {k: v / count for k, v in total.items()}


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("lengths", [None, [12, 7, 3, 10]])
def test_truncation_reaching_the_start_equals_full_bptt(cell, lengths):
    net, x, y = setup(cell)
    full = net.loss_and_grad(x, y, lengths=lengths)
    # k1 = 3 new steps a window, k2 = 12 >= T: gradients reach back to step 0
    loss, grads = weighted_sum(bptt.Truncated(net, x, y, lengths, 3, 12))
    assert loss == pytest.approx(full.loss, rel=1e-13)
    for k, v in full.grads.items():
        np.testing.assert_allclose(grads[k], v, rtol=1e-11, atol=1e-13, err_msg=k)


def test_short_truncation_differs_from_full_bptt():
    net, x, y = setup()
    full = net.loss_and_grad(x, y)
    _, grads = weighted_sum(bptt.Truncated(net, x, y, None, 3, 3))
    assert not np.allclose(grads["rnn.l0.W_h"], full.grads["rnn.l0.W_h"], rtol=1e-3)
    # the head's gradient needs no history: truncation leaves it exact
    np.testing.assert_allclose(grads["head.W_y"], full.grads["head.W_y"], rtol=1e-12)


@pytest.mark.parametrize("k1,k2", [(4, 4), (3, 6), (5, 5)])
def test_carried_state_equals_one_long_forward(k1, k2):
    net, x, y = setup(T=13)
    z_full, state_full, _ = net.forward(x)
    tb = bptt.Truncated(net, x, y, None, k1, k2)
    zs, state = [], None
    for w in range(tb.n_windows):
        a, b = w * k1, min((w + 1) * k1, 13)
        z, state, _ = net.forward(x[:, a:b], state)
        zs.append(z)
        res = next(tb)
        for s1, s2 in zip(res.state, state, strict=True):
            np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(np.concatenate(zs, axis=1), z_full, rtol=0, atol=1e-14)
    for s1, s2 in zip(state, state_full, strict=True):
        np.testing.assert_allclose(s1, s2, atol=1e-14)


def window_reference(net, x, y, lengths, a, b, reach):
    """Loss and gradients of window [a, b) built by hand: the state at ``a - reach`` (run
    from the start, with no gradient), one forward over [a - reach, b), the loss on [a, b)
    alone, one backward."""
    s0 = max(a - reach, 0)
    state = None
    if s0:
        _, state = net.rnn.infer(x[:, :s0], lengths=bptt.window_lengths(lengths, 0, s0))
    z, _, cache = net.forward(x[:, s0:b], state, lengths=bptt.window_lengths(lengths, s0, b))
    loss, dz_w = net.output_loss(z[:, a - s0:], y[:, a:b], bptt.window_lengths(lengths, a, b))
    dz = np.zeros_like(z)
    dz[:, a - s0:] = dz_w
    grads, _, _ = net.backward(cache, dz)
    return loss, grads


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("k1,k2", [(3, 5), (4, 7), (2, 9), (5, 6), (4, 4)])
@pytest.mark.parametrize("lengths", [None, [13, 6, 2, 11]])
def test_any_k2_reaches_back_exactly_k2_minus_k1_steps(cell, k1, k2, lengths):
    """k2 need not be a multiple of k1: each window's gradient is that of its loss through
    the window and the k2 - k1 steps before it, as built by hand."""
    net, x, y = setup(cell, T=13)
    for w, res in enumerate(bptt.Truncated(net, x, y, lengths, k1, k2)):
        a, b = w * k1, min((w + 1) * k1, 13)
        loss, grads = window_reference(net, x, y, lengths, a, b, k2 - k1)
        assert res.loss == pytest.approx(loss, rel=1e-13)
        for k, v in grads.items():
            np.testing.assert_allclose(res.grads[k], v, rtol=1e-11, atol=1e-13,
                                       err_msg=f"window {w} {k}")


def test_a_resumed_batch_continues_any_k2_exactly():
    net, x, y = setup("gru", T=13)
    straight = [r.grads for r in bptt.Truncated(net, x, y, None, 3, 8)]
    first = bptt.Truncated(net, x, y, None, 3, 8)
    next(first), next(first), next(first)
    resumed = bptt.Truncated(net, x, y, None, 3, 8, position=3, carried=first.carried())
    for w, res in enumerate(resumed, start=3):
        for k, v in straight[w].items():
            np.testing.assert_array_equal(res.grads[k], v, err_msg=f"window {w} {k}")


def test_bad_schedules_are_refused():
    assert bptt.parse_bptt((4, 6)) == (4, 6)
    with pytest.raises(ValueError, match=r"k2 must be at least k1, got \(4, 2\)"):
        bptt.parse_bptt((4, 2))
    with pytest.raises(ValueError, match="positive integer, got 0"):
        bptt.parse_bptt(0)
    assert bptt.parse_bptt(5) == (5, 5) and bptt.parse_bptt(None) is None
    net = rnnlab.Network(3, 5, 4, readout="last", seed=0)
    with pytest.raises(ValueError, match="readout='all'"):
        bptt.Truncated(net, np.zeros((2, 6, 3)), np.zeros(2, int), None, 3, 3)


# many-to-one: truncated BPTT(k) over each sequence's last k real steps --------------------

def last_setup(cell, T=12, D=3, dtype=np.float64):
    rng = np.random.default_rng(2)
    net = rnnlab.Network(D, 5, 4, cell=cell, num_layers=2, readout="last", seed=3, dtype=dtype)
    x = rng.normal(size=(4, T, D)).astype(dtype)
    y = rng.integers(0, 4, size=4)
    return net, x, y


def last_steps_reference(net, x, y, lengths, k):
    """Each sequence on its own: the state after its first L - k steps with the network's
    parameters, held fixed, then forward and backward through its last k steps; the mean."""
    B, T = x.shape[:2]
    L = [T] * B if lengths is None else list(lengths)
    loss, grads = 0.0, {}
    for b in range(B):
        s = max(L[b] - k, 0)
        state = net.rnn.infer(x[b:b + 1, :s])[1] if s else None
        res = net.loss_and_grad(x[b:b + 1, s:L[b]], y[b:b + 1], state=state)
        loss += res.loss / B
        for name, g in res.grads.items():
            grads[name] = grads.get(name, 0) + g / B
    return loss, grads


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("lengths", [None, [12, 7, 3, 10]])
@pytest.mark.parametrize("k", [1, 4, 9])
def test_many_to_one_truncation_is_the_gradient_through_the_last_k_steps(cell, lengths, k):
    net, x, y = last_setup(cell)
    res = bptt.last_steps(net, x, y, lengths, k)
    loss, grads = last_steps_reference(net, x, y, lengths, k)
    assert res.loss == pytest.approx(loss, rel=1e-12) and res.count == 4
    for name, g in grads.items():
        np.testing.assert_allclose(res.grads[name], g, rtol=1e-10, atol=1e-14, err_msg=name)
    # the forward still reads every step: the final state is the whole sequence's
    full = net.rnn.infer(x, lengths=None if lengths is None else np.array(lengths))[1]
    for a, b in zip(res.state if isinstance(res.state, tuple) else (res.state,),
                    full if isinstance(full, tuple) else (full,), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_many_to_one_truncation_by_finite_differences():
    """The truncated gradient is the derivative of the loss with the state entering each
    sequence's last k steps held at its value: central differences, float64."""
    net, x, y = last_setup("lstm")
    lengths, k = [12, 7, 3, 10], 4
    res = bptt.last_steps(net, x, y, lengths, k)
    held = [net.rnn.infer(x[b:b + 1, :max(L - k, 0)])[1] if L > k else None
            for b, L in enumerate(lengths)]

    def f():
        return np.mean([net.loss(x[b:b + 1, max(L - k, 0):L], y[b:b + 1], state=held[b])
                        for b, L in enumerate(lengths)])

    rng = np.random.default_rng(0)
    for name in ("rnn.l0.W_x", "rnn.l0.W_h", "rnn.l1.W_h", "head.W_y"):
        p = net.params[name]
        for i in rng.choice(p.size, 3, replace=False):
            idx = np.unravel_index(i, p.shape)
            old = p[idx]
            p[idx] = old + 1e-6
            up = f()
            p[idx] = old - 1e-6
            down = f()
            p[idx] = old
            fd = (up - down) / 2e-6
            assert abs(fd - res.grads[name][idx]) <= 1e-6 * max(1.0, abs(fd)), (name, idx)


def test_many_to_one_truncation_reaching_the_start_is_full_bptt():
    net, x, y = last_setup("gru")
    full = net.loss_and_grad(x, y, lengths=np.array([12, 7, 3, 10]))
    res = bptt.last_steps(net, x, y, [12, 7, 3, 10], 12)
    for name, g in full.grads.items():
        np.testing.assert_array_equal(res.grads[name], g)
    short = bptt.last_steps(net, x, y, None, 3)  # the check above could fail: it differs
    assert not np.allclose(short.grads["rnn.l0.W_h"], full.grads["rnn.l0.W_h"], rtol=1e-3)


def test_many_to_one_truncation_reads_token_ids_as_one_hot():
    rng = np.random.default_rng(4)
    net = rnnlab.Network(6, 5, 3, cell="lstm", readout="last", seed=0, dtype=np.float64)
    ids = rng.integers(0, 6, size=(3, 10))
    y = rng.integers(0, 3, size=3)
    a = bptt.last_steps(net, ids, y, [10, 6, 2], 4)
    b = bptt.last_steps(net, np.eye(6)[ids], y, [10, 6, 2], 4)
    for name, g in b.grads.items():
        np.testing.assert_allclose(a.grads[name], g, rtol=1e-12, atol=1e-15, err_msg=name)


def test_trainer_truncates_a_many_to_one_network():
    net, x, y = last_setup("elman")
    want = bptt.last_steps(net, x, y, None, 5).grads
    before = {k: v.copy() for k, v in net.params.items()}
    trainer = rnnlab.Trainer(net, optimizer="sgd", lr=0.1, bptt_steps=5, batch_size=4)
    trainer.fit(x, y, epochs=1)
    assert trainer.step_count == 1  # one update per batch, not one per window
    for name, g in want.items():
        np.testing.assert_allclose(net.params[name], before[name] - 0.1 * g, rtol=1e-12,
                                   atol=1e-15, err_msg=name)
    with pytest.raises(ValueError, match=r"readout='last'.*bptt_steps=\(2, 4\)"):
        rnnlab.Trainer(net, bptt_steps=(2, 4))
    pooled = rnnlab.Network(3, 5, 4, readout="mean", seed=0)
    with pytest.raises(ValueError, match="readout='mean' pools every step"):
        rnnlab.Trainer(pooled, bptt_steps=3)
    with pytest.raises(ValueError, match="reset masks need full BPTT"):
        rnnlab.Trainer(net, bptt_steps=3).train_step(x, y, reset=np.zeros(12, bool))
    with pytest.raises(ValueError, match="readout='last'"):
        bptt.last_steps(rnnlab.Network(3, 5, 4, seed=0), x, np.zeros((4, 12), int), None, 3)
