r"""The feedforward baseline: an MLP over a window of the last k inputs.

Shape legend: B batch, T time, D input features, H hidden units, L layers, k the window.
Inside, arrays are time-major like the recurrent loop's: ``(T, B, .)``.

The notes compare a recurrent network with a feedforward one that sees a fixed window of
the past instead of a state. This layer is that network, with the front of a recurrent
layer (:class:`~rnnlab.cells.base.RecurrentLayer`: ``forward`` / ``backward`` / ``infer``
/ ``step``, lengths, resets, token ids, config and model files), so that
:class:`rnnlab.Network`, the Trainer, truncated BPTT, :class:`rnnlab.Stream`, sampling,
checkpoints and every task run it wherever a recurrent layer runs.

It lives here, beside the cells, because this is where the architecture puts what a layer
computes and the layer class that owns it. It does not go through the one loop over time
(:mod:`rnnlab.recurrent`) nor the engine: nothing is carried from step to step but its
inputs, so every step is computed at once, batched over all steps (the k shifted inputs
enter as one product). Its maths is therefore written out here, forward and backward side
by side, and checked against finite differences and PyTorch in ``tests/test_ffnn.py``.

The "state" is what a window starting mid-stream needs: the last k - 1 inputs, carried
between windows so that results do not depend on where a window starts. It is public in
the batch-second layout of the recurrent states, a tuple ``(h, window)``: ``h`` (L, B, H)
each layer's output after the last real step (the network's ``readout="last"`` reads
``h[-1]``), and ``window`` (k - 1, B, D) the inputs before the next step, oldest first
(one-hot vectors for token ids). Zeros (the initial state) mean "nothing before": the
window is zero-padded at the start of a stream and after a reset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import activations, checks
from .. import init as _init
from .base import RecurrentLayer, StackCache
from .cell import Cell

#: the window when none is given: the notes' "5 to 10 steps" of practical unfolding
DEFAULT_WINDOW = 8


def _rows_per_id(ids, rows, D: int) -> np.ndarray:
    """(D, C): the rows of ``rows`` (N, C) added up per token id of ``ids`` (N,); what
    ``ids`` as one-hot vectors, transposed, times ``rows`` gives. Sorted and summed in
    runs (``np.add.at`` adds row by row, several times slower at these sizes)."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out = np.zeros((D, rows.shape[1]), rows.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


class FFNNCell(Cell):
    """The facts of the feedforward layer; it has no recurrent step (no gates, no kernel,
    no PyTorch recurrent module, no ONNX recurrent operator)."""

    name = "ffnn"
    state = ("h", "window")

    def step(self, p, xp_t, state):
        raise ValueError("the ffnn layer has no recurrent step: it reads a window of inputs")

    def step_back(self, p, saved, dstate):
        raise ValueError("the ffnn layer has no recurrent step: it reads a window of inputs")


class FFNNCache(NamedTuple):
    """What :meth:`FFNN.backward` needs, time-major."""

    x: np.ndarray  # (T, B, D) floats or (T, B) token ids: the bottom layer's input
    window: np.ndarray  # (k-1, B, D) the window that entered
    hs: list  # per layer (T, B, H): outputs before padding is zeroed
    visible: np.ndarray | None  # (T, k, B, 1) whether lag j reaches past no reset; None: all
    lengths: np.ndarray | None  # (B,) or None
    last: np.ndarray  # (B,) the last real step's index, -1 for an empty sequence
    final_visible: np.ndarray | None  # (k-1, B, 1) which entries of the final window count


