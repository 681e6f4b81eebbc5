"""Backpropagation-through-time schedules, written once for every cell.

Shape legend: B batch, T time, D input features, K outputs.

* **Full BPTT**: one forward over whole sequences, one backward to their start.
* **Truncated BPTT(k1, k2)** in the sense of Williams & Peng (1990): the sequence is read in
  windows of k1 new steps; after each window the parameters are updated with the gradient
  of the loss on those k1 steps, backpropagated through the window and the k2 - k1 steps
  before it (any k2 ≥ k1). The hidden state is carried from window to window, so the
  forward pass sees the whole history even though the gradient does not. k1 = k2 is the
  usual "BPTT(h; h)" of char-rnn. For k2 > k1 the earlier steps are run again with the
  current parameters from the state that started their window (the steps of the oldest
  window that lie beyond the reach only to carry the state on), which keeps the arithmetic
  one plain forward-backward and exactly equal to full BPTT when k2 covers the whole
  sequence.

Only per-step readouts (``readout="all"``) have a loss inside every window. A many-to-one
model (``readout="last"``) has one loss per sequence, at its end, so it makes one update per
batch: **truncated BPTT(k)** there (:func:`last_steps`) backpropagates that loss through
each sequence's last k real steps only. The steps before them run forward for the state
alone, which saves their memory and most of their time (a forward pass without caches costs
a small part of a forward-backward), and the gradient is that of the loss
with the state entering the last k steps held fixed: exactly full BPTT's when k covers the
sequence.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np

from .checks import positive_int


class WindowResult(NamedTuple):
    loss: float  # mean over the window's real positions
    grads: dict  # name -> array
    state: object  # state after the window, to carry into the next one
    count: int  # real positions the loss averaged over


def parse_bptt(bptt_steps) -> tuple[int, int] | None:
    """``None`` (full BPTT), ``k`` (= ``(k, k)``) or ``(k1, k2)`` -> ``(k1, k2)`` or None."""
    if bptt_steps is None:
        return None
    if isinstance(bptt_steps, (tuple, list)):
        if len(bptt_steps) != 2:
            raise ValueError(f"bptt_steps must be k or a pair (k1, k2), got {bptt_steps!r}")
        k1 = positive_int(bptt_steps[0], "bptt_steps k1")
        k2 = positive_int(bptt_steps[1], "bptt_steps k2")
    else:
        k1 = k2 = positive_int(bptt_steps, "bptt_steps")
    if k2 < k1:
        raise ValueError(f"bptt_steps k2 must be at least k1, got ({k1}, {k2})")
    return k1, k2


def window_lengths(lengths, start: int, stop: int):
    """Real steps of each sequence inside the window ``[start, stop)``; None if all are full."""
    if lengths is None:
        return None
    return np.clip(np.asarray(lengths) - start, 0, stop - start)


class Truncated:
    """Truncated BPTT(k1, k2) over one batch of sequences, a window at a time.

    Parameters
    ----------
    net : rnnlab.Network with ``readout="all"``
    x : array (B, T, D)
    y : targets (B, T) labels or (B, T, K) values
    lengths : (B,) or None
    k1, k2 : window and truncation length
    state : initial state or None
    position : index of the first window to run
    carried : list or None
        To continue at ``position`` where an earlier pass stopped: what its :meth:`carried`
        returned there.
    masks : rnnlab.dropout.Masks or None
        The batch's train-time masks over all T steps (:meth:`rnnlab.Network.draw_masks`);
        each window reads its own steps of them, and a window run again reads the same.

    Iterating calls ``net`` lazily: each item is a :class:`WindowResult` computed with the
    parameters as they are at that moment, so an optimiser may update them in between.
    ``position`` is the index of the next window; ``state`` the state carried into it.
    """

    def __init__(self, net, x, y, lengths, k1: int, k2: int, state=None, position: int = 0,
                 carried=None, masks=None):
        if net.readout != "all":
            raise ValueError("truncated BPTT in windows needs readout='all' (a loss at every "
                             f"step), got readout={net.readout!r}; readout='last' truncates "
                             "with last_steps, a pooled readout trains with full BPTT")
        self.net, self.x, self.y, self.lengths = net, x, y, lengths
        self.masks = masks
        self.k1, self.k2 = k1, k2
        self.T = x.shape[1]
        self.n_windows = -(-self.T // k1)
        self.position = position
        self.state = net.rnn.initial_state(x.shape[0]) if state is None else state
        # (x, lengths, start state, first step) of the windows that the next window's
        # k2 - k1 steps of reach fall into (the oldest, in part when k1 does not divide
        # k2 - k1)
        self.history: deque = deque(maxlen=-(-(k2 - k1) // k1))
        if carried:
            self.state = carried[0]
            for i, start in enumerate(carried[1:]):
                w = position - len(carried) + 1 + i
                a, b = w * k1, min((w + 1) * k1, self.T)
                self.history.append((x[:, a:b], window_lengths(lengths, a, b), start, a))

    def carried(self) -> list:
        """The states to continue from: the one into the next window, then the start states
        of the earlier windows it reaches back into (pass them back as ``carried``)."""
        return [self.state] + [start for _, _, start, _ in self.history]

    def __iter__(self):
        return self

    def __next__(self) -> WindowResult:
        w = self.position
        if w >= self.n_windows:
            raise StopIteration
        net, k1 = self.net, self.k1
        a, b = w * k1, min((w + 1) * k1, self.T)
        B = self.x.shape[0]
        xw, yw = self.x[:, a:b], self.y[:, a:b]
        lw = window_lengths(self.lengths, a, b)
        # older windows within reach of k2: run them again from the state that began them;
        # the oldest one's first steps may lie beyond the reach: run for the state only
        older = []
        state = self.history[0][2] if self.history else self.state
        skip = max(sum(xo.shape[1] for xo, _, _, _ in self.history) - (self.k2 - k1), 0)
        for i, (xo, lo, _, ao) in enumerate(self.history):
            if i == 0 and skip:
                state = state_only(net, xo[:, :skip], state, window_lengths(lo, 0, skip),
                                   self._masks(ao, ao + skip))
                xo, lo = xo[:, skip:], window_lengths(lo, skip, xo.shape[1])
                ao += skip
            # the layer reads the network's own parameter arrays (rnnlab.network.Params)
            mo = self._masks(ao, ao + xo.shape[1])
            _, state, cache = net.rnn.forward(xo, state, lengths=lo,
                                              **({} if mo is None else {"masks": mo}))
            older.append(cache)
        z, final, cache = net.forward(xw, state, lengths=lw, masks=self._masks(a, b))
        loss, dz = net.output_loss(z, yw, cache.lengths)
        grads, _, dstate = net.backward(cache, dz, input_grad=False)
        for oc in reversed(older):
            g, _, dstate = net.rnn.backward(oc, dstate=dstate, input_grad=False)
            for k, v in g.items():
                grads[f"rnn.{k}"] += v
        if self.history.maxlen:
            self.history.append((xw, lw, state, a))
        self.state = final
        self.position = w + 1
        count = int(B * (b - a) if lw is None else lw.sum())
        return WindowResult(loss, grads, final, count)

    def _masks(self, a: int, b: int):
        return None if self.masks is None else self.masks.window(a, b)


def state_only(net, x, state, lengths, masks=None):
    """The state after running ``net``'s layers over ``x`` without a cache: ``infer``, or
    with train-time ``masks`` the same forward as training's."""
    if masks is None:
        return net.rnn.infer(x, state, lengths=lengths)[1]
    return net.rnn.run(x, state, lengths, keep=False, masks=masks)[1]


