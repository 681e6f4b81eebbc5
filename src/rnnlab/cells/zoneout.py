r"""Zoneout (Krueger et al. 2016): a cell whose state units keep their previous values.

Shape legend: B batch, W a state's width (H, or the LSTM's projected ``h``: P).

With :math:`\tilde s_t` the state the wrapped cell's ``step`` computes from
:math:`s_{t-1}`, each state array (``h``, and ``c`` for the LSTM) becomes

.. math::

    s_t = d_t \odot s_{t-1} + (1 - d_t) \odot \tilde s_t

In training :math:`d_t` is a 0/1 mask drawn per step, sequence and unit with
:math:`P(d = 1) = z` (:mod:`rnnlab.dropout`; the loop hands it to :meth:`masked_step`). At
inference (no masks: ``infer``, streaming, evaluation, sampling) :math:`d_t = z`, the
expectation, as Krueger et al. do: the deterministic counterpart of the training
recurrence, so a zoneout layer's inference model is this mix. For the LSTM this is the
paper's form: ``h`` mixes with ``o * tanh(c~_t)``, the output of the cell state before its
own zoneout.

The cell states the wrapped cell's facts but no kernel and no ONNX operator of its own,
so it runs on the reference loop everywhere and an export refuses it.
"""

from __future__ import annotations

from .cell import Cell

#: every fact of the protocol (:class:`rnnlab.cells.Cell`'s annotated attributes) but the
#: kernel and the ONNX operator, which the mix does not have
_FACTS = tuple(name for name in Cell.__annotations__
               if name not in ("kernel", "onnx_operator", "own_kernel", "own_onnx_operator"))


class ZoneoutCell(Cell):
    """``inner``'s step with zoneout at ``rates`` (one per state array, each in [0, 1))."""

    def __init__(self, inner: Cell, rates: tuple):
        self.inner, self.rates = inner, tuple(float(z) for z in rates)
        for fact in _FACTS:
            setattr(self, fact, getattr(inner, fact))
        # the mix is not the inner cell's step: no kernel, no ONNX operator
        self.own_kernel = self.own_onnx_operator = None

    def onnx_attributes(self):
        raise ValueError(f"zoneout {list(self.rates)} has no standard ONNX operator (its "
                         f"inference form mixes each step's state with the previous one)")

    def extra_grads(self, p, factors):
        return self.inner.extra_grads(p, factors)

    def nonlinear_outputs(self, saved):
        return self.inner.nonlinear_outputs(saved[0])

    def _mix(self, new, state, keep):
        # w s + (1 - w) n: a 0/1 mask keeps a unit's previous value exactly
        return tuple(n if w is None else w * s + (1 - w) * n
                     for n, s, w in zip(new, state, keep, strict=True))

    def _weights(self, keep):
        """The per-state weights of the previous state: the masks, or the rates."""
        if keep is None:
            return tuple(None if z == 0 else z for z in self.rates)
        return keep

    def step(self, p, xp_t, state):
        new, saved = self.inner.step(p, xp_t, state)
        w = self._weights(None)
        return self._mix(new, state, w), (saved, w)

    def masked_step(self, p, xp_t, state, drop, keep=None):
        new, saved = self.inner.masked_step(p, xp_t, state, drop)
        w = self._weights(keep)
        return self._mix(new, state, w), (saved, w)

    def _back(self, out, dstate, w):
        """The inner cell's ``step_back`` output ``out`` (from the gradient reaching its new
        state) plus the gradient reaching the previous state straight through the mix."""
        prev = tuple(g if k is None else g + k * d
                     for g, d, k in zip(out[2], dstate, w, strict=True))
        return out[:2] + (prev,) + tuple(out[3:])

    def _reaching_new(self, dstate, w):
        return tuple(d if k is None else d * (1 - k) for d, k in zip(dstate, w, strict=True))

    def step_back(self, p, saved, dstate):
        inner_saved, w = saved
        out = self.inner.step_back(p, inner_saved, self._reaching_new(dstate, w))
        return self._back(out, dstate, w)

    def masked_step_back(self, p, saved, dstate, drop):
        inner_saved, w = saved
        out = self.inner.masked_step_back(p, inner_saved, self._reaching_new(dstate, w), drop)
        return self._back(out, dstate, w)