class FFNN(RecurrentLayer):
    r"""A feedforward network over a window of the last ``window`` inputs.

    Parameters
    ----------
    input_size, hidden_size, num_layers, seed, dtype :
        As :class:`~rnnlab.cells.base.RecurrentLayer`; ``num_layers`` hidden layers.
    window : int
        k, the inputs each step sees: its own and the k - 1 before it.
    activation : {"tanh", "relu", "sigmoid"}
        :math:`\Phi`.
    init : "uniform"
        The only scheme: ``orthogonal`` and ``identity`` are recurrent initialisations.
    bidirectional : False
        Refused: the window reads the past only (a streaming step needs that).

    Attributes
    ----------
    params : dict[str, ndarray]
        ``l0.W_x`` (k*D, H): rows ``j*D:(j+1)*D`` multiply the input j steps back;
        ``l{m}.W_x`` (H, H) for the layers above; ``l{m}.b`` (H,).

    Notes
    -----
    .. math::

        h^1_t = \Phi\Big(\sum_{j=0}^{k-1} x_{t-j} W_j + b^1\Big), \qquad
        h^{m+1}_t = \Phi(h^m_t W^{m+1} + b^{m+1})

    with :math:`x_{t-j} = 0` where it lies before the stream's start or before a reset at
    some step in :math:`(t-j, t]`; :math:`x_{-1}, \dots, x_{-(k-1)}` come from the state's
    window. Every step at once: :math:`P = x W_r`, one product of all steps' inputs with
    the k blocks side by side (:math:`W_r` is (D, k*H)), then
    :math:`a_t = b + \sum_j P_{t-j, j}`, k shifted additions. Backward is the adjoint:
    :math:`\partial P_{t-j, j} = \partial a_t`, then :math:`\partial W_r = x^\top \partial P`
    and :math:`\partial x = \partial P\, W_r^\top`. Token ids skip the product: block j's
    rows of the ids j steps back are gathered and added, and their gradient is summed per
    id. Initial weights are uniform in
    :math:`\pm 1/\sqrt{\text{fan-in}}`, as PyTorch's ``nn.Linear``.
    """

    Cell = FFNNCell
    options = ("window", "activation")
    #: not a recurrence: diagnostics of gradient flow over lags, conversion to PyTorch's
    #: recurrent modules, ONNX export and the recurrent benchmarks refuse it
    recurrent = False

    def __init__(self, input_size, hidden_size, num_layers=1, *, window=DEFAULT_WINDOW,
                 activation="tanh", seed=None, dtype=np.float32, init="uniform",
                 bidirectional=False, precision="fp32"):
        self.precision = precision  # accepted for a common front; computes in its dtype
        self.input_size = checks.positive_int(input_size, "input_size")
        self.hidden_size = checks.positive_int(hidden_size, "hidden_size")
        self.num_layers = checks.positive_int(num_layers, "num_layers")
        self.window = checks.positive_int(window, "window")
        self.dtype = checks.float_dtype(dtype)
        self.activation = activation
        self.f, self.f_grad = activations.get(activation)
        if init != "uniform":
            raise ValueError(f"init {init!r} is a recurrent initialisation; the ffnn layer "
                             f"takes 'uniform' only")
        self.init = init
        if checks.boolean(bidirectional, "bidirectional"):
            raise ValueError("the ffnn layer reads a window of the past only; "
                             "bidirectional=True is for recurrent cells")
        self.bidirectional, self.directions = False, 1
        self.cell = FFNNCell()
        self.n_state = 2
        rng = _init.rng_from(seed)
        self.params = {}
        for m in range(self.num_layers):
            fan_in = self.window * self.input_size if m == 0 else self.hidden_size
            bound = 1.0 / np.sqrt(fan_in)
            self.params[f"l{m}.W_x"] = _init.uniform(
                rng, (fan_in, self.hidden_size), bound).astype(self.dtype)
            self.params[f"l{m}.b"] = _init.uniform(
                rng, (self.hidden_size,), bound).astype(self.dtype)

    @classmethod
    def count_params(cls, config: dict) -> int | None:
        """The parameters of a layer of ``config`` (for model files' size check), or None
        when the configuration is not plainly valid."""
        sizes = [config.get("input_size"), config.get("hidden_size"),
                 config.get("num_layers", 1), config.get("window", DEFAULT_WINDOW)]
        if not all(type(n) is int and n > 0 for n in sizes):
            return None
        D, H, L, k = sizes
        return (k * D + 1) * H + (L - 1) * (H + 1) * H

    # state ------------------------------------------------------------------------------
    def state_shapes(self, batch: int) -> list:
        """The shapes of the state's arrays: ``h`` (L, B, H) and ``window`` (k-1, B, D)."""
        return [(self.num_layers, batch, self.hidden_size),
                (self.window - 1, batch, self.input_size)]

    def initial_state(self, batch_size: int):
        """Zeros: ``(h (L, B, H), window (k-1, B, D))``."""
        B = checks.positive_int(batch_size, "batch_size")
        return tuple(np.zeros(s, self.dtype) for s in self.state_shapes(B))

    def split_state(self, state, batch: int, name: str = "state", *, copy: bool = True,
                    finite: bool = True):
        """A state ``(h, window)`` (or None for zeros), checked, as a tuple of arrays."""
        shapes = self.state_shapes(batch)
        if state is None:
            return tuple(np.zeros(s, self.dtype) for s in shapes)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(f"{name} of an ffnn layer must be a tuple (h, window) of a "
                             f"{shapes[0]} and a {shapes[1]} array, got {type(state).__name__}")
        out = []
        for label, a, shape in zip(("h", "window"), state, shapes, strict=True):
            a = checks.array(a, f"{name} {label}", (shape[0], None, shape[2]), self.dtype,
                             finite=finite)
            if a.shape[1] != batch:
                raise ValueError(f"{name} has batch size {a.shape[1]} but the input has "
                                 f"{batch} sequences")
            out.append(np.array(a) if copy else a)
        return tuple(out)

    def join_state(self, states):
        return tuple(states)

    # forward and backward ------------------------------------------------------------------
    def _blocks(self):
        """The bottom weights as (D, k*H): block j of the columns multiplies ``x_{t-j}``."""
        k, D, H = self.window, self.input_size, self.hidden_size
        return self.params["l0.W_x"].reshape(k, D, H).transpose(1, 0, 2).reshape(D, k * H)

    def _add_lags_of_ids(self, a, ids, w0, visible) -> None:
        """``a += sum_j x_{t-j} W_j`` (visible lags) for token ids (T, B): block j's rows of
        the ids j steps back, and for the first j steps the window's inputs times block j
        (all blocks of the window in one product: each BLAS call has a cost of its own)."""
        k, D, H = self.window, self.input_size, self.hidden_size
        T, B = ids.shape
        W3 = self.params["l0.W_x"].reshape(k, D, H)  # block j multiplies x_{t-j}
        Pw = (w0.reshape((k - 1) * B, D) @ self._blocks()).reshape(k - 1, B, k, H)
        for j in range(k):
            if j < T:
                part = W3[j][ids[:T - j]]  # (T-j, B, H)
                a[j:] += part if visible is None else part * visible[j:, j]
            n = min(j, T)  # the steps whose lag j lies in the window
            if n:
                part = Pw[k - 1 - j:k - 1 - j + n, :, j]  # (n, B, H)
                a[:n] += part if visible is None else part * visible[:n, j]

    def _lags_of_ids_back(self, da, ids, w0, visible):
        """The adjoint of :meth:`_add_lags_of_ids`: ``(dW (k, D, H), d window (k-1, B, D))``."""
        k, D, H = self.window, self.input_size, self.hidden_size
        T, B = ids.shape
        gW = np.empty((k, D, H), da.dtype)
        dPw = np.zeros((k - 1, B, k, H), da.dtype)  # the gradient at the window's products
        for j in range(k):
            g = da if visible is None else da * visible[:, j]  # (T, B, H)
            gW[j] = _rows_per_id(ids[:T - j].reshape(-1), g[j:].reshape(-1, H), D) if j < T \
                else 0
            n = min(j, T)
            if n:
                dPw[k - 1 - j:k - 1 - j + n, :, j] = g[:n]
        dPw2 = dPw.reshape((k - 1) * B, k * H)
        gW += (w0.reshape((k - 1) * B, D).T @ dPw2).reshape(D, k, H).transpose(1, 0, 2)
        dw0 = (dPw2 @ self._blocks().T).reshape(k - 1, B, D)
        return gW, dw0

    def run(self, x, state=None, lengths=None, *, keep: bool = True, reset=None):
        """As :meth:`RecurrentLayer.run`: ``(y, state, cache, lengths)``."""
        x, ids = self.checked_input(x)
        B, T = x.shape[:2]
        h0, w0 = self.split_state(state, B)
        lens = None if lengths is None else checks.lengths(lengths, B, T)
        resets = None if reset is None else checks.reset_mask(reset, B, T)  # (T, B, 1) or None
        resets = None if resets is None else resets[:, :, 0]  # (T, B)
        xt = np.ascontiguousarray(x.T if ids else x.transpose(1, 0, 2))  # (T, B[, D])
        k, H = self.window, self.hidden_size
        visible = None
        since = None
        if resets is not None:
            # the last reset at or before each step; lag j is visible when t - j >= it
            t = np.arange(T)[:, None]
            since = np.maximum.accumulate(np.where(resets, t, -k), axis=0)  # (T, B)
            lag = np.arange(k)[None, :, None]
            visible = ((t[:, :, None] - lag) >= since[:, None, :])[..., None]  # (T, k, B, 1)
        a = np.broadcast_to(self.params["l0.b"], (T, B, H)).copy()  # (T, B, H)
        if ids:
            self._add_lags_of_ids(a, xt, w0, visible)
        else:
            # P[s, b, j] = xe_s W_j over the extended steps s (the window's, then x's): one
            # product of every input with the k blocks side by side
            Wr = self._blocks()  # (D, k*H)
            P = np.empty((T + k - 1, B, k * H), self.dtype)
            P[:k - 1] = (w0.reshape((k - 1) * B, self.input_size) @ Wr).reshape(k - 1, B, k * H)
            P[k - 1:] = (xt.reshape(T * B, -1) @ Wr).reshape(T, B, k * H)
            P = P.reshape(T + k - 1, B, k, H)
            for j in range(k):  # k shifted additions: the sum over lags
                part = P[k - 1 - j:k - 1 - j + T, :, j]
                a += part if visible is None else part * visible[:, j]
        hs = [self.f(a)]
        for m in range(1, self.num_layers):
            a = (hs[-1].reshape(T * B, H) @ self.params[f"l{m}.W_x"]).reshape(T, B, H)
            a += self.params[f"l{m}.b"]
            hs.append(self.f(a))
        last = np.full(B, T - 1) if lens is None else lens - 1  # (B,)
        rows = np.arange(B)
        real = last >= 0
        h_n = np.array(h0)
        for m in range(self.num_layers):
            h_n[m, real] = hs[m][last[real], rows[real]]
        # the final window: the k-1 inputs up to each sequence's last real step
        pos = (last + 1)[None, :] + np.arange(k - 1)[:, None]  # (k-1, B) extended steps
        w_n = np.empty_like(w0)
        from_w = pos < k - 1
        if from_w.any():
            w_n[from_w] = w0[pos[from_w], np.broadcast_to(rows, pos.shape)[from_w]]
        from_x = ~from_w
        if from_x.any():
            src = xt[pos[from_x] - (k - 1), np.broadcast_to(rows, pos.shape)[from_x]]
            if ids:  # their one-hot vectors
                onehot = np.zeros((len(src), self.input_size), self.dtype)
                onehot[np.arange(len(src)), src] = 1
                src = onehot
            w_n[from_x] = src
        final_visible = None
        if since is not None:
            cut = np.where(real, since[np.maximum(last, 0), rows], -k)  # (B,)
            final_visible = ((pos - (k - 1)) >= cut[None, :])[..., None]  # (k-1, B, 1)
            w_n *= final_visible
        y = hs[-1]
        if lens is not None and (lens < T).any():
            y = y * (np.arange(T)[:, None] < lens[None, :])[:, :, None]
        cache = FFNNCache(xt, w0, hs, visible, lens, last, final_visible) if keep else None
        return y.transpose(1, 0, 2), (h_n, w_n), cache, lens

    def forward(self, x, state=None, *, lengths=None, reset=None):
        """As :meth:`RecurrentLayer.forward`: ``(y (B, T, H), (h, window), cache)``."""
        y, state, cache, _ = self.run(x, state, lengths, keep=True, reset=reset)
        y.flags.writeable = False  # without padding it shares memory with the cache
        return y, state, cache

    def backward(self, cache, dy=None, dstate=None, *, input_grad: bool = True):
        """As :meth:`RecurrentLayer.backward`: ``(grads, dx (B, T, D) or None, dstate0)``.

        ``dstate`` is the gradient with respect to the final ``(h, window)``; the returned
        one is with respect to the initial state (its ``h`` part is nonzero only for
        sequences of length 0, whose state passes through).
        """
        if isinstance(cache, StackCache):  # as rnnlab.Network keeps it
            cache = cache.layers
        if not isinstance(cache, FFNNCache):
            raise ValueError("cache must be the third value returned by forward()")
        xt, w0, hs, visible, lens, last, final_visible = cache
        T, B = xt.shape[:2]
        k, D, H, L = self.window, self.input_size, self.hidden_size, self.num_layers
        dh_n, dw_n = self.split_state(dstate, B, "dstate")
        rows, real = np.arange(B), last >= 0
        d = None
        if dy is not None:
            d = checks.array(dy, "dy", (B, T, H), self.dtype).transpose(1, 0, 2)
            if lens is not None:
                d = d * (np.arange(T)[:, None] < lens[None, :])[:, :, None]
        grads = {}
        dh0 = np.zeros_like(dh_n)
        dh0[:, ~real] = dh_n[:, ~real]  # an empty sequence's state passes through
        for m in range(L - 1, -1, -1):
            g = np.zeros((T, B, H), self.dtype) if d is None else np.array(d)
            g[last[real], rows[real]] += dh_n[m, real]  # the final h is the last real output
            da = g * self.f_grad(hs[m])  # (T, B, H)
            if m == 0:
                break
            inp = hs[m - 1].reshape(T * B, H)
            grads[f"l{m}.W_x"] = inp.T @ da.reshape(T * B, H)
            grads[f"l{m}.b"] = da.sum(axis=(0, 1))
            d = (da.reshape(T * B, H) @ self.params[f"l{m}.W_x"].T).reshape(T, B, H)
        grads["l0.b"] = da.sum(axis=(0, 1))
        if xt.ndim == 2:
            gW, dw0 = self._lags_of_ids_back(da, xt, w0, visible)
        else:
            # the adjoint of the k shifted additions: dP[t + k-1 - j, :, j] = da_t (visible)
            dP = np.zeros((T + k - 1, B, k, H), self.dtype)
            for j in range(k):
                dP[k - 1 - j:k - 1 - j + T, :, j] = da if visible is None else da * visible[:, j]
            dP2 = dP.reshape(T + k - 1, B, k * H)
            Wr = self._blocks()
            gW = w0.reshape(-1, D).T @ dP2[:k - 1].reshape(-1, k * H)  # (D, k*H)
            gW += xt.reshape(-1, D).T @ dP2[k - 1:].reshape(-1, k * H)
            gW = gW.reshape(D, k, H).transpose(1, 0, 2)  # (k, D, H)
            dw0 = (dP2[:k - 1].reshape((k - 1) * B, k * H) @ Wr.T).reshape(k - 1, B, D)
        grads["l0.W_x"] = gW.reshape(k * D, H)
        need_dx = input_grad and xt.ndim == 3
        dx = (dP2[k - 1:].reshape(-1, k * H) @ Wr.T).reshape(T, B, D) if need_dx else None
        # (token ids: no input gradient)
        if dw_n.size and np.any(dw_n):
            # the final window's entries are inputs (or the entering window's) themselves
            g = dw_n if final_visible is None else dw_n * final_visible
            pos = (last + 1)[None, :] + np.arange(k - 1)[:, None]  # (k-1, B)
            cols = np.broadcast_to(rows, pos.shape)
            from_w = pos < k - 1
            np.add.at(dw0, (pos[from_w], cols[from_w]), g[from_w])
            if dx is not None:
                np.add.at(dx, (pos[~from_w] - (k - 1), cols[~from_w]), g[~from_w])
        grads = {name: grads[name] for name in self.params}  # the parameters' own order
        return grads, None if dx is None else dx.transpose(1, 0, 2), (dh0, dw0)

    # streaming --------------------------------------------------------------------------
    def step(self, x_t, state=None):
        """One streaming step: ``x_t`` (B, D) -> ``(y_t (B, H), (h, window))``."""
        x_t = checks.array(x_t, "x_t", (None, self.input_size), self.dtype)
        B = x_t.shape[0]
        _, w = self.split_state(state, B, copy=False)
        return self._step(x_t, w)

    def _step(self, x_t, w):
        """:meth:`step` from checked arrays: the window's k - 1 inputs and ``x_t`` in one
        product with the bottom weights (their rows are newest first)."""
        B = x_t.shape[0]
        u = np.concatenate([x_t[None], w[::-1]]).transpose(1, 0, 2).reshape(B, -1)  # (B, k*D)
        h = self.f(u @ self.params["l0.W_x"] + self.params["l0.b"])
        out = [h]
        for m in range(1, self.num_layers):
            h = self.f(h @ self.params[f"l{m}.W_x"] + self.params[f"l{m}.b"])
            out.append(h)
        w_new = np.concatenate([w[1:], x_t[None]]) if self.window > 1 else w.copy()
        return h.copy(), (np.stack(out), w_new)

    def stream_step(self, x_t, state, rows=None):
        """What :class:`rnnlab.Stream` calls: ``state`` checked once by it, ``rows`` (B, 1)
        the streams reset before this step, or None. Returns ``(y_t, new state)``."""
        w = state[1]
        if rows is not None:
            w = np.where(rows[None], w.dtype.type(0), w)
        if not np.isfinite(x_t).all():
            checks.array(x_t, "x_t", x_t.shape, self.dtype)  # names the bad entry
        return self._step(x_t, w)
