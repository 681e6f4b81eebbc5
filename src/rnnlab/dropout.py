"""Train-time masks: dropout between stacked layers, recurrent dropout and zoneout.

Shape legend: L layers (times directions), T time, B batch, F features entering a layer
above the first, P the width of ``h`` (H, or the LSTM's projection), W a state's width.

The masks are drawn once per batch from a :class:`numpy.random.Generator` (the Trainer's,
seeded from its ``seed``; see :meth:`rnnlab.Trainer.draw_masks`) and handed to the forward
pass as plain arrays; the backward pass reads the same arrays from the cache. Nothing else
ever draws them: ``infer``, :class:`rnnlab.Stream`, evaluation and sampling run without
masks, where dropout and recurrent dropout are the identity and zoneout is its
expectation (:mod:`rnnlab.cells.zoneout`).

* **dropout** ``p`` between stacked layers (PyTorch's ``nn.LSTM(dropout=p)``): layer k+1
  reads ``y_k * m / (1 - p)``, ``m ~ Bernoulli(1 - p)`` drawn per step, sequence and
  feature. Not on the first layer's input, not on the top layer's output (the head reads it
  as it is).
* **recurrent dropout** ``p`` (Gal & Ghahramani 2016): ``h_{t-1} * m / (1 - p)`` enters the
  recurrent product ``h_{t-1} W_h``, with one ``m`` per sequence and unit, the same at
  every step of the batch (so across the windows of truncated BPTT of one batch too).
  Only the product: the LSTM's ``c`` and the GRU's ``z * h_{t-1}`` read ``h_{t-1}`` as it is.
* **zoneout** ``z`` (Krueger et al. 2016): each unit of a state keeps its previous value
  with probability ``z`` at each step, ``s_t = d_t * s_{t-1} + (1 - d_t) * s~_t``,
  ``d_t ~ Bernoulli(z)`` per step, sequence and unit; on ``h`` and ``c`` for the LSTM
  (rates ``(z_h, z_c)``), on ``h`` for Elman and GRU.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Masks(NamedTuple):
    """One batch's masks, time-major; each None when its option is off.

    ``between`` (L-1, T, B, F): the scaled masks on the inputs of layers 1 .. L-1 (one
    array per layer; F is the same for all of them). ``recurrent`` (L*dirs, B, P): the
    scaled masks on ``h_{t-1}`` in the recurrent product. ``zoneout``: a tuple over the
    states (``h``, and ``c`` for the LSTM) of (L*dirs, T, B, W) arrays of 0 and 1, 1 where
    the unit keeps its previous value, or None for a state whose rate is 0.
    """

    between: np.ndarray | None = None
    recurrent: np.ndarray | None = None
    zoneout: tuple | None = None

    @property
    def active(self) -> bool:
        return not (self.between is None and self.recurrent is None and self.zoneout is None)

    def window(self, a: int, b: int) -> Masks:
        """The masks of steps ``[a, b)`` (the recurrent ones hold for every step)."""
        return Masks(None if self.between is None else self.between[:, a:b],
                     self.recurrent,
                     None if self.zoneout is None else tuple(
                         None if z is None else z[:, a:b] for z in self.zoneout))

    def gather(self, steps: np.ndarray) -> Masks:
        """The masks at ``steps`` (B, w): row b reads steps ``steps[b]``, as
        :func:`rnnlab.bptt.last_steps` gathers its window."""
        rows = np.arange(steps.shape[0])[None, :]
        st = steps.T  # (w, B)

        def pick(a):  # (n, T, B, .) -> (n, w, B, .)
            return None if a is None else np.ascontiguousarray(a[:, st, rows])

        return Masks(pick(self.between), self.recurrent,
                     None if self.zoneout is None else tuple(pick(z) for z in self.zoneout))

    def rows(self, rows: slice) -> Masks:
        """The masks of the sequences ``rows`` of the batch (a data-parallel rank's)."""
        return Masks(None if self.between is None else self.between[:, :, rows],
                     None if self.recurrent is None else self.recurrent[:, rows],
                     None if self.zoneout is None else tuple(
                         None if z is None else z[:, :, rows] for z in self.zoneout))

    def layer(self, k: int):
        """``(between, recurrent, zoneout)`` of row ``k`` (layer times directions): the
        input mask of layer ``k // dirs`` is the caller's; here ``recurrent`` (B, P) and
        ``zoneout`` (a tuple over states of (T, B, W) or None), or None."""
        rec = None if self.recurrent is None else self.recurrent[k]
        zone = None if self.zoneout is None else tuple(
            None if z is None else z[k] for z in self.zoneout)
        return rec, zone


def rate(value, name: str) -> float:
    """A dropout probability or zoneout rate in [0, 1); a ValueError naming it otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    v = float(value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return v


def zoneout_rates(value, n_state: int) -> tuple:
    """``zoneout`` as one rate per state: a number gives every state that rate; the LSTM
    takes a pair ``(z_h, z_c)`` too, Elman and GRU one rate (or a list of one)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_state:
            want = "a number or a pair (z_h, z_c)" if n_state == 2 else "a number"
            raise ValueError(f"zoneout must be {want}, got {value!r}")
        return tuple(rate(v, "zoneout") for v in value)
    return (rate(value, "zoneout"),) * n_state


def scaled_keep(rng: np.random.Generator, p: float, shape, dtype) -> np.ndarray:
    """Inverted dropout: ``1 / (1 - p)`` with probability ``1 - p``, else 0."""
    keep = rng.random(shape) >= p
    return (keep * (1.0 / (1.0 - p))).astype(dtype)


def draw(rng: np.random.Generator, B: int, T: int, *, layers: int, directions: int,
         features: int, widths: tuple, dtype, dropout: float = 0.0,
         recurrent_dropout: float = 0.0, zoneout: tuple = ()) -> Masks | None:
    """A batch's masks for a stack of ``layers`` recurrent layers; None when all are off.

    ``features`` is what a layer above the first reads (H, or 2H when bidirectional; P with
    a projection), ``widths`` the states' widths (``layer.state_sizes``). Draws in a fixed
    order (between, recurrent, zoneout state by state), so one generator state gives one
    set of masks.
    """
    L = layers * directions
    between = recurrent = zone = None
    if dropout > 0 and layers > 1:
        between = scaled_keep(rng, dropout, (layers - 1, T, B, features), dtype)
    if recurrent_dropout > 0:
        recurrent = scaled_keep(rng, recurrent_dropout, (L, B, widths[0]), dtype)
    if any(z > 0 for z in zoneout):
        zone = tuple(None if z == 0 else (rng.random((L, T, B, w)) < z).astype(dtype)
                     for z, w in zip(zoneout, widths, strict=True))
    masks = Masks(between, recurrent, zone)
    return masks if masks.active else None
