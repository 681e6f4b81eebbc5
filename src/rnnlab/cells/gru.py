"""The gated recurrent unit layer (Cho et al. 2014), in PyTorch's formulation.

Shape legend: B batch, D input features, H hidden units. Fused gate order: ``r, z, n``
(reset, update, candidate), each an H-wide block of the 3H columns; this is also PyTorch's
order.
"""

from __future__ import annotations

import numpy as np

from ..activations import sigmoid
from .base import RecurrentLayer
from .cell import Cell


class GRUCell(Cell):
    """One GRU step and its backward; the recurrent product has its own bias ``b_h``."""

    name = "gru"
    gates = ("r", "z", "n")
    state = ("h",)
    nonlinearities = ("r", "z", "n")
    recurrent_bias = True
    torch_module = "GRU"
    torch_gates = ("r", "z", "n")
    # ONNX's GRU, gate blocks z, r, h (h our n), with its biases Wb = b and Rb = b_h
    onnx_operator = "GRU"
    onnx_gates = ("z", "r", "n")
    kernel = "gru"

    def nonlinear_outputs(self, saved):
        _h, rz, n, _hn = saved  # r, z (B, 2H) and n (B, H)
        H = n.shape[1]
        return {"r": (rz[:, :H], "sigmoid"), "z": (rz[:, H:], "sigmoid"), "n": (n, "tanh")}

    def onnx_attributes(self):
        # r multiplies the recurrent product with its bias, r * (h W_h,n + b_h,n): ONNX's
        # linear_before_reset=1 (its default 0 would compute (r * h) W_h,n + b_h,n)
        return {"linear_before_reset": 1}

    def step(self, p, xp_t, state, drop=None):
        (h,) = state
        H = h.shape[1]
        # recurrent dropout masks h_{t-1} in the product only; z * h_{t-1} reads it as it is
        hp = (h if drop is None else h * drop) @ p["W_h"] + p["b_h"]  # (B, 3H)
        rz = sigmoid(xp_t[:, :2 * H] + hp[:, :2 * H])  # (B, 2H)
        r, z = rz[:, :H], rz[:, H:]
        n = np.tanh(xp_t[:, 2 * H:] + r * hp[:, 2 * H:])
        h_new = n + z * (h - n)
        return (h_new,), (h, rz, n, hp[:, 2 * H:])

    def step_back(self, p, saved, dstate, drop=None):
        h, rz, n, hn = saved
        (dh,) = dstate
        H = h.shape[1]
        r, z = rz[:, :H], rz[:, H:]
        dan = dh * (1 - z) * (1 - n * n)  # (B, H) at n's pre-activation
        dxp = np.empty((h.shape[0], 3 * H), h.dtype)  # (B, 3H) at r, z, n pre-activations
        dxp[:, :H] = dan * hn * r * (1 - r)
        dxp[:, H:2 * H] = dh * (h - n) * z * (1 - z)
        dxp[:, 2 * H:] = dan
        dhp = dxp.copy()
        dhp[:, 2 * H:] *= r
        dh_product = dhp @ p["W_h"].T  # (B, H) through the recurrent product
        if drop is not None:
            dh_product *= drop
        return dxp, dhp, (dh * z + dh_product,)

    def masked_step(self, p, xp_t, state, drop, keep=None):
        if keep is not None:
            raise ValueError("zoneout masks need a zoneout cell, got GRUCell")
        return self.step(p, xp_t, state, drop)

    def masked_step_back(self, p, saved, dstate, drop):
        return self.step_back(p, saved, dstate, drop)


class GRU(RecurrentLayer):
    r"""Gated recurrent unit layer.

    Parameters
    ----------
    input_size, hidden_size, num_layers, seed, dtype, init :
        As :class:`~rnnlab.cells.base.RecurrentLayer`.

    Notes
    -----
    With gate order ``r, z, n``, ``b`` the input-side bias and ``b_h`` the recurrent one:

    .. math::

        r &= \sigma(x_t W_{x,r} + b_r + h_{t-1} W_{h,r} + b_{h,r}) \\
        z &= \sigma(x_t W_{x,z} + b_z + h_{t-1} W_{h,z} + b_{h,z}) \\
        n &= \tanh(x_t W_{x,n} + b_n + r \odot (h_{t-1} W_{h,n} + b_{h,n})) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}

    exactly PyTorch's ``nn.GRU``; the two biases cannot be merged because ``r`` multiplies
    only the recurrent one.
    """

    Cell = GRUCell
