"""Augmentations of time series for training: jitter, scaling, window slicing, time warping.

Shape legend: B series, T steps (the longest, others zero-padded), D features per step.

Each function takes a batch ``x`` (B, T, D), its ``lengths`` (B,) or None (every series T
steps) and a ``numpy.random.Generator``, and returns a new float array of the same shape
and dtype: only the real steps change, padded steps stay zero. The defaults are those of
the survey of Iwana & Uchida (2021, "An empirical survey of data augmentation for time
series classification with neural networks"): jitter sigma 0.03, scaling sigma 0.1, a
window of 90 % of the series, four warping knots of sigma 0.2.

:class:`Augmenter` applies a list of them, in order, with one generator of its own that a
checkpoint can save and restore (:meth:`Augmenter.state_dict`): the Trainer's batch hook
(``rnnlab.Trainer(augment=...)``) calls it on training batches only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AUGMENTATIONS", "Augmenter", "jitter", "parse_augment", "scale", "time_warp",
           "window_slice"]


def _real(x, lengths):
    """(B, T) bool: the real steps."""
    B, T = x.shape[:2]
    if lengths is None:
        return np.ones((B, T), dtype=bool)
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _lengths(x, lengths) -> np.ndarray:
    return (np.full(len(x), x.shape[1], dtype=np.int64) if lengths is None
            else np.asarray(lengths, dtype=np.int64))


def jitter(x, lengths, rng, sigma: float = 0.03):
    """Add Gaussian noise of standard deviation ``sigma`` to every real step."""
    x = np.asarray(x)
    e = sigma * rng.standard_normal(x.shape).astype(x.dtype)
    return x + e * _real(x, lengths)[:, :, None]


def scale(x, lengths, rng, sigma: float = 0.1):
    """Multiply each series by one factor drawn from N(1, sigma^2) (padding stays zero)."""
    x = np.asarray(x)
    factor = 1.0 + sigma * rng.standard_normal(len(x))  # (B,)
    return x * factor.astype(x.dtype)[:, None, None]


def _resample(s: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``s`` (L, D) read at the fractional steps ``where`` (M,) by linear interpolation."""
    steps = np.arange(len(s))
    return np.stack([np.interp(where, steps, s[:, d]) for d in range(s.shape[1])], axis=1)


def window_slice(x, lengths, rng, ratio: float = 0.9):
    """Crop each series to a random window of ``ceil(ratio * length)`` steps and stretch it
    back to its length (linear interpolation)."""
    x = np.asarray(x)
    out = np.zeros_like(x)
    for i, L in enumerate(_lengths(x, lengths)):
        w = max(1, int(np.ceil(ratio * L)))
        start = int(rng.integers(0, L - w + 1))
        where = np.linspace(0.0, w - 1, L)  # (L,) steps of the window, stretched to L
        out[i, :L] = _resample(x[i, start:start + w], where)
    return out


def time_warp(x, lengths, rng, sigma: float = 0.2, knots: int = 4):
    """Read each series at smoothly warped times.

    The local speed of time is drawn at ``knots + 2`` evenly spaced points as ``1 + sigma *
    N(0, 1)`` (at least 0.1), linearly interpolated between them; its running sum, rescaled
    to run from the first to the last real step, is a smooth increasing warp ``w``, and the
    warped series is the original read at ``w(t)``. The end points stay where they are.
    """
    x = np.asarray(x)
    out = np.zeros_like(x)
    for i, L in enumerate(_lengths(x, lengths)):
        speed_at = np.maximum(1.0 + sigma * rng.standard_normal(knots + 2), 0.1)
        if L < 2:
            out[i, :L] = x[i, :L]
            continue
        speed = np.interp(np.linspace(0, knots + 1, L - 1), np.arange(knots + 2), speed_at)
        w = np.concatenate([[0.0], np.cumsum(speed)])
        w *= (L - 1) / w[-1]  # (L,) increasing, 0 .. L-1
        out[i, :L] = _resample(x[i, :L], w)
    return out