def last_steps(net, x, y, lengths, k: int, state=None, masks=None) -> WindowResult:
    """Truncated BPTT(k) for a many-to-one network: the loss at each sequence's end and its
    gradient through the sequence's last ``k`` real steps.

    Parameters
    ----------
    net : rnnlab.Network with ``readout="last"``
    x : array (B, T, D), or token ids (B, T)
    y : targets (B,) labels or (B, K) values
    lengths : (B,) real steps per sequence, or None (all T)
    k : int, how far back the gradient reaches
    state : initial state or None
    masks : the batch's train-time masks over all T steps, or None; each step keeps its own

    Returns
    -------
    WindowResult(loss, grads, state, count): the mean loss over the B sequences, its
    gradient with the state entering each sequence's last k steps held fixed, the final
    state, and B.

    Notes
    -----
    Sequence b's steps ``[0, s_b)``, ``s_b = max(L_b - k, 0)``, run through ``net.rnn.infer``
    with lengths ``s_b`` (a sequence stops where its own prefix ends); the rest, its last
    ``min(L_b, k)`` steps, are gathered into a window (B, min(k, T), D) that starts at
    ``s_b`` and runs forward and backward from that state. With every ``s_b = 0`` this is
    :meth:`rnnlab.Network.loss_and_grad` itself.
    """
    if net.readout != "last":
        raise ValueError("last_steps is truncated BPTT for a many-to-one network "
                         f"(readout='last'), got readout={net.readout!r}")
    B, T = x.shape[:2]
    L = np.full(B, T, dtype=np.int64) if lengths is None else np.asarray(lengths, np.int64)
    start = np.maximum(L - k, 0)  # (B,) first step the gradient reaches
    if not start.any():
        res = net.loss_and_grad(x, y, lengths=lengths, state=state, masks=masks)
        return WindowResult(res.loss, res.grads, res.state, B)
    prefix = int(start.max())
    state = state_only(net, x[:, :prefix], state, start,
                       None if masks is None else masks.window(0, prefix))
    width = min(k, T)
    steps = np.minimum(start[:, None] + np.arange(width), T - 1)  # (B, width)
    xw = x[np.arange(B)[:, None], steps]  # (B, width, D) or ids (B, width)
    lw = np.minimum(L, width)
    res = net.loss_and_grad(xw, y, lengths=None if (lw == width).all() else lw, state=state,
                            masks=None if masks is None else masks.gather(steps))
    return WindowResult(res.loss, res.grads, res.state, B)
