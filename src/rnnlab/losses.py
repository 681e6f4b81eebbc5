"""Losses with their gradients, averaged over the real (unpadded) positions.

Shape legend: N positions (B*T for per-step readout, B for last-step readout), K outputs.
Each loss takes ``(N, K)`` predictions, targets and an optional ``(N,)`` weight of 0/1
(0 at padded steps) and returns ``(loss, d_predictions)``.
"""

from __future__ import annotations

import numpy as np


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable ``log(softmax(z))`` over the last axis."""
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(z))


def _count(weight, n):
    return float(n if weight is None else weight.sum())


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, weight=None):
    """Mean cross-entropy of integer ``labels`` (N,) under ``softmax(logits)`` (N, K).

    The log-softmax and the loss are one fused, stable computation; the gradient is
    ``(softmax(logits) - onehot(labels)) / count``.
    """
    N = logits.shape[0]
    logp = log_softmax(logits)  # (N, K)
    count = _count(weight, N)
    picked = logp[np.arange(N), labels]  # (N,)
    if weight is not None:
        picked = picked * weight
    loss = -picked.sum() / max(count, 1.0)
    d = np.exp(logp)
    d[np.arange(N), labels] -= 1
    if weight is not None:
        d *= weight[:, None]
    d /= max(count, 1.0)
    return float(loss), d


def squared_error(pred: np.ndarray, target: np.ndarray, weight=None):
    """Mean over positions and outputs of ``(pred - target)**2`` (PyTorch's ``MSELoss``)."""
    N, K = pred.shape
    diff = pred - target
    if weight is not None:
        diff = diff * weight[:, None]
    count = max(_count(weight, N) * K, 1.0)
    return float((diff * diff).sum() / count), diff * (2.0 / count)