AUGMENTATIONS = {"jitter": (jitter, "sigma"), "scale": (scale, "sigma"),
                 "slice": (window_slice, "ratio"), "warp": (time_warp, "sigma")}
"""name -> (function, its strength parameter): ``--augment jitter,scale,slice,warp``."""


def parse_augment(spec) -> list[tuple[str, float | None]]:
    """``"jitter,scale=0.2"`` (or a list of such items) -> ``[("jitter", None), ("scale",
    0.2)]``: the augmentations in order, each with its strength or None for the default."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in items:
        name, eq, value = str(item).strip().partition("=")
        if name not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {name!r}; expected some of "
                             f"{', '.join(AUGMENTATIONS)} (comma-separated, each optionally "
                             f"=strength)")
        strength = None
        if eq:
            try:
                strength = float(value)
            except ValueError:
                strength = -1.0
            ok = 0 < strength <= 1 if name == "slice" else strength >= 0
            if not ok:
                raise ValueError(f"augmentation {name}={value!r}: expected "
                                 + ("a ratio in (0, 1]" if name == "slice"
                                    else "a non-negative number"))
        out.append((name, strength))
    if not out:
        raise ValueError(f"augment must name at least one of {', '.join(AUGMENTATIONS)}, "
                         f"got {spec!r}")
    return out


class Augmenter:
    """A list of augmentations applied in order, with one seeded generator.

    Parameters
    ----------
    spec : str or list
        As :func:`parse_augment`: ``"jitter,scale,slice,warp"``, strengths as ``name=value``.
    seed : int, sequence of ints or None
        Seeds the generator (``numpy.random.default_rng``).
    patch : int
        Steps read as one (:func:`rnnlab.data.series.patches`): batches of ``(B, T', P*D)``
        are augmented as the ``(B, T' * P, D)`` series they hold (a partly filled last
        patch counts as full), and patched again.

    Calling it on ``(x, lengths)`` returns the augmented batch; :meth:`state_dict` is the
    generator's state now and before the latest batch's draws, so that a run resumed in
    the middle of a batch can draw that batch again exactly.
    """

    def __init__(self, spec, *, seed=0, patch: int = 1):
        self.items = parse_augment(spec)
        self.patch = int(patch)
        self.rng = np.random.default_rng(seed)
        self.before = self.rng.bit_generator.state

    def __call__(self, x, lengths=None):
        self.before = self.rng.bit_generator.state
        x = np.asarray(x)
        B, T, F = x.shape
        P = self.patch
        if P > 1:  # (B, T', P*D) -> (B, T'*P, D)
            x = x.reshape(B, T * P, F // P)
            lengths = None if lengths is None else np.asarray(lengths) * P
        for name, strength in self.items:
            fn, _ = AUGMENTATIONS[name]
            x = fn(x, lengths, self.rng) if strength is None else fn(x, lengths, self.rng,
                                                                     strength)
        return x.reshape(B, T, F)

    def state_dict(self) -> dict:
        """JSON-ready: ``{"now", "before"}``, the generator's states."""
        return {"now": self.rng.bit_generator.state, "before": self.before}

    def load_state_dict(self, state: dict, *, redo: bool = False) -> None:
        """Restore :meth:`state_dict`'s generator state; ``redo`` takes the state before the
        latest batch (a resumed run repeats that batch)."""
        if not isinstance(state, dict) or not {"now", "before"} <= set(state):
            raise ValueError(f"augmentation state must be a mapping with 'now' and 'before', "
                             f"got {state!r:.80}")
        self.rng.bit_generator.state = state["before" if redo else "now"]
        self.before = state["before"]

    def __repr__(self) -> str:
        return "Augmenter(" + ",".join(n if s is None else f"{n}={s:g}"
                                       for n, s in self.items) + ")"
