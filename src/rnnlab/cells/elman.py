"""The simple (Elman) recurrent layer.

Shape legend: B batch, D input features, H hidden units.
"""

from __future__ import annotations

from .. import activations
from .base import RecurrentLayer
from .cell import Cell


class ElmanCell(Cell):
    r"""One Elman step, :math:`h_t = \Phi(x_t W_x + h_{t-1} W_h + b)`, and its backward."""

    name = "elman"
    gates = ("h",)
    state = ("h",)
    nonlinearities = ("h",)
    torch_module = "RNN"
    torch_gates = ("h",)
    onnx_operator = "RNN"
    onnx_gates = ("h",)
    kernel = "elman"
    #: rnnlab activation -> the name ONNX's ``RNN`` operator gives it
    onnx_activations = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}

    def __init__(self, activation: str = "tanh"):
        self.activation = activation
        self.f, self.f_grad = activations.get(activation)
        self.kernel_args = (activation,)

    def nonlinear_outputs(self, saved):
        return {"h": (saved, self.activation)}

    def onnx_attributes(self):
        if self.activation not in self.onnx_activations:
            raise ValueError(f"Elman activation {self.activation!r} has no counterpart in "
                             f"ONNX's RNN operator; expected one of "
                             f"{sorted(self.onnx_activations)}")
        return {"activations": [self.onnx_activations[self.activation]]}

    def step(self, p, xp_t, state):
        (h,) = state
        h_new = self.f(xp_t + h @ p["W_h"])  # (B, H)
        return (h_new,), h_new

    def step_back(self, p, h_new, dstate):
        (dh,) = dstate
        da = dh * self.f_grad(h_new)  # (B, H) gradient at the pre-activation
        return da, da, (da @ p["W_h"].T,)


class Elman(RecurrentLayer):
    r"""Simple recurrent layer (Elman network).

    Parameters
    ----------
    input_size, hidden_size, num_layers, seed, dtype :
        As :class:`~rnnlab.cells.base.RecurrentLayer`.
    activation : {"tanh", "relu", "sigmoid"}
        :math:`\Phi`.
    init : {"uniform", "orthogonal", "identity"}
        ``"identity"`` is the IRNN (Le et al. 2015): ``W_h = I``, zero bias, tiny ``W_x``;
        meant for ``activation="relu"``.

    Notes
    -----
    .. math::

        h_t = \Phi(x_t W_x + h_{t-1} W_h + b)

    the notes' :math:`s_t = \Phi(x_t W_x + s_{t-1} W_s)` with a bias. PyTorch's ``nn.RNN``
    has two biases whose sum is ``b``.
    """

    Cell = ElmanCell
    options = ("activation",)

    def __init__(self, input_size, hidden_size, num_layers=1, *, activation="tanh", **kwargs):
        activations.get(activation)  # reject an unknown name before drawing any weights
        self.activation = activation
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def _make_cell(self):
        return ElmanCell(self.activation)
