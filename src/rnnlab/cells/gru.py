"""The gated recurrent unit layer (Cho et al. 2014), in PyTorch's formulation, with
optional layer normalisation (Ba, Kiros & Hinton 2016, as haste's ``LayerNormGRU``).

Shape legend: B batch, D input features, H hidden units. Fused gate order: ``r, z, n``
(reset, update, candidate), each an H-wide block of the 3H columns; this is also PyTorch's
order.
"""

from __future__ import annotations

import numpy as np

from .. import checks
from ..activations import sigmoid
from .base import RecurrentLayer
from .cell import Cell
from .lstm import normalised, normalised_back


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
        rz, n = saved[1], saved[2]  # r, z (B, 2H) and n (B, H)
        H = n.shape[1]
        return {"r": (rz[:, :H], "sigmoid"), "z": (rz[:, H:], "sigmoid"), "n": (n, "tanh")}

    def onnx_attributes(self):
        # r multiplies the recurrent product with its bias, r * (h W_h,n + b_h,n): ONNX's
        # linear_before_reset=1 (its default 0 would compute (r * h) W_h,n + b_h,n)
        return {"linear_before_reset": 1}

    def step(self, p, xp_t, state):
        (h,) = state
        H = h.shape[1]
        hp = h @ p["W_h"] + p["b_h"]  # (B, 3H)
        rz = sigmoid(xp_t[:, :2 * H] + hp[:, :2 * H])  # (B, 2H)
        r, z = rz[:, :H], rz[:, H:]
        n = np.tanh(xp_t[:, 2 * H:] + r * hp[:, 2 * H:])
        h_new = n + z * (h - n)
        return (h_new,), (h, rz, n, hp[:, 2 * H:])

    def step_back(self, p, saved, dstate):
        (dh,) = dstate
        dxp, dhp = self._gate_grads(saved, dh)
        z = saved[1][:, dh.shape[1]:]
        return dxp, dhp, (dh * z + dhp @ p["W_h"].T,)

    def masked_step(self, p, xp_t, state, drop, keep=None):
        # recurrent dropout: the product reads h_{t-1} * drop, the interpolation z * h_{t-1}
        # h itself, so the step on the masked state gets z * (h - h * drop) added; written
        # on top of step and step_back, it holds for the layer-normalised cell too
        if keep is not None:
            raise ValueError(f"zoneout masks need a zoneout cell, got {type(self).__name__}")
        if drop is None:
            return self.step(p, xp_t, state)
        (h,) = state
        (h_new,), saved = self.step(p, xp_t, (h * drop,))
        z = saved[1][:, h.shape[1]:]
        return (h_new + z * (h - saved[0]),), (h,) + tuple(saved[1:])

    def masked_step_back(self, p, saved, dstate, drop):
        out = self.step_back(p, saved, dstate)  # saved holds h itself: z's gradient is exact
        if drop is None:
            return out
        (dh,) = dstate
        direct = dh * saved[1][:, dh.shape[1]:]  # through z * h_{t-1}; the rest, the product's
        return out[:2] + ((direct + (out[2][0] - direct) * drop,),) + tuple(out[3:])

    @staticmethod
    def _gate_grads(saved, dh):
        """The gradients at the input side's and the recurrent side's sums, (B, 3H) each."""
        h, rz, n, hn = saved[:4]
        H = h.shape[1]
        r, z = rz[:, :H], rz[:, H:]
        dan = dh * (1 - z) * (1 - n * n)  # (B, H) at n's pre-activation
        dxp = np.empty((h.shape[0], 3 * H), h.dtype)  # (B, 3H) at r, z, n pre-activations
        dxp[:, :H] = dan * hn * r * (1 - r)
        dxp[:, H:2 * H] = dh * (h - n) * z * (1 - z)
        dxp[:, 2 * H:] = dan
        dhp = dxp.copy()
        dhp[:, 2 * H:] *= r
        return dxp, dhp


