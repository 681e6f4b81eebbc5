"""Everything at once: :func:`diagnose` measures a model and returns a :class:`Report`.

Shape legend: B batch, T time, D input features, H hidden units, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cells.base import RecurrentLayer
from ..network import Network
from .flow import gradient_flow, loss_gradients, memory_length
from .forward import layer64, network64
from .units import saturation, spectral_radius


@dataclass
class Report:
    """What :func:`diagnose` measured; :meth:`summary` formats it for a terminal."""

    model: str  # e.g. "Elman(tanh), 1 layer, H=64"
    batch: int  # B, sequences measured
    steps: int  # T, the longest real sequence
    norm: str  # "fro" or "spectral": the Jacobian norm of the flow
    flow: np.ndarray  # (T,) batch-averaged norm of dh_T/dh_{T-k}, absolute (see gradient_flow)
    fraction: float  # memory_length's threshold, relative to lag 0
    memory_length: int  # first lag with flow < fraction * flow[0], T if none
    spectral_radius: dict  # name -> radius of each recurrent weight block
    threshold: float  # slope fraction below which a unit counts as saturated
    saturation: dict  # name -> (T,) fraction of saturated units per step
    loss: float | None = None  # the Network's mean loss on (x, y), when y was given
    loss_gradients: np.ndarray | None = None  # (T,) ||dL/dh_t||, when y was given

    @property
    def relative_flow(self) -> np.ndarray:
        """The flow divided by lag 0 (which is the identity's norm)."""
        return self.flow / self.flow[0]

    def summary(self) -> str:
        """A few lines for the terminal: flow at chosen lags, memory, radii, saturation."""
        T, rel = self.steps, self.relative_flow
        lags = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if k < T]
        if T - 1 not in lags and T > 1:
            lags.append(T - 1)
        nm = "Frobenius" if self.norm == "fro" else "spectral"
        lines = [
            f"{self.model}; {self.batch} sequences of {T} steps",
            f"gradient flow |dh_T/dh_(T-k)| / |I| ({nm} norm, batch mean):",
            "  " + "  ".join(f"k={k}: {rel[k]:.3g}" for k in lags),
        ]
        far = "never within the sequence" if self.memory_length >= T else \
            f"{self.memory_length} steps"
        lines.append(f"memory length (flow below {self.fraction:g} of lag 0): {far}")
        lines.append("spectral radius: " + ", ".join(
            f"{k} {v:.3g}" for k, v in self.spectral_radius.items()))
        lines.append(f"saturated units (slope < {self.threshold:g} of max), mean over steps: "
                     + ", ".join(f"{k} {np.mean(v):.1%}" for k, v in self.saturation.items()))
        if self.loss_gradients is not None:
            g = self.loss_gradients
            picks = sorted({0, len(g) // 2, len(g) - 1})
            lines.append(f"loss {self.loss:.4g}; |dL/dh_t|: " + "  ".join(
                f"t={t + 1}: {g[t]:.3g}" for t in picks))
        return "\n".join(lines)


def _describe(layer: RecurrentLayer) -> str:
    name = type(layer).__name__
    if "activation" in layer.options:
        name += f"({layer.activation})"
    L = layer.num_layers
    extra = (f", P={layer.proj_size}" if getattr(layer, "proj_size", 0) else "") + (
        ", peepholes" if getattr(layer, "peepholes", False) else "") + (
        ", layer norm" if getattr(layer, "layer_norm", False) else "")
    return f"{name}, {L} layer{'s' if L > 1 else ''}, H={layer.hidden_size}{extra}"


def diagnose(model, x, y=None, *, state=None, lengths=None, norm: str = "fro",
             fraction: float = 0.01, threshold: float = 0.1) -> Report:
    """Measure a model's gradient flow, memory, weights and saturation on some input.

    Parameters
    ----------
    model : Elman, LSTM, GRU or Network
    x : array (B, T, D)
        A few sequences are enough; the flow costs about H backward passes over them.
    y : targets for a Network (as :meth:`Network.loss_and_grad`), optional
        With them the report also holds the loss and :func:`loss_gradient_norms`.
    state, lengths : as :func:`gradient_flow`
    norm : {"fro", "spectral"}
        The Jacobian norm of the flow.
    fraction : float in (0, 1)
        For :func:`memory_length`.
    threshold : float in (0, 1)
        For :func:`saturation`.

    Returns
    -------
    Report
        Top layer's flow, memory length and saturation; every layer's spectral radii.
    """
    if y is not None and not isinstance(model, Network):
        raise ValueError(f"targets y need a Network (with an output head and a loss), got "
                         f"{type(model).__name__}")
    layer = layer64(model)  # validates the model before any work
    flow = gradient_flow(model, x, state=state, lengths=lengths, norm=norm)
    mem = memory_length(flow, fraction)
    sat = saturation(model, x, state=state, lengths=lengths, threshold=threshold)
    loss = grads = None
    if y is not None:
        loss, grads = loss_gradients(network64(model), x, y, state, lengths)
    return Report(
        model=_describe(layer), batch=int(np.shape(x)[0]), steps=len(flow), norm=norm,
        flow=flow, fraction=float(fraction), memory_length=mem,
        spectral_radius=spectral_radius(model), threshold=float(threshold), saturation=sat,
        loss=loss, loss_gradients=grads,
    )
