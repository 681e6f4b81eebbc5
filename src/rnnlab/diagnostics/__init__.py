r"""Gradient flow through time and friends: the vanishing (and exploding) gradient, measured.

Shape legend: B batch, T time, D input features, H hidden units, L layers, K outputs.
Time is 1-based in the maths and 0-based in arrays: :math:`h_t` is a layer's output after
step :math:`t` (``y[:, t - 1]``), :math:`h_0` its initial state, :math:`h_T` its last output.

Everything here is exact, computed by backpropagating through the stored sequence with each
cell's own ``step_back`` (the cell protocol of :mod:`rnnlab.cells.cell`), never by finite
differences, and in float64 whatever the model's dtype, so that a flow of 1e-60 at lag 100
shows as 1e-60 and not as float32's underflow to zero.

The functions run the library's one reference loop (:mod:`rnnlab.recurrent`) rather than
reading a layer's cache: a cache made by a fused kernel keeps its per-step values in
another layout, and the per-step measurements need exactly what ``step`` saves. They watch
that loop through its per-step hooks instead of writing loops of their own.

Cost, for a trainer calling these every N updates: :func:`gradient_flow` is about H backward
passes over ``x`` (no weight gradients); pass a handful of sequences (``x[:4]``), not the
whole batch. :func:`loss_gradient_norms`, :func:`saturation` and :func:`spectral_radius`
cost about one forward and backward pass, one forward pass, and L eigenvalue problems.

Modules
-------
rnnlab.diagnostics.flow
    :func:`gradient_flow`, :func:`memory_length`, :func:`loss_gradient_norms`.
rnnlab.diagnostics.units
    :func:`spectral_radius`, :func:`saturation`.
rnnlab.diagnostics.report
    :func:`diagnose` and its :class:`Report`.
rnnlab.diagnostics.forward
    The float64 copies and the recorded forward they all run on.

Every public name is importable from :mod:`rnnlab.diagnostics` itself.
"""

from __future__ import annotations

from .flow import NORMS, gradient_flow, loss_gradient_norms, memory_length
from .report import Report, diagnose
from .units import saturation, spectral_radius

__all__ = ["NORMS", "Report", "diagnose", "gradient_flow", "loss_gradient_norms",
           "memory_length", "saturation", "spectral_radius"]
