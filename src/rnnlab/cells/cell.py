"""The cell protocol: what one recurrent cell is, written down once.

Shape legend: B batch, H hidden units, G gates per cell, so a layer's fused blocks are
G*H wide: ``W_x`` (D, G*H), ``W_h`` (H, G*H), ``b`` (G*H,).

A cell is a small stateless object (its options, such as the Elman activation, fixed at
construction) that owns every fact about itself; the loop over time
(:mod:`rnnlab.recurrent`), the kernels' dispatch (:mod:`rnnlab.engine`), PyTorch
conversion (:mod:`rnnlab.interop`), diagnostics and benchmarks read them from here and
from nowhere else. The maths is two functions, side by side:

* ``step(p, xp_t, state) -> (new_state, saved)``: one step given the input projection
  ``xp_t = x_t W_x + b`` (B, G*H) and ``state``, a tuple of ``n_state`` (B, H) arrays;
  ``new_state[0]`` is the output ``h_t``; ``saved`` is what ``step_back`` needs.
* ``step_back(p, saved, dstate) -> (d_xp, d_hp, dstate_prev)``: the gradients with respect
  to the input projection and to the recurrent product ``h_{t-1} W_h (+ b_h)``, both
  (B, G*H) (the same array when the two enter only as a sum), and to the previous state.
  A cell with parameters of its own beyond ``W_x``, ``W_h``, ``b`` and ``b_h`` (its
  :attr:`~Cell.extra_params`, such as the LSTM's projection) returns a fourth value: a
  tuple of per-row factors (B, .) of their gradients, which the loop masks like the rest,
  stacks over all steps and hands to ``extra_grads`` once.

A cell that normalises its projections before their biases are added (layer norm) sets
:attr:`~Cell.loop_biases` False: the loop then hands ``step`` the bare ``x_t W_x``, the
cell adds ``b`` (and ``b_h``) itself, ``d_xp`` and ``d_hp`` are the gradients at the bare
products, and the biases' gradients come from ``extra_grads`` with the cell's own.
"""

from __future__ import annotations

import numpy as np