class LayerNormGRUCell(GRUCell):
    r"""The layer-normalised GRU step (haste's ``LayerNormGRU``) and its backward.

    Each of the two products is normalised over its whole 3H row (the three gate blocks
    together, as haste does) and scaled by a gain, and each bias added after; the
    recurrent one is normalised before ``r`` gates its ``n`` block:

    .. math::

        v_x &= \mathrm{LN}(x_t W_x)\,\gamma_x + b, \qquad
        v_h = \mathrm{LN}(h_{t-1} W_h)\,\gamma_h + b_h \\
        r &= \sigma(v_{x,r} + v_{h,r}), \quad z = \sigma(v_{x,z} + v_{h,z}), \quad
        n = \tanh(v_{x,n} + r \odot v_{h,n}) \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}

    with ``LN`` and :math:`\epsilon` = 1e-5 as :class:`rnnlab.cells.lstm.LayerNormLSTMCell`'s.
    Parameters beyond the plain cell's: the gains ``ln_x_g``, ``ln_h_g`` (3H,), 1 at the
    start (the biases are the offsets). Its own kernel is ``"gru_ln"``
    (:mod:`rnnlab.kernels.gru`); no ONNX operator computes it.
    """

    kernel = "gru_ln"
    onnx_operator = None
    loop_biases = False
    extra_params = ("ln_x_g", "ln_h_g")

    def step(self, p, xp_t, state):
        (h,) = state
        H = h.shape[1]
        nx, sx = normalised(xp_t)  # (B, 3H), (B, 1)
        nh, sh = normalised(h @ p["W_h"])
        vx = nx * p["ln_x_g"] + p["b"]
        vh = nh * p["ln_h_g"] + p["b_h"]
        rz = sigmoid(vx[:, :2 * H] + vh[:, :2 * H])  # (B, 2H)
        r, z = rz[:, :H], rz[:, H:]
        n = np.tanh(vx[:, 2 * H:] + r * vh[:, 2 * H:])
        h_new = n + z * (h - n)
        return (h_new,), (h, rz, n, vh[:, 2 * H:], nx, sx, nh, sh)

    def step_back(self, p, saved, dstate):
        (dh,) = dstate
        _h, rz, _n, _hn, nx, sx, nh, sh = saved
        dvx, dvh = self._gate_grads(saved, dh)  # at v_x and v_h
        dxp = normalised_back(dvx * p["ln_x_g"], nx, sx)  # at x_t W_x
        dhp = normalised_back(dvh * p["ln_h_g"], nh, sh)  # at h_{t-1} W_h
        z = rz[:, dh.shape[1]:]
        return dxp, dhp, (dh * z + dhp @ p["W_h"].T,), (dvx, dvh, dvx * nx, dvh * nh)

    def extra_grads(self, p, factors):
        names = ("b", "b_h", "ln_x_g", "ln_h_g")
        return {name: f.sum(axis=0) for name, f in zip(names, factors, strict=True)}


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

    ``layer_norm=True`` normalises the two products before their biases (Ba, Kiros &
    Hinton 2016, as haste's ``LayerNormGRU``): the equations are
    :class:`LayerNormGRUCell`'s. PyTorch and ONNX have no counterpart.
    """

    Cell = GRUCell
    options = ("layer_norm",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, layer_norm=False,
                 **kwargs):
        self.layer_norm = checks.boolean(layer_norm, "layer_norm")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def _make_cell(self):
        return LayerNormGRUCell() if self.layer_norm else super()._make_cell()

    def _adjust_init(self, p, rng):
        if self.layer_norm:  # gains 1: the plain normalisation at the start
            p.update(ln_x_g=np.ones(3 * self.hidden_size), ln_h_g=np.ones(3 * self.hidden_size))

    @classmethod
    def count_params(cls, config: dict) -> int | None:
        """:meth:`RecurrentLayer.count_params`, with 6H per layer and direction for the
        layer norm's gains."""
        n = super().count_params(config)
        if n is None or config.get("layer_norm") is not True:
            return n
        dirs = 2 if config.get("bidirectional") is True else 1
        return n + dirs * config.get("num_layers", 1) * 6 * config["hidden_size"]
