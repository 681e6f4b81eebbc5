"""Central finite differences in float64, shared by the gradient tests."""

from __future__ import annotations

import numpy as np


def numerical_grad(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f() / d a by central differences, perturbing ``a`` in place entry by entry."""
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Norm-wise relative error ||a - b|| / max(||a||, ||b||); 0 when both are zero."""
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)