class Cell:
    """Base of the cells: the facts each cell states, and the two functions it defines.

    Attributes
    ----------
    name : str
        The registry key (``"lstm"``), used in configurations and model files.
    gates : tuple of str
        The fused gate order: block ``i`` of the G*H columns is gate ``gates[i]``.
    state : tuple of str
        The state arrays, ``("h",)`` or ``("h", "c")``; ``state[0]`` is the output.
    nonlinearities : tuple of str
        What :meth:`nonlinear_outputs` reports, in order (saturation diagnostics).
    recurrent_bias : bool
        Whether the recurrent product has its own bias ``b_h`` (the GRU's).
    torch_module : str
        PyTorch's module for this cell (``"LSTM"`` for ``torch.nn.LSTM``).
    torch_gates : tuple of str
        PyTorch's gate order, in this cell's gate names.
    onnx_operator : str or None
        The standard ONNX operator computing exactly ``step`` (``"LSTM"``), with the
        attributes :meth:`onnx_attributes` gives, or None when there is none. As for the
        kernel, only the class that declares it gets it (``own_onnx_operator``): a
        subclass, whose ``step`` may differ, has none unless it declares one itself.
    onnx_gates : tuple of str
        The ONNX operator's gate order, in this cell's gate names.
    kernel : str or None
        The fused kernel of :mod:`rnnlab.kernels` computing exactly ``step`` and
        ``step_back`` over a whole sequence, or None for the plain loop. Only the class
        that declares it gets it (``own_kernel``): a subclass, whose ``step`` may differ,
        runs the plain loop unless it declares a kernel of its own.
    kernel_args : tuple
        What the kernel takes after the arrays, in order (the Elman cell's activation).
    extra_params : tuple of str
        The cell's own per-layer parameters beyond ``W_x``, ``W_h``, ``b`` (and ``b_h``),
        whose gradients :meth:`extra_grads` computes from the factors ``step_back``
        returns; empty for the plain cells.
    loop_biases : bool
        Whether the loop adds ``b`` to the input projection and sums the biases'
        gradients from ``step_back``'s (True for the plain cells). False for a cell that
        normalises ``x_t W_x`` and ``h_{t-1} W_h`` first and adds its biases after: it
        then gets the bare products, and :meth:`extra_grads` returns ``b`` (and ``b_h``).
    n_gates, n_state : int
        ``len(gates)`` and ``len(state)``.
    own_kernel, own_onnx_operator : str or None
        ``kernel`` and ``onnx_operator`` if this very class declares them, else None.
    """

    name: str = ""
    gates: tuple = ()
    state: tuple = ("h",)
    nonlinearities: tuple = ()
    recurrent_bias: bool = False
    torch_module: str = ""
    torch_gates: tuple = ()
    onnx_operator: str | None = None
    onnx_gates: tuple = ()
    kernel: str | None = None
    kernel_args: tuple = ()
    extra_params: tuple = ()
    loop_biases: bool = True

    #: derived from ``gates``, ``state``, ``kernel`` and ``onnx_operator`` for each class as
    #: it is defined (plain attributes: the streaming step reads them at every call)
    n_gates: int = 0
    n_state: int = 1
    own_kernel: str | None = None
    own_onnx_operator: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.n_gates, cls.n_state = len(cls.gates), len(cls.state)
        # only a kernel or an ONNX operator the class declares itself: a subclass's step
        # may differ
        cls.own_kernel = cls.__dict__.get("kernel")
        cls.own_onnx_operator = cls.__dict__.get("onnx_operator")

    @classmethod
    def torch_order(cls) -> tuple[int, ...]:
        """For each of PyTorch's gate blocks in PyTorch's order, the index of the same gate
        among this cell's blocks (the identity when the orders agree)."""
        return tuple(cls.gates.index(g) for g in cls.torch_gates)

    @classmethod
    def onnx_order(cls) -> tuple[int, ...]:
        """For each of the ONNX operator's gate blocks in its order, the index of the same
        gate among this cell's blocks."""
        return tuple(cls.gates.index(g) for g in cls.onnx_gates)

    def onnx_attributes(self) -> dict:
        """The attributes of :attr:`onnx_operator` (beyond ``hidden_size``) that make it
        compute this cell's ``step``; a ValueError naming what it lacks when it cannot."""
        return {}

    def onnx_extra_inputs(self, p: dict) -> list:
        """The :attr:`onnx_operator`'s inputs after the initial states, for one direction
        of one layer with parameters ``p`` (the LSTM's peepholes ``P``); none by default."""
        return []

    def step(self, p: dict, xp_t: np.ndarray, state: tuple):
        raise NotImplementedError

    def step_back(self, p: dict, saved, dstate: tuple):
        raise NotImplementedError

    def masked_step(self, p: dict, xp_t: np.ndarray, state: tuple, drop, keep=None):
        """:meth:`step` under train-time masks (:mod:`rnnlab.dropout`): ``drop`` (B, P) or
        None, recurrent dropout's scaled mask on ``h_{t-1}`` in the recurrent product;
        ``keep``, zoneout's per-state masks at this step, which only a zoneout cell
        (:class:`rnnlab.cells.zoneout.ZoneoutCell`) takes.

        This default hands ``step`` the state with ``h_{t-1} * drop``: exact for a cell
        whose ``h_{t-1}`` enters only the recurrent product (Elman, the LSTM); a cell that
        reads it elsewhere too (the GRU's ``z * h_{t-1}``) overrides this and
        :meth:`masked_step_back`.
        """
        if keep is not None:
            raise ValueError(f"zoneout masks need a zoneout cell, got {type(self).__name__}")
        if drop is None:
            return self.step(p, xp_t, state)
        return self.step(p, xp_t, (state[0] * drop,) + tuple(state[1:]))

    def masked_step_back(self, p: dict, saved, dstate: tuple, drop):
        """:meth:`step_back` of :meth:`masked_step`: the gradient reaching ``h_{t-1}``
        through the product is multiplied by ``drop``."""
        out = self.step_back(p, saved, dstate)
        if drop is None:
            return out
        prev = out[2]
        return out[:2] + ((prev[0] * drop,) + tuple(prev[1:]),) + tuple(out[3:])

    def extra_grads(self, p: dict, factors: tuple) -> dict:
        """The gradients of :attr:`extra_params` from the factors ``step_back`` returned,
        each stacked over all steps to (T*B, .) (zero rows at padded steps)."""
        return {}

    def nonlinear_outputs(self, saved) -> dict:
        """name -> (output (B, H), activation name) of each nonlinearity at one step, from
        what :meth:`step` saved; the names are :attr:`nonlinearities`."""
        raise NotImplementedError
