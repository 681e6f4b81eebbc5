"""The long short-term memory layer (Hochreiter & Schmidhuber 1997, with forget gate).

Shape legend: B batch, D input features, H hidden units. Fused gate order: ``i, f, g, o``
(input, forget, cell candidate, output), each an H-wide block of the 4H columns; this is
also PyTorch's order.
"""

from __future__ import annotations

import numpy as np

from ..activations import sigmoid
from .base import RecurrentLayer
from .cell import Cell


class LSTMCell(Cell):
    """One LSTM step on state ``(h, c)`` and its backward."""

    name = "lstm"
    gates = ("i", "f", "g", "o")
    state = ("h", "c")
    nonlinearities = ("i", "f", "g", "o", "tanh(c)")
    torch_module = "LSTM"
    torch_gates = ("i", "f", "g", "o")
    # ONNX's LSTM with its default activations (sigmoid, tanh, tanh), no peepholes and
    # input_forget=0 is this cell; its gate blocks come as i, o, f, c (c our g)
    onnx_operator = "LSTM"
    onnx_gates = ("i", "o", "f", "g")
    kernel = "lstm"
    _activations = ("sigmoid", "sigmoid", "tanh", "sigmoid")

    def nonlinear_outputs(self, saved):
        gates, _c, tc = saved  # gates (B, 4H) after their activations
        H = tc.shape[1]
        out = {g: (gates[:, i * H:(i + 1) * H], a)
               for i, (g, a) in enumerate(zip(self.gates, self._activations, strict=True))}
        out["tanh(c)"] = (tc, "tanh")
        return out

    def step(self, p, xp_t, state):
        h, c = state
        a = xp_t + h @ p["W_h"]  # (B, 4H) pre-activations i, f, g, o
        H = h.shape[1]
        gates = sigmoid(a)
        gates[:, 2 * H:3 * H] = np.tanh(a[:, 2 * H:3 * H])
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        return (o * tc, c_new), (gates, c, tc)

    def step_back(self, p, saved, dstate):
        gates, c, tc = saved
        dh, dc = dstate
        H = dh.shape[1]
        i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
        dc = dc + dh * o * (1 - tc * tc)
        da = np.empty_like(gates)  # (B, 4H)
        da[:, :H] = dc * g * i * (1 - i)
        da[:, H:2 * H] = dc * c * f * (1 - f)
        da[:, 2 * H:3 * H] = dc * i * (1 - g * g)
        da[:, 3 * H:] = dh * tc * o * (1 - o)
        return da, da, (da @ p["W_h"].T, dc * f)


class LSTM(RecurrentLayer):
    r"""Long short-term memory layer.

    Parameters
    ----------
    input_size, hidden_size, num_layers, seed, dtype, init :
        As :class:`~rnnlab.cells.base.RecurrentLayer`.
    forget_bias : float or None
        Initial bias of the forget gate (default 1, Gers et al. 2000; Jozefowicz et al.
        2015), so the cell starts out remembering; None keeps the uniform draw.

    Notes
    -----
    With :math:`\sigma` the logistic function and gate order ``i, f, g, o``:

    .. math::

        [a_i, a_f, a_g, a_o] &= x_t W_x + h_{t-1} W_h + b \\
        i = \sigma(a_i),\ f &= \sigma(a_f),\ g = \tanh(a_g),\ o = \sigma(a_o) \\
        c_t &= f \odot c_{t-1} + i \odot g \\
        h_t &= o \odot \tanh(c_t)

    The state is the pair ``(h, c)``. PyTorch's ``nn.LSTM`` has two biases whose sum is ``b``.
    """

    Cell = LSTMCell
    options = ("forget_bias",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, forget_bias=1.0, **kwargs):
        if forget_bias is not None and not np.isfinite(forget_bias):
            raise ValueError(f"forget_bias must be a finite number or None, got {forget_bias!r}")
        self.forget_bias = None if forget_bias is None else float(forget_bias)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def _adjust_init(self, p):
        if self.forget_bias is not None:
            H = self.hidden_size
            p["b"][H:2 * H] = self.forget_bias
