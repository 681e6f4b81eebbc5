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
