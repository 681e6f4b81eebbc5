"""Gradient clipping for parameter sets.

Gradients are a plain ``dict[str, np.ndarray]`` with the same keys and shapes as
the parameters they belong to. The clipping functions modify the arrays in place
(so the caller's gradient buffers can be reused without copies) and return the
statistic measured *before* clipping, which is what a trainer wants to log.

Functions
---------
global_norm
    L2 norm over all arrays of a gradient set, accumulated in float64.
clip_by_global_norm
    Rescale all gradients together so that their global norm is at most a bound.
clip_by_value
    Clip every gradient element to ``[-limit, limit]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from . import checks

__all__ = ["clip_by_global_norm", "clip_by_value", "global_norm"]


def global_norm(grads: Mapping[str, np.ndarray]) -> float:
    """Return the L2 norm of all gradients taken together.

    Parameters
    ----------
    grads : dict of str to np.ndarray
        Gradient set (float32 or float64 arrays).

    Returns
    -------
    float
        ``sqrt(sum over arrays of sum(g ** 2))``. The sum is accumulated in
        float64 even for float32 gradients, because summing millions of squares
        in float32 loses several digits. An empty set has norm 0.0; a set
        containing inf or nan gives inf or nan.

    Raises
    ------
    ValueError
        If `grads` is not a mapping of floating-point arrays.
    """
    checks.float_arrays(grads, "grads")
    total = 0.0
    for g in grads.values():
        flat = g.astype(np.float64, copy=False).ravel()
        # einsum sums the squares without a temporary array, and without BLAS: np.dot
        # would wake BLAS's thread pool, whose idle threads then spin against the time
        # loops of the next step (measurements: docs/performance.md)
        total += float(np.einsum("i,i->", flat, flat))
    return math.sqrt(total)


def clip_by_global_norm(grads: Mapping[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so that their global L2 norm is at most `max_norm`.

    Parameters
    ----------
    grads : dict of str to np.ndarray
        Gradient set; modified in place when clipping happens.
    max_norm : float
        Positive bound on the global norm.

    Returns
    -------
    float
        The global norm before clipping (see :func:`global_norm`).

    Raises
    ------
    ValueError
        If `max_norm` is not a positive finite number or `grads` is not a
        mapping of floating-point arrays.

    Notes
    -----
    When the norm exceeds `max_norm` every array is multiplied by
    ``max_norm / norm``, so the direction of the update is preserved and the new
    global norm equals `max_norm` up to the rounding of the arrays' dtype.
    Gradients whose norm is at most `max_norm` are left bit-for-bit unchanged.

    If the norm is not finite (a gradient contains inf or nan) the gradients are
    left untouched and the inf/nan norm is returned: rescaling would turn every
    entry into nan or zero and hide the problem, so the caller (typically the
    trainer) decides whether to skip the step or stop.
    """
    max_norm = checks.positive_number(max_norm, "max_norm")
    norm = global_norm(grads)
    if not math.isfinite(norm):
        return norm
    if norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            # A Python float keeps the array's dtype under NumPy's promotion rules.
            g *= scale
    return norm


def clip_by_value(grads: Mapping[str, np.ndarray], limit: float) -> float:
    """Clip every gradient element in place to ``[-limit, limit]``.

    Parameters
    ----------
    grads : dict of str to np.ndarray
        Gradient set; modified in place.
    limit : float
        Positive bound on the absolute value of each element.

    Returns
    -------
    float
        The largest absolute gradient element before clipping (0.0 for an empty
        set; nan if some element is nan, in which case nan entries stay nan).

    Raises
    ------
    ValueError
        If `limit` is not a positive finite number or `grads` is not a mapping
        of floating-point arrays.
    """
    limit = checks.positive_number(limit, "limit")
    checks.float_arrays(grads, "grads")
    largest = 0.0
    for g in grads.values():
        if g.size == 0:
            continue
        # np.max propagates nan, so a nan gradient shows up in the return value.
        m = float(np.max(np.abs(g)))
        # Once largest is nan it stays nan, since nan > x is always False.
        if math.isnan(m) or m > largest:
            largest = m
        np.clip(g, -limit, limit, out=g)
    return largest
